//! dag on a Redis Cluster, whole-system: graphs of several shapes (tree, fan-out/fan-in, a
//! dynamic map) computed through `Runtime::builder().redis_cluster(...)` on a test cluster of 3
//! masters and 3 replicas (`dag_test_support::TestCluster`, started and torn down here; skipped
//! with a message where `redis-server` or `redis-cli` is missing), with local worker threads,
//! with worker processes of this executable, and as the examples build their runtime
//! (`--redis-cluster`); each DAG's keys stay on one master while different DAGs spread over
//! several, and nothing is left behind.
//!
//! Its own `main` (`harness = false`): the executable is also the worker processes it starts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use dag::prelude::*;
use dag::store::RedisConfig;
use dag_test_support::{reduce_pairwise, run_tests, sum_1_to, Test, TestCluster};

mod support;

#[task]
fn leaf(i: u64) -> u64 {
    i + 1
}

#[task]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[task]
fn range(n: u64) -> Vec<u64> {
    (0..n).collect()
}

#[task]
fn total(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

#[task]
fn double(x: u64) -> u64 {
    2 * x
}

fn tree(leaves: u64) -> Node<u64> {
    reduce_pairwise((0..leaves).map(leaf).collect(), |a, b| add(a, b))
}

/// A fan-out of `n` tasks from one root, and their fan-in.
fn fan(n: u64) -> Node<u64> {
    let root = leaf(0);
    total((0..n).map(|i| add(&root, i)).collect::<Vec<_>>())
}

/// `node.compute_on(runtime)`, failing the check instead of hanging.
fn compute<T: serde::de::DeserializeOwned + Send + 'static>(
    node: &Node<T>,
    runtime: &Runtime,
) -> T {
    support::compute_within(node, runtime, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("the DAG fails: {e}"))
}

/// Computes the three shapes on `runtime` and checks their values.
fn compute_the_shapes(runtime: &Runtime) {
    assert_eq!(compute(&tree(32), runtime), sum_1_to(32));
    assert_eq!(
        compute(&fan(20), runtime),
        (0..20).map(|i| 1 + i).sum::<u64>()
    );
    let mapped = total(range(30).map(|x| add(double(&x), &x)));
    assert_eq!(
        compute(&mapped, runtime),
        (0..30).map(|x| 3 * x).sum::<u64>()
    );
}

/// Waits until no key of any DAG is left on any master (a map's child DAG is removed a moment
/// after its parent's outcome), then checks.
fn nothing_left(cluster: &TestCluster) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster.keys_matching("dag:{*").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(cluster.keys_matching("dag:{*"), Vec::<String>::new());
}

/// The DAG ids (hash tags) whose keys are on each master.
fn dags_per_master(cluster: &TestCluster) -> BTreeMap<u16, BTreeSet<String>> {
    cluster
        .master_ports()
        .into_iter()
        .map(|port| {
            let tags = cluster
                .keys_on(port, "dag:{*")
                .iter()
                .filter_map(|k| Some(k.strip_prefix("dag:{")?.split_once('}')?.0.to_owned()))
                .collect();
            (port, tags)
        })
        .collect()
}

fn shapes_on_local_threads() {
    let Some(cluster) = TestCluster::shared("shapes_on_local_threads") else {
        return;
    };
    let runtime = Runtime::builder()
        .redis_cluster(cluster.urls())
        .workers(4)
        .build()
        .unwrap();
    compute_the_shapes(&runtime);
    nothing_left(cluster);
}

fn different_dags_land_on_different_masters() {
    let Some(cluster) = TestCluster::shared("different_dags_land_on_different_masters") else {
        return;
    };
    let runtime = Runtime::builder()
        .redis_cluster(cluster.urls())
        .redis_config(RedisConfig {
            keep_finished: true,
            ..RedisConfig::default()
        })
        .workers(2)
        .build()
        .unwrap();
    for n in 0..12 {
        assert_eq!(compute(&tree(4 + n), &runtime), sum_1_to(4 + n));
    }
    let per_master = dags_per_master(cluster);
    let holding = per_master.values().filter(|tags| !tags.is_empty()).count();
    assert!(holding > 1, "12 DAGs on one master: {per_master:?}");
    let mut seen = BTreeSet::new();
    for tags in per_master.values() {
        for tag in tags {
            assert!(
                seen.insert(tag.clone()),
                "DAG {tag}'s keys are on two masters"
            );
        }
    }
    // Kept finished DAGs are the business of `gc` (with its own TTL); here: delete them.
    for (port, tags) in dags_per_master(cluster) {
        for tag in tags {
            // One DAG's keys at a time: one slot per command.
            let keys = cluster.keys_on(port, &format!("dag:{{{tag}}}:*"));
            let _: () = cluster
                .query(port, redis::cmd("DEL").arg(&keys))
                .unwrap_or_else(|e| panic!("DEL on {port}: {e}"));
        }
    }
}

