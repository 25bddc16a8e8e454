//! The worker step, run in a loop for as long as this worker has a ready node to continue with.
//! One function per phase: [`fetch`], [`run`], [`complete`], then [`schedule`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use bytes::Bytes;

use super::assemble::Inputs;
use super::execute::{panic_message, run_with_retries, Attempt, Failed};
use super::expand::{expand, Expansion};
use super::failure::fail_dag;
use super::fault::{self, FaultPoint};
use super::locality::{self, Marking};
use super::schedule::{schedule, Todo};
use super::{Delegate, Invocation, LoadedDag, WorkerContext};
use crate::error::DagError;
use crate::metrics::{shared_task_name, Outcome, TaskTimer};
use crate::store::{ChildRef, FailureKind, TaskErrorRecord};

/// Runs `invocation` of `dag` and then every node this worker continues with, until none is
/// left.
///
/// `claim` names this run for [`Store::complete`](crate::store::Store::complete): a worker
/// process passes the id of the stream entry it works on, so that if it dies, the re-run of
/// that entry by another worker gets back the children this run made ready; in-process workers
/// pass `""`.
///
/// Never fails: a task failure or a store error is recorded in the store as the DAG's failure,
/// which wakes the client; an ended DAG just stops the loop.
pub fn run_invocation(
    ctx: &WorkerContext,
    dag: &Arc<LoadedDag>,
    invocation: Invocation,
    delegate: &dyn Delegate,
    claim: &str,
) {
    // The stack's buffer is kept per thread: a worker that runs many small invocations does
    // not allocate one per invocation.
    let mut todo: Todo = TODO.take();
    todo.push((Arc::clone(dag), invocation));
    while let Some((dag, invocation)) = todo.pop() {
        let node = invocation.node;
        // Task bodies' panics are caught where they run; this catches the engine's own, so that
        // a bug here fails the DAG instead of leaving its client waiting forever.
        let stepped = catch_unwind(AssertUnwindSafe(|| {
            step(ctx, &dag, invocation, delegate, claim, &mut todo)
        }));
        let record = match stepped {
            Ok(Ok(())) => continue,
            Ok(Err(error)) => {
                TaskErrorRecord::from_error(&error, dag.task_name(node), node, &ctx.name)
            }
            Err(panic) => TaskErrorRecord::new(
                FailureKind::Worker,
                dag.task_name(node),
                node,
                format!(
                    "{} (worker {}, node {node})",
                    panic_message(panic),
                    ctx.name
                ),
                &ctx.name,
            ),
        };
        // If the store cannot even record the failure, the client's own wait on that store
        // fails too, so nobody hangs on it.
        let _ = fail_dag(ctx, &dag, record);
    }
    TODO.set(todo);
    // Going idle: what this worker recorded goes to the metrics thread now.
    flush_metrics(ctx);
}

thread_local! {
    /// The empty buffer of this thread's [`Todo`] between invocations.
    static TODO: std::cell::Cell<Todo> = const { std::cell::Cell::new(Vec::new()) };
}

/// Queues the task records this worker has buffered.
fn flush_metrics(ctx: &WorkerContext) {
    if let Some(metrics) = &ctx.metrics {
        metrics.flush();
    }
}

