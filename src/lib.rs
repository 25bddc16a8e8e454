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
/// fn parse(text: String) -> Result<i64, std::num::ParseIntError> {
///     text.trim().parse()             // an `Err` fails the task (and the DAG)
/// }
///
/// #[task]
/// async fn slow_double(x: i64) -> i64 {  // async tasks may await timers and I/O
///     tokio::time::sleep(std::time::Duration::from_millis(1)).await;
///     2 * x
/// }
///
/// #[task(name = "docs::greet")]            // the name workers find the task by
/// fn greet(who: String) -> String { format!("hello {who}") }
///
/// assert_eq!(slow_double(parse(" 21 ")).compute()?, 42);
/// assert_eq!(greet("dag").compute()?, "hello dag");
/// assert!(parse("x").compute().is_err());
/// # Ok::<(), DagError>(())
/// ```
///
/// Options:
/// - `name = "..."`: the registered name, by default `module::path::function`. Two tasks with
///   one name make `compute` fail with [`DagError::DuplicateTaskName`].
///
/// A function that cannot be a task is a compile error pointing at the reason: methods taking
/// `self`, generic functions, borrowed or `impl Trait` parameters, and types that are not
/// serializable.
pub use dag_macros::task;

pub use dag_runtime::{DagError, IntoArg, Node, ProcessStats, Runtime, RuntimeBuilder};

/// Worker processes: [`run_if_worker`](worker::run_if_worker) at the top of `main` makes the
/// same binary a client or a worker of a pool sharing DAGs through Redis.
pub mod worker {
    pub use dag_workers::*;
}

/// Where DAG state lives: the [`Store`](store::Store) trait and its implementations.
pub mod store {
    pub use dag_runtime::store::*;
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
