//! Shared helpers of the whole-system tests.

#![allow(dead_code)]

use dag::prelude::*;
use dag_test_support::TestRedis;

/// A runtime the whole-system tests run on, with a name for failure messages and whatever must
/// stay alive while it is used (the Redis runtime's own server).
pub struct TestRuntime {
    /// `memory` or `redis`.
    pub name: &'static str,
    /// The runtime itself (dropped before the server, so workers stop first).
    pub runtime: Runtime,
    _server: Option<TestRedis>,
}

/// Every runtime the whole-system tests run on: the embedded one, and one backed by a fresh
/// Redis on a free port (never 6379): the in-process server, or `redis-server` with
/// `DAG_TEST_REDIS=real`; stopped when the returned value is dropped.
pub fn runtimes() -> Vec<TestRuntime> {
    let memory = Runtime::builder()
        .workers(3)
        .build()
        .expect("the embedded runtime starts");
    let server = TestRedis::start();
    let redis = Runtime::builder()
        .redis(server.url())
        .build()
        .unwrap_or_else(|e| panic!("the Redis runtime on {} starts: {e}", server.url()));
    vec![
        TestRuntime {
            name: "memory",
            runtime: memory,
            _server: None,
        },
        TestRuntime {
            name: "redis",
            runtime: redis,
            _server: Some(server),
        },
    ]
}

/// Runs `check` once per runtime, naming the runtime if it panics.
pub fn on_every_runtime(check: impl Fn(&Runtime)) {
    for test in runtimes() {
        eprintln!("-- on the {} runtime", test.name);
        check(&test.runtime);
    }
}

/// `node.compute_on(runtime)`, failing the check instead of hanging if it takes longer than
/// `limit`.
pub fn compute_within<T: serde::de::DeserializeOwned + Send + 'static>(
    node: &Node<T>,
    runtime: &Runtime,
    limit: std::time::Duration,
) -> Result<T, DagError> {
    let (node, runtime) = (node.clone(), runtime.clone());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(node.compute_on(&runtime));
    });
    receiver
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("the DAG ends within {limit:?}"))
}
