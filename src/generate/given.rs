//! Pairs mode: the input already holds the edit (made by people or another
//! tool); it becomes a candidate as it is and goes through the same checks.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Generated, Generator};
use crate::record::{Candidate, Relation, SourceExample};
use crate::tasks::TaskPreset;

pub struct GivenEdits {
    task: &'static TaskPreset,
}

impl GivenEdits {
    pub fn new(task: &'static TaskPreset) -> Self {
        GivenEdits { task }
    }
}

impl Generator for GivenEdits {
    fn describe(&self) -> String {
        "given".to_string()
    }

    fn generate(&self, example: Arc<SourceExample>) -> BoxFuture<'_, Generated> {
        let mut out = Generated::default();
        if let Some(given) = &example.given {
            let original_label = example.field("label");
            // Equal labels on both sides mean the edit was meant to keep the
            // label: an invariance probe.
            let relation = match (original_label, given.edited_label.as_deref()) {
                (Some(a), Some(b)) if crate::text::same_label(a, b) => Relation::Invariant,
                _ => Relation::Flip,
            };
            let mut c = Candidate::new(
                &example,
                self.task.edit_field,
                given.edited.clone(),
                relation,
                given
                    .edit_type
                    .clone()
                    .unwrap_or_else(|| "unspecified".to_string()),
                "given",
            )
            .with_context_edits(
                &example,
                given
                    .fields
                    .iter()
                    .filter(|(f, v)| example.field(f) != Some(v.as_str()))
                    .map(|(f, v)| (f.clone(), v.clone()))
                    .collect(),
            );
            c.edited_label = given.edited_label.clone();
            out.candidates.push(c);
        }
        Box::pin(async move { out })
    }
}
