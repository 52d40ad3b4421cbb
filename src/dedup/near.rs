//! Near-duplicate dedup with MinHash LSH over word n-grams.
//!
//! Each edited example becomes a set of word n-gram shingles (lower-cased,
//! punctuation trimmed, padded with `n - 1` boundary markers at each end so
//! a change at the first or last word touches as many shingles as one in
//! the middle, and a text shorter than `n` still has shingles). A
//! signature holds the minimum of `bands × rows` seeded universal hashes
//! `(a·x + b) mod (2⁶¹ − 1)` over the shingles, as in Broder's MinHash and
//! datasketch. LSH puts a signature in one bucket per band (the band's
//! `rows` minima hashed together, with the example's unedited context and
//! edited field, so an NLI hypothesis is only compared with hypotheses of
//! the same premise). Texts that share a bucket are candidates; a
//! candidate counts as a duplicate only when the signatures' estimated
//! Jaccard similarity reaches the threshold, which keeps precision high
//! while the banding keeps recall high above it.
//!
//! The sink calls [`NearDedup::apply`] in source order, so the survivor of
//! a group of near-duplicates is the first in input order whatever the
//! concurrency. Entries are kept compactly (16-bit signature slots, band
//! keys) and committed with every checkpoint, so a resumed run knows every
//! pair accepted before the crash. Pairs of earlier output folders
//! (`against`) are loaded first and block their near-duplicates too.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::path::{Path, PathBuf};

use super::disk::DiskChains;
pub use super::earlier::EarlierPair;
pub use super::minhash::{
    MinHasher, Probe, Signature, compact, estimate, payload, shingle_set, similarity,
};
use crate::record::{Candidate, SourceBatch};
pub use crate::text::hash64;

pub const STAGE: &str = "near_dedup";
/// Collapsed back to its own original (`original_threshold`).
pub const OF_ORIGINAL: &str = "near_duplicate_of_original";
/// Close to an earlier candidate of the same source.
pub const WITHIN_SOURCE: &str = "near_duplicate_within_source";
/// Close to an earlier source's pair.
pub const ACROSS_SOURCES: &str = "near_duplicate_across_sources";
/// Close to a pair in an `against` folder.
pub const OF_EARLIER_OUTPUT: &str = "near_duplicate_of_earlier_output";

pub use crate::config::NearDedupConfig;

/// Where a remembered pair came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// Accepted in this run, from the source at this position.
    Run(u64),
    /// An accepted pair of an earlier output folder (index into `against`).
    Earlier(usize),
}

/// One remembered pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub origin: Origin,
    /// The pair id's 64 bits (pair ids are 16 hex digits).
    pub pair: u64,
    pub bands: Vec<u64>,
    pub sig: Vec<u16>,
}

/// Scope of a pair's buckets: the unedited context, the edited field and
/// the edited label, as the shards store them (`context`, `edited_field`,
/// `edited_label` columns). Two nearly equal edits that carry different
/// labels are a contrast, not a duplicate (a contrast set's several edits
/// of one original: "… someone who is sitting …" is a contradiction,
/// "… someone who is …" neutral).
pub fn scope(context: Option<&str>, edited_field: &str, edited_label: Option<&str>) -> u64 {
    let ctx = context.map(crate::text::normalize).unwrap_or_default();
    let label = edited_label.map(crate::text::normalize).unwrap_or_default();
    hash64(&[ctx.as_bytes(), edited_field.as_bytes(), label.as_bytes()])
}

fn pair_bits(pair_id: &str) -> u64 {
    u64::from_str_radix(pair_id, 16).unwrap_or_else(|_| hash64(&[pair_id.as_bytes()]))
}

/// [`Origin`] as one number: a run's source position, or an earlier
/// folder's index with the top bit set.
const EARLIER: u64 = 1 << 63;

fn origin_code(o: &Origin) -> u64 {
    match o {
        Origin::Run(s) => *s,
        Origin::Earlier(i) => EARLIER | *i as u64,
    }
}

fn origin_of(code: u64) -> Origin {
    if code & EARLIER != 0 {
        Origin::Earlier((code & !EARLIER) as usize)
    } else {
        Origin::Run(code)
    }
}

