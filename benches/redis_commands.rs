//! Redis server cost and latency per task: commands, round trips, Redis CPU time and the
//! per-command breakdown, and per-task time against one loopback round trip.
//!
//! Starts its own `redis-server` on a free port and runs, on a Redis runtime, while reading
//! `INFO commandstats` and `INFO cpu` before and after each run (after `CONFIG RESETSTAT`):
//!
//! - on local worker threads (16 by default): a chain of 10,000 tasks, a tree reduction of
//!   16,384 leaves (32,767 tasks), a fan-out/fan-in 10,000 wide (10,002 tasks);
//! - on a pool of 2 worker processes (this executable, `spawn_workers(2)`): a tree of 16,384
//!   leaves and a tree of 4,096 leaves (8,191 tasks).
//!
//! Per run: commands per task (every command the server ran, including those a Lua script ran),
//! round trips per task (what clients sent: `EVALSHA`, `MGET`, `BLPOP`, `XREADGROUP`, a
//! `MULTI ... EXEC` as one; a pipeline of `XADD`s counts as its commands: an upper bound), Redis CPU µs per task
//! (`used_cpu_sys + used_cpu_user` of `INFO cpu`, after minus before: everything the server
//! did, including waking blocked readers and its own timers), µs per task, and tasks per
//! second. The per-task time is compared with one loopback round trip measured in the same
//! run: a `PING` from this process on a plain blocking connection (median of 20,000), and
//! `redis-benchmark -t ping -n 100000 -q` with one client and with its default 50.
//!
//! With `DAG_BENCH_BREAKDOWN=1` (the default), each run is followed by its `INFO commandstats`
//! breakdown: calls per task and µs per call of every command.
//!
//! ```text
//! cargo bench --bench redis_commands
//! DAG_BENCH_WORKERS=2,4,8,16 cargo bench --bench redis_commands   # also sweep worker counts
//! DAG_BENCH_EVENTS=0 cargo bench --bench redis_commands            # without the events stream
//! DAG_BENCH_POOL=0 cargo bench --bench redis_commands              # without worker processes
//! DAG_BENCH_SHAPES=chain,tree cargo bench --bench redis_commands   # only the shapes named so
//! ```

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use dag::prelude::*;
use dag::store::RedisConfig;
use dag_test_support::{benchmark_backend, info_number, reduce_pairwise, TestRedis};

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
/// only send it when a plan is not cached, which happens once per worker process and DAG.
/// `XADD` is sent by clients (the invocations a worker queues) and by the completion script
/// (the `done` event): the script's are subtracted (one per `EVALSHA` of a completion when
/// events are on), and each of the rest counts as a round trip (an upper bound: the children
/// one step hands on, and a client's roots, go out in one pipeline). `XACK` and `XDEL` ride
/// with the next `XREADGROUP`, `XPENDING` with `XAUTOCLAIM`, `LTRIM` with `LPUSH`: not counted.
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
    "xreadgroup",
    "xautoclaim",
    "xclaim",
    "xgroup|create",
    "xinfo|consumers",
    "lpush",
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

fn tree_of(leaves: u64) -> (Node<u64>, u64) {
    let root = reduce_pairwise((0..leaves).map(leaf).collect(), |a, b| add(a, b));
    (root, (0..leaves).sum())
}

fn tree() -> (Node<u64>, u64) {
    tree_of(16_384)
}

fn tree_4096() -> (Node<u64>, u64) {
    tree_of(4_096)
}

fn fan() -> (Node<u64>, u64) {
    let source = leaf(1);
    let middle: Vec<Node<u64>> = (0..10_000).map(|_| inc(&source)).collect();
    (total(middle), 20_000)
}

const CHAIN: Shape = Shape {
    name: "chain 10,000",
    tasks: 10_000,
    build: chain,
};
const TREE: Shape = Shape {
    name: "tree 16,384 leaves",
    tasks: 32_767,
    build: tree,
};
const TREE_4096: Shape = Shape {
    name: "tree 4,096 leaves",
    tasks: 8_191,
    build: tree_4096,
};
const FAN: Shape = Shape {
    name: "fan 10,000 wide",
    tasks: 10_002,
    build: fan,
};

/// One command's line of `INFO commandstats`.
#[derive(Clone, Copy, Default)]
struct CommandStat {
    calls: u64,
    usec: u64,
}

fn command_stats(conn: &mut redis::Connection) -> BTreeMap<String, CommandStat> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(conn).unwrap();
    info.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("cmdstat_")?;
            let (name, fields) = rest.split_once(':')?;
            let field = |key: &str| {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(key))
                    .and_then(|v| v.parse().ok())
            };
            Some((
                name.to_owned(),
                CommandStat {
                    calls: field("calls=")?,
                    usec: field("usec=")?,
                },
            ))
        })
        .collect()
}

