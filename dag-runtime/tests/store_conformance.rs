//! The store conformance suite: every [`Store`] operation, checked once, run against
//! [`MemoryStore`] and a [`RedisStore`] on each Redis backend of `dag_test_support::backends`
//! (the in-process Redis, and a throwaway `redis-server` when one is on `PATH`).
//!
//! The Redis checks run on a Redis Cluster too (3 masters, 3 replicas, started by the tests:
//! `dag_test_support::TestCluster`, skipped with a message without `redis-server`/`redis-cli`),
//! through [`RedisStore::connect_cluster`].
//!
//! Each check is an `async fn(&Fixture)`; the `conformance!` macro at the bottom turns every
//! check into one test per store. Redis-only behaviour (URLs, passwords, faults) is at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dag_runtime::plan::{Plan, PlanNode};
use dag_runtime::store::{
    ChildRef, Completion, DagId, EventCursor, FailureKind, Keep, Marked, MemoryStore, Outcome,
    RedisConfig, RedisStore, Store, TaskErrorRecord,
};
use dag_runtime::DagError;
use dag_test_support::{info_number, keys_matching, on_each_backend, TestCluster, TestRedis};

/// Lists what is left of a DAG in a store (keys, entries), for the cleanup checks.
type Leftovers = Box<dyn Fn(&DagId) -> Vec<String> + Send + Sync>;

/// A store under test, and a way to list what is left of a DAG in it.
struct Fixture {
    store: Arc<dyn Store>,
    leftovers: Leftovers,
}

impl Fixture {
    fn store(&self) -> &dyn Store {
        &*self.store
    }
}

fn memory_fixture() -> Fixture {
    memory_fixture_with(MemoryStore::new())
}

fn memory_fixture_with(store: MemoryStore) -> Fixture {
    let store = Arc::new(store);
    let probe = Arc::clone(&store);
    Fixture {
        store,
        leftovers: Box::new(move |_| {
            (0..probe.dag_count())
                .map(|i| format!("DAG entry {i}"))
                .collect()
        }),
    }
}

async fn redis_fixture(server: &TestRedis) -> Fixture {
    redis_fixture_with(server, RedisConfig::default()).await
}

async fn redis_fixture_with(server: &TestRedis, config: RedisConfig) -> Fixture {
    let store = RedisStore::connect_with(&server.url(), config)
        .await
        .expect("connects to the test server");
    let client = redis::Client::open(server.url()).unwrap();
    Fixture {
        store: Arc::new(store),
        leftovers: Box::new(move |dag| {
            let mut conn = client.get_connection().expect("a second connection");
            let mut keys = keys_matching(&mut conn, &format!("dag:{{{dag}}}:*"));
            let score: Option<f64> = redis::cmd("ZSCORE")
                .arg("dags")
                .arg(dag.as_str())
                .query(&mut conn)
                .unwrap();
            if score.is_some() {
                keys.push(format!("dags member {dag}"));
            }
            keys
        }),
    }
}

async fn cluster_fixture(cluster: &TestCluster, config: RedisConfig) -> Fixture {
    let store = RedisStore::connect_cluster(cluster.urls(), config)
        .await
        .expect("connects to the test cluster");
    assert!(store.is_cluster());
    let client = redis::cluster::ClusterClient::new(cluster.urls()).unwrap();
    let ports = cluster.master_ports();
    Fixture {
        store: Arc::new(store),
        leftovers: Box::new(move |dag| {
            // Every master: a DAG's keys are on one, but which one is the cluster's business.
            let mut keys: Vec<String> = ports
                .iter()
                .flat_map(|&port| {
                    let mut conn = dag_test_support::connect(&format!("redis://127.0.0.1:{port}"));
                    keys_matching(&mut conn, &format!("dag:{{{dag}}}:*"))
                })
                .collect();
            let mut conn = client.get_connection().expect("a cluster connection");
            let score: Option<f64> = redis::cmd("ZSCORE")
                .arg("dags")
                .arg(dag.as_str())
                .query(&mut conn)
                .unwrap();
            if score.is_some() {
                keys.push(format!("dags member {dag}"));
            }
            keys
        }),
    }
}

