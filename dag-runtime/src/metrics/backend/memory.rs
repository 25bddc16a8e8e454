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
    fn forget_oldest(&mut self) {
        while self.order.len() > MEMORY_RUNS_KEPT {
            let Some(((_, id), ())) = self.order.pop_first() else {
                break;
            };
            self.runs.remove(&id);
            self.tasks.remove(&id);
            self.digests.remove(&id);
        }
    }
}

#[async_trait]
impl MetricsBackend for MemoryMetrics {
    async fn put(&self, batch: Batch) -> Result<(), MetricsError> {
        let mut inner = self.lock();
        for record in batch.tasks {
            let root = root_of(&record.dag);
            match inner.tasks.get_mut(root) {
                Some(tasks) => tasks.push(record),
                None => {
                    inner.tasks.insert(root.to_owned(), vec![record]);
                }
            }
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
