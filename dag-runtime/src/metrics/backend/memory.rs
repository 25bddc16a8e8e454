//! Metrics in this process: the embedded runtime's default target.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::{root_of, Batch, MetricsBackend, RunMetrics};
use crate::metrics::digest::Digest;
use crate::metrics::record::{RunRecord, TaskRecord, WorkerRecord};
use crate::metrics::storage::MetricsError;

/// Runs kept in memory; the oldest are forgotten beyond this.
pub const MEMORY_RUNS_KEPT: usize = 1_000;

/// Task records kept in memory, all runs together (about 200 bytes each); beyond this the
/// oldest runs lose their task records (their run records and digests stay).
pub const MEMORY_RECORDS_KEPT: usize = 2_000_000;

/// Metrics kept in this process (lost when it exits). Cheap to clone: clones share the data.
#[derive(Clone, Default)]
pub struct MemoryMetrics {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    runs: HashMap<String, RunRecord>,
    /// (submitted µs, id), oldest first.
    order: BTreeMap<(u64, String), ()>,
    /// Each run's task records, in the chunks they were uploaded in (kept as they came: no
    /// record is copied again).
    tasks: HashMap<String, Vec<Vec<TaskRecord>>>,
    /// run → recorder → digest.
    digests: HashMap<String, HashMap<String, Digest>>,
    workers: HashMap<String, WorkerRecord>,
    /// Task records held, all runs together.
    records: usize,
}

impl MemoryMetrics {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data, still consistent enough to read.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    /// Drops the task records of the oldest runs until at most MEMORY_RECORDS_KEPT are held.
    fn trim_records(&mut self) {
        let mut oldest = self
            .order
            .keys()
            .map(|(_, id)| id.clone())
            .collect::<Vec<_>>();
        oldest.reverse();
        while self.records > MEMORY_RECORDS_KEPT {
            let Some(id) = oldest.pop() else {
                break;
            };
            if let Some(tasks) = self.tasks.remove(&id) {
                self.records -= records_in(&tasks);
            }
        }
    }

    fn forget_oldest(&mut self) {
        while self.order.len() > MEMORY_RUNS_KEPT {
            let Some(((_, id), ())) = self.order.pop_first() else {
                break;
            };
            self.runs.remove(&id);
            if let Some(tasks) = self.tasks.remove(&id) {
                self.records -= records_in(&tasks);
            }
            self.digests.remove(&id);
        }
    }
}

fn records_in(chunks: &[Vec<TaskRecord>]) -> usize {
    chunks.iter().map(Vec::len).sum()
}

/// Whether a record of DAG `dag` belongs to run `run`, the root of `first` (the same shared
/// id, which is the usual case, is decided without comparing text).
fn same_run(dag: &Arc<str>, first: &Arc<str>, run: &str) -> bool {
    Arc::ptr_eq(dag, first) || root_of(dag) == run
}

#[async_trait]
impl MetricsBackend for MemoryMetrics {
    async fn put(&self, batch: Batch) -> Result<(), MetricsError> {
        let mut inner = self.lock();
        for mut chunk in batch.tasks {
            inner.records += chunk.len();
            // A chunk handed over early (a worker going idle, or slow tasks) is mostly room.
            if chunk.capacity() > 2 * chunk.len() {
                chunk.shrink_to_fit();
            }
            // A chunk usually holds one run's records and is kept whole; one that mixes runs
            // (concurrent DAGs) is split.
            let Some(first) = chunk.first() else {
                continue;
            };
            let run = root_of(&first.dag);
            if chunk.iter().all(|r| same_run(&r.dag, &first.dag, run)) {
                let run = run.to_owned();
                inner.tasks.entry(run).or_default().push(chunk);
                continue;
            }
            let mut by_run: BTreeMap<String, Vec<TaskRecord>> = BTreeMap::new();
            for record in chunk {
                by_run
                    .entry(root_of(&record.dag).to_owned())
                    .or_default()
                    .push(record);
            }
            for (run, records) in by_run {
                inner.tasks.entry(run).or_default().push(records);
            }
        }
        if inner.records > MEMORY_RECORDS_KEPT {
            inner.trim_records();
        }
        for (run, digest) in batch.digests {
            inner
                .digests
                .entry(run)
                .or_default()
                .insert(batch.recorder.clone(), digest);
        }
        for worker in batch.workers {
            inner.workers.insert(worker.worker.clone(), worker);
        }
        Ok(())
    }

    async fn put_run(&self, run: &RunRecord) -> Result<(), MetricsError> {
        let mut inner = self.lock();
        if let Some(old) = inner.runs.insert(run.id.clone(), run.clone()) {
            inner.order.remove(&(old.submitted_us, old.id));
        }
        inner.order.insert((run.submitted_us, run.id.clone()), ());
        inner.forget_oldest();
        Ok(())
    }

    async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, MetricsError> {
        let inner = self.lock();
        Ok(inner
            .order
            .keys()
            .rev()
            .take(limit)
            .filter_map(|(_, id)| inner.runs.get(id).cloned())
            .collect())
    }

    async fn run(&self, id: &str) -> Result<Option<RunMetrics>, MetricsError> {
        let inner = self.lock();
        let Some(run) = inner.runs.get(id).cloned() else {
            return Ok(None);
        };
        let mut tasks: Vec<TaskRecord> = inner
            .tasks
            .get(id)
            .into_iter()
            .flatten()
            .flatten()
            .cloned()
            .collect();
        tasks.sort_by_key(|t| (t.start_us, t.end_us));
        let mut digest = Digest::default();
        for part in inner.digests.get(id).into_iter().flat_map(|d| d.values()) {
            digest.merge(part);
        }
        let mut workers: Vec<WorkerRecord> = tasks
            .iter()
            .map(|t| &*t.worker)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter_map(|w| inner.workers.get(w).cloned())
            .collect();
        workers.sort_by(|a, b| a.worker.cmp(&b.worker));
        Ok(Some(RunMetrics {
            run,
            tasks,
            digest,
            workers,
        }))
    }

    async fn digests(&self, ids: &[String]) -> Result<Vec<Digest>, MetricsError> {
        let inner = self.lock();
        Ok(ids
            .iter()
            .map(|id| {
                let mut digest = Digest::default();
                for part in inner.digests.get(id).into_iter().flat_map(|d| d.values()) {
                    digest.merge(part);
                }
                digest
            })
            .collect())
    }

    async fn gc(&self) -> Result<usize, MetricsError> {
        // Memory is bounded by MEMORY_RUNS_KEPT instead of a time to live.
        Ok(0)
    }
}
