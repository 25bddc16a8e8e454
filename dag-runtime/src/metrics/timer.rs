//! What the worker step measures, phase by phase, for one task: [`TaskTimer`]. With metrics off
//! it holds nothing and every call is a no-op.
//!
//! Cheap on purpose (it runs for every task): one wall-clock read per task, one monotonic read
//! per phase boundary, no text copied (names are shared `Arc<str>`s), and one non-blocking send
//! of the record; digesting and uploading happen on the metrics thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::record::{now_us, InputRecord, Kept, Outcome, TaskRecord};
use super::recorder::{Recorder, WorkerStats, LOCAL_BATCH};
use crate::store::DagId;

/// The metrics side of one worker thread: its process's recorder, its own counters, and the
/// records it has not queued yet.
///
/// A worker queues its records 64 at a time (one queue operation per 64 tasks rather than per
/// task), and whatever it holds when it goes idle (the end of each invocation), before a DAG's
/// result is stored, and when it is dropped; with
/// [`Upload::EachTask`](super::Upload::EachTask), each record at once.
pub struct WorkerMetrics {
    recorder: Arc<Recorder>,
    stats: Arc<WorkerStats>,
    cold_start: Option<Duration>,
    name: Arc<str>,
    /// Touched only by its own thread: the lock is never contended.
    buffered: Mutex<Vec<TaskRecord>>,
}

impl Clone for WorkerMetrics {
    /// The same worker, with nothing buffered.
    fn clone(&self) -> Self {
        WorkerMetrics {
            recorder: Arc::clone(&self.recorder),
            stats: Arc::clone(&self.stats),
            cold_start: self.cold_start,
            name: Arc::clone(&self.name),
            buffered: Mutex::new(Vec::new()),
        }
    }
}

