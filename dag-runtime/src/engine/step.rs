//! The worker step, run in a loop for as long as this worker has a ready node to continue with.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use bytes::Bytes;

use super::assemble::Inputs;
use super::execute::{execute, panic_message, Failed};
use super::expand::expand;
use super::failure::fail_dag;
use super::fault::{self, FaultPoint};
use super::{Delegate, Invocation, LoadedPlan, Worker};
use crate::error::DagError;
use crate::store::{ChildRef, Completion, FailureKind, TaskErrorRecord};

/// What a worker does next: run `invocation` of `plan` (which may be another DAG than the last
/// step's, when a map expands into a child DAG or a child DAG completes its parent's map).
pub(crate) type Next = Option<(Arc<LoadedPlan>, Invocation)>;

/// Runs `invocation` and then every node this worker continues with, until none is left.
///
/// `claim` names this run for [`Store::complete`](crate::store::Store::complete): a worker
/// process passes the id of the stream entry it works on, so that if it dies, the re-run of
/// that entry by another worker gets back the children this run made ready; in-process workers
/// pass `""`.
///
/// Never fails: a task failure or a store error is recorded in the store as the DAG's failure,
/// which wakes the client; an ended DAG just stops the loop.
pub fn run_invocation(
    worker: &Worker,
    plan: &Arc<LoadedPlan>,
    invocation: Invocation,
    delegate: &dyn Delegate,
    claim: &str,
) {
    let mut plan = Arc::clone(plan);
    let mut invocation = invocation;
    loop {
        let node = invocation.node;
        // Task bodies' panics are caught where they run; this catches the engine's own, so that
        // a bug here fails the DAG instead of leaving its client waiting forever.
        let stepped = catch_unwind(AssertUnwindSafe(|| {
            step(worker, &plan, invocation, delegate, claim)
        }));
        let (kind, error) = match stepped {
            Ok(Ok(Some((next_plan, next)))) => {
                plan = next_plan;
                invocation = next;
                continue;
            }
            Ok(Ok(None)) => return,
            Ok(Err(error)) => (FailureKind::Store, error.to_string()),
            Err(panic) => (FailureKind::Worker, panic_message(panic)),
        };
        let record = TaskErrorRecord {
            kind,
            task: plan.plan.task_name(node),
            node,
            attempt: 1,
            message: format!("{error} (worker {}, node {node})", worker.id),
            worker: worker.id.clone(),
            backtrace: None,
        };
        // If the store cannot even record the failure, the client's own wait on that store
        // fails too, so nobody hangs on it.
        let _ = fail_dag(worker, &plan, record);
        return;
    }
}

/// One task: inputs, run, complete. Returns what to continue with, if anything.
fn step(
    worker: &Worker,
    plan: &Arc<LoadedPlan>,
    invocation: Invocation,
    delegate: &dyn Delegate,
    claim: &str,
) -> Result<Next, DagError> {
    let Worker { store, handle, .. } = worker;
    let index = invocation.node;
    let node = plan.plan.node(index);

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
        let Some(fetched) = handle.block_on(store.fetch_outputs(&plan.dag, &missing))? else {
            return Ok(None); // the DAG has ended
        };
        outputs.extend(missing.into_iter().zip(fetched));
    }
    let inputs = Inputs::new(outputs);

    // A dynamic map: expand it into a child DAG (or finish at once for an empty list).
    if let Some(template) = &node.map {
        return match expand(worker, plan, index, template, &inputs, delegate) {
            Ok(super::expand::Expanded::Continue(next)) => Ok(next),
            Ok(super::expand::Expanded::Output(output)) => {
                finish_node(worker, plan, index, output, delegate, claim)
            }
            Err(message) => fail_task(worker, plan, index, 1, message.into()),
        };
    }

    // 2. Run, with the task's retry policy.
    fault::reached(FaultPoint::BeforeTask);
    match run_attempts(worker, plan, index, &inputs) {
        Ok(output) => {
            fault::reached(FaultPoint::BeforeComplete);
            finish_node(worker, plan, index, output, delegate, claim)
        }
        Err((attempt, failed)) => fail_task(worker, plan, index, attempt, failed),
    }
}

