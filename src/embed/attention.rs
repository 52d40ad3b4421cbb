//! Self-attention for the BERT encoder (`bert.rs`), one candle op per
//! layer: scores over the unmasked keys, softmax, the weighted sum of
//! values, straight from the fused QKV product's output.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape};

use super::bert::contiguous_f32;
use super::lanes::{lane_sum, min_max, par_rows};

/// e^x for the softmax, in a form the compiler vectorises (libm's `expf`
/// is a scalar call per score): x = n·ln 2 + r with |r| ≤ ln 2 / 2, e^r by
/// its degree-7 Taylor polynomial, 2^n put into the exponent bits. ln 2 is
/// split in two (Cody–Waite) so that n·ln 2 is exact in f32: with the
/// plain f32 constant, rounding reached 4e-6 relative error near e^-87.
/// Relative error stays below 2e-7 (checked in the tests); inputs below -87
/// are taken as -87, so the result never underflows to a subnormal.
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    // 0.693145751953125 has 16 significant bits, so n·LN2_HI is exact for
    // |n| ≤ 127; LN2_LO is the rest of ln 2.
    const LN2_HI: f32 = f32::from_bits(0x3F31_7200);
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.max(-87.0);
    let n = (x * std::f32::consts::LOG2_E).round();
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 5040.0;
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Queries attended together: their scores and weighted sums are
/// independent chains of multiply-adds, so the vector units are not left
/// waiting on one chain's latency.
const QUERIES: usize = 4;

widest! {
    /// Attention for the sequences whose outputs are `out` (rows of
    /// `s × h`), reading their rows of `qkv` (`s × 3h`) and `mask` (`s`).
    fn attention_seqs(
        out: &mut [f32],
        qkv: &[f32],
        mask: &[f32],
        s: usize,
        heads: usize,
        d: usize,
    ) {
        let (h, h3) = (heads * d, 3 * heads * d);
        let mut keep = Vec::with_capacity(s);
        // One head's keys, transposed (d rows of the sequence's tokens,
        // padded with zeros to a multiple of 16): a query's scores are
        // then d multiply-adds of whole vectors of keys, not one dot
        // product and horizontal sum per key.
        let mut keys_t: Vec<f32> = Vec::new();
        let mut scores: Vec<f32> = Vec::new();
        for ((seq_out, rows), mask) in out
            .chunks_mut(s * h)
            .zip(qkv.chunks(s * h3))
            .zip(mask.chunks(s))
        {
            keep.clear();
            keep.extend((0..s).filter(|&j| mask[j] != 0.0));
            let n = keep.len();
            let width = n.div_ceil(16) * 16;
            keys_t.clear();
            keys_t.resize(d * width, 0.0);
            scores.clear();
            scores.resize(QUERIES * width, 0.0);
            for head in 0..heads {
                let at = Head { rows, h, h3, off: head * d, d, width };
                for (j, &kj) in keep.iter().enumerate() {
                    let k = &rows[kj * h3 + h + at.off..][..d];
                    for (c, &x) in k.iter().enumerate() {
                        keys_t[c * width + j] = x;
                    }
                }
                for block in keep.chunks(QUERIES) {
                    // A short last block repeats its last query.
                    let qs: [usize; QUERIES] =
                        std::array::from_fn(|i| block[i.min(block.len() - 1)]);
                    at.scores(&mut scores, &keys_t, &qs);
                    for sc in scores.chunks_exact_mut(width) {
                        softmax(&mut sc[..n]);
                    }
                    at.context(seq_out, &scores, &keep, &qs[..block.len()]);
                }
            }
        }
    }
}

/// Where one head's queries, keys and values sit in a sequence's rows of
/// the fused QKV output.
struct Head<'a> {
    rows: &'a [f32],
    h: usize,
    h3: usize,
    off: usize,
    d: usize,
    /// The sequence's tokens, padded to a multiple of 16.
    width: usize,
}

