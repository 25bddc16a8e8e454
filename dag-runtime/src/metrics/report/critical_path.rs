//! The critical path: the chain of tasks that determined the makespan.
//!
//! It is found backwards: from the attempt that ended the run (the last task to succeed, or
//! for a failed run the first to fail), step to the parent that ended last, the one this task
//! was waiting for, until a task with no parent. A record names every parent: the one whose
//! output came in memory (`carried_from`) and those fetched from the store (`inputs`). A map's child DAG
//! `<dag>.<node>` stands between the map node and its children: stepping to a map node steps
//! into its child DAG when that ended later, and a child DAG's root steps out to the map node
//! that expanded it. A loop, not recursion, so chains of any length are fine; a visited set
//! guarantees it ends even on inconsistent records.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::metrics::record::{Outcome, RunState, TaskRecord};

/// One task on the critical path.
#[derive(Debug, Clone, Serialize)]
pub struct PathStep {
    /// The DAG it belongs to (`<id>.<node>` inside a map).
    pub dag: String,
    /// The node.
    pub node: u32,
    /// The task name.
    pub task: String,
    /// The worker of its last attempt.
    pub worker: String,
    /// Attempts it took.
    pub attempts: u32,
    /// When its first attempt started, µs since the epoch.
    pub start_us: u64,
    /// When its last attempt ended, µs since the epoch.
    pub end_us: u64,
    /// Time in the task's body, last attempt.
    pub run_ms: f64,
    /// Time fetching inputs from the store.
    pub fetch_ms: f64,
    /// Time storing the output and marking the children.
    pub store_ms: f64,
    /// Whether it ran as a continuation in its parent's worker.
    pub continuation: bool,
    /// How its last attempt ended.
    pub outcome: Outcome,
}

type Key<'a> = (&'a str, u32);

/// Each task's attempts, folded.
struct Task<'a> {
    last: &'a TaskRecord,
    first_start_us: u64,
    attempts: u32,
}

/// The critical path of a run's records, first task to last; empty without records.
pub(super) fn find(records: &[TaskRecord], state: RunState) -> Vec<PathStep> {
    let mut tasks: HashMap<Key<'_>, Task<'_>> = HashMap::new();
    for r in records {
        let task = tasks.entry((&*r.dag, r.node)).or_insert(Task {
            last: r,
            first_start_us: r.start_us,
            attempts: 0,
        });
        task.attempts += 1;
        task.first_start_us = task.first_start_us.min(r.start_us);
        if (r.attempt, r.end_us) > (task.last.attempt, task.last.end_us) {
            task.last = r;
        }
    }
    // Per DAG, its task that ended last: a child DAG's sink, which completes its map node.
    let mut last_of_dag: HashMap<&str, &TaskRecord> = HashMap::new();
    for task in tasks.values() {
        let r = task.last;
        let entry = last_of_dag.entry(&*r.dag).or_insert(r);
        if later(r, entry) {
            *entry = r;
        }
    }

    let Some(mut at) = end_of_run(&tasks, state) else {
        return Vec::new();
    };
    let mut path = Vec::new();
    let mut visited: HashSet<Key<'_>> = HashSet::new();
    loop {
        let key = (&*at.dag, at.node);
        if !visited.insert(key) {
            break;
        }
        path.push(step(&tasks[&key]));
        match predecessor(at, &tasks, &last_of_dag) {
            Some(previous) => at = previous,
            None => break,
        }
    }
    path.reverse();
    path
}

/// Whether `a` ended after `b`; ties broken by DAG and node so the answer is deterministic.
fn later(a: &TaskRecord, b: &TaskRecord) -> bool {
    (a.end_us, &b.dag, b.node) > (b.end_us, &a.dag, a.node)
}

/// The last attempt the path ends with.
fn end_of_run<'a>(tasks: &HashMap<Key<'a>, Task<'a>>, state: RunState) -> Option<&'a TaskRecord> {
    let lasts = || tasks.values().map(|t| t.last);
    let latest = |outcome: fn(Outcome) -> bool| {
        lasts()
            .filter(|r| outcome(r.outcome))
            .reduce(|a, b| if later(b, a) { b } else { a })
    };
    let failed = |o| matches!(o, Outcome::Error | Outcome::TimedOut);
    if state == RunState::Failed {
        // The first failure ended the run; tasks still running elsewhere do not matter.
        let first = lasts()
            .filter(|r| failed(r.outcome))
            .reduce(|a, b| if later(a, b) { b } else { a });
        if first.is_some() {
            return first;
        }
    }
    if state == RunState::Succeeded {
        // A run that succeeded ended with its sink, the last node of the root DAG. Another
        // task may record a later end: its worker finishes its own bookkeeping after marking
        // the sink's last parent, while the sink already ran on another thread.
        let sink = lasts()
            .filter(|r| r.outcome == Outcome::Ok && !r.dag.contains('.'))
            .max_by_key(|r| r.node);
        if sink.is_some() {
            return sink;
        }
    }
    latest(|o| o == Outcome::Ok).or_else(|| latest(|_| true))
}

/// The task `r` waited for last: its parent (or the child DAG standing for it) that ended
/// last, or for the root of a child DAG the map node that expanded it.
fn predecessor<'a>(
    r: &'a TaskRecord,
    tasks: &HashMap<Key<'a>, Task<'a>>,
    last_of_dag: &HashMap<&str, &'a TaskRecord>,
) -> Option<&'a TaskRecord> {
    let dag = &*r.dag;
    let parents = r
        .carried_from
        .into_iter()
        .chain(r.inputs.iter().map(|i| i.node));
    let mut best: Option<&TaskRecord> = None;
    let mut consider = |candidate: &'a TaskRecord| {
        if best.is_none_or(|b| later(candidate, b)) {
            best = Some(candidate);
        }
    };
    for parent in parents {
        if let Some(task) = tasks.get(&(dag, parent)) {
            consider(task.last);
        }
        if let Some(child_sink) = last_of_dag.get(format!("{dag}.{parent}").as_str()) {
            consider(child_sink);
        }
    }
    best.or_else(|| {
        let (parent_dag, node) = dag.rsplit_once('.')?;
        let node: u32 = node.parse().ok()?;
        tasks.get(&(parent_dag, node)).map(|task| task.last)
    })
}

fn step(task: &Task<'_>) -> PathStep {
    let r = task.last;
    PathStep {
        dag: r.dag.to_string(),
        node: r.node,
        task: r.task.to_string(),
        worker: r.worker.to_string(),
        attempts: task.attempts,
        start_us: task.first_start_us,
        end_us: r.end_us,
        run_ms: r.run_us as f64 / 1e3,
        fetch_ms: r.fetch_us as f64 / 1e3,
        store_ms: r.store_us as f64 / 1e3,
        continuation: r.continuation,
        outcome: r.outcome,
    }
}
