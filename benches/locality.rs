//! Task clustering and delayed I/O, off and on, side by side in one run: makespan and the bytes
//! that went through Redis for blocked matrix multiplication (`examples/gemm.rs`), a
//! tall-and-skinny SVD (`examples/svd.rs`) and a tree reduction of large leaves, on a pool of
//! 2 worker processes (this executable, 2 threads each).
//!
//! Starts its own `redis-server` on a free port (bytes are its `INFO stats`
//! `total_net_input_bytes` and `total_net_output_bytes`, after minus before: everything every
//! client sent and received, invocations and events included), then for each setting starts 2
//! workers with that setting in their environment (`Locality::env`) and runs every shape
//! `DAG_BENCH_ROUNDS` times (3 by default); the table shows medians and, for bytes, the ratio
//! to the run with both off.
//!
//! ```text
//! cargo bench --bench locality
//! DAG_BENCH_ROUNDS=5 DAG_BENCH_SHAPES=gemm cargo bench --bench locality
//! ```

use std::time::{Duration, Instant};

use dag::prelude::*;
use dag::Locality;
use dag_test_support::{
    info_number, redis_server_on_path, reduce_pairwise, Backend, TestRedis, WorkerProcess,
};

#[path = "../examples/graphs/gemm.rs"]
mod gemm;
#[path = "../examples/graphs/svd.rs"]
mod svd;

/// Elements of one leaf of the tree: 4 MiB of `f64`.
const LEAF: usize = 1 << 19;

#[task]
fn leaf(seed: u64) -> Vec<f64> {
    (0..LEAF)
        .map(|i| ((seed * 31 + i as u64) % 1000) as f64)
        .collect()
}

#[task]
fn add(a: Vec<f64>, b: Vec<f64>) -> Vec<f64> {
    a.iter().zip(&b).map(|(x, y)| x + y).collect()
}

#[task]
fn total(xs: Vec<f64>) -> f64 {
    xs.iter().sum()
}

/// A tree reduction of 16 leaves of 4 MiB.
fn tree() -> Node<f64> {
    total(reduce_pairwise((0..16).map(leaf).collect(), |a, b| {
        add(a, b)
    }))
}

/// A shape's name and a way to compute it on a runtime (the result is checked across settings).
type Shape = (
    &'static str,
    Box<dyn Fn(&Runtime) -> Result<String, DagError>>,
);

fn shapes() -> Vec<Shape> {
    vec![
        (
            "gemm 2048, 512-blocks (2 MB)",
            Box::new(|rt: &Runtime| {
                gemm::gemm(2048, 512)
                    .compute_on(rt)
                    .map(|d| format!("{d:.1e}"))
            }),
        ),
        (
            "svd 131072 x 64, 8 blocks (8 MB)",
            Box::new(|rt: &Runtime| {
                svd::tsqr_svd(131_072, 64, 8)
                    .compute_on(rt)
                    .map(|(s, e)| format!("{:.6} {e:.0e}", s[0]))
            }),
        ),
        (
            "tree of 16 leaves (4 MB)",
            Box::new(|rt: &Runtime| tree().compute_on(rt).map(|t| t.to_string())),
        ),
    ]
}

fn settings() -> Vec<(&'static str, Locality)> {
    let both = Locality {
        delayed_io: Some(Locality::DEFAULT_DELAYED_IO),
        ..Locality::default()
    };
    vec![
        ("off", Locality::OFF),
        ("clustering (default)", Locality::default()),
        (
            "delayed I/O",
            Locality {
                clustering: false,
                ..both
            },
        ),
        ("both", both),
    ]
}

/// `total_net_input_bytes` plus `total_net_output_bytes` of the server.
fn net_bytes(conn: &mut redis::Connection) -> u64 {
    let mut field = |name| info_number(conn, "stats", name).unwrap_or(0.0) as u64;
    field("total_net_input_bytes") + field("total_net_output_bytes")
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

struct Row {
    shape: &'static str,
    setting: &'static str,
    makespan_s: f64,
    bytes: f64,
    answer: String,
}

fn main() {
    dag::worker::run_if_worker();
    if !redis_server_on_path() {
        println!("SKIPPED: the locality bench measures bytes with redis-server's INFO; install it");
        return;
    }
    let rounds: usize = std::env::var("DAG_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let only = std::env::var("DAG_BENCH_SHAPES").unwrap_or_default();
    let server = TestRedis::start_on(Backend::Real, None);
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut rows = Vec::new();
    for (i, (setting, locality)) in settings().into_iter().enumerate() {
        let stream = format!("bench:locality:{i}");
        let mut workers = WorkerProcess::builder(&server.url())
            .stream(&stream)
            .concurrency(2);
        for (name, value) in locality.env() {
            workers = workers.env(name, value);
        }
        let _workers = workers.spawn_many(2);
        let runtime = Runtime::builder()
            .redis(server.url())
            .worker_pool()
            .stream(&stream)
            .build()
            .expect("a client of the pool");
        std::thread::sleep(Duration::from_millis(300)); // the workers start reading
        for (shape, run) in shapes() {
            if !only.is_empty() && !only.split(',').any(|o| shape.starts_with(o)) {
                continue;
            }
            let (mut makespans, mut bytes) = (Vec::new(), Vec::new());
            let mut answer = String::new();
            for _ in 0..rounds {
                let before = net_bytes(&mut conn);
                let started = Instant::now();
                answer = run(&runtime).expect("the shape computes");
                makespans.push(started.elapsed().as_secs_f64());
                bytes.push((net_bytes(&mut conn) - before) as f64);
            }
            eprintln!(
                "{shape}, {setting}: {:.2} s, {:.1} MB",
                median(makespans.clone()),
                median(bytes.clone()) / 1e6
            );
            rows.push(Row {
                shape,
                setting,
                makespan_s: median(makespans),
                bytes: median(bytes),
                answer,
            });
        }
    }
    println!("\n| shape | setting | makespan (s) | vs off | MB through Redis | vs off | answer |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | --- |");
    for row in &rows {
        let off = rows
            .iter()
            .find(|r| r.shape == row.shape && r.setting == "off")
            .expect("off runs first");
        println!(
            "| {} | {} | {:.2} | {:.2}x | {:.1} | {:.2}x | {} |",
            row.shape,
            row.setting,
            row.makespan_s,
            row.makespan_s / off.makespan_s,
            row.bytes / 1e6,
            off.bytes / row.bytes.max(1.0),
            row.answer
        );
        assert_eq!(
            row.answer, off.answer,
            "{} differs with {}",
            row.shape, row.setting
        );
    }
}