/// No further entry in a bucket chain.
const NONE: u32 = u32::MAX;

/// A bucket key as the index holds it.
fn fold(k: u64) -> u32 {
    (k ^ (k >> 32)) as u32
}

/// Bucket keys are already well-mixed hashes: use them as they are instead
/// of hashing them again with SipHash.
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        // Spread the 32-bit key over the high bits hashbrown uses too.
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n);
    }
}

/// Memory an in-memory entry takes at the default 16 × 8 permutations
/// (origin and pair 16 B, signature or shingle set 256 B, folded band keys and chain links
/// 128 B, bucket heads about 200 B), for the spill limit.
pub const BYTES_PER_ENTRY: usize = 700;

/// The in-memory index: flat arrays, one slot per entry (or per entry and
/// band).
#[derive(Default)]
struct Memory {
    /// Origin code and pair bits per entry.
    kept: Vec<(u64, u64)>,
    /// Compact signatures, `num_perm` slots per entry.
    sigs: Vec<u16>,
    /// Folded band keys, `bands` per entry (to move the index to disk).
    keys: Vec<u32>,
    /// Bucket key (folded to 32 bits) → the newest entry in that bucket.
    /// A fold collision only adds candidates, which the estimated-Jaccard
    /// check then turns away; it halves the table (the largest part of the
    /// index at millions of pairs).
    heads: HashMap<u32, u32, BuildHasherDefault<KeyHasher>>,
    /// `next[entry × bands + band]`: the next older entry in the same
    /// bucket of that band. Chains instead of a list per bucket: about a
    /// quarter of the memory (measured: 1M pairs went from 2.5 GiB peak).
    next: Vec<u32>,
}

pub struct NearDedup {
    config: NearDedupConfig,
    hasher: MinHasher,
    /// The newest entries.
    memory: Memory,
    /// Where full memory moves to, how many entries memory holds, and the
    /// disk index's filter size.
    spill: Option<(PathBuf, usize, usize)>,
    /// The older entries, once memory first filled up.
    disk: Option<DiskChains>,
    /// Entries added since the last [`NearDedup::take_new`], with their
    /// band keys, for the run state.
    pending: Vec<Entry>,
}

impl NearDedup {
    pub fn new(config: NearDedupConfig) -> Self {
        NearDedup {
            hasher: MinHasher::from_config(&config),
            config,
            memory: Memory::default(),
            spill: None,
            disk: None,
            pending: Vec::new(),
        }
    }

    /// Keep at most `share` bytes in memory (three quarters for the newest
    /// entries, a quarter for the disk index's filter); move the rest to
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

    fn on_disk_len(&self) -> usize {
        self.disk.as_ref().map_or(0, |d| d.len() as usize)
    }