fn run_on_cluster<F, Fut>(check: F)
where
    F: FnOnce(Arc<Fixture>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(cluster) = TestCluster::shared("store conformance on a Redis Cluster") else {
        return;
    };
    let rt = runtime();
    let fixture = rt.block_on(cluster_fixture(cluster, RedisConfig::default()));
    rt.block_on(check(Arc::new(fixture)));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn run_on_memory<F, Fut>(check: F)
where
    F: FnOnce(Arc<Fixture>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    runtime().block_on(check(Arc::new(memory_fixture())));
}

fn run_on_redis<F, Fut>(check: F)
where
    F: Fn(Arc<Fixture>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    on_each_backend(|_| {
        let server = TestRedis::start();
        let rt = runtime();
        let fixture = rt.block_on(redis_fixture(&server));
        rt.block_on(check(Arc::new(fixture)));
    });
}

/// A plan whose node `i` has the given children; parent counts are derived.
fn plan(children: &[&[u32]]) -> Arc<Plan> {
    let mut nodes: Vec<PlanNode> = children
        .iter()
        .map(|c| PlanNode {
            task: 0,
            args: Vec::new(),
            children: c.to_vec(),
            parents: 0,
            map: None,
            element: None,
        })
        .collect();
    for c in children.iter().flat_map(|c| c.iter()) {
        nodes[*c as usize].parents += 1;
    }
    Arc::new(Plan {
        tasks: vec!["conformance::t".into()],
        sink: (nodes.len() - 1) as u32,
        nodes,
        parent: None,
        signatures: Vec::new(),
        policy: Default::default(),
    })
}

/// A fan-in: nodes `0..k` all feed node `k`, the sink.
fn fan_in(k: u32) -> Arc<Plan> {
    let sink: &[u32] = &[k];
    let children: Vec<&[u32]> = (0..k).map(|_| sink).chain([&[][..]]).collect();
    plan(&children)
}

fn children_of(plan: &Plan, node: u32) -> Vec<ChildRef> {
    plan.node(node)
        .children
        .iter()
        .map(|&c| ChildRef {
            node: c,
            parents: plan.node(c).parents,
        })
        .collect()
}

async fn submit(f: &Fixture, plan: &Arc<Plan>) -> DagId {
    let dag = DagId::new();
    f.store().put_plan(&dag, plan).await.unwrap();
    dag
}

async fn complete(f: &Fixture, dag: &DagId, plan: &Plan, node: u32) -> Completion {
    claimed(f, dag, plan, node, "").await
}

/// [`complete`] by the run `claim` (a worker process's stream entry).
async fn claimed(f: &Fixture, dag: &DagId, plan: &Plan, node: u32, claim: &str) -> Completion {
    f.store()
        .complete(dag, node, out(node), &children_of(plan, node), claim)
        .await
        .unwrap()
}

fn out(node: u32) -> Bytes {
    Bytes::from(format!("output of {node}"))
}

fn error(node: u32, message: &str) -> TaskErrorRecord {
    TaskErrorRecord::new(FailureKind::Task, "conformance::t", node, message, "test")
}

// ---- the checks, each written once ----

async fn put_plan_then_get_plan(f: Arc<Fixture>) {
    let p = plan(&[&[1], &[]]);
    let dag = submit(&f, &p).await;
    assert_eq!(
        f.store().get_plan(&dag).await.unwrap().as_deref(),
        Some(&*p)
    );
    assert_eq!(f.store().get_plan(&DagId::new()).await.unwrap(), None);
}

async fn get_plan_after_end_is_none(f: Arc<Fixture>) {
    let p = plan(&[&[]]);
    let dag = submit(&f, &p).await;
    f.store().finish(&dag, out(0)).await.unwrap();
    assert_eq!(f.store().get_plan(&dag).await.unwrap(), None);
    f.store().wait(&dag).await.unwrap();
    assert_eq!(f.store().get_plan(&dag).await.unwrap(), None);
}

async fn fetch_outputs_in_request_order(f: Arc<Fixture>) {
    let p = plan(&[&[3], &[3], &[3], &[]]);
    let dag = submit(&f, &p).await;
    for node in 0..3 {
        complete(&f, &dag, &p, node).await;
    }
    let fetched = f.store().fetch_outputs(&dag, &[2, 0, 1]).await.unwrap();
    assert_eq!(fetched, Some(vec![out(2), out(0), out(1)]));
}

async fn fetch_of_a_missing_output_is_an_error(f: Arc<Fixture>) {
    let p = plan(&[&[1], &[]]);
    let dag = submit(&f, &p).await;
    match f.store().fetch_outputs(&dag, &[0]).await {
        Err(DagError::Store(message)) => assert!(message.contains("node 0"), "{message}"),
        other => panic!("expected a store error, got {other:?}"),
    }
}

async fn fetch_on_an_ended_or_unknown_dag_is_none(f: Arc<Fixture>) {
    let p = plan(&[&[1], &[]]);
    let dag = submit(&f, &p).await;
    complete(&f, &dag, &p, 0).await;
    f.store().fail(&dag, error(1, "boom")).await.unwrap();
    assert_eq!(f.store().fetch_outputs(&dag, &[0]).await.unwrap(), None);
    assert_eq!(
        f.store().fetch_outputs(&DagId::new(), &[0]).await.unwrap(),
        None
    );
}

async fn complete_reports_a_child_when_its_last_parent_finishes(f: Arc<Fixture>) {
    let p = plan(&[&[2, 3], &[3], &[4], &[4], &[]]);
    let dag = submit(&f, &p).await;
    // Node 0 readies 2 (one parent) but not 3 (two parents).
    assert_eq!(complete(&f, &dag, &p, 0).await, Completion::Ready(vec![2]));
    assert_eq!(complete(&f, &dag, &p, 1).await, Completion::Ready(vec![3]));
    assert_eq!(complete(&f, &dag, &p, 2).await, Completion::Ready(vec![]));
    assert_eq!(complete(&f, &dag, &p, 3).await, Completion::Ready(vec![4]));
    assert_eq!(
        f.store().fetch_outputs(&dag, &[2, 3]).await.unwrap(),
        Some(vec![out(2), out(3)])
    );
}

async fn a_parent_reporting_twice_is_counted_once(f: Arc<Fixture>) {
    let p = plan(&[&[2, 3], &[2], &[3], &[]]);
    let dag = submit(&f, &p).await;
    assert_eq!(complete(&f, &dag, &p, 0).await, Completion::Ready(vec![]));
    // Again (a retried worker): 2 still waits for 1, and 3 waits for 2.
    assert_eq!(complete(&f, &dag, &p, 0).await, Completion::Ready(vec![]));
    assert_eq!(complete(&f, &dag, &p, 1).await, Completion::Ready(vec![2]));
    assert_eq!(complete(&f, &dag, &p, 1).await, Completion::Ready(vec![]));
    assert_eq!(complete(&f, &dag, &p, 2).await, Completion::Ready(vec![3]));
    assert_eq!(complete(&f, &dag, &p, 2).await, Completion::Ready(vec![]));
}

/// A worker that died after its children became ready but before handing them on: the re-run of
/// its invocation (same claim) gets them again; nobody else does.
async fn the_claiming_run_gets_its_children_again(f: Arc<Fixture>) {
    let p = plan(&[&[1, 2], &[], &[]]);
    let dag = submit(&f, &p).await;
    assert_eq!(
        claimed(&f, &dag, &p, 0, "1-0").await,
        Completion::Ready(vec![1, 2])
    );
    assert_eq!(
        claimed(&f, &dag, &p, 0, "1-0").await,
        Completion::Ready(vec![1, 2])
    );
    assert_eq!(
        claimed(&f, &dag, &p, 0, "2-0").await,
        Completion::Ready(vec![])
    );
    assert_eq!(complete(&f, &dag, &p, 0).await, Completion::Ready(vec![]));
    // The output stored by the re-run is there for the children.
    assert_eq!(
        f.store().fetch_outputs(&dag, &[0]).await.unwrap(),
        Some(vec![out(0)])
    );
}

/// One run reporting both parents of a child (a worker that ran them in turn): its re-run gets
/// the child back from the parent whose report made it ready, not from the other one, whose
/// completion may have happened before the other parent's output existed.
async fn a_claim_belongs_to_the_parent_that_readied_the_child(f: Arc<Fixture>) {
    let p = plan(&[&[2], &[2], &[]]);
    let dag = submit(&f, &p).await;
    assert_eq!(
        claimed(&f, &dag, &p, 0, "a").await,
        Completion::Ready(vec![])
    );
    assert_eq!(
        claimed(&f, &dag, &p, 1, "a").await,
        Completion::Ready(vec![2])
    );
    assert_eq!(
        claimed(&f, &dag, &p, 0, "a").await,
        Completion::Ready(vec![])
    );
    assert_eq!(
        claimed(&f, &dag, &p, 1, "a").await,
        Completion::Ready(vec![2])
    );
}

/// With two parents, the child belongs to the run of the parent that finished last; the
/// re-run of the other parent's run does not get it, and the claim never counts as a parent.
async fn a_claim_belongs_to_the_last_parents_run(f: Arc<Fixture>) {
    let p = plan(&[&[2], &[2], &[3], &[]]);
    let dag = submit(&f, &p).await;
    assert_eq!(
        claimed(&f, &dag, &p, 0, "a").await,
        Completion::Ready(vec![])
    );
    assert_eq!(
        claimed(&f, &dag, &p, 1, "b").await,
        Completion::Ready(vec![2])
    );
    assert_eq!(
        claimed(&f, &dag, &p, 0, "a").await,
        Completion::Ready(vec![])
    );
    assert_eq!(
        claimed(&f, &dag, &p, 1, "b").await,
        Completion::Ready(vec![2])
    );
    // The child's own completion readies its child exactly once per claim.
    assert_eq!(
        claimed(&f, &dag, &p, 2, "c").await,
        Completion::Ready(vec![3])
    );
    assert_eq!(
        claimed(&f, &dag, &p, 2, "d").await,
        Completion::Ready(vec![])
    );
    f.store().finish(&dag, out(3)).await.unwrap();
    f.store().wait(&dag).await.unwrap();
    assert_eq!((f.leftovers)(&dag), Vec::<String>::new());
}

async fn concurrent_last_parents_ready_the_child_exactly_once(f: Arc<Fixture>) {
    const PARENTS: u32 = 32;
    const TASKS: u32 = 24;
    let p = fan_in(PARENTS);
    for _round in 0..10 {
        let dag = submit(&f, &p).await;
        for node in 0..PARENTS - 2 {
            assert_eq!(
                complete(&f, &dag, &p, node).await,
                Completion::Ready(vec![])
            );
        }
        // Many tasks report the last two parents at once (each parent several times).
        let reports: Vec<_> = (0..TASKS)
            .map(|i| {
                let (f, p, dag) = (Arc::clone(&f), Arc::clone(&p), dag.clone());
                tokio::spawn(async move {
                    let node = PARENTS - 2 + i % 2;
                    complete(&f, &dag, &p, node).await
                })
            })
            .collect();
        let mut ready = Vec::new();
        for report in reports {
            match report.await.unwrap() {
                Completion::Ready(children) => ready.extend(children),
                Completion::Ended => panic!("the DAG is running"),
            }
        }
        assert_eq!(ready, vec![PARENTS], "exactly one report of the child");
        f.store().finish(&dag, out(PARENTS)).await.unwrap();
        f.store().wait(&dag).await.unwrap();
    }
}

/// [`Store::complete_with`] of `node` with its own output, keeping what `keep` allows.
async fn kept(f: &Fixture, dag: &DagId, plan: &Plan, node: u32, claim: &str, keep: Keep) -> Marked {
    kept_for(f, dag, node, &children_of(plan, node), claim, keep).await
}

async fn kept_for(
    f: &Fixture,
    dag: &DagId,
    node: u32,
    children: &[ChildRef],
    claim: &str,
    keep: Keep,
) -> Marked {
    f.store()
        .complete_with(dag, node, out(node), children, claim, keep)
        .await
        .unwrap()
}

const CLUSTER: Keep = Keep {
    output: true,
    hold: None,
};

const fn hold(size: u64) -> Keep {
    Keep {
        output: true,
        hold: Some(size),
    }
}

fn ready(ready: &[u32], pending: &[u32]) -> Marked {
    Marked::Ready {
        ready: ready.to_vec(),
        pending: pending.to_vec(),
    }
}

/// Task clustering: an output whose children all become ready through its completion is not
/// stored; a child still waiting for another parent is left unmarked until the output is.
async fn a_kept_output_is_stored_only_for_children_that_may_run_elsewhere(f: Arc<Fixture>) {
    // 0 -> 1, 0 -> 2 (2 also waits for 3); 1, 2 -> 4.
    let p = plan(&[&[1, 2], &[4], &[4], &[2], &[]]);
    let dag = submit(&f, &p).await;
    assert_eq!(kept(&f, &dag, &p, 0, "", CLUSTER).await, ready(&[1], &[2]));
    // Node 0 is not marked for 2 yet: 3 is not its last parent.
    assert_eq!(complete(&f, &dag, &p, 3).await, Completion::Ready(vec![]));
    assert!(
        f.store().fetch_outputs(&dag, &[0]).await.is_err(),
        "not stored yet"
    );
    let pending = [ChildRef {
        node: 2,
        parents: 2,
    }];
    assert_eq!(
        kept_for(&f, &dag, 0, &pending, "", Keep::NOTHING).await,
        ready(&[2], &[])
    );
    assert_eq!(
        f.store().fetch_outputs(&dag, &[0, 3]).await.unwrap(),
        Some(vec![out(0), out(3)])
    );
    // 1 and 2 both make 4 ready through kept completions: nothing of theirs is stored.
    assert_eq!(kept(&f, &dag, &p, 1, "", CLUSTER).await, ready(&[], &[4]));
    assert_eq!(
        kept_for(&f, &dag, 1, &children_of(&p, 1), "", Keep::NOTHING).await,
        ready(&[], &[])
    );
    assert_eq!(kept(&f, &dag, &p, 2, "", CLUSTER).await, ready(&[4], &[]));
    assert!(f.store().fetch_outputs(&dag, &[2]).await.is_err(), "2 kept");
    assert_eq!(
        f.store().fetch_outputs(&dag, &[1]).await.unwrap(),
        Some(vec![out(1)])
    );
}

/// The re-run of a kept completion under the same claim gets its children back; another run
/// does not, and stores the output for them.
async fn a_kept_completion_keeps_its_claims(f: Arc<Fixture>) {
    let p = plan(&[&[1], &[]]);
    let dag = submit(&f, &p).await;
    assert_eq!(kept(&f, &dag, &p, 0, "e1", CLUSTER).await, ready(&[1], &[]));
    assert_eq!(kept(&f, &dag, &p, 0, "e1", CLUSTER).await, ready(&[1], &[]));
    assert_eq!(kept(&f, &dag, &p, 0, "e2", CLUSTER).await, ready(&[], &[1]));
    assert_eq!(
        kept(&f, &dag, &p, 0, "e2", Keep::NOTHING).await,
        ready(&[], &[])
    );
    assert_eq!(
        claimed(&f, &dag, &p, 0, "e1").await,
        Completion::Ready(vec![1])
    );
}

/// Delayed I/O: the larger output holds, the smaller one is stored at once, and the holder
/// then becomes the child's last parent.
async fn the_larger_output_holds_and_the_smaller_is_stored(f: Arc<Fixture>) {
    let p = plan(&[&[2], &[2], &[]]);
    let dag = submit(&f, &p).await;
    assert_eq!(kept(&f, &dag, &p, 1, "", hold(10)).await, Marked::Held);
    // Node 0's output is smaller: it does not hold.
    assert_eq!(kept(&f, &dag, &p, 0, "", hold(5)).await, ready(&[], &[2]));
    assert_eq!(
        kept(&f, &dag, &p, 0, "", Keep::NOTHING).await,
        ready(&[], &[])
    );
    assert_eq!(kept(&f, &dag, &p, 1, "", hold(10)).await, ready(&[2], &[]));
    assert!(
        f.store().fetch_outputs(&dag, &[1]).await.is_err(),
        "1 held, never stored"
    );
}

/// A holder that a larger output outranks stops holding at its next call; of equal outputs
/// the lower node index holds.
async fn an_outranked_holder_stops_holding(f: Arc<Fixture>) {
    let p = plan(&[&[3], &[3], &[3], &[]]);
    let dag = submit(&f, &p).await;
    assert_eq!(kept(&f, &dag, &p, 2, "", hold(5)).await, Marked::Held);
    // Node 1, as large and a lower index, outranks it.
    assert_eq!(kept(&f, &dag, &p, 1, "", hold(5)).await, Marked::Held);
    assert_eq!(kept(&f, &dag, &p, 2, "", hold(5)).await, ready(&[], &[3]));
    assert_eq!(
        kept(&f, &dag, &p, 2, "", Keep::NOTHING).await,
        ready(&[], &[])
    );
    // Node 0 is larger still.
    assert_eq!(kept(&f, &dag, &p, 0, "", hold(50)).await, Marked::Held);
    assert_eq!(kept(&f, &dag, &p, 1, "", hold(5)).await, ready(&[], &[3]));
    assert_eq!(
        kept(&f, &dag, &p, 1, "", Keep::NOTHING).await,
        ready(&[], &[])
    );
    assert_eq!(kept(&f, &dag, &p, 0, "", hold(50)).await, ready(&[3], &[]));
    assert_eq!(
        f.store().fetch_outputs(&dag, &[1, 2]).await.unwrap(),
        Some(vec![out(1), out(2)])
    );
}

/// A holder whose wait runs out stores its output; a node whose child is ready at once does
/// not hold; and a held DAG that ends says so.
async fn holding_ends_with_storing_or_the_dag(f: Arc<Fixture>) {
    let p = plan(&[&[2], &[2], &[]]);
    let dag = submit(&f, &p).await;
    assert_eq!(kept(&f, &dag, &p, 0, "", hold(5)).await, Marked::Held);
    assert_eq!(
        kept(&f, &dag, &p, 0, "", Keep::NOTHING).await,
        ready(&[], &[])
    );
    // Node 1 is the last parent now: nothing to hold for.
    assert_eq!(kept(&f, &dag, &p, 1, "", hold(1)).await, ready(&[2], &[]));
    let other = submit(&f, &p).await;
    assert_eq!(kept(&f, &other, &p, 0, "", hold(5)).await, Marked::Held);
    f.store().fail(&other, error(1, "boom")).await.unwrap();
    assert_eq!(kept(&f, &other, &p, 0, "", hold(5)).await, Marked::Ended);
}

/// A holder that stores for some children keeps holding the others; a node's own earlier hold
/// never outranks it.
async fn holds_end_child_by_child(f: Arc<Fixture>) {
    // 0 -> 2, 3; 4 -> 2; 1 -> 3.
    let p = plan(&[&[2, 3], &[3], &[5], &[5], &[2], &[]]);
    let dag = submit(&f, &p).await;
    assert_eq!(kept(&f, &dag, &p, 0, "", hold(10)).await, Marked::Held);
    let two = [ChildRef {
        node: 2,
        parents: 2,
    }];
    let stored_after_holding = Keep {
        output: false,
        hold: Some(10),
    };
    assert_eq!(
        kept_for(&f, &dag, 0, &two, "", stored_after_holding).await,
        ready(&[], &[])
    );
    // Node 0 still holds child 3, and outranks node 1 there.
    let three = [ChildRef {
        node: 3,
        parents: 2,
    }];
    assert_eq!(
        kept_for(&f, &dag, 1, &three, "", hold(5)).await,
        ready(&[], &[3])
    );
    // Node 4 holds child 2 once, then again with another size.
    let other = submit(&f, &p).await;
    let two_of_4 = [ChildRef {
        node: 2,
        parents: 2,
    }];
    assert_eq!(
        kept_for(&f, &other, 4, &two_of_4, "", hold(10)).await,
        Marked::Held
    );
    assert_eq!(
        kept_for(&f, &other, 4, &two_of_4, "", hold(5)).await,
        Marked::Held
    );
}

async fn complete_on_an_ended_or_unknown_dag_is_ended(f: Arc<Fixture>) {
    let p = plan(&[&[1], &[]]);
    let dag = submit(&f, &p).await;
    f.store().fail(&dag, error(1, "boom")).await.unwrap();
    assert_eq!(complete(&f, &dag, &p, 0).await, Completion::Ended);
    assert_eq!(complete(&f, &DagId::new(), &p, 0).await, Completion::Ended);
    f.store().wait(&dag).await.unwrap();
    assert_eq!(complete(&f, &dag, &p, 0).await, Completion::Ended);
}

async fn the_first_failure_wins(f: Arc<Fixture>) {
    let p = plan(&[&[2], &[2], &[]]);
    let dag = submit(&f, &p).await;
    f.store().fail(&dag, error(0, "first")).await.unwrap();
    f.store().fail(&dag, error(1, "second")).await.unwrap();
    f.store().finish(&dag, out(2)).await.unwrap();
    assert_eq!(
        f.store().wait(&dag).await.unwrap(),
        Outcome::Failed(error(0, "first"))
    );
}

async fn a_result_after_success_is_ignored(f: Arc<Fixture>) {
    let p = plan(&[&[]]);
    let dag = submit(&f, &p).await;
    f.store().finish(&dag, out(0)).await.unwrap();
    f.store().fail(&dag, error(0, "late")).await.unwrap();
    f.store()
        .finish(&dag, Bytes::from_static(b"other"))
        .await
        .unwrap();
    assert_eq!(
        f.store().wait(&dag).await.unwrap(),
        Outcome::Success(out(0))
    );
}

async fn progress_counts_completed_tasks_from_the_events(f: Arc<Fixture>) {
    // A chain 0 -> 1 -> 2.
    let p = plan(&[&[1], &[2], &[]]);
    let dag = submit(&f, &p).await;
    let mut cursor = EventCursor::default();
    f.store().progress(&dag, &mut cursor).await.unwrap();
    assert_eq!(cursor.completed, 0);
    complete(&f, &dag, &p, 0).await;
    f.store().progress(&dag, &mut cursor).await.unwrap();
    assert_eq!(cursor.completed, 1);
    complete(&f, &dag, &p, 1).await;
    f.store().finish(&dag, out(2)).await.unwrap();
    // Read from where the cursor was: nothing is counted twice.
    f.store().progress(&dag, &mut cursor).await.unwrap();
    assert_eq!(cursor.completed, 3);
    f.store().progress(&dag, &mut cursor).await.unwrap();
    assert_eq!(cursor.completed, 3);
}

async fn finish_wakes_a_waiting_client(f: Arc<Fixture>) {
    let p = plan(&[&[]]);
    let dag = submit(&f, &p).await;
    let waiter = {
        let (f, dag) = (Arc::clone(&f), dag.clone());
        tokio::spawn(async move { f.store().wait(&dag).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished(), "wait returned before the DAG ended");
    let started = Instant::now();
    f.store().finish(&dag, out(0)).await.unwrap();
    assert_eq!(waiter.await.unwrap(), Ok(Outcome::Success(out(0))));
    // A hang guard; `finish_wakes_a_client_blocked_longer_than_it_polls` shows the Redis
    // client is pushed, not polling.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken promptly, took {:?}",
        started.elapsed()
    );
}

async fn fail_wakes_a_waiting_client(f: Arc<Fixture>) {
    let p = plan(&[&[1], &[]]);
    let dag = submit(&f, &p).await;
    let waiter = {
        let (f, dag) = (Arc::clone(&f), dag.clone());
        tokio::spawn(async move { f.store().wait(&dag).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    f.store().fail(&dag, error(0, "boom")).await.unwrap();
    assert_eq!(waiter.await.unwrap(), Ok(Outcome::Failed(error(0, "boom"))));
}

async fn wait_after_the_end_returns_at_once_and_only_once(f: Arc<Fixture>) {
    let p = plan(&[&[]]);
    let dag = submit(&f, &p).await;
    f.store().finish(&dag, out(0)).await.unwrap();
    assert_eq!(
        f.store().wait(&dag).await.unwrap(),
        Outcome::Success(out(0))
    );
    match f.store().wait(&dag).await {
        Err(DagError::Store(message)) => assert!(message.contains("unknown"), "{message}"),
        other => panic!("a collected DAG is unknown, got {other:?}"),
    }
}

async fn fail_and_finish_on_an_unknown_dag_do_nothing(f: Arc<Fixture>) {
    let dag = DagId::new();
    f.store().fail(&dag, error(0, "x")).await.unwrap();
    f.store().finish(&dag, out(0)).await.unwrap();
    assert!((f.leftovers)(&dag).is_empty(), "{:?}", (f.leftovers)(&dag));
}

async fn success_leaves_nothing_behind(f: Arc<Fixture>) {
    let p = plan(&[&[2], &[2], &[3], &[]]);
    let dag = submit(&f, &p).await;
    for node in 0..3 {
        complete(&f, &dag, &p, node).await;
    }
    f.store().finish(&dag, out(3)).await.unwrap();
    f.store().wait(&dag).await.unwrap();
    assert_eq!((f.leftovers)(&dag), Vec::<String>::new());
}

async fn failure_leaves_nothing_behind(f: Arc<Fixture>) {
    let p = plan(&[&[2], &[2], &[3], &[]]);
    let dag = submit(&f, &p).await;
    complete(&f, &dag, &p, 0).await;
    f.store().fail(&dag, error(1, "boom")).await.unwrap();
    f.store().fail(&dag, error(2, "again")).await.unwrap();
    f.store().wait(&dag).await.unwrap();
    assert_eq!((f.leftovers)(&dag), Vec::<String>::new());
}

async fn cancel_ends_a_running_dag(f: Arc<Fixture>) {
    let p = plan(&[&[1], &[2], &[]]);
    let dag = submit(&f, &p).await;
    assert_eq!(complete(&f, &dag, &p, 0).await, Completion::Ready(vec![1]));
    assert!(f.store().cancel(&dag).await.unwrap(), "it was running");
    // Workers still busy with its tasks see it ended and write nothing.
    assert_eq!(complete(&f, &dag, &p, 1).await, Completion::Ended);
    assert_eq!(f.store().fetch_outputs(&dag, &[0]).await.unwrap(), None);
    assert_eq!(f.store().get_plan(&dag).await.unwrap(), None);
    f.store().fail(&dag, error(1, "late")).await.unwrap();
    f.store().finish(&dag, out(2)).await.unwrap();
    assert_eq!((f.leftovers)(&dag), Vec::<String>::new());
    assert!(!f.store().cancel(&dag).await.unwrap(), "already cancelled");
    match f.store().wait(&dag).await {
        Err(DagError::Store(message)) => assert!(message.contains("unknown"), "{message}"),
        other => panic!("a cancelled DAG is unknown, got {other:?}"),
    }
    assert!(!f.store().cancel(&DagId::new()).await.unwrap(), "unknown");
}

async fn cancel_wakes_a_waiting_client_with_an_error(f: Arc<Fixture>) {
    let p = plan(&[&[1], &[]]);
    let dag = submit(&f, &p).await;
    let waiter = {
        let (f, dag) = (Arc::clone(&f), dag.clone());
        tokio::spawn(async move { f.store().wait(&dag).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    f.store().cancel(&dag).await.unwrap();
    let woken = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter gives up instead of hanging")
        .unwrap();
    assert!(matches!(woken, Err(DagError::Store(_))), "{woken:?}");
    assert_eq!((f.leftovers)(&dag), Vec::<String>::new());
}

async fn cancel_after_the_end_removes_what_is_left(f: Arc<Fixture>) {
    // The client gave up after the DAG ended but before collecting the outcome.
    let p = plan(&[&[1], &[]]);
    let succeeded = submit(&f, &p).await;
    complete(&f, &succeeded, &p, 0).await;
    f.store().finish(&succeeded, out(1)).await.unwrap();
    assert!(!f.store().cancel(&succeeded).await.unwrap(), "it had ended");
    assert_eq!((f.leftovers)(&succeeded), Vec::<String>::new());

    let failed = submit(&f, &p).await;
    f.store().fail(&failed, error(0, "boom")).await.unwrap();
    assert!(!f.store().cancel(&failed).await.unwrap(), "it had ended");
    assert_eq!((f.leftovers)(&failed), Vec::<String>::new());
}

/// Defines, for each check, one test per store: `memory::<check>`, `redis_store::<check>` and
/// `redis_cluster::<check>`.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $( #[test] fn $check() { super::run_on_memory(super::$check); } )*
        }
        mod redis_store {
            $( #[test] fn $check() { super::run_on_redis(super::$check); } )*
        }
        mod redis_cluster {
            $( #[test] fn $check() { super::run_on_cluster(super::$check); } )*
        }
    };
}

conformance!(
    put_plan_then_get_plan,
    get_plan_after_end_is_none,
    fetch_outputs_in_request_order,
    fetch_of_a_missing_output_is_an_error,
    fetch_on_an_ended_or_unknown_dag_is_none,
    complete_reports_a_child_when_its_last_parent_finishes,
    a_parent_reporting_twice_is_counted_once,
    the_claiming_run_gets_its_children_again,
    a_claim_belongs_to_the_last_parents_run,
    a_claim_belongs_to_the_parent_that_readied_the_child,
    concurrent_last_parents_ready_the_child_exactly_once,
    complete_on_an_ended_or_unknown_dag_is_ended,
    the_first_failure_wins,
    a_result_after_success_is_ignored,
    progress_counts_completed_tasks_from_the_events,
    finish_wakes_a_waiting_client,
    fail_wakes_a_waiting_client,
    wait_after_the_end_returns_at_once_and_only_once,
    fail_and_finish_on_an_unknown_dag_do_nothing,
    success_leaves_nothing_behind,
    failure_leaves_nothing_behind,
    cancel_ends_a_running_dag,
    cancel_wakes_a_waiting_client_with_an_error,
    cancel_after_the_end_removes_what_is_left,
    a_kept_output_is_stored_only_for_children_that_may_run_elsewhere,
    a_kept_completion_keeps_its_claims,
    the_larger_output_holds_and_the_smaller_is_stored,
    an_outranked_holder_stops_holding,
    holding_ends_with_storing_or_the_dag,
    holds_end_child_by_child,
);

// ---- gc: each store with a short time to live ----

const SHORT_TTL: Duration = Duration::from_millis(600);

/// An abandoned running DAG and an ended, never collected one, older than the TTL, are
/// removed; a fresh one is kept.
async fn gc_removes_expired_and_abandoned_dags(f: Arc<Fixture>) {
    let p = plan(&[&[1], &[]]);
    let abandoned = submit(&f, &p).await;
    let uncollected = submit(&f, &p).await;
    f.store().finish(&uncollected, out(1)).await.unwrap();
    tokio::time::sleep(SHORT_TTL / 2 + Duration::from_millis(50)).await;
    // The abandoned DAG's worker writes late: these keys outlive the plan and status.
    assert_eq!(
        complete(&f, &abandoned, &p, 0).await,
        Completion::Ready(vec![1])
    );
    tokio::time::sleep(SHORT_TTL / 2 + Duration::from_millis(50)).await;
    let fresh = submit(&f, &p).await;

    assert_eq!(f.store().gc().await.unwrap(), 2);
    assert!(f.store().get_plan(&fresh).await.unwrap().is_some());
    assert_eq!(f.store().gc().await.unwrap(), 0);
    assert_eq!(
        complete(&f, &fresh, &p, 0).await,
        Completion::Ready(vec![1])
    );
    assert_eq!(complete(&f, &abandoned, &p, 1).await, Completion::Ended);
    f.store().cancel(&fresh).await.unwrap();
    for dag in [&abandoned, &uncollected, &fresh] {
        assert_eq!((f.leftovers)(dag), Vec::<String>::new());
    }
}

#[test]
fn memory_gc_removes_expired_and_abandoned_dags() {
    let fixture = memory_fixture_with(MemoryStore::with_ttl(SHORT_TTL));
    runtime().block_on(gc_removes_expired_and_abandoned_dags(Arc::new(fixture)));
}

#[test]
fn redis_gc_removes_expired_and_abandoned_dags() {
    on_each_backend(|_| {
        let server = TestRedis::start();
        let rt = runtime();
        let config = RedisConfig {
            key_ttl: SHORT_TTL,
            ..RedisConfig::default()
        };
        let fixture = rt.block_on(redis_fixture_with(&server, config));
        rt.block_on(gc_removes_expired_and_abandoned_dags(Arc::new(fixture)));
    });
}

#[test]
fn cluster_gc_removes_expired_and_abandoned_dags() {
    // A cluster of its own: `gc` with a short TTL would count other tests' DAGs.
    let Some(cluster) = TestCluster::start("cluster_gc_removes_expired_and_abandoned_dags") else {
        return;
    };
    let rt = runtime();
    let config = RedisConfig {
        key_ttl: SHORT_TTL,
        ..RedisConfig::default()
    };
    let fixture = rt.block_on(cluster_fixture(&cluster, config));
    rt.block_on(gc_removes_expired_and_abandoned_dags(Arc::new(fixture)));
}

/// A DAG whose slot moved to another master since the store last wrote to it: every
/// operation (transactions and pipelines included, which the cluster client does not redirect
/// by itself) reaches the new owner.
#[test]
fn a_dag_whose_slot_moved_goes_on_on_the_new_master() {
    let Some(cluster) = TestCluster::start("a_dag_whose_slot_moved_goes_on_on_the_new_master")
    else {
        return;
    };
    let rt = runtime();
    let fixture = rt.block_on(cluster_fixture(&cluster, RedisConfig::default()));
    let f = Arc::new(fixture);
    let p = plan(&[&[2], &[2], &[]]);
    let (moved_first, moved_later) = (DagId::new(), DagId::new());
    rt.block_on(async {
        // The store learns where both slots are.
        for dag in [&moved_first, &moved_later] {
            let keys = DagId::new();
            f.store().put_plan(&keys, &p).await.unwrap();
            f.store().cancel(&keys).await.unwrap();
            let _ = f.store().get_plan(dag).await.unwrap();
        }
        f.store().put_plan(&moved_later, &p).await.unwrap();
        complete(&f, &moved_later, &p, 0).await;
    });
    for dag in [&moved_first, &moved_later] {
        let slot = cluster.slot_of(&format!("dag:{{{dag}}}:status"));
        let owner = cluster.owner_of(slot).unwrap();
        let to = cluster
            .master_ports()
            .into_iter()
            .find(|&p| p != owner)
            .unwrap();
        cluster.move_slot(slot, to).unwrap();
        assert_eq!(cluster.owner_of(slot), Some(to));
    }
    rt.block_on(async {
        // A transaction first (put_plan), on a slot that moved.
        f.store().put_plan(&moved_first, &p).await.unwrap();
        assert!(f.store().get_plan(&moved_first).await.unwrap().is_some());
        // A DAG under way whose keys migrated: pipelines, scripts, the wait and the cleanup.
        assert_eq!(
            complete(&f, &moved_later, &p, 1).await,
            Completion::Ready(vec![2])
        );
        let fetched = f
            .store()
            .fetch_outputs(&moved_later, &[0, 1])
            .await
            .unwrap();
        assert_eq!(fetched, Some(vec![out(0), out(1)]));
        for dag in [&moved_first, &moved_later] {
            f.store().finish(dag, out(2)).await.unwrap();
            assert_eq!(f.store().wait(dag).await.unwrap(), Outcome::Success(out(2)));
            assert_eq!((f.leftovers)(dag), Vec::<String>::new());
        }
    });
}

/// DAGs spread over the masters, and each DAG's keys stay on one of them.
#[test]
fn dags_spread_over_the_masters_of_a_cluster() {
    let Some(cluster) = TestCluster::shared("dags_spread_over_the_masters_of_a_cluster") else {
        return;
    };
    let rt = runtime();
    let config = RedisConfig {
        keep_finished: true,
        ..RedisConfig::default()
    };
    let store = rt
        .block_on(RedisStore::connect_cluster(cluster.urls(), config))
        .unwrap();
    let p = plan(&[&[2], &[2], &[]]);
    let dags: Vec<DagId> = (0..24).map(|_| DagId::new()).collect();
    rt.block_on(async {
        for dag in &dags {
            store.put_plan(dag, &p).await.unwrap();
            for node in 0..2 {
                store
                    .complete(dag, node, out(node), &children_of(&p, node), "")
                    .await
                    .unwrap();
            }
            store.finish(dag, out(2)).await.unwrap();
            assert_eq!(store.wait(dag).await.unwrap(), Outcome::Success(out(2)));
        }
    });
    let mut used = std::collections::BTreeSet::new();
    for dag in &dags {
        let holders: Vec<u16> = cluster
            .master_ports()
            .into_iter()
            .filter(|&port| {
                !cluster
                    .keys_on(port, &format!("dag:{{{dag}}}:*"))
                    .is_empty()
            })
            .collect();
        assert_eq!(
            holders.len(),
            1,
            "DAG {dag}'s keys are on one master: {holders:?}"
        );
        used.insert(holders[0]);
    }
    assert!(used.len() > 1, "24 DAGs on one master only: {used:?}");
    rt.block_on(async {
        for dag in &dags {
            store.cancel(dag).await.unwrap();
        }
    });
}

#[test]
fn every_key_of_a_dag_expires() {
    on_each_backend(|_| {
        let server = TestRedis::start();
        let rt = runtime();
        let config = RedisConfig {
            key_ttl: Duration::from_secs(600),
            ..RedisConfig::default()
        };
        let store = rt
            .block_on(RedisStore::connect_with(&server.url(), config))
            .unwrap();
        let mut conn = redis::Client::open(server.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let mut check = |dag: &DagId, when: &str| {
            let keys = keys_matching(&mut conn, &format!("dag:{{{dag}}}:*"));
            assert!(!keys.is_empty(), "{when}");
            for key in keys {
                let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).unwrap();
                assert!(ttl > 590_000 && ttl <= 600_000, "{key} {when}: PTTL {ttl}");
            }
        };
        let p = plan(&[&[2], &[2], &[3], &[]]);
        rt.block_on(async {
            let running = DagId::new();
            store.put_plan(&running, &p).await.unwrap();
            for node in 0..3 {
                store
                    .complete(&running, node, out(node), &children_of(&p, node), "")
                    .await
                    .unwrap();
            }
            check(&running, "while running");
            store.finish(&running, out(3)).await.unwrap();
            check(&running, "after success");

            let failed = DagId::new();
            store.put_plan(&failed, &p).await.unwrap();
            store
                .complete(&failed, 0, out(0), &children_of(&p, 0), "")
                .await
                .unwrap();
            store.fail(&failed, error(1, "boom")).await.unwrap();
            store.fail(&failed, error(2, "again")).await.unwrap();
            check(&failed, "after a failure");
        });
    });
}

// ---- Redis only: URLs, credentials and faults ----

#[test]
fn a_password_in_the_url_authenticates() {
    on_each_backend(|_| {
        let server = TestRedis::start_with_password("s3cret");
        let rt = runtime();
        let url = format!("redis://:s3cret@127.0.0.1:{}/2", server.port());
        let store = rt
            .block_on(RedisStore::connect(&url))
            .expect("the password is right");
        rt.block_on(async {
            let p = plan(&[&[]]);
            let dag = DagId::new();
            store.put_plan(&dag, &p).await.unwrap();
            store.finish(&dag, out(0)).await.unwrap();
            assert_eq!(store.wait(&dag).await.unwrap(), Outcome::Success(out(0)));
        });
    });
}

#[test]
fn an_acl_user_in_the_url_authenticates() {
    on_each_backend(|_| {
        let server = TestRedis::start();
        let mut conn = redis::Client::open(server.url())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("ACL")
            .arg(&["SETUSER", "worker", "on", ">pw", "~*", "&*", "+@all"])
            .query::<()>(&mut conn)
            .unwrap();
        let rt = runtime();
        let url = format!("redis://worker:pw@127.0.0.1:{}", server.port());
        let store = rt
            .block_on(RedisStore::connect(&url))
            .expect("the ACL user works");
        rt.block_on(async {
            let dag = DagId::new();
            store.put_plan(&dag, &plan(&[&[]])).await.unwrap();
            assert!(store.get_plan(&dag).await.unwrap().is_some());
        });
        let bad = format!("redis://worker:nope@127.0.0.1:{}", server.port());
        assert!(matches!(
            rt.block_on(RedisStore::connect(&bad)),
            Err(DagError::Redis { .. })
        ));
    });
}

#[test]
fn a_wrong_password_is_a_clear_error() {
    on_each_backend(|_| {
        let server = TestRedis::start_with_password("s3cret");
        let rt = runtime();
        for url in [
            format!("redis://:wrong@127.0.0.1:{}", server.port()),
            format!("redis://127.0.0.1:{}", server.port()),
        ] {
            let started = Instant::now();
            match rt.block_on(RedisStore::connect(&url)) {
                Err(e @ DagError::Redis { .. }) => {
                    let text = e.to_string();
                    assert!(text.contains(&server.addr()), "{text}");
                    assert!(text.contains("password"), "{text}");
                    assert!(
                        !text.contains("wrong"),
                        "the password must not leak: {text}"
                    );
                }
                Err(other) => panic!("expected a Redis error, got {other:?}"),
                Ok(_) => panic!("connected to {url} with a wrong password"),
            }
            assert!(started.elapsed() < Duration::from_secs(15));
        }
    });
}

#[test]
fn an_unreachable_server_fails_promptly_naming_the_address() {
    // Bind a port and close it again: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rt = runtime();
    let started = Instant::now();
    let error = match rt.block_on(RedisStore::connect(&format!("redis://127.0.0.1:{port}"))) {
        Err(e) => e,
        Ok(_) => panic!("nothing listens on {port}"),
    };
    let text = error.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_connect_timeout_applies_to_a_silent_address() {
    // 10.255.255.1 is unroutable here: the TCP handshake gets no answer.
    let config = RedisConfig {
        connect_timeout: Duration::from_millis(300),
        ..RedisConfig::default()
    };
    let rt = runtime();
    let started = Instant::now();
    let result = rt.block_on(RedisStore::connect_with(
        "redis://10.255.255.1:6390",
        config,
    ));
    let text = result.err().expect("nothing answers there").to_string();
    assert!(text.contains("10.255.255.1:6390"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

/// Submits a one-node DAG to `store` and starts a client's wait for it.
fn submit_and_wait(
    rt: &tokio::runtime::Runtime,
    store: &RedisStore,
) -> (DagId, tokio::task::JoinHandle<Result<Outcome, DagError>>) {
    let dag = DagId::new();
    rt.block_on(store.put_plan(&dag, &plan(&[&[]]))).unwrap();
    let (waiting, id) = (store.clone(), dag.clone());
    (dag, rt.spawn(async move { waiting.wait(&id).await }))
}

#[test]
fn a_server_killed_during_a_wait_is_an_error_not_a_hang() {
    on_each_backend(|_| {
        let mut server = TestRedis::start();
        let rt = runtime();
        let store = rt.block_on(RedisStore::connect(&server.url())).unwrap();
        let (dag, waiter) = submit_and_wait(&rt, &store);
        std::thread::sleep(Duration::from_millis(200));
        let killed = Instant::now();
        server.kill();
        let result = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), waiter)
                .await
                .expect("wait returned")
                .unwrap()
        });
        match result {
            Err(DagError::Redis { addr, message }) => {
                assert_eq!(addr, server.addr());
                assert!(!message.is_empty());
            }
            other => panic!("expected a Redis error, got {other:?}"),
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "took {:?}",
            killed.elapsed()
        );
        // Later operations fail too, promptly.
        let started = Instant::now();
        assert!(rt.block_on(store.fetch_outputs(&dag, &[0])).is_err());
        assert!(started.elapsed() < Duration::from_secs(15));
    });
}

#[test]
fn a_restart_that_lost_the_dag_ends_the_wait_saying_so() {
    on_each_backend(|_| {
        let mut server = TestRedis::start();
        let rt = runtime();
        let store = rt.block_on(RedisStore::connect(&server.url())).unwrap();
        let (dag, waiter) = submit_and_wait(&rt, &store);
        std::thread::sleep(Duration::from_millis(200));
        // No persistence: the new server knows nothing of the DAG.
        server.restart();
        let result = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(60), waiter)
                .await
                .expect("the wait ends instead of hanging")
                .unwrap()
        });
        let text = match result {
            // The client reconnected and found the DAG gone.
            Err(e @ DagError::Store(_)) => e.to_string(),
            // Only if the new server took longer to start than the client tries to reconnect.
            Err(e @ DagError::Redis { .. }) => e.to_string(),
            other => panic!("expected an error, got {other:?}"),
        };
        assert!(text.contains(dag.as_str()), "names the DAG: {text}");
        assert!(text.contains(&server.addr()), "names the server: {text}");
        assert!(text.contains("restart"), "says what happened: {text}");
        assert!(text.contains("compute it again"), "says what to do: {text}");
        // The store works on the new server (the scripts are loaded again on NOSCRIPT).
        let again = DagId::new();
        rt.block_on(store.put_plan(&again, &plan(&[&[]]))).unwrap();
        rt.block_on(store.finish(&again, Bytes::from_static(b"ok")))
            .unwrap();
        assert_eq!(
            rt.block_on(store.wait(&again)).unwrap(),
            Outcome::Success(Bytes::from_static(b"ok"))
        );
    });
}

#[test]
fn a_dropped_connection_to_a_server_that_kept_the_dag_goes_on_waiting() {
    on_each_backend(|_| {
        let server = TestRedis::start();
        let rt = runtime();
        let store = rt.block_on(RedisStore::connect(&server.url())).unwrap();
        let (dag, waiter) = submit_and_wait(&rt, &store);
        std::thread::sleep(Duration::from_millis(200));
        // Every connection of the store drops, the server and the DAG stay.
        let mut admin = redis::Client::open(server.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let killed: usize = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("normal")
            .query(&mut admin)
            .unwrap();
        assert!(
            killed >= 2,
            "the waiting connection and the shared one: {killed}"
        );
        std::thread::sleep(Duration::from_millis(200));
        assert!(!waiter.is_finished(), "the wait goes on after reconnecting");
        // The shared connection reconnects too (its first command may see the drop).
        let finished = (0..5).any(|_| {
            rt.block_on(store.finish(&dag, Bytes::from_static(b"done")))
                .is_ok()
        });
        assert!(finished, "the store reconnects");
        let outcome = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(60), waiter)
                .await
                .expect("the wait ends instead of hanging")
                .unwrap()
        });
        assert_eq!(outcome, Ok(Outcome::Success(Bytes::from_static(b"done"))));
    });
}

/// The Redis client's wait blocks in `BLPOP` for `wait_poll` at a time: an outcome wakes it at
/// once rather than at the next poll.
#[test]
fn finish_wakes_a_client_blocked_longer_than_it_polls() {
    on_each_backend(|_| {
        let server = TestRedis::start();
        let rt = runtime();
        let config = RedisConfig {
            wait_poll: Duration::from_secs(30),
            ..RedisConfig::default()
        };
        let store = rt
            .block_on(RedisStore::connect_with(&server.url(), config))
            .unwrap();
        let (dag, waiter) = submit_and_wait(&rt, &store);
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        rt.block_on(store.finish(&dag, out(0))).unwrap();
        let outcome = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(60), waiter)
                .await
                .expect("the wait ends")
                .unwrap()
        });
        assert_eq!(outcome, Ok(Outcome::Success(out(0))));
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "woken by the outcome, not by the poll: took {:?}",
            started.elapsed()
        );
    });
}

