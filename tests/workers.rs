//! Worker processes, whole-system: real processes of this test executable serving DAGs through
//! a Redis Stream on a throwaway `redis-server`.
//!
//! This is a test binary with its own `main` (`harness = false`): it calls
//! `dag::worker::run_if_worker()` first, so that the processes it starts with `DAG_WORKER=1` are
//! workers, and then runs the checks below with `dag_test_support::run_tests` (libtest's command
//! line and output). Every check starts its own `redis-server` and stops every process it
//! started, also when it fails (a `WorkerProcess` is killed on drop, and workers started with
//! `DAG_PARENT_PID` stop when this process goes away).
//!
//! Started with `DAG_TEST_CLIENT=<mode>`, the executable is a client process instead (see
//! `interrupt::client_main`), for the checks of what Ctrl-C does to a client.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dag::prelude::*;
use dag::store::{InvocationStream, Outcome, RedisStore, Store, DEFAULT_STREAM};
use dag_test_support::{
    connect, keys_matching, reduce_pairwise, run_tests, sum_1_to, Test, TestRedis, WorkerBuilder,
    WorkerProcess,
};

mod support;

#[path = "workers/interrupt.rs"]
mod interrupt;
#[path = "workers/restart.rs"]
mod restart;

#[task]
fn leaf(i: u64, delay_ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(delay_ms));
    i + 1
}

#[task]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[task]
fn shout(word: String) -> String {
    word.to_uppercase()
}

#[task]
fn join_words(words: Vec<String>) -> String {
    words.join(" ")
}

/// A tree reduction over `leaves` leaves that sleep `delay_ms` each; its value is the sum of
/// `1..=leaves`.
fn tree(leaves: u64, delay_ms: u64) -> Node<u64> {
    let leaves = (0..leaves).map(|i| leaf(i, delay_ms)).collect();
    reduce_pairwise(leaves, |a, b| add(a, b))
}

/// `node.compute_on(runtime)`, failing the check instead of hanging.
fn compute<T: serde::de::DeserializeOwned + Send + 'static>(
    node: &Node<T>,
    runtime: &Runtime,
) -> Result<T, DagError> {
    support::compute_within(node, runtime, Duration::from_secs(60))
}

/// The keys of every DAG on a server (there should be none once every client has its outcome).
const DAG_KEYS: &str = "dag:{*";

/// How the checks start worker processes: serving `stream`, two threads each, recording their
/// cold start (see `ready_workers`).
fn pool(url: &str, stream: &str) -> WorkerBuilder {
    WorkerProcess::builder(url)
        .stream(stream)
        .concurrency(2)
        .record_cold_start()
}

/// `n` worker processes of this executable (see `pool`).
fn workers(n: usize, url: &str, stream: &str) -> Vec<WorkerProcess> {
    pool(url, stream).spawn_many(n)
}

/// Collects the `worker` fields of the `done` events of the DAGs running on the server at
/// `url`, as a dashboard would, until stopped. Returns the workers and the number of events seen.
struct EventWatcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<(BTreeSet<String>, usize)>>,
}

