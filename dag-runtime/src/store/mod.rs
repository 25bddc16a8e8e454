//! Where a DAG's shared state lives: plan, outputs, finished-parent sets, errors and the result.
//!
//! The [`Store`] trait speaks the language of the worker step (see [`crate::engine`]), one method
//! per step, so that a networked store can do each in one round trip:
//!
//! | step | method |
//! | --- | --- |
//! | submit the DAG | [`Store::put_plan`] |
//! | fetch every input not in memory | [`Store::fetch_outputs`] |
//! | store output, mark children, learn which became ready | [`Store::complete`] |
//! | the same, keeping a large output in the worker or holding it | [`Store::complete_with`] |
//! | record a failure and wake the client | [`Store::fail`] |
//! | store the sink's result, wake the client, clean up | [`Store::finish`] |
//! | wait for the outcome | [`Store::wait`] |
//! | the client gave up: end the DAG and remove it | [`Store::cancel`] |
//! | remove what expired or abandoned DAGs left | [`Store::gc`] |
//!
//! [`MemoryStore`] is the embedded default; it implements these operations with the semantics
//! the Redis store has, so the same tests run against both. [`RedisStore`] keeps the state in
//! Redis, where workers on many machines can share it; each method above is one round trip.

mod memory;
mod redis;

pub use self::redis::{
    event_stream_key, DagSnapshot, InvocationStream, RedisAddress, RedisConfig, RedisStore,
    StreamEntry, StreamReader, ThreadConnections, DEFAULT_OUTPUT_CACHE, DEFAULT_STREAM, GROUP,
    MAX_VALUE_BYTES, REDIS_ACL,
};
pub use memory::MemoryStore;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::DagError;
use crate::plan::Plan;

/// Identifies one submitted DAG (one `compute`); the `<id>` in `dag:{<id>}:...` keys.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DagId(Arc<str>);

impl DagId {
    /// A fresh, globally unique id.
    pub fn new() -> Self {
        DagId(uuid::Uuid::new_v4().simple().to_string().into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as shared text (no copy).
    pub fn shared(&self) -> Arc<str> {
        Arc::clone(&self.0)
    }
}

impl Default for DagId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<&str> for DagId {
    fn from(id: &str) -> Self {
        DagId(id.into())
    }
}

impl fmt::Display for DagId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DagId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DagId({})", self.0)
    }
}

/// A child of a completing node, with the number of distinct parents it waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildRef {
    /// The child's node index.
    pub node: u32,
    /// How many distinct parents the child has.
    pub parents: u32,
}

/// What [`Store::complete`] reports back to the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// These children became ready through this call (each is reported to exactly one caller).
    Ready(Vec<u32>),
    /// The DAG has already ended (failed, cancelled or cleaned up): stop working on it.
    Ended,
}

/// What a completing worker keeps out of the store in [`Store::complete_with`]: the WUKONG
/// locality optimizations (task clustering and delayed I/O, see `engine::locality` and the
/// README's "Locality"). [`Keep::NOTHING`] is plain [`Store::complete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Keep {
    /// Task clustering: the output stays in the worker. The call neither sends nor stores it,
    /// and marks only the children that become ready through it (the caller runs them in this
    /// process, with the output in memory); the others come back as
    /// [`pending`](Marked::Ready::pending), and the caller completes again for them with
    /// [`Keep::NOTHING`], storing the output. So an output is in the store before any child
    /// that needs it can become ready elsewhere.
    pub output: bool,
    /// Delayed I/O (with `output`): the output's size, if the caller would rather hold it for a
    /// while than store it. When no child would become ready through this call and no other
    /// holder of one of them outranks this node (a larger output, or as large and a lower
    /// index), nothing is marked and the call returns [`Marked::Held`]: this node is now their
    /// holder, and asks again later. A holder that has been outranked is no longer held:
    /// its next call marks like a call without `hold`. Without `output`, `hold` says that this
    /// node held before: the call stores and marks as [`Keep::NOTHING`] does, and ends the
    /// node's holds on these children.
    pub hold: Option<u64>,
}

