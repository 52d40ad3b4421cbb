//! MinHash over word n-grams: seeded permutations modulo the Mersenne
//! prime 2^61 − 1, signatures, their 16-bit compact form and the Jaccard
//! estimate two compact signatures give; and the exact shingle set that a
//! short text keeps in the signature's room instead, so the decision on a
//! candidate LSH found is the true Jaccard, not an estimate.

use super::near::NearDedupConfig;
use crate::text::{hash64, mix64, words};

const MERSENNE_61: u64 = (1 << 61) - 1;

/// The MinHash family: `bands × rows` seeded permutations.
#[derive(Debug, Clone)]
pub struct MinHasher {
    ngram: usize,
    pub(crate) bands: usize,
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

/// Marks a payload that holds the exact shingle set, not a signature. Two
/// slots, so a signature begins with it by chance once in 2³² entries (and
/// then must also hold a count that fits).
const EXACT_TAG: [u16; 2] = [0xE8AC, 0x5E75];

/// Shingles a payload of `slots` u16 slots holds exactly: tag, count, then
/// two slots a 32-bit hash (62 at the default 128 permutations, so texts up
/// to 60 words).
fn exact_room(slots: usize) -> usize {
    slots.saturating_sub(3) / 2
}

/// A text's shingle set as 32-bit hashes, sorted and distinct.
pub fn shingle_set(shingles: &[u64]) -> Vec<u32> {
    let mut set: Vec<u32> = shingles.iter().map(|&h| (h ^ (h >> 32)) as u32).collect();
    set.sort_unstable();
    set.dedup();
    set
}

/// What an index entry keeps of a text, one u16 slot per permutation: the
/// exact shingle set when it fits, else the compact signature.
pub fn payload(sig: &[u64], set: &[u32]) -> Vec<u16> {
    if set.len() > exact_room(sig.len()) {
        return compact(sig);
    }
    let mut out = Vec::with_capacity(sig.len());
    out.extend(EXACT_TAG);
    out.push(set.len() as u16);
    for &h in set {
        out.push(h as u16);
        out.push((h >> 16) as u16);
    }
    out.resize(sig.len(), 0);
    out
}

/// The shingle set a payload holds, if it holds one.
fn exact_set(p: &[u16]) -> Option<impl Iterator<Item = u32> + '_> {
    let n = usize::from(*p.get(2)?);
    if p[..2] != EXACT_TAG || n > exact_room(p.len()) {
        return None;
    }
    Some(
        p[3..3 + 2 * n]
            .chunks_exact(2)
            .map(|c| u32::from(c[0]) | (u32::from(c[1]) << 16)),
    )
}

/// A text to compare with the index: its compact signature and its
/// shingle set.
pub struct Probe {
    pub compact: Vec<u16>,
    pub set: Vec<u32>,
}

/// Jaccard similarity of a stored payload and a probe, and whether it is
/// exact: exact when the payload holds its shingle set, else estimated from
/// the two signatures.
pub fn similarity(stored: &[u16], probe: &Probe) -> (f64, bool) {
    let Some(set) = exact_set(stored) else {
        return (estimate(stored, &probe.compact), false);
    };
    // Both sorted and distinct: one merge pass.
    let b = &probe.set;
    let (mut n, mut inter, mut k) = (0usize, 0usize, 0usize);
    for x in set {
        while k < b.len() && b[k] < x {
            k += 1;
        }
        if k < b.len() && b[k] == x {
            inter += 1;
        }
        n += 1;
    }
    let union = n + b.len() - inter;
    (
        if union == 0 {
            1.0
        } else {
            inter as f64 / union as f64
        },
        true,
    )
}
