//! A Redis user with only the ACL that `dag::store::REDIS_ACL` lists can do everything a client
//! and its workers do: the rules are complete, and the README's list is the same.

use std::collections::HashMap;

use dag::prelude::*;
use dag::store::REDIS_ACL;
use dag_test_support::{needs_redis_server, RedisServer};

#[task]
fn leaf(i: u64) -> u64 {
    i + 1
}

#[task]
fn sum(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

#[task]
fn split(n: u64) -> Vec<u64> {
    (0..n).collect()
}

#[task]
fn double(x: u64) -> u64 {
    2 * x
}

#[task]
fn fails(_x: u64) -> Result<u64, String> {
    Err("on purpose".into())
}

#[task]
fn named(parts: HashMap<String, u64>) -> u64 {
    parts.values().sum()
}

/// A server whose user `dag` has exactly [`REDIS_ACL`], and that user's URL.
fn restricted_server() -> (RedisServer, String) {
    let mut args = vec!["--user", "dag", "on", ">secret"];
    args.extend(REDIS_ACL.split_whitespace());
    let server = RedisServer::start_with_args(&args);
    let url = format!("redis://dag:secret@127.0.0.1:{}", server.port());
    (server, url)
}

#[test]
fn every_shape_runs_under_the_documented_acl() {
    if !needs_redis_server("every_shape_runs_under_the_documented_acl") {
        return;
    }
    let (_server, url) = restricted_server();
    let runtime = Runtime::builder()
        .redis(&url)
        .build()
        .expect("the restricted user connects and loads the scripts");
    let leaves: Vec<Node<u64>> = (0..64).map(leaf).collect();
    assert_eq!(
        sum(leaves).compute_on(&runtime).unwrap(),
        (1..=64).sum::<u64>()
    );
    let mapped = split(10).map(double);
    assert_eq!(sum(mapped).compute_on(&runtime).unwrap(), 90);
    let parts = HashMap::from([("a".to_owned(), leaf(1)), ("b".to_owned(), leaf(2))]);
    assert_eq!(named(parts).compute_on(&runtime).unwrap(), 5);
    match fails(leaf(1)).compute_on(&runtime) {
        Err(DagError::TaskFailed { message, .. }) => assert_eq!(message, "on purpose"),
        other => panic!("expected the task's failure, got {other:?}"),
    }
    assert_eq!(runtime.gc().unwrap(), 0);
}

#[test]
fn a_user_without_the_acl_gets_an_error_that_points_at_it() {
    if !needs_redis_server("a_user_without_the_acl_gets_an_error_that_points_at_it") {
        return;
    }
    let mut args = vec!["--user", "dag", "on", ">secret"];
    // Everything but the scripts.
    args.extend(REDIS_ACL.split_whitespace().filter(|r| *r != "+evalsha"));
    let server = RedisServer::start_with_args(&args);
    let url = format!("redis://dag:secret@127.0.0.1:{}", server.port());
    let runtime = Runtime::builder().redis(&url).build().unwrap();
    match leaf(1).compute_on(&runtime) {
        Err(error) => {
            let text = error.to_string();
            assert!(text.to_ascii_uppercase().contains("NOPERM"), "{text}");
            assert!(text.contains("ACL"), "{text}");
        }
        Ok(value) => panic!("expected a permission error, got {value}"),
    }
}

#[test]
fn the_readme_lists_the_same_acl() {
    let readme = include_str!("../README.md");
    let folded: String = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        folded.contains(REDIS_ACL),
        "README.md must list dag::store::REDIS_ACL as it is:\n{REDIS_ACL}"
    );
}

#[test]
fn the_invocation_stream_works_under_the_documented_acl() {
    if !needs_redis_server("the_invocation_stream_works_under_the_documented_acl") {
        return;
    }
    use dag::store::{DagId, InvocationStream, RedisStore};
    use std::time::Duration;

    let (_server, url) = restricted_server();
    let io = tokio::runtime::Runtime::new().unwrap();
    io.block_on(async {
        let store = RedisStore::connect(&url).await.unwrap();
        let stream = InvocationStream::new(store, "dag:invocations");
        stream.create_group().await.unwrap();
        let dag = DagId::new();
        stream
            .submit(&[(dag.clone(), 0), (dag.clone(), 1)])
            .await
            .unwrap();
        let mut reader = stream.reader("acl-test/t0").await.unwrap();
        let first = reader.read(1, Duration::from_millis(100)).await.unwrap();
        assert_eq!(first.len(), 1);
        stream
            .keep_alive(&[("acl-test/t0".into(), first[0].id.clone())])
            .await
            .unwrap();
        let ids = vec![first[0].id.clone()];
        let second = reader
            .ack_and_read(&ids, 1, Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(second[0].node, 1);
        let taken = reader
            .ack_and_take_over_stale(&[], Duration::from_millis(1), 1)
            .await
            .unwrap();
        assert!(taken.len() <= 1);
        stream.ack(&[second[0].id.clone()]).await.unwrap();
        assert_eq!(stream.pending().await.unwrap(), 0);
        stream
            .prune_consumers(Duration::from_secs(3600))
            .await
            .unwrap();
        stream
            .record_cold_start(Duration::from_millis(3))
            .await
            .unwrap();
        assert_eq!(stream.cold_starts().await.unwrap().len(), 1);
        reader.remove_consumer().await.unwrap();
        stream.destroy().await.unwrap();
    });
}

/// Metrics in the DAG's Redis, `dag runs`/`dag show` and the dashboard's reads of a running
/// DAG (`RedisStore::inspect`, `XREAD` of its events) work under the same rules.
#[test]
fn metrics_the_cli_and_the_dashboards_reads_work_under_the_documented_acl() {
    if !needs_redis_server("metrics_the_cli_and_the_dashboards_reads_work_under_the_documented_acl")
    {
        return;
    }
    use dag::metrics::{MetricsStorage, Upload};
    use dag::store::{event_stream_key, DagId, RedisStore};

    let (_server, url) = restricted_server();
    let runtime = Runtime::builder()
        .redis(&url)
        .metrics(MetricsStorage::dag_store().upload(Upload::EachTask))
        .build()
        .unwrap();
    let leaves: Vec<Node<u64>> = (0..8).map(leaf).collect();
    assert_eq!(sum(leaves).compute_on(&runtime).unwrap(), 36);
    let metrics = runtime.metrics().unwrap();
    metrics.flush().unwrap();

    let dag_cli = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_dag"))
            .args(args)
            .env("DAG_REDIS_URL", &url)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "dag {args:?}: {stderr}");
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let runs = dag_cli(&["runs", "--json"]);
    let id = runs[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(runs[0]["tasks"], 9);
    assert_eq!(dag_cli(&["show", &id, "--json"])["tasks"], 9);

    let io = tokio::runtime::Runtime::new().unwrap();
    io.block_on(async {
        let store = RedisStore::connect(&url).await.unwrap();
        // Ended: its keys are gone, which inspect reports as `None`, not as an error.
        assert!(store
            .inspect(&DagId::from(id.as_str()))
            .await
            .unwrap()
            .is_none());
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let read: Option<redis::Value> = redis::cmd("XREAD")
            .arg("STREAMS")
            .arg(event_stream_key(&DagId::from(id.as_str())))
            .arg("0")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(read.is_none(), "the ended run's events are gone: {read:?}");
    });
}
