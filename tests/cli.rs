//! The `dag` command-line tool, run as a user runs it (the built binary): on metrics written
//! straight into a test Redis with `RedisMetrics` (known records, known answers), and on the
//! metrics a runtime recorded of a real run.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use dag::metrics::{
    now_us, Batch, InputRecord, MetricsBackend, MetricsStorage, Outcome, RedisMetrics, RunRecord,
    RunState, TaskRecord, Upload, DEFAULT_METRICS_TTL,
};
use dag::prelude::*;
use dag_test_support::{reduce_pairwise, sum_1_to, TestRedis};
use serde_json::Value;

/// `dag <args>` with `DAG_REDIS_URL` set to `url` (or unset).
fn dag(url: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dag"));
    command.args(args).env_remove("DAG_REDIS_URL");
    if let Some(url) = url {
        command.env("DAG_REDIS_URL", url);
    }
    command.output().expect("the dag binary runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "dag failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

/// Fails with exit code 1 and a message on stderr, without panicking.
fn failure(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn record(
    dag: &str,
    node: u32,
    task: &str,
    (start, end): (u64, u64),
    parents: &[u32],
) -> TaskRecord {
    TaskRecord {
        dag: dag.into(),
        node,
        task: task.into(),
        worker: "host:7/0".into(),
        attempt: 1,
        start_us: start,
        end_us: end,
        fetch_us: 50,
        inputs: parents
            .iter()
            .map(|&node| InputRecord { node, bytes: 1_000 })
            .collect(),
        run_us: end - start - 100,
        output_bytes: 1_000,
        store_us: 50,
        continued: 0,
        delegated: 0,
        continuation: false,
        carried_from: None,
        outcome: Outcome::Ok,
        kept_by: None,
        saved_by_clustering: 0,
        saved_by_delayed_io: 0,
    }
}

/// Two runs: `good` (succeeded: two loads into a total) and, a second later, `bad` (failed:
/// `parse` retried once, then failed).
fn write_runs(url: &str) -> (u64, u64) {
    let t0 = now_us() - 60_000_000;
    let t1 = t0 + 1_000_000;
    let metrics = RedisMetrics::new(url, DEFAULT_METRICS_TTL);
    let good = RunRecord {
        id: "good-4f1c".into(),
        name: "app::total".into(),
        state: RunState::Succeeded,
        nodes: 3,
        submitted_us: t0,
        ended_us: Some(t0 + 50_000),
        error: None,
        client: "host:7".into(),
    };
    let bad = RunRecord {
        id: "bad-77aa".into(),
        name: "app::report".into(),
        state: RunState::Failed,
        nodes: 2,
        submitted_us: t1,
        ended_us: Some(t1 + 30_000),
        error: Some("task `app::parse` (node 0) failed on attempt 2: bad digit".into()),
        client: "host:7".into(),
    };
    let mut retried = record("bad-77aa", 0, "app::parse", (t1 + 1_000, t1 + 5_000), &[]);
    retried.outcome = Outcome::Retried;
    let mut failed = record("bad-77aa", 0, "app::parse", (t1 + 10_000, t1 + 20_000), &[]);
    failed.attempt = 2;
    failed.outcome = Outcome::Error;
    let tasks = vec![
        record("good-4f1c", 0, "app::load", (t0 + 1_000, t0 + 10_000), &[]),
        record("good-4f1c", 1, "app::load", (t0 + 1_000, t0 + 30_000), &[]),
        record(
            "good-4f1c",
            2,
            "app::total",
            (t0 + 30_000, t0 + 45_000),
            &[0, 1],
        ),
        retried,
        failed,
    ];
    let mut digests = std::collections::BTreeMap::<String, dag::metrics::Digest>::new();
    for task in &tasks {
        digests.entry(task.dag.to_string()).or_default().add(task);
    }
    block_on(async {
        metrics.put_run(&good).await.unwrap();
        metrics.put_run(&bad).await.unwrap();
        let batch = Batch {
            recorder: "host:7".into(),
            tasks: vec![tasks],
            digests,
            workers: Vec::new(),
        };
        metrics.put(batch).await.unwrap();
    });
    (t0, t1)
}

#[test]
fn runs_lists_recent_runs_newest_first() {
    let redis = TestRedis::start();
    write_runs(&redis.url());
    let text = stdout(&dag(Some(&redis.url()), &["runs"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("MAKESPAN"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("bad-77aa") && lines[1].contains("failed"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("good-4f1c") && lines[2].contains("0.050 s"),
        "{text}"
    );

    let limited = stdout(&dag(Some(&redis.url()), &["runs", "--limit", "1"]));
    assert_eq!(limited.lines().count(), 2, "{limited}");
}

#[test]
fn runs_json_has_the_fields_scripts_read() {
    let redis = TestRedis::start();
    let (t0, _) = write_runs(&redis.url());
    let json: Value = serde_json::from_str(&stdout(&dag(
        Some(&redis.url()),
        &["--redis", &redis.url(), "runs", "--json"],
    )))
    .expect("JSON");
    let runs = json.as_array().expect("an array");
    assert_eq!(runs.len(), 2);
    let (bad, good) = (&runs[0], &runs[1]);
    assert_eq!(good["id"], "good-4f1c");
    assert_eq!(good["state"], "succeeded");
    assert_eq!(good["tasks"], 3);
    assert_eq!(good["makespan_ms"], 50.0);
    assert_eq!(good["started_at_us"], t0);
    assert!(
        good["started_at"].as_str().unwrap().ends_with('Z'),
        "{good}"
    );
    assert_eq!(bad["state"], "failed");
    assert_eq!(
        (bad["tasks"].clone(), bad["failures"].clone()),
        (1.into(), 1.into())
    );
}

#[test]
fn show_prints_the_summary_tables_and_critical_path() {
    let redis = TestRedis::start();
    write_runs(&redis.url());
    let text = stdout(&dag(Some(&redis.url()), &["show", "good-4f1c"]));
    for expected in [
        "run good-4f1c  app::total  succeeded",
        "makespan    50.0 ms",
        "tasks       3 (3 attempts, 0 retries, 0 failures",
        "critical path (2 tasks",
        "run time per task (ms)",
        "slowest attempts",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    // A prefix of the id is enough.
    assert_eq!(stdout(&dag(Some(&redis.url()), &["show", "good"])), text);
}

#[test]
fn show_json_has_the_fields_scripts_read() {
    let redis = TestRedis::start();
    write_runs(&redis.url());
    let out = stdout(&dag(Some(&redis.url()), &["show", "good-4f1c", "--json"]));
    let json: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(json["id"], "good-4f1c");
    assert_eq!(json["state"], "succeeded");
    assert_eq!(json["tasks"], 3);
    assert_eq!(json["makespan_ms"], 50.0);
    assert_eq!(json["bytes_uploaded"], 3_000);
    assert_eq!(json["bytes_downloaded"], 2_000);
    assert_eq!(
        json["critical_path"],
        serde_json::json!(["app::load", "app::total"])
    );
    let by_task = json["by_task"].as_array().expect("a list");
    let names: Vec<&str> = by_task
        .iter()
        .map(|t| t["task"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app::load", "app::total"]);
    for field in ["count", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"] {
        assert!(by_task[0][field].is_number(), "{field}: {}", by_task[0]);
    }
    assert_eq!(by_task[0]["count"], 2);
}

#[test]
fn show_of_a_failed_run_lists_retries_and_the_error() {
    let redis = TestRedis::start();
    write_runs(&redis.url());
    let text = stdout(&dag(Some(&redis.url()), &["show", "bad-77aa"]));
    assert!(text.contains("1 retries, 1 failures"), "{text}");
    assert!(text.contains("error       task `app::parse`"), "{text}");
    let errors = text.split("\nerrors\n").nth(1).expect("an errors section");
    assert!(
        errors.contains("app::parse") && errors.contains("bad digit"),
        "{text}"
    );

    let json: Value = serde_json::from_str(&stdout(&dag(
        Some(&redis.url()),
        &["show", "bad-77aa", "--json"],
    )))
    .unwrap();
    assert_eq!(
        (json["retries"].clone(), json["failures"].clone()),
        (1.into(), 1.into())
    );
    assert_eq!(json["errors"][0]["attempt"], 2);
}

#[test]
fn show_of_an_unknown_run_fails_clearly() {
    let redis = TestRedis::start();
    write_runs(&redis.url());
    let stderr = failure(&dag(Some(&redis.url()), &["show", "nope"]));
    assert!(
        stderr.contains("no run \"nope\"") && stderr.contains("dag runs"),
        "{stderr}"
    );
}

#[test]
fn a_missing_redis_url_says_how_to_give_one() {
    let stderr = failure(&dag(None, &["runs"]));
    assert!(
        stderr.contains("--redis") && stderr.contains("DAG_REDIS_URL"),
        "{stderr}"
    );
}

#[test]
fn a_redis_that_is_down_is_an_error_not_a_panic() {
    // Port 1: nothing listens there. (A port freed by a stopped test server could be taken
    // by another test's server meanwhile.)
    let url = "redis://127.0.0.1:1".to_owned();
    for args in [&["runs"][..], &["show", "x"], &["gc"]] {
        let stderr = failure(&dag(Some(&url), args));
        assert!(stderr.contains("cannot connect"), "{args:?}: {stderr}");
    }
}

#[test]
fn gc_removes_expired_runs_and_says_so() {
    let redis = TestRedis::start();
    write_runs(&redis.url());
    let old = RunRecord {
        id: "old-0001".into(),
        name: "app::total".into(),
        state: RunState::Succeeded,
        nodes: 1,
        submitted_us: now_us() - DEFAULT_METRICS_TTL.as_micros() as u64 - 1_000_000,
        ended_us: None,
        error: None,
        client: "host:7".into(),
    };
    block_on(RedisMetrics::new(redis.url(), DEFAULT_METRICS_TTL).put_run(&old)).unwrap();
    let text = stdout(&dag(Some(&redis.url()), &["gc"]));
    assert!(text.contains("metrics of 1 run "), "{text}");
    assert!(text.contains("removed 0 expired DAGs"), "{text}");
    let runs = stdout(&dag(Some(&redis.url()), &["runs"]));
    assert!(
        !runs.contains("old-0001") && runs.contains("good-4f1c"),
        "{runs}"
    );
}

// A real run, recorded by the runtime, read back by the CLI.

#[task]
fn cli_leaf(i: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(2));
    i + 1
}

#[task]
fn cli_add(a: u64, b: u64) -> u64 {
    a + b
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(retries = 1, backoff = "1ms")]
fn cli_flaky(x: u64) -> Result<u64, String> {
    match FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) {
        0 => Err("the first attempt fails".into()),
        _ => Ok(x),
    }
}

#[task(retries = 1, backoff = "1ms")]
fn cli_broken(x: u64) -> Result<u64, String> {
    Err(format!("broken on purpose ({x})"))
}

fn show_json(url: &str, id: &str) -> Value {
    serde_json::from_str(&stdout(&dag(Some(url), &["show", id, "--json"]))).expect("JSON")
}

#[test]
fn the_cli_reads_a_finished_run_and_a_failed_one_recorded_by_a_runtime() {
    let redis = TestRedis::start();
    let url = redis.url();
    let runtime = Runtime::builder()
        .redis(&url)
        .workers(2)
        .metrics(MetricsStorage::dag_store().upload(Upload::EachTask))
        .build()
        .unwrap();
    let metrics = runtime.metrics().expect("metrics are on");
    FLAKY_CALLS.store(0, Ordering::SeqCst);
    // 8 leaves, 7 adds in a tree of depth 3, then a task that fails once: 16 tasks.
    let tree = reduce_pairwise((0..8).map(cli_leaf).collect(), |a, b| cli_add(a, b));
    assert_eq!(cli_flaky(tree).compute_on(&runtime).unwrap(), sum_1_to(8));
    let good = metrics.last_run_id().expect("a run");
    assert!(cli_broken(cli_leaf(1)).compute_on(&runtime).is_err());
    let bad = metrics.last_run_id().expect("a run");
    drop(runtime); // a graceful shutdown uploads what is left

    let listed = stdout(&dag(Some(&url), &["runs"]));
    // What a user sees (with --nocapture): the README's example output comes from here.
    eprintln!(
        "$ dag runs\n{listed}$ dag show {good}\n{}",
        stdout(&dag(Some(&url), &["show", &good]))
    );
    let lines: Vec<&str> = listed.lines().collect();
    assert!(
        lines[1].starts_with(&bad) && lines[1].contains("failed"),
        "{listed}"
    );
    assert!(
        lines[2].starts_with(&good) && lines[2].contains("succeeded"),
        "{listed}"
    );

    let json = show_json(&url, &good);
    assert_eq!(json["state"], "succeeded");
    assert_eq!(
        (json["tasks"].clone(), json["retries"].clone()),
        (16.into(), 1.into())
    );
    assert!(json["bytes_uploaded"].as_u64().unwrap() > 0, "{json}");
    // The critical path: a leaf, the three levels of adds, the flaky task.
    let path: Vec<&str> = json["critical_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(path.len(), 5, "{path:?}");
    assert!(
        path[0].ends_with("cli_leaf") && path[4].ends_with("cli_flaky"),
        "{path:?}"
    );
    assert!(
        path[1..4].iter().all(|t| t.ends_with("cli_add")),
        "{path:?}"
    );
    let counts: Vec<(String, u64)> = json["by_task"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let name = t["task"].as_str().unwrap();
            let short = name.rsplit("::").next().unwrap().to_owned();
            (short, t["count"].as_u64().unwrap())
        })
        .collect();
    let expected = [("cli_add", 7), ("cli_flaky", 2), ("cli_leaf", 8)];
    let expected: Vec<(String, u64)> = expected.iter().map(|(t, n)| (t.to_string(), *n)).collect();
    assert_eq!(counts, expected);

    let json = show_json(&url, &bad);
    assert_eq!(json["state"], "failed");
    assert_eq!(
        (json["retries"].clone(), json["failures"].clone()),
        (1.into(), 1.into())
    );
    let error = &json["errors"][0];
    assert!(
        error["task"].as_str().unwrap().ends_with("cli_broken"),
        "{json}"
    );
    assert_eq!(error["attempt"], 2);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("broken on purpose (2)"),
        "{json}"
    );
    let text = stdout(&dag(Some(&url), &["show", &bad]));
    assert!(
        text.contains("errors") && text.contains("broken on purpose (2)"),
        "{text}"
    );
}

#[test]
fn show_merges_the_percentiles_of_recent_runs_of_the_same_graph() {
    let redis = TestRedis::start();
    let url = redis.url();
    let runtime = Runtime::builder()
        .redis(&url)
        .workers(2)
        .metrics(MetricsStorage::dag_store())
        .build()
        .unwrap();
    let metrics = runtime.metrics().expect("metrics are on");
    // Three runs of one graph (4 leaves, 3 adds), then another graph.
    let tree = || reduce_pairwise((0..4).map(cli_leaf).collect(), |a, b| cli_add(a, b));
    for _ in 0..3 {
        assert_eq!(tree().compute_on(&runtime).unwrap(), sum_1_to(4));
    }
    let third = metrics.last_run_id().unwrap();
    assert_eq!(cli_leaf(7).compute_on(&runtime).unwrap(), 8);
    metrics.flush().unwrap();

    let json = show_json(&url, &third);
    let history = &json["history"];
    assert_eq!(history["runs"], 3, "{json}");
    let counts: Vec<u64> = history["by_task"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [9, 12], "3 runs of 3 adds and 4 leaves: {history}");
    let text = stdout(&dag(Some(&url), &["show", &third]));
    assert!(text.contains("across the last 3 runs of"), "{text}");
    // The other graph has one run: no history.
    let other = metrics.last_run_id().unwrap();
    assert!(show_json(&url, &other).get("history").is_none());
}

/// A run of more task records than one read takes (they are read in slices of 10,000) comes
/// back whole, in start order, and `dag show` counts every one.
#[test]
fn a_run_of_many_records_reads_back_whole() {
    let redis = TestRedis::start();
    let url = redis.url();
    let metrics = RedisMetrics::new(url.clone(), DEFAULT_METRICS_TTL);
    let t0 = now_us() - 60_000_000;
    let tasks: Vec<TaskRecord> = (0..25_001u32)
        .map(|n| {
            let start = t0 + u64::from(n) * 10;
            record("many-1", n, "app::leaf", (start, start + 200), &[])
        })
        .collect();
    let run = RunRecord {
        id: "many-1".into(),
        name: "app::leaf".into(),
        state: RunState::Succeeded,
        nodes: 25_001,
        submitted_us: t0,
        ended_us: Some(t0 + 300_000),
        error: None,
        client: "host:7".into(),
    };
    block_on(async {
        metrics.put_run(&run).await.unwrap();
        for slice in tasks.chunks(7_000) {
            let batch = Batch {
                recorder: "host:7".into(),
                tasks: vec![slice.to_vec()],
                ..Batch::default()
            };
            metrics.put(batch).await.unwrap();
        }
        let read = metrics.run("many-1").await.unwrap().expect("the run");
        assert_eq!(read.tasks.len(), 25_001);
        let nodes: Vec<u32> = read.tasks.iter().map(|t| t.node).collect();
        assert_eq!(nodes, (0..25_001).collect::<Vec<u32>>());
    });
    assert_eq!(show_json(&url, "many-1")["tasks"], 25_001);
}