impl Keep {
    /// Keep nothing: store the output and mark every child.
    pub const NOTHING: Keep = Keep {
        output: false,
        hold: None,
    };
}

/// What [`Store::complete_with`] reports back to the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marked {
    /// The node was marked finished for the children in `ready`, which became ready through
    /// this call (each child is reported to exactly one caller, but see the claims of
    /// [`Store::complete`]), and for every child without [`Keep::output`].
    Ready {
        /// The children that became ready through this call.
        ready: Vec<u32>,
        /// With [`Keep::output`]: the children left unmarked, since the output is not stored.
        pending: Vec<u32>,
    },
    /// The node holds its output (see [`Keep::hold`]): nothing was marked or stored.
    Held,
    /// The DAG has already ended (failed, cancelled or cleaned up): stop working on it.
    Ended,
}

/// A task failure as recorded in the store (the `dag:{id}:errors` hash holds these as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskErrorRecord {
    /// What kind of failure ended the DAG.
    #[serde(default)]
    pub kind: FailureKind,
    /// Registered task name.
    pub task: String,
    /// Node index in the plan.
    pub node: u32,
    /// Attempt that failed last (1-based).
    pub attempt: u32,
    /// The error text or panic message.
    pub message: String,
    /// The worker that ran the attempt.
    pub worker: String,
    /// Where a panicking task panicked, when backtraces are enabled (`RUST_BACKTRACE=1` in the
    /// worker's environment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backtrace: Option<String>,
    /// For a value over the store's limit: its size and the limit, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub too_large: Option<(u64, u64)>,
}

impl TaskErrorRecord {
    /// A failure of `kind` at `node` (running `task`) on the first attempt, seen by `worker`.
    ///
    /// ```
    /// use dag::store::{FailureKind, TaskErrorRecord};
    ///
    /// let record = TaskErrorRecord::new(FailureKind::Task, "parse", 3, "bad digit", "host:1/t0")
    ///     .attempt(2);
    /// assert_eq!((record.node, record.attempt), (3, 2));
    /// ```
    pub fn new(
        kind: FailureKind,
        task: impl Into<String>,
        node: u32,
        message: impl Into<String>,
        worker: &str,
    ) -> Self {
        TaskErrorRecord {
            kind,
            task: task.into(),
            node,
            attempt: 1,
            message: message.into(),
            worker: worker.to_owned(),
            backtrace: None,
            too_large: None,
        }
    }

    /// The same failure, on attempt `attempt`.
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// The same failure, with the backtrace of a panic.
    pub fn backtrace(mut self, backtrace: Option<String>) -> Self {
        self.backtrace = backtrace;
        self
    }

    /// An error that stopped `worker` from running `node` (running `task`) as the DAG's
    /// failure, of the kind that turns back into the same [`DagError`] variant for the client.
    ///
    /// ```
    /// use dag::DagError;
    /// use dag::store::{FailureKind, TaskErrorRecord};
    ///
    /// let error = DagError::InvalidGraph("node 7 names task 12".into());
    /// let record = TaskErrorRecord::from_error(&error, "", 7, "host:1/t0");
    /// assert_eq!(record.kind, FailureKind::InvalidPlan);
    /// assert!(matches!(DagError::from(record), DagError::InvalidGraph(_)));
    /// ```
    pub fn from_error(error: &DagError, task: impl Into<String>, node: u32, worker: &str) -> Self {
        let (kind, task, message) = match error {
            DagError::TaskNotFound { task, .. } => {
                (FailureKind::TaskNotFound, task.clone(), error.to_string())
            }
            DagError::TaskMismatch { task, message, .. } => {
                (FailureKind::TaskMismatch, task.clone(), message.clone())
            }
            DagError::WorkerLost { task, message } => {
                (FailureKind::WorkerLost, task.clone(), message.clone())
            }
            DagError::InvalidGraph(message) => {
                (FailureKind::InvalidPlan, task.into(), message.clone())
            }
            DagError::ValueTooLarge { what, size, limit } => {
                let mut record =
                    TaskErrorRecord::new(FailureKind::TooLarge, task, node, what.clone(), worker);
                record.too_large = Some((*size as u64, *limit as u64));
                return record;
            }
            DagError::Redis { .. } | DagError::Store(_) | DagError::Codec { .. } => {
                (FailureKind::Store, task.into(), error.to_string())
            }
            _ => (FailureKind::Worker, task.into(), error.to_string()),
        };
        TaskErrorRecord::new(kind, task, node, message, worker)
    }
}

