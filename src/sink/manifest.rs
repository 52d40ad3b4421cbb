//! `manifest.json`: what a run was (resolved config, prompt hashes,
//! models, foil version), what it wrote (shards with row counts) and what
//! happened on the way (the yield funnel: for each stage, items in, items
//! out and rejections by reason).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::shards::ShardEntry;
use crate::config::PipelineConfig;

pub const SCHEMA_VERSION: u32 = 1;

/// One stage of the yield funnel. `in = out + sum(rejected) + failed`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageFunnel {
    pub stage: String,
    /// What the stage counts: `rows`, `sources` or `pairs`.
    pub unit: String,
    #[serde(rename = "in")]
    pub in_: u64,
    pub out: u64,
    pub rejected: BTreeMap<String, u64>,
    /// Items lost to an infrastructure failure (see dead-letter.jsonl).
    #[serde(default)]
    pub failed: u64,
    /// For the generate stage: candidates produced from the sources out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produced: Option<u64>,
}

impl StageFunnel {
    pub fn new(stage: &str, unit: &str) -> Self {
        StageFunnel {
            stage: stage.to_string(),
            unit: unit.to_string(),
            ..Default::default()
        }
    }

    pub fn reject(&mut self, reason: &str) {
        *self.rejected.entry(reason.to_string()).or_default() += 1;
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    pub fn adds_up(&self) -> bool {
        self.in_ == self.out + self.rejected_total() + self.failed
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub rows_read: u64,
    pub quarantined: u64,
    pub sources: u64,
    pub candidates: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Sources in the dead letters and not since recovered by a retry.
    pub dead_letters: u64,
    /// Sources of earlier runs' dead letters that a later run retried and
    /// finished.
    #[serde(default)]
    pub dead_letters_recovered: u64,
    /// Sources given up after every allowed retry (still counted in
    /// `dead_letters`).
    #[serde(default)]
    pub dead_letters_given_up: u64,
    /// Accepted pairs per edit type (the balance across the taxonomy).
    #[serde(default)]
    pub accepted_by_edit_type: BTreeMap<String, u64>,
    /// Accepted pairs that are not finished until a person supplies what
    /// they lack, by what (`answer`, `relation`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub accepted_needing_review: BTreeMap<String, u64>,
    /// Pairs the similarity band scored (accepted or rejected there or
    /// later), by the embedder whose score decided: with cascade scoring,
    /// how many the distilled embedder settled and how many the model.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub similarity_scored_by: BTreeMap<String, u64>,
}

/// Count one pair through `stages`, in order: every stage it reached takes
/// it in; the stage that rejected it counts the reason (`error`: a
/// failure), the stages before pass it on. The one funnel count of
/// `generate`'s sink and of `merge`.
pub fn count_pair(stages: &mut [StageFunnel], rejection: Option<&crate::record::Rejection>) {
    let stop = rejection.map(|r| {
        stages
            .iter()
            .position(|s| s.stage == r.stage)
            .unwrap_or(stages.len())
    });
    let reached = stop.map_or(stages.len(), |s| (s + 1).min(stages.len()));
    for (i, stage) in stages.iter_mut().enumerate().take(reached) {
        stage.in_ += 1;
        match rejection {
            Some(r) if Some(i) == stop => {
                if r.reason == crate::record::FAILED {
                    stage.failed += 1;
                } else {
                    stage.reject(&r.reason);
                }
            }
            _ => stage.out += 1,
        }
    }
}

impl Counts {
    /// Count which embedder scored one pair, if any did.
    pub fn add_scored(&mut self, c: &crate::record::Candidate) {
        if let Some(by) = &c.scores.similarity_by {
            *self.similarity_scored_by.entry(by.clone()).or_default() += 1;
        }
    }

    /// Count one accepted pair.
    pub fn add_accepted(&mut self, c: &crate::record::Candidate) {
        self.accepted += 1;
        *self
            .accepted_by_edit_type
            .entry(c.edit_type.clone())
            .or_default() += 1;
        if let Some(need) = &c.needs_review {
            let what = need.split(':').next().unwrap_or(need).trim().to_string();
            *self.accepted_needing_review.entry(what).or_default() += 1;
        }
    }
}

/// What one stage's endpoint cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageUsage {
    /// HTTP requests sent, retries included.
    pub requests: u64,
    pub cache_hits: u64,
    pub retries: u64,
    pub rate_limited: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Estimated from the price table, when the model has a price.
    pub cost: Option<f64>,
}

impl StageUsage {
    pub fn add(&mut self, o: &StageUsage) {
        self.requests += o.requests;
        self.cache_hits += o.cache_hits;
        self.retries += o.retries;
        self.rate_limited += o.rate_limited;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.cost = match (self.cost, o.cost) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
    }
}

/// Endpoint usage over the whole job (all invocations of a resumed run).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub requests: u64,
    pub cache_hits: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: Option<f64>,
    /// Replies that were not JSON or broke the task's schema.
    pub invalid_replies: u64,
    /// Stage name → usage.
    pub stages: BTreeMap<String, StageUsage>,
}

impl Usage {
    /// Add another job's usage (a merged worker's), stage by stage.
    pub fn add(&mut self, o: &Usage) {
        for (k, v) in &o.stages {
            self.stages.entry(k.clone()).or_default().add(v);
        }
        self.invalid_replies += o.invalid_replies;
        self.total();
    }

    /// Recompute the totals from the stages.
    pub fn total(&mut self) {
        let mut t = StageUsage::default();
        for s in self.stages.values() {
            t.add(s);
        }
        self.requests = t.requests;
        self.cache_hits = t.cache_hits;
        self.prompt_tokens = t.prompt_tokens;
        self.completion_tokens = t.completion_tokens;
        self.cost = t.cost;
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Models {
    pub generator: String,
    pub embedder: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub foil_version: String,
    pub status: String,
    pub task: String,
    pub pairs_mode: bool,
    pub started_unix: u64,
    pub duration_s: f64,
    /// The pipeline as run, defaults filled in (no secrets: endpoints name
    /// the environment variable, never its value).
    pub config: PipelineConfig,
    /// Template set → sha256 of the prompt files used.
    pub prompts: BTreeMap<String, String>,
    pub models: Models,
    pub counts: Counts,
    pub usage: Usage,
    pub funnel: Vec<StageFunnel>,
    pub shards: Vec<ShardEntry>,
    pub rejected_shards: Vec<ShardEntry>,
}

impl Manifest {
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        crate::files::write_atomic(&dir.join(super::MANIFEST), text.as_bytes())
    }

    pub fn read(dir: &Path) -> Result<Self, ManifestError> {
        let path = dir.join(super::MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(err) => return Err(ManifestError::Read { path, err }),
        };
        serde_json::from_str(&text).map_err(|err| ManifestError::Parse { path, err })
    }
}

/// Why an output folder's manifest cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("reading `{}`: {err}", path.display())]
    Read {
        path: std::path::PathBuf,
        err: std::io::Error,
    },
    #[error("`{}`: {err}", path.display())]
    Parse {
        path: std::path::PathBuf,
        err: serde_json::Error,
    },
}
