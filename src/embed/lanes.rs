//! Loops shaped for vector registers, shared by the encoder's ops
//! (`bert.rs`, `attention.rs`, `qgemm.rs`): the `widest!` dispatch to the
//! widest instruction set the CPU has, lane-wise sums and min/max, and the
//! split of rows over the cores candle uses.

/// Define `fn $name(args)` that runs its body compiled for AVX-512 (or
/// AVX2 + FMA) where the CPU has it, so its loops use the widest vector
/// registers; helpers it calls must be `#[inline(always)]`.
macro_rules! widest {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx512($($arg: $ty),*) {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                {
                    // SAFETY: the features were detected on this CPU.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

/// Run `f(chunk, first_row)` over chunks of at least `min_rows` rows of
/// `data` (rows of `width`), split over the cores candle uses.
pub(super) fn par_rows(
    data: &mut [f32],
    width: usize,
    min_rows: usize,
    f: impl Fn(&mut [f32], usize) + Sync,
) {
    let rows = data.len() / width.max(1);
    let threads = candle_core::utils::get_num_threads().max(1);
    let per = rows.div_ceil(threads).max(min_rows);
    std::thread::scope(|s| {
        for (i, part) in data.chunks_mut(per * width).enumerate() {
            let f = &f;
            s.spawn(move || f(part, i * per));
        }
    });
}

/// The sum of `f` over `xs` in eight lanes, so the compiler can use
/// vector registers (a single running sum fixes the order of additions).
#[inline(always)]
pub(super) fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(x);
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    tree_sum(acc) + tail
}

/// The lanes of `acc` added pairwise, halves onto halves: log2(N) vector
/// adds where `iter().sum()` is N − 1 dependent scalar ones. N must be a
/// power of two (checked when compiled), or lanes would be left out.
#[inline(always)]
pub(super) fn tree_sum<const N: usize>(mut acc: [f32; N]) -> f32 {
    const { assert!(N.is_power_of_two()) };
    let mut w = N / 2;
    while w > 0 {
        for i in 0..w {
            acc[i] += acc[i + w];
        }
        w /= 2;
    }
    acc[0]
}

/// The least and greatest of `xs` (`f32::MAX` and `f32::MIN` if empty), in sixteen lanes so the
/// compiler can use vector min and max.
#[inline(always)]
pub(super) fn min_max(xs: &[f32]) -> (f32, f32) {
    let mut lo = [f32::MAX; 16];
    let mut hi = [f32::MIN; 16];
    let mut chunks = xs.chunks_exact(16);
    for c in &mut chunks {
        for i in 0..16 {
            lo[i] = if c[i] < lo[i] { c[i] } else { lo[i] };
            hi[i] = if c[i] > hi[i] { c[i] } else { hi[i] };
        }
    }
    for &v in chunks.remainder() {
        lo[0] = lo[0].min(v);
        hi[0] = hi[0].max(v);
    }
    (
        lo.iter().fold(f32::MAX, |a, &b| a.min(b)),
        hi.iter().fold(f32::MIN, |a, &b| a.max(b)),
    )
}
