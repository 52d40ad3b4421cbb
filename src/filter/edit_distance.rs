//! The edit-measure filter: each candidate's edit measured per changed
//! field ([`super::edit_measure`]), bounded relative to that field's
//! length, broken edits rejected by name. Every measured value is stored
//! on the candidate, accepted or not, so reviewers and `foil calibrate`
//! see what the filter saw.

use futures::future::BoxFuture;

use super::Filter;
use std::collections::HashSet;

use super::edit_measure::{self, EditBounds, EditMeasure};
use crate::record::{Candidate, SourceBatch, SourceExample};
use crate::text::{word_edit_distance, words};

pub const STAGE: &str = "edit_distance";
/// More word edits than `max_word_edits`.
pub const TOO_MANY_WORD_EDITS: &str = "too_many_word_edits";
/// Edit ratio above `max_edit_ratio`.
pub const EDIT_RATIO_ABOVE_MAX: &str = "edit_ratio_above_max";

pub struct EditDistance {
    pub bounds: EditBounds,
    /// Optional caps on word-level Levenshtein distance.
    pub max_word_edits: Option<u32>,
    pub max_edit_ratio: Option<f64>,
}

/// The candidate's fields as (field, original, edited): the edited field,
/// then the other fields it edits.
fn parts<'a>(example: &'a SourceExample, c: &'a Candidate) -> Vec<(&'a str, &'a str, &'a str)> {
    let mut out = vec![(
        c.edited_field.as_str(),
        c.original.as_str(),
        c.edited.as_str(),
    )];
    for (f, edited) in &c.context_edits {
        out.push((
            f.as_str(),
            example.field(f).unwrap_or_default(),
            edited.as_str(),
        ));
    }
    out
}

/// What a rewritten text has to be about: every original field but the
/// label (an NLI premise, a QA passage included).
fn example_stems(example: &SourceExample) -> HashSet<String> {
    edit_measure::example_stems(
        example
            .fields
            .iter()
            .filter(|(f, _)| f.as_str() != "label")
            .map(|(_, v)| v.as_str()),
    )
}

impl EditDistance {
    pub fn check(&self, example: &SourceExample, anchor: &HashSet<String>, c: &mut Candidate) {
        let parts = parts(example, c);
        let measure = EditMeasure::within(anchor, parts.iter().copied());
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
                TOO_MANY_WORD_EDITS,
                format!("{d} word edits > {max}"),
            );
        } else if let Some(max) = self.max_edit_ratio.filter(|m| ratio > *m) {
            c.reject(
                STAGE,
                EDIT_RATIO_ABOVE_MAX,
                format!("edit ratio {ratio:.3} > {max}"),
            );
        }
    }
}

impl Filter for EditDistance {
    fn stage(&self) -> &'static str {
        STAGE
    }

    fn apply<'a>(
        &'a self,
        batch: &'a mut SourceBatch,
    ) -> BoxFuture<'a, Result<(), crate::record::StageError>> {
        let example = batch.example.clone();
        let anchor = example_stems(&example);
        for c in batch.candidates.iter_mut().filter(|c| !c.is_rejected()) {
            self.check(&example, &anchor, c);
        }
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::record::Relation;

    fn example(premise: &str, hypothesis: &str) -> SourceExample {
        SourceExample::with_fields(&[
            ("premise", premise),
            ("text", hypothesis),
            ("label", "entailment"),
        ])
    }

    fn filter(max_word_edits: Option<u32>, max_edit_ratio: Option<f64>) -> EditDistance {
        EditDistance {
            bounds: crate::tasks::preset("nli").unwrap().filters.edit,
            max_word_edits,
            max_edit_ratio,
        }
    }

    fn run(f: &EditDistance, ex: SourceExample, edited: &str) -> Candidate {
        let c = Candidate::new(&ex, "text", edited.into(), Relation::Flip, "x", "given");
        let mut batch = SourceBatch {
            example: Arc::new(ex),
            candidates: vec![c],
        };
        futures::executor::block_on(f.apply(&mut batch)).unwrap();
        batch.candidates.pop().unwrap()
    }

    #[test]
    fn the_levenshtein_caps_still_apply_when_set() {
        let ex = || example("A dog runs in a park.", "the man does not own a dog");
        let edited = "the man owns a big dog";
        // Two operations for the measure, four word edits for Levenshtein
        // (4 / 7 words = 0.57).
        let c = run(&filter(None, None), ex(), edited);
        assert_eq!(c.rejection, None);
        assert_eq!(c.scores.edit_ops, Some(2));
        assert_eq!(c.scores.word_edits, Some(4));
        let c = run(&filter(Some(4), Some(0.6)), ex(), edited);
        assert_eq!(c.rejection, None);
        let c = run(&filter(Some(3), None), ex(), edited);
        assert_eq!(c.rejection.unwrap().reason, "too_many_word_edits");
        let c = run(&filter(None, Some(0.5)), ex(), edited);
        assert_eq!(c.rejection.unwrap().reason, "edit_ratio_above_max");
    }

    #[test]
    fn an_unedited_premise_makes_a_rewritten_hypothesis_related() {
        // CAD rewrites whole hypotheses about the premise's scene.
        let premise = "A red dog jumps and catches a tennis ball in its mouth.";
        let c = run(
            &filter(None, None),
            example(premise, "a man eating popcorn"),
            "Someone threw a tennis ball to a dog.",
        );
        assert_eq!(c.rejection, None, "{:?}", c.rejection);
        // Another example's hypothesis shares nothing with this one.
        let c = run(
            &filter(None, None),
            example(premise, "a man eating popcorn"),
            "Two women are cooking dinner in a kitchen.",
        );
        assert_eq!(c.rejection.unwrap().reason, edit_measure::UNRELATED);
    }
}
