//! `[source]` (what is read and how its columns map) and the worker shard.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::UsageError;
use crate::tasks::TaskPreset;

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
