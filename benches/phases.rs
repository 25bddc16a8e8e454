//! Where the time of one shape goes, phase by phase: for `BENCHMARKS.md`'s "Where the time
//! goes", and a steady load to run under `perf record`.
//!
//! Per repeat, one JSON line: building the graph (`build_s`), lowering it alone (`lower_s`,
//! `Node::plan` on the same graph, not part of the next figure), and `compute_on` (lowering,
//! running, fetching the result: `compute_s`), with the CPU time this process spent in that
//! `compute_on` (user and system, from `getrusage`). On Redis it adds the server's CPU time
//! over the same `compute_on` (`INFO cpu`, read with `redis-cli`), so a latency-bound shape
//! splits into client CPU, server CPU and the rest (waiting: loopback, wake-ups, the scheduler).
//!
//! ```text
//! cargo bench --bench phases -- [--shape tree_k16|chain_10000|fan_10000]
//!     [--runtime embedded|redis] [--redis redis://127.0.0.1:PORT] [--repeats 5] [--no-lower]
//! ```
//!
//! `--no-lower` skips the separate lowering (`lower_s` is then 0), so that a profile of the run
//! holds one lowering per `compute_on`, as a user's program does.

use std::process::Command;
use std::time::Instant;

use dag::prelude::*;

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

/// The graph of `shape` and the value it computes.
fn build(shape: &str) -> Result<(Node<u64>, usize, u64), String> {
    if let Some(k) = shape.strip_prefix("tree_k") {
        let k: u32 = k.parse().map_err(|_| format!("bad shape {shape}"))?;
        let n = 1u64 << k;
        let leaves: Vec<Node<u64>> = (0..n).map(inc).collect();
        let root = dag_test_support::reduce_pairwise(leaves, |a, b| add(a, b));
        return Ok((root, 2 * n as usize - 1, n * (n + 1) / 2));
    }
    match shape {
        "chain_10000" => {
            let mut x = inc(0);
            for _ in 1..10_000 {
                x = inc(x);
            }
            Ok((x, 10_000, 10_000))
        }
        "fan_10000" => {
            let src = source();
            let children: Vec<Node<u64>> = (0..10_000).map(|_| inc(&src)).collect();
            Ok((sum_list(children), 10_002, 10_000))
        }
        other => Err(format!("unknown shape {other}")),
    }
}

/// User + system CPU seconds of this process so far.
fn cpu_s() -> f64 {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

/// The server's `used_cpu_user + used_cpu_sys`, or `None` if `redis-cli` cannot tell.
fn server_cpu_s(url: &str) -> Option<f64> {
    let out = Command::new("redis-cli")
        .args(["-u", url, "info", "cpu"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Some(field("used_cpu_user:")? + field("used_cpu_sys:")?)
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    if let Err(error) = run() {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (mut shape, mut runtime_name, mut url, mut repeats, mut lower_apart) = (
        "tree_k16".to_string(),
        "embedded".to_string(),
        None,
        5usize,
        true,
    );
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--bench" => {}
            "--shape" => shape = value()?,
            "--runtime" => runtime_name = value()?,
            "--redis" => url = Some(value()?),
            "--no-lower" => lower_apart = false,
            "--repeats" => repeats = value()?.parse().map_err(|_| "--repeats takes a number")?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let runtime = match (runtime_name.as_str(), &url) {
        ("embedded", _) => Runtime::builder().build()?,
        ("redis", Some(url)) => Runtime::builder().redis(url.as_str()).build()?,
        _ => return Err("--runtime is embedded, or redis with --redis URL".into()),
    };
    build("tree_k6")?.0.compute_on(&runtime)?;
    for _ in 0..repeats {
        let t = Instant::now();
        let (sink, n, expected) = build(&shape)?;
        let build_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        if lower_apart {
            drop(sink.plan()?);
        }
        let lower_s = t.elapsed().as_secs_f64();
        let server_before = url.as_deref().and_then(server_cpu_s);
        let cpu_before = cpu_s();
        let t = Instant::now();
        let value = sink.compute_on(&runtime)?;
        let compute_s = t.elapsed().as_secs_f64();
        let cpu = cpu_s() - cpu_before;
        let server = match (server_before, url.as_deref().and_then(server_cpu_s)) {
            (Some(a), Some(b)) => format!(
                ", \"server_cpu_us_per_task\": {:.2}",
                (b - a) / n as f64 * 1e6
            ),
            _ => String::new(),
        };
        if value != expected {
            return Err(format!("{shape}: {value} != {expected}").into());
        }
        println!(
            "{{\"shape\": \"{shape}\", \"runtime\": \"{runtime_name}\", \"n_tasks\": {n}, \
             \"build_s\": {build_s:.6}, \"lower_s\": {lower_s:.6}, \"compute_s\": {compute_s:.6}, \
             \"us_per_task\": {:.3}, \"lower_us_per_task\": {:.3}, \
             \"client_cpu_us_per_task\": {:.3}{server}}}",
            compute_s / n as f64 * 1e6,
            lower_s / n as f64 * 1e6,
            cpu / n as f64 * 1e6,
        );
    }
    Ok(())
}