impl EventWatcher {
    fn start(url: &str) -> EventWatcher {
        let stop = Arc::new(AtomicBool::new(false));
        let mut conn = connect(url);
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut workers = BTreeSet::new();
            let mut events = BTreeSet::new();
            while !flag.load(Ordering::Relaxed) {
                let dags: Vec<String> = redis::cmd("ZRANGE")
                    .arg("dags")
                    .arg(0)
                    .arg(-1)
                    .query(&mut conn)
                    .unwrap_or_default();
                for dag in dags {
                    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
                        .arg(format!("dag:{{{dag}}}:events"))
                        .arg("-")
                        .arg("+")
                        .query(&mut conn)
                        .unwrap_or_default();
                    for (id, fields) in entries {
                        let done = fields.iter().any(|(k, v)| k == "event" && v == "done");
                        if let Some((_, worker)) = fields.iter().find(|(k, _)| k == "worker") {
                            if done {
                                workers.insert(worker.clone());
                                events.insert(format!("{dag}/{id}"));
                            }
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(15));
            }
            (workers, events.len())
        });
        EventWatcher {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (BTreeSet<String>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("finished once")
            .join()
            .expect("the watcher does not panic")
    }
}

impl Drop for EventWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits until `check` holds, for at most `limit`.
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    check()
}

fn process_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// The DAGs submitted to the server and not collected yet (the `dags` sorted set).
fn submitted_dags(conn: &mut redis::Connection) -> Vec<String> {
    redis::cmd("ZRANGE")
        .arg("dags")
        .arg(0)
        .arg(-1)
        .query(conn)
        .expect("ZRANGE answers")
}

/// How many worker processes started with `DAG_SPAWNED_AT_US` are serving `stream` (each
/// records its cold start when it is ready).
fn ready_workers(conn: &mut redis::Connection, stream: &str) -> usize {
    redis::cmd("LLEN")
        .arg(format!("{stream}:cold_start_us"))
        .query(conn)
        .unwrap_or(0)
}

fn stream_len(conn: &mut redis::Connection, key: &str) -> usize {
    redis::cmd("XLEN")
        .arg(key)
        .query(conn)
        .expect("XLEN answers")
}

// ------------------------------------------------------------------------------------------

fn three_worker_processes_share_one_dag() {
    let server = TestRedis::start();
    let runtime = Runtime::builder()
        .redis(server.url())
        .spawn_workers(3)
        .workers(2)
        .build()
        .expect("a runtime with three worker processes");
    assert_eq!(runtime.workers(), 0, "the client runs no tasks itself");
    let pids = runtime.worker_pids();
    assert_eq!(pids.len(), 3);

    let watcher = EventWatcher::start(&server.url());
    let sum = compute(&tree(96, 15), &runtime).expect("the DAG completes");
    let (workers, events) = watcher.finish();
    assert_eq!(sum, sum_1_to(96));
    assert!(events > 0, "the watcher saw the DAG's events");
    let processes: BTreeSet<u32> = workers
        .iter()
        .filter_map(|w| w.rsplit(':').next()?.parse().ok())
        .collect();
    assert!(
        processes.len() >= 2,
        "tasks ran on more than one worker process: {workers:?}"
    );
    assert!(
        processes.iter().all(|p| pids.contains(p)),
        "every task ran on one of the spawned workers {pids:?}: {workers:?}"
    );
    let stats = runtime.process_stats().unwrap();
    assert_eq!(stats.started, 3);
    assert_eq!(
        stats.cold_starts.len(),
        3,
        "each worker recorded its cold start"
    );

    let stream = runtime.invocation_stream().unwrap().key().to_owned();
    drop(runtime);
    assert!(
        pids.iter().all(|&p| !process_alive(p)),
        "dropping the runtime stops its workers"
    );
    let mut conn = connect(&server.url());
    assert_eq!(keys_matching(&mut conn, DAG_KEYS), Vec::<String>::new());
    let exists: bool = redis::cmd("EXISTS").arg(&stream).query(&mut conn).unwrap();
    assert!(!exists, "the runtime's own stream is deleted with it");
}

fn two_clients_share_one_pool() {
    let server = TestRedis::start();
    let _workers = workers(2, &server.url(), DEFAULT_STREAM);
    let client = |which: u64| {
        let url = server.url();
        std::thread::spawn(move || {
            let runtime = Runtime::builder()
                .redis(url)
                .worker_pool()
                .build()
                .expect("a client of the pool");
            for round in 0..3 {
                if which == 0 {
                    let leaves = 40 + round;
                    let sum = compute(&tree(leaves, 2), &runtime).unwrap();
                    assert_eq!(sum, sum_1_to(leaves), "client 0, round {round}");
                } else {
                    let words: Vec<Node<String>> =
                        (0..30).map(|i| shout(format!("w{round}x{i}"))).collect();
                    let text = compute(&join_words(words), &runtime).unwrap();
                    let expected: Vec<String> = (0..30).map(|i| format!("W{round}X{i}")).collect();
                    assert_eq!(text, expected.join(" "), "client 1, round {round}");
                }
            }
        })
    };
    let clients = [client(0), client(1)];
    for c in clients {
        c.join().expect("each client gets its own results");
    }
    let mut conn = connect(&server.url());
    assert_eq!(
        keys_matching(&mut conn, DAG_KEYS),
        Vec::<String>::new(),
        "nothing is left"
    );
    assert_eq!(
        stream_len(&mut conn, DEFAULT_STREAM),
        0,
        "every entry was acked"
    );
}

fn a_worker_without_a_task_fails_the_dag_naming_both() {
    let server = TestRedis::start();
    let mut workers = workers(1, &server.url(), DEFAULT_STREAM);
    let worker_pid = workers[0].pid().to_string();
    let io = tokio::runtime::Runtime::new().unwrap();
    let store = io.block_on(RedisStore::connect(&server.url())).unwrap();
    let stream = InvocationStream::new(store.clone(), DEFAULT_STREAM);
    io.block_on(stream.create_group()).unwrap();

    // A client built from other code: its plan names a task this worker does not have.
    let mut plan = tree(4, 0).plan().unwrap();
    let missing = "workers::task_only_the_client_has";
    let add_index = plan
        .tasks
        .iter()
        .position(|t| t.ends_with("::add"))
        .unwrap();
    plan.tasks[add_index] = missing.to_owned();
    let error = run_plan(&io, &store, &stream, plan);
    match &error {
        DagError::TaskNotFound { task, worker } => {
            assert_eq!(task, missing);
            assert!(worker.contains(&worker_pid), "names the worker: {worker}");
        }
        other => panic!("expected TaskNotFound, got {other:?}"),
    }

    // A client whose `add` has another signature: version skew is detected, not computed.
    let mut plan = tree(4, 0).plan().unwrap();
    let skewed = "fn add(a: u32, b: u32) -> u32";
    plan.signatures[add_index] = skewed.to_owned();
    let error = run_plan(&io, &store, &stream, plan);
    let text = error.to_string();
    match &error {
        DagError::TaskMismatch { task, worker, .. } => {
            assert!(task.ends_with("::add"), "{text}");
            assert!(worker.contains(&worker_pid), "{text}");
        }
        other => panic!("expected TaskMismatch, got {other:?}"),
    }
    assert!(text.contains(skewed), "names the plan's signature: {text}");
    assert!(text.contains("u64"), "names the worker's signature: {text}");

    // The worker is still fine, and serves a good DAG.
    let runtime = Runtime::builder()
        .redis(server.url())
        .worker_pool()
        .build()
        .unwrap();
    assert_eq!(compute(&tree(8, 0), &runtime).unwrap(), sum_1_to(8));
    assert!(workers[0].wait_exit(Duration::ZERO).is_none());

    // A worker from another program (an example that lacks this test's tasks), when built.
    let example = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("examples/fanout_fanin")))
        .filter(|path| path.exists());
    match example {
        Some(program) => {
            drop(workers);
            let mut other = pool(&server.url(), DEFAULT_STREAM)
                .program(&program)
                .spawn();
            let other_pid = other.pid().to_string();
            // An example built before it called run_if_worker() would run as a client and exit.
            let mut conn = connect(&server.url());
            let before = ready_workers(&mut conn, DEFAULT_STREAM);
            let serving = eventually(Duration::from_secs(20), || {
                ready_workers(&mut conn, DEFAULT_STREAM) > before
                    || other.wait_exit(Duration::ZERO).is_some()
            }) && other.wait_exit(Duration::ZERO).is_none();
            if !serving {
                eprintln!("   (the fanout_fanin example is an old build: skipped that worker)");
                return;
            }
            match compute(&tree(2, 0), &runtime) {
                Err(DagError::TaskNotFound { task, worker }) => {
                    assert!(task.ends_with("::leaf"), "{task}");
                    assert!(worker.contains(&other_pid), "{worker}");
                }
                other => panic!("expected TaskNotFound from the example worker, got {other:?}"),
            }
        }
        None => eprintln!("   (the fanout_fanin example is not built: skipped that worker)"),
    }
}