impl Head<'_> {
    /// `scores[i][j] = q_i · k_j` for the queries `qs` and every key
    /// (`keys_t`: d rows of `width`).
    #[inline(always)]
    fn scores(&self, scores: &mut [f32], keys_t: &[f32], qs: &[usize; QUERIES]) {
        let (rows, w) = (self.rows, self.width);
        for kc in (0..w).step_by(16) {
            let mut acc = [[0f32; 16]; QUERIES];
            for c in 0..self.d {
                let k = &keys_t[c * w + kc..][..16];
                for (a, &qi) in acc.iter_mut().zip(qs) {
                    let qc = rows[qi * self.h3 + self.off + c];
                    for i in 0..16 {
                        a[i] += qc * k[i];
                    }
                }
            }
            for (i, a) in acc.iter().enumerate() {
                scores[i * w + kc..][..16].copy_from_slice(a);
            }
        }
    }

    /// `out[q] = Σ_j p_qj · v_j` for the queries `qs` (at most
    /// [`QUERIES`]), in chunks of 16 of the head's width.
    #[inline(always)]
    fn context(&self, out: &mut [f32], scores: &[f32], keep: &[usize], qs: &[usize]) {
        let (rows, w, v0) = (self.rows, self.width, 2 * self.h + self.off);
        let full = self.d / 16 * 16;
        for dc in (0..full).step_by(16) {
            let mut acc = [[0f32; 16]; QUERIES];
            for (j, &vj) in keep.iter().enumerate() {
                let v = &rows[vj * self.h3 + v0 + dc..][..16];
                for (qi, a) in acc.iter_mut().enumerate() {
                    let p = scores[qi * w + j];
                    for i in 0..16 {
                        a[i] += p * v[i];
                    }
                }
            }
            for (a, &q) in acc.iter().zip(qs) {
                out[q * self.h + self.off + dc..][..16].copy_from_slice(a);
            }
        }
        // Head widths that are not a multiple of 16.
        for (qi, &q) in qs.iter().enumerate() {
            for c in full..self.d {
                out[q * self.h + self.off + c] = keep
                    .iter()
                    .enumerate()
                    .map(|(j, &vj)| scores[qi * w + j] * rows[vj * self.h3 + v0 + c])
                    .sum();
            }
        }
    }
}

/// `xs ← softmax(xs)`.
#[inline(always)]
fn softmax(xs: &mut [f32]) {
    let (_, max) = min_max(xs);
    // Two loops, not one: a running f32 sum keeps the compiler from
    // vectorising `exp`.
    for x in xs.iter_mut() {
        *x = exp(*x - max);
    }
    let inv = 1.0 / lane_sum(xs, |x| x);
    for x in xs.iter_mut() {
        *x *= inv;
    }
}

/// Self-attention from the fused query/key/value product in one op:
/// input 1 is (batch, seq, 3 × hidden) as the QKV layer writes it (query
/// already scaled), input 2 the mask (batch, seq; 1 token, 0 padding).
/// Per sequence and head: scores over the unmasked keys, softmax, the
/// weighted sum of values, written straight into (batch, seq, hidden).
/// This replaces three strided copies, a mask add, a softmax pass, a
/// transpose copy and 2 × batch × heads small matrix products; rows of
/// padding are left zero (nothing reads them: later layers mask them as
/// keys and pooling skips them).
pub(super) struct Attention {
    pub(super) heads: usize,
    pub(super) head_size: usize,
}

impl CustomOp2 for Attention {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let qkv = contiguous_f32(s1, l1, self.name())?;
        let mask = contiguous_f32(s2, l2, self.name())?;
        let (b, s, h3) = l1.shape().dims3()?;
        let (h, d) = (h3 / 3, self.head_size);
        if h != self.heads * d || mask.len() != b * s {
            candle_core::bail!("attention: unexpected shapes");
        }
        let mut out = vec![0f32; b * s * h];
        par_rows(&mut out, s * h, 1, |part, first| {
            let seqs = part.len() / (s * h);
            attention_seqs(
                part,
                &qkv[first * s * h3..(first + seqs) * s * h3],
                &mask[first * s..(first + seqs) * s],
                s,
                self.heads,
                d,
            )
        });
        Ok((CpuStorage::F32(out), Shape::from((b, s, h))))
    }
}
