//! MinHash over word n-grams: seeded permutations modulo the Mersenne
//! prime 2^61 − 1, signatures, their 16-bit compact form and the Jaccard
//! estimate two compact signatures give.

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