/// Why a DAG failed: its own task, or the machinery around it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureKind {
    /// The task panicked, returned `Err` or could not decode its arguments.
    #[default]
    Task,
    /// The worker had no task registered under the plan's name.
    TaskNotFound,
    /// The worker's task of that name has another signature than the client's.
    TaskMismatch,
    /// Worker processes kept dying while running the task.
    WorkerLost,
    /// The store failed while the worker ran the task's step.
    Store,
    /// The stored plan is inconsistent (written by other code, or tampered with).
    InvalidPlan,
    /// An output was larger than the store accepts.
    TooLarge,
    /// The worker itself failed outside the task body (a bug in dag).
    Worker,
}

impl From<TaskErrorRecord> for DagError {
    fn from(r: TaskErrorRecord) -> Self {
        match r.kind {
            FailureKind::Task => DagError::TaskFailed {
                task: r.task,
                node: r.node,
                attempt: r.attempt,
                message: r.message,
                backtrace: r.backtrace,
            },
            FailureKind::TaskNotFound => DagError::TaskNotFound {
                task: r.task,
                worker: r.worker,
            },
            FailureKind::TaskMismatch => DagError::TaskMismatch {
                task: r.task,
                worker: r.worker,
                message: r.message,
            },
            FailureKind::WorkerLost => DagError::WorkerLost {
                task: r.task,
                message: r.message,
            },
            FailureKind::Store => DagError::Store(r.message),
            FailureKind::InvalidPlan => DagError::InvalidGraph(r.message),
            FailureKind::TooLarge => {
                let (size, limit) = r.too_large.unwrap_or_default();
                DagError::ValueTooLarge {
                    what: r.message,
                    size: size as usize,
                    limit: limit as usize,
                }
            }
            FailureKind::Worker => DagError::Runtime(r.message),
        }
    }
}

/// How a DAG ended, as the client learns it from [`Store::wait`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The sink's output.
    Success(Bytes),
    /// The first failure that ended the DAG.
    Failed(TaskErrorRecord),
}

/// The error for an output that should be stored (a child of it became ready) but is not.
pub(crate) fn missing_output(dag: &DagId, node: u32) -> DagError {
    DagError::Store(format!(
        "output of node {node} of DAG {dag} is missing although a child of it became ready"
    ))
}

