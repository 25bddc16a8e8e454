//! After a DAG ends, none of its keys are left in Redis.

use std::time::{Duration, Instant};

use dag::prelude::*;
use dag_test_support::{connect, keys_matching, TestRedis};

#[task]
fn range(n: u64) -> Vec<u64> {
    (0..n).collect()
}

#[task]
fn inc(x: u64) -> u64 {
    x + 1
}

#[task]
fn total(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

#[task]
fn fail_on(x: u64, bad: u64) -> Result<u64, String> {
    if x == bad {
        Err(format!("{x} is bad"))
    } else {
        Ok(x)
    }
}

/// The keys in the server, waiting (briefly) for tasks of a failed DAG that were still running
/// elsewhere to stop and clean up after themselves.
fn keys_left(server: &TestRedis) -> Vec<String> {
    let mut connection = connect(&server.url());
    let started = Instant::now();
    loop {
        let keys = keys_matching(&mut connection, "*");
        if keys.is_empty() || started.elapsed() > Duration::from_secs(10) {
            return keys;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn successful_and_failed_dags_leave_no_keys() {
    let server = TestRedis::start();
    let runtime = Runtime::builder().redis(server.url()).build().unwrap();

    let leaves: Vec<Node<u64>> = (0..100).map(inc).collect();
    assert_eq!(total(leaves).compute_on(&runtime), Ok(5050));
    assert_eq!(
        keys_left(&server),
        Vec::<String>::new(),
        "after a static DAG"
    );

    let nested = range(20).map(|n| total(range(n).map(inc)));
    assert!(total(nested).compute_on(&runtime).is_ok());
    assert_eq!(
        keys_left(&server),
        Vec::<String>::new(),
        "after nested maps"
    );

    assert!(total(vec![fail_on(1, 1), inc(2)])
        .compute_on(&runtime)
        .is_err());
    assert_eq!(
        keys_left(&server),
        Vec::<String>::new(),
        "after a failed DAG"
    );

    let failing_map = total(range(200).map(|x| fail_on(inc(x), 7)));
    assert!(failing_map.compute_on(&runtime).is_err());
    assert_eq!(
        keys_left(&server),
        Vec::<String>::new(),
        "after a failed map"
    );
}
