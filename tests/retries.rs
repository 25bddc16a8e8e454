//! Whole-system tests: retries, backoff and timeouts of tasks.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dag::prelude::*;
use support::on_every_runtime;

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

/// Fails on its first two calls, succeeds on the third.
#[task(retries = 2, backoff = "1ms")]
fn flaky(x: i64) -> Result<i64, String> {
    match FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) {
        0 => Err("first call fails".into()),
        1 => panic!("second call panics"),
        _ => Ok(x * 10),
    }
}

#[test]
fn a_task_that_succeeds_on_its_third_attempt_succeeds() {
    on_every_runtime(|rt| {
        FLAKY_CALLS.store(0, Ordering::SeqCst);
        assert_eq!(flaky(4).compute_on(rt), Ok(40));
        assert_eq!(FLAKY_CALLS.load(Ordering::SeqCst), 3);
    });
}

static ALWAYS_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(retries = 3, backoff = "1ms")]
fn always_fails() -> Result<i64, String> {
    let n = ALWAYS_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    Err(format!("failure number {n}"))
}

#[test]
fn the_error_reports_the_last_attempt() {
    on_every_runtime(|rt| {
        ALWAYS_CALLS.store(0, Ordering::SeqCst);
        match always_fails().compute_on(rt) {
            Err(DagError::TaskFailed {
                attempt, message, ..
            }) => {
                assert_eq!(attempt, 4);
                assert_eq!(message, "failure number 4");
            }
            other => panic!("expected TaskFailed, got {other:?}"),
        }
        assert_eq!(ALWAYS_CALLS.load(Ordering::SeqCst), 4);
    });
}

static DEFAULT_CALLS: AtomicU32 = AtomicU32::new(0);

#[task]
fn fails_once() -> Result<i64, String> {
    if DEFAULT_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        Err("once".into())
    } else {
        Ok(1)
    }
}

#[test]
fn the_runtime_default_applies_to_tasks_without_a_policy() {
    DEFAULT_CALLS.store(0, Ordering::SeqCst);
    let no_retries = Runtime::builder().build().unwrap();
    assert!(fails_once().compute_on(&no_retries).is_err());

    DEFAULT_CALLS.store(0, Ordering::SeqCst);
    let retrying = Runtime::builder()
        .retries(1)
        .backoff(Duration::from_millis(1))
        .build()
        .unwrap();
    assert_eq!(fails_once().compute_on(&retrying), Ok(1));
}

#[task(timeout = "50ms")]
async fn async_sleeper() -> i64 {
    tokio::time::sleep(Duration::from_secs(30)).await;
    1
}

/// Sleeps far longer than any test runs: `compute` returning at all shows it was not waited for.
#[task(timeout = "50ms")]
fn sync_sleeper() -> i64 {
    std::thread::sleep(Duration::from_secs(3600));
    1
}

#[task(timeout = "5s")]
fn quick_with_timeout(x: i64) -> i64 {
    x + 1
}

#[test]
fn attempts_past_their_timeout_fail_promptly() {
    on_every_runtime(|rt| {
        for result in [
            async_sleeper().compute_on(rt),
            sync_sleeper().compute_on(rt),
        ] {
            match result {
                Err(DagError::TaskFailed { message, .. }) => {
                    assert_eq!(message, "timed out after 50ms")
                }
                other => panic!("expected a timeout, got {other:?}"),
            }
        }
        assert_eq!(quick_with_timeout(1).compute_on(rt), Ok(2));
    });
}