impl Drop for WorkerMetrics {
    fn drop(&mut self) {
        self.flush();
    }
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
            name: name.into(),
            buffered: Mutex::new(Vec::new()),
        }
    }

    /// Queues what this worker has buffered.
    pub fn flush(&self) {
        let mut buffered = self.buffered.lock().unwrap_or_else(|e| e.into_inner());
        if !buffered.is_empty() {
            self.recorder.tasks(std::mem::replace(
                &mut *buffered,
                Vec::with_capacity(LOCAL_BATCH),
            ));
        }
    }

    fn record(&self, record: TaskRecord) {
        if self.recorder.each_task() {
            return self.recorder.task(record);
        }
        let mut buffered = self.buffered.lock().unwrap_or_else(|e| e.into_inner());
        buffered.push(record);
        if buffered.len() >= LOCAL_BATCH {
            self.recorder.tasks(std::mem::replace(
                &mut *buffered,
                Vec::with_capacity(LOCAL_BATCH),
            ));
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

thread_local! {
    /// Shared copies of the registered task names (`&'static str`) this thread has recorded,
    /// by address: a record gets its name without copying it.
    static TASK_NAMES: RefCell<HashMap<usize, Arc<str>>> = RefCell::new(HashMap::new());
}

/// The shared form of a task's name.
pub(crate) fn shared_task_name(name: &'static str) -> Arc<str> {
    TASK_NAMES.with(|names| {
        Arc::clone(
            names
                .borrow_mut()
                .entry(name.as_ptr() as usize)
                .or_insert_with(|| name.into()),
        )
    })
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
    started: Instant,
    start_us: u64,
    /// The last phase boundary.
    lap: Instant,
    /// When the current attempt started.
    attempt_started: Instant,
    carried_from: Option<u32>,
    fetch_us: u64,
    inputs: Vec<InputRecord>,
    run_us: u64,
    attempt: u32,
    output_bytes: u64,
    store_us: u64,
    placed: Placed,
}

/// Where a task's output and ready children went, as the engine's locality decision left them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Placed {
    /// Ready children run in this worker (in turn, or by its process's other threads with the
    /// output in memory) when clustering kept them; 0 for the usual one continuation.
    pub here: u32,
    /// Which optimization kept the output out of the store, if one did.
    pub kept_by: Option<Kept>,
    /// Bytes not moved thanks to task clustering.
    pub saved_by_clustering: u64,
    /// Bytes not moved thanks to delayed I/O.
    pub saved_by_delayed_io: u64,
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

impl State<'_> {
    /// The time since the last boundary, which becomes now.
    fn lap(&mut self) -> Duration {
        let now = Instant::now();
        let lap = now - self.lap;
        self.lap = now;
        lap
    }

    /// `at` in µs since the epoch.
    fn epoch_us(&self, at: Instant) -> u64 {
        self.start_us + micros(at - self.started)
    }

    fn record(&self, dag: &DagId, node: u32, task: Arc<str>, outcome: Outcome) -> TaskRecord {
        TaskRecord {
            dag: dag.shared(),
            node,
            task,
            worker: Arc::clone(&self.metrics.name),
            attempt: self.attempt,
            start_us: self.start_us,
            end_us: self.epoch_us(self.lap),
            fetch_us: self.fetch_us,
            inputs: Vec::new(),
            run_us: self.run_us,
            output_bytes: self.output_bytes,
            store_us: self.store_us,
            continued: 0,
            delegated: 0,
            continuation: self.carried_from.is_some(),
            carried_from: self.carried_from,
            outcome,
            kept_by: None,
            saved_by_clustering: 0,
            saved_by_delayed_io: 0,
        }
    }
}

impl<'a> TaskTimer<'a> {
    /// Starts timing a task, `carried_from` the parent whose output came with the invocation.
    /// Measures nothing when `metrics` is `None`.
    pub(crate) fn start(metrics: Option<&'a WorkerMetrics>, carried_from: Option<u32>) -> Self {
        TaskTimer {
            state: metrics.map(|metrics| {
                let now = Instant::now();
                State {
                    metrics,
                    started: now,
                    start_us: now_us(),
                    lap: now,
                    attempt_started: now,
                    carried_from,
                    fetch_us: 0,
                    inputs: Vec::new(),
                    run_us: 0,
                    attempt: 1,
                    output_bytes: 0,
                    store_us: 0,
                    placed: Placed::default(),
                }
            }),
        }
    }

    /// The inputs were fetched: `fetched` lists each input that came from the store.
    pub(crate) fn fetched(&mut self, fetched: impl Iterator<Item = (u32, usize)>) {
        if let Some(state) = &mut self.state {
            state.fetch_us = micros(state.lap());
            state.attempt_started = state.lap;
            state
                .inputs
                .extend(fetched.map(|(node, bytes)| InputRecord {
                    node,
                    bytes: bytes as u64,
                }));
        }
    }

    /// Attempt `attempt` of the body starts (the first starts when the inputs are in).
    pub(crate) fn attempt_started(&mut self, attempt: u32) {
        if let Some(state) = &mut self.state {
            state.attempt = attempt;
            if attempt > 1 {
                state.lap(); // after the backoff
                state.attempt_started = state.lap;
            }
        }
    }

    /// The attempt that started last ended; a failed attempt that is retried gets its own
    /// record now.
    pub(crate) fn attempt_ended(
        &mut self,
        dag: &DagId,
        node: u32,
        task: &'static str,
        end: AttemptEnd,
    ) {
        let Some(state) = &mut self.state else {
            return;
        };
        state.run_us = micros(state.lap());
        if let AttemptEnd::Failed { last: false, .. } = end {
            let mut record = state.record(dag, node, shared_task_name(task), Outcome::Retried);
            record.start_us = state.epoch_us(state.attempt_started);
            record.fetch_us = 0;
            state.metrics.record(record);
        }
    }

    /// A map node expanded (no attempts of a body): the time since the fetch counts as running.
    pub(crate) fn expanded(&mut self) {
        if let Some(state) = &mut self.state {
            state.run_us = micros(state.lap());
        }
    }

    /// The output (`bytes` long) is about to be stored.
    pub(crate) fn storing(&mut self, bytes: usize) {
        if let Some(state) = &mut self.state {
            state.output_bytes = bytes as u64;
        }
    }

    /// The output was stored and the children marked.
    pub(crate) fn stored(&mut self) {
        if let Some(state) = &mut self.state {
            state.store_us = micros(state.lap());
        }
    }

    /// Where the output went and what that saved (see [`Placed`]).
    pub(crate) fn placed(&mut self, placed: &Placed) {
        if let Some(state) = &mut self.state {
            state.placed = *placed;
        }
    }

    /// The task is done: `ready` children became ready through it (one continued here, the
    /// rest handed on); records it with `outcome` under `task`'s name.
    pub(crate) fn finish(
        self,
        dag: &DagId,
        node: u32,
        task: impl FnOnce() -> Arc<str>,
        ready: usize,
        outcome: Outcome,
    ) {
        let Some(mut state) = self.state else {
            return;
        };
        state.metrics.stats.add_task(state.lap - state.started);
        let mut record = state.record(dag, node, task(), outcome);
        record.inputs = std::mem::take(&mut state.inputs);
        let placed = state.placed;
        record.continued = if placed.here > 0 {
            placed.here
        } else {
            u32::from(ready > 0)
        };
        record.delegated = (ready as u32).saturating_sub(record.continued);
        record.kept_by = placed.kept_by;
        record.saved_by_clustering = placed.saved_by_clustering;
        record.saved_by_delayed_io = placed.saved_by_delayed_io;
        state.metrics.record(record);
    }
}