/// The server's CPU time so far (user + system), in µs.
fn server_cpu_us(conn: &mut redis::Connection) -> f64 {
    let mut field = |name| info_number(conn, "cpu", name).unwrap_or(0.0);
    (field("used_cpu_sys") + field("used_cpu_user")) * 1e6
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

/// Median µs of one `PING` round trip from this process on a blocking connection.
fn ping_round_trip_us(conn: &mut redis::Connection) -> f64 {
    let mut times: Vec<f64> = (0..20_000)
        .map(|_| {
            let started = Instant::now();
            let _: String = redis::cmd("PING").query(conn).unwrap();
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

/// What one run of a shape cost.
struct Measured {
    elapsed: f64,
    commands: u64,
    round_trips: u64,
    cpu_us: f64,
    stats: BTreeMap<String, (CommandStat, CommandStat)>,
}

fn run(rt: &Runtime, conn: &mut redis::Connection, shape: &Shape, events: bool) -> Measured {
    let (sink, expected) = (shape.build)();
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(conn).unwrap();
    let before = command_stats(conn);
    let cpu_before = server_cpu_us(conn);
    let started = Instant::now();
    assert_eq!(sink.compute_on(rt), Ok(expected), "{}", shape.name);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_us = server_cpu_us(conn) - cpu_before;
    let after = command_stats(conn);
    let ignored = ["info", "config|resetstat"];
    let stats: BTreeMap<String, (CommandStat, CommandStat)> = after
        .into_iter()
        .filter(|(k, _)| !ignored.contains(&k.as_str()))
        .map(|(k, a)| {
            let b = before.get(&k).copied().unwrap_or_default();
            let delta = CommandStat {
                calls: a.calls - b.calls,
                usec: a.usec - b.usec,
            };
            (k, (delta, a))
        })
        .filter(|(_, (d, _))| d.calls > 0)
        .collect();
    let delta = |name: &str| stats.get(name).map_or(0, |(d, _)| d.calls);
    let commands: u64 = stats.values().map(|(d, _)| d.calls).sum();
    // The completion script's `done` event is an XADD inside the script; the rest are
    // invocations queued by workers (sent by clients).
    let completions = if events {
        delta("evalsha").min(shape.tasks as u64)
    } else {
        0
    };
    let client_xadds = delta("xadd").saturating_sub(completions);
    let round_trips = CLIENT_COMMANDS.iter().map(|k| delta(k)).sum::<u64>() + client_xadds;
    Measured {
        elapsed,
        commands,
        round_trips,
        cpu_us,
        stats,
    }
}

fn print_row(label: &str, shape: &Shape, m: &Measured, ping: f64) {
    let tasks = shape.tasks as f64;
    let per_task_us = m.elapsed * 1e6 / tasks;
    println!(
        "{:<14} {:<20} {:>7} {:>9.2} {:>9.2} {:>10.1} {:>9.1} {:>9.0} {:>8.2}x",
        label,
        shape.name,
        shape.tasks,
        m.commands as f64 / tasks,
        m.round_trips as f64 / tasks,
        m.cpu_us / tasks,
        per_task_us,
        tasks / m.elapsed,
        per_task_us / ping,
    );
}

fn print_breakdown(shape: &Shape, m: &Measured) {
    let tasks = shape.tasks as f64;
    let mut rows: Vec<_> = m.stats.iter().collect();
    rows.sort_by_key(|(_, (d, _))| std::cmp::Reverse(d.usec));
    let line: Vec<String> = rows
        .iter()
        .map(|(name, (d, _))| {
            format!(
                "{name} {:.2}/task {:.1}us",
                d.calls as f64 / tasks,
                d.usec as f64 / d.calls as f64
            )
        })
        .collect();
    println!("    commandstats: {}", line.join(", "));
}

fn main() {
    // The pool's worker processes are this executable.
    dag::worker::run_if_worker();
    // `cargo test --benches` runs benches with `--bench`-less args; keep that quick.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let server = TestRedis::start_on(benchmark_backend(), None);
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let flag = |name: &str| std::env::var(name).map_or(true, |v| v != "0");
    let events = flag("DAG_BENCH_EVENTS");
    let breakdown = flag("DAG_BENCH_BREAKDOWN");
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
    let ping = ping_round_trip_us(&mut conn);
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
        "loopback PING round trip: {ping:.1} us (this process, blocking connection, median); \
         redis-benchmark -t ping -n 100000 -q: -c 1: {} us, -c 50: {} us",
        ping_1.map_or("?".into(), |v| format!("{v:.1}")),
        ping_50.map_or("?".into(), |v| format!("{v:.1}")),
    );
    println!(
        "{:<14} {:<20} {:>7} {:>9} {:>9} {:>10} {:>9} {:>9} {:>9}",
        "workers",
        "shape",
        "tasks",
        "cmds/task",
        "rtt/task",
        "cpu us/task",
        "us/task",
        "tasks/s",
        "/ping"
    );
    // A warm-up run so the first measurement does not pay for connections and page faults.
    let _ = run(&rt, &mut conn, &FAN, events);
    let only = std::env::var("DAG_BENCH_SHAPES").unwrap_or_default();
    let chosen =
        |shape: &Shape| only.is_empty() || only.split(',').any(|s| shape.name.starts_with(s));
    for shape in [&CHAIN, &TREE, &FAN].into_iter().filter(|s| chosen(s)) {
        let m = run(&rt, &mut conn, shape, events);
        print_row(&format!("{} threads", rt.workers()), shape, &m, ping);
        if breakdown {
            print_breakdown(shape, &m);
        }
    }

    if flag("DAG_BENCH_POOL") {
        let pool = Runtime::builder()
            .redis(server.url())
            .redis_config(config)
            .spawn_workers(2)
            .build()
            .expect("the pool starts");
        // The pool's first DAG includes its workers' start.
        let _ = run(&pool, &mut conn, &TREE_4096, events);
        for shape in [&TREE, &TREE_4096].into_iter().filter(|s| chosen(s)) {
            let m = run(&pool, &mut conn, shape, events);
            print_row("2 processes", shape, &m, ping);
            if breakdown {
                print_breakdown(shape, &m);
            }
        }
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
            let per_task: Vec<String> = [&CHAIN, &TREE, &FAN]
                .iter()
                .map(|s| {
                    let m = run(&rt, &mut conn, s, events);
                    format!("{:.1}", m.elapsed * 1e6 / s.tasks as f64)
                })
                .collect();
            println!(
                "{:>8} {:>10} {:>10} {:>10}",
                workers, per_task[0], per_task[1], per_task[2]
            );
        }
    }
}
