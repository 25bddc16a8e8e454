//! A worker asked to stop waits for what it runs, but only for its grace period: a task that
//! never ends cannot keep it alive, and what it leaves is taken over by other workers.
//!
//! Its own test binary: stopping a worker (`dag::worker::request_stop`) stops every worker of
//! the process.

use std::time::{Duration, Instant};

use dag::prelude::*;
use dag::worker::WorkerOptions;
use dag_test_support::TestRedis;

#[task]
fn forever() -> u64 {
    loop {
        std::thread::park();
    }
}

#[test]
fn a_stopping_worker_leaves_after_its_grace_period_with_a_task_that_never_ends() {
    let server = TestRedis::start();
    let stream = "grace:invocations";
    let options = WorkerOptions::new(server.url())
        .stream(stream)
        .concurrency(1)
        .grace(Duration::from_millis(300));
    let worker = std::thread::spawn(move || dag::worker::serve(options));
    let runtime = Runtime::builder()
        .redis(server.url())
        .worker_pool()
        .stream(stream)
        .build()
        .unwrap();
    // The client waits for a task that never ends.
    std::thread::spawn(move || forever().compute_on(&runtime));
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pending: (u64,) = redis::cmd("XPENDING")
            .arg(stream)
            .arg("dag-workers")
            .query::<(u64, redis::Value, redis::Value, redis::Value)>(&mut conn)
            .map(|(n, ..)| (n,))
            .unwrap_or((0,));
        if pending.0 == 1 {
            break; // the worker runs the task
        }
        assert!(
            Instant::now() < deadline,
            "the worker never took the invocation"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let asked = Instant::now();
    dag::worker::request_stop();
    let served = worker.join().unwrap();
    let took = asked.elapsed();
    let error = served.expect_err("a worker that abandons an invocation says so");
    assert!(error.to_string().contains("grace period"), "{error}");
    assert!(took >= Duration::from_millis(300), "left after {took:?}");
    // Its entry stays pending, for another worker to take over after the lease.
    let (pending, ..): (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg(stream)
        .arg("dag-workers")
        .query(&mut conn)
        .unwrap();
    assert_eq!(pending, 1);
}
