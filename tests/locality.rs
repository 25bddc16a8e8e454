//! Task clustering and delayed I/O (`dag_runtime::engine::locality`), whole-system: the same
//! results with every optimization off and on, on every shape, store and kind of worker; what
//! they keep out of the store; and large parents of one child that never wait for each other.
//!
//! Like `tests/workers.rs`, this test binary has its own `main` (`harness = false`) and is also
//! the worker processes it starts; each check runs on each Redis backend.

use std::time::{Duration, Instant};

use dag::metrics::{Kept, MetricsStorage, RunReport};
use dag::prelude::*;
use dag::Locality;
use dag_test_support::{reduce_pairwise, run_tests, Test, TestRedis, WorkerProcess};

mod support;

/// Every output of these checks is at least this large, and counts as large.
const LARGE: usize = 1 << 10;
/// Elements of the vectors the tasks pass: 8 KiB and more of MessagePack.
const LEN: u64 = 1_000;

#[task]
fn block(seed: u64) -> Vec<u64> {
    (0..LEN).map(|i| seed * 1_000_003 + i).collect()
}

#[task]
fn scale(xs: Vec<u64>, by: u64) -> Vec<u64> {
    xs.iter().map(|x| x.wrapping_mul(by)).collect()
}

#[task]
fn plus(a: Vec<u64>, b: Vec<u64>) -> Vec<u64> {
    a.iter().zip(&b).map(|(x, y)| x.wrapping_add(*y)).collect()
}

#[task]
fn times(a: Vec<u64>, b: Vec<u64>) -> Vec<u64> {
    a.iter().zip(&b).map(|(x, y)| x.wrapping_mul(*y)).collect()
}

#[task]
fn sum_all(xs: Vec<Vec<u64>>) -> u64 {
    xs.iter().flatten().fold(0, |s, x| s.wrapping_add(*x))
}

#[task]
fn blocks(n: u64) -> Vec<Vec<u64>> {
    (0..n)
        .map(|s| (0..LEN).map(|i| s * 7 + i).collect())
        .collect()
}

#[task]
fn checksum(xs: Vec<u64>) -> u64 {
    xs.iter()
        .fold(0, |s, x| s.wrapping_mul(31).wrapping_add(*x))
}

#[task]
fn slow_block(seed: u64, delay_ms: u64) -> Vec<u64> {
    std::thread::sleep(Duration::from_millis(delay_ms));
    (0..LEN).map(|i| seed * 1_000_003 + i).collect()
}

/// A per-task threshold: its output is large whatever the runtime says.
#[task(large_output = "1KiB")]
fn own_threshold(seed: u64) -> Vec<u64> {
    (0..LEN).map(|i| seed + i).collect()
}

/// The shapes, each with a sink computed from large intermediates.
fn shapes() -> Vec<(&'static str, Node<u64>)> {
    // Fan-out: one large root, eight children.
    let root = block(1);
    let fan_out = sum_all((0..8).map(|k| scale(&root, k)).collect::<Vec<_>>());
    // Fan-in: eight large leaves into one child.
    let fan_in = sum_all((0..8).map(block).collect::<Vec<_>>());
    // GEMM-like: every product needs one block of each side; sums of products per cell.
    let rows: Vec<Node<Vec<u64>>> = (0..3).map(|i| block(10 + i)).collect();
    let cols: Vec<Node<Vec<u64>>> = (0..3).map(|j| block(20 + j)).collect();
    let cells: Vec<Node<Vec<u64>>> = (0..3)
        .flat_map(|i| (0..3).map(move |j| (i, j)))
        .map(|(i, j)| plus(times(&rows[i], &cols[j]), times(&rows[j], &cols[i])))
        .collect();
    let gemm = sum_all(cells);
    // A tree reduction over large leaves.
    let tree = checksum(reduce_pairwise((0..16).map(block).collect(), |a, b| {
        plus(a, b)
    }));
    // A map over a list of large blocks.
    let map = sum_all(blocks(6).map(|b| scale(b, 3)));
    vec![
        ("fan-out", fan_out),
        ("fan-in", fan_in),
        ("gemm-like", gemm),
        ("tree", tree),
        ("map", map),
    ]
}

