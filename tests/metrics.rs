//! Metrics, whole-system: every upload strategy on the embedded runtime and on Redis, records
//! from worker processes, what a graceful stop and a SIGKILL leave, retries and failures.
//!
//! Its own `main` (`harness = false`): the processes it starts with `DAG_WORKER=1` are workers.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use dag::metrics::{
    MetricsBackend, MetricsStorage, Outcome, RedisMetrics, RunMetrics, RunState, Upload,
    DEFAULT_METRICS_TTL,
};
use dag::prelude::*;
use dag_test_support::{reduce_pairwise, run_tests, sum_1_to, Test, TestRedis, WorkerProcess};

#[task]
fn leaf(i: u64, delay_ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(delay_ms));
    i + 1
}

#[task]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// 2 × `leaves` - 1 tasks; its value is the sum of `1..=leaves`.
fn tree(leaves: u64, delay_ms: u64) -> Node<u64> {
    let leaves = (0..leaves).map(|i| leaf(i, delay_ms)).collect();
    reduce_pairwise(leaves, |a, b| add(a, b))
}

const STRATEGIES: [Upload; 4] = [
    Upload::OnShutdown,
    Upload::EachTask,
    Upload::Every(Duration::from_millis(50)),
    Upload::Batch(3),
];

/// Reads run `id` straight from the metrics keys of the Redis at `url`.
fn read_run(url: &str, id: &str) -> Option<RunMetrics> {
    let backend = RedisMetrics::new(url, DEFAULT_METRICS_TTL);
    let io = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    io.block_on(backend.run(id))
        .expect("the metrics can be read")
}

