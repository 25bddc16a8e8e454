//! A tree reduction: 2^K leaves, added pairwise level by level to one sum.
//!
//! ```sh
//! cargo run --release --example tree_reduction        # K = 14: 16,384 leaves
//! cargo run --release --example tree_reduction -- 16  # 65,536 leaves
//! ```
//!
//! On worker processes sharing a Redis server (see the README's "Worker processes"):
//!
//! ```sh
//! cargo run --release --example tree_reduction -- 12 --redis redis://127.0.0.1:6379 --workers 2
//! ```
//!
//! `--redis URL` (or `DAG_REDIS_URL`) alone sends the tasks to a pool of workers started by
//! hand with `--dag-worker`; `--workers N` starts N worker processes of this program instead.

use std::time::Instant;

use dag::prelude::*;

#[task]
fn leaf(i: u64) -> u64 {
    i + 1
}

#[task]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn main() {
    dag::worker::run_if_worker(); // a worker process serves here and exits
    if let Err(error) = run() {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().collect();
    let runtime = dag::worker::runtime_from_args(&mut args)?;
    let k: u32 = match args.get(1) {
        Some(k) => k
            .parse()
            .ok()
            .filter(|k| *k <= 24)
            .ok_or_else(|| format!("K must be an integer from 0 to 24, not {k:?}"))?,
        None => 14,
    };
    let leaves = 1u64 << k;

    let started = Instant::now();
    let mut level: Vec<Node<u64>> = (0..leaves).map(leaf).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| add(&pair[0], &pair[1]))
            .collect();
    }
    let built = started.elapsed();
    let sum = level[0].compute_on(&runtime)?;
    let total = started.elapsed();

    let tasks = 2 * leaves - 1;
    assert_eq!(sum, leaves * (leaves + 1) / 2, "the sum of 1..={leaves}");
    println!(
        "sum of 1..={leaves} = {sum}: {tasks} tasks, built in {:.1} ms, computed in {:.1} ms \
         ({:.2} µs per task)",
        built.as_secs_f64() * 1e3,
        (total - built).as_secs_f64() * 1e3,
        (total - built).as_secs_f64() * 1e6 / tasks as f64
    );
    dag::worker::print_run_summary(&runtime);
    Ok(())
}
