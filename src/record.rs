//! The data model: a source example as read from the input, and a candidate
//! pair (original + edit) with its provenance, scores and — when a stage
//! turned it down — the rejection. Rejections are data, not errors.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::text::stable_hash;

/// Whether an edit should change the gold label (a contrast), keep it (an
/// invariance probe, e.g. swapping gendered terms), or may do either
/// (`uncertain`: a person decides; such pairs carry no new label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    Flip,
    Invariant,
    Uncertain,
}

impl Relation {
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Flip => "flip",
            Relation::Invariant => "invariant",
            Relation::Uncertain => "uncertain",
        }
    }

    pub fn parse(s: &str) -> Option<Relation> {
        match s {
            "flip" => Some(Relation::Flip),
            "invariant" => Some(Relation::Invariant),
            "uncertain" => Some(Relation::Uncertain),
            _ => None,
        }
    }
}

/// Where a row came from, for messages that name file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowOrigin {
    pub file: Arc<str>,
    /// 1-based line for CSV/JSONL (header is line 1 in CSV); 1-based row
    /// for Parquet.
    pub line: u64,
}

impl fmt::Display for RowOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// An edit that came with the input (pairs mode): made by people or by
/// another tool, to be checked rather than generated.
#[derive(Debug, Clone, PartialEq)]
pub struct GivenEdit {
    /// The edited value of the task's edit field (its original value when
    /// only other fields were edited).
    pub edited: String,
    /// Edited values of the task's other fields (an NLI premise, a QA
    /// passage), by task field name.
    pub fields: BTreeMap<String, String>,
    pub edited_label: Option<String>,
    pub edit_type: Option<String>,
}

/// One example from the source, mapped onto the task's field names.
#[derive(Debug, Clone)]
pub struct SourceExample {
    /// Position in the input (0-based); the pipeline keeps this order so
    /// that output does not depend on concurrency.
    pub seq: u64,
    pub source_id: String,
    /// Task field name (`text`, `label`, `premise`, …) → value.
    pub fields: BTreeMap<String, String>,
    /// Columns the mapping does not use, in input order; values that are
    /// not strings are carried as their JSON text.
    pub passthrough: Vec<(String, Option<String>)>,
    pub given: Option<GivenEdit>,
    pub origin: RowOrigin,
}

impl SourceExample {
    /// An example with these task fields, for tests.
    #[cfg(test)]
    pub fn with_fields(fields: &[(&str, &str)]) -> Self {
        SourceExample {
            seq: 0,
            source_id: "s".into(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            passthrough: vec![],
            given: None,
            origin: RowOrigin {
                file: Arc::from("f"),
                line: 1,
            },
        }
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// The unedited fields other than the label (an NLI premise, a QA
    /// context), joined by newlines in field-name order: the `context`
    /// column of the shards, and what dedup compares alongside the edit.
    pub fn context(&self, edited_field: &str) -> Option<String> {
        self.joined_context(edited_field, &BTreeMap::new())
    }

    /// [`SourceExample::context`] after `edits` (edited values of those
    /// fields), when there are any.
    pub fn edited_context(
        &self,
        edited_field: &str,
        edits: &BTreeMap<String, String>,
    ) -> Option<String> {
        if edits.is_empty() {
            return None;
        }
        self.joined_context(edited_field, edits)
    }

    fn joined_context(
        &self,
        edited_field: &str,
        edits: &BTreeMap<String, String>,
    ) -> Option<String> {
        let parts: Vec<&str> = self
            .fields
            .iter()
            .filter(|(k, _)| k.as_str() != edited_field && k.as_str() != "label")
            .map(|(k, v)| edits.get(k).unwrap_or(v).as_str())
            .collect();
        (!parts.is_empty()).then(|| parts.join("\n"))
    }

    /// `source_id` from the content when the input has no id column.
    pub fn content_id(task: &str, fields: &BTreeMap<String, String>) -> String {
        let mut parts: Vec<&str> = vec![task];
        for (k, v) in fields {
            parts.push(k);
            parts.push(v);
        }
        stable_hash(&parts, 16)
    }
}

/// Why a stage could not do its work on a source (not a rejection of a
/// candidate): a spent budget stops the run there; anything else sends the
/// source to the dead letters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StageError {
    /// A budget ran out; the message says which.
    #[error("{0}")]
    Budget(String),
    #[error("{0}")]
    Failed(String),
}

impl StageError {
    pub fn failed(message: impl Into<String>) -> Self {
        StageError::Failed(message.into())
    }
}

/// The rejection reason of the candidates a stage could not judge because
/// it failed on their source (counted as failures, not rejections).
pub const FAILED: &str = "error";

/// Why a stage turned a candidate down.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejection {
    pub stage: String,
    /// A short, stable reason code (counted in the funnel).
    pub reason: String,
    /// Human detail (the measured value and the bound).
    pub detail: String,
}

/// Scores filters attach; absent when the filter did not run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Scores {
    /// Word-level Levenshtein distance over the changed fields, and that
    /// over the original's words (kept for comparison with other tools).
    pub word_edits: Option<u32>,
    pub edit_ratio: Option<f64>,
    /// Edit operations (a phrase replaced, inserted, deleted, swapped or
    /// moved counts once), over all changed fields.
    pub edit_ops: Option<u32>,
    /// The largest share of changed words over the changed fields.
    pub changed_share: Option<f64>,
    /// The smallest related share over the changed fields: how much of
    /// its content an edit shares with the original example.
    pub related_share: Option<f64>,
    /// Fields that changed, comma-separated (`text`, `premise,text`,
    /// `text#2` for the second segment of a joined text).
    pub changed_fields: Option<String>,
    /// The operations as JSON: field, op, from, to and byte ranges.
    pub edit_spans: Option<String>,
    pub similarity: Option<f64>,
    /// The embedder that scored `similarity` (its manifest description).
    pub similarity_by: Option<String>,
    pub verify: Option<VerifyScores>,
}