/// Records a task's failure (after its last attempt) as its DAG's failure.
fn fail_task(
    worker: &Worker,
    plan: &Arc<LoadedPlan>,
    index: u32,
    attempt: u32,
    failed: Failed,
) -> Result<Next, DagError> {
    let record = TaskErrorRecord {
        kind: FailureKind::Task,
        task: plan.plan.task_name(index),
        node: index,
        attempt,
        message: failed.message,
        worker: worker.id.clone(),
        backtrace: failed.backtrace,
    };
    fail_dag(worker, plan, record)?;
    Ok(None)
}

/// Steps 3 to 5 for a node that produced `output`: complete it, and keep one ready child.
///
/// At the sink of a map's child DAG, the output completes the map node of the parent DAG, and
/// the loop goes on there (iteratively, however deeply maps nest).
fn finish_node(
    worker: &Worker,
    plan: &Arc<LoadedPlan>,
    index: u32,
    output: Bytes,
    delegate: &dyn Delegate,
    claim: &str,
) -> Result<Next, DagError> {
    let Worker { store, handle, .. } = worker;
    let mut plan = Arc::clone(plan);
    let mut index = index;
    // Child DAGs whose sink produced `output`: removed once their map node is completed.
    let mut done_children = Vec::new();
    loop {
        // 5. The sink: its output is the DAG's result ...
        if index == plan.plan.sink {
            // ... or, in a map's child DAG, the output of the map node in the parent DAG. The
            // map node is completed before the child is removed: a worker that dies between
            // the two leaves a child whose re-run completes the map node again (idempotent),
            // never a removed child with a map node nobody completes.
            if let Some((parent, map_node)) = plan.parent.clone() {
                done_children.push(plan);
                plan = parent;
                index = map_node;
                continue;
            }
            handle.block_on(store.finish(&plan.dag, output))?;
            remove_children(worker, &done_children)?;
            return Ok(None);
        }

        // 3. Complete: store, mark children, learn which are ready.
        let node = plan.plan.node(index);
        let children: Vec<ChildRef> = node
            .children
            .iter()
            .map(|&child| ChildRef {
                node: child,
                parents: plan.plan.node(child).parents,
            })
            .collect();
        let completion = store.complete(&plan.dag, index, output.clone(), &children, claim);
        let completion = handle.block_on(completion)?;
        remove_children(worker, &done_children)?;
        let ready = match completion {
            Completion::Ended => return Ok(None),
            Completion::Ready(ready) => ready,
        };
        if !ready.is_empty() {
            fault::reached(FaultPoint::BeforeDelegate);
        }

        // 4. Keep one ready child, delegate the rest.
        let mut ready = ready.into_iter();
        let Some(next) = ready.next() else {
            return Ok(None);
        };
        for other in ready {
            delegate.delegate(
                &plan,
                Invocation {
                    node: other,
                    carried: Some((index, output.clone())),
                },
            );
        }
        return Ok(Some((
            plan,
            Invocation {
                node: next,
                carried: Some((index, output)),
            },
        )));
    }
}

/// Removes map child DAGs whose result has been handed to their parent DAG (one atomic store
/// call each; nobody waits for a child DAG, so cancelling it just deletes what is left).
fn remove_children(worker: &Worker, children: &[Arc<LoadedPlan>]) -> Result<(), DagError> {
    for child in children {
        worker.handle.block_on(worker.store.cancel(&child.dag))?;
    }
    Ok(())
}

/// Runs the task until an attempt succeeds or the retries are used up. `Err` carries the last
/// attempt's number and failure.
fn run_attempts(
    worker: &Worker,
    plan: &LoadedPlan,
    index: u32,
    inputs: &Inputs,
) -> Result<Bytes, (u32, Failed)> {
    let (task, node) = (plan.task_of(index), plan.plan.node(index));
    if node.args.len() != task.params.len() {
        let message = format!(
            "the plan passes {} arguments but this task takes {} ({}); \
             was the plan built by other code?",
            node.args.len(),
            task.params.len(),
            task.signature
        );
        return Err((1, message.into()));
    }
    let mut args: Vec<Bytes> = node
        .args
        .iter()
        .map(|t| inputs.assemble(t))
        .collect::<Result<_, _>>()
        .map_err(|message| (1, message.into()))?;
    // The task's own policy, then the submitting runtime's, then this worker's defaults.
    let policy = task.policy.or(plan.plan.policy).or(worker.policy);
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
            Err(failed) => return Err((attempt, failed)),
        }
    }
}
