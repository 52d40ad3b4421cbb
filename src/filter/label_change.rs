//! The label-change check: a `flip` edit whose new label (or answer) is
//! the original one after normalisation did not flip anything — MEQ's rule
//! that the new answer must differ. Edits with an unknown new label pass:
//! verification decides those.

use futures::future::BoxFuture;

use super::Filter;
use crate::record::{Relation, SourceBatch};
use crate::text::same_label;

pub struct LabelChange;

pub const STAGE: &str = "label_change";
/// A flip whose new label is the original one.
pub const LABEL_UNCHANGED: &str = "label_unchanged";

impl Filter for LabelChange {
    fn stage(&self) -> &'static str {
        STAGE
    }

    fn apply<'a>(
        &'a self,
        batch: &'a mut SourceBatch,
    ) -> BoxFuture<'a, Result<(), crate::record::StageError>> {
        for c in batch.candidates.iter_mut().filter(|c| !c.is_rejected()) {
            if c.relation != Relation::Flip {
                continue;
            }
            if let (Some(a), Some(b)) = (&c.original_label, &c.edited_label)
                && same_label(a, b)
            {
                let detail = format!("new label `{b}` is the original `{a}`");
                c.reject(STAGE, LABEL_UNCHANGED, detail);
            }
        }
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Candidate, SourceExample};
    use std::sync::Arc;

    #[test]
    fn same_answer_after_normalisation_is_rejected() {
        let ex = SourceExample::with_fields(&[
            ("text", "Who wrote Hamlet?"),
            ("label", "William Shakespeare"),
        ]);
        let mk = |edited: &str, label: Option<&str>| {
            let mut c = Candidate::new(
                &ex,
                "text",
                edited.into(),
                Relation::Flip,
                "entity",
                "llm:m",
            );
            c.edited_label = label.map(str::to_string);
            c
        };
        let mut batch = SourceBatch {
            example: Arc::new(ex.clone()),
            candidates: vec![
                mk("Who wrote Macbeth?", Some("william shakespeare.")),
                mk("Who wrote Ulysses?", Some("James Joyce")),
                mk("Who wrote Emma?", None),
            ],
        };
        futures::executor::block_on(LabelChange.apply(&mut batch)).unwrap();
        let reasons: Vec<Option<&str>> = batch
            .candidates
            .iter()
            .map(|c| c.rejection.as_ref().map(|r| r.reason.as_str()))
            .collect();
        assert_eq!(reasons, vec![Some("label_unchanged"), None, None]);
    }
}
