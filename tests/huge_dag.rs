//! One huge DAG on Redis does not stall the server for everyone else: no command or script
//! does work proportional to the DAG's size. Checked with Redis's own SLOWLOG on a fan-in of
//! 1,000,000 nodes (`DAG_HUGE_NODES` sets another size).

use dag::prelude::*;
use dag::store::RedisConfig;
use dag_test_support::{needs_redis_server, RedisServer};

#[task]
fn one(i: u32) -> u8 {
    (i % 2) as u8
}

#[task]
fn count(xs: Vec<u8>) -> u64 {
    xs.iter().map(|&x| u64::from(x)).sum()
}

/// The slowest a single command may be, in microseconds. The old cleanup script took 3.9 s and
/// the sink's single `MGET` 1.3 s on this DAG: work proportional to the DAG. What stays is the
/// server's own: a dict of millions of entries (the keyspace, the sink's finished-parents set)
/// that doubles allocates its new table inside whichever command grows it, which takes up to
/// about 30 ms on this machine under load (measured: a one-member `SADD` at 17 ms, a one-byte
/// `SET` at 29 ms). A batch of 1,000 keys takes well under 1 ms.
const SLOWEST_US: u64 = 100_000;

#[test]
fn a_fan_in_of_a_million_nodes_never_blocks_the_server() {
    if !needs_redis_server("a_fan_in_of_a_million_nodes_never_blocks_the_server") {
        return;
    }
    let nodes: u32 = std::env::var("DAG_HUGE_NODES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let server =
        RedisServer::start_with_args(&["--slowlog-log-slower-than", &SLOWEST_US.to_string()]);
    let runtime = Runtime::builder()
        .redis(server.url())
        .redis_config(RedisConfig {
            events: false,
            ..RedisConfig::default()
        })
        .build()
        .unwrap();
    let leaves: Vec<Node<u8>> = (0..nodes).map(one).collect();
    let started = std::time::Instant::now();
    assert_eq!(
        count(leaves).compute_on(&runtime).unwrap(),
        u64::from(nodes / 2)
    );
    eprintln!("{nodes} nodes on Redis in {:?}", started.elapsed());
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    // SLOWLOG GET: [[id, time, duration µs, [command, args...], ...], ...]
    let slow: Vec<(u64, u64, u64, Vec<redis::Value>)> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(10)
        .query::<Vec<redis::Value>>(&mut conn)
        .unwrap()
        .into_iter()
        .filter_map(|entry| match entry {
            redis::Value::Array(fields) if fields.len() >= 4 => {
                let number = |v: &redis::Value| match v {
                    redis::Value::Int(n) => *n as u64,
                    _ => 0,
                };
                let command = match &fields[3] {
                    redis::Value::Array(args) => args.iter().take(3).cloned().collect(),
                    _ => Vec::new(),
                };
                Some((
                    number(&fields[0]),
                    number(&fields[1]),
                    number(&fields[2]),
                    command,
                ))
            }
            _ => None,
        })
        .collect();
    assert!(
        slow.is_empty(),
        "commands slower than {SLOWEST_US} µs: {:?}",
        slow.iter()
            .map(|(_, _, us, command)| (us, command))
            .collect::<Vec<_>>()
    );
    // And nothing of the DAG is left.
    let left: u64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert_eq!(left, 0);
}
