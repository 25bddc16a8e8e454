//! # dag
//!
//! Task graphs from ordinary Rust functions, run with decentralized, WUKONG-style scheduling.
//!
//! Annotate a function with [`#[task]`](macro@task); calling it records a lazy [`Node`] instead
//! of running the body. Nodes are passed to other tasks as arguments, which builds a graph;
//! [`Node::compute`] runs the graph that ends in a node and returns its value.
//!
//! ```
//! use dag::prelude::*;
//!
//! #[task]
//! fn add(a: i64, b: i64) -> i64 { a + b }
//!
//! #[task]
//! fn total(xs: Vec<i64>) -> i64 { xs.iter().sum() }
//!
//! let leaves: Vec<Node<i64>> = (0..100).map(|i| add(i, 1)).collect(); // fan-out
//! let sum = total(leaves);                                            // fan-in
//! assert_eq!(sum.compute()?, 5050);
//! # Ok::<(), DagError>(())
//! ```
//!
//! There is no central scheduler: each worker runs a task, stores its output, marks its children's
//! finished parents, continues with one ready child and hands the others to other workers. The
//! shared state lives in a [`store`]; the embedded default keeps it in memory and runs workers on
//! one thread per core.
//!
//! The same binary can also be a pool of worker processes on many machines sharing DAGs through
//! Redis: call [`worker::run_if_worker`] first thing in `main`, and choose where invocations go
//! with [`Runtime::builder`] (`.worker_pool()`, `.spawn_workers(n)`,
//! `.process_per_invocation(max)`).

