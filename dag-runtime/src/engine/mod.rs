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
//! A failure is recorded with [`Store::fail`], which wakes the client
//! at once; other workers of that DAG learn it has ended from their next store call and stop.

pub(crate) mod assemble;
mod backtrace;
mod execute;
mod expand;
mod failure;
pub mod fault;
mod step;

pub use failure::fail_stored;
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
    /// For the child DAG of an expanded map: the parent DAG and its map node.
    pub parent: Option<(Arc<LoadedPlan>, u32)>,
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
        Ok(LoadedPlan {
            dag,
            plan,
            tasks,
            parent: None,
        })
    }

    /// This child DAG's plan, linked to the parent DAG whose map node `node` it completes.
    pub fn with_parent(mut self, parent: Arc<LoadedPlan>, node: u32) -> Self {
        self.parent = Some((parent, node));
        self
    }

    /// Loads DAG `dag`'s plan from the store and resolves its tasks, with the chain of parent
    /// DAGs for a map's child DAG. `None` if the DAG (or a parent) has ended.
    ///
    /// This is how a worker that did not submit or expand a DAG (in another process) finds it.
    pub fn load(
        store: &dyn Store,
        handle: &tokio::runtime::Handle,
        dag: &DagId,
    ) -> Result<Option<Arc<LoadedPlan>>, DagError> {
        // Walk up to the top DAG first, then link back down: no recursion over the nesting.
        let mut chain = Vec::new();
        let mut next = Some((dag.clone(), None));
        while let Some((id, node)) = next.take() {
            let Some(plan) = handle.block_on(store.get_plan(&id))? else {
                return Ok(None);
            };
            next = plan
                .parent
                .as_ref()
                .map(|link| (DagId::from(link.dag.as_str()), Some(link.node)));
            chain.push((id, plan, node));
        }
        let mut loaded: Option<Arc<LoadedPlan>> = None;
        let mut link_node: Option<u32> = None;
        for (id, plan, node) in chain.into_iter().rev() {
            let mut this = LoadedPlan::resolve(id, plan)?;
            if let (Some(parent), Some(node)) = (loaded.take(), link_node) {
                this = this.with_parent(parent, node);
            }
            link_node = node;
            loaded = Some(Arc::new(this));
        }
        Ok(loaded)
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
