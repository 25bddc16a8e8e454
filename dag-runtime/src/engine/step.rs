//! The worker step, run in a loop for as long as this worker has a ready node to continue with.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use bytes::Bytes;

use super::assemble::Inputs;
use super::execute::{execute, panic_message};
use super::{Delegate, Invocation, LoadedPlan, Worker};
use crate::error::DagError;
use crate::plan::PlanNode;
use crate::store::{ChildRef, Completion, FailureKind, TaskErrorRecord};
use crate::task::TaskDef;

/// Runs `invocation` and then every node this worker continues with, until none is left.
///
/// Never fails: a task failure or a store error is recorded in the store as the DAG's failure,
/// which wakes the client; an ended DAG just stops the loop.
pub fn run_invocation(
    worker: &Worker,
    plan: &Arc<LoadedPlan>,
    mut invocation: Invocation,
    delegate: &dyn Delegate,
) {
    loop {
        let node = invocation.node;
        // Task bodies' panics are caught where they run; this catches the engine's own, so that
        // a bug here fails the DAG instead of leaving its client waiting forever.
        let stepped = catch_unwind(AssertUnwindSafe(|| {
            step(worker, plan, invocation, delegate)
        }));
        let (kind, error) = match stepped {
            Ok(Ok(Some(next))) => {
                invocation = next;
                continue;
            }
            Ok(Ok(None)) => return,
            Ok(Err(error)) => (FailureKind::Store, error.to_string()),
            Err(panic) => (FailureKind::Worker, panic_message(panic)),
        };
        let record = TaskErrorRecord {
            kind,
            task: plan.plan.task_name(node).to_owned(),
            node,
            attempt: 1,
            message: format!("{error} (worker {}, node {node})", worker.id),
            worker: worker.id.clone(),
        };
        // If the store cannot even record the failure, the client's own wait on that store
        // fails too, so nobody hangs on it.
        let _ = worker.handle.block_on(worker.store.fail(&plan.dag, record));
        return;
    }
}

/// One task: inputs, run, complete. Returns the invocation to continue with, if any.
fn step(
    worker: &Worker,
    plan: &Arc<LoadedPlan>,
    invocation: Invocation,
    delegate: &dyn Delegate,
) -> Result<Option<Invocation>, DagError> {
    let Worker { store, handle, .. } = worker;
    let dag = &plan.dag;
    let index = invocation.node;
    let node = plan.plan.node(index);
    let task = plan.task_of(index);

    // 1. Inputs: what was carried over is in memory, the rest comes in one fetch.
    let mut outputs = Vec::new();
    let mut missing = Vec::new();
    for parent in node.distinct_parents() {
        match &invocation.carried {
            Some((carried, bytes)) if *carried == parent => outputs.push((parent, bytes.clone())),
            _ => missing.push(parent),
        }
    }
    if !missing.is_empty() {
        let Some(fetched) = handle.block_on(store.fetch_outputs(dag, &missing))? else {
            return Ok(None); // the DAG has ended
        };
        outputs.extend(missing.into_iter().zip(fetched));
    }
    let inputs = Inputs::new(outputs);

    // 2. Run, with the task's retry policy.
    let output: Bytes = match run_attempts(worker, task, node, &inputs) {
        Ok(output) => output,
        Err((attempt, message)) => {
            let record = TaskErrorRecord {
                kind: FailureKind::Task,
                task: task.name.to_owned(),
                node: index,
                attempt,
                message,
                worker: worker.id.clone(),
            };
            handle.block_on(store.fail(dag, record))?;
            return Ok(None);
        }
    };

    // 5. The sink: its output is the result.
    if index == plan.plan.sink {
        handle.block_on(store.finish(dag, output))?;
        return Ok(None);
    }

    // 3. Complete: store, mark children, learn which are ready.
    let children: Vec<ChildRef> = node
        .children
        .iter()
        .map(|&child| ChildRef {
            node: child,
            parents: plan.plan.node(child).parents,
        })
        .collect();
    let ready = match handle.block_on(store.complete(dag, index, output.clone(), &children))? {
        Completion::Ended => return Ok(None),
        Completion::Ready(ready) => ready,
    };

    // 4. Keep one ready child, delegate the rest.
    let mut ready = ready.into_iter();
    let Some(next) = ready.next() else {
        return Ok(None);
    };
    for other in ready {
        delegate.delegate(
            plan,
            Invocation {
                node: other,
                carried: Some((index, output.clone())),
            },
        );
    }
    Ok(Some(Invocation {
        node: next,
        carried: Some((index, output)),
    }))
}

/// Runs the task until an attempt succeeds or the retries are used up. `Err` carries the last
/// attempt's number and message.
fn run_attempts(
    worker: &Worker,
    task: &'static TaskDef,
    node: &PlanNode,
    inputs: &Inputs,
) -> Result<Bytes, (u32, String)> {
    if node.args.len() != task.params.len() {
        let message = format!(
            "the plan passes {} arguments but this task takes {} ({}); \
             was the plan built by other code?",
            node.args.len(),
            task.params.len(),
            task.signature
        );
        return Err((1, message));
    }
    let mut args: Vec<Bytes> = node.args.iter().map(|t| inputs.assemble(t)).collect();
    let policy = task.policy.or(worker.policy);
    let retries = policy.retries.unwrap_or(0);
    let mut attempt = 1;
    loop {
        // Arguments are reference-counted bytes: keeping them for a retry copies no data.
        let attempt_args = if attempt <= retries {
            args.clone()
        } else {
            std::mem::take(&mut args)
        };
        match execute(task, attempt_args, &worker.handle, policy.timeout) {
            Ok(output) => return Ok(output),
            Err(_) if attempt <= retries => {
                // The worker thread waits out the backoff: blocking is allowed here.
                std::thread::sleep(policy.delay_before(attempt, fastrand::f64()));
                attempt += 1;
            }
            Err(message) => return Err((attempt, message)),
        }
    }
}