/// Turns a function into a task: calling it returns a lazy [`Node`] of its output.
///
/// The body is kept as written; it runs when a graph containing the node is computed. Each
/// argument may be a constant of the parameter's type, a `Node` or `&Node` of that type, or
/// for a `Vec<T>`, `Vec<Vec<T>>` or `HashMap<String, T>` parameter a collection of nodes (see
/// [`IntoArg`]). Parameter and output types must implement `serde::Serialize` and
/// `serde::de::DeserializeOwned`.
///
/// ```
/// use dag::prelude::*;
///
/// #[task]
/// fn add(a: i64, b: i64) -> i64 { a + b }
///
/// let three = add(1, 2);                 // nothing runs yet: `three` is a `Node<i64>`
/// let ten = add(&three, 7);              // a node as an argument makes an edge
/// assert_eq!(ten.compute()?, 10);
/// # Ok::<(), DagError>(())
/// ```
///
/// A function that cannot be a task is a compile error pointing at the reason: methods taking
/// `self`, generic functions, borrowed or `impl Trait` parameters, and types that are not
/// serializable. Every such error, and every bad option, is reported at once.
///
/// # Returning `Result`
///
/// A task whose return type is a `Result<T, E>` (or an alias ending in `Result`, such as
/// `std::io::Result<T>`) produces a `Node<T>`: `Ok` is the node's value, and `Err` fails the
/// task, which is retried if it has [`retries`](#retries) left and otherwise fails the DAG. The
/// `compute` then returns [`DagError::TaskFailed`], whose `message` is the error's `Display`
/// text. A panic fails the task the same way, with the panic message.
///
/// ```
/// use dag::prelude::*;
///
/// #[task]
/// fn parse(text: String) -> Result<i64, std::num::ParseIntError> {
///     text.trim().parse()
/// }
///
/// #[task]
/// fn double(x: i64) -> i64 { 2 * x }
///
/// assert_eq!(double(parse(" 21 ")).compute()?, 42);
/// match double(parse("x")).compute() {
///     Err(DagError::TaskFailed { task, message, .. }) => {
///         assert!(task.ends_with("parse"));
///         assert_eq!(message, "invalid digit found in string");
///     }
///     other => panic!("expected the parse to fail the DAG, got {other:?}"),
/// }
/// # Ok::<(), DagError>(())
/// ```
///
/// # Async tasks
///
/// An `async fn` is a task too: its future runs on the runtime's tokio executor, so it can
/// await tokio timers and I/O, and a [`timeout`](#timeout) cancels it at the deadline. Callers
/// do not await it: calling it returns a `Node` like any task, and it mixes freely with sync
/// tasks in one graph.
///
/// ```
/// use dag::prelude::*;
/// use std::time::Duration;
///
/// #[task]
/// async fn fetch(id: u32) -> String {
///     tokio::time::sleep(Duration::from_millis(1)).await; // stands for a request
///     format!("record {id}")
/// }
///
/// #[task]
/// fn count(records: Vec<String>) -> usize { records.len() }
///
/// let records: Vec<Node<String>> = (0..10).map(fetch).collect();
/// assert_eq!(count(records).compute()?, 10);
/// # Ok::<(), DagError>(())
/// ```
///
/// # Options
///
/// Options are written `#[task(option = value, ...)]`, each at most once. `retries`, `backoff`
/// and `timeout` set the task's own retry policy: what a task sets wins, and what it leaves
/// unset comes from the runtime that computes the graph ([`RuntimeBuilder::retries`],
/// [`RuntimeBuilder::backoff`], [`RuntimeBuilder::task_timeout`]), then from the defaults (no
/// retries, 100 ms backoff, no timeout). Durations are strings of a number and a unit: `us`,
/// `ms`, `s`, `m` or `h`, as in `"250ms"`, `"1.5s"` or `"2m"`.
///
/// ## `name`
///
/// `name = "..."` is the name the task is registered under, which plans carry and workers look
/// the task up by. By default it is the function's path, `module::path::function`, which changes
/// when the function is renamed or moved; a name of your own stays stable, and two tasks of one
/// name make `compute` fail with [`DagError::DuplicateTaskName`]. Errors name the task by it.
///
/// ```
/// use dag::prelude::*;
///
/// #[task(name = "billing::charge")]
/// fn charge(cents: i64) -> Result<i64, String> {
///     if cents < 0 { Err(format!("cannot charge {cents} cents")) } else { Ok(cents) }
/// }
///
/// match charge(-5).compute() {
///     Err(DagError::TaskFailed { task, .. }) => assert_eq!(task, "billing::charge"),
///     other => panic!("expected the charge to fail, got {other:?}"),
/// }
/// ```
///
/// ## `retries`
///
/// `retries = N` runs the task up to `N` more times after a failed attempt (an `Err`, a panic
/// or a [`timeout`](#timeout) each count), waiting the [`backoff`](#backoff) before each retry.
/// The task fails only when its last attempt does; the error's `attempt` says which one that
/// was. Default: the runtime's [`retries`](RuntimeBuilder::retries), which is 0. A retry runs
/// the body again with the same arguments, so the body should be safe to repeat.
///
/// ```
/// use dag::prelude::*;
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// static CALLS: AtomicU32 = AtomicU32::new(0);
///
/// /// Fails its first two attempts, as a flaky service would.
/// #[task(retries = 2, backoff = "1ms")]
/// fn flaky() -> Result<u32, String> {
///     match CALLS.fetch_add(1, Ordering::SeqCst) + 1 {
///         attempt @ (1 | 2) => Err(format!("attempt {attempt} failed")),
///         attempt => Ok(attempt),
///     }
/// }
///
/// assert_eq!(flaky().compute()?, 3); // succeeded on its third attempt
/// assert_eq!(CALLS.load(Ordering::SeqCst), 3);
/// # Ok::<(), DagError>(())
/// ```
///
/// ## `backoff`
///
/// `backoff = "100ms"` is the delay before the first retry; each further retry waits twice as
/// long as the one before, and each delay is drawn at random between half and all of that
/// (jitter, so that many failing tasks do not retry in step). The worker thread that ran the
/// attempt waits out the delay. Default: the runtime's [`backoff`](RuntimeBuilder::backoff),
/// which is 100 ms. It has no effect without retries.
///
/// ```
/// use dag::prelude::*;
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// static ATTEMPTS: AtomicU32 = AtomicU32::new(0);
///
/// // Retried after about 5 ms, then 10 ms, then 20 ms; every attempt fails.
/// #[task(retries = 3, backoff = "5ms")]
/// fn unreachable_service() -> Result<String, String> {
///     ATTEMPTS.fetch_add(1, Ordering::SeqCst);
///     Err("connection refused".to_owned())
/// }
///
/// match unreachable_service().compute() {
///     Err(DagError::TaskFailed { attempt, message, .. }) => {
///         assert_eq!(attempt, 4); // the first attempt and three retries
///         assert_eq!(message, "connection refused");
///     }
///     other => panic!("expected the task to fail, got {other:?}"),
/// }
/// assert_eq!(ATTEMPTS.load(Ordering::SeqCst), 4);
/// ```
///
/// ## `timeout`
///
/// `timeout = "30s"` fails an attempt that runs longer, with a message saying it timed out
/// (then the task is retried if it has [`retries`](#retries) left). An `async` task is cancelled
/// at the deadline; a sync task cannot be interrupted, so it runs on a thread of its own that is
/// abandoned (it finishes on its own, and its result is dropped). A timeout of zero is a compile
/// error. Default: the runtime's [`task_timeout`](RuntimeBuilder::task_timeout), which is no
/// limit.
///
/// ```
/// use dag::prelude::*;
/// use std::time::Duration;
///
/// #[task(timeout = "50ms")]
/// async fn stuck() -> u32 {
///     tokio::time::sleep(Duration::from_secs(60)).await; // a request that never answers
///     1
/// }
///
/// match stuck().compute() {
///     Err(DagError::TaskFailed { message, .. }) => assert!(message.contains("timed out")),
///     other => panic!("expected the attempt to time out, got {other:?}"),
/// }
/// ```
pub use dag_macros::task;

