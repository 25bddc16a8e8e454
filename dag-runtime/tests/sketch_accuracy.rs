//! The digests' quantile sketch against exact quantiles on generated data.
//!
//! **The bound:** for every quantile q, the sketch's answer is within
//! [`RELATIVE_ERROR`] (1%) of the exact q-quantile, `|estimate - exact| <= 0.01 * exact`, where
//! the exact q-quantile of n sorted values is the value of rank `floor(q * (n - 1))` (the rank
//! DDSketch answers for). This holds whatever the distribution, as long as the values span
//! fewer than the sketch's 2048 buckets of width 2% (about 17 orders of magnitude: µs to
//! centuries). Count, mean, minimum and maximum are exact. Merging two sketches gives the
//! sketch of the union: every quantile equal, not just close.

use dag::metrics::{Sketch, RELATIVE_ERROR};

const N: usize = 100_000;
const QUANTILES: [f64; 11] = [
    0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999,
];

/// A distribution to draw `N` values from, named for the failure message.
fn distributions() -> Vec<(&'static str, Vec<u64>)> {
    let mut rng = fastrand::Rng::with_seed(14);
    let mut draw = |f: &mut dyn FnMut(&mut fastrand::Rng) -> u64| -> Vec<u64> {
        (0..N).map(|_| f(&mut rng)).collect()
    };
    vec![
        ("uniform 1..100000", draw(&mut |r| r.u64(1..=100_000))),
        // Mean 1 ms in µs; small values round to 0, which the sketch keeps exactly.
        (
            "exponential",
            draw(&mut |r| (-(1.0 - r.f64()).ln() * 1_000.0) as u64),
        ),
        // Pareto with shape 1.2: a long tail, a few values a thousand times the median.
        (
            "pareto (long tail)",
            draw(&mut |r| (1_000.0 / (1.0 - r.f64()).powf(1.0 / 1.2)) as u64),
        ),
        ("constant", draw(&mut |_| 4_242)),
        // Log-uniform over nine orders of magnitude.
        ("1..1e9", draw(&mut |r| 10f64.powf(9.0 * r.f64()) as u64)),
    ]
}

fn sketch_of(values: &[u64]) -> Sketch {
    let mut sketch = Sketch::default();
    values.iter().for_each(|&v| sketch.add(v));
    sketch
}

fn exact_quantile(sorted: &[u64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64) as usize] as f64
}

#[test]
fn quantiles_are_within_the_relative_error_of_the_exact_ones() {
    for (name, values) in distributions() {
        let sketch = sketch_of(&values);
        let mut sorted = values.clone();
        sorted.sort_unstable();
        for q in QUANTILES {
            let exact = exact_quantile(&sorted, q);
            let estimate = sketch.quantile(q).expect("not empty");
            // A hair of slack for the floating-point rounding of the bucket bounds.
            let bound = RELATIVE_ERROR * exact * (1.0 + 1e-9);
            assert!(
                (estimate - exact).abs() <= bound,
                "{name}: q={q}: sketch {estimate}, exact {exact}, bound ±{bound}"
            );
        }
        let stats = sketch.stats();
        assert_eq!(stats.count, N as u64, "{name}");
        assert_eq!(stats.min, sorted[0] as f64, "{name}");
        assert_eq!(stats.max, sorted[N - 1] as f64, "{name}");
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / N as f64;
        assert!(
            (stats.mean - mean).abs() <= mean * 1e-9,
            "{name}: mean {} vs {mean}",
            stats.mean
        );
    }
}

#[test]
fn merging_two_sketches_gives_the_sketch_of_the_union() {
    let all: Vec<u64> = distributions().into_iter().flat_map(|(_, v)| v).collect();
    // Two uneven halves, interleaved so each sees every distribution.
    let left: Vec<u64> = all.iter().copied().step_by(3).collect();
    let right: Vec<u64> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(_, &v)| v)
        .collect();
    let mut merged = sketch_of(&left);
    merged.merge(&sketch_of(&right));
    let union = sketch_of(&all);
    for q in QUANTILES.into_iter().chain([1.0]) {
        assert_eq!(merged.quantile(q), union.quantile(q), "q={q}");
    }
    let (m, u) = (merged.stats(), union.stats());
    assert_eq!((m.count, m.min, m.max), (u.count, u.min, u.max));
    assert!((m.mean - u.mean).abs() <= u.mean * 1e-9);
}

#[test]
fn an_empty_sketch_has_no_quantiles() {
    let sketch = Sketch::default();
    assert_eq!(sketch.quantile(0.5), None);
    assert_eq!(sketch.stats().count, 0);
}
