//! Worker processes dying mid-DAG: the DAG still completes with the right result, on the
//! workers that are left, and leaves nothing behind.
//!
//! Like `tests/workers.rs`, this test binary has its own `main` (`harness = false`) and is also
//! the worker processes it starts. Workers run with a short lease (`DAG_LEASE`), so an
//! invocation whose worker died is re-run by another worker after a fraction of a second.
//!
//! - `a_worker_killed_at_<point>`: a worker started with `DAG_FAULT=<point>:<n>` (the
//!   `fault-injection` hook of `dag_runtime::engine::fault`) kills itself with SIGKILL the
//!   `n`-th time it reaches that point of the worker step, for several `n`; a healthy worker
//!   started afterwards must finish the DAG.
//! - `workers_killed_from_outside`: SIGKILL at random moments while DAGs run, replacements
//!   started, repeated.
//! - `a_task_that_kills_every_worker_fails_the_dag`: the DAG fails with `WorkerLost` after
//!   `MAX_DELIVERIES` deliveries instead of killing workers forever.
//! - `a_crashed_invocation_process_is_launched_again`: one process per invocation, one of them
//!   killed: the launcher launches the invocation again.
//! - `the_clients_retry_defaults_apply_in_worker_processes`: the plan carries the client
//!   runtime's retry defaults to the workers.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use dag::prelude::*;
use dag::worker::MAX_DELIVERIES;
use dag_runtime::engine::fault::{FaultPoint, ENV as FAULT_ENV, ONCE_ENV as FAULT_ONCE_ENV};
use dag_test_support::{
    connect, keys_matching, reduce_pairwise, run_tests, Test, TestRedis, WorkerProcess,
};

/// The lease the workers of these tests run with: how soon a dead worker's invocation is re-run.
const LEASE: &str = "300ms";

#[task]
fn numbers(n: u64) -> Vec<u64> {
    (1..=n).collect()
}

#[task]
fn leaf(seed: u64, i: u64, delay_ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(delay_ms));
    seed * 1000 + i
}

#[task]
fn square(x: u64) -> u64 {
    x * x
}

#[task]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[task]
fn total(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

/// Fails until it has been called `succeed_on` times (counted in Redis, across processes).
#[task]
fn flaky(url: String, counter: String, succeed_on: u64) -> Result<u64, String> {
    let mut conn = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection())
        .map_err(|e| e.to_string())?;
    let calls: u64 = redis::cmd("INCR")
        .arg(&counter)
        .query(&mut conn)
        .map_err(|e| e.to_string())?;
    if calls < succeed_on {
        return Err(format!("call {calls} fails"));
    }
    Ok(calls)
}

#[task]
fn kills_its_process(x: u64) -> u64 {
    // SAFETY: kill and getpid have no preconditions; this is the crash the test is about.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    x
}

/// A DAG with every kind of hand-over: a fan-out of `width` leaves from one root, a tree
/// reduction over them (fan-ins), and a dynamic map over a run-time list whose child DAG
/// completes a node of the parent. Returns the DAG and its value.
fn mixed(seed: u64, width: u64, delay_ms: u64) -> (Node<u64>, u64) {
    let root = add(seed, 0);
    let leaves = (0..width).map(|i| leaf(&root, i, delay_ms)).collect();
    let tree = reduce_pairwise(leaves, |a, b| add(a, b));
    let squares = total(numbers(width).map(square));
    let value =
        (0..width).map(|i| seed * 1000 + i).sum::<u64>() + (1..=width).map(|x| x * x).sum::<u64>();
    (add(tree, squares), value)
}

/// A worker process of this executable on the stream `stream`, with the short [`LEASE`] and
/// the extra environment `env` (and no fault injection unless `env` asks for it); killed when
/// dropped.
fn worker(url: &str, stream: &str, concurrency: usize, env: &[(&str, &str)]) -> WorkerProcess {
    let mut builder = WorkerProcess::builder(url)
        .stream(stream)
        .concurrency(concurrency)
        .lease(LEASE)
        .env_remove(FAULT_ENV)
        .env_remove(FAULT_ONCE_ENV);
    for (name, value) in env {
        builder = builder.env(name, value);
    }
    builder.spawn()
}