#[test]
fn an_oversized_value_is_refused_before_sending() {
    on_each_backend(|_| {
        let server = TestRedis::start();
        let rt = runtime();
        let store = rt.block_on(RedisStore::connect(&server.url())).unwrap();
        let p = Arc::new(Plan {
            tasks: vec!["big::load".into()],
            ..(*plan(&[&[1], &[]])).clone()
        });
        let dag = DagId::new();
        rt.block_on(store.put_plan(&dag, &p)).unwrap();
        // Zeroed pages that are never touched: no real 513 MB of memory is used.
        let big = Bytes::from(vec![0_u8; 513 << 20]);
        let mut admin = redis::Client::open(server.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let before = commands_processed(&mut admin);
        match rt.block_on(store.complete(&dag, 0, big.clone(), &children_of(&p, 0), "")) {
            Err(e @ DagError::ValueTooLarge { .. }) => {
                let text = e.to_string();
                assert!(text.contains("node 0"), "{text}");
                assert!(text.contains("big::load"), "{text}");
            }
            other => panic!("expected ValueTooLarge, got {other:?}"),
        }
        assert!(matches!(
            rt.block_on(store.finish(&dag, big)),
            Err(DagError::ValueTooLarge { .. })
        ));
        // Refused on this side: the server saw only the first `INFO` in between.
        assert_eq!(commands_processed(&mut admin), before + 1);
    });
}

/// The server's `total_commands_processed` (which counts an `INFO` once it has replied).
fn commands_processed(conn: &mut redis::Connection) -> u64 {
    info_number(conn, "stats", "total_commands_processed").expect("INFO stats counts commands")
        as u64
}

/// With `keep_finished`, a succeeded and a failed DAG keep their keys, all with a TTL, for
/// inspection after the client has its outcome; `gc` removes them once they are old.
#[test]
fn finished_dags_are_kept_when_asked_and_collected_later() {
    on_each_backend(|_| {
        let server = TestRedis::start();
        let rt = runtime();
        let config = RedisConfig {
            keep_finished: true,
            key_ttl: SHORT_TTL,
            ..RedisConfig::default()
        };
        let f = rt.block_on(redis_fixture_with(&server, config));
        let p = plan(&[&[2], &[2], &[3], &[]]);
        let (succeeded, failed) = rt.block_on(async {
            let succeeded = submit(&f, &p).await;
            for node in 0..3 {
                complete(&f, &succeeded, &p, node).await;
            }
            f.store().finish(&succeeded, out(3)).await.unwrap();
            assert_eq!(
                f.store().wait(&succeeded).await.unwrap(),
                Outcome::Success(out(3))
            );
            let failed = submit(&f, &p).await;
            complete(&f, &failed, &p, 0).await;
            f.store().fail(&failed, error(1, "boom")).await.unwrap();
            assert!(matches!(
                f.store().wait(&failed).await.unwrap(),
                Outcome::Failed(_)
            ));
            (succeeded, failed)
        });
        let mut conn = redis::Client::open(server.url())
            .unwrap()
            .get_connection()
            .unwrap();
        for (dag, expected) in [
            (
                &succeeded,
                &[
                    "plan", "status", "events", "out:0", "out:1", "out:2", "done",
                ][..],
            ),
            (
                &failed,
                &["plan", "status", "events", "errors", "out:0", "done"][..],
            ),
        ] {
            let kept = (f.leftovers)(dag);
            for key in expected {
                let key = format!("dag:{{{dag}}}:{key}");
                assert!(kept.contains(&key), "{key} kept: {kept:?}");
                let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).unwrap();
                assert!(ttl > 0, "{key} expires (PTTL {ttl})");
            }
            assert!(kept.contains(&format!("dags member {dag}")), "{kept:?}");
        }
        let status: String = redis::cmd("GET")
            .arg(format!("dag:{{{failed}}}:status"))
            .query(&mut conn)
            .unwrap();
        assert_eq!(status, "failed");
        let error: String = redis::cmd("HGET")
            .arg(format!("dag:{{{failed}}}:errors"))
            .arg(1)
            .query(&mut conn)
            .unwrap();
        assert!(error.contains("boom"), "{error}");

        std::thread::sleep(SHORT_TTL + Duration::from_millis(100));
        assert_eq!(rt.block_on(f.store().gc()).unwrap(), 2);
        for dag in [&succeeded, &failed] {
            assert_eq!((f.leftovers)(dag), Vec::<String>::new());
        }
    });
}

