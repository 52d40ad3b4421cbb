//! The pipeline description: what `foil run PIPELINE.toml` reads and what
//! `foil generate` builds from its flags. Both end in the same
//! [`PipelineConfig`], so the two surfaces cannot drift apart.
//!
//! Parsing is strict (`deny_unknown_fields`): a typo in a pipeline file is an
//! error naming the key, never silently ignored. Secrets are never part of a
//! config: endpoints name the environment variable that holds the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::UsageError;
use crate::filter::edit_measure::EditBounds;
use crate::tasks::{self, TaskPreset};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// A name for the job (defaults to the pipeline file's stem).
    #[serde(default)]
    pub name: Option<String>,
    /// Task preset: question, caption, nli, claim or text.
    pub task: String,
    /// Output folder; relative paths are resolved against the pipeline
    /// file's folder. `--out` overrides.
    #[serde(default)]
    pub out: Option<PathBuf>,
    /// Source examples (or, in pairs mode, candidate pairs) in flight at
    /// once in each stage.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    pub source: SourceConfig,
    #[serde(default)]
    pub generator: GeneratorConfig,
    #[serde(default)]
    pub embedder: EmbedderConfig,
    /// Filters in the order given; when absent, the task's defaults
    /// (edit distance, then similarity band: cheapest first).
    #[serde(default)]
    pub filters: Option<Vec<FilterConfig>>,
    #[serde(default)]
    pub dedup: DedupConfig,
    #[serde(default)]
    pub sink: SinkConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub budget: crate::llm::budget::BudgetConfig,
    /// Number of workers when the index comes from the environment without
    /// a count (Kubernetes Indexed Jobs' `JOB_COMPLETION_INDEX`).
    #[serde(default)]
    pub workers: Option<u32>,
    /// This process's slice of the sources (set by `--shard i/N` or the
    /// batch engine's environment, not usually written in a file).
    #[serde(default)]
    pub shard: Option<ShardSpec>,
}

/// Worker `index` of `count`: takes the sources whose stable hash of
/// `source_id` is `index` modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardSpec {
    pub index: u32,
    pub count: u32,
}

impl ShardSpec {
    /// `i/N`.
    pub fn parse(s: &str) -> Result<Self, UsageError> {
        let bad = || UsageError::new(format!("--shard expects i/N with 0 <= i < N, got `{s}`"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let spec = ShardSpec {
            index: i.trim().parse().map_err(|_| bad())?,
            count: n.trim().parse().map_err(|_| bad())?,
        };
        spec.check().map_err(|_| bad())?;
        Ok(spec)
    }

    pub fn check(&self) -> Result<(), UsageError> {
        if self.count == 0 || self.index >= self.count {
            return Err(UsageError::new(format!(
                "shard {}/{}: need 0 <= index < count",
                self.index, self.count
            )));
        }
        Ok(())
    }

    /// Does this worker take the source with this id?
    pub fn takes(&self, source_id: &str) -> bool {
        crate::text::hash64(&[source_id.as_bytes()]) % u64::from(self.count)
            == u64::from(self.index)
    }

    /// Bad rows have no id: they go by input position.
    pub fn takes_position(&self, seq: u64) -> bool {
        seq % u64::from(self.count) == u64::from(self.index)
    }

    /// The worker's folder inside the run's output folder.
    pub fn folder(&self) -> String {
        format!("worker-{:05}-of-{:05}", self.index, self.count)
    }
}
/// Where LLM and embedding responses are cached.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// SQLite file; default `<out>/cache.sqlite`. Point several pipelines
    /// at one file to share answers.
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub mode: crate::llm::cache::CacheMode,
    /// What a cached reply is filed under besides the request: by default
    /// each endpoint's base URL, so two servers with a model of the same
    /// name never answer for each other. Name a namespace to share replies
    /// across URLs that serve the same thing (a server that moved port).
    #[serde(default)]
    pub namespace: Option<String>,
}

pub(crate) fn default_concurrency() -> usize {
    8
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Csv,
    Jsonl,
    Parquet,
}

impl SourceFormat {
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(SourceFormat::Csv),
            "jsonl" | "ndjson" => Some(SourceFormat::Jsonl),
            "parquet" | "pq" => Some(SourceFormat::Parquet),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub path: PathBuf,
    /// csv, jsonl or parquet; guessed from the extension when absent.
    #[serde(default)]
    pub format: Option<SourceFormat>,
    /// Column holding a stable id; a content hash is used when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Task field → input column, for fields whose column is not the
    /// task's default name.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Pairs mode: the column holding an edit made elsewhere. Generation is
    /// skipped and the pairs are checked, deduplicated and written.
    #[serde(default)]
    pub edited: Option<String>,
    /// Pairs mode: task field → column holding the edited version of a
    /// field other than the edited text (an NLI premise, a QA passage).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub edited_fields: BTreeMap<String, String>,
    #[serde(default)]
    pub edited_label: Option<String>,
    #[serde(default)]
    pub edit_type: Option<String>,
    /// Rows that fail to parse or lack a required field are quarantined;
    /// more than this many fails the run.
    #[serde(default = "default_max_bad_rows")]
    pub max_bad_rows: u64,
    /// Longest accepted field, in bytes.
    #[serde(default = "default_max_field_bytes")]
    pub max_field_bytes: usize,
    /// Read at most this many examples (handy for a first look).
    #[serde(default)]
    pub limit: Option<u64>,
}

pub(crate) fn default_max_bad_rows() -> u64 {
    10
}

pub(crate) fn default_max_field_bytes() -> usize {
    16 * 1024
}

impl SourceConfig {
    pub fn pairs_mode(&self) -> bool {
        self.edited.is_some() || !self.edited_fields.is_empty()
    }

