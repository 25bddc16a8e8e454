//! What the worker step measures, phase by phase, for one task: [`TaskTimer`]. With metrics off
//! it holds nothing and every call is a no-op.
//!
//! Cheap on purpose (it runs for every task; measured in `benches/metrics.rs`):
//!
//! - one clock read per phase boundary, from the CPU's time-stamp counter ([`quanta`], a few
//!   nanoseconds, where the system clock costs 20-30 in a VM); wall-clock times are derived
//!   from a base the worker takes now and then, not read per task;
//! - no text copied and no shared counter touched: names are `Arc<str>`s this worker thread
//!   owns copies of (a DAG id shared by every worker would make each record bounce its
//!   reference count between cores);
//! - no allocation and no hand-off per task: a worker writes its records into a buffer of
//!   `LOCAL_BATCH` (128) records and hands the buffer over whole (when full, when its first record
//!   is [`HAND_OVER_AFTER`] old, and when the worker goes idle), taking an empty one that the
//!   metrics thread gave back. A worker thread never allocates nor frees a large block:
//!   measured on the embedded tree of 2^16 leaves, a fresh buffer per batch (or a large chunk
//!   kept by the backend) made glibc's allocator consolidate and trim the worker's arena, and
//!   the engine's own small allocations slowed down by 40-90%.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quanta::Instant;
use rustc_hash::FxHashMap;

use super::record::{now_us, InputRecord, InputRecords, Kept, Outcome, TaskRecord};
use super::recorder::{Recorder, WorkerStats};
use crate::store::DagId;

/// How long a worker keeps a record before it hands it over, at most (while it keeps running
/// tasks; it hands everything over when it goes idle anyway).
pub(crate) const HAND_OVER_AFTER: Duration = Duration::from_millis(100);

/// How often a worker takes a new base for wall-clock times (the time-stamp counter and the
/// system clock drift apart slowly; NTP adjusts the latter).
const REBASE_EVERY: Duration = Duration::from_secs(10);

/// The metrics side of one worker thread: its process's recorder, its own counters, and the
/// records it has not queued yet.
///
/// A worker hands its records over in batches (see the module's docs): when a batch is full,
/// when it holds a record older than 100 ms, when the worker goes idle (the end
/// of each invocation), before a DAG's result is stored, and when it is dropped; with
/// [`Upload::EachTask`](super::Upload::EachTask), each record at once.
pub struct WorkerMetrics {
    recorder: Arc<Recorder>,
    stats: Arc<WorkerStats>,
    cold_start: Option<Duration>,
    name: Arc<str>,
    /// Touched only by its own thread: the lock is never contended.
    local: Mutex<Local>,
}

/// What a worker thread keeps between its records.
struct Local {
    buffered: Vec<TaskRecord>,
    /// When the oldest buffered record was made.
    oldest: Option<Instant>,
    /// This thread's copy of the id of the DAG it recorded last.
    dag: Option<Arc<str>>,
    /// A time-stamp-counter reading and the wall clock (µs since the epoch) at that moment.
    base: (Instant, u64),
}

impl Local {
    fn new() -> Self {
        Local {
            buffered: Vec::new(),
            oldest: None,
            dag: None,
            base: (Instant::now(), now_us()),
        }
    }

    /// `at` in µs since the epoch.
    fn epoch_us(&self, at: Instant) -> u64 {
        let (base, base_us) = self.base;
        match at.checked_duration_since(base) {
            Some(after) => base_us + micros(after),
            None => base_us.saturating_sub(micros(base - at)),
        }
    }

    /// This thread's shared copy of `dag`'s id.
    fn dag(&mut self, dag: &DagId) -> Arc<str> {
        match &self.dag {
            Some(id) if **id == *dag.as_str() => Arc::clone(id),
            _ => Arc::clone(self.dag.insert(dag.as_str().into())),
        }
    }
}

impl Clone for WorkerMetrics {
    /// The same worker, with nothing buffered.
    fn clone(&self) -> Self {
        WorkerMetrics {
            recorder: Arc::clone(&self.recorder),
            stats: Arc::clone(&self.stats),
            cold_start: self.cold_start,
            name: Arc::clone(&self.name),
            local: Mutex::new(Local::new()),
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
            local: Mutex::new(Local::new()),
        }
    }

    fn local(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands over what this worker has buffered (and takes a new base for wall-clock times
    /// when the last is old: this runs when the worker goes idle, off the task's path).
    pub fn flush(&self) {
        let mut local = self.local();
        if !local.buffered.is_empty() {
            self.hand_over(&mut local);
        }
        if local.base.0.elapsed() > REBASE_EVERY {
            local.base = (Instant::now(), now_us());
        }
    }

    /// Records one attempt of a task of `dag`, made at `made` (the clock's last reading), built
    /// by `make` from this thread's copy of the DAG's id and its clock base.
    fn record(
        &self,
        dag: &DagId,
        made: Instant,
        make: impl FnOnce(Arc<str>, &Local) -> TaskRecord,
    ) {
        let mut guard = self.local();
        let local = &mut *guard;
        let record = make(local.dag(dag), local);
        if self.recorder.each_task() {
            drop(guard);
            return self.recorder.task(record);
        }
        if local.buffered.capacity() == 0 {
            local.buffered = self.recorder.spare_buffer();
        }
        local.buffered.push(record);
        let oldest = *local.oldest.get_or_insert(made);
        if local.buffered.len() >= self.recorder.batch() || made - oldest > HAND_OVER_AFTER {
            self.hand_over(local);
        }
    }

    /// Queues the buffered records, and takes an empty buffer.
    fn hand_over(&self, local: &mut Local) {
        local.oldest = None;
        let spare = self.recorder.spare_buffer();
        self.recorder
            .tasks(std::mem::replace(&mut local.buffered, spare));
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
    static TASK_NAMES: RefCell<FxHashMap<usize, Arc<str>>> = RefCell::new(FxHashMap::default());
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
    /// The last phase boundary.
    lap: Instant,
    /// When the current attempt started.
    attempt_started: Instant,
    carried_from: Option<u32>,
    fetch_us: u64,
    inputs: InputRecords,
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

    /// The record of this attempt, so far, with `dag` this thread's copy of the DAG's id.
    fn record(
        &self,
        dag: Arc<str>,
        local: &Local,
        node: u32,
        task: Arc<str>,
        outcome: Outcome,
    ) -> TaskRecord {
        TaskRecord {
            dag,
            node,
            task,
            worker: Arc::clone(&self.metrics.name),
            attempt: self.attempt,
            start_us: local.epoch_us(self.started),
            end_us: local.epoch_us(self.lap),
            fetch_us: self.fetch_us,
            inputs: InputRecords::new(),
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
                    lap: now,
                    attempt_started: now,
                    carried_from,
                    fetch_us: 0,
                    inputs: InputRecords::new(),
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
            let state = &*state;
            state.metrics.record(dag, state.lap, |dag, local| {
                let mut record =
                    state.record(dag, local, node, shared_task_name(task), Outcome::Retried);
                record.start_us = local.epoch_us(state.attempt_started);
                record.fetch_us = 0;
                record
            });
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
        let inputs = std::mem::take(&mut state.inputs);
        let state = &state;
        state.metrics.record(dag, state.lap, |dag, local| {
            let mut record = state.record(dag, local, node, task(), outcome);
            record.inputs = inputs;
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
            record
        });
    }
}