/// A user with exactly `dag::store::REDIS_ACL` on every node (ACL users are per node, not
/// replicated: replicas need it too, for after a failover) computes the shapes: the cluster
/// client's own commands (`CLUSTER SLOTS`, `ASKING`) are in the documented rules.
fn shapes_under_the_documented_acl() {
    let Some(cluster) = TestCluster::shared("shapes_under_the_documented_acl") else {
        return;
    };
    let ports: Vec<u16> = cluster.nodes().iter().map(|n| n.port).collect();
    for port in &ports {
        let mut setuser = redis::cmd("ACL");
        setuser
            .arg("SETUSER")
            .arg("dag")
            .arg("reset")
            .arg("on")
            .arg(">secret");
        for rule in dag::store::REDIS_ACL.split_whitespace() {
            setuser.arg(rule);
        }
        let _: () = cluster
            .query(*port, &setuser)
            .unwrap_or_else(|e| panic!("ACL SETUSER on {port}: {e}"));
    }
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("redis://dag:secret@127.0.0.1:{p}"))
        .collect();
    let runtime = Runtime::builder()
        .redis_cluster(urls)
        .workers(2)
        .build()
        .unwrap();
    compute_the_shapes(&runtime);
    drop(runtime);
    for port in &ports {
        let _: () = cluster
            .query(*port, redis::cmd("ACL").arg("DELUSER").arg("dag"))
            .unwrap_or_else(|e| panic!("ACL DELUSER on {port}: {e}"));
    }
    nothing_left(cluster);
}

fn shapes_on_worker_processes() {
    let Some(cluster) = TestCluster::shared("shapes_on_worker_processes") else {
        return;
    };
    let runtime = Runtime::builder()
        .redis_cluster(cluster.urls())
        .spawn_workers(2)
        .workers(2)
        .build()
        .unwrap();
    compute_the_shapes(&runtime);
    assert!(runtime.process_stats().unwrap().started >= 2);
    drop(runtime);
    nothing_left(cluster);
}

fn the_examples_flags_name_a_cluster() {
    let Some(cluster) = TestCluster::shared("the_examples_flags_name_a_cluster") else {
        return;
    };
    let mut args: Vec<String> = vec![
        "example".into(),
        "--redis-cluster".into(),
        cluster.urls().join(","),
        "--workers".into(),
        "2".into(),
        "--other".into(),
    ];
    std::env::set_var("DAG_METRICS", "off");
    let runtime = dag::worker::runtime_from_args(&mut args).unwrap();
    assert_eq!(args, ["example", "--other"]);
    assert_eq!(compute(&tree(8), &runtime), sum_1_to(8));
    drop(runtime);

    let mut both: Vec<String> = vec![
        "example".into(),
        "--redis".into(),
        "redis://127.0.0.1:1".into(),
        "--redis-cluster".into(),
        cluster.urls().join(","),
    ];
    let error = dag::worker::runtime_from_args(&mut both)
        .err()
        .expect("both --redis and --redis-cluster is an error");
    assert!(error.to_string().contains("--redis-cluster"), "{error}");
    nothing_left(cluster);
}

fn an_unreachable_cluster_is_a_prompt_error() {
    // Port 1: nothing listens there, and no other test can start listening (a port bound and
    // closed could be taken by a server another test starts meanwhile).
    let port = 1;
    let started = Instant::now();
    let error = Runtime::builder()
        .redis_cluster([format!("redis://127.0.0.1:{port}")])
        .build()
        .err()
        .expect("nothing listens there");
    assert!(matches!(error, DagError::Redis { .. }), "{error:?}");
    assert!(error.to_string().contains(&port.to_string()), "{error}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let none: [&str; 0] = [];
    let error = Runtime::builder()
        .redis_cluster(none)
        .build()
        .err()
        .unwrap();
    assert!(error.to_string().contains("seed"), "{error}");
}

#[task]
fn slow_leaf(i: u64, delay_ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(delay_ms));
    i + 1
}

fn slow_tree(leaves: u64, delay_ms: u64) -> Node<u64> {
    let leaves = (0..leaves).map(|i| slow_leaf(i, delay_ms)).collect();
    reduce_pairwise(leaves, |a, b| add(a, b))
}

/// Joins the DAGs `start_slow_dags` started: each ended with the right value or a clear error
/// (`what` says what happened meanwhile). Returns how many completed and how many failed.
fn outcomes(
    running: Vec<std::thread::JoinHandle<Result<u64, DagError>>>,
    what: &str,
) -> (usize, usize) {
    let (mut ok, mut failed) = (0, 0);
    for dag in running {
        match dag.join().unwrap() {
            Ok(value) => {
                assert_eq!(value, sum_1_to(32), "never a wrong result");
                ok += 1;
            }
            Err(error) => {
                eprintln!("a DAG failed {what}: {error}");
                assert!(
                    matches!(error, DagError::Redis { .. } | DagError::Store(_)),
                    "{error:?}"
                );
                failed += 1;
            }
        }
    }
    (ok, failed)
}

