//! Where invocations run: local threads vs a pool of 2 worker processes vs one process per
//! invocation, on a tree reduction and on a word count with real work per task.
//!
//! ```sh
//! cargo bench --bench workers
//! DAG_BENCH_LEAVES=1024 DAG_BENCH_RUNS=5 cargo bench --bench workers
//! DAG_BENCH_MODES=pool,per-invocation cargo bench --bench workers
//! DAG_BENCH_POOL_THREADS=4 DAG_BENCH_ALIVE=8 cargo bench --bench workers   # threads per pool
//!                                                     # worker, processes alive per invocation
//! ```
//!
//! Each mode runs on a fresh `redis-server` on a free port (the local-thread modes too, for
//! the Redis store; the embedded memory store is shown for reference). The bench executable is
//! also the worker processes (its `main` calls `run_if_worker()` first). Printed per mode and
//! workload: the best wall time of `DAG_BENCH_RUNS` runs (default 3; one for one process per
//! invocation, where every run starts thousands of processes), tasks per second, and the cold
//! start of the worker processes (from being started to being ready to run a task).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dag::prelude::*;
use dag_test_support::{benchmark_backend, reduce_pairwise, sum_1_to, TestRedis};

#[task]
fn leaf(i: u64) -> u64 {
    i + 1
}

#[task]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// Generates chunk `seed` of a corpus (`bytes` long, English-like) and counts its words: real
/// work per task, without putting the corpus into the plan.
#[task]
fn count_chunk(seed: u64, bytes: u64) -> HashMap<String, u64> {
    const WORDS: &[&str] = &[
        "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be",
        "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have",
        "graph", "task", "worker", "redis", "node", "river", "mountain", "library", "lantern",
    ];
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut text = String::with_capacity(bytes as usize + 16);
    while (text.len() as u64) < bytes {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let r = (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as f64 / (1u64 << 31) as f64;
        text.push_str(WORDS[((r * r) * WORDS.len() as f64) as usize]);
        text.push(' ');
    }
    let mut counts = HashMap::new();
    for word in text.split_whitespace() {
        *counts.entry(word.to_uppercase()).or_insert(0) += 1;
    }
    counts
}

#[task]
fn merge(parts: Vec<HashMap<String, u64>>) -> u64 {
    let mut total: HashMap<String, u64> = HashMap::new();
    for part in parts {
        for (word, n) in part {
            *total.entry(word).or_insert(0) += n;
        }
    }
    total.values().sum()
}

/// A tree reduction over `leaves` leaves, and its task count.
fn tree(leaves: u64) -> (Node<u64>, u64) {
    let root = reduce_pairwise((0..leaves).map(leaf).collect(), |a, b| add(a, b));
    (root, 2 * leaves - 1)
}

fn wordcount(chunks: u64, bytes: u64) -> (Node<u64>, u64) {
    let parts: Vec<_> = (0..chunks).map(|i| count_chunk(i, bytes)).collect();
    (merge(parts), chunks + 1)
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    dag::worker::run_if_worker();

    let leaves = env_number("DAG_BENCH_LEAVES", 4096) as u64;
    let chunks = env_number("DAG_BENCH_CHUNKS", 128) as u64;
    let chunk_bytes = env_number("DAG_BENCH_CHUNK_BYTES", 256 * 1024) as u64;
    let runs = env_number("DAG_BENCH_RUNS", 3).max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_invocation_alive = env_number("DAG_BENCH_ALIVE", 2 * cores);
    let pool_threads = env_number("DAG_BENCH_POOL_THREADS", dag::worker::default_concurrency());
    let modes = std::env::var("DAG_BENCH_MODES")
        .unwrap_or_else(|_| "memory,local,pool,per-invocation".into());

    println!(
        "{cores} cores; tree reduction of {leaves} leaves ({} tasks); word count of {chunks} \
         chunks of {} KiB ({} tasks)",
        2 * leaves - 1,
        chunk_bytes / 1024,
        chunks + 1
    );
    // The word count's expected total, from the embedded runtime.
    let words = wordcount(chunks, chunk_bytes).0.compute().unwrap();
    println!(
        "{:<44} {:<12} {:>10} {:>12}   cold start per process",
        "mode", "workload", "time", "tasks/s"
    );
    for mode in modes.split(',').map(str::trim) {
        let server = TestRedis::start_on(benchmark_backend(), None);
        let (label, runtime, mode_runs) = match mode {
            "memory" => (
                "local threads, memory store".to_string(),
                Runtime::builder().build(),
                runs,
            ),
            "local" => (
                "local threads, Redis store".to_string(),
                Runtime::builder().redis(server.url()).build(),
                runs,
            ),
            "pool" => (
                format!("pool of 2 worker processes × {pool_threads} threads"),
                Runtime::builder()
                    .redis(server.url())
                    .spawn_workers(2)
                    .workers(pool_threads)
                    .build(),
                runs,
            ),
            "per-invocation" => (
                format!("one process per invocation (≤ {per_invocation_alive} alive)"),
                Runtime::builder()
                    .redis(server.url())
                    .process_per_invocation(per_invocation_alive)
                    .build(),
                1,
            ),
            other => {
                eprintln!("unknown mode {other:?}");
                continue;
            }
        };
        let runtime = runtime.expect("the runtime starts");
        let workloads = [
            ("tree", tree(leaves), sum_1_to(leaves)),
            ("wordcount", wordcount(chunks, chunk_bytes), words),
        ];
        for (name, (node, tasks), expected) in workloads {
            // The pool's first DAG includes its workers' start: warm it up once.
            if mode == "pool" {
                assert_eq!(node.compute_on(&runtime).unwrap(), expected);
            }
            let before = runtime.process_stats().unwrap().cold_starts.len();
            let mut best = Duration::MAX;
            for _ in 0..mode_runs {
                let started = Instant::now();
                let value = node.compute_on(&runtime).expect("the DAG completes");
                best = best.min(started.elapsed());
                assert_eq!(value, expected, "{label}, {name}");
            }
            let stats = runtime.process_stats().unwrap();
            let cold = if mode == "pool" {
                &stats.cold_starts[..]
            } else {
                &stats.cold_starts[before.min(stats.cold_starts.len())..]
            };
            println!(
                "{label:<44} {name:<12} {:>8.1}ms {:>12.0}   {}",
                best.as_secs_f64() * 1e3,
                tasks as f64 / best.as_secs_f64(),
                describe(cold, stats.started, stats.peak_alive, mode)
            );
        }
    }
}

fn describe(cold: &[Duration], started: usize, peak: usize, mode: &str) -> String {
    if cold.is_empty() {
        return match mode {
            "memory" | "local" => "(no processes)".into(),
            _ => format!("{started} processes, none recorded"),
        };
    }
    let mut ms: Vec<f64> = cold.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    format!(
        "{} processes (peak {peak} alive): mean {mean:.1} ms, median {:.1} ms, max {:.1} ms",
        ms.len(),
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    )
}
