//! [`RunReport`]: one run's metrics summed up for a reader: makespan, bytes moved, store round
//! trips, retries and failures, the workers, the critical path, percentiles per task name, the
//! slowest attempts and the errors. `dag show` prints it (as text with its [`Display`] or as
//! JSON with its `Serialize`), and so do the examples at the end of a run.
//!
//! | module | owns |
//! | --- | --- |
//! | `critical_path` | the chain of tasks that determined the makespan |
//! | `display` | the text form, with an aligned percentile table |
//! | `time` | timestamps as RFC 3339 text |
//!
//! [`Display`]: std::fmt::Display

mod critical_path;
mod display;
mod time;

pub use critical_path::PathStep;
pub use time::rfc3339;

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::backend::RunMetrics;
use super::digest::{Digest, Sketch, Stats};
use super::record::{Outcome, RunState, TaskRecord};

/// How many attempts [`RunReport::slowest`] lists.
pub const SLOWEST_KEPT: usize = 10;

/// One run summed up. Durations are milliseconds (fractional), sizes bytes, times µs since the
/// epoch.
///
/// Counting rules: a *task* is one node of the DAG or of one of its maps' child DAGs
/// (`<id>.<node>`), counted once whatever its attempts; an *attempt* is one record. Bytes
/// uploaded are the outputs of the attempts that succeeded (each stored once); bytes
/// downloaded are the inputs fetched from the store. A store round trip is counted for each
/// fetch of inputs (an attempt with a non-empty `inputs` list) and for each completion (an
/// attempt that succeeded stores its output, marks its children and learns which are ready in
/// one round trip).
///
/// ```
/// use dag::metrics::{
///     Digest, InputRecord, Outcome, RunMetrics, RunRecord, RunReport, RunState, TaskRecord,
/// };
///
/// // Parents fetched from the store are `inputs`; one whose output came in memory would be
/// // `carried_from`.
/// let record = |node: u32, task: &str, start_us: u64, end_us: u64, fetched: Vec<u32>| TaskRecord {
///     dag: "r1".into(), node, task: task.into(), worker: "host:1/0".into(), attempt: 1,
///     start_us, end_us, fetch_us: 0,
///     inputs: fetched.iter().map(|&node| InputRecord { node, bytes: 10 }).collect(),
///     run_us: end_us - start_us, output_bytes: 10, store_us: 0, continued: 0, delegated: 0,
///     continuation: false, carried_from: None, outcome: Outcome::Ok, kept_by: None,
///     saved_by_clustering: 0, saved_by_delayed_io: 0,
/// };
/// let metrics = RunMetrics {
///     run: RunRecord {
///         id: "r1".into(), name: "total".into(), state: RunState::Succeeded, nodes: 3,
///         submitted_us: 1_000, ended_us: Some(9_000), error: None, client: "host:1".into(),
///     },
///     tasks: vec![
///         record(0, "load", 1_000, 2_000, vec![]),
///         record(1, "load", 1_000, 5_000, vec![]),
///         record(2, "total", 5_000, 8_000, vec![0, 1]),
///     ],
///     digest: Digest::default(), // rebuilt from the records when empty
///     workers: vec![],
/// };
/// let report = RunReport::new(&metrics);
/// assert_eq!(report.makespan_ms, Some(8.0));
/// assert_eq!(report.critical_path, ["load", "total"]); // node 1 ended last of the two
/// assert_eq!(report.bytes_downloaded, 20);
/// println!("{report}");
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The DAG's id.
    pub id: String,
    /// The graph's name (its sink's task name).
    pub name: String,
    /// The run's state.
    pub state: RunState,
    /// When it was submitted, µs since the epoch.
    pub started_at_us: u64,
    /// When it was submitted, RFC 3339 (UTC).
    pub started_at: String,
    /// When its client learned the outcome, µs since the epoch (`None` while running).
    pub ended_at_us: Option<u64>,
    /// Submission to outcome; for a run not ended, submission to the end of the last attempt
    /// recorded; `None` when there is neither.
    pub makespan_ms: Option<f64>,
    /// Nodes in the submitted plan (maps' elements excluded).
    pub nodes: u64,
    /// Distinct tasks recorded (nodes of the DAG and of its maps' child DAGs).
    pub tasks: u64,
    /// Attempts recorded.
    pub attempts: u64,
    /// Attempts that failed and were retried.
    pub retries: u64,
    /// Last attempts that failed (error or timeout).
    pub failures: u64,
    /// Bytes of the outputs stored by successful attempts (not those kept in their worker).
    pub bytes_uploaded: u64,
    /// Bytes of the inputs fetched from the store.
    pub bytes_downloaded: u64,
    /// Bytes that did not go through the store thanks to task clustering.
    pub saved_by_clustering: u64,
    /// Bytes that did not go through the store thanks to delayed I/O.
    pub saved_by_delayed_io: u64,
    /// Store round trips: one per fetch of inputs, one per completion.
    pub store_round_trips: u64,
    /// Records dropped because a recorder's queue was full: the figures above miss them.
    pub dropped_records: u64,
    /// The error the client received, for a failed run.
    pub error: Option<String>,
    /// The task names along the critical path, first to last.
    pub critical_path: Vec<String>,
    /// The critical path's steps, first to last.
    pub critical_path_steps: Vec<PathStep>,
    /// Statistics per task name, by name.
    pub by_task: Vec<TaskStats>,
    /// The workers that ran the run's tasks, by name.
    pub workers: Vec<WorkerReport>,
    /// The [`SLOWEST_KEPT`] attempts with the longest run time, slowest first.
    pub slowest: Vec<AttemptReport>,
    /// The attempts that failed the run (error or timeout), by end time.
    pub errors: Vec<AttemptReport>,
    /// Percentiles across recent runs of the same graph, when added with
    /// [`RunReport::with_history`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<History>,
}