fn settings() -> Vec<(&'static str, Locality)> {
    let on = Locality {
        large_output: LARGE,
        clustering: true,
        delayed_io: Some(Duration::from_millis(50)),
    };
    vec![
        ("off", Locality::OFF),
        (
            "clustering",
            Locality {
                delayed_io: None,
                ..on
            },
        ),
        (
            "delayed I/O",
            Locality {
                clustering: false,
                ..on
            },
        ),
        ("both", on),
    ]
}

/// `node.compute_on(runtime)`, failing the check instead of hanging.
fn compute<T: serde::de::DeserializeOwned + Send + 'static>(
    node: &Node<T>,
    runtime: &Runtime,
) -> Result<T, DagError> {
    support::compute_within(node, runtime, Duration::from_secs(120))
}

/// The value of every shape with both optimizations off, on the embedded runtime.
fn expected() -> Vec<u64> {
    let runtime = Runtime::builder().locality(Locality::OFF).build().unwrap();
    shapes()
        .iter()
        .map(|(_, node)| compute(node, &runtime).unwrap())
        .collect()
}

fn check_all(runtime_for: impl Fn(Locality) -> Runtime, on: &str) {
    let expected = expected();
    for (setting, locality) in settings() {
        let runtime = runtime_for(locality);
        for ((shape, node), want) in shapes().iter().zip(&expected) {
            assert_eq!(
                compute(node, &runtime),
                Ok(*want),
                "{shape} with {setting} on {on}"
            );
        }
    }
}

fn same_results_embedded() {
    check_all(
        |locality| Runtime::builder().locality(locality).build().unwrap(),
        "the embedded runtime",
    );
}

fn same_results_on_redis_with_local_threads() {
    let server = TestRedis::start();
    check_all(
        |locality| {
            Runtime::builder()
                .redis(server.url())
                .workers(4)
                .locality(locality)
                .build()
                .unwrap()
        },
        "Redis with local threads",
    );
}

fn same_results_with_worker_processes() {
    let server = TestRedis::start();
    let expected = expected();
    for (i, (setting, locality)) in settings().into_iter().enumerate() {
        let stream = format!("locality:{i}");
        let mut builder = WorkerProcess::builder(&server.url())
            .stream(&stream)
            .concurrency(2);
        for (name, value) in locality.env() {
            builder = builder.env(name, value);
        }
        let _workers = builder.spawn_many(2);
        let runtime = Runtime::builder()
            .redis(server.url())
            .worker_pool()
            .stream(&stream)
            .build()
            .unwrap();
        for ((shape, node), want) in shapes().iter().zip(&expected) {
            assert_eq!(
                compute(node, &runtime),
                Ok(*want),
                "{shape} with {setting} on 2 worker processes"
            );
        }
    }
}

/// The report of the last run of `runtime` (which records metrics in memory).
fn last_report(runtime: &Runtime) -> RunReport {
    let metrics = runtime.metrics().expect("metrics are on");
    RunReport::new(&metrics.last_run().unwrap().expect("the run is recorded"))
}

fn recording(server: &TestRedis, locality: Locality, workers: usize) -> Runtime {
    Runtime::builder()
        .redis(server.url())
        .workers(workers)
        .metrics(MetricsStorage::memory())
        .locality(locality)
        .build()
        .unwrap()
}

/// Clustering on a fan-out: the root's children all run where the root ran, and its output
/// never goes to Redis; without clustering it does. Bytes are counted, not timed.
fn clustering_keeps_a_fan_out_root_out_of_redis() {
    let server = TestRedis::start();
    let root = block(7);
    let dag = sum_all((0..6).map(|k| scale(&root, k)).collect::<Vec<_>>());
    let clustering = Locality {
        large_output: LARGE,
        clustering: true,
        delayed_io: None,
    };
    let off = recording(&server, Locality::OFF, 2);
    let on = recording(&server, clustering, 2);
    let want = compute(&dag, &off).unwrap();
    assert_eq!(compute(&dag, &on), Ok(want));
    let (off, on) = (last_report(&off), last_report(&on));
    assert!(
        on.bytes_uploaded < off.bytes_uploaded,
        "uploaded {} with clustering, {} without",
        on.bytes_uploaded,
        off.bytes_uploaded
    );
    assert!(on.saved_by_clustering > 0);
    assert_eq!(off.saved_by_clustering + off.saved_by_delayed_io, 0);
}