pub use dag_runtime::{DagError, IntoArg, Locality, Node, ProcessStats, Runtime, RuntimeBuilder};

/// Worker processes: [`run_if_worker`](worker::run_if_worker) at the top of `main` makes the
/// same binary a client or a worker of a pool sharing DAGs through Redis.
pub mod worker {
    pub use dag_workers::*;
}

/// Where DAG state lives: the [`Store`](store::Store) trait and its implementations.
pub mod store {
    pub use dag_runtime::store::*;
}

pub mod metrics {
    //! What every task did: records per attempt, percentile digests per task name, where they
    //! are stored and when they are uploaded. See [`MetricsStorage`].
    pub use dag_runtime::metrics::*;
}

/// Durations and sizes as settings and environment variables take them.
pub mod units {
    pub use dag_runtime::units::*;
}

/// The lowered form of a graph.
pub mod plan {
    pub use dag_runtime::plan::*;
}

/// Testing graphs on the Redis code path without installing Redis (cargo feature `testing`):
/// an in-process, Redis-compatible server that runs the same Lua scripts and serves the same
/// stream of invocations to worker processes as `redis-server` does.
///
/// ```
/// use dag::prelude::*;
/// use dag::testing::InProcessRedis;
///
/// #[task]
/// fn double(x: i64) -> i64 { x * 2 }
///
/// let redis = InProcessRedis::start()?;
/// let rt = Runtime::builder().redis(redis.url()).build()?;
/// assert_eq!(double(21).compute_on(&rt)?, 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Worker processes reach it by the same URL (`.spawn_workers(n)`, `--redis URL`);
/// [`InProcessRedis::restart`](testing::InProcessRedis::restart) loses every key like a
/// restart without persistence, and the server stops when the value is dropped.
#[cfg(feature = "testing")]
pub mod testing {
    pub use dag_testing::*;
}

/// Everything a program using `dag` needs: `use dag::prelude::*;`.
pub mod prelude {
    pub use crate::{task, DagError, Node, Runtime};
}

#[doc(hidden)]
pub use dag_runtime::__private;
