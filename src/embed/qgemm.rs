//! Dense layers in 8-bit integers, for the local encoder's `int8`
//! precision.
//!
//! Weights are quantised once, at load, per output column (symmetric,
//! −127…127, one scale per column); activations per row as they arrive
//! (asymmetric, 0…255 between the row's minimum and maximum). The product
//! of the two is exact in 32-bit integers, so the only error is the
//! rounding of each input to 256 levels: on the 2,000 sentences of
//! `scripts/bench-embed` the pooled embedding keeps a mean cosine of
//! 0.9987 (least 0.997) with the f32 model's (docs/BENCHMARKS.md). With `x ≈ lo + s·q` and `w ≈ c·p`,
//!
//! ```text
//! Σₖ x·w ≈ s·c·Σₖ q·p + lo·c·Σₖ p
//! ```
//!
//! so each output is one integer dot product, one multiply-add with the
//! row's scale and the column's offset, and the bias.
//!
//! The integer products run on the VNNI instruction `vpdpbusd` (u8 × i8,
//! four products summed into each 32-bit lane): 64 of them per
//! instruction on AVX-512, four times the f32 multiply-adds of the same
//! width. Weights are packed for it in panels of 16 columns, four inputs
//! of a column side by side. CPUs without VNNI get a portable loop that
//! gives the same integers (slowly: `Precision::Auto` picks f32 there).

use super::lanes::{min_max, par_rows};

/// Columns in one packed panel (one 512-bit register of 16 × 4 bytes).
const PANEL: usize = 16;
/// Columns the kernel computes at once (four panels).
const GROUP: usize = 4 * PANEL;
/// Rows the kernel computes at once.
const MR: usize = 4;
/// Rows quantised and kept hot together while every column group runs.
const MC: usize = 64;

/// Which integer kernel this CPU runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// AVX-512 VNNI, 512-bit registers.
    Avx512Vnni,
    /// AVX-VNNI, 256-bit registers (Alder Lake and later, Zen 4 and later).
    AvxVnni,
    /// Plain integer loops: same results, no speed.
    Portable,
}

impl Kernel {
    /// Whether this CPU can run the kernel.
    pub fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match self {
                Kernel::Avx512Vnni => has!("avx512f") && has!("avx512bw") && has!("avx512vnni"),
                Kernel::AvxVnni => has!("avx2") && has!("avxvnni"),
                Kernel::Portable => true,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Kernel::Portable
        }
    }

    /// The fastest kernel this CPU has.
    pub fn detect() -> Kernel {
        [Kernel::Avx512Vnni, Kernel::AvxVnni]
            .into_iter()
            .find(|k| k.available())
            .unwrap_or(Kernel::Portable)
    }

    /// Whether int8 beats the f32 products on this CPU.
    pub fn is_fast(self) -> bool {
        self != Kernel::Portable
    }
}

/// A dense layer `y = x·Wᵀ + b` with W quantised to 8 bits.
pub struct QuantLinear {
    /// Outputs (columns of y) and inputs (columns of x).
    n: usize,
    k: usize,
    /// Inputs rounded up to 4, columns up to [`GROUP`].
    kp: usize,
    np: usize,
    /// Panels of [`PANEL`] columns, each `kp / 4` steps of 16 × 4 bytes.
    packed: Vec<i8>,
    /// Per column: the scale `c`, and `c · Σₖ p` (zero for padding).
    scale: Vec<f32>,
    offset: Vec<f32>,
    bias: Vec<f32>,
    kernel: Kernel,
}

impl QuantLinear {
    /// `weight` is `n × k`, row-major (a PyTorch `Linear`'s layout). A
    /// `kernel` this CPU lacks is replaced by the portable one (same
    /// results), so no caller can reach instructions the CPU lacks.
    pub fn new(weight: &[f32], n: usize, k: usize, bias: Option<&[f32]>, kernel: Kernel) -> Self {
        assert_eq!(weight.len(), n * k, "weight is not n × k");
        let kernel = if kernel.available() {
            kernel
        } else {
            Kernel::Portable
        };
        let kp = k.div_ceil(4) * 4;
        let np = n.div_ceil(GROUP) * GROUP;
        let steps = kp / 4;
        let mut packed = vec![0i8; np * kp];
        let mut scale = vec![0f32; np];
        let mut offset = vec![0f32; np];
        for (col, w) in weight.chunks_exact(k).enumerate() {
            let max = w.iter().fold(0f32, |m, x| m.max(x.abs()));
            let c = if max > 0.0 { max / 127.0 } else { 1.0 };
            let (panel, lane) = (col / PANEL, col % PANEL);
            let mut sum = 0i32;
            for (i, &x) in w.iter().enumerate() {
                let p = (x / c).round().clamp(-127.0, 127.0) as i8;
                sum += i32::from(p);
                packed[((panel * steps + i / 4) * PANEL + lane) * 4 + i % 4] = p;
            }
            scale[col] = c;
            offset[col] = c * sum as f32;
        }
        let mut b = vec![0f32; np];
        if let Some(bias) = bias {
            b[..n].copy_from_slice(&bias[..n]);
        }
        QuantLinear {
            n,
            k,
            kp,
            np,
            packed,
            scale,
            offset,
            bias: b,
            kernel,
        }
    }

