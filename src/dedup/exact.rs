//! Exact dedup on the normalised edited example: the same edit twice for
//! one source, or the same edited example reached from two sources
//! (for NLI, the unedited premise is part of the key, so a hypothesis may
//! recur with different premises).

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::record::{Candidate, SourceBatch};
use crate::text::normalize;

pub const STAGE: &str = "dedup";

/// Remembers a 16-byte digest per surviving edit (not the text), so memory
/// stays small on large runs.
#[derive(Default)]
pub struct ExactDedup {
    seen: HashMap<[u8; 16], u64>,
    /// Keys added since the last [`ExactDedup::take_new`], for the run state.
    new: Vec<([u8; 16], u64)>,
}

impl ExactDedup {
    pub fn new() -> Self {
        Self::default()
    }

    /// Start from the keys of pairs already committed (a resumed run).
    pub fn restore(&mut self, keys: impl IntoIterator<Item = ([u8; 16], u64)>) {
        self.seen.extend(keys);
    }

    /// Keys added since the last call.
    pub fn take_new(&mut self) -> Vec<([u8; 16], u64)> {
        std::mem::take(&mut self.new)
    }

    /// The hash state of a source's unedited context (an NLI premise, a
    /// QA context): the part of every candidate's key its source decides,
    /// computed once per source.
    fn context(context: Option<&str>) -> Sha256 {
        let mut h = Sha256::new();
        if let Some(c) = context {
            h.update(normalize(c).as_bytes());
        }
        h.update([0x1e]);
        h
    }

    fn key(context: &Sha256, edited_field: &str, edited: &str) -> [u8; 16] {
        let mut h = context.clone();
        h.update(edited_field.as_bytes());
        h.update([0x1f]);
        h.update(normalize(edited).as_bytes());
        let d = h.finalize();
        let mut k = [0u8; 16];
        k.copy_from_slice(&d[..16]);
        k
    }

    /// Reject live candidates whose edit was already accepted.
    pub fn apply(&mut self, batch: &mut SourceBatch) {
        let example = batch.example.clone();
        self.check(example.seq, &mut batch.candidates, |f| example.context(f));
    }

    /// [`ExactDedup::apply`] for the candidates of the source at `seq`,
    /// with `context_of(edited_field)` giving the source's unedited context
    /// as the shards' `context` column holds it.
    pub fn check(
        &mut self,
        seq: u64,
        candidates: &mut [Candidate],
        context_of: impl Fn(&str) -> Option<String>,
    ) {
        // Every candidate of a task edits the same field; keep the context
        // state of the last field seen.
        let mut context: Option<(String, Sha256)> = None;
        let mut keys: Vec<Option<[u8; 16]>> = Vec::with_capacity(candidates.len());
        for c in candidates.iter() {
            if c.is_rejected() {
                keys.push(None);
                continue;
            }
            if context.as_ref().is_none_or(|(f, _)| *f != c.edited_field) {
                let state = Self::context(context_of(&c.edited_field).as_deref());
                context = Some((c.edited_field.clone(), state));
            }
            let (_, state) = context.as_ref().expect("set above");
            keys.push(Some(Self::key(state, &c.edited_field, &c.edited)));
        }
        for (c, key) in candidates.iter_mut().zip(keys) {
            let Some(key) = key else { continue };
            match self.seen.get(&key) {
                Some(&first) if first == seq => c.reject(
                    STAGE,
                    "duplicate_within_source",
                    "same normalised edit as an earlier candidate of this source",
                ),
                Some(&first) => c.reject(
                    STAGE,
                    "duplicate_across_sources",
                    format!("same normalised edited example as source #{first}"),
                ),
                None => {
                    self.seen.insert(key, seq);
                    self.new.push((key, seq));
                }
            }
        }
    }
}
