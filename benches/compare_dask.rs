//! The DAG shapes of `../shared/peers/bench_dask.py`, on dag, one JSON line per shape.
//!
//! The shapes and task bodies mirror `../shared/peers/dask_shapes.py` one for one, and each line
//! has the fields of `bench_dask.py`'s lines (`system`, `scheduler`, `shape`, `n_tasks`,
//! `compute_s`, `build_s`, `us_per_task`, ...), so `benches/compare_dask.sh` can put both in
//! one table:
//!
//! - `tree_kK` (K = 10, 12, 14, 16): 2^K leaves `inc(i)`, pairwise `add` to one sink;
//! - `chain_10000`: 10,000 tasks in a line, each adding 1;
//! - `fan_10000`: one `source`, 10,000 `inc` children, one `sum_list` sink;
//! - `wordcount_64`: the text of `--text FILE` cut into 64 chunks exactly as `split_chunks`
//!   does, per chunk lower-case and count the runs of `[a-z']`, one merge.
//!
//! Per shape: one warm-up on a small instance of the shape, then `--repeats` times build a fresh
//! graph (timed as `build_s`) and time `compute_on` alone (lowering, running, fetching the
//! result; `compute_s`). The runtime is built once, before the first shape.
//!
//! ```text
//! cargo bench --bench compare_dask -- [--runtime embedded|redis|pool] [--redis URL]
//!     [--shapes tree_k10,...,wordcount_64] [--repeats 3] [--text FILE] [--out FILE.jsonl]
//! ```
//!
//! Without `--text`, `wordcount_64` is skipped. `--runtime redis` (the Redis store, worker
//! threads in this process) and `--runtime pool` (the Redis store, a pool of 2 worker processes,
//! which are this executable started again) need `--redis URL`.

use std::collections::HashMap;
use std::time::Instant;

use dag::prelude::*;
use dag_test_support::reduce_pairwise;

mod shapes;
use shapes::{sum_1_to, Args, Record};

#[task]
fn inc(x: u64) -> u64 {
    x + 1
}

#[task]
fn add(x: u64, y: u64) -> u64 {
    x + y
}

#[task]
fn source() -> u64 {
    0
}

#[task]
fn sum_list(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

/// `Counter(re.findall(r"[a-z']+", chunk.lower()))`.
#[task]
fn tokenize_count(chunk: String) -> HashMap<String, u64> {
    shapes::count_words(&chunk)
}

/// Adds the chunks' counts up (a `Counter.update` loop).
#[task]
fn merge_counts(counters: Vec<HashMap<String, u64>>) -> HashMap<String, u64> {
    shapes::merge_counts(counters)
}

fn tree(k: u32) -> (Node<u64>, usize, u64) {
    let n = 1u64 << k;
    let root = reduce_pairwise((0..n).map(inc).collect(), |a, b| add(a, b));
    (root, 2 * n as usize - 1, sum_1_to(n))
}

fn chain(n: usize) -> (Node<u64>, usize, u64) {
    let mut x = inc(0);
    for _ in 1..n {
        x = inc(x);
    }
    (x, n, n as u64)
}

fn fan(width: usize) -> (Node<u64>, usize, u64) {
    let src = source();
    let children: Vec<Node<u64>> = (0..width).map(|_| inc(&src)).collect();
    (sum_list(children), width + 2, width as u64)
}

fn wordcount(chunks: &[String]) -> (Node<HashMap<String, u64>>, usize) {
    let counts: Vec<_> = chunks.iter().map(|c| tokenize_count(c.clone())).collect();
    (merge_counts(counts), chunks.len() + 1)
}

fn main() {
    // Worker processes of `--runtime pool` are this executable started again.
    dag::worker::run_if_worker();
    if shapes::is_test_run() {
        return;
    }
    if let Err(error) = run() {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse("--runtime", "embedded")?;
    let redis_url = || {
        args.redis
            .as_deref()
            .ok_or(format!("--runtime {} needs --redis URL", args.variant))
    };
    let runtime = match args.variant.as_str() {
        "embedded" => Runtime::builder().build()?,
        "redis" => Runtime::builder().redis(redis_url()?).build()?,
        "pool" => Runtime::builder()
            .redis(redis_url()?)
            .spawn_workers(2)
            .build()?,
        other => return Err(format!("--runtime is embedded, redis or pool, not {other:?}").into()),
    };
    let chunks = match &args.text {
        Some(path) => Some(shapes::read_chunks(path)?),
        None => None,
    };
    // A generic warm-up (worker threads or processes, connections, page faults).
    tree(6).0.compute_on(&runtime)?;

    for name in &args.shapes {
        let mut build_s = Vec::new();
        let mut compute_s = Vec::new();
        let mut n_tasks = 0;
        let mut counts = None;
        if let Some(k) = shapes::tree_k(name) {
            let k = k?;
            tree(4).0.compute_on(&runtime)?;
            for _ in 0..args.repeats {
                let t = Instant::now();
                let (sink, n, expected) = tree(k);
                build_s.push(t.elapsed().as_secs_f64());
                let t = Instant::now();
                let result = sink.compute_on(&runtime)?;
                compute_s.push(t.elapsed().as_secs_f64());
                check(result == expected, name, &format!("{result} != {expected}"))?;
                n_tasks = n;
            }
        } else if name == "chain_10000" || name == "fan_10000" {
            let build: fn(usize) -> (Node<u64>, usize, u64) =
                if name == "chain_10000" { chain } else { fan };
            build(50).0.compute_on(&runtime)?;
            for _ in 0..args.repeats {
                let t = Instant::now();
                let (sink, n, expected) = build(10_000);
                build_s.push(t.elapsed().as_secs_f64());
                let t = Instant::now();
                let result = sink.compute_on(&runtime)?;
                compute_s.push(t.elapsed().as_secs_f64());
                check(result == expected, name, &format!("{result} != {expected}"))?;
                n_tasks = n;
            }
        } else if name == "wordcount_64" {
            let Some(chunks) = &chunks else {
                eprintln!("[dag/{}] {name}: skipped (no --text FILE)", args.variant);
                continue;
            };
            let expected = shapes::merge_counts_direct(chunks);
            wordcount(&shapes::small_chunks(chunks))
                .0
                .compute_on(&runtime)?;
            for _ in 0..args.repeats {
                let t = Instant::now();
                let (sink, n) = wordcount(chunks);
                build_s.push(t.elapsed().as_secs_f64());
                let t = Instant::now();
                let result = sink.compute_on(&runtime)?;
                compute_s.push(t.elapsed().as_secs_f64());
                check(result == expected, name, "the counts differ")?;
                n_tasks = n;
            }
            counts = Some(expected);
        } else {
            return Err(format!("unknown shape {name}").into());
        }
        Record {
            system: "dag",
            scheduler: &args.variant,
            workers: runtime.workers(),
            shape: name,
            n_tasks,
            build_s,
            compute_s,
            top5: counts.as_ref(),
            note: None,
        }
        .emit(args.out.as_deref())?;
    }
    Ok(())
}

/// A wrong result ends the bench with an error naming the shape.
fn check(ok: bool, shape: &str, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("{shape}: wrong result: {what}"))
    }
}
