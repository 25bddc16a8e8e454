//! What is recorded: one [`TaskRecord`] per task attempt, one [`RunRecord`] per DAG, one
//! [`WorkerRecord`] per worker thread. Times are microseconds since the Unix epoch (comparable
//! across processes and machines with synchronised clocks) or durations in microseconds.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// How one attempt of a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The task returned its output.
    Ok,
    /// The attempt failed and another attempt followed.
    Retried,
    /// The last attempt failed (error or panic): the DAG failed.
    Error,
    /// The last attempt ran over the task's timeout: the DAG failed.
    TimedOut,
}

/// One input of a task that came from the store (inputs carried in memory are not listed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRecord {
    /// The parent node whose output it was.
    pub node: u32,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The inputs of a task that came from the store: inline up to two, so that recording the
/// usual task (one input carried in memory, one or two fetched) allocates nothing.
pub type InputRecords = smallvec::SmallVec<[InputRecord; 2]>;

/// One attempt of one task: where and when it ran, and where its time went. Names are shared
/// (`Arc<str>`): recording a task copies no text.
///
/// A task that succeeds on its first attempt has one record; each failed attempt before the
/// last has its own record with [`Outcome::Retried`] (with `fetch_us`, inputs and `store_us`
/// on the last record only, since they happen once per task).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The DAG's id (`<parent>.<node>` for a map's child DAG).
    pub dag: Arc<str>,
    /// The node's index in its DAG's plan.
    pub node: u32,
    /// The registered task name (for a map node, its plan name).
    pub task: Arc<str>,
    /// The worker that ran it (`host:pid/thread`).
    pub worker: Arc<str>,
    /// The attempt (1-based).
    pub attempt: u32,
    /// When the worker started on it (fetching its inputs), µs since the epoch.
    pub start_us: u64,
    /// When it was done (output stored and children handed on), µs since the epoch.
    pub end_us: u64,
    /// Time spent fetching inputs from the store.
    pub fetch_us: u64,
    /// The inputs fetched from the store, with their sizes.
    #[serde(default)]
    pub inputs: InputRecords,
    /// Time spent in the task's body (this attempt).
    pub run_us: u64,
    /// Size of the serialized output.
    pub output_bytes: u64,
    /// Time spent storing the output and marking the children.
    pub store_us: u64,
    /// Ready children this worker continued with (0 or 1).
    pub continued: u32,
    /// Ready children handed to other workers.
    pub delegated: u32,
    /// Whether it ran as a continuation in the worker that ran its parent (with that parent's
    /// output in memory) rather than from a fresh invocation.
    pub continuation: bool,
    /// The parent whose output it got in memory (that parent's completion made it ready), if
    /// any. With `inputs`, this names every parent: what the critical path is traced through.
    #[serde(default)]
    pub carried_from: Option<u32>,
    /// How the attempt ended.
    pub outcome: Outcome,
    /// Set when the output was not stored: which optimization kept it in the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_by: Option<Kept>,
    /// Bytes that did not go through the store thanks to task clustering (the output not
    /// uploaded, and not downloaded by the children run here that another process would have
    /// run).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub saved_by_clustering: u64,
    /// Bytes that did not go through the store thanks to delayed I/O (the output not uploaded,
    /// and not downloaded by the children that became ready while it was held).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub saved_by_delayed_io: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Which locality optimization kept an output out of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kept {
    /// Task clustering: every child it made ready ran in this process.
    Clustering,
    /// Delayed I/O: it was held until its child became ready here.
    DelayedIo,
}

impl TaskRecord {
    /// Bytes fetched from the store for this task.
    pub fn bytes_downloaded(&self) -> u64 {
        self.inputs.iter().map(|i| i.bytes).sum()
    }

    /// Bytes of the output stored by this attempt (none for a failed attempt, or for an output
    /// kept in its worker).
    pub fn bytes_uploaded(&self) -> u64 {
        if self.outcome == Outcome::Ok && self.kept_by.is_none() {
            self.output_bytes
        } else {
            0
        }
    }
}

/// A DAG's state, as the metrics see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Submitted, not ended yet (or its client died before recording the end).
    Running,
    /// The client received the result.
    Succeeded,
    /// A task or the system failed.
    Failed,
    /// The client gave up waiting (a timeout, an interrupt or a dropped future).
    Cancelled,
}

impl RunState {
    /// The state as shown by `dag runs`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }
}

/// One DAG (one `compute`), written by its client at submission and at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The DAG's id.
    pub id: String,
    /// The graph's name: the sink's task name.
    pub name: String,
    /// The state.
    pub state: RunState,
    /// Nodes in the submitted plan (a map's elements are not known before it runs).
    pub nodes: u64,
    /// When the client submitted it, µs since the epoch.
    pub submitted_us: u64,
    /// When the client learned the outcome, µs since the epoch.
    #[serde(default)]
    pub ended_us: Option<u64>,
    /// The error the client received, for a failed run.
    #[serde(default)]
    pub error: Option<String>,
    /// The client process (`host:pid`).
    pub client: String,
}

impl RunRecord {
    /// Time from submission to the outcome, once ended.
    pub fn makespan_us(&self) -> Option<u64> {
        self.ended_us
            .map(|end| end.saturating_sub(self.submitted_us))
    }
}

/// What one worker thread has done since it started, updated with each upload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRecord {
    /// The worker (`host:pid/thread`).
    pub worker: String,
    /// When it started, µs since the epoch.
    pub started_us: u64,
    /// For a worker process: from its launch until it was ready to run a task.
    #[serde(default)]
    pub cold_start_us: Option<u64>,
    /// Task attempts it ran.
    pub tasks: u64,
    /// Time spent on tasks (fetch, run, store).
    pub busy_us: u64,
    /// Time alive and not busy.
    pub idle_us: u64,
    /// When this record was written, µs since the epoch.
    pub updated_us: u64,
}
