//! The one public error type, [`DagError`].

use thiserror::Error;

/// Everything that can end a `compute` without a result.
///
/// Each variant says what failed and where, so that the message alone tells a user what to fix.
/// `DagError` is `Send + Sync + 'static`, so `?` carries it into `anyhow::Error` or
/// `Box<dyn std::error::Error>`.
///
/// ```
/// use dag::prelude::*;
///
/// #[task]
/// fn half(x: i64) -> Result<i64, String> {
///     if x % 2 == 0 { Ok(x / 2) } else { Err(format!("{x} is odd")) }
/// }
///
/// match half(3).compute() {
///     Err(DagError::TaskFailed { task, message, .. }) => {
///         assert!(task.ends_with("half"));
///         assert_eq!(message, "3 is odd");
///     }
///     other => panic!("expected a task failure, got {other:?}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DagError {
    /// A task panicked, returned `Err`, or could not decode its arguments.
    #[error("task `{task}` (node {node}) failed on attempt {attempt}: {message}")]
    TaskFailed {
        /// Registered name of the task (by default `module::function`).
        task: String,
        /// Index of the failing node in the lowered plan.
        node: u32,
        /// Which attempt failed (1 for the first).
        attempt: u32,
        /// The `Err` value's `Display` text, or the panic message.
        message: String,
        /// Where the task panicked, when backtraces are enabled (`RUST_BACKTRACE=1` where the
        /// task ran); not part of the message.
        backtrace: Option<String>,
    },

    /// The worker processes running a task kept dying before finishing it (killed, out of
    /// memory, or a task that crashes its process): after a few re-runs on other workers the
    /// DAG gives up instead of killing workers forever.
    #[error("task `{task}` could not be run: {message}")]
    WorkerLost {
        /// Registered name of the task.
        task: String,
        /// How many workers died, and on which node.
        message: String,
    },

    /// The plan names a task that this process has not registered.
    #[error(
        "task `{task}` is not registered in this program (worker `{worker}`); \
         is the worker built from the same code as the client?"
    )]
    TaskNotFound {
        /// The name the plan asked for.
        task: String,
        /// The worker that looked for it.
        worker: String,
    },

    /// A worker's task of this name was compiled from other code than the client's: its
    /// signature differs from the one in the plan. `message` gives both signatures.
    #[error(
        "task `{task}` of worker `{worker}` does not match the client's: {message}; build the \
         client and the workers from the same code"
    )]
    TaskMismatch {
        /// The task's registered name.
        task: String,
        /// The worker that found the difference.
        worker: String,
        /// Both signatures: the plan's and the worker's.
        message: String,
    },

    /// Two `#[task]` functions were registered under the same name.
    #[error(
        "two tasks are registered as `{name}`; give one of them another name with \
         #[task(name = \"...\")]"
    )]
    DuplicateTaskName {
        /// The name claimed twice.
        name: String,
    },

    /// A value could not be turned into bytes, or bytes into a value.
    #[error("could not {action} {what}: {message}")]
    Codec {
        /// `encode` or `decode`.
        action: &'static str,
        /// What was being encoded or decoded (for example `the result of task `f``).
        what: String,
        /// The serializer's message.
        message: String,
    },

    /// The graph cannot be run as built (for example a `.map` element used outside its closure).
    #[error("invalid graph: {0}")]
    InvalidGraph(String),

    /// The store (in-process or Redis) failed or lost the DAG's state.
    #[error("store error: {0}")]
    Store(String),

    /// The Redis server could not be reached, refused the credentials, went away or failed a
    /// command.
    ///
    /// ```no_run
    /// use dag::prelude::*;
    ///
    /// match Runtime::builder().redis("redis://127.0.0.1:1").build() {
    ///     Err(DagError::Redis { addr, message }) => eprintln!("{addr}: {message}"),
    ///     _ => unreachable!("nothing listens on port 1"),
    /// }
    /// ```
    #[error("Redis at {addr}: {message}")]
    Redis {
        /// The server's `host:port` (never the password).
        addr: String,
        /// What failed, the client's error and what to check.
        message: String,
    },

    /// A value is larger than the store accepts (Redis: 512 MB per value).
    #[error(
        "{what} is {size} bytes, over the store's limit of {limit} bytes per value; \
         split it into smaller outputs"
    )]
    ValueTooLarge {
        /// Which value, e.g. ``the output of node 3 (task `load`)``.
        what: String,
        /// Its encoded size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },

    /// The runtime could not be built or has shut down.
    #[error("runtime error: {0}")]
    Runtime(String),
}
