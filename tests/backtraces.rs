//! A panicking task's error carries where it panicked when backtraces are on.
//!
//! One test in its own binary: the standard library reads `RUST_BACKTRACE` once per process,
//! so it is set here before anything can panic.

mod support;

use dag::prelude::*;
use support::on_every_runtime;

#[task]
fn fails_deep_inside(x: i64) -> i64 {
    let values: Vec<i64> = Vec::new();
    values[x as usize] // index out of bounds
}

#[task]
fn refuses(x: i64) -> Result<i64, String> {
    Err(format!("no {x}"))
}

#[test]
fn a_panic_records_a_backtrace_and_an_err_none() {
    std::env::set_var("RUST_BACKTRACE", "1");
    on_every_runtime(|runtime| {
        match fails_deep_inside(3).compute_on(runtime) {
            Err(DagError::TaskFailed {
                message, backtrace, ..
            }) => {
                assert!(message.contains("index out of bounds"), "{message}");
                let backtrace = backtrace.expect("a backtrace with RUST_BACKTRACE=1");
                assert!(
                    backtrace.contains("fails_deep_inside"),
                    "the backtrace shows the task's function:\n{backtrace}"
                );
            }
            other => panic!("expected TaskFailed, got {other:?}"),
        }
        match refuses(1).compute_on(runtime) {
            Err(DagError::TaskFailed {
                message, backtrace, ..
            }) => {
                assert_eq!(message, "no 1");
                assert_eq!(backtrace, None, "an Err value has no backtrace");
            }
            other => panic!("expected TaskFailed, got {other:?}"),
        }
    });
}