#[test]
fn an_invalid_url_is_a_clear_error() {
    let rt = runtime();
    match rt.block_on(RedisStore::connect("http://:pw@localhost")) {
        Err(DagError::Redis { addr, message }) => {
            assert!(!addr.contains("pw"), "{addr}");
            assert!(message.contains("URL"), "{message}");
        }
        Err(other) => panic!("expected a Redis error, got {other:?}"),
        Ok(_) => panic!("an http URL was accepted"),
    }
}

#[test]
fn events_name_the_task_with_the_element_index() {
    on_each_backend(|_| {
        let server = TestRedis::start();
        runtime().block_on(async {
            let f = redis_fixture(&server).await;
            let mut with_element = (*plan(&[&[1], &[]])).clone();
            with_element.nodes[0].element = Some(3);
            let with_element = Arc::new(with_element);
            let dag = submit(&f, &with_element).await;
            complete(&f, &dag, &with_element, 0).await;

            let client = redis::Client::open(server.url()).unwrap();
            let mut conn = client.get_connection().unwrap();
            // Each entry: [id, [field, value, field, value, ...]].
            let events: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
                .arg(format!("dag:{{{dag}}}:events"))
                .arg("-")
                .arg("+")
                .query(&mut conn)
                .unwrap();
            let tasks: Vec<String> = events
                .iter()
                .filter_map(|(_, fields)| {
                    let at = fields.iter().position(|f| f == "task")?;
                    fields.get(at + 1).cloned()
                })
                .collect();
            assert_eq!(tasks, ["conformance::t[3]"]);
        });
    });
}