    pub fn outputs(&self) -> usize {
        self.n
    }

    /// `x` is `rows × k`, row-major; the result is `rows × n`, its rows
    /// split over the cores candle uses.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let rows = x.len() / self.k.max(1);
        let mut out = vec![0f32; rows * self.n];
        par_rows(&mut out, self.n, MR, |ys, first| {
            let count = ys.len() / self.n.max(1);
            self.forward_rows(&x[first * self.k..(first + count) * self.k], ys)
        });
        out
    }

    /// One thread's rows, [`MC`] at a time: quantise them, then every
    /// column group for every [`MR`] rows.
    fn forward_rows(&self, x: &[f32], out: &mut [f32]) {
        let mut q = vec![0u8; MC * self.kp];
        let mut lo = [0f32; MC];
        let mut step = [0f32; MC];
        let mut acc = [[0i32; GROUP]; MR];
        for (xs, ys) in x.chunks(MC * self.k).zip(out.chunks_mut(MC * self.n)) {
            let rows = xs.len() / self.k;
            quantise_rows(xs, self.k, self.kp, &mut q, &mut lo, &mut step);
            for g in 0..self.np / GROUP {
                let b = &self.packed[g * 4 * PANEL * self.kp..];
                for r0 in (0..rows).step_by(MR) {
                    let mr = MR.min(rows - r0);
                    self.kernel_block(&q[r0 * self.kp..], b, mr, &mut acc);
                    let cols = g * GROUP..((g + 1) * GROUP).min(self.n);
                    for r in 0..mr {
                        let y = &mut ys[(r0 + r) * self.n..][cols.clone()];
                        epilogue(
                            y,
                            &acc[r],
                            step[r0 + r],
                            lo[r0 + r],
                            &self.scale[cols.clone()],
                            &self.offset[cols.clone()],
                            &self.bias[cols.clone()],
                        );
                    }
                }
            }
        }
    }

    /// `acc[r][j] = Σₖ q[r][k] · p[k][g·64 + j]` for the first `mr` rows.
    fn kernel_block(&self, q: &[u8], b: &[i8], mr: usize, acc: &mut [[i32; GROUP]; MR]) {
        let steps = self.kp / 4;
        assert!(q.len() >= (mr - 1) * self.kp + self.kp && b.len() >= 4 * PANEL * self.kp);
        #[cfg(target_arch = "x86_64")]
        match self.kernel {
            // SAFETY: new() kept the kernel only if available() found its
            // features; the assert above keeps every read inside `q`, `b`.
            Kernel::Avx512Vnni => unsafe {
                return x86::block_512(q.as_ptr(), self.kp, b.as_ptr(), steps, mr, acc);
            },
            Kernel::AvxVnni => unsafe {
                return x86::block_256(q.as_ptr(), self.kp, b.as_ptr(), steps, mr, acc);
            },
            Kernel::Portable => {}
        }
        block_portable(q, self.kp, b, steps, mr, acc);
    }
}

widest! {
    /// Quantise each row of `x` (width `k`) to bytes in `q` (width `kp`,
    /// the padding zero): `x ≈ lo + step · q`.
    fn quantise_rows(
        x: &[f32],
        k: usize,
        kp: usize,
        q: &mut [u8],
        lo: &mut [f32],
        step: &mut [f32],
    ) {
        for (r, row) in x.chunks_exact(k).enumerate() {
            let (mn, mx) = min_max(row);
            let s = if mx > mn { (mx - mn) / 255.0 } else { 1.0 };
            let inv = 1.0 / s;
            lo[r] = mn;
            step[r] = s;
            let qr = &mut q[r * kp..(r + 1) * kp];
            for (d, &v) in qr.iter_mut().zip(row) {
                // Non-negative, so +0.5 and truncation round to nearest.
                // max before min, not clamp: a NaN (from an infinite
                // input) becomes 0.
                #[allow(clippy::manual_clamp)]
                let t = ((v - mn) * inv + 0.5).max(0.0).min(255.0);
                // SAFETY: `t` lies in 0..=255, so it fits an i32.
                *d = unsafe { t.to_int_unchecked::<i32>() } as u8;
            }
            qr[k..].fill(0);
        }
    }
}

widest! {
    /// `y = step · c · acc + lo · offset + bias`, column by column.
    fn epilogue(
        y: &mut [f32],
        acc: &[i32; GROUP],
        step: f32,
        lo: f32,
        scale: &[f32],
        offset: &[f32],
        bias: &[f32],
    ) {
        for ((((y, &a), &c), &o), &b) in y.iter_mut().zip(acc).zip(scale).zip(offset).zip(bias) {
            *y = step * c * a as f32 + lo * o + b;
        }
    }
}