/// The shared state of running DAGs. See the [module docs](self) for how methods map to steps.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores the plan of a new DAG and marks it running.
    async fn put_plan(&self, dag: &DagId, plan: &Arc<Plan>) -> Result<(), DagError>;

    /// The plan of a running DAG, or `None` if the DAG is unknown or has ended.
    async fn get_plan(&self, dag: &DagId) -> Result<Option<Arc<Plan>>, DagError>;

    /// The stored outputs of `nodes`, in the same order, fetched together.
    ///
    /// `None` means the DAG has ended. A running DAG missing one of the outputs is a
    /// [`DagError::Store`] error: a child only becomes ready after its parents' outputs are stored.
    async fn fetch_outputs(
        &self,
        dag: &DagId,
        nodes: &[u32],
    ) -> Result<Option<Vec<Bytes>>, DagError>;

    /// Stores `node`'s output, adds `node` to each child's set of finished parents and returns
    /// the children whose set became complete through this call. Idempotent per parent: a
    /// parent that reports twice is counted once, so among callers with different `claim`s each
    /// child is reported ready exactly once.
    ///
    /// `claim` names the run that calls (a worker process passes the id of the stream entry it
    /// is working on; in-process workers pass `""`). A child that becomes ready is *claimed* by
    /// that run. When the same parent reports again with the same non-empty claim, its claimed
    /// children are reported ready again: that is the re-run of an invocation whose worker died
    /// after the children became ready but before it handed them on, and without this the
    /// children would be stranded. An empty claim claims nothing.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dag::prelude::*;
    /// use dag::store::{ChildRef, Completion, DagId, MemoryStore, Store};
    ///
    /// #[task]
    /// fn one() -> i64 { 1 }
    /// #[task]
    /// fn inc(x: i64) -> i64 { x + 1 }
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let plan = Arc::new(inc(one()).plan()?);
    /// let (store, dag) = (MemoryStore::new(), DagId::new());
    /// store.put_plan(&dag, &plan).await?;
    /// let child = [ChildRef { node: 1, parents: 1 }];
    /// assert_eq!(store.complete(&dag, 0, "1".into(), &child, "entry-7").await?,
    ///            Completion::Ready(vec![1]));
    /// // Another run of node 0 does not get the child again ...
    /// assert_eq!(store.complete(&dag, 0, "1".into(), &child, "entry-9").await?,
    ///            Completion::Ready(vec![]));
    /// // ... but the re-run of the run that claimed it does.
    /// assert_eq!(store.complete(&dag, 0, "1".into(), &child, "entry-7").await?,
    ///            Completion::Ready(vec![1]));
    /// # Ok::<(), dag::DagError>(())
    /// # }).unwrap();
    /// ```
    async fn complete(
        &self,
        dag: &DagId,
        node: u32,
        output: Bytes,
        children: &[ChildRef],
        claim: &str,
    ) -> Result<Completion, DagError> {
        match self
            .complete_with(dag, node, output, children, claim, Keep::NOTHING)
            .await?
        {
            Marked::Ready { ready, .. } => Ok(Completion::Ready(ready)),
            Marked::Ended => Ok(Completion::Ended),
            Marked::Held => Err(DagError::Store(format!(
                "node {node} of DAG {dag} was held although it asked to store its output"
            ))),
        }
    }

    /// [`complete`](Store::complete), with the output kept out of the store where `keep` allows
    /// (task clustering, delayed I/O), in the same single round trip. `children` are all of the
    /// node's children, or, right after a call with [`Keep::output`], the ones it left pending.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dag::prelude::*;
    /// use dag::store::{ChildRef, DagId, Keep, Marked, MemoryStore, Store};
    ///
    /// #[task]
    /// fn one() -> i64 { 1 }
    /// #[task]
    /// fn add(a: i64, b: i64) -> i64 { a + b }
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let plan = Arc::new(add(one(), one()).plan()?);
    /// let (store, dag) = (MemoryStore::new(), DagId::new());
    /// store.put_plan(&dag, &plan).await?;
    /// let child = [ChildRef { node: 2, parents: 2 }];
    /// let keep = Keep { output: true, hold: Some(1) };
    /// // Node 0 would not make the child ready: it holds (nothing marked, nothing stored) ...
    /// assert_eq!(store.complete_with(&dag, 0, "1".into(), &child, "", keep).await?, Marked::Held);
    /// // ... node 1 is outranked by the holder (as large, a higher index), so it stores ...
    /// assert_eq!(store.complete_with(&dag, 1, "1".into(), &child, "", keep).await?,
    ///            Marked::Ready { ready: vec![], pending: vec![2] });
    /// assert_eq!(store.complete_with(&dag, 1, "1".into(), &child, "", Keep::NOTHING).await?,
    ///            Marked::Ready { ready: vec![], pending: vec![] });
    /// // ... and node 0, asking again, is the last parent: it runs the child, nothing stored.
    /// assert_eq!(store.complete_with(&dag, 0, "1".into(), &child, "", keep).await?,
    ///            Marked::Ready { ready: vec![2], pending: vec![] });
    /// # Ok::<(), dag::DagError>(())
    /// # }).unwrap();
    /// ```
    async fn complete_with(
        &self,
        dag: &DagId,
        node: u32,
        output: Bytes,
        children: &[ChildRef],
        claim: &str,
        keep: Keep,
    ) -> Result<Marked, DagError>;

    /// Records a task failure, marks the DAG failed and wakes the client. The first failure
    /// wins; later ones are ignored.
    async fn fail(&self, dag: &DagId, error: TaskErrorRecord) -> Result<(), DagError>;

    /// Stores the sink's result, wakes the client and deletes the DAG's intermediate state.
    async fn finish(&self, dag: &DagId, result: Bytes) -> Result<(), DagError>;

    /// Waits until the DAG succeeds or fails, then removes what is left of it.
    async fn wait(&self, dag: &DagId) -> Result<Outcome, DagError>;

    /// Cancels `dag` because its client no longer waits for it, and removes every trace of it.
    ///
    /// A running DAG ends: workers then see it as ended ([`complete`](Store::complete) returns
    /// [`Completion::Ended`], [`fetch_outputs`](Store::fetch_outputs) and
    /// [`get_plan`](Store::get_plan) return `None`) and stop taking its tasks. Whatever the
    /// DAG's status, its state is deleted at once (on Redis in one atomic script), since no
    /// client will collect it; a [`wait`](Store::wait) on it afterwards fails as for an unknown
    /// DAG. Returns whether this call ended a running DAG (`false` if it had already ended, was
    /// collected or is unknown).
    ///
    /// `Runtime` calls this when a `compute_async` future is dropped before it finishes.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use dag::prelude::*;
    /// use dag::store::{Completion, DagId, MemoryStore, Store};
    ///
    /// #[task]
    /// fn answer() -> i64 { 42 }
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let plan = Arc::new(answer().plan()?);
    /// let store = MemoryStore::new();
    /// let dag = DagId::new();
    /// store.put_plan(&dag, &plan).await?;
    /// assert!(store.cancel(&dag).await?);
    /// assert_eq!(store.complete(&dag, 0, "x".into(), &[], "").await?, Completion::Ended);
    /// assert_eq!(store.dag_count(), 0);
    /// # Ok::<(), dag::DagError>(())
    /// # }).unwrap();
    /// ```
    async fn cancel(&self, dag: &DagId) -> Result<bool, DagError>;

    /// Removes what expired or abandoned DAGs left behind, and returns how many DAGs it removed.
    ///
    /// A DAG is collected once it is older than the store's time to live
    /// ([`RedisConfig::key_ttl`], [`MemoryStore::with_ttl`]; 24 hours by default) and is not
    /// running with a longer time to live set by another client. On Redis its keys expire by
    /// themselves; `gc` deletes the ones created late enough to outlive the rest and removes
    /// the DAG from the `dags` sorted set.
    ///
    /// ```
    /// use dag::store::{MemoryStore, Store};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = MemoryStore::new();
    /// assert_eq!(store.gc().await?, 0);
    /// # Ok::<(), dag::DagError>(())
    /// # }).unwrap();
    /// ```
    async fn gc(&self) -> Result<usize, DagError>;

    /// Whether stored values stay in this process, so that storing or fetching one moves no
    /// bytes (the [`MemoryStore`]): task clustering and delayed I/O then have nothing to save,
    /// and the engine does not apply them.
    fn in_process(&self) -> bool {
        false
    }

    /// How many of `dag`'s tasks have completed, read from its events from where `cursor` left
    /// off (a progress bar polls this; see [`RuntimeBuilder::progress`](crate::RuntimeBuilder::progress)).
    /// Tasks of a map's child DAGs are not counted. The default: no progress information
    /// (`cursor.completed` stays 0).
    async fn progress(&self, dag: &DagId, cursor: &mut EventCursor) -> Result<(), DagError> {
        let _ = (dag, cursor);
        Ok(())
    }
}

/// Where a reader of a DAG's events is: see [`Store::progress`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventCursor {
    /// Tasks completed so far.
    pub completed: u64,
    /// The id of the last event read (Redis).
    pub(crate) last: Option<String>,
}