    pub fn len(&self) -> usize {
        self.on_disk_len() + self.memory.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn payload_len(&self) -> usize {
        16 + 2 * self.hasher.num_perm()
    }

    /// Move every in-memory entry to the disk index, oldest first.
    fn move_to_disk(&mut self, dir: &Path, filter: usize) -> std::io::Result<()> {
        let (width, perm) = (self.hasher.bands, self.hasher.num_perm());
        let payload_len = self.payload_len();
        let disk = match &mut self.disk {
            Some(d) => d,
            None => self
                .disk
                .insert(DiskChains::create(dir, width, payload_len, filter)?),
        };
        let m = std::mem::take(&mut self.memory);
        disk.push_batch(m.kept.len(), &m.keys, |i, buf| {
            let (origin, pair) = m.kept[i];
            buf.extend_from_slice(&origin.to_le_bytes());
            buf.extend_from_slice(&pair.to_le_bytes());
            buf.extend(
                m.sigs[i * perm..(i + 1) * perm]
                    .iter()
                    .flat_map(|v| v.to_le_bytes()),
            );
        })
    }

    fn insert(&mut self, entry: Entry, persist: bool) -> std::io::Result<()> {
        if let Some((dir, max, filter)) = self.spill.clone()
            && self.memory.kept.len() >= max
        {
            self.move_to_disk(&dir, filter)?;
        }
        let m = &mut self.memory;
        let idx = m.kept.len() as u32;
        let first = m.next.len();
        for (band, &k) in entry.bands.iter().enumerate() {
            let k = fold(k);
            let older = m.heads.insert(k, idx).unwrap_or(NONE);
            // Two bands of this entry with one folded key: link past the
            // entry itself, as the earlier band did.
            let link = if older == idx {
                let b = m.keys[first..first + band]
                    .iter()
                    .position(|&e| e == k)
                    .expect("an earlier band");
                m.next[first + b]
            } else {
                older
            };
            m.next.push(link);
            m.keys.push(k);
        }
        m.kept.push((origin_code(&entry.origin), entry.pair));
        m.sigs.extend_from_slice(&entry.sig);
        if persist {
            self.pending.push(entry);
        }
        Ok(())
    }

    /// The earlier output folders new pairs must not repeat.
    pub fn against(&self) -> &[std::path::PathBuf] {
        &self.config.against
    }

    /// Remember the accepted pairs of the `index`-th earlier output folder
    /// (read by `sink::earlier`); how many. Call before
    /// [`NearDedup::restore`] and before any batch.
    pub fn remember_earlier(
        &mut self,
        index: usize,
        pairs: Vec<EarlierPair>,
    ) -> std::io::Result<usize> {
        let mut n = 0;
        for p in pairs {
            let shingles = self.hasher.shingles(&p.text);
            let Some(sig) = self.hasher.signature_of(&shingles) else {
                continue;
            };
            let bands = self.hasher.band_keys(
                scope(p.context.as_deref(), &p.field, p.edited_label.as_deref()),
                &sig,
            );
            self.insert(
                Entry {
                    origin: Origin::Earlier(index),
                    pair: pair_bits(&p.pair_id),
                    bands,
                    sig: payload(&sig, &shingle_set(&shingles)),
                },
                false,
            )?;
            n += 1;
        }
        Ok(n)
    }

    /// Start from the entries of pairs already committed (a resumed run).
    pub fn restore(&mut self, entries: impl IntoIterator<Item = Entry>) -> std::io::Result<()> {
        for e in entries {
            self.insert(e, false)?;
        }
        Ok(())
    }

    /// Entries added since the last call, for the run state.
    pub fn take_new(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.pending)
    }

    /// The first (oldest) remembered entry at or above the threshold: its
    /// origin, pair bits and Jaccard similarity (and whether that is exact
    /// or estimated). Entries on disk are older than those in memory, so
    /// disk candidates come first.
    fn find(&self, bands: &[u64], probe: &Probe) -> std::io::Result<Option<Found>> {
        let width = self.hasher.bands;
        let perm = self.hasher.num_perm();
        let mut older: Vec<u32> = Vec::new();
        if let Some(disk) = &self.disk {
            for (band, k) in bands.iter().enumerate() {
                disk.find(band, fold(*k), &mut older)?;
            }
            older.sort_unstable();
            older.dedup();
        }
        let m = &self.memory;
        let mut newer: Vec<u32> = Vec::new();
        for (band, k) in bands.iter().enumerate() {
            let mut i = m.heads.get(&fold(*k)).copied().unwrap_or(NONE);
            while i != NONE {
                newer.push(i);
                i = m.next[i as usize * width + band];
            }
        }
        newer.sort_unstable();
        newer.dedup();
        let mut buf = vec![0u8; self.payload_len()];
        let mut other = vec![0u16; perm];
        for &i in &older {
            let disk = self.disk.as_ref().expect("candidates on disk");
            disk.payload(i, &mut buf)?;
            for (o, b) in other.iter_mut().zip(buf[16..].chunks_exact(2)) {
                *o = u16::from_le_bytes([b[0], b[1]]);
            }
            let (j, exact) = similarity(&other, probe);
            if j >= self.config.threshold {
                let word = |at: usize| u64::from_le_bytes(buf[at..at + 8].try_into().expect("8"));
                return Ok(Some((origin_of(word(0)), word(8), j, exact)));
            }
        }
        for &i in &newer {
            let i = i as usize;
            let (j, exact) = similarity(&m.sigs[i * perm..(i + 1) * perm], probe);
            if j >= self.config.threshold {
                let (o, p) = m.kept[i];
                return Ok(Some((origin_of(o), p, j, exact)));
            }
        }
        Ok(None)
    }

