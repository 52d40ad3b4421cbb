//! Tests of the BERT encoder ops (kept apart so bert.rs reads as the model).
use super::super::attention::exp;
use super::super::lanes::{lane_sum, tree_sum};
use super::*;

/// erf by its Taylor series in f64 (converges fast for |x| ≤ 4 with
/// enough terms), to check the approximation against.
fn erf_reference(x: f64) -> f64 {
    let mut term = x;
    let mut sum = x;
    for n in 1..200 {
        term *= -x * x / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

#[test]
fn exp_approximation_is_within_two_ten_millionths() {
    let mut worst = 0.0f64;
    for i in 0..=87_000 {
        let x = -(i as f32) / 1000.0;
        let want = f64::from(x).exp();
        worst = worst.max((f64::from(exp(x)) - want).abs() / want);
    }
    assert!(worst < 2e-7, "worst relative error {worst}");
    assert_eq!(exp(-1000.0), exp(-87.0));
}

#[test]
fn lane_sums_match_plain_sums_at_every_length() {
    assert_eq!(tree_sum([1.0f32; 1]), 1.0);
    assert_eq!(
        tree_sum(std::array::from_fn::<f32, 16, _>(|i| i as f32)),
        120.0
    );
    for n in [0, 1, 7, 8, 15, 16, 17, 32, 37, 64] {
        let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let want_sq: f64 = a.iter().map(|x| f64::from(x * x)).sum();
        assert!(
            (f64::from(lane_sum(&a, |x| x * x)) - want_sq).abs() < 1e-5,
            "lane_sum, n = {n}"
        );
    }
}

#[test]
fn erf_approximation_is_within_a_millionth() {
    let mut worst = 0.0f64;
    for i in -6000..=6000 {
        let x = i as f64 / 1000.0;
        let want = if x.abs() > 4.0 {
            x.signum()
        } else {
            erf_reference(x)
        };
        worst = worst.max((f64::from(erf(x as f32)) - want).abs());
    }
    assert!(worst < 1e-6, "worst error {worst}");
}
