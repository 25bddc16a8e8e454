//! What metrics cost per task: the same graphs with metrics off and with each upload strategy,
//! interleaved in rounds, on the embedded runtime and on Redis.
//!
//! - Embedded: a tree of 2^16 leaves (131,071 tasks), metrics in memory.
//! - Redis (its own `redis-server`, or the in-process one if there is none; local threads): a
//!   tree of 2^12 leaves (8,191 tasks), metrics in the DAG's Redis. Also counts the round trips
//!   per task the workers and the client sent (`INFO commandstats`): uploads are batched, so
//!   with any strategy but `task` they stay well under one per task.
//!
//! Prints medians of µs/task per configuration and the ratio to metrics off.
//!
//! ```text
//! cargo bench --bench metrics
//! DAG_BENCH_ROUNDS=7 cargo bench --bench metrics
//! DAG_BENCH_ONLY=shutdown,task cargo bench --bench metrics   # `off` and these only
//! DAG_BENCH_REDIS=0 cargo bench --bench metrics              # the embedded runtime only
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dag::metrics::{MetricsStorage, Upload};
use dag::prelude::*;
use dag_test_support::{benchmark_backend, reduce_pairwise, TestRedis};

#[task]
fn leaf(i: u64) -> u64 {
    i
}

#[task]
fn add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b)
}

fn tree(k: u32) -> (Node<u64>, u64) {
    let leaves = 1u64 << k;
    let sink = reduce_pairwise((0..leaves).map(leaf).collect(), |a, b| add(a, b));
    (sink, leaves * (leaves - 1) / 2)
}

/// The configurations measured: a name and the storage (None: metrics off).
fn configurations(memory: bool) -> Vec<(&'static str, Option<MetricsStorage>)> {
    let target = || {
        if memory {
            MetricsStorage::memory()
        } else {
            MetricsStorage::dag_store()
        }
    };
    let only = std::env::var("DAG_BENCH_ONLY").ok();
    let all = vec![
        ("off", None),
        ("shutdown", Some(target().upload(Upload::OnShutdown))),
        ("task", Some(target().upload(Upload::EachTask))),
        (
            "every:1s",
            Some(target().upload(Upload::Every(Duration::from_secs(1)))),
        ),
        ("batch:1000", Some(target().upload(Upload::Batch(1000)))),
    ];
    // `DAG_BENCH_ONLY=off,shutdown` measures those alone (for a profiler); `off` always runs,
    // as the reference.
    all.into_iter()
        .filter(|(name, _)| {
            *name == "off"
                || only
                    .as_deref()
                    .is_none_or(|only| only.split(',').any(|o| o == *name))
        })
        .collect()
}

fn command_stats(conn: &mut redis::Connection) -> HashMap<String, u64> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(conn).unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|f| f.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

/// Round trips a client sends itself (see benches/redis_commands.rs): script calls, reads,
/// blocking waits, pipelines of metrics uploads (one `EXEC`-less pipeline counts its commands).
const CLIENT_COMMANDS: &[&str] = &["evalsha", "eval", "mget", "blpop", "exists", "rpush", "set"];

/// CPU time this process has used (every thread: the workers, the metrics thread, the
/// client), in µs. Steadier than wall-clock time on a shared machine, and what metrics really
/// cost when the cores are busy.
fn cpu_us() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let rounds: usize = std::env::var("DAG_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);

    // Embedded.
    let (sink, expected) = tree(16);
    let tasks = (2u64 << 16) - 1;
    let embedded = configurations(true);
    // A fresh runtime for each run: what one `compute` costs with metrics, with no records of
    // earlier runs kept in the process (they would weigh on every configuration's allocator).
    let runtime_for = |storage: &Option<MetricsStorage>| {
        let builder = Runtime::builder();
        match storage {
            Some(storage) => builder.metrics(storage.clone()),
            None => builder,
        }
        .build()
        .unwrap()
    };
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); embedded.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); embedded.len()];
    for round in 0..=rounds {
        for (i, (_, storage)) in embedded.iter().enumerate() {
            let runtime = runtime_for(storage);
            let started = Instant::now();
            let cpu_before = cpu_us();
            assert_eq!(sink.compute_on(&runtime), Ok(expected));
            let us = started.elapsed().as_secs_f64() * 1e6 / tasks as f64;
            // The CPU time includes the upload (with `shutdown`, all of it happens here).
            if let Some(metrics) = runtime.metrics() {
                metrics.flush().unwrap();
                assert_eq!(metrics.dropped(), 0, "no record dropped");
            }
            let cpu_per_task = (cpu_us() - cpu_before) / tasks as f64;
            if let Some(metrics) = runtime.metrics() {
                let run = metrics.last_run().unwrap().expect("the run's metrics");
                assert_eq!(run.tasks.len() as u64, tasks, "a record per task");
            }
            drop(runtime);
            if round > 0 {
                times[i].push(us); // round 0 warms up
                cpu[i].push(cpu_per_task);
            }
        }
    }
    println!("embedded, tree of 2^16 leaves ({tasks} tasks), {rounds} rounds, medians:");
    let off = median(&mut times[0].clone());
    let off_cpu = median(&mut cpu[0].clone());
    for (((name, _), times), cpu) in embedded.iter().zip(&mut times).zip(&mut cpu) {
        let us = median(times);
        let cpu = median(cpu);
        println!(
            "  metrics {name:<11} {us:7.3} µs/task  ×{:.3}   CPU {cpu:7.3} µs/task  ×{:.3}",
            us / off,
            cpu / off_cpu
        );
    }
    if std::env::var("DAG_BENCH_REDIS").is_ok_and(|v| v == "0") {
        return;
    }

    // Redis.
    let server = TestRedis::start_on(benchmark_backend(), None);
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let (sink, expected) = tree(12);
    let tasks = (2u64 << 12) - 1;
    let on_redis = configurations(false);
    let runtimes: Vec<Runtime> = on_redis
        .iter()
        .map(|(_, storage)| {
            let builder = Runtime::builder().redis(server.url()).workers(8);
            match storage {
                Some(storage) => builder.metrics(storage.clone()),
                None => builder,
            }
            .build()
            .unwrap()
        })
        .collect();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); on_redis.len()];
    let mut trips: Vec<f64> = vec![0.0; on_redis.len()];
    for round in 0..=rounds {
        for (i, runtime) in runtimes.iter().enumerate() {
            let before = command_stats(&mut conn);
            let started = Instant::now();
            assert_eq!(sink.compute_on(runtime), Ok(expected));
            let us = started.elapsed().as_secs_f64() * 1e6 / tasks as f64;
            if let Some(metrics) = runtime.metrics() {
                metrics.flush().unwrap();
            }
            let after = command_stats(&mut conn);
            let sent: u64 = CLIENT_COMMANDS
                .iter()
                .map(|c| after.get(*c).copied().unwrap_or(0) - before.get(*c).copied().unwrap_or(0))
                .sum();
            if round > 0 {
                times[i].push(us);
                trips[i] = sent as f64 / tasks as f64;
            }
        }
    }
    println!(
        "Redis ({}), local threads, tree of 2^12 leaves ({tasks} tasks), {rounds} rounds, medians:",
        server.backend().name()
    );
    let off = median(&mut times[0].clone());
    for (((name, _), times), trips) in on_redis.iter().zip(&mut times).zip(&trips) {
        let us = median(times);
        println!(
            "  metrics {name:<11} {us:7.2} µs/task  ×{:.3}  {trips:.3} client commands/task",
            us / off
        );
    }
}
