//! Redis commands and round trips per task, and per-task time against one loopback round trip.
//!
//! Starts its own `redis-server` on a free port, runs three graphs on a Redis runtime and reads
//! `INFO commandstats` before and after each (after `CONFIG RESETSTAT`):
//!
//! - a chain of 10,000 tasks,
//! - a tree reduction of 16,384 leaves (32,767 tasks),
//! - a fan-out/fan-in 10,000 wide (10,002 tasks).
//!
//! Commands counts every command the server ran, including those a Lua script ran; round trips
//! count what clients sent (`EVALSHA`, `MGET`, `BLPOP`, a `MULTI ... EXEC` pipeline as one, ...).
//! The per-task time is compared with the latency of one `PING` from
//! `redis-benchmark -t ping -n 100000 -q` on the same server, one client (`-c 1`, the loopback
//! round trip) and its default 50 clients (throughput).
//!
//! ```text
//! cargo bench --bench redis_commands
//! DAG_BENCH_WORKERS=2,4,8,16 cargo bench --bench redis_commands   # also sweep worker counts
//! DAG_BENCH_EVENTS=0 cargo bench --bench redis_commands            # without the events stream
//! ```

use std::collections::HashMap;
use std::process::Command;
use std::time::Instant;

use dag::prelude::*;
use dag::store::RedisConfig;
use dag_test_support::{benchmark_backend, reduce_pairwise, TestRedis};

#[task]
fn leaf(i: u64) -> u64 {
    i
}

#[task]
fn inc(x: u64) -> u64 {
    x + 1
}

#[task]
fn add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b)
}

#[task]
fn total(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

/// Commands a client sends itself; every other command in the stats ran inside a script or a
/// `MULTI` block (counted by its `EXEC`). `GET` is left out: the scripts call it, and clients
/// only send it when a plan is not cached, which does not happen here.
const CLIENT_COMMANDS: &[&str] = &[
    "evalsha",
    "eval",
    "mget",
    "blpop",
    "exists",
    "exec",
    "script",
    "ping",
    "hello",
    "auth",
    "select",
    "client|setinfo",
    "client|setname",
];

struct Shape {
    name: &'static str,
    tasks: usize,
    build: fn() -> (Node<u64>, u64),
}

fn chain() -> (Node<u64>, u64) {
    let mut node = leaf(0);
    for _ in 1..10_000 {
        node = inc(node);
    }
    (node, 9_999)
}

fn tree() -> (Node<u64>, u64) {
    let root = reduce_pairwise((0..16_384).map(leaf).collect(), |a, b| add(a, b));
    (root, (0..16_384).sum())
}

fn fan() -> (Node<u64>, u64) {
    let source = leaf(1);
    let middle: Vec<Node<u64>> = (0..10_000).map(|_| inc(&source)).collect();
    (total(middle), 20_000)
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "chain 10,000",
        tasks: 10_000,
        build: chain,
    },
    Shape {
        name: "tree 16,384 leaves",
        tasks: 32_767,
        build: tree,
    },
    Shape {
        name: "fan 10,000 wide",
        tasks: 10_002,
        build: fan,
    },
];

