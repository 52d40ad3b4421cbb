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

use serde::{Deserialize, Serialize};

use super::disk::DiskChains;
use crate::record::{Candidate, SourceBatch};
use crate::text::words;

pub const STAGE: &str = "near_dedup";

const MERSENNE_61: u64 = (1 << 61) - 1;

/// Settings for near-duplicate dedup (`[dedup.near]`).
///
/// Defaults, chosen for short edits: word **3**-grams, because a 15-word
/// caption has 17 padded 5-grams and a one-word edit changes 5 of them —
/// with 5-grams nearly every short text looks unique, while 3-grams keep
/// resolution. **128** permutations as **16 bands × 8 rows**: a pair at
/// Jaccard 0.8 shares a bucket with probability 1 − (1 − 0.8⁸)¹⁶ ≈ 0.95,
/// at 0.85 ≈ 0.99; the estimated-Jaccard check then drops the candidates
/// below the threshold. Threshold **0.8** across the run. Whether an edit
/// collapsed back to its own original is the edit measure's question (a
/// no-op there is anything identical after normalisation), so
/// `original_threshold` is off by default: with padded 3-grams a one-word
/// substitution in an L-word text has Jaccard (L − 1)/(L + 5), so any
/// fixed threshold rejects real minimal edits of long texts (a review with
/// three phrase edits sits near 0.95). Set it (0.9 rejects near-copies of
/// texts up to about 55 words) to also reject edits that are merely close
/// to their original.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NearDedupConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_ngram")]
    pub ngram: usize,
    #[serde(default = "default_bands")]
    pub bands: usize,
    #[serde(default = "default_rows")]
    pub rows: usize,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Estimated Jaccard similarity at or above which two edited examples
    /// are near-duplicates.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Estimated Jaccard similarity to the original at or above which an
    /// edit has collapsed back to its source (off unless set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_threshold: Option<f64>,
    /// Earlier output folders whose accepted pairs new pairs must not
    /// repeat.
    #[serde(default)]
    pub against: Vec<PathBuf>,
}

fn yes() -> bool {
    true
}
fn default_ngram() -> usize {
    3
}
fn default_bands() -> usize {
    16
}
fn default_rows() -> usize {
    8
}
fn default_seed() -> u64 {
    1
}
fn default_threshold() -> f64 {
    0.8
}

impl Default for NearDedupConfig {
    fn default() -> Self {
        NearDedupConfig {
            enabled: true,
            ngram: default_ngram(),
            bands: default_bands(),
            rows: default_rows(),
            seed: default_seed(),
            threshold: default_threshold(),
            original_threshold: None,
            against: Vec::new(),
        }
    }
}

impl NearDedupConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.ngram == 0 || self.bands == 0 || self.rows == 0 {
            return Err("[dedup.near]: ngram, bands and rows must be at least 1".into());
        }
        if self.bands * self.rows > 1024 {
            return Err("[dedup.near]: bands × rows must be at most 1024".into());
        }
        for (name, v) in [
            ("threshold", Some(self.threshold)),
            ("original_threshold", self.original_threshold),
        ]
        .into_iter()
        .filter_map(|(n, v)| Some((n, v?)))
        {
            if !(0.0..=1.0).contains(&v) || v == 0.0 {
                return Err(format!("[dedup.near] {name} must be in (0, 1], got {v}"));
            }
        }
        Ok(())
    }
}

/// 64-bit FNV-1a, finished with a splitmix64 mix: stable across runs,
/// platforms and versions (std's hasher is not).
pub fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    mix64(h)
}

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The MinHash family: `bands × rows` seeded permutations.
#[derive(Debug, Clone)]
pub struct MinHasher {
    ngram: usize,
    bands: usize,
    rows: usize,
    a: Vec<u64>,
    b: Vec<u64>,
}

/// A text's signature: one minimum per permutation (`None` for a text
/// without words).
pub type Signature = Vec<u64>;

