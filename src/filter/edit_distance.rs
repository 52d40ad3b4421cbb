//! The edit-measure filter: each candidate's edit measured per changed
//! field ([`super::edit_measure`]), bounded relative to that field's
//! length, broken edits rejected by name. Every measured value is stored
//! on the candidate, accepted or not, so reviewers and `foil calibrate`
//! see what the filter saw.

use futures::future::BoxFuture;

use super::Filter;
use super::edit_measure::{EditBounds, EditMeasure};
use crate::record::{Candidate, SourceBatch, SourceExample};
use crate::text::{word_edit_distance, words};

pub const STAGE: &str = "edit_distance";

pub struct EditDistance {
    pub bounds: EditBounds,
    /// Optional caps on word-level Levenshtein distance.
    pub max_word_edits: Option<u32>,
    pub max_edit_ratio: Option<f64>,
}

/// The example's fields as (field, original, edited): the edited field,
/// then every other field but the label, edited or not — the unedited
/// ones (an NLI premise, a QA passage) are what a rewritten text has to
/// be about.
fn parts<'a>(example: &'a SourceExample, c: &'a Candidate) -> Vec<(&'a str, &'a str, &'a str)> {
    let mut out = vec![(
        c.edited_field.as_str(),
        c.original.as_str(),
        c.edited.as_str(),
    )];
    for (f, original) in &example.fields {
        if *f == c.edited_field || f == "label" {
            continue;
        }
        let edited = c.context_edits.get(f).unwrap_or(original);
        out.push((f.as_str(), original.as_str(), edited.as_str()));
    }
    out
}

impl EditDistance {
    pub fn check(&self, example: &SourceExample, c: &mut Candidate) {
        let parts = parts(example, c);
        let measure = EditMeasure::of(parts.iter().copied());
        // Levenshtein over the fields that changed, for comparison.
        let (mut d, mut n) = (0usize, 0usize);
        for (_, o, e) in &parts {
            let (a, b) = (words(o), words(e));
            if a != b {
                d += word_edit_distance(&a, &b);
                n += a.len();
            }
        }
        let ratio = d as f64 / n.max(1) as f64;
        c.scores.word_edits = Some(d as u32);
        c.scores.edit_ratio = Some(ratio);
        c.scores.edit_ops = Some(measure.ops() as u32);
        c.scores.changed_share = Some(measure.changed_share());
        c.scores.related_share = Some(measure.related_share());
        c.scores.changed_fields = Some(measure.changed_fields());
        c.scores.edit_spans = Some(measure.spans_json());
        if let Some((reason, detail)) = measure.check(&self.bounds) {
            c.reject(STAGE, reason, detail);
        } else if let Some(max) = self.max_word_edits.filter(|m| d > *m as usize) {
            c.reject(
                STAGE,
                "too_many_word_edits",
                format!("{d} word edits > {max}"),
            );
        } else if let Some(max) = self.max_edit_ratio.filter(|m| ratio > *m) {
            c.reject(
                STAGE,
                "edit_ratio_above_max",
                format!("edit ratio {ratio:.3} > {max}"),
            );
        }
    }
}

impl Filter for EditDistance {
    fn stage(&self) -> &'static str {
        STAGE
    }

    fn apply<'a>(&'a self, batch: &'a mut SourceBatch) -> BoxFuture<'a, Result<(), String>> {
        let example = batch.example.clone();
        for c in batch.candidates.iter_mut().filter(|c| !c.is_rejected()) {
            self.check(&example, c);
        }
        Box::pin(async { Ok(()) })
    }
}
