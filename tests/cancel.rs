//! Dropping a `compute_async` future cancels its DAG: the store keeps nothing of it, and its
//! later tasks never run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dag::prelude::*;
use dag_test_support::{connect, keys_matching, TestRedis};

static SLOW_STARTED: AtomicUsize = AtomicUsize::new(0);
static LATER_RAN: AtomicUsize = AtomicUsize::new(0);

#[task]
fn slow(x: u64) -> u64 {
    SLOW_STARTED.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(600));
    x
}

#[task]
fn later(x: u64) -> u64 {
    LATER_RAN.fetch_add(1, Ordering::SeqCst);
    x + 1
}

fn keys(server: &TestRedis) -> Vec<String> {
    keys_matching(&mut connect(&server.url()), "*")
}

/// Polls briefly until the server holds no key.
fn keys_left(server: &TestRedis) -> Vec<String> {
    let started = Instant::now();
    loop {
        let keys = keys(server);
        if keys.is_empty() || started.elapsed() > Duration::from_secs(5) {
            return keys;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dropping_the_future_cancels_the_dag_and_removes_its_keys() {
    let server = TestRedis::start();
    let runtime = Runtime::builder()
        .redis(server.url())
        .workers(2)
        .build()
        .unwrap();
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();

    let graph = later(later(slow(1)));
    let gave_up = client.block_on(async {
        tokio::time::timeout(Duration::from_millis(200), graph.compute_async_on(&runtime)).await
    });
    assert!(gave_up.is_err(), "the DAG cannot finish in 200 ms");
    assert_eq!(
        SLOW_STARTED.load(Ordering::SeqCst),
        1,
        "the root was running"
    );

    assert_eq!(keys_left(&server), Vec::<String>::new(), "after the cancel");
    // The running root finishes after the cancel: its output is not stored, and its children
    // never run.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        LATER_RAN.load(Ordering::SeqCst),
        0,
        "later tasks of a cancelled DAG ran"
    );
    assert_eq!(keys(&server), Vec::<String>::new(), "after the root ended");

    // The runtime goes on serving other DAGs.
    assert_eq!(later(1).compute_on(&runtime), Ok(2));
    assert_eq!(keys_left(&server), Vec::<String>::new());
    assert_eq!(runtime.gc(), Ok(0));
}