/// Waits up to `limit` for `worker` to exit by itself; its signal, if it died by one.
fn wait_death(worker: &mut WorkerProcess, limit: Duration) -> Option<Option<i32>> {
    worker.wait_exit(limit).map(|status| status.signal())
}

/// `node` computed on `runtime` in a thread of its own; `join` fails the check instead of
/// hanging if the DAG does not end within two minutes.
struct Running<T>(std::sync::mpsc::Receiver<Result<T, DagError>>);

impl<T: serde::de::DeserializeOwned + Send + 'static> Running<T> {
    fn start(node: &Node<T>, runtime: &Runtime) -> Self {
        let (node, runtime) = (node.clone(), runtime.clone());
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(node.compute_on(&runtime));
        });
        Running(receiver)
    }

    fn join(self) -> Result<T, DagError> {
        self.0
            .recv_timeout(Duration::from_secs(120))
            .expect("the DAG ends instead of hanging")
    }
}

fn client(url: &str, stream: &str) -> Runtime {
    Runtime::builder()
        .redis(url)
        .worker_pool()
        .stream(stream)
        .build()
        .expect("a client of the pool")
}

/// What a finished DAG may leave on the server: nothing of any DAG, and no invocation still
/// pending in the stream.
fn assert_clean(url: &str, stream: &str) {
    let mut conn = connect(url);
    let keys = keys_matching(&mut conn, "dag:{*");
    assert_eq!(keys, Vec::<String>::new(), "keys left behind");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // The last acknowledgement travels with a worker's next read.
        let pending: (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
            .arg(stream)
            .arg(dag::store::GROUP)
            .query(&mut conn)
            .unwrap();
        if pending.0 == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} invocations still pending in {stream}",
            pending.0
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ------------------------------------------------------------------------------------------

/// A worker that dies the `n`-th time it reaches `point`, for several `n`, with the DAG
/// finished by a healthy worker started once the faulty one is dead. `locality` is extra
/// environment of both workers (see [`LOCALITY`]).
fn a_worker_killed_at(point: FaultPoint, locality: &[(&str, &str)]) {
    let server = TestRedis::start();
    for (round, nth) in [1u64, 2, 3, 5, 8].into_iter().enumerate() {
        let stream = format!("faults:{}:{nth}:{}", point.name(), locality.len());
        let runtime = client(&server.url(), &stream);
        let (dag, value) = mixed(round as u64 + 1, 12, 2);
        let fault = format!("{}:{nth}", point.name());
        let mut env = vec![(FAULT_ENV, fault.as_str())];
        env.extend_from_slice(locality);
        let mut faulty = worker(&server.url(), &stream, 1, &env);
        let running = Running::start(&dag, &runtime);
        let died = wait_death(&mut faulty, Duration::from_secs(60));
        assert_eq!(
            died,
            Some(Some(libc::SIGKILL)),
            "the worker with {FAULT_ENV}={fault} killed itself"
        );
        let _healthy = worker(&server.url(), &stream, 2, locality);
        assert_eq!(running.join(), Ok(value), "{FAULT_ENV}={fault}");
        drop(runtime);
        assert_clean(&server.url(), &stream);
    }
}

/// Task clustering and delayed I/O for every output (all count as large): outputs stay in the
/// workers and are held, so a crash loses them and the re-run must produce them again.
const LOCALITY: &[(&str, &str)] = &[
    ("DAG_LARGE_OUTPUT", "0"),
    ("DAG_CLUSTERING", "1"),
    ("DAG_DELAYED_IO", "30ms"),
];

/// Both optimizations off, whatever the environment of the test says.
const NO_LOCALITY: &[(&str, &str)] = &[("DAG_CLUSTERING", "0"), ("DAG_DELAYED_IO", "0")];

fn a_worker_killed_before_the_task() {
    a_worker_killed_at(FaultPoint::BeforeTask, NO_LOCALITY);
}

fn a_worker_killed_before_storing_the_output() {
    a_worker_killed_at(FaultPoint::BeforeComplete, NO_LOCALITY);
}

fn a_worker_killed_before_handing_on_ready_children() {
    a_worker_killed_at(FaultPoint::BeforeDelegate, NO_LOCALITY);
}

fn a_worker_killed_before_acknowledging() {
    a_worker_killed_at(FaultPoint::BeforeAck, NO_LOCALITY);
}

fn a_worker_killed_before_storing_the_output_with_locality() {
    a_worker_killed_at(FaultPoint::BeforeComplete, LOCALITY);
}

fn a_worker_killed_while_an_output_is_kept() {
    a_worker_killed_at(FaultPoint::WhileKept, LOCALITY);
}

fn a_worker_killed_before_handing_on_ready_children_with_locality() {
    a_worker_killed_at(FaultPoint::BeforeDelegate, LOCALITY);
}

fn a_worker_killed_before_acknowledging_with_locality() {
    a_worker_killed_at(FaultPoint::BeforeAck, LOCALITY);
}

/// SIGKILL from outside at random moments: three workers, one killed and replaced every
/// 150-400 ms while DAGs run, over several DAGs.
fn workers_killed_from_outside() {
    killed_from_outside("faults:outside", NO_LOCALITY, (48, 15), usize::MAX);
}

fn workers_killed_from_outside_with_locality() {
    // With every output large, the root's run takes most of the DAG in turn, so one stream
    // entry carries it: at most `MAX_DELIVERIES - 1` kills per DAG, so that even if every one
    // hits that entry the DAG completes (one more would fail it with `WorkerLost`, as designed).
    killed_from_outside(
        "faults:outside:locality",
        LOCALITY,
        (32, 5),
        MAX_DELIVERIES as usize - 1,
    );
}

/// Kills at random, at most `most` times per DAG, while DAGs of `width` leaves of `delay_ms`
/// each run.
fn killed_from_outside(
    stream: &str,
    locality: &[(&str, &str)],
    (width, delay_ms): (u64, u64),
    most: usize,
) {
    let server = TestRedis::start();
    let runtime = client(&server.url(), stream);
    let mut workers: Vec<WorkerProcess> = (0..3)
        .map(|_| worker(&server.url(), stream, 2, locality))
        .collect();
    let mut kills = 0;
    for round in 0..4u64 {
        let (dag, value) = mixed(round + 1, width, delay_ms);
        let running = Running::start(&dag, &runtime);
        let deadline = Instant::now() + Duration::from_millis(1200);
        let mut this_round = 0;
        while Instant::now() < deadline && this_round < most {
            std::thread::sleep(Duration::from_millis(150 + fastrand::u64(0..250)));
            let victim = fastrand::usize(0..workers.len());
            workers[victim].kill();
            kills += 1;
            this_round += 1;
            workers[victim] = worker(&server.url(), stream, 2, locality);
        }
        assert_eq!(
            running.join(),
            Ok(value),
            "round {round}, {kills} kills so far"
        );
    }
    drop(runtime);
    assert_clean(&server.url(), stream);
}

/// A task that kills whichever process runs it: each delivery kills a worker (the test keeps
/// two alive), and after `MAX_DELIVERIES` the DAG fails naming the task.
fn a_task_that_kills_every_worker_fails_the_dag() {
    let server = TestRedis::start();
    let stream = "faults:poison";
    let runtime = client(&server.url(), stream);
    let mut workers: Vec<WorkerProcess> = (0..2)
        .map(|_| worker(&server.url(), stream, 1, &[]))
        .collect();
    let running = Running::start(&add(kills_its_process(1), 1), &runtime);
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(running.join());
    });
    let outcome = loop {
        if let Ok(outcome) = receiver.recv_timeout(Duration::from_millis(20)) {
            break outcome;
        }
        for process in &mut workers {
            if process.exit_status().is_some() {
                *process = worker(&server.url(), stream, 1, &[]);
            }
        }
    };
    match outcome {
        Err(DagError::WorkerLost { task, message }) => {
            assert!(task.ends_with("kills_its_process"), "{task}");
            assert!(
                message.contains(&format!("{} deliveries", MAX_DELIVERIES + 1)),
                "{message}"
            );
        }
        other => panic!("expected WorkerLost, got {other:?}"),
    }
    drop(runtime);
    assert_clean(&server.url(), stream);
}