/// The kernel in plain integers, for CPUs without VNNI and for checking
/// the vector kernels against.
fn block_portable(
    q: &[u8],
    kp: usize,
    b: &[i8],
    steps: usize,
    mr: usize,
    acc: &mut [[i32; GROUP]; MR],
) {
    for (r, acc) in acc.iter_mut().enumerate().take(mr) {
        let a = &q[r * kp..(r + 1) * kp];
        for (j, out) in acc.iter_mut().enumerate() {
            let panel = &b[(j / PANEL) * steps * PANEL * 4..];
            let lane = j % PANEL;
            let mut sum = 0i32;
            for t in 0..steps {
                for i in 0..4 {
                    sum += i32::from(a[t * 4 + i]) * i32::from(panel[(t * PANEL + lane) * 4 + i]);
                }
            }
            *out = sum;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{GROUP, MR, PANEL};
    use std::arch::x86_64::*;

    /// [`super::block_portable`] with AVX-512 VNNI: `mr` rows × 64 columns
    /// in `mr × 4` registers.
    ///
    /// # Safety
    /// The CPU has avx512f, avx512bw and avx512vnni; `q` holds `mr` rows
    /// of `kp = 4 · steps` bytes and `b` four panels of `steps · 64`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn block_512(
        q: *const u8,
        kp: usize,
        b: *const i8,
        steps: usize,
        mr: usize,
        acc: &mut [[i32; GROUP]; MR],
    ) {
        // SAFETY: as the caller promises.
        unsafe {
            match mr {
                4 => rows_512::<4>(q, kp, b, steps, acc),
                3 => rows_512::<3>(q, kp, b, steps, acc),
                2 => rows_512::<2>(q, kp, b, steps, acc),
                _ => rows_512::<1>(q, kp, b, steps, acc),
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn rows_512<const R: usize>(
        q: *const u8,
        kp: usize,
        b: *const i8,
        steps: usize,
        acc: &mut [[i32; GROUP]; MR],
    ) {
        let panel = steps * PANEL * 4;
        let mut c = [[_mm512_setzero_si512(); 4]; R];
        // SAFETY: every offset stays inside what the caller promised.
        unsafe {
            for t in 0..steps {
                let bt = b.add(t * PANEL * 4);
                let w = [
                    _mm512_loadu_si512(bt.cast()),
                    _mm512_loadu_si512(bt.add(panel).cast()),
                    _mm512_loadu_si512(bt.add(2 * panel).cast()),
                    _mm512_loadu_si512(bt.add(3 * panel).cast()),
                ];
                for (r, c) in c.iter_mut().enumerate() {
                    let a = _mm512_set1_epi32(q.add(r * kp + t * 4).cast::<i32>().read_unaligned());
                    for (c, w) in c.iter_mut().zip(&w) {
                        *c = _mm512_dpbusd_epi32(*c, a, *w);
                    }
                }
            }
            for (r, c) in c.iter().enumerate() {
                for (p, c) in c.iter().enumerate() {
                    _mm512_storeu_si512(acc[r][p * PANEL..].as_mut_ptr().cast(), *c);
                }
            }
        }
    }

    /// [`block_512`] with AVX-VNNI's 256-bit registers: two rows × 32
    /// columns at a time (12 of the 16 registers).
    ///
    /// # Safety
    /// The CPU has avx2 and avxvnni; otherwise as [`block_512`].
    #[target_feature(enable = "avx2,avxvnni")]
    pub unsafe fn block_256(
        q: *const u8,
        kp: usize,
        b: *const i8,
        steps: usize,
        mr: usize,
        acc: &mut [[i32; GROUP]; MR],
    ) {
        let panel = steps * PANEL * 4;
        // SAFETY: as the caller promises.
        unsafe {
            for half in 0..2 {
                let bh = b.add(half * 2 * panel);
                let mut r0 = 0;
                while r0 < mr {
                    let (a0, a1) = (q.add(r0 * kp), q.add((r0 + 1).min(mr - 1) * kp));
                    let mut c = [[_mm256_setzero_si256(); 4]; 2];
                    for t in 0..steps {
                        let bt = bh.add(t * PANEL * 4);
                        let w = [
                            _mm256_loadu_si256(bt.cast()),
                            _mm256_loadu_si256(bt.add(32).cast()),
                            _mm256_loadu_si256(bt.add(panel).cast()),
                            _mm256_loadu_si256(bt.add(panel + 32).cast()),
                        ];
                        for (c, a) in c.iter_mut().zip([a0, a1]) {
                            let a = _mm256_set1_epi32(a.add(t * 4).cast::<i32>().read_unaligned());
                            for (c, w) in c.iter_mut().zip(&w) {
                                *c = _mm256_dpbusd_avx_epi32(*c, a, *w);
                            }
                        }
                    }
                    for (i, c) in c.iter().enumerate().take(mr - r0) {
                        for (j, c) in c.iter().enumerate() {
                            let col = half * 2 * PANEL + j * 8;
                            _mm256_storeu_si256(acc[r0 + i][col..].as_mut_ptr().cast(), *c);
                        }
                    }
                    r0 += 2;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "qgemm_tests.rs"]
mod tests;
