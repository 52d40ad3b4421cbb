//! `[[filters]]`, `[dedup]`, `[sink]` and `[cache]`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::*;
use crate::tasks::EditBounds;
use crate::tasks::TaskPreset;

/// Where LLM and embedding responses are cached.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// SQLite file; default `<out>/cache.sqlite`. Point several pipelines
    /// at one file to share answers.
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub mode: CacheMode,
    /// What a cached reply is filed under besides the request: by default
    /// each endpoint's base URL, so two servers with a model of the same
    /// name never answer for each other. Name a namespace to share replies
    /// across URLs that serve the same thing (a server that moved port).
    #[serde(default)]
    pub namespace: Option<String>,
    /// SQLite file of the vectors the model (or an embedding endpoint)
    /// made, kept across runs so a text is embedded once; default
    /// `$FOIL_CACHE/embeddings.sqlite`. `mode` applies to it too.
    #[serde(default)]
    pub embeddings: Option<PathBuf>,
}

/// How the response cache is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheMode {
    /// Read and write (the default).
    #[default]
    Use,
    /// Neither read nor write (`--no-cache`).
    Off,
    /// Write only: every request is sent again and its answer replaces the
    /// cached one (`--refresh-cache`).
    Refresh,
}

pub(crate) fn default_concurrency() -> usize {
    8
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FilterConfig {
    /// A `flip` edit must not keep its label (normalised comparison).
    LabelChange,
    /// The edit measure: original and edit aligned word by word into edit
    /// operations per field, bounded relative to each field's length;
    /// no-ops, truncations, scrambles, doubled and unrelated texts are
    /// rejected by name. Unset bounds are the task's.
    EditDistance(EditDistanceConfig),
    /// Cosine similarity of the embeddings must lie in `[min, max]`.
    Similarity { min: f64, max: f64 },
    /// An LLM judge scores each edit on four criteria in [0, 1]; an edit
    /// below any threshold is rejected. Every score is stored.
    Verify(Box<VerifyConfig>),
}

/// The edit measure's bounds ([`EditBounds`]); each unset one is the
/// task's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditDistanceConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ops: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops_per_100_words: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_changed_words: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_changed_share: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_related_share: Option<f64>,
    /// Optional extra caps on word-level Levenshtein distance (absolute,
    /// and over the original's word count), as earlier versions had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_word_edits: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_edit_ratio: Option<f64>,
}

impl EditDistanceConfig {
    /// Every bound set: the configured ones, the rest from the task.
    pub fn resolved(&self, task: &TaskPreset) -> Self {
        let b = self.bounds(task);
        EditDistanceConfig {
            max_ops: Some(b.max_ops),
            ops_per_100_words: Some(b.ops_per_100_words),
            max_changed_words: Some(b.max_changed_words),
            max_changed_share: Some(b.max_changed_share),
            min_related_share: Some(b.min_related_share),
            max_word_edits: self.max_word_edits,
            max_edit_ratio: self.max_edit_ratio,
        }
    }

    /// The bounds, unset ones from the task.
    pub fn bounds(&self, task: &TaskPreset) -> EditBounds {
        let d = task.filters.edit;
        EditBounds {
            max_ops: self.max_ops.unwrap_or(d.max_ops),
            ops_per_100_words: self.ops_per_100_words.unwrap_or(d.ops_per_100_words),
            max_changed_words: self.max_changed_words.unwrap_or(d.max_changed_words),
            max_changed_share: self.max_changed_share.unwrap_or(d.max_changed_share),
            min_related_share: self.min_related_share.unwrap_or(d.min_related_share),
        }
    }
}