/// The verification judge's scores, each in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyScores {
    /// The edit flips the label (keeps it, for `invariant`).
    pub relation: f64,
    /// The proposed new label or answer is right for the edited input.
    pub label: f64,
    pub fluent: f64,
    pub minimal: f64,
    pub explanation: Option<String>,
}

/// A candidate pair: the original, one edit of it, and everything needed to
/// tell where the edit came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub pair_id: String,
    pub source_id: String,
    /// Which task field was edited (`text`, or `hypothesis` for NLI).
    pub edited_field: String,
    pub original: String,
    pub edited: String,
    /// Edited values of other fields of the example (pairs mode with an
    /// edited premise or passage); empty when only `edited_field` changed.
    pub context_edits: BTreeMap<String, String>,
    /// The unedited fields after those edits, joined as the `context`
    /// column joins them; `None` when no other field changed.
    pub edited_context: Option<String>,
    pub original_label: Option<String>,
    pub edited_label: Option<String>,
    pub relation: Relation,
    pub edit_type: String,
    /// `rules:<op>`, `llm:<model>` or `given:<file name>`.
    pub generator: String,
    pub prompt_sha256: Option<String>,
    pub temperature: Option<f64>,
    pub seed: Option<u64>,
    pub rationale: Option<String>,
    /// For span edits (captions): the span replaced and its replacement.
    pub source_span: Option<String>,
    pub target_span: Option<String>,
    /// What a person must supply before the pair is a finished contrast
    /// (`relation: …` for an uncertain pair, `answer: …` for a question
    /// without its new answer); `None` when nothing.
    pub needs_review: Option<String>,
    pub scores: Scores,
    pub rejection: Option<Rejection>,
}

impl Candidate {
    /// Stable id of a pair: the same source and the same edit always get the
    /// same id, whatever produced it and whenever.
    pub fn pair_id_for(source_id: &str, edited_field: &str, edited: &str) -> String {
        Self::pair_id_with(source_id, edited_field, edited, &BTreeMap::new())
    }

    /// [`Candidate::pair_id_for`] of an edit that also changed other
    /// fields (`context_edits`); the same id when it changed none.
    fn pair_id_with(
        source_id: &str,
        edited_field: &str,
        edited: &str,
        context_edits: &BTreeMap<String, String>,
    ) -> String {
        let mut parts: Vec<&str> = vec![source_id, edited_field, edited];
        for (k, v) in context_edits {
            parts.push(k);
            parts.push(v);
        }
        stable_hash(&parts, 16)
    }

    pub fn new(
        example: &SourceExample,
        edited_field: &str,
        edited: String,
        relation: Relation,
        edit_type: impl Into<String>,
        generator: impl Into<String>,
    ) -> Self {
        let original = example.field(edited_field).unwrap_or_default().to_string();
        Candidate {
            pair_id: Self::pair_id_for(&example.source_id, edited_field, &edited),
            source_id: example.source_id.clone(),
            edited_field: edited_field.to_string(),
            original,
            edited,
            original_label: example.field("label").map(str::to_string),
            relation,
            edit_type: edit_type.into(),
            generator: generator.into(),
            ..Candidate::blank()
        }
    }

    /// A candidate with every field empty (a flip of the `text` field):
    /// what a reader fills in column by column.
    pub fn blank() -> Self {
        Candidate {
            pair_id: String::new(),
            source_id: String::new(),
            edited_field: "text".into(),
            original: String::new(),
            edited: String::new(),
            context_edits: BTreeMap::new(),
            edited_context: None,
            original_label: None,
            edited_label: None,
            relation: Relation::Flip,
            edit_type: String::new(),
            generator: String::new(),
            prompt_sha256: None,
            temperature: None,
            seed: None,
            rationale: None,
            source_span: None,
            target_span: None,
            needs_review: None,
            scores: Scores::default(),
            rejection: None,
        }
    }

    /// Give the candidate edits of other fields of `example` too; the
    /// pair id then covers them, so two edits of one passage are two
    /// pairs.
    pub fn with_context_edits(
        mut self,
        example: &SourceExample,
        edits: BTreeMap<String, String>,
    ) -> Self {
        self.pair_id =
            Self::pair_id_with(&self.source_id, &self.edited_field, &self.edited, &edits);
        self.edited_context = example.edited_context(&self.edited_field, &edits);
        self.context_edits = edits;
        self
    }

    /// The edited example as dedup compares it: the edit, and the edited
    /// context when the edit changed it.
    pub fn dedup_text(&self) -> std::borrow::Cow<'_, str> {
        match &self.edited_context {
            None => std::borrow::Cow::Borrowed(&self.edited),
            Some(ctx) => std::borrow::Cow::Owned(format!("{}\n{ctx}", self.edited)),
        }
    }

    pub fn is_rejected(&self) -> bool {
        self.rejection.is_some()
    }

    pub fn reject(&mut self, stage: &str, reason: &str, detail: impl Into<String>) {
        self.rejection = Some(Rejection {
            stage: stage.to_string(),
            reason: reason.to_string(),
            detail: detail.into(),
        });
    }
}

/// The unit that flows between stages: one source example and all its
/// candidates. Keeping them together keeps per-source dedup and ordering
/// simple.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    pub example: Arc<SourceExample>,
    pub candidates: Vec<Candidate>,
}
