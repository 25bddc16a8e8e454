//! What the worker step measures, phase by phase, for one task: [`TaskTimer`]. With metrics off
//! it holds nothing and every call is a no-op.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::record::{now_us, InputRecord, Outcome, TaskRecord};
use super::recorder::{Recorder, WorkerStats};

/// The metrics side of one worker thread: its process's recorder and its own counters.
#[derive(Clone)]
pub struct WorkerMetrics {
    recorder: Arc<Recorder>,
    stats: Arc<WorkerStats>,
    cold_start: Option<Duration>,
}

impl WorkerMetrics {
    /// The worker `name` of the process whose recorder is `recorder`; `cold_start` is how long
    /// its process took to be ready, for a worker process.
    pub fn new(recorder: Arc<Recorder>, name: &str, cold_start: Option<Duration>) -> Self {
        let stats = recorder.worker(name, cold_start);
        WorkerMetrics {
            recorder,
            stats,
            cold_start,
        }
    }

    /// Another worker thread `name` of the same process (with the same cold start).
    pub fn for_worker(&self, name: &str) -> Self {
        WorkerMetrics::new(Arc::clone(&self.recorder), name, self.cold_start)
    }

    /// The process's recorder.
    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }
}

/// How one attempt ended, as the retry loop reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptEnd {
    Ok,
    Failed { timed_out: bool, last: bool },
}

/// Measures one task through the phases of the worker step.
pub(crate) struct TaskTimer<'a> {
    state: Option<State<'a>>,
}

struct State<'a> {
    metrics: &'a WorkerMetrics,
    worker: &'a str,
    started: Instant,
    start_us: u64,
    /// Start of the current phase or attempt.
    mark: Instant,
    mark_us: u64,
    continuation: bool,
    carried_from: Option<u32>,
    fetch_us: u64,
    inputs: Vec<InputRecord>,
    run_us: u64,
    attempt: u32,
    output_bytes: u64,
    store_us: u64,
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

impl<'a> TaskTimer<'a> {
    /// Starts timing a task run by `worker`, `carried_from` the parent whose output came with
    /// the invocation. Measures nothing when `metrics` is `None`.
    pub(crate) fn start(
        metrics: Option<&'a WorkerMetrics>,
        worker: &'a str,
        carried_from: Option<u32>,
    ) -> Self {
        TaskTimer {
            state: metrics.map(|metrics| {
                let now = Instant::now();
                let now_us = now_us();
                State {
                    metrics,
                    worker,
                    started: now,
                    start_us: now_us,
                    mark: now,
                    mark_us: now_us,
                    continuation: carried_from.is_some(),
                    carried_from,
                    fetch_us: 0,
                    inputs: Vec::new(),
                    run_us: 0,
                    attempt: 1,
                    output_bytes: 0,
                    store_us: 0,
                }
            }),
        }
    }

    /// Whether anything is measured.
    pub(crate) fn is_on(&self) -> bool {
        self.state.is_some()
    }

    /// The inputs were fetched: `fetched` lists each input that came from the store.
    pub(crate) fn fetched<'b>(&mut self, fetched: impl Iterator<Item = (u32, usize)> + 'b) {
        if let Some(state) = &mut self.state {
            state.fetch_us = micros(state.mark.elapsed());
            state.inputs = fetched
                .map(|(node, bytes)| InputRecord {
                    node,
                    bytes: bytes as u64,
                })
                .collect();
            state.mark = Instant::now();
            state.mark_us = now_us();
        }
    }

    /// Attempt `attempt` of the body starts.
    pub(crate) fn attempt_started(&mut self, attempt: u32) {
        if let Some(state) = &mut self.state {
            state.attempt = attempt;
            state.mark = Instant::now();
            state.mark_us = now_us();
        }
    }

    /// Attempt `attempt` ended; a failed attempt that is retried gets its own record now.
    pub(crate) fn attempt_ended(&mut self, dag: &str, node: u32, task: &str, end: AttemptEnd) {
        let Some(state) = &mut self.state else {
            return;
        };
        state.run_us = micros(state.mark.elapsed());
        if let AttemptEnd::Failed { last: false, .. } = end {
            let record = TaskRecord {
                dag: dag.to_owned(),
                node,
                task: task.to_owned(),
                worker: state.worker.to_owned(),
                attempt: state.attempt,
                start_us: state.mark_us,
                end_us: now_us(),
                fetch_us: 0,
                inputs: Vec::new(),
                run_us: state.run_us,
                output_bytes: 0,
                store_us: 0,
                continued: 0,
                delegated: 0,
                continuation: state.continuation,
                carried_from: state.carried_from,
                outcome: Outcome::Retried,
            };
            state.metrics.recorder.task(record);
        }
        state.mark = Instant::now();
    }

    /// A map node expanded (no attempts of a body): the time since the fetch counts as running.
    pub(crate) fn expanded(&mut self) {
        if let Some(state) = &mut self.state {
            state.run_us = micros(state.mark.elapsed());
            state.mark = Instant::now();
        }
    }

    /// The output (`bytes` long) is about to be stored.
    pub(crate) fn storing(&mut self, bytes: usize) {
        if let Some(state) = &mut self.state {
            state.output_bytes = bytes as u64;
            state.mark = Instant::now();
        }
    }

    /// The output was stored and the children marked.
    pub(crate) fn stored(&mut self) {
        if let Some(state) = &mut self.state {
            state.store_us = micros(state.mark.elapsed());
        }
    }

    /// The task is done: `ready` children became ready through it (one continued here, the
    /// rest handed on); records it with `outcome`.
    pub(crate) fn finish(self, dag: &str, node: u32, task: &str, ready: usize, outcome: Outcome) {
        let Some(state) = self.state else {
            return;
        };
        let busy = state.started.elapsed();
        state.metrics.stats.add_task(busy);
        let record = TaskRecord {
            dag: dag.to_owned(),
            node,
            task: task.to_owned(),
            worker: state.worker.to_owned(),
            attempt: state.attempt,
            start_us: state.start_us,
            end_us: state.start_us + micros(busy),
            fetch_us: state.fetch_us,
            inputs: state.inputs,
            run_us: state.run_us,
            output_bytes: state.output_bytes,
            store_us: state.store_us,
            continued: u32::from(ready > 0),
            delegated: ready.saturating_sub(1) as u32,
            continuation: state.continuation,
            carried_from: state.carried_from,
            outcome,
        };
        state.metrics.recorder.task(record);
    }
}