/// Starts `dags` slow trees of `leaves` leaves on `runtime`, each on a thread of its own;
/// joined, each gives its outcome (or the check fails if it does not end within the guard).
fn start_slow_dags(
    runtime: &Runtime,
    dags: usize,
    leaves: u64,
) -> Vec<std::thread::JoinHandle<Result<u64, DagError>>> {
    (0..dags)
        .map(|_| {
            let runtime = runtime.clone();
            std::thread::spawn(move || {
                support::compute_within(&slow_tree(leaves, 40), &runtime, Duration::from_secs(180))
            })
        })
        .collect()
}

/// A graceful failover of every master in turn (`CLUSTER FAILOVER` on its replica, which waits
/// until the replica has caught up), while DAGs run on local threads and on worker processes:
/// every DAG completes with the right value.
fn dags_complete_across_a_failover_of_every_master() {
    let Some(cluster) = TestCluster::start("dags_complete_across_a_failover_of_every_master")
    else {
        return;
    };
    let local = Runtime::builder()
        .redis_cluster(cluster.urls())
        .workers(4)
        .build()
        .unwrap();
    let processes = Runtime::builder()
        .redis_cluster(cluster.urls())
        .spawn_workers(2)
        .workers(2)
        .build()
        .unwrap();
    let mut running = start_slow_dags(&local, 4, 32);
    running.extend(start_slow_dags(&processes, 4, 32));
    std::thread::sleep(Duration::from_millis(300));
    for master in cluster.master_ports() {
        let replica = cluster
            .replica_of(master)
            .expect("every master has a replica");
        cluster
            .failover(replica, false)
            .unwrap_or_else(|e| panic!("the failover of {master} to {replica}: {e}"));
    }
    for dag in running {
        assert_eq!(
            dag.join().unwrap().expect("the DAG completes"),
            sum_1_to(32)
        );
    }
    drop((local, processes));
    nothing_left(&cluster);
}

/// A master killed (SIGKILL) while DAGs run, its replica promoted by the cluster itself: every
/// DAG ends, with the right value or with an error that says what happened; none hangs.
fn a_master_killed_mid_run_never_hangs_a_dag() {
    let Some(mut cluster) = TestCluster::start("a_master_killed_mid_run_never_hangs_a_dag") else {
        return;
    };
    let runtime = Runtime::builder()
        .redis_cluster(cluster.urls())
        .workers(4)
        .build()
        .unwrap();
    let running = start_slow_dags(&runtime, 6, 32);
    std::thread::sleep(Duration::from_millis(300));
    let victim = cluster.master_ports()[0];
    cluster.kill(victim);
    cluster
        .wait_until_ok(Duration::from_secs(60))
        .expect("the replica of the killed master takes over");
    let (ok, failed) = outcomes(running, "after the master died");
    eprintln!("after killing master {victim}: {ok} DAGs completed, {failed} failed");
    // The runtime still works on the cluster as it is now.
    assert_eq!(compute(&tree(8), &runtime), sum_1_to(8));
}

/// Slots move between masters while DAGs run (their keys migrate under them: `ASK`, `MOVED`,
/// `TRYAGAIN` for a script whose keys are split for a moment): every DAG ends, with the right
/// value or a clear error, never a hang or a wrong result.
fn dags_run_through_a_resharding() {
    let Some(cluster) = TestCluster::start("dags_run_through_a_resharding") else {
        return;
    };
    let runtime = Runtime::builder()
        .redis_cluster(cluster.urls())
        .workers(4)
        .build()
        .unwrap();
    let running = start_slow_dags(&runtime, 6, 32);
    std::thread::sleep(Duration::from_millis(200));
    let masters = cluster.master_ports();
    // Half of the first master's slots to the second, then a third of them on to the third.
    cluster.reshard(masters[0], masters[1], 2730).unwrap();
    cluster.reshard(masters[1], masters[2], 3000).unwrap();
    let (ok, failed) = outcomes(running, "during the resharding");
    eprintln!("through the resharding: {ok} DAGs completed, {failed} failed");
    assert_eq!(compute(&tree(8), &runtime), sum_1_to(8));
    drop(runtime);
    nothing_left(&cluster);
}

const TESTS: &[Test] = &dag_test_support::tests![
    shapes_on_local_threads,
    different_dags_land_on_different_masters,
    shapes_on_worker_processes,
    shapes_under_the_documented_acl,
    the_examples_flags_name_a_cluster,
    an_unreachable_cluster_is_a_prompt_error,
    dags_complete_across_a_failover_of_every_master,
    a_master_killed_mid_run_never_hangs_a_dag,
    dags_run_through_a_resharding,
];

fn main() {
    dag::worker::run_if_worker();
    // These checks run on the test cluster, not on the backends the harness repeats tests
    // for: once is enough.
    std::env::set_var(dag_test_support::BACKEND_ENV, "inprocess");
    run_tests(TESTS);
}