/// The client runtime's retry defaults travel in the plan: a task without its own policy
/// that fails twice succeeds on its third attempt in a worker process.
fn the_clients_retry_defaults_apply_in_worker_processes() {
    let server = TestRedis::start();
    let stream = "faults:retries";
    let _worker = worker(&server.url(), stream, 1, &[]);
    let runtime = Runtime::builder()
        .redis(server.url())
        .worker_pool()
        .stream(stream)
        .retries(2)
        .backoff(Duration::from_millis(5))
        .build()
        .expect("a client with retry defaults");
    let calls = Running::start(&flaky(server.url(), "calls", 3), &runtime).join();
    assert_eq!(calls, Ok(3), "the third attempt succeeds");
    match Running::start(&flaky(server.url(), "more-calls", 4), &runtime).join() {
        Err(DagError::TaskFailed {
            attempt, message, ..
        }) => {
            assert_eq!(attempt, 3, "{message}");
            assert_eq!(message, "call 3 fails");
        }
        other => panic!("expected TaskFailed after 3 attempts, got {other:?}"),
    }
    drop(runtime);
    assert_clean(&server.url(), stream);
}

/// One process per invocation, the first process to reach "children ready, not handed on"
/// killed: the launcher launches that invocation again, and the re-launch gets the children.
fn a_crashed_invocation_process_is_launched_again() {
    let server = TestRedis::start();
    let marker = std::env::temp_dir().join(format!("dag-fault-once-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    // The launcher starts processes with this process's environment.
    std::env::set_var(FAULT_ENV, "before_delegate:1");
    std::env::set_var(FAULT_ONCE_ENV, &marker);
    let runtime = Runtime::builder()
        .redis(server.url())
        .process_per_invocation(4)
        .stream("faults:per-invocation")
        .build()
        .expect("a runtime with one process per invocation");
    let (dag, value) = mixed(7, 6, 0);
    let result = Running::start(&dag, &runtime).join();
    std::env::remove_var(FAULT_ENV);
    std::env::remove_var(FAULT_ONCE_ENV);
    assert!(
        marker.exists(),
        "a process reached the fault point and died"
    );
    let _ = std::fs::remove_file(&marker);
    assert_eq!(result, Ok(value));
    // While the launcher still runs: it acknowledges each entry once its process has exited.
    assert_clean(&server.url(), "faults:per-invocation");
    drop(runtime);
}

const TESTS: &[Test] = &dag_test_support::tests![
    a_worker_killed_before_the_task,
    a_worker_killed_before_storing_the_output,
    a_worker_killed_before_handing_on_ready_children,
    a_worker_killed_before_acknowledging,
    a_worker_killed_before_storing_the_output_with_locality,
    a_worker_killed_while_an_output_is_kept,
    a_worker_killed_before_handing_on_ready_children_with_locality,
    a_worker_killed_before_acknowledging_with_locality,
    workers_killed_from_outside,
    workers_killed_from_outside_with_locality,
    a_task_that_kills_every_worker_fails_the_dag,
    a_crashed_invocation_process_is_launched_again,
    the_clients_retry_defaults_apply_in_worker_processes,
];

fn main() {
    dag::worker::run_if_worker();
    run_tests(TESTS);
}