fn run_plan(
    io: &tokio::runtime::Runtime,
    store: &RedisStore,
    stream: &InvocationStream,
    plan: dag::plan::Plan,
) -> DagError {
    let dag = dag::store::DagId::new();
    let plan = Arc::new(plan);
    io.block_on(store.put_plan(&dag, &plan)).unwrap();
    let roots: Vec<_> = plan.roots().map(|r| (dag.clone(), r)).collect();
    io.block_on(stream.submit(&roots)).unwrap();
    let waiting = io
        .block_on(async { tokio::time::timeout(Duration::from_secs(60), store.wait(&dag)).await });
    match waiting.expect("the DAG ends within a minute").unwrap() {
        Outcome::Failed(record) => record.into(),
        Outcome::Success(_) => panic!("the DAG was expected to fail"),
    }
}

fn sigterm_during_a_run_lets_the_others_finish() {
    let server = TestRedis::start();
    let stream = "dag:sigterm-test";
    let mut workers = workers(3, &server.url(), stream);
    let runtime = Runtime::builder()
        .redis(server.url())
        .worker_pool()
        .stream(stream)
        .build()
        .unwrap();
    let computing = {
        let runtime = runtime.clone();
        std::thread::spawn(move || tree(90, 40).compute_on(&runtime))
    };
    let watcher = EventWatcher::start(&server.url());
    let mut conn = connect(&server.url());
    // Wait until the DAG is under way, with every worker busy.
    assert!(eventually(Duration::from_secs(20), || {
        let pending: (usize,) = redis::cmd("XPENDING")
            .arg(stream)
            .arg("dag-workers")
            .query::<redis::Value>(&mut conn)
            .ok()
            .and_then(|v| match v {
                redis::Value::Array(items) => match items.first() {
                    Some(redis::Value::Int(n)) => Some((*n as usize,)),
                    _ => None,
                },
                _ => None,
            })
            .unwrap_or((0,));
        pending.0 >= 4
    }));
    workers[0].sigterm();
    let status = workers[0]
        .wait_exit(Duration::from_secs(20))
        .expect("the worker stops after SIGTERM");
    assert!(status.success(), "a graceful stop exits 0: {status}");
    let still_running = !computing.is_finished();
    let sum = computing.join().unwrap().expect("the DAG completes");
    assert_eq!(sum, sum_1_to(90));
    let (workers_seen, _) = watcher.finish();
    assert!(
        still_running,
        "the worker stopped while the DAG was still running"
    );
    assert!(workers_seen.len() >= 2, "{workers_seen:?}");
    let pending = io_pending(&server.url(), stream);
    assert_eq!(pending, 0, "the stopped worker acknowledged what it ran");
    assert_eq!(stream_len(&mut conn, stream), 0);
    assert_eq!(keys_matching(&mut conn, DAG_KEYS), Vec::<String>::new());
}