    pub fn resolved_format(&self) -> Result<SourceFormat, UsageError> {
        self.format
            .or_else(|| SourceFormat::from_path(&self.path))
            .ok_or_else(|| {
                UsageError::new(format!(
                    "cannot tell the format of `{}` from its extension; set `format` \
                     (csv, jsonl or parquet)",
                    self.path.display()
                ))
            })
    }

    /// The input column for a task field: the mapping, else the task's
    /// default column name.
    pub fn column_for(&self, task: &TaskPreset, field: &str) -> Option<String> {
        self.fields
            .get(field)
            .cloned()
            .or_else(|| task.field(field).map(|f| f.default_column.to_string()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleOp {
    Negation,
    Antonym,
    Number,
    Quantifier,
    Comparative,
    Temporal,
    Gender,
}

impl RuleOp {
    pub const ALL: [RuleOp; 7] = [
        RuleOp::Negation,
        RuleOp::Antonym,
        RuleOp::Number,
        RuleOp::Quantifier,
        RuleOp::Comparative,
        RuleOp::Temporal,
        RuleOp::Gender,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RuleOp::Negation => "negation",
            RuleOp::Antonym => "antonym",
            RuleOp::Number => "number",
            RuleOp::Quantifier => "quantifier",
            RuleOp::Comparative => "comparative",
            RuleOp::Temporal => "temporal",
            RuleOp::Gender => "gender",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum GeneratorConfig {
    /// Offline, deterministic perturbations: the embedded default.
    Rules {
        /// The operations to run; unset: the task's defaults (those judged
        /// at least 80% valid on real originals).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ops: Option<Vec<RuleOp>>,
        /// Most candidates one operation makes per source.
        #[serde(default = "default_max_per_op")]
        max_per_op: usize,
    },
    /// Any OpenAI-compatible chat completions endpoint.
    Llm(Box<LlmGeneratorConfig>),
}

impl GeneratorConfig {
    /// The rules operations a run of `task` applies.
    pub fn rule_ops(ops: &Option<Vec<RuleOp>>, task: &TaskPreset) -> Vec<RuleOp> {
        match ops {
            Some(ops) => ops.clone(),
            None => RuleOp::ALL
                .into_iter()
                .filter(|op| task.rule_ops.contains(&op.name()))
                .collect(),
        }
    }
}

pub(crate) fn default_max_per_op() -> usize {
    2
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig::Rules {
            ops: None,
            max_per_op: default_max_per_op(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Base URL ending in `/v1`.
    pub url: String,
    pub model: String,
    /// Name of the environment variable holding the API key; the key may be
    /// absent for local servers.
    #[serde(default = "default_api_key_env")]
    pub api_key_env: String,
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f64,
    /// Attempts per request (first try included) on 429, 5xx, timeouts.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry waits about this long; each further one twice as long.
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    /// Most requests in flight to this endpoint at once.
    #[serde(default)]
    pub max_concurrent: Option<usize>,
    /// Most requests per minute (spaced evenly).
    #[serde(default)]
    pub requests_per_minute: Option<f64>,
    /// Most tokens (prompt + completion) per minute, estimated before a
    /// request and corrected from `usage` after.
    #[serde(default)]
    pub tokens_per_minute: Option<f64>,
}

impl EndpointConfig {
    pub fn new(url: impl Into<String>, model: impl Into<String>) -> Self {
        EndpointConfig {
            url: url.into(),
            model: model.into(),
            api_key_env: default_api_key_env(),
            timeout_s: default_timeout_s(),
            max_attempts: default_attempts(),
            retry_base_ms: default_retry_base_ms(),
            max_concurrent: None,
            requests_per_minute: None,
            tokens_per_minute: None,
        }
    }

    pub fn limits(&self) -> crate::llm::limits::Limits {
        crate::llm::limits::Limits {
            max_concurrent: self.max_concurrent,
            requests_per_minute: self.requests_per_minute,
            tokens_per_minute: self.tokens_per_minute,
        }
    }
}

pub fn default_api_key_env() -> String {
    "OPENAI_API_KEY".to_string()
}

pub(crate) fn default_timeout_s() -> f64 {
    60.0
}

pub(crate) fn default_attempts() -> u32 {
    4
}

pub(crate) fn default_retry_base_ms() -> u64 {
    500
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmGeneratorConfig {
    #[serde(flatten)]
    pub endpoint: EndpointConfig,
    /// Candidates asked for per source (one request each, seeds `seed`,
    /// `seed + 1`, …).
    #[serde(default = "default_n")]
    pub n: u32,
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// A folder with `<task>/system.jinja`, `user.jinja`, `schema.json`
    /// replacing the built-in templates.
    #[serde(default)]
    pub prompts_dir: Option<PathBuf>,
    /// Further attempts after a reply that is not JSON or breaks the schema.
    #[serde(default = "default_bad_reply_retries")]
    pub bad_reply_retries: u32,
    /// Retry a bad reply with another seed (seed + 1000 × attempt) instead
    /// of the same request.
    #[serde(default)]
    pub reseed_bad_replies: bool,
    /// Edit-type quotas: ask for `per_type` candidates of each of these
    /// types (from the task's taxonomy) instead of `n` of any type, so the
    /// output is balanced. A reply of another type is a bad reply.
    #[serde(default)]
    pub types: Vec<String>,
    #[serde(default = "default_per_type")]
    pub per_type: u32,
}

pub(crate) fn default_per_type() -> u32 {
    1
}

pub(crate) fn default_bad_reply_retries() -> u32 {
    1
}

impl LlmGeneratorConfig {
    /// The defaults a pipeline file gets for an `llm` generator.
    pub fn with_endpoint(endpoint: EndpointConfig) -> Self {
        LlmGeneratorConfig {
            endpoint,
            n: default_n(),
            temperature: default_temperature(),
            top_p: None,
            seed: None,
            max_tokens: default_max_tokens(),
            prompts_dir: None,
            bad_reply_retries: default_bad_reply_retries(),
            reseed_bad_replies: false,
            types: Vec::new(),
            per_type: default_per_type(),
        }
    }
}

pub(crate) fn default_n() -> u32 {
    2
}

pub(crate) fn default_temperature() -> f64 {
    0.7
}

pub(crate) fn default_max_tokens() -> u32 {
    256
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EmbedderConfig {
    /// all-MiniLM-L6-v2 (or any BERT-family sentence model folder) run
    /// in-process with candle.
    Local {
        /// A folder with config.json, tokenizer.json, model.safetensors;
        /// default: `$FOIL_MODEL_DIR`, else the cache folder that
        /// `scripts/fetch-model` fills.
        #[serde(default)]
        model_dir: Option<PathBuf>,
        /// Instead of a folder: a model repository on a Hugging Face-style
        /// hub (`owner/name`), downloaded once into foil's cache.
        #[serde(default)]
        hub_model: Option<String>,
        #[serde(default = "default_hub_revision")]
        hub_revision: String,
        #[serde(default = "default_embed_batch")]
        batch_size: usize,
    },
    /// Any OpenAI-compatible `/v1/embeddings` endpoint.
    Http {
        #[serde(flatten)]
        endpoint: EndpointConfig,
    },
}

pub(crate) fn default_embed_batch() -> usize {
    32
}

pub(crate) fn default_hub_revision() -> String {
    "main".to_string()
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        EmbedderConfig::Local {
            model_dir: None,
            hub_model: None,
            hub_revision: default_hub_revision(),
            batch_size: default_embed_batch(),
        }
    }
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
    pub near: crate::dedup::near::NearDedupConfig,
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

impl PipelineConfig {
    /// Parse a pipeline file; relative paths inside it are resolved against
    /// the file's folder.
    pub fn from_file(path: &Path) -> Result<Self, UsageError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| UsageError::new(format!("reading `{}`: {e}", path.display())))?;
        let mut cfg: PipelineConfig = toml::from_str(&text)
            .map_err(|e| UsageError::new(format!("`{}`: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.source.path = join_relative(base, &cfg.source.path);
        if let Some(out) = &cfg.out {
            cfg.out = Some(join_relative(base, out));
        }
        if let Some(p) = &cfg.cache.path {
            cfg.cache.path = Some(join_relative(base, p));
        }
        if let GeneratorConfig::Llm(llm) = &mut cfg.generator
            && let Some(dir) = &llm.prompts_dir
        {
            llm.prompts_dir = Some(join_relative(base, dir));
        }
        for f in cfg.filters.iter_mut().flatten() {
            if let FilterConfig::Verify(v) = f
                && let Some(dir) = &v.prompts_dir
            {
                v.prompts_dir = Some(join_relative(base, dir));
            }
        }
        if let EmbedderConfig::Local {
            model_dir: Some(dir),
            ..
        } = &mut cfg.embedder
        {
            *dir = join_relative(base, dir);
        }
        for dir in &mut cfg.dedup.near.against {
            *dir = join_relative(base, dir);
        }
        if cfg.name.is_none() {
            cfg.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        }
        cfg.validate()
            .map_err(|e| UsageError::new(format!("`{}`: {}", path.display(), e.0)))?;
        Ok(cfg)
    }

    pub fn task(&self) -> Result<&'static TaskPreset, UsageError> {
        tasks::preset(&self.task).ok_or_else(|| {
            UsageError::new(format!(
                "unknown task `{}`; expected one of: {}",
                self.task,
                tasks::names().join(", ")
            ))
        })
    }

    /// The filters this run uses: the configured ones, or the task's; the
    /// edit measure's unset bounds filled in from the task, so the manifest
    /// shows the bounds that were applied.
    pub fn resolved_filters(&self) -> Result<Vec<FilterConfig>, UsageError> {
        let task = self.task()?;
        Ok(match &self.filters {
            Some(f) => f
                .iter()
                .map(|f| match f {
                    FilterConfig::EditDistance(e) => FilterConfig::EditDistance(e.resolved(task)),
                    other => other.clone(),
                })
                .collect(),
            None => FilterConfig::defaults_for(task),
        })
    }

    /// Checks serde cannot express: known task, sane bounds, a mapping that
    /// names every required field.
    pub fn validate(&self) -> Result<(), UsageError> {
        let task = self.task()?;
        if self.concurrency == 0 {
            return Err(UsageError::new("`concurrency` must be at least 1"));
        }
        self.source.resolved_format()?;
        for field in self.source.fields.keys() {
            if task.field(field).is_none() {
                let known: Vec<&str> = task.fields.iter().map(|f| f.name).collect();
                return Err(UsageError::new(format!(
                    "source.fields: task `{}` has no field `{field}`; its fields are: {}",
                    task.name,
                    known.join(", ")
                )));
            }
        }
        for field in self.source.edited_fields.keys() {
            if task.field(field).is_none() || field == "label" {
                let known: Vec<&str> = task
                    .fields
                    .iter()
                    .map(|f| f.name)
                    .filter(|f| *f != "label")
                    .collect();
                return Err(UsageError::new(format!(
                    "source.edited_fields: task `{}` has no field `{field}` to edit; its fields \
                     are: {}",
                    task.name,
                    known.join(", ")
                )));
            }
        }
        for f in self.resolved_filters()? {
            match f {
                FilterConfig::LabelChange => {}
                FilterConfig::EditDistance(e) => {
                    if let Some(problem) = e.bounds(task).problem() {
                        return Err(UsageError::new(format!("filters.edit_distance: {problem}")));
                    }
                    if e.max_word_edits == Some(0)
                        || e.max_edit_ratio.is_some_and(|r| r.is_nan() || r <= 0.0)
                    {
                        return Err(UsageError::new(
                            "filters.edit_distance: max_word_edits and max_edit_ratio must be \
                             above 0 (a zero bound would reject every edit)",
                        ));
                    }
                }
                FilterConfig::Similarity { min, max } => {
                    if !(-1.0..=1.0).contains(&min) || !(-1.0..=1.0).contains(&max) || min > max {
                        return Err(UsageError::new(format!(
                            "filters.similarity: need -1 <= min <= max <= 1, got min = {min}, \
                             max = {max}"
                        )));
                    }
                }
                FilterConfig::Verify(v) => {
                    check_endpoint("filters.verify", &v.endpoint)?;
                    if let GeneratorConfig::Llm(g) = &self.generator
                        && v.independent
                        && g.endpoint.model == v.endpoint.model
                        && g.endpoint.url.trim_end_matches('/')
                            == v.endpoint.url.trim_end_matches('/')
                    {
                        return Err(UsageError::new(format!(
                            "filters.verify: independent = true, but the judge is the \
                             generator's model `{}` at the same endpoint; give the judge \
                             another model or endpoint",
                            v.endpoint.model
                        )));
                    }
                    for (name, t) in v.thresholds() {
                        if !(0.0..=1.0).contains(&t) {
                            return Err(UsageError::new(format!(
                                "filters.verify: min_{name} must be in [0, 1], got {t}"
                            )));
                        }
                    }
                }
            }
        }
        if let Some(s) = &self.shard {
            s.check()?;
        }
        if self.dedup.near.enabled {
            self.dedup.near.validate().map_err(UsageError::new)?;
        } else if !self.dedup.near.against.is_empty() {
            return Err(UsageError::new(
                "dedup.near.against needs near-duplicate dedup (dedup.near.enabled = true)",
            ));
        }
        if self.budget.max_cost.is_some() {
            let mut models: Vec<&str> = Vec::new();
            if let GeneratorConfig::Llm(l) = &self.generator {
                models.push(&l.endpoint.model);
            }
            if let EmbedderConfig::Http { endpoint } = &self.embedder {
                models.push(&endpoint.model);
            }
            if let Some(filters) = &self.filters {
                for f in filters {
                    if let FilterConfig::Verify(v) = f {
                        models.push(&v.endpoint.model);
                    }
                }
            }
            if let Some(m) = models
                .iter()
                .find(|m| !self.budget.prices.contains_key(**m))
            {
                return Err(UsageError::new(format!(
                    "budget.max_cost needs a price for model `{m}` (budget.prices or --price)"
                )));
            }
        }
        if let GeneratorConfig::Llm(llm) = &self.generator {
            check_endpoint("generator", &llm.endpoint)?;
            if llm.n == 0 || llm.per_type == 0 {
                return Err(UsageError::new(
                    "generator.n and generator.per_type must be at least 1",
                ));
            }
            if let Some(t) = llm
                .types
                .iter()
                .find(|t| !task.edit_types.contains(&t.as_str()))
            {
                return Err(UsageError::new(format!(
                    "generator.types: `{t}` is not an edit type of task `{}`; its types are: {}",
                    task.name,
                    task.edit_types.join(", ")
                )));
            }
        }
        if let EmbedderConfig::Http { endpoint } = &self.embedder {
            check_endpoint("embedder", endpoint)?;
        }
        if self.sink.rows_per_shard == 0 {
            return Err(UsageError::new("sink.rows_per_shard must be at least 1"));
        }
        Ok(())
    }

    /// A hash of what decides the output, for resuming: two configs with
    /// the same hash produce the same pairs. Concurrency, limits, timeouts,
    /// retries, budgets, cache settings and the dedup indexes' memory share
    /// change how a run goes, not what it writes, so they are left out
    /// (raising a budget must resume).
    pub fn identity_hash(&self) -> String {
        let mut c = self.clone();
        c.name = None;
        c.out = None;
        c.concurrency = 0;
        c.cache = CacheConfig::default();
        c.budget = Default::default();
        c.source.max_bad_rows = 0;
        c.sink.checkpoint_every = 0;
        c.sink.checkpoint_secs = 0.0;
        c.sink.dead_letter_retries = 0;
        c.dedup.index_memory_mib = 0;
        let neutral = |e: &mut EndpointConfig| {
            e.api_key_env = String::new();
            e.timeout_s = 0.0;
            e.max_attempts = 0;
            e.retry_base_ms = 0;
            e.max_concurrent = None;
            e.requests_per_minute = None;
            e.tokens_per_minute = None;
        };
        match &mut c.generator {
            GeneratorConfig::Llm(l) => {
                neutral(&mut l.endpoint);
                l.bad_reply_retries = 0;
            }
            GeneratorConfig::Rules { ops, .. } => {
                if let Ok(task) = self.task() {
                    *ops = Some(GeneratorConfig::rule_ops(ops, task));
                }
            }
        }
        match &mut c.embedder {
            EmbedderConfig::Http { endpoint } => neutral(endpoint),
            EmbedderConfig::Local { batch_size, .. } => *batch_size = 0,
        }
        if c.filters.is_none() {
            c.filters = self.resolved_filters().ok();
        }
        let v = serde_json::to_value(&c).unwrap_or_default();
        crate::text::sha256_hex(crate::llm::cache::canonical_json(&v).as_bytes())
    }

    /// Does any stage need embeddings?
    pub fn needs_embedder(&self) -> bool {
        self.resolved_filters()
            .map(|fs| {
                fs.iter()
                    .any(|f| matches!(f, FilterConfig::Similarity { .. }))
            })
            .unwrap_or(false)
    }
}

fn check_endpoint(what: &str, e: &EndpointConfig) -> Result<(), UsageError> {
    if !(e.url.starts_with("http://") || e.url.starts_with("https://")) {
        return Err(UsageError::new(format!(
            "{what}.url must start with http:// or https://, got `{}`",
            e.url
        )));
    }
    if e.model.trim().is_empty() {
        return Err(UsageError::new(format!("{what}.model must not be empty")));
    }
    if e.max_attempts == 0 || e.timeout_s.is_nan() || e.timeout_s <= 0.0 {
        return Err(UsageError::new(format!(
            "{what}: max_attempts and timeout_s must be above 0"
        )));
    }
    Ok(())
}

fn join_relative(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PipelineConfig, String> {
        let cfg: PipelineConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.validate().map_err(|e| e.0)?;
        Ok(cfg)
    }

    #[test]
    fn minimal_file_gets_rules_local_embedder_and_task_filters() {
        let cfg = parse("task = \"question\"\n[source]\npath = \"q.csv\"\n").unwrap();
        assert!(matches!(cfg.generator, GeneratorConfig::Rules { .. }));
        assert!(matches!(cfg.embedder, EmbedderConfig::Local { .. }));
        assert_eq!(cfg.resolved_filters().unwrap().len(), 3);
        assert!(cfg.needs_embedder());
    }

    #[test]
    fn unknown_key_is_named() {
        let err =
            parse("task = \"question\"\nconcurrenc = 3\n[source]\npath = \"q.csv\"\n").unwrap_err();
        assert!(err.contains("concurrenc"), "{err}");
    }

    #[test]
    fn unknown_task_and_field_are_named() {
        let err = parse("task = \"qa\"\n[source]\npath = \"q.csv\"\n").unwrap_err();
        assert!(err.contains("unknown task `qa`"), "{err}");
        let err =
            parse("task = \"claim\"\n[source]\npath = \"q.csv\"\nfields = { answer = \"a\" }\n")
                .unwrap_err();
        assert!(err.contains("no field `answer`"), "{err}");
    }

    #[test]
    fn inverted_similarity_band_is_refused() {
        let err = parse(
            "task = \"text\"\n[source]\npath = \"t.jsonl\"\n[[filters]]\nkind = \"similarity\"\nmin = 0.9\nmax = 0.2\n",
        )
        .unwrap_err();
        assert!(err.contains("min <= max"), "{err}");
    }

    #[test]
    fn a_cost_budget_needs_a_price_for_the_model() {
        let base = "task = \"question\"\n[source]\npath = \"q.csv\"\n\
                    [generator]\nkind = \"llm\"\nurl = \"http://127.0.0.1:1/v1\"\nmodel = \"m\"\n\
                    [budget]\nmax_cost = 1.0\n";
        let err = parse(base).unwrap_err();
        assert!(err.contains("needs a price for model `m`"), "{err}");
        let priced = format!(
            "{base}[budget.prices.m]\nprompt_per_million = 1.0\ncompletion_per_million = 2.0\n"
        );
        assert!(parse(&priced).is_ok());
    }
}