/// Statistics of one task name over a run. The run-time fields (`count`, `mean_ms` ... `max_ms`)
/// are over every attempt; the others over each task's last attempt.
#[derive(Debug, Clone, Serialize)]
pub struct TaskStats {
    /// The task name.
    pub task: String,
    /// Attempts.
    pub count: u64,
    /// Mean run time.
    pub mean_ms: f64,
    /// Shortest run time.
    pub min_ms: f64,
    /// Median run time.
    pub p50_ms: f64,
    /// 90th percentile of the run time.
    pub p90_ms: f64,
    /// 95th percentile of the run time.
    pub p95_ms: f64,
    /// 99th percentile of the run time.
    pub p99_ms: f64,
    /// Longest run time.
    pub max_ms: f64,
    /// Attempts that failed and were retried.
    pub retried: u64,
    /// Last attempts that failed.
    pub failed: u64,
    /// Time waiting for inputs from the store (ms).
    pub input_wait_ms: Stats,
    /// Time storing the output and marking the children (ms).
    pub store_ms: Stats,
    /// Output size (bytes).
    pub output_bytes: Stats,
}

/// What one worker did for a run.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerReport {
    /// The worker (`host:pid/thread`).
    pub worker: String,
    /// Attempts it ran for this run.
    pub tasks: u64,
    /// Time it spent on them (start to end of each attempt).
    pub busy_ms: f64,
    /// For a worker process: launch until ready, if recorded.
    pub cold_start_ms: Option<f64>,
}

/// One attempt, as listed among the slowest and the errors.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptReport {
    /// The DAG it belongs to (`<id>.<node>` inside a map).
    pub dag: String,
    /// The node.
    pub node: u32,
    /// The task name.
    pub task: String,
    /// The worker that ran it.
    pub worker: String,
    /// The attempt (1-based).
    pub attempt: u32,
    /// Time in the task's body.
    pub run_ms: f64,
    /// How it ended.
    pub outcome: Outcome,
    /// For a failed attempt: the error the run's client received (records carry no message
    /// of their own).
    pub message: Option<String>,
}

impl RunReport {
    /// Sums up `metrics`. Never fails: missing pieces (no records yet, a run still going,
    /// records dropped) give empty or shorter answers, not errors.
    pub fn new(metrics: &RunMetrics) -> RunReport {
        let run = &metrics.run;
        let records = &metrics.tasks;

        let tasks: HashSet<(&str, u32)> = records.iter().map(|r| (&*r.dag, r.node)).collect();
        let count = |f: fn(&TaskRecord) -> bool| records.iter().filter(|r| f(r)).count() as u64;
        let failed = |r: &TaskRecord| matches!(r.outcome, Outcome::Error | Outcome::TimedOut);
        let last_end = records.iter().map(|r| r.end_us).max();
        let makespan_us = run
            .makespan_us()
            .or_else(|| last_end.map(|end| end.saturating_sub(run.submitted_us)));

        let path = critical_path::find(records, run.state);
        RunReport {
            id: run.id.clone(),
            name: run.name.clone(),
            state: run.state,
            started_at_us: run.submitted_us,
            started_at: rfc3339(run.submitted_us),
            ended_at_us: run.ended_us,
            makespan_ms: makespan_us.map(ms),
            nodes: run.nodes,
            tasks: tasks.len() as u64,
            attempts: records.len() as u64,
            retries: count(|r| r.outcome == Outcome::Retried),
            failures: count(failed),
            bytes_uploaded: records.iter().map(TaskRecord::bytes_uploaded).sum(),
            saved_by_clustering: records.iter().map(|r| r.saved_by_clustering).sum(),
            saved_by_delayed_io: records.iter().map(|r| r.saved_by_delayed_io).sum(),
            bytes_downloaded: records.iter().map(TaskRecord::bytes_downloaded).sum(),
            store_round_trips: count(|r| !r.inputs.is_empty())
                + count(|r| r.outcome == Outcome::Ok),
            dropped_records: metrics.digest.dropped,
            error: run.error.clone(),
            critical_path: path.iter().map(|step| step.task.clone()).collect(),
            critical_path_steps: path,
            by_task: by_task(metrics),
            workers: workers(metrics),
            slowest: slowest(records),
            errors: errors(records, run.error.as_deref()),
            history: None,
        }
    }

