//! Shared helpers of the whole-system tests.

#![allow(dead_code)]

use dag::prelude::*;

/// Every runtime the whole-system tests run on, with a name for failure messages.
pub fn runtimes() -> Vec<(&'static str, Runtime)> {
    vec![(
        "memory",
        Runtime::builder()
            .workers(3)
            .build()
            .expect("the embedded runtime starts"),
    )]
}

/// Runs `check` once per runtime, naming the runtime if it panics.
pub fn on_every_runtime(check: impl Fn(&Runtime)) {
    for (name, runtime) in runtimes() {
        eprintln!("-- on the {name} runtime");
        check(&runtime);
    }
}