/// A large output this process stored (or fetched) is read from memory the next time: the
/// fetch gets it even once its key is gone, and asks Redis only for the others. Small outputs
/// and a cache of 0 bytes always go to Redis.
#[test]
fn large_outputs_are_read_from_this_process_once_it_has_them() {
    on_each_backend(|_| {
        let server = TestRedis::start();
        let rt = runtime();
        let large = Bytes::from(vec![7u8; 100 * 1024]);
        for (budget, cached) in [(dag::store::DEFAULT_OUTPUT_CACHE, true), (0, false)] {
            let config = RedisConfig {
                output_cache_bytes: budget,
                ..RedisConfig::default()
            };
            let f = rt.block_on(redis_fixture_with(&server, config));
            let p = plan(&[&[2], &[2], &[]]);
            let dag = rt.block_on(submit(&f, &p));
            rt.block_on(async {
                f.store()
                    .complete(&dag, 0, large.clone(), &children_of(&p, 0), "")
                    .await
                    .unwrap();
                complete(&f, &dag, &p, 1).await;
            });
            let mut conn = redis::Client::open(server.url())
                .unwrap()
                .get_connection()
                .unwrap();
            for node in [0, 1] {
                let _: () = redis::cmd("DEL")
                    .arg(format!("dag:{{{dag}}}:out:{node}"))
                    .query(&mut conn)
                    .unwrap();
            }
            let fetched = rt.block_on(f.store().fetch_outputs(&dag, &[0]));
            if cached {
                assert_eq!(fetched.unwrap(), Some(vec![large.clone()]));
            } else {
                assert!(fetched.is_err(), "no cache: the missing key is an error");
            }
            // The small output is never cached: its missing key is an error either way.
            assert!(rt.block_on(f.store().fetch_outputs(&dag, &[0, 1])).is_err());
            // An ended DAG is `None`, cached outputs or not.
            rt.block_on(f.store().fail(&dag, error(2, "boom"))).unwrap();
            assert_eq!(
                rt.block_on(f.store().fetch_outputs(&dag, &[0])).unwrap(),
                None
            );
        }
    });
}
