//! The decentralized engine: what one worker does, with no central scheduler.
//!
//! A worker receives an [`Invocation`] (a node of a DAG, maybe with a parent's output already in
//! hand) and runs [the worker step](run_invocation) in a loop, one phase per function of
//! `step.rs`:
//!
//! 1. **fetch** every input that is not already in memory, in one store call;
//! 2. **run** the task, catching panics, with its retry policy (a dynamic map node instead
//!    *expands* into a child DAG, `expand.rs`);
//! 3. **complete**, in one store call: store the output, mark this node finished for each child
//!    and learn which children became ready; at a sink, store the DAG's result instead (or, in
//!    a map's child DAG, complete the map node of the parent DAG);
//! 4. **schedule**: decide which ready children stay in this worker (their input stays in
//!    memory) and which are handed to a [`Delegate`]; one function, `schedule.rs`, makes that
//!    decision, and the WUKONG optimizations (clustering, delayed I/O) live there.
//!
//! A failure is recorded with [`Store::fail`], which wakes the
//! client at once (`failure.rs`); other workers of that DAG learn it has ended from their next
//! store call and stop.
//!
//! | module | owns |
//! | --- | --- |
//! | `loaded` | [`LoadedDag`]: a plan with its tasks resolved in this process |
//! | `step` | the worker step and its phases |
//! | `execute` | one attempt of a task body, and the retries around it |
//! | `assemble` | a parameter's bytes from its template and the inputs |
//! | `expand` | a dynamic map's child DAG |
//! | `schedule` | where ready children run |
//! | `locality` | task clustering and delayed I/O: where large outputs go |
//! | `failure` | failing a DAG from wherever a failure is found |
//! | `backtrace` | backtraces of panicking tasks |
//! | [`fault`] | fault injection for the crash tests |

pub(crate) mod assemble;
mod backtrace;
mod execute;
mod expand;
mod failure;
pub mod fault;
mod loaded;
mod locality;
mod schedule;
mod step;

pub use failure::fail_stored;
pub use loaded::LoadedDag;
pub use locality::Locality;
pub use step::run_invocation;

use std::sync::Arc;

use bytes::Bytes;

use crate::metrics::WorkerMetrics;
use crate::store::Store;
use crate::task::TaskPolicy;

/// A unit of work handed to a worker: run `node`, and everything it leads to that this worker
/// keeps for itself.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The node to run.
    pub node: u32,
    /// The output of a parent that the delegating worker already had in memory, so it need not
    /// be fetched again (only used when the invocation stays in this process).
    pub carried: Option<(u32, Bytes)>,
}

impl Invocation {
    /// Runs `node`, fetching all its inputs (a root, or an invocation from another process).
    pub fn fetching(node: u32) -> Self {
        Invocation {
            node,
            carried: None,
        }
    }

    /// Runs `node` with the output of its parent `parent` in hand.
    pub fn carrying(node: u32, parent: u32, output: Bytes) -> Self {
        Invocation {
            node,
            carried: Some((parent, output)),
        }
    }
}

/// Where a worker sends the ready children it does not run itself.
pub trait Delegate {
    /// Starts `invocation` of `dag` somewhere else (another thread, process or machine).
    fn delegate(&self, dag: &Arc<LoadedDag>, invocation: Invocation);

    /// Whether delegated invocations stay in this process, with the output they carry in
    /// memory (another thread of it), rather than going to a process that fetches it. Task
    /// clustering hands children on only then; otherwise this worker runs them in turn.
    fn in_process(&self) -> bool {
        false
    }

    /// Whether invocations handed on earlier still wait for a worker here: a worker that would
    /// hold an output (delayed I/O) takes that work instead. Unknown (`false`) for a delegate
    /// that hands on to other processes.
    fn has_waiting_work(&self) -> bool {
        false
    }
}

/// What a worker thread needs to run invocations: the store, a tokio handle for async work,
/// its name and its retry defaults.
#[derive(Clone)]
pub struct WorkerContext {
    /// The DAG state shared with other workers and the client.
    pub store: Arc<dyn Store>,
    /// Runs store calls and `async` task bodies; the worker thread blocks on them.
    pub io: tokio::runtime::Handle,
    /// Recorded with errors and events, e.g. `myhost:1234/local-0`.
    pub name: String,
    /// Retry policy for tasks that do not set their own (already filled from
    /// [`TaskPolicy::DEFAULT`]).
    pub policy: TaskPolicy,
    /// Where this worker's task records go; `None` when metrics are off (nothing is measured).
    pub metrics: Option<WorkerMetrics>,
    /// Task clustering and delayed I/O of large outputs.
    pub locality: Locality,
}
