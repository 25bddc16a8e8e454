//! A Redis server that restarts without persistence under a running DAG, with the worker
//! threads in this process (`Runtime::builder().redis(url)`): `compute` ends with an error that
//! says so, the threads drop the lost DAG, and the runtime goes on with new ones.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use dag::prelude::*;
use dag_test_support::{connect, keys_matching, TestRedis};

static LEAVES_STARTED: AtomicUsize = AtomicUsize::new(0);

#[task]
fn slow_leaf(i: u64) -> u64 {
    LEAVES_STARTED.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    i
}

#[task]
fn sum(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

/// `node.compute_on(runtime)` on another thread, so that a hang fails the test after a minute
/// instead of blocking it.
fn compute_with_watchdog(node: &Node<u64>, runtime: &Runtime) -> Result<u64, DagError> {
    let (node, runtime) = (node.clone(), runtime.clone());
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(node.compute_on(&runtime));
    });
    receiver
        .recv_timeout(Duration::from_secs(60))
        .expect("compute ends within a minute instead of hanging")
}

fn dag_keys(server: &TestRedis) -> Vec<String> {
    keys_matching(&mut connect(&server.url()), "dag:*")
}

#[test]
fn a_restart_mid_run_ends_compute_with_an_error_and_the_runtime_goes_on() {
    let mut server = TestRedis::start();
    let runtime = Runtime::builder()
        .redis(server.url())
        .workers(2)
        .build()
        .unwrap();
    // 8 leaves of 300 ms on 2 threads: over a second of work.
    let graph = sum((0..8).map(slow_leaf).collect::<Vec<_>>());
    let running = {
        let (graph, runtime) = (graph.clone(), runtime.clone());
        std::thread::spawn(move || compute_with_watchdog(&graph, &runtime))
    };
    while LEAVES_STARTED.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let dag = {
        let mut conn = connect(&server.url());
        let dags: Vec<String> = redis::cmd("ZRANGE")
            .arg("dags")
            .arg(0)
            .arg(-1)
            .query(&mut conn)
            .unwrap();
        dags.into_iter().next().expect("the DAG is in Redis")
    };

    server.restart();
    let text = match running.join().unwrap() {
        Err(e) => e.to_string(),
        Ok(value) => panic!("the DAG was lost with the restart, yet it returned {value}"),
    };
    assert!(text.contains(&dag), "names the DAG: {text}");
    assert!(text.contains(&server.addr()), "names the server: {text}");
    assert!(text.contains("restart"), "says what happened: {text}");

    // The worker threads stop on the lost DAG rather than loop on it: both are free for a new
    // DAG on the same runtime, and the leaves of the lost one ran at most once each.
    let small = sum(vec![slow_leaf(1), slow_leaf(2)]);
    assert_eq!(compute_with_watchdog(&small, &runtime), Ok(3));
    assert!(LEAVES_STARTED.load(Ordering::SeqCst) <= 8 + 2);
    assert_eq!(dag_keys(&server), Vec::<String>::new(), "nothing is left");
}
