//! Exact dedup on the normalised edited example: the same edit twice for
//! one source, or the same edited example reached from two sources
//! (for NLI, the unedited premise is part of the key, so a hypothesis may
//! recur with different premises).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::disk::DiskChains;
use crate::record::{Candidate, SourceBatch};
use crate::text::normalize;

pub const STAGE: &str = "dedup";
/// The same normalised edit as an earlier candidate of the same source.
pub const WITHIN_SOURCE: &str = "duplicate_within_source";
/// The same normalised edited example as an earlier source's.
pub const ACROSS_SOURCES: &str = "duplicate_across_sources";

/// Memory an entry of the in-memory table takes (measured shape: a 24-byte
/// slot at hashbrown's load factor plus control bytes), for the spill
/// limit.
pub const BYTES_PER_ENTRY: usize = 48;

/// Remembers a 16-byte digest per surviving edit (not the text): the
/// newest in memory, the older ones (once the memory share is full) on
/// disk in a [`DiskChains`], so memory does not grow with the run.
#[derive(Default)]
pub struct ExactDedup {
    seen: HashMap<[u8; 16], u64>,
    /// Where full memory moves to, how many keys memory holds, and the
    /// disk index's filter size.
    spill: Option<(PathBuf, usize, usize)>,
    disk: Option<DiskChains>,
    /// Keys added since the last [`ExactDedup::take_new`], for the run state.
    new: Vec<([u8; 16], u64)>,
    /// The last checked source's passing candidates (index, key): they
    /// enter the index only once every later stage has accepted them.
    pending: Vec<(usize, [u8; 16])>,
    pending_seq: u64,
}

impl ExactDedup {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keep at most `share` bytes in memory (three quarters for the newest
    /// keys, a quarter for the disk index's filter); move the rest to
    /// `dir`.
    pub fn spill_to(mut self, dir: &Path, share: usize) -> Self {
        self.spill = Some((
            dir.to_path_buf(),
            share / 4 * 3 / BYTES_PER_ENTRY,
            share / 4,
        ));
        self
    }

    /// Whether part of the index is on disk.
    pub fn on_disk(&self) -> bool {
        self.disk.is_some()
    }

    /// Start from the keys of pairs already committed (a resumed run).
    pub fn restore(
        &mut self,
        keys: impl IntoIterator<Item = ([u8; 16], u64)>,
    ) -> std::io::Result<()> {
        for (k, seq) in keys {
            self.insert(k, seq)?;
        }
        Ok(())
    }

    /// Keys added since the last call.
    pub fn take_new(&mut self) -> Vec<([u8; 16], u64)> {
        std::mem::take(&mut self.new)
    }

    fn get(&self, key: &[u8; 16]) -> std::io::Result<Option<u64>> {
        if let Some(&seq) = self.seen.get(key) {
            return Ok(Some(seq));
        }
        let Some(disk) = &self.disk else {
            return Ok(None);
        };
        let mut ids = Vec::new();
        disk.find(0, Self::short(key), &mut ids)?;
        let mut payload = [0u8; 24];
        for id in ids {
            disk.payload(id, &mut payload)?;
            if payload[..16] == key[..] {
                return Ok(Some(u64::from_le_bytes(
                    payload[16..].try_into().expect("8"),
                )));
            }
        }
        Ok(None)
    }

    fn short(key: &[u8; 16]) -> u32 {
        u32::from_le_bytes(key[..4].try_into().expect("4 bytes"))
    }

    fn insert(&mut self, key: [u8; 16], seq: u64) -> std::io::Result<()> {
        if let Some((dir, max, filter)) = &self.spill
            && self.seen.len() >= *max
        {
            let disk = match &mut self.disk {
                Some(d) => d,
                None => self.disk.insert(DiskChains::create(dir, 1, 24, *filter)?),
            };
            let mut all: Vec<([u8; 16], u64)> =
                std::mem::take(&mut self.seen).into_iter().collect();
            all.sort_unstable_by_key(|(_, s)| *s);
            let keys: Vec<u32> = all.iter().map(|(k, _)| Self::short(k)).collect();
            disk.push_batch(all.len(), &keys, |i, buf| {
                buf.extend_from_slice(&all[i].0);
                buf.extend_from_slice(&all[i].1.to_le_bytes());
            })?;
        }
        self.seen.insert(key, seq);
        Ok(())
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

    /// Reject live candidates whose edit was already accepted. Those that
    /// pass are remembered only by [`ExactDedup::remember_accepted`], once
    /// the later stages (near-dedup) have decided: a pair turned down later
    /// must not make a later exact repeat its duplicate.
    pub fn apply(&mut self, batch: &mut SourceBatch) -> std::io::Result<()> {
        let example = batch.example.clone();
        self.check(example.seq, &mut batch.candidates, |f| example.context(f))
    }

    /// [`ExactDedup::apply`] for the candidates of the source at `seq`,
    /// with `context_of(edited_field)` giving the source's unedited context
    /// as the shards' `context` column holds it.
    pub fn check(
        &mut self,
        seq: u64,
        candidates: &mut [Candidate],
        context_of: impl Fn(&str) -> Option<String>,
    ) -> std::io::Result<()> {
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
            keys.push(Some(Self::key(state, &c.edited_field, &c.dedup_text())));
        }
        self.pending.clear();
        self.pending_seq = seq;
        for (i, (c, key)) in candidates.iter_mut().zip(keys).enumerate() {
            let Some(key) = key else { continue };
            if self.pending.iter().any(|(_, k)| *k == key) {
                c.reject(
                    STAGE,
                    WITHIN_SOURCE,
                    "same normalised edit as an earlier candidate of this source",
                );
                continue;
            }
            match self.get(&key)? {
                Some(first) if first == seq => c.reject(
                    STAGE,
                    WITHIN_SOURCE,
                    "same normalised edit as an earlier candidate of this source",
                ),
                Some(first) => c.reject(
                    STAGE,
                    ACROSS_SOURCES,
                    format!("same normalised edited example as source #{first}"),
                ),
                None => self.pending.push((i, key)),
            }
        }
        Ok(())
    }

    /// Remember the edits of the last checked source that every stage after
    /// this one accepted (`candidates` as they left the last stage).
    pub fn remember_accepted(&mut self, candidates: &[Candidate]) -> std::io::Result<()> {
        let seq = self.pending_seq;
        for (i, key) in std::mem::take(&mut self.pending) {
            if candidates.get(i).is_some_and(|c| !c.is_rejected()) {
                self.insert(key, seq)?;
                self.new.push((key, seq));
            }
        }
        Ok(())
    }
}