    /// Reject live candidates that collapse back to their original or
    /// repeat a pair already accepted (in this run or an earlier folder);
    /// remember the others.
    pub fn apply(&mut self, batch: &mut SourceBatch) -> std::io::Result<()> {
        let example = batch.example.clone();
        self.check(example.seq, &mut batch.candidates, |f| example.context(f))
    }

    /// [`NearDedup::apply`] for the candidates of the source at `seq`,
    /// with `context_of(edited_field)` giving its unedited context.
    pub fn check(
        &mut self,
        seq: u64,
        candidates: &mut [Candidate],
        context_of: impl Fn(&str) -> Option<String>,
    ) -> std::io::Result<()> {
        let mut originals: HashMap<String, Option<Vec<u16>>> = HashMap::new();
        let mut scopes: HashMap<(String, Option<String>), u64> = HashMap::new();
        for c in candidates.iter_mut() {
            if c.is_rejected() {
                continue;
            }
            let scope_key = *scopes
                .entry((c.edited_field.clone(), c.edited_label.clone()))
                .or_insert_with(|| {
                    scope(
                        context_of(&c.edited_field).as_deref(),
                        &c.edited_field,
                        c.edited_label.as_deref(),
                    )
                });
            let shingles = self.hasher.shingles(&c.dedup_text());
            let Some(sig) = self.hasher.signature_of(&shingles) else {
                continue;
            };
            let probe = Probe {
                compact: compact(&sig),
                set: shingle_set(&shingles),
            };
            if let Some(t) = self.config.original_threshold
                && c.edited_context.is_none()
                && let Some(o) = originals.entry(c.edited_field.clone()).or_insert_with(|| {
                    let shingles = self.hasher.shingles(&c.original);
                    let sig = self.hasher.signature_of(&shingles)?;
                    Some(payload(&sig, &shingle_set(&shingles)))
                })
            {
                let (j, exact) = similarity(o, &probe);
                if j >= t {
                    c.reject(
                        STAGE,
                        OF_ORIGINAL,
                        format!("{} {j:.2} with the original ≥ {t}", jaccard_words(exact)),
                    );
                    continue;
                }
            }
            let bands = self.hasher.band_keys(scope_key, &sig);
            match self.find(&bands, &probe)? {
                Some(found) => reject_as_duplicate(c, found, seq, &self.config),
                None => self.insert(
                    Entry {
                        origin: Origin::Run(seq),
                        pair: pair_bits(&c.pair_id),
                        bands,
                        sig: payload(&sig, &probe.set),
                    },
                    true,
                )?,
            }
        }
        Ok(())
    }
}

/// A remembered entry a candidate repeats: origin, pair bits, Jaccard
/// similarity and whether it is exact.
type Found = (Origin, u64, f64, bool);

fn jaccard_words(exact: bool) -> &'static str {
    if exact {
        "Jaccard"
    } else {
        "estimated Jaccard"
    }
}

fn reject_as_duplicate(c: &mut Candidate, found: Found, seq: u64, config: &NearDedupConfig) {
    let (origin, pair, j, exact) = found;
    let jw = jaccard_words(exact);
    let (reason, detail) = match &origin {
        Origin::Run(s) if *s == seq => (
            WITHIN_SOURCE,
            format!("{jw} {j:.2} with pair {:016x} of this source", pair),
        ),
        Origin::Run(s) => (
            ACROSS_SOURCES,
            format!("{jw} {j:.2} with pair {:016x} of source #{s}", pair),
        ),
        Origin::Earlier(i) => (
            OF_EARLIER_OUTPUT,
            format!(
                "{jw} {j:.2} with pair {:016x} in `{}`",
                pair,
                config.against[*i].display()
            ),
        ),
    };
    c.reject(STAGE, reason, detail);
}

#[cfg(test)]
#[path = "near_tests.rs"]
mod tests;
