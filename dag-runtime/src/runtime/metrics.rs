//! A runtime's metrics: its recorder, the run records its client writes, and [`Metrics`], the
//! handle that reads them back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Runtime;
use crate::engine::LoadedDag;
use crate::error::DagError;
use crate::metrics::{
    now_us, MetricsBackend, MetricsError, MetricsStorage, Recorder, RunMetrics, RunRecord,
    RunState, WorkerMetrics,
};

/// How long dropping a runtime waits for its last metrics upload.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(5);

/// How long reading a run waits for the upload of what is queued.
const FLUSH_LIMIT: Duration = Duration::from_secs(10);

/// The metrics side of a runtime (owned by it; shut down, with a last upload, when it drops).
pub(super) struct RuntimeMetrics {
    pub(super) recorder: Arc<Recorder>,
    /// The id of the last DAG this runtime submitted.
    last: Mutex<Option<String>>,
}

impl RuntimeMetrics {
    /// Starts the recorder for `storage`; `redis_url` is the runtime's store's, if it is Redis.
    pub(super) fn start(
        storage: &MetricsStorage,
        redis_url: Option<&str>,
        io: &tokio::runtime::Handle,
    ) -> Result<Self, DagError> {
        let recorder = storage
            .start_recorder(crate::process_name(), redis_url, io.clone())
            .map_err(|e| DagError::Runtime(e.to_string()))?;
        Ok(RuntimeMetrics {
            recorder,
            last: Mutex::new(None),
        })
    }

    /// The metrics of this process's worker threads, named after `name`.
    pub(super) fn workers(&self, name: &str) -> WorkerMetrics {
        WorkerMetrics::new(Arc::clone(&self.recorder), name, None)
    }

    /// Records that `dag` was submitted; returns its record, for [`Self::ended`].
    pub(super) fn submitted(&self, dag: &LoadedDag) -> RunRecord {
        let record = RunRecord {
            id: dag.id.to_string(),
            name: dag.task_name(dag.plan.sink),
            state: RunState::Running,
            nodes: dag.plan.nodes.len() as u64,
            submitted_us: now_us(),
            ended_us: None,
            error: None,
            client: crate::process_name(),
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(record.id.clone());
        self.recorder.run(record.clone());
        record
    }

    /// Records how the run of `record` ended.
    pub(super) fn ended(&self, mut record: RunRecord, outcome: Result<(), &DagError>) {
        record.ended_us = Some(now_us());
        match outcome {
            Ok(()) => record.state = RunState::Succeeded,
            Err(error) => {
                record.state = RunState::Failed;
                record.error = Some(error.to_string());
            }
        }
        self.recorder.run(record);
    }
}

impl Drop for RuntimeMetrics {
    fn drop(&mut self) {
        self.recorder.shutdown(SHUTDOWN_LIMIT);
    }
}

/// Reads the metrics of a [`Runtime`]: see [`Runtime::metrics`].
///
/// ```
/// use dag::metrics::MetricsStorage;
/// use dag::prelude::*;
///
/// #[task]
/// fn double(x: i64) -> i64 { x * 2 }
///
/// let runtime = Runtime::builder().metrics(MetricsStorage::memory()).build()?;
/// double(double(1)).compute_on(&runtime)?;
/// let metrics = runtime.metrics().expect("metrics are on");
/// let run = metrics.last_run()?.expect("one run");
/// assert_eq!(run.tasks.len(), 2);
/// assert!(run.tasks.iter().all(|t| t.task.ends_with("double")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Metrics {
    runtime: Runtime,
}

impl Metrics {
    fn state(&self) -> &RuntimeMetrics {
        self.runtime
            .inner
            .metrics
            .as_ref()
            .expect("a Metrics exists only for a runtime with metrics")
    }

    fn backend(&self) -> &Arc<dyn MetricsBackend> {
        self.state().recorder.backend()
    }

    /// Uploads what this process has queued and waits for it.
    pub fn flush(&self) -> Result<(), MetricsError> {
        self.state().recorder.flush(FLUSH_LIMIT)
    }

    /// The `limit` most recent runs in the metrics store (of every client that uses it).
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, MetricsError> {
        self.runtime.block_on(self.backend().runs(limit))?
    }

    /// Everything recorded of run `id`, after uploading what this process has queued.
    /// Worker processes upload on their own schedule: their records of a run that just ended
    /// may still be on their way.
    pub fn run(&self, id: &str) -> Result<Option<RunMetrics>, MetricsError> {
        self.flush()?;
        self.runtime.block_on(self.backend().run(id))?
    }

    /// The id of the last DAG this runtime submitted.
    pub fn last_run_id(&self) -> Option<String> {
        self.state()
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// [`Metrics::run`] of the last DAG this runtime submitted.
    pub fn last_run(&self) -> Result<Option<RunMetrics>, MetricsError> {
        match self.last_run_id() {
            Some(id) => self.run(&id),
            None => Ok(None),
        }
    }

    /// Records this process dropped because its upload queue was full.
    pub fn dropped(&self) -> u64 {
        self.state().recorder.dropped()
    }
}

impl Runtime {
    /// Reads this runtime's metrics, when they are on
    /// ([`RuntimeBuilder::metrics`](crate::RuntimeBuilder::metrics)).
    pub fn metrics(&self) -> Option<Metrics> {
        self.inner.metrics.as_ref().map(|_| Metrics {
            runtime: self.clone(),
        })
    }
}