    /// The same report with the percentiles of several runs of its graph (see [`History`]).
    pub fn with_history(mut self, history: History) -> RunReport {
        self.history = Some(history);
        self
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1_000.0
}

/// Per task name, from the merged digest; from the records when no digest was uploaded (it is
/// uploaded with the records, so this happens only for metrics written by hand).
fn by_task(metrics: &RunMetrics) -> Vec<TaskStats> {
    let rebuilt;
    let digest = if metrics.digest.by_task.is_empty() && !metrics.tasks.is_empty() {
        let mut digest = Digest::default();
        metrics.tasks.iter().for_each(|r| digest.add(r));
        rebuilt = digest;
        &rebuilt
    } else {
        &metrics.digest
    };
    task_stats(digest)
}

/// The percentiles of several runs of one graph, from their merged digests (no task record is
/// read): see [`RunReport::with_history`].
#[derive(Debug, Clone, Serialize)]
pub struct History {
    /// The graph's name, shared by the runs.
    pub name: String,
    /// The runs merged (the report's own included).
    pub runs: usize,
    /// Per task name, across those runs.
    pub by_task: Vec<TaskStats>,
}

impl History {
    /// The history of `runs` runs of the graph `name` whose digests merged into `digest`.
    pub fn new(name: impl Into<String>, runs: usize, digest: &Digest) -> History {
        History {
            name: name.into(),
            runs,
            by_task: task_stats(digest),
        }
    }
}

/// Count, mean, min, max and percentiles per task name of `digest`.
pub fn task_stats(digest: &Digest) -> Vec<TaskStats> {
    digest
        .by_task
        .iter()
        .map(|(task, d)| {
            let run = d.run_us.stats();
            TaskStats {
                task: task.clone(),
                count: run.count,
                mean_ms: run.mean / 1e3,
                min_ms: run.min / 1e3,
                p50_ms: run.p50 / 1e3,
                p90_ms: run.p90 / 1e3,
                p95_ms: run.p95 / 1e3,
                p99_ms: run.p99 / 1e3,
                max_ms: run.max / 1e3,
                retried: d.retried,
                failed: d.failed,
                input_wait_ms: stats_scaled(&d.fetch_us, 1e-3),
                store_ms: stats_scaled(&d.store_us, 1e-3),
                output_bytes: d.output_bytes.stats(),
            }
        })
        .collect()
}

fn stats_scaled(sketch: &Sketch, factor: f64) -> Stats {
    let s = sketch.stats();
    Stats {
        count: s.count,
        mean: s.mean * factor,
        min: s.min * factor,
        max: s.max * factor,
        p50: s.p50 * factor,
        p90: s.p90 * factor,
        p95: s.p95 * factor,
        p99: s.p99 * factor,
    }
}

fn workers(metrics: &RunMetrics) -> Vec<WorkerReport> {
    let mut by_worker: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for r in &metrics.tasks {
        let entry = by_worker.entry(&*r.worker).or_default();
        entry.0 += 1;
        entry.1 += r.end_us.saturating_sub(r.start_us);
    }
    by_worker
        .into_iter()
        .map(|(worker, (tasks, busy_us))| WorkerReport {
            worker: worker.to_owned(),
            tasks,
            busy_ms: ms(busy_us),
            cold_start_ms: metrics
                .workers
                .iter()
                .find(|w| w.worker == worker)
                .and_then(|w| w.cold_start_us)
                .map(ms),
        })
        .collect()
}

fn attempt(r: &TaskRecord, message: Option<&str>) -> AttemptReport {
    AttemptReport {
        dag: r.dag.to_string(),
        node: r.node,
        task: r.task.to_string(),
        worker: r.worker.to_string(),
        attempt: r.attempt,
        run_ms: ms(r.run_us),
        outcome: r.outcome,
        message: message.map(str::to_owned),
    }
}

fn slowest(records: &[TaskRecord]) -> Vec<AttemptReport> {
    let mut by_run: Vec<&TaskRecord> = records.iter().collect();
    // Ties in a stable order, so the same metrics always print the same list.
    by_run.sort_by(|a, b| {
        b.run_us
            .cmp(&a.run_us)
            .then_with(|| (&a.dag, a.node, a.attempt).cmp(&(&b.dag, b.node, b.attempt)))
    });
    by_run
        .into_iter()
        .take(SLOWEST_KEPT)
        .map(|r| attempt(r, None))
        .collect()
}

fn errors(records: &[TaskRecord], message: Option<&str>) -> Vec<AttemptReport> {
    let mut failed: Vec<&TaskRecord> = records
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Error | Outcome::TimedOut))
        .collect();
    failed.sort_by_key(|r| (r.end_us, r.node));
    failed.into_iter().map(|r| attempt(r, message)).collect()
}

#[cfg(test)]
mod tests;
