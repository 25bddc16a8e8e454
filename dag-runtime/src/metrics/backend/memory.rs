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

/// Task records kept in memory, all runs together (about 150 bytes each); beyond this the
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
    tasks: HashMap<String, Vec<TaskRecord>>,
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
                self.records -= tasks.len();
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
                self.records -= tasks.len();
            }
            self.digests.remove(&id);
        }
    }
}

#[async_trait]
impl MetricsBackend for MemoryMetrics {
    async fn put(&self, batch: Batch) -> Result<(), MetricsError> {
        let mut inner = self.lock();
        // Records come in runs of one DAG: each run of records is appended at once.
        let mut records = batch.tasks.into_iter().peekable();
        while let Some(first) = records.next() {
            let dag = Arc::clone(&first.dag);
            let tasks = inner.tasks.entry(root_of(&dag).to_owned()).or_default();
            let before = tasks.len();
            tasks.push(first);
            while let Some(next) = records.next_if(|r| Arc::ptr_eq(&r.dag, &dag)) {
                tasks.push(next);
            }
            let added = tasks.len() - before;
            inner.records += added;
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
        let mut tasks = inner.tasks.get(id).cloned().unwrap_or_default();
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