/// Polls `read` until `done` holds of what it returns, for at most `limit`.
fn eventually<T>(limit: Duration, mut read: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let start = Instant::now();
    loop {
        let value = read();
        if done(&value) || start.elapsed() > limit {
            return value;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks that `run` holds one successful record of each of the `tasks` tasks of a tree.
fn assert_every_task_recorded(run: &RunMetrics, tasks: usize) {
    let ok: Vec<_> = run
        .tasks
        .iter()
        .filter(|t| t.outcome == Outcome::Ok)
        .collect();
    let nodes: BTreeSet<u32> = ok.iter().map(|t| t.node).collect();
    assert_eq!(ok.len(), tasks, "one record per task: {:?}", run.tasks);
    assert_eq!(nodes.len(), tasks, "every node once");
    for record in &ok {
        assert!(record.end_us >= record.start_us, "{record:?}");
        assert!(record.task.ends_with("leaf") || record.task.ends_with("add"));
        assert!(record.output_bytes > 0, "{record:?}");
    }
    let leaves = ok.iter().filter(|t| t.task.ends_with("leaf")).count();
    assert_eq!(leaves, tasks.div_ceil(2));
    let digest_count: u64 = run.digest.by_task.values().map(|d| d.run_us.count()).sum();
    assert_eq!(digest_count, tasks as u64, "the digest counts every task");
}

fn every_upload_strategy_records_every_task_in_memory() {
    for upload in STRATEGIES {
        let runtime = Runtime::builder()
            .workers(2)
            .metrics(MetricsStorage::memory().upload(upload))
            .build()
            .unwrap();
        assert_eq!(tree(8, 0).compute_on(&runtime).unwrap(), sum_1_to(8));
        let metrics = runtime.metrics().unwrap();
        let run = metrics.last_run().unwrap().expect("the run is recorded");
        assert_eq!(run.run.state, RunState::Succeeded, "{upload}");
        assert!(run.run.makespan_us().is_some());
        assert_eq!(run.run.nodes, 15);
        assert_every_task_recorded(&run, 15);
        assert_eq!(metrics.dropped(), 0);
    }
}

fn every_upload_strategy_records_every_task_on_redis() {
    {
        let redis = TestRedis::start();
        for upload in STRATEGIES {
            let runtime = Runtime::builder()
                .redis(redis.url())
                .workers(4)
                .metrics(MetricsStorage::dag_store().upload(upload))
                .build()
                .unwrap();
            assert_eq!(tree(8, 0).compute_on(&runtime).unwrap(), sum_1_to(8));
            let id = runtime.metrics().unwrap().last_run_id().unwrap();
            if upload == Upload::OnShutdown {
                // Nothing of the tasks before the shutdown...
                std::thread::sleep(Duration::from_millis(200));
                let before = read_run(&redis.url(), &id);
                assert!(before.is_none_or(|run| run.tasks.is_empty()), "{upload}");
                // ...everything after it.
                drop(runtime);
            } else {
                runtime.metrics().unwrap().flush().unwrap();
            }
            let run = read_run(&redis.url(), &id).expect("the run is in Redis");
            assert_eq!(run.run.state, RunState::Succeeded, "{upload}");
            assert_every_task_recorded(&run, 15);
        }
    }
}

fn periodic_and_batched_uploads_arrive_before_the_dag_ends() {
    let redis = TestRedis::start();
    for upload in [Upload::Every(Duration::from_millis(50)), Upload::Batch(2)] {
        let runtime = Runtime::builder()
            .redis(redis.url())
            .workers(2)
            .metrics(MetricsStorage::dag_store().upload(upload))
            .build()
            .unwrap();
        let metrics = runtime.metrics().unwrap();
        // 16 leaves of 100 ms on 2 threads: about 0.8 s.
        let running = std::thread::spawn(move || tree(16, 100).compute_on(&runtime));
        let id = eventually(
            Duration::from_secs(10),
            || metrics.last_run_id(),
            Option::is_some,
        )
        .expect("the DAG was submitted");
        let seen = eventually(
            Duration::from_secs(10),
            || read_run(&redis.url(), &id),
            |run| run.as_ref().is_some_and(|r| !r.tasks.is_empty()),
        )
        .expect("the run is in Redis");
        assert!(
            !seen.tasks.is_empty(),
            "{upload}: records arrive while it runs"
        );
        assert_eq!(
            seen.run.state,
            RunState::Running,
            "{upload}: before the DAG ended"
        );
        assert!(seen.tasks.len() < 31, "{upload}");
        assert_eq!(running.join().unwrap().unwrap(), sum_1_to(16));
    }
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(retries = 2)]
fn flaky(x: u64) -> Result<u64, String> {
    if FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) < 2 {
        Err("not yet".into())
    } else {
        Ok(x)
    }
}

#[task]
fn broken(_x: u64) -> Result<u64, String> {
    Err("broken on purpose".into())
}

fn retries_and_failures_are_recorded() {
    let runtime = Runtime::builder()
        .metrics(MetricsStorage::memory())
        .build()
        .unwrap();
    let metrics = runtime.metrics().unwrap();
    FLAKY_CALLS.store(0, Ordering::SeqCst);
    assert_eq!(flaky(leaf(1, 0)).compute_on(&runtime).unwrap(), 2);
    let run = metrics.last_run().unwrap().unwrap();
    let mut attempts: Vec<(u32, Outcome)> = run
        .tasks
        .iter()
        .filter(|t| t.task.ends_with("flaky"))
        .map(|t| (t.attempt, t.outcome))
        .collect();
    attempts.sort_by_key(|(attempt, _)| *attempt);
    assert_eq!(
        attempts,
        [
            (1, Outcome::Retried),
            (2, Outcome::Retried),
            (3, Outcome::Ok)
        ]
    );
    let last = run
        .tasks
        .iter()
        .find(|t| t.outcome == Outcome::Ok && t.task.ends_with("flaky"));
    let last = last.unwrap();
    let digest = &run.digest.by_task[&last.task];
    assert_eq!((digest.retried, digest.failed), (2, 0));
    // The flaky task's input came in memory from `leaf`, which ran in the same worker.
    assert!(last.continuation && last.inputs.is_empty(), "{last:?}");
    assert_eq!(last.carried_from, Some(0));

    assert!(broken(leaf(1, 0)).compute_on(&runtime).is_err());
    let run = metrics.last_run().unwrap().unwrap();
    assert_eq!(run.run.state, RunState::Failed);
    assert!(run
        .run
        .error
        .as_deref()
        .unwrap()
        .contains("broken on purpose"));
    let failed = run.tasks.iter().find(|t| t.outcome == Outcome::Error);
    assert!(
        failed.is_some_and(|t| t.task.ends_with("broken")),
        "{:?}",
        run.tasks
    );
}

fn worker_processes_record_their_tasks() {
    let redis = TestRedis::start();
    let runtime = Runtime::builder()
        .redis(redis.url())
        .spawn_workers(2)
        .workers(2)
        .metrics(MetricsStorage::dag_store().upload(Upload::Batch(1)))
        .build()
        .unwrap();
    assert_eq!(tree(8, 0).compute_on(&runtime).unwrap(), sum_1_to(8));
    let id = runtime.metrics().unwrap().last_run_id().unwrap();
    let run = eventually(
        Duration::from_secs(20),
        || read_run(&redis.url(), &id),
        |run| run.as_ref().is_some_and(|r| r.tasks.len() >= 15),
    )
    .expect("the run is in Redis");
    assert_every_task_recorded(&run, 15);
    let ours = format!(":{}/", std::process::id());
    assert!(
        run.tasks.iter().all(|t| !t.worker.contains(&ours)),
        "worker processes ran them"
    );
    // Some task's inputs came from the store (the roots' outputs, fetched by another process
    // or thread), with their sizes.
    assert!(
        run.workers.iter().all(|w| w.cold_start_us.is_some()),
        "{:?}",
        run.workers
    );
    assert!(!run.workers.is_empty());
}

/// A DAG on external worker processes with `upload`; returns the run's id and its workers.
fn run_on_a_worker(redis: &TestRedis, upload: &str, stream: &str) -> (String, WorkerProcess) {
    let worker = WorkerProcess::builder(&redis.url())
        .stream(stream)
        .concurrency(1)
        .env("DAG_METRICS", "dag")
        .env("DAG_METRICS_UPLOAD", upload)
        .spawn();
    let runtime = Runtime::builder()
        .redis(redis.url())
        .worker_pool()
        .stream(stream)
        .metrics(MetricsStorage::dag_store())
        .build()
        .unwrap();
    assert_eq!(tree(4, 0).compute_on(&runtime).unwrap(), sum_1_to(4));
    let id = runtime.metrics().unwrap().last_run_id().unwrap();
    runtime.metrics().unwrap().flush().unwrap();
    (id, worker)
}

fn a_graceful_stop_uploads_everything_and_a_sigkill_loses_what_the_strategy_allows() {
    let redis = TestRedis::start();
    let url = redis.url();
    let tasks = |id: &str| read_run(&url, id).map_or(0, |r| r.tasks.len());

    // On shutdown only: nothing until the worker stops, everything once it stopped gracefully.
    let (id, mut worker) = run_on_a_worker(&redis, "shutdown", "s1");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(tasks(&id), 0);
    worker.sigterm();
    assert!(worker.wait_exit(Duration::from_secs(20)).is_some());
    assert_eq!(tasks(&id), 7);

    // On shutdown only, killed: everything is lost.
    let (id, mut worker) = run_on_a_worker(&redis, "shutdown", "s2");
    worker.kill();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(tasks(&id), 0);

    // After each task, killed once the DAG is done: nothing is lost.
    let (id, mut worker) = run_on_a_worker(&redis, "task", "s3");
    let seen = eventually(Duration::from_secs(10), || tasks(&id), |n| *n == 7);
    worker.kill();
    assert_eq!(seen, 7);
}

const TESTS: &[Test] = &dag_test_support::tests![
    every_upload_strategy_records_every_task_in_memory,
    every_upload_strategy_records_every_task_on_redis,
    periodic_and_batched_uploads_arrive_before_the_dag_ends,
    retries_and_failures_are_recorded,
    worker_processes_record_their_tasks,
    a_graceful_stop_uploads_everything_and_a_sigkill_loses_what_the_strategy_allows,
];

fn main() {
    dag::worker::run_if_worker();
    run_tests(TESTS);
}