fn command_stats(conn: &mut redis::Connection) -> HashMap<String, u64> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(conn).unwrap();
    info.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("cmdstat_")?;
            let (name, fields) = rest.split_once(':')?;
            let calls = fields.split(',').find_map(|f| f.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

/// Microseconds per `PING` from redis-benchmark with `clients` clients.
fn ping_latency_us(port: u16, clients: u32) -> Option<f64> {
    let output = Command::new("redis-benchmark")
        .args(["-p", &port.to_string(), "-t", "ping", "-n", "100000", "-q"])
        .args(["-c", &clients.to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // The last line with a rate is PING_MBULK; '\r'-separated progress lines precede it.
    let rps: f64 = text
        .split(['\n', '\r'])
        .filter(|l| l.contains("requests per second"))
        .filter_map(|l| l.split(':').nth(1)?.split_whitespace().next()?.parse().ok())
        .next_back()?;
    Some(1e6 / rps)
}

fn run(rt: &Runtime, conn: &mut redis::Connection, shape: &Shape) -> (f64, u64, u64) {
    let (sink, expected) = (shape.build)();
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(conn).unwrap();
    let before = command_stats(conn);
    let started = Instant::now();
    assert_eq!(sink.compute_on(rt), Ok(expected), "{}", shape.name);
    let elapsed = started.elapsed().as_secs_f64();
    let after = command_stats(conn);
    let delta =
        |name: &str| after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
    let ignored = ["info", "config|resetstat"];
    let commands: u64 = after
        .keys()
        .filter(|k| !ignored.contains(&k.as_str()))
        .map(|k| delta(k))
        .sum();
    let round_trips: u64 = CLIENT_COMMANDS.iter().map(|k| delta(k)).sum();
    (elapsed, commands, round_trips)
}

fn main() {
    // `cargo test --benches` runs benches with `--bench`-less args; keep that quick.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let server = TestRedis::start_on(benchmark_backend(), None);
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let events = std::env::var("DAG_BENCH_EVENTS").map_or(true, |v| v != "0");
    let config = RedisConfig {
        events,
        ..RedisConfig::default()
    };
    let rt = Runtime::builder()
        .redis(server.url())
        .redis_config(config)
        .build()
        .expect("the Redis runtime starts");
    let ping_1 = ping_latency_us(server.port(), 1);
    let ping_50 = ping_latency_us(server.port(), 50);
    println!(
        "{} {} on 127.0.0.1:{}, {} local workers, events {}",
        server.backend().name(),
        redis::cmd("INFO")
            .arg("server")
            .query::<String>(&mut conn)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("?")
            .trim(),
        server.port(),
        rt.workers(),
        if events { "on" } else { "off" },
    );
    println!(
        "loopback PING (redis-benchmark -t ping -n 100000 -q): -c 1: {} us, -c 50: {} us",
        ping_1.map_or("?".into(), |v| format!("{v:.1}")),
        ping_50.map_or("?".into(), |v| format!("{v:.1}")),
    );
    println!(
        "{:<20} {:>7} {:>10} {:>10} {:>12} {:>10} {:>12}",
        "shape", "tasks", "cmds/task", "rtt/task", "us/task", "/ping -c1", "/ping -c50"
    );
    // A warm-up run so the first measurement does not pay for connections and page faults.
    let _ = run(&rt, &mut conn, &SHAPES[2]);
    for shape in SHAPES {
        let (elapsed, commands, round_trips) = run(&rt, &mut conn, shape);
        let per_task_us = elapsed * 1e6 / shape.tasks as f64;
        println!(
            "{:<20} {:>7} {:>10.2} {:>10.2} {:>12.1} {:>10} {:>12}",
            shape.name,
            shape.tasks,
            commands as f64 / shape.tasks as f64,
            round_trips as f64 / shape.tasks as f64,
            per_task_us,
            ping_1.map_or("?".into(), |p| format!("{:.2}x", per_task_us / p)),
            ping_50.map_or("?".into(), |p| format!("{:.2}x", per_task_us / p)),
        );
    }

    if let Ok(list) = std::env::var("DAG_BENCH_WORKERS") {
        println!("\nworker sweep (us/task)");
        println!(
            "{:>8} {:>10} {:>10} {:>10}",
            "workers", "chain", "tree", "fan"
        );
        for workers in list
            .split(',')
            .filter_map(|w| w.trim().parse::<usize>().ok())
        {
            let rt = Runtime::builder()
                .redis(server.url())
                .redis_config(config)
                .workers(workers)
                .build()
                .unwrap();
            let per_task: Vec<String> = SHAPES
                .iter()
                .map(|s| {
                    let (elapsed, _, _) = run(&rt, &mut conn, s);
                    format!("{:.1}", elapsed * 1e6 / s.tasks as f64)
                })
                .collect();
            println!(
                "{:>8} {:>10} {:>10} {:>10}",
                workers, per_task[0], per_task[1], per_task[2]
            );
        }
    }
}