/// One node, phase by phase, measured by a [`TaskTimer`] when metrics are on. Pushes what this
/// worker runs next onto `todo`.
fn step(
    ctx: &WorkerContext,
    dag: &Arc<LoadedDag>,
    invocation: Invocation,
    delegate: &dyn Delegate,
    claim: &str,
    todo: &mut Todo,
) -> Result<(), DagError> {
    let node = invocation.node;
    let carried_from = invocation.carried.as_ref().map(|(parent, _)| *parent);
    let mut timer = TaskTimer::start(ctx.metrics.as_ref(), carried_from);
    let Some(inputs) = fetch(ctx, dag, invocation, &mut timer)? else {
        return Ok(()); // the DAG has ended
    };
    let task_name = || record_name(dag, node);
    let output = match run(ctx, dag, node, &inputs, &mut timer)? {
        Ran::Output(output) => output,
        Ran::Expanded { child, roots } => {
            timer.finish(&dag.id, node, task_name, roots.len(), Outcome::Ok);
            schedule(&child, None, roots, false, delegate, todo);
            return Ok(());
        }
        Ran::Failed(failed) => {
            let outcome = if failed.timed_out() {
                Outcome::TimedOut
            } else {
                Outcome::Error
            };
            timer.finish(&dag.id, node, task_name, 0, outcome);
            flush_metrics(ctx); // the failure wakes the client, which may read them at once
            let record = TaskErrorRecord::new(
                FailureKind::Task,
                dag.task_name(node),
                node,
                failed.message,
                &ctx.name,
            )
            .attempt(failed.attempt)
            .backtrace(failed.backtrace);
            fail_dag(ctx, dag, record)?;
            return Ok(());
        }
    };
    timer.storing(output.len());
    // The DAG's result wakes its client, which may read the metrics at once: the sink's record
    // is queued before the result is stored (without its store time).
    let mut timer = Some(timer);
    let mut before_result = || {
        if let Some(timer) = timer.take() {
            timer.finish(&dag.id, node, task_name, 0, Outcome::Ok);
            flush_metrics(ctx);
        }
    };
    let places = Places {
        in_process: delegate.in_process(),
        idle: todo.is_empty() && !delegate.has_waiting_work(),
    };
    let completed = complete(ctx, dag, node, &output, claim, places, &mut before_result)?;
    if let Some(mut timer) = timer {
        timer.stored();
        let ready = completed.as_ref().map_or(0, |c| c.marking.ready.len());
        if let Some(completed) = &completed {
            timer.placed(&completed.marking.placed);
        }
        timer.finish(&dag.id, node, task_name, ready, Outcome::Ok);
    }
    let Some(Completed { dag, node, marking }) = completed else {
        return Ok(()); // a sink, or the DAG has ended
    };
    let carried = Some((node, output));
    schedule(&dag, carried, marking.ready, marking.stay, delegate, todo);
    Ok(())
}

/// The name a task record of `node` carries: its registered task's (a map node's: its name in
/// the plan), shared rather than copied.
fn record_name(dag: &LoadedDag, node: u32) -> Arc<str> {
    match dag.plan.nodes.get(node as usize) {
        Some(n) if n.map.is_none() => shared_task_name(dag.task_of(node).name),
        _ => dag.task_name(node).into(),
    }
}

/// Phase 1: the node's inputs, those carried over in memory and the rest in one store call.
/// `None` if the DAG has ended.
fn fetch(
    ctx: &WorkerContext,
    dag: &LoadedDag,
    invocation: Invocation,
    timer: &mut TaskTimer,
) -> Result<Option<Inputs>, DagError> {
    let mut outputs = Vec::new();
    let mut missing = Vec::new();
    for parent in dag.node(invocation.node).distinct_parents() {
        match &invocation.carried {
            Some((carried, bytes)) if *carried == parent => outputs.push((parent, bytes.clone())),
            _ => missing.push(parent),
        }
    }
    if !missing.is_empty() {
        let Some(fetched) = ctx
            .io
            .block_on(ctx.store.fetch_outputs(&dag.id, &missing))?
        else {
            return Ok(None);
        };
        timer.fetched(missing.iter().zip(&fetched).map(|(n, b)| (*n, b.len())));
        outputs.extend(missing.into_iter().zip(fetched));
    } else {
        timer.fetched(std::iter::empty());
    }
    Ok(Some(Inputs::new(outputs)))
}

/// What running a node gave.
enum Ran {
    /// The task's output.
    Output(Bytes),
    /// A map node expanded into this child DAG, whose roots are ready.
    Expanded {
        child: Arc<LoadedDag>,
        roots: Vec<u32>,
    },
    /// The task failed (after its last attempt).
    Failed(Failed),
}

