//! A store whose contents a hostile (or buggy) user tampers with, through a plain Redis client:
//! every promise still holds. A client never waits forever, a worker never dies of what it
//! reads, and a stray value is never taken for a result.
//!
//! One worker pool serves every test of this binary: `dag::worker::serve` on threads of this
//! process, reading a stream of its own on a `redis-server` of its own.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use dag::prelude::*;
use dag::store::{DagId, FailureKind, Outcome, RedisConfig, RedisStore, Store};
use dag::worker::WorkerOptions;
use dag_test_support::TestRedis;

#[task]
fn inc(x: u64) -> u64 {
    x + 1
}

#[task]
fn slow_inc(x: u64, ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    x + 1
}

#[task]
fn numbers(n: u64) -> Vec<u64> {
    (0..n).collect()
}

#[task]
fn gate(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    0
}

#[task]
fn shift(x: u64, by: u64) -> u64 {
    x + by
}

#[task]
fn total(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

#[task]
fn big(n: usize) -> String {
    "x".repeat(n)
}

#[task]
fn length(text: String) -> usize {
    text.len()
}

/// The stream the pool of this binary serves.
const STREAM: &str = "hostile:invocations";

/// The server and the worker pool every test shares, started on first use.
static POOL: LazyLock<TestRedis> = LazyLock::new(|| {
    let server = TestRedis::start();
    let options = WorkerOptions::new(server.url())
        .stream(STREAM)
        .concurrency(4);
    std::thread::spawn(move || dag::worker::serve(options));
    server
});

fn plain_client() -> redis::Connection {
    redis::Client::open(POOL.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// The first key matching `pattern` on `server`, waiting up to 10 s for it to appear.
fn wait_for_key(server: &TestRedis, pattern: &str) -> String {
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query(&mut conn).unwrap();
        if let Some(key) = keys.into_iter().next() {
            return key;
        }
        assert!(Instant::now() < deadline, "no key {pattern} appeared");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn pool_runtime() -> Runtime {
    Runtime::builder()
        .redis(POOL.url())
        .worker_pool()
        .stream(STREAM)
        .build()
        .unwrap()
}

/// Writes a DAG the way a client does, but with `plan` as the plan's bytes, and queues its node
/// 0 for the pool; returns its id.
fn submit_raw(plan: &[u8]) -> DagId {
    let dag = DagId::new();
    let mut conn = plain_client();
    // A plan is a hash of chunks (see the store's `plan_chunks`): this one has one chunk.
    redis::pipe()
        .hset(format!("dag:{{{dag}}}:plan"), 0, plan)
        .set(format!("dag:{{{dag}}}:status"), "running")
        .cmd("XADD")
        .arg(STREAM)
        .arg("*")
        .arg("dag")
        .arg(dag.as_str())
        .arg("node")
        .arg(0)
        .query::<()>(&mut conn)
        .unwrap();
    dag
}

/// Waits for `dag`'s outcome as a client does, failing the test after `limit`.
fn outcome_within(dag: &DagId, limit: Duration) -> Outcome {
    let io = tokio::runtime::Runtime::new().unwrap();
    io.block_on(async {
        let store = RedisStore::connect(&POOL.url()).await.unwrap();
        tokio::time::timeout(limit, store.wait(dag))
            .await
            .unwrap_or_else(|_| panic!("DAG {dag} left its client waiting for {limit:?}"))
            .unwrap()
    })
}

#[test]
fn a_plan_that_does_not_decode_fails_its_dag_promptly() {
    let dag = submit_raw(b"\xc1\xc1 garbage");
    match outcome_within(&dag, Duration::from_secs(20)) {
        Outcome::Failed(record) => {
            assert_eq!(record.kind, FailureKind::Store, "{record:?}");
            assert!(record.message.contains("plan"), "{}", record.message);
        }
        Outcome::Success(bytes) => panic!("a garbage plan succeeded with {bytes:?}"),
    }
}

#[test]
fn an_inconsistent_plan_fails_its_dag_and_the_worker_goes_on() {
    let mut plan = inc(inc(1)).plan().unwrap();
    // A task index out of range, with or without signatures to check it against.
    plan.nodes[0].task = 99;
    let dag = submit_raw(&rmp_serde::to_vec(&plan).unwrap());
    match outcome_within(&dag, Duration::from_secs(20)) {
        Outcome::Failed(record) => {
            assert_eq!(record.kind, FailureKind::InvalidPlan, "{record:?}");
            assert!(record.message.contains("task 99"), "{}", record.message);
        }
        Outcome::Success(bytes) => panic!("an inconsistent plan succeeded with {bytes:?}"),
    }
    plan.signatures.clear();
    let dag = submit_raw(&rmp_serde::to_vec(&plan).unwrap());
    match outcome_within(&dag, Duration::from_secs(20)) {
        Outcome::Failed(record) => {
            assert_eq!(record.kind, FailureKind::InvalidPlan, "{record:?}");
            assert!(
                record.message.contains("inconsistent"),
                "{}",
                record.message
            );
        }
        Outcome::Success(bytes) => panic!("an inconsistent plan succeeded with {bytes:?}"),
    }
    // The pool still serves.
    assert_eq!(inc(inc(1)).compute_on(&pool_runtime()).unwrap(), 3);
}

/// Pushes `values` onto the result list of the one DAG on `server`, once it is there.
fn push_onto_result_list(server: &TestRedis, values: impl Fn(&str) -> Vec<Vec<u8>>) {
    let status = wait_for_key(server, "dag:{*}:status");
    let id = status
        .trim_start_matches("dag:{")
        .trim_end_matches("}:status")
        .to_owned();
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("RPUSH")
        .arg(status.replace(":status", ":result"))
        .arg(values(&id))
        .query::<()>(&mut conn)
        .unwrap();
}

#[test]
fn a_stray_value_on_the_result_list_is_not_taken_for_the_result() {
    let server = TestRedis::start();
    let runtime = Runtime::builder().redis(server.url()).build().unwrap();
    let waiting = std::thread::spawn(move || slow_inc(41, 600).compute_on(&runtime));
    push_onto_result_list(&server, |id| {
        vec![
            b"\x92\x01\x02".to_vec(),                  // a value in no format of ours
            b"S".to_vec(),                             // a tag alone
            b"Sother\n".to_vec(),                      // another DAG's outcome
            format!("F{id}\n{{not json").into_bytes(), // this DAG's tag, a broken failure
        ]
    });
    assert_eq!(waiting.join().unwrap().unwrap(), 42);
}

#[test]
fn a_result_with_bytes_left_over_is_an_error_not_a_value() {
    let server = TestRedis::start();
    let runtime = Runtime::builder().redis(server.url()).build().unwrap();
    let waiting = std::thread::spawn(move || slow_inc(41, 600).compute_on(&runtime));
    // This DAG's own format, holding a u64 followed by one byte too many.
    push_onto_result_list(&server, |id| {
        let mut value = format!("S{id}\n").into_bytes();
        value.extend_from_slice(&rmp_serde::to_vec(&7_u64).unwrap());
        value.push(0);
        vec![value]
    });
    match waiting.join().unwrap() {
        Err(DagError::Codec { message, .. }) => assert!(message.contains("follow"), "{message}"),
        other => panic!("expected a decoding error, got {other:?}"),
    }
}

#[test]
fn five_bytes_claiming_two_billion_elements_fail_the_map_not_the_worker() {
    // The list `numbers` outputs is stored while `gate` still runs; the map node waits for both
    // and fetches the list from Redis, where it now finds a header that claims 2^31 - 1
    // elements followed by nothing.
    let server = TestRedis::start();
    let runtime = Runtime::builder()
        .redis(server.url())
        .workers(2)
        .build()
        .unwrap();
    let gated = gate(800);
    let graph = total(numbers(3).map(|x| shift(x, &gated)));
    let list_node = {
        let plan = graph.plan().unwrap();
        (0..plan.nodes.len() as u32)
            .find(|&n| plan.task_name(n).ends_with("numbers"))
            .unwrap()
    };
    let waiting = std::thread::spawn(move || graph.compute_on(&runtime));
    let key = wait_for_key(&server, &format!("dag:{{*}}:out:{list_node}"));
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("SET")
        .arg(&key)
        .arg(b"\xdd\x7f\xff\xff\xff".as_slice())
        .arg("KEEPTTL")
        .query::<()>(&mut conn)
        .unwrap();
    match waiting.join().unwrap() {
        Err(DagError::TaskFailed { message, .. }) => {
            assert!(message.contains("not a list"), "{message}");
        }
        other => panic!("expected the map to fail, got {other:?}"),
    }
}

#[test]
fn an_output_over_the_limit_is_value_too_large_naming_the_task() {
    let runtime = Runtime::builder()
        .redis(POOL.url())
        .redis_config(RedisConfig {
            max_value_bytes: 1000,
            ..RedisConfig::default()
        })
        .build()
        .unwrap();
    match length(big(5000)).compute_on(&runtime) {
        Err(DagError::ValueTooLarge { what, size, limit }) => {
            assert!(what.contains("big"), "{what}");
            assert!(size > 5000, "{size}");
            assert_eq!(limit, 1000);
        }
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
}

#[test]
fn a_dropped_compute_is_cleaned_up_before_its_runtime_goes() {
    let server = TestRedis::start();
    let runtime = Runtime::builder().redis(server.url()).build().unwrap();
    let graph = slow_inc(1, 2000);
    let io = tokio::runtime::Runtime::new().unwrap();
    let dropped = io.block_on(async {
        tokio::time::timeout(Duration::from_millis(300), graph.compute_async_on(&runtime)).await
    });
    assert!(dropped.is_err(), "the slow task finished within 300 ms");
    // The program ends right away: the runtime goes, and must take the DAG's keys with it.
    drop(runtime);
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let left: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    assert!(left.is_empty(), "keys left behind: {left:?}");
}

#[test]
fn consumers_left_by_dead_workers_are_pruned() {
    let io = tokio::runtime::Runtime::new().unwrap();
    io.block_on(async {
        let store = RedisStore::connect(&POOL.url()).await.unwrap();
        let stream = dag::store::InvocationStream::new(store, "hostile:prune");
        stream.create_group().await.unwrap();
        // A consumer that ran one invocation and died, and one that still holds an entry.
        stream
            .submit(&[(DagId::new(), 0), (DagId::new(), 0)])
            .await
            .unwrap();
        let mut dead = stream.reader("dead/t0").await.unwrap();
        let ran = dead.read(1, Duration::from_millis(50)).await.unwrap();
        stream.ack(&[ran[0].id.clone()]).await.unwrap();
        let mut busy = stream.reader("busy/t0").await.unwrap();
        assert_eq!(
            busy.read(1, Duration::from_millis(50)).await.unwrap().len(),
            1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            stream
                .prune_consumers(Duration::from_millis(20))
                .await
                .unwrap(),
            1
        );
        // Only the idle one went: the busy one's entry is still pending with it.
        assert_eq!(stream.pending().await.unwrap(), 1);
        assert_eq!(
            stream
                .prune_consumers(Duration::from_millis(20))
                .await
                .unwrap(),
            0
        );
        stream.destroy().await.unwrap();
    });
}
