//! Whole-system tests: `async` tasks, and `compute` from inside async code.

mod support;

use std::time::Duration;

use dag::prelude::*;
use support::on_every_runtime;

#[task]
async fn slow_inc(x: i64) -> i64 {
    tokio::time::sleep(Duration::from_millis(2)).await;
    x + 1
}

#[task]
async fn fallible(x: i64) -> Result<i64, String> {
    tokio::task::yield_now().await;
    if x < 0 {
        Err("negative".into())
    } else {
        Ok(x)
    }
}

#[task]
async fn async_panic(_x: i64) -> i64 {
    tokio::task::yield_now().await;
    panic!("async boom")
}

#[task]
fn total(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

#[test]
fn async_tasks_run_and_mix_with_sync_ones() {
    on_every_runtime(|rt| {
        let leaves: Vec<Node<i64>> = (0..20).map(|i| slow_inc(slow_inc(i))).collect();
        assert_eq!(
            total(leaves).compute_on(rt),
            Ok((0..20).map(|i| i + 2).sum())
        );
    });
}

#[test]
fn async_errors_and_panics_fail_the_dag() {
    on_every_runtime(|rt| {
        assert_eq!(fallible(4).compute_on(rt), Ok(4));
        match fallible(-1).compute_on(rt) {
            Err(DagError::TaskFailed { message, .. }) => assert_eq!(message, "negative"),
            other => panic!("expected TaskFailed, got {other:?}"),
        }
        match async_panic(1).compute_on(rt) {
            Err(DagError::TaskFailed { message, .. }) => {
                assert_eq!(message, "panicked: async boom")
            }
            other => panic!("expected TaskFailed, got {other:?}"),
        }
    });
}

#[tokio::test(flavor = "current_thread")]
async fn compute_async_works_on_a_single_threaded_runtime() {
    assert_eq!(slow_inc(slow_inc(1)).compute_async().await, Ok(3));
}

#[tokio::test(flavor = "current_thread")]
async fn blocking_compute_on_a_single_threaded_runtime_is_an_error_not_a_deadlock() {
    match slow_inc(1).compute() {
        Err(DagError::Runtime(message)) => assert!(message.contains("compute_async"), "{message}"),
        other => panic!("expected a runtime error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_compute_works_inside_a_multi_threaded_runtime() {
    assert_eq!(slow_inc(5).compute(), Ok(6));
}

#[test]
fn compute_works_while_another_thread_runs_a_tokio_runtime() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _background = rt.spawn(async { tokio::time::sleep(Duration::from_secs(5)).await });
    let handle = std::thread::spawn(|| slow_inc(1).compute());
    assert_eq!(handle.join().unwrap(), Ok(2));
}

#[test]
fn many_threads_compute_at_once() {
    let runtime = Runtime::builder().workers(2).build().unwrap();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let runtime = runtime.clone();
            std::thread::spawn(move || total(vec![slow_inc(i), slow_inc(i)]).compute_on(&runtime))
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        assert_eq!(t.join().unwrap(), Ok(2 * (i as i64 + 1)));
    }
}