/// Phase 2: runs the node's task with its retry policy; a dynamic map expands instead.
fn run(
    ctx: &WorkerContext,
    dag: &Arc<LoadedDag>,
    index: u32,
    inputs: &Inputs,
    timer: &mut TaskTimer,
) -> Result<Ran, DagError> {
    let node = dag.node(index);
    if let Some(template) = &node.map {
        let expansion = expand(ctx, dag, index, template, inputs)?;
        timer.expanded();
        return Ok(match expansion {
            Expansion::Empty(output) => Ran::Output(output),
            Expansion::Child { child, roots } => Ran::Expanded { child, roots },
            Expansion::Failed(failed) => Ran::Failed(failed),
        });
    }
    let task = dag.task_of(index);
    if node.args.len() != task.params.len() {
        return Ok(Ran::Failed(
            format!(
                "the plan passes {} arguments but this task takes {} ({}); \
                 was the plan built by other code?",
                node.args.len(),
                task.params.len(),
                task.signature
            )
            .into(),
        ));
    }
    let args = match inputs.assemble_all(&node.args) {
        Ok(args) => args,
        Err(message) => return Ok(Ran::Failed(message.into())),
    };
    fault::reached(FaultPoint::BeforeTask);
    // The task's own policy, then the submitting runtime's, then this worker's defaults.
    let policy = task.policy.or(dag.plan.policy).or(ctx.policy);
    // A span per attempt, for `tracing` subscribers (free when there is none).
    let mut span = None;
    let mut observe = |attempt: Attempt| match attempt {
        Attempt::Started(n) => {
            timer.attempt_started(n);
            span = Some(
                tracing::info_span!("task", dag = %dag.id, node = index, task = task.name, attempt = n)
                    .entered(),
            );
        }
        Attempt::Ended(end) => {
            span = None;
            timer.attempt_ended(&dag.id, index, task.name, end);
        }
    };
    Ok(
        match run_with_retries(task, args, policy, &ctx.io, &mut observe) {
            Ok(output) => Ran::Output(output),
            Err(failed) => Ran::Failed(failed),
        },
    )
}

/// What the locality decision needs to know about this worker.
#[derive(Clone, Copy)]
struct Places {
    /// Handed-on children stay in this process, with the output in memory.
    in_process: bool,
    /// This worker has nothing else to run.
    idle: bool,
}

/// A completed node, with the children that became ready through this completion and where
/// they run.
struct Completed {
    dag: Arc<LoadedDag>,
    node: u32,
    marking: Marking,
}

/// Phase 3: stores `output` as node `index`'s and learns which children became ready, in one
/// store call. At the sink, the output is the DAG's result instead; at the sink of a map's
/// child DAG, it is the output of the map node in the parent DAG (however deeply maps nest),
/// and the child DAGs are removed once that is stored. `None` when nothing follows.
/// `before_result` is called just before the DAG's result is stored, if it is. A large output
/// may stay out of the store (`locality.rs`), depending on `places`.
fn complete(
    ctx: &WorkerContext,
    dag: &Arc<LoadedDag>,
    index: u32,
    output: &Bytes,
    claim: &str,
    places: Places,
    before_result: &mut dyn FnMut(),
) -> Result<Option<Completed>, DagError> {
    fault::reached(FaultPoint::BeforeComplete);
    let (dag, index, finished_children) = completion_target(dag, index);
    let WorkerContext { store, io, .. } = ctx;
    if index == dag.plan.sink {
        before_result();
        io.block_on(store.finish(&dag.id, output.clone()))?;
        remove(ctx, &finished_children)?;
        return Ok(None);
    }
    let children: Vec<ChildRef> = dag
        .node(index)
        .children
        .iter()
        .map(|&child| ChildRef {
            node: child,
            parents: dag.node(child).parents,
        })
        .collect();
    let Places { in_process, idle } = places;
    let marking = locality::complete(ctx, &dag, index, output, &children, claim, in_process, idle)?;
    // The map node is completed before its child DAG is removed: a worker that dies between
    // the two leaves a child whose re-run completes the map node again (idempotent), never a
    // removed child with a map node nobody completes.
    remove(ctx, &finished_children)?;
    Ok(marking.map(|marking| Completed {
        dag,
        node: index,
        marking,
    }))
}

/// Where an output of node `index` of `dag` goes: that node itself, or for the sink of a map's
/// child DAG the map node of the parent DAG (climbing as many nested maps as end here), with
/// the child DAGs whose result it is.
fn completion_target(
    dag: &Arc<LoadedDag>,
    index: u32,
) -> (Arc<LoadedDag>, u32, Vec<Arc<LoadedDag>>) {
    let (mut dag, mut index) = (Arc::clone(dag), index);
    let mut children = Vec::new();
    while index == dag.plan.sink {
        let Some((parent, map_node)) = dag.parent.clone() else {
            break;
        };
        children.push(std::mem::replace(&mut dag, parent));
        index = map_node;
    }
    (dag, index, children)
}

/// Removes map child DAGs whose result has been handed to their parent DAG (one store call
/// each; nobody waits for a child DAG, so cancelling it just deletes what is left).
fn remove(ctx: &WorkerContext, children: &[Arc<LoadedDag>]) -> Result<(), DagError> {
    for child in children {
        ctx.io.block_on(ctx.store.cancel(&child.id))?;
    }
    Ok(())
}
