//! The int8 dense layer against f32 products and its kernels against the
//! portable loop.
use super::*;

/// Deterministic values in [-1, 1) (a small LCG; no rand dependency).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn f32_product(x: &[f32], w: &[f32], bias: &[f32], n: usize, k: usize) -> Vec<f32> {
    x.chunks(k)
        .flat_map(|row| {
            w.chunks(k)
                .zip(bias)
                .map(|(col, b)| row.iter().zip(col).map(|(a, c)| a * c).sum::<f32>() + b)
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .into_iter()
        .take(x.len() / k * n)
        .collect()
}

#[test]
fn every_kernel_gives_the_portable_integers() {
    // Sizes that are not multiples of anything the kernels block by.
    let (n, k, rows) = (70, 37, 11);
    let w = values(n * k, 1);
    let x = values(rows * k, 2);
    let detected = Kernel::detect();
    let portable = QuantLinear::new(&w, n, k, None, Kernel::Portable).forward(&x);
    let fast = QuantLinear::new(&w, n, k, None, detected).forward(&x);
    assert_eq!(portable, fast, "kernel {detected:?}");
    if detected == Kernel::Avx512Vnni && Kernel::AvxVnni.available() {
        let narrow = QuantLinear::new(&w, n, k, None, Kernel::AvxVnni).forward(&x);
        assert_eq!(portable, narrow, "AVX-VNNI");
    }
}

#[test]
fn int8_products_are_within_the_rounding_of_their_inputs() {
    let (n, k, rows) = (130, 384, 9);
    let w = values(n * k, 3);
    let bias = values(n, 4);
    let mut x = values(rows * k, 5);
    // A row of one repeated value (zero range) and a row with an outlier.
    x[..k].fill(0.25);
    x[k] = 40.0;
    let want = f32_product(&x, &w, &bias, n, k);
    let got = QuantLinear::new(&w, n, k, Some(&bias), Kernel::detect()).forward(&x);
    assert_eq!(got.len(), rows * n);
    for (r, (g, e)) in got.chunks(n).zip(want.chunks(n)).enumerate() {
        let row = &x[r * k..(r + 1) * k];
        let range = row.iter().cloned().fold(f32::MIN, f32::max)
            - row.iter().cloned().fold(f32::MAX, f32::min);
        // Each input is off by at most half a step (range / 510) and each
        // weight by half of max|w| / 127: summed over k, bounded loosely.
        let bound = k as f32
            * (range / 510.0 + row.iter().fold(0f32, |m, v| m.max(v.abs())) / 254.0)
            + 1e-4;
        for (j, (a, b)) in g.iter().zip(e).enumerate() {
            assert!(
                (a - b).abs() <= bound,
                "row {r} column {j}: {a} vs {b} (bound {bound})"
            );
        }
        // The error is far below the bound on average: the products agree.
        let dot: f32 = g.iter().zip(e).map(|(a, b)| a * b).sum();
        let cos = dot
            / (g.iter().map(|a| a * a).sum::<f32>().sqrt()
                * e.iter().map(|a| a * a).sum::<f32>().sqrt());
        assert!(cos > 0.999, "row {r}: cosine {cos}");
    }
}