/// The verification stage: its own endpoint, prompt and thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    #[serde(flatten)]
    pub endpoint: EndpointConfig,
    /// The edit flips the label (keeps it, for `relation = invariant`).
    #[serde(default = "half")]
    pub min_relation: f64,
    /// The proposed new label or answer is right for the edited input.
    #[serde(default = "half")]
    pub min_label: f64,
    #[serde(default = "half")]
    pub min_fluent: f64,
    #[serde(default = "half")]
    pub min_minimal: f64,
    #[serde(default)]
    pub temperature: f64,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_verify_tokens")]
    pub max_tokens: u32,
    /// Refuse to run when the judge is the generator's own model at the
    /// same endpoint: a model grading its own edits agrees with itself.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub independent: bool,
    /// A folder with `verify/system.jinja`, `user.jinja`, `schema.json`.
    #[serde(default)]
    pub prompts_dir: Option<PathBuf>,
    /// Further attempts after a verdict that is not JSON or breaks the
    /// schema (each its own cache entry).
    #[serde(default = "default_bad_reply_retries")]
    pub bad_reply_retries: u32,
}

fn half() -> f64 {
    0.5
}

pub(crate) fn default_verify_tokens() -> u32 {
    200
}

impl VerifyConfig {
    pub fn with_endpoint(endpoint: EndpointConfig) -> Self {
        VerifyConfig {
            endpoint,
            min_relation: half(),
            min_label: half(),
            min_fluent: half(),
            min_minimal: half(),
            temperature: 0.0,
            seed: 0,
            max_tokens: default_verify_tokens(),
            independent: false,
            prompts_dir: None,
            bad_reply_retries: default_bad_reply_retries(),
        }
    }

    /// (criterion, threshold) in the order they are checked.
    pub fn thresholds(&self) -> [(&'static str, f64); 4] {
        [
            ("relation", self.min_relation),
            ("label", self.min_label),
            ("fluent", self.min_fluent),
            ("minimal", self.min_minimal),
        ]
    }
}

impl FilterConfig {
    pub fn stage_name(&self) -> &'static str {
        match self {
            FilterConfig::LabelChange => "label_change",
            FilterConfig::EditDistance(_) => "edit_distance",
            FilterConfig::Similarity { .. } => "similarity",
            FilterConfig::Verify(_) => "verify",
        }
    }

    /// The task's default filters, cheapest first.
    pub fn defaults_for(task: &TaskPreset) -> Vec<FilterConfig> {
        vec![
            FilterConfig::LabelChange,
            FilterConfig::EditDistance(EditDistanceConfig::default().resolved(task)),
            FilterConfig::Similarity {
                min: task.filters.similarity_min,
                max: task.filters.similarity_max,
            },
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    #[serde(default = "yes")]
    pub exact: bool,
    /// MinHash LSH near-duplicate dedup (on by default).
    #[serde(default)]
    pub near: NearDedupConfig,
    /// Memory the dedup indexes may take before they move to disk (in the
    /// output folder's `.foil/index/`): a quarter for exact dedup, the rest
    /// for near-dedup. Memory then stays flat however long the run.
    #[serde(default = "default_index_memory_mib")]
    pub index_memory_mib: usize,
}

pub(crate) fn default_index_memory_mib() -> usize {
    512
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            exact: true,
            near: Default::default(),
            index_memory_mib: default_index_memory_mib(),
        }
    }
}

impl DedupConfig {
    /// Bytes of memory exact dedup may hold.
    pub fn exact_share(&self) -> usize {
        (self.index_memory_mib << 20) / 4
    }