fn io_pending(url: &str, stream: &str) -> usize {
    let io = tokio::runtime::Runtime::new().unwrap();
    let store = io.block_on(RedisStore::connect(url)).unwrap();
    io.block_on(InvocationStream::new(store, stream).pending())
        .unwrap()
}

fn one_process_per_invocation_on_a_tree() {
    let server = TestRedis::start();
    let runtime = Runtime::builder()
        .redis(server.url())
        .process_per_invocation(4)
        .build()
        .unwrap();
    let leaves = 16;
    assert_eq!(
        compute(&tree(leaves, 0), &runtime).unwrap(),
        sum_1_to(leaves)
    );
    let stats = runtime.process_stats().unwrap();
    // Each leaf is a root invocation; the adds are continued by the leaf that finished last.
    assert!(stats.started >= leaves as usize, "{stats:?}");
    assert!(stats.started < 2 * leaves as usize, "{stats:?}");
    assert!(
        stats.peak_alive >= 1 && stats.peak_alive <= 4,
        "at most 4 alive: {stats:?}"
    );
    assert!(
        eventually(Duration::from_secs(5), || {
            runtime.process_stats().unwrap().cold_starts.len() == stats.started
        }),
        "every process recorded its cold start: {stats:?}"
    );
    assert!(stats.cold_starts.iter().all(|d| *d > Duration::ZERO));
    // A second DAG on the same runtime.
    assert_eq!(compute(&tree(5, 0), &runtime).unwrap(), sum_1_to(5));
    let mut conn = connect(&server.url());
    assert_eq!(keys_matching(&mut conn, DAG_KEYS), Vec::<String>::new());
}