/// Delayed I/O on a fan-in of a fast and a slow large parent: the fast one holds its output
/// until the slow one is done, then runs the child itself; its output is never stored.
fn delayed_io_runs_the_child_where_the_held_output_is() {
    let server = TestRedis::start();
    // Both run at once (the fast one does not finish while the other still waits in the queue).
    let dag = checksum(plus(slow_block(1, 50), slow_block(2, 400)));
    let delayed = Locality {
        large_output: LARGE,
        clustering: false,
        delayed_io: Some(Duration::from_secs(20)),
    };
    let runtime = recording(&server, delayed, 2);
    let want = compute(&dag, &Runtime::builder().build().unwrap()).unwrap();
    assert_eq!(compute(&dag, &runtime), Ok(want));
    let metrics = runtime.metrics().unwrap().last_run().unwrap().unwrap();
    let held: Vec<_> = metrics
        .tasks
        .iter()
        .filter(|r| r.kept_by == Some(Kept::DelayedIo))
        .collect();
    assert_eq!(
        held.len(),
        1,
        "one parent held its output: {:?}",
        metrics.tasks
    );
    assert!(RunReport::new(&metrics).saved_by_delayed_io > 0);
}

/// Large parents of one child that finish together hold for each other at most until one is
/// outranked: with a 30 s delay, the DAG still ends in a fraction of it.
fn large_parents_of_one_child_do_not_wait_for_each_other() {
    let server = TestRedis::start();
    let delayed = Locality {
        large_output: LARGE,
        clustering: true,
        delayed_io: Some(Duration::from_secs(30)),
    };
    // Equal sizes (the index breaks the tie), then different sizes.
    let equal = checksum(plus(block(1), block(2)));
    let unequal = checksum(plus(block(1), scale(block(2), 1)));
    let four = sum_all((0..4).map(block).collect::<Vec<_>>());
    for runtime in [
        Runtime::builder().locality(delayed).build().unwrap(),
        Runtime::builder()
            .redis(server.url())
            .workers(4)
            .locality(delayed)
            .build()
            .unwrap(),
    ] {
        for dag in [&equal, &unequal] {
            let started = Instant::now();
            let want = compute(dag, &Runtime::builder().build().unwrap()).unwrap();
            assert_eq!(compute(dag, &runtime), Ok(want));
            // A hang guard far below the delay, not a timing claim.
            assert!(started.elapsed() < Duration::from_secs(15));
        }
        let started = Instant::now();
        let want = compute(&four, &Runtime::builder().build().unwrap()).unwrap();
        assert_eq!(compute(&four, &runtime), Ok(want));
        assert!(started.elapsed() < Duration::from_secs(15));
    }
}

/// `#[task(large_output = "1KiB")]` makes that task's output large under a runtime whose own
/// threshold is far above it.
fn a_task_threshold_wins_over_the_runtime() {
    let server = TestRedis::start();
    let runtime = recording(
        &server,
        Locality {
            large_output: 1 << 30,
            clustering: true,
            delayed_io: None,
        },
        2,
    );
    let root = own_threshold(5);
    let dag = sum_all(vec![scale(&root, 2), scale(&root, 3)]);
    compute(&dag, &runtime).unwrap();
    let metrics = runtime.metrics().unwrap().last_run().unwrap().unwrap();
    let kept: Vec<&str> = metrics
        .tasks
        .iter()
        .filter(|r| r.kept_by.is_some())
        .map(|r| &*r.task)
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].ends_with("own_threshold"), "{kept:?}");
}

const TESTS: &[Test] = &dag_test_support::tests![
    same_results_embedded,
    same_results_on_redis_with_local_threads,
    same_results_with_worker_processes,
    clustering_keeps_a_fan_out_root_out_of_redis,
    delayed_io_runs_the_child_where_the_held_output_is,
    large_parents_of_one_child_do_not_wait_for_each_other,
    a_task_threshold_wins_over_the_runtime,
];

fn main() {
    dag::worker::run_if_worker();
    run_tests(TESTS);
}
