//! How far an edit may go; each task preset carries its defaults and the
//! edit-distance filter (`filter::edit_measure`) applies them.

use serde::{Deserialize, Serialize};

/// How large an edit may be, as a function of the field's length: a floor
/// for short texts and a rate for long ones, so a 12-word caption and a
/// 600-word review are both judged by what a person would call minimal.
/// The defaults per task (`tasks/mod.rs`) come from the distribution of
/// real contrast edits (`scripts/bench-quality` prints it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditBounds {
    /// Operations allowed in any field, however short.
    pub max_ops: u32,
    /// Further operations per 100 words of the field.
    pub ops_per_100_words: f64,
    /// Changed words allowed in any field, however short.
    pub max_changed_words: u32,
    /// Changed words as a share of the field's length, for long fields.
    pub max_changed_share: f64,
    /// Least share of the original's content words the edit must keep;
    /// below it the edit is an unrelated text.
    pub min_related_share: f64,
}

impl EditBounds {
    /// Operations allowed in a field of `words` words.
    pub fn allowed_ops(&self, words: usize) -> usize {
        let scaled = (words as f64 * self.ops_per_100_words / 100.0).ceil() as usize;
        (self.max_ops as usize).max(scaled)
    }

    /// Changed words allowed in a field of `words` words.
    pub fn allowed_changed_words(&self, words: usize) -> usize {
        let scaled = (words as f64 * self.max_changed_share).floor() as usize;
        (self.max_changed_words as usize).max(scaled)
    }

    /// A one-line problem with the bounds themselves, if any.
    pub fn problem(&self) -> Option<String> {
        let share_ok = |x: f64| (0.0..=1.0).contains(&x);
        if self.max_ops == 0 || self.max_changed_words == 0 {
            Some("max_ops and max_changed_words must be above 0 (0 rejects every edit)".into())
        } else if self.ops_per_100_words.is_nan() || self.ops_per_100_words < 0.0 {
            Some(format!(
                "ops_per_100_words must be 0 or more, got {}",
                self.ops_per_100_words
            ))
        } else if !share_ok(self.max_changed_share) || !share_ok(self.min_related_share) {
            Some(format!(
                "max_changed_share and min_related_share must be in [0, 1], got {} and {}",
                self.max_changed_share, self.min_related_share
            ))
        } else {
            None
        }
    }
}
