//! Word-level edit distance between original and edit, with an absolute
//! and a relative bound. An edit identical to its original after
//! normalisation is a no-op and always rejected.

use futures::future::BoxFuture;

use super::Filter;
use crate::record::{Candidate, SourceBatch};
use crate::text::{word_edit_distance, words};

pub struct EditDistance {
    pub max_word_edits: u32,
    pub max_edit_ratio: f64,
}

impl EditDistance {
    pub fn check(&self, c: &mut Candidate) {
        let a = words(&c.original);
        let b = words(&c.edited);
        let d = word_edit_distance(&a, &b) as u32;
        let ratio = f64::from(d) / a.len().max(1) as f64;
        c.scores.word_edits = Some(d);
        c.scores.edit_ratio = Some(ratio);
        if d == 0 {
            c.reject(
                "edit_distance",
                "no_op",
                "identical to the original after normalisation",
            );
        } else if d > self.max_word_edits {
            c.reject(
                "edit_distance",
                "too_many_word_edits",
                format!("{d} word edits > {}", self.max_word_edits),
            );
        } else if ratio > self.max_edit_ratio {
            c.reject(
                "edit_distance",
                "edit_ratio_above_max",
                format!("edit ratio {ratio:.3} > {}", self.max_edit_ratio),
            );
        }
    }
}

impl Filter for EditDistance {
    fn stage(&self) -> &'static str {
        "edit_distance"
    }

    fn apply<'a>(&'a self, batch: &'a mut SourceBatch) -> BoxFuture<'a, Result<(), String>> {
        for c in batch.candidates.iter_mut().filter(|c| !c.is_rejected()) {
            self.check(c);
        }
        Box::pin(async { Ok(()) })
    }
}