fn a_failing_task_in_a_worker_process_fails_the_dag() {
    let server = TestRedis::start();
    let runtime = Runtime::builder()
        .redis(server.url())
        .spawn_workers(1)
        .workers(2)
        .build()
        .unwrap();
    match compute(
        &join_words(vec![shout("ok"), fails("boom".to_owned())]),
        &runtime,
    ) {
        Err(DagError::TaskFailed { task, message, .. }) => {
            assert!(task.ends_with("::fails"), "{task}");
            assert!(message.contains("boom"), "{message}");
        }
        other => panic!("expected the task's failure, got {other:?}"),
    }
    assert_eq!(
        compute(&join_words(vec![shout("still"), shout("works")]), &runtime).unwrap(),
        "STILL WORKS"
    );
}

#[task]
fn range(n: u64) -> Vec<u64> {
    (0..n).collect()
}

#[task]
fn total(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

fn a_dynamic_map_runs_across_worker_processes() {
    let server = TestRedis::start();
    let runtime = Runtime::builder()
        .redis(server.url())
        .spawn_workers(2)
        .workers(2)
        .build()
        .unwrap();
    // Each element's subgraph is a child DAG that the workers load from Redis by its id.
    let squares = range(40).map(|x| add(leaf(&x, 1), &x));
    let nested = range(5).map(|n| total(range(n).map(|x| add(x, 1))));
    assert_eq!(
        compute(&total(squares), &runtime).unwrap(),
        (0..40).map(|x| 2 * x + 1).sum::<u64>()
    );
    assert_eq!(
        compute(&nested, &runtime).unwrap(),
        (0..5u64).map(|n| n * (n + 1) / 2).collect::<Vec<_>>()
    );
    // A map node that is its DAG's sink stores the result (which wakes the client) before the
    // worker removes the map's child DAG: crash safety wants that order (a removed child with
    // a map node nobody completes would hang), so the child's keys go a moment later.
    let mut conn = connect(&server.url());
    eventually(Duration::from_secs(10), || {
        keys_matching(&mut conn, DAG_KEYS).is_empty()
    });
    assert_eq!(keys_matching(&mut conn, DAG_KEYS), Vec::<String>::new());
}

#[task]
fn fails(why: String) -> Result<String, String> {
    Err(why)
}

// ------------------------------------------------------------------------------------------

const TESTS: &[Test] = &dag_test_support::tests![
    three_worker_processes_share_one_dag,
    two_clients_share_one_pool,
    a_worker_without_a_task_fails_the_dag_naming_both,
    sigterm_during_a_run_lets_the_others_finish,
    one_process_per_invocation_on_a_tree,
    a_dynamic_map_runs_across_worker_processes,
    a_failing_task_in_a_worker_process_fails_the_dag,
    interrupt::ctrl_c_in_a_client_cancels_its_dag_then_ends_it,
    interrupt::sigterm_in_a_client_cancels_its_dag_then_ends_it,
    interrupt::a_sigterm_sent_twice_at_once_still_cancels_the_dag,
    interrupt::a_sigterm_to_the_client_and_its_group_still_cancels_the_dag,
    interrupt::ctrl_c_and_sigterm_at_once_still_cancel_the_dag,
    interrupt::a_later_sigterm_ends_a_client_stuck_cancelling_at_once,
    interrupt::ctrl_c_without_a_dag_in_flight_ends_the_client_as_by_default,
    interrupt::a_client_with_its_own_ctrl_c_handler_keeps_it,
    interrupt::a_client_with_cancel_on_interrupt_off_leaves_its_dag,
    restart::a_redis_restart_fails_the_dag_and_the_workers_serve_the_next,
];

fn main() {
    dag::worker::run_if_worker();
    if let Ok(mode) = std::env::var(interrupt::CLIENT_MODE) {
        interrupt::client_main(&mode);
        return;
    }
    run_tests(TESTS);
}
