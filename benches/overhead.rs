//! Per-task overhead of the embedded runtime on trivial tasks, and graph build + lowering cost.
//!
//! ```sh
//! cargo bench --bench overhead
//! ```
//!
//! Each DAG bench times `compute` alone (the graph is built in the untimed setup and dropped
//! after); divide by the task count for the overhead per task. Compare with
//! `../shared/peers/bench_dask.py` on the same shapes in the same run (see BENCHMARKS.md).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dag::prelude::*;
use dag_test_support::reduce_pairwise;

#[task]
fn inc(x: u64) -> u64 {
    x + 1
}

#[task]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[task]
fn total(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

fn chain(n: usize) -> Node<u64> {
    let mut node = inc(0);
    for _ in 1..n {
        node = inc(node);
    }
    node
}

fn tree(leaves: u64) -> Node<u64> {
    reduce_pairwise((0..leaves).map(inc).collect(), |a, b| add(a, b))
}

fn fan(width: usize) -> Node<u64> {
    let source = inc(0);
    total((0..width).map(|_| inc(&source)).collect::<Vec<_>>())
}

/// A named DAG shape: its task count and how to build it.
type Shape = (&'static str, u64, fn() -> Node<u64>);

fn dag_shapes(c: &mut Criterion) {
    let runtime = Runtime::builder().build().unwrap();
    let shapes: [Shape; 4] = [
        ("chain_10000", 10_000, || chain(10_000)),
        ("tree_16384_leaves", 2 * 16_384 - 1, || tree(16_384)),
        ("tree_65536_leaves", 2 * 65_536 - 1, || tree(65_536)),
        ("fan_10000", 10_002, || fan(10_000)),
    ];
    let mut group = c.benchmark_group("embedded");
    group.sample_size(20);
    for (name, tasks, build) in shapes {
        group.throughput(Throughput::Elements(tasks));
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                build,
                |sink| sink.compute_on(&runtime).unwrap(),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();

    // A million-wide fan-in: one task takes a million inputs (issue 13's "wide graphs").
    let mut group = c.benchmark_group("embedded_wide");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1_000_002));
    group.bench_function("fan_1000000", |b| {
        b.iter_batched_ref(
            || fan(1_000_000),
            |sink| sink.compute_on(&runtime).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn build_and_lower(c: &mut Criterion) {
    let mut group = c.benchmark_group("graph");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1_000_000));
    group.bench_function("build_chain_1m", |b| {
        b.iter_with_large_drop(|| chain(1_000_000))
    });
    group.bench_function("build_and_lower_chain_1m", |b| {
        b.iter_with_large_drop(|| {
            let sink = chain(1_000_000);
            let plan = sink.plan().unwrap();
            (sink, plan)
        })
    });
    group.finish();
}

criterion_group!(benches, dag_shapes, build_and_lower);
criterion_main!(benches);