impl MinHasher {
    pub fn new(ngram: usize, bands: usize, rows: usize, seed: u64) -> Self {
        let n = bands * rows;
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix64(state) % MERSENNE_61
        };
        let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            a.push(next().max(1));
            b.push(next());
        }
        MinHasher {
            ngram,
            bands,
            rows,
            a,
            b,
        }
    }

    pub fn from_config(c: &NearDedupConfig) -> Self {
        Self::new(c.ngram, c.bands, c.rows, c.seed)
    }

    pub fn num_perm(&self) -> usize {
        self.a.len()
    }

    /// Hashes of the text's padded word n-grams.
    pub fn shingles(&self, text: &str) -> Vec<u64> {
        let w = words(text);
        if w.is_empty() {
            return Vec::new();
        }
        let pad = self.ngram - 1;
        let mut toks: Vec<&[u8]> = Vec::with_capacity(w.len() + 2 * pad);
        toks.extend(std::iter::repeat_n(&b"\x02"[..], pad));
        toks.extend(w.iter().map(|s| s.as_bytes()));
        toks.extend(std::iter::repeat_n(&b"\x03"[..], pad));
        let mut out: Vec<u64> = toks.windows(self.ngram).map(hash64).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The signature of a set of shingle hashes.
    pub fn signature_of(&self, shingles: &[u64]) -> Option<Signature> {
        if shingles.is_empty() {
            return None;
        }
        let mut sig = vec![u64::MAX; self.num_perm()];
        for &s in shingles {
            let x = s % MERSENNE_61;
            for (i, m) in sig.iter_mut().enumerate() {
                let v = mul_mod_61(self.a[i], x).wrapping_add(self.b[i]) % MERSENNE_61;
                if v < *m {
                    *m = v;
                }
            }
        }
        Some(sig)
    }

    pub fn signature(&self, text: &str) -> Option<Signature> {
        self.signature_of(&self.shingles(text))
    }

    /// One bucket key per band, scoped by `scope` (context and field).
    pub fn band_keys(&self, scope: u64, sig: &[u64]) -> Vec<u64> {
        (0..self.bands)
            .map(|band| {
                let mut h = mix64(scope ^ (band as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                for &v in &sig[band * self.rows..(band + 1) * self.rows] {
                    h = mix64(h ^ v);
                }
                h
            })
            .collect()
    }
}

fn mul_mod_61(a: u64, x: u64) -> u64 {
    let p = u128::from(a) * u128::from(x);
    let lo = (p & u128::from(MERSENNE_61)) as u64;
    let hi = (p >> 61) as u64;
    let s = lo + hi;
    if s >= MERSENNE_61 { s - MERSENNE_61 } else { s }
}

/// Signatures as kept in memory and in the run state: 16 bits a slot.
/// Unrelated slots then agree by chance with probability 2⁻¹⁶, which the
/// estimate corrects for (Li & König's b-bit minwise hashing).
pub fn compact(sig: &[u64]) -> Vec<u16> {
    sig.iter().map(|&v| (mix64(v) & 0xffff) as u16).collect()
}

/// Estimated Jaccard similarity of two compact signatures.
pub fn estimate(a: &[u16], b: &[u16]) -> f64 {
    let agree = a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len().max(1) as f64;
    let chance = 1.0 / 65536.0;
    ((agree - chance) / (1.0 - chance)).clamp(0.0, 1.0)
}

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
/// (origin and pair 16 B, signature 256 B, folded band keys and chain links
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

    /// Remember the accepted pairs of earlier output folders. Call before
    /// [`NearDedup::restore`] and before any batch.
    pub fn load_earlier(&mut self) -> Result<usize, String> {
        let mut n = 0;
        for (i, dir) in self.config.against.clone().iter().enumerate() {
            for p in read_accepted(dir)? {
                let Some(sig) = self.hasher.signature(&p.text) else {
                    continue;
                };
                let bands = self.hasher.band_keys(
                    scope(p.context.as_deref(), &p.field, p.edited_label.as_deref()),
                    &sig,
                );
                self.insert(
                    Entry {
                        origin: Origin::Earlier(i),
                        pair: pair_bits(&p.pair_id),
                        bands,
                        sig: compact(&sig),
                    },
                    false,
                )
                .map_err(|e| format!("near-dedup index: {e}"))?;
                n += 1;
            }
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
    /// origin, pair bits and estimated Jaccard similarity. Entries on disk
    /// are older than those in memory, so disk candidates come first.
    fn find(&self, bands: &[u64], sig: &[u16]) -> std::io::Result<Option<(Origin, u64, f64)>> {
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
            let j = estimate(&other, sig);
            if j >= self.config.threshold {
                let word = |at: usize| u64::from_le_bytes(buf[at..at + 8].try_into().expect("8"));
                return Ok(Some((origin_of(word(0)), word(8), j)));
            }
        }
        for &i in &newer {
            let i = i as usize;
            let j = estimate(&m.sigs[i * perm..(i + 1) * perm], sig);
            if j >= self.config.threshold {
                let (o, p) = m.kept[i];
                return Ok(Some((origin_of(o), p, j)));
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
            let Some(sig) = self.hasher.signature(&c.dedup_text()) else {
                continue;
            };
            let small = compact(&sig);
            if let Some(t) = self.config.original_threshold
                && c.edited_context.is_none()
                && let Some(o) = originals
                    .entry(c.edited_field.clone())
                    .or_insert_with(|| self.hasher.signature(&c.original).map(|s| compact(&s)))
            {
                let j = estimate(o, &small);
                if j >= t {
                    c.reject(
                        STAGE,
                        "near_duplicate_of_original",
                        format!("estimated Jaccard {j:.2} with the original ≥ {t}"),
                    );
                    continue;
                }
            }
            let bands = self.hasher.band_keys(scope_key, &sig);
            match self.find(&bands, &small)? {
                Some((origin, pair, j)) => {
                    reject_as_duplicate(c, &origin, pair, j, seq, &self.config)
                }
                None => self.insert(
                    Entry {
                        origin: Origin::Run(seq),
                        pair: pair_bits(&c.pair_id),
                        bands,
                        sig: small,
                    },
                    true,
                )?,
            }
        }
        Ok(())
    }
}

fn reject_as_duplicate(
    c: &mut Candidate,
    origin: &Origin,
    pair: u64,
    j: f64,
    seq: u64,
    config: &NearDedupConfig,
) {
    let (reason, detail) = match origin {
        Origin::Run(s) if *s == seq => (
            "near_duplicate_within_source",
            format!(
                "estimated Jaccard {j:.2} with pair {:016x} of this source",
                pair
            ),
        ),
        Origin::Run(s) => (
            "near_duplicate_across_sources",
            format!(
                "estimated Jaccard {j:.2} with pair {:016x} of source #{s}",
                pair
            ),
        ),
        Origin::Earlier(i) => (
            "near_duplicate_of_earlier_output",
            format!(
                "estimated Jaccard {j:.2} with pair {:016x} in `{}`",
                pair,
                config.against[*i].display()
            ),
        ),
    };
    c.reject(STAGE, reason, detail);
}

/// An accepted pair of an earlier output folder, as near-dedup compares it.
pub struct EarlierPair {
    pub pair_id: String,
    /// The edit, and its edited context when it has one.
    pub text: String,
    pub context: Option<String>,
    pub field: String,
    pub edited_label: Option<String>,
}

/// Every accepted pair of an earlier output folder, in shard order.
pub fn read_accepted(dir: &Path) -> Result<Vec<EarlierPair>, String> {
    let manifest = crate::sink::Manifest::read(dir).map_err(|e| {
        format!(
            "--against `{}`: not a foil output folder (no readable manifest.json: {e})",
            dir.display()
        )
    })?;
    let frames = crate::sink::shards::read_shards(dir, &manifest.shards)
        .map_err(|e| format!("--against `{}`: reading shards: {e}", dir.display()))?;
    let mut out = Vec::new();
    for df in frames {
        let col = |name: &str| -> Result<Vec<Option<String>>, String> {
            // Folders written before a column existed lack it: all missing.
            let Ok(c) = df.column(name) else {
                return Ok(vec![None; df.height()]);
            };
            let s = c
                .str()
                .map_err(|e| format!("--against `{}`: column `{name}`: {e}", dir.display()))?;
            Ok(s.iter().map(|v| v.map(str::to_string)).collect())
        };
        let (ids, edited, context, field) = (
            col("pair_id")?,
            col("edited")?,
            col("context")?,
            col("edited_field")?,
        );
        let (edited_context, label) = (col("edited_context")?, col("edited_label")?);
        for i in 0..ids.len() {
            let edited = edited[i].clone().unwrap_or_default();
            out.push(EarlierPair {
                pair_id: ids[i].clone().unwrap_or_default(),
                text: match &edited_context[i] {
                    Some(ctx) => format!("{edited}\n{ctx}"),
                    None => edited,
                },
                context: context[i].clone(),
                field: field[i].clone().unwrap_or_else(|| "text".into()),
                edited_label: label[i].clone(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_seeded_and_stable() {
        let h = MinHasher::new(3, 16, 8, 1);
        let a = h.signature("a man slices bread on a wooden board").unwrap();
        assert_eq!(
            a,
            h.signature("A man slices bread, on a wooden board.")
                .unwrap()
        );
        let other_seed = MinHasher::new(3, 16, 8, 2);
        assert_ne!(
            a,
            other_seed
                .signature("a man slices bread on a wooden board")
                .unwrap()
        );
        assert!(h.signature("  ...  ").is_none());
    }

    #[test]
    fn short_texts_still_have_shingles() {
        let h = MinHasher::new(5, 4, 4, 1);
        assert!(!h.shingles("hello").is_empty());
        assert_ne!(h.shingles("hello"), h.shingles("goodbye"));
    }

    #[test]
    fn one_word_edit_of_a_short_text_is_not_the_original() {
        let c = NearDedupConfig::default();
        let h = MinHasher::from_config(&c);
        let o = compact(
            &h.signature("a man slices bread on a wooden board in the kitchen")
                .unwrap(),
        );
        let e = compact(
            &h.signature("a man slices cheese on a wooden board in the kitchen")
                .unwrap(),
        );
        // At the documented 0.9, a one-word edit of a 10-word text is not a
        // near-copy of its original.
        assert!(estimate(&o, &e) < 0.9, "{}", estimate(&o, &e));
        assert_eq!(estimate(&o, &o), 1.0);
    }

    #[test]
    fn band_keys_depend_on_scope() {
        let h = MinHasher::new(3, 16, 8, 1);
        let s = h.signature("the cat sat").unwrap();
        assert_ne!(h.band_keys(1, &s), h.band_keys(2, &s));
        assert_eq!(h.band_keys(1, &s), h.band_keys(1, &s));
    }
}
