//! The decentralized engine: what one worker does, with no central scheduler.
//!
//! A worker receives an [`Invocation`] (a node of a DAG, maybe with a parent's output already in
//! hand) and runs [the worker step](step::run_invocation) in a loop:
//!
//! 1. fetch every input that is not already in memory, in one store call;
//! 2. run the task, catching panics;
//! 3. in one store call: store the output, mark this node finished for each child and learn
//!    which children became ready;
//! 4. keep going with one ready child (its input stays in memory) and hand the others to a
//!    [`Delegate`];
//! 5. at the sink, store the result, which wakes the client and cleans up.
//!
//! A failure is recorded with [`Store::fail`](crate::store::Store::fail), which wakes the client
//! at once; other workers of that DAG learn it has ended from their next store call and stop.

pub(crate) mod assemble;
mod execute;
mod step;

pub use step::run_invocation;

use std::sync::Arc;

use bytes::Bytes;

use crate::error::DagError;
use crate::plan::Plan;
use crate::store::{DagId, Store};
use crate::task::{self, TaskDef};

/// A unit of work handed to a worker: run `node`, and everything it leads to that this worker
/// keeps for itself.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The node to run.
    pub node: u32,
    /// The output of a parent that the delegating worker already had in memory, so it need not
    /// be fetched again (only set when the invocation stays in this process).
    pub carried: Option<(u32, Bytes)>,
}

/// A DAG's plan with its task names resolved to this process's registered tasks.
pub struct LoadedPlan {
    /// Which DAG this is.
    pub dag: DagId,
    /// The plan itself.
    pub plan: Arc<Plan>,
    tasks: Vec<&'static TaskDef>,
}

impl LoadedPlan {
    /// Resolves every task of `plan`; fails with [`DagError::TaskNotFound`] if this process
    /// lacks one.
    pub fn resolve(dag: DagId, plan: Arc<Plan>) -> Result<Self, DagError> {
        let tasks = plan
            .tasks
            .iter()
            .map(|name| task::lookup(name))
            .collect::<Result<_, _>>()?;
        Ok(LoadedPlan { dag, plan, tasks })
    }

    /// The task that node `index` runs.
    pub fn task_of(&self, index: u32) -> &'static TaskDef {
        self.tasks[self.plan.node(index).task as usize]
    }
}

/// Where a worker sends the ready children it does not run itself.
pub trait Delegate {
    /// Starts `invocation` of `plan` somewhere else (another thread, process or machine).
    fn delegate(&self, plan: &Arc<LoadedPlan>, invocation: Invocation);
}

/// What a worker needs to run invocations: the store, a tokio handle for async work, its name.
#[derive(Clone)]
pub struct Worker {
    /// The DAG state shared with other workers and the client.
    pub store: Arc<dyn Store>,
    /// Runs store calls and `async` task bodies; the worker thread blocks on them.
    pub handle: tokio::runtime::Handle,
    /// Recorded with errors and events, e.g. `myhost:1234/local-0`.
    pub id: String,
    /// Retry policy for tasks that do not set their own (already filled from
    /// [`TaskPolicy::DEFAULT`](crate::task::TaskPolicy::DEFAULT)).
    pub policy: crate::task::TaskPolicy,
}