    /// Bytes of memory near-dedup may hold.
    pub fn near_share(&self) -> usize {
        (self.index_memory_mib << 20) / 4 * 3
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    #[serde(default = "default_rows_per_shard")]
    pub rows_per_shard: usize,
    /// Also write rejected pairs, with stage and reason, to `rejected/`.
    #[serde(default = "yes")]
    pub write_rejected: bool,
    /// Commit (shards + checkpoint) at least every this many sources…
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// …and at least every this many seconds.
    #[serde(default = "default_checkpoint_secs")]
    pub checkpoint_secs: f64,
    /// A source that went to the dead letters is tried again by each later
    /// run of the folder, in at most this many runs; then it is given up.
    #[serde(default = "default_dead_letter_retries")]
    pub dead_letter_retries: u32,
}

pub(crate) fn default_dead_letter_retries() -> u32 {
    3
}

pub(crate) fn default_checkpoint_every() -> u64 {
    10_000
}

pub(crate) fn default_checkpoint_secs() -> f64 {
    30.0
}

pub(crate) fn default_rows_per_shard() -> usize {
    50_000
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            rows_per_shard: default_rows_per_shard(),
            write_rejected: true,
            checkpoint_every: default_checkpoint_every(),
            checkpoint_secs: default_checkpoint_secs(),
            dead_letter_retries: default_dead_letter_retries(),
        }
    }
}

/// Settings for near-duplicate dedup (`[dedup.near]`).
///
/// Defaults, chosen for short edits: word **3**-grams, because a 15-word
/// caption has 17 padded 5-grams and a one-word edit changes 5 of them —
/// with 5-grams nearly every short text looks unique, while 3-grams keep
/// resolution. **128** permutations as **16 bands × 8 rows**: a pair at
/// Jaccard 0.8 shares a bucket with probability 1 − (1 − 0.8⁸)¹⁶ ≈ 0.95,
/// at 0.85 ≈ 0.99; the estimated-Jaccard check then drops the candidates
/// below the threshold. Threshold **0.8** across the run. Whether an edit
/// collapsed back to its own original is the edit measure's question (a
/// no-op there is anything identical after normalisation), so
/// `original_threshold` is off by default: with padded 3-grams a one-word
/// substitution in an L-word text has Jaccard (L − 1)/(L + 5), so any
/// fixed threshold rejects real minimal edits of long texts (a review with
/// three phrase edits sits near 0.95). Set it (0.9 rejects near-copies of
/// texts up to about 55 words) to also reject edits that are merely close
/// to their original.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NearDedupConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_ngram")]
    pub ngram: usize,
    #[serde(default = "default_bands")]
    pub bands: usize,
    #[serde(default = "default_rows")]
    pub rows: usize,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Jaccard similarity (exact for texts up to 60 words, estimated beyond)
    /// at or above which two edited examples are near-duplicates.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Jaccard similarity to the original at or above which an
    /// edit has collapsed back to its source (off unless set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_threshold: Option<f64>,
    /// Earlier output folders whose accepted pairs new pairs must not
    /// repeat.
    #[serde(default)]
    pub against: Vec<PathBuf>,
}

fn default_ngram() -> usize {
    3
}
fn default_bands() -> usize {
    16
}
fn default_rows() -> usize {
    8
}
fn default_seed() -> u64 {
    1
}
fn default_threshold() -> f64 {
    0.8
}

impl Default for NearDedupConfig {
    fn default() -> Self {
        NearDedupConfig {
            enabled: true,
            ngram: default_ngram(),
            bands: default_bands(),
            rows: default_rows(),
            seed: default_seed(),
            threshold: default_threshold(),
            original_threshold: None,
            against: Vec::new(),
        }
    }
}

impl NearDedupConfig {
    pub fn validate(&self) -> Result<(), UsageError> {
        if self.ngram == 0 || self.bands == 0 || self.rows == 0 {
            return Err(UsageError::new(
                "[dedup.near]: ngram, bands and rows must be at least 1",
            ));
        }
        if self.bands * self.rows > 1024 {
            return Err(UsageError::new(
                "[dedup.near]: bands × rows must be at most 1024",
            ));
        }
        for (name, v) in [
            ("threshold", Some(self.threshold)),
            ("original_threshold", self.original_threshold),
        ]
        .into_iter()
        .filter_map(|(n, v)| Some((n, v?)))
        {
            if !(0.0..=1.0).contains(&v) || v == 0.0 {
                return Err(UsageError::new(format!(
                    "[dedup.near] {name} must be in (0, 1], got {v}"
                )));
            }
        }
        Ok(())
    }
}
