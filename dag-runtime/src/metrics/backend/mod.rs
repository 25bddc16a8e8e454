//! Where metrics are kept: [`MetricsBackend`], in this process ([`MemoryMetrics`]) or in Redis
//! ([`RedisMetrics`]).

mod memory;
mod redis;

pub use memory::MemoryMetrics;
pub use redis::RedisMetrics;

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::digest::Digest;
use super::record::{RunRecord, TaskRecord, WorkerRecord};
use super::storage::MetricsError;

/// The DAG a record is filed under: a map's child DAG `<parent>.<node>` files under its root,
/// so one run's metrics are read together.
pub fn root_of(dag: &str) -> &str {
    dag.split('.').next().unwrap_or(dag)
}

/// What one upload carries, from one recorder (one process's workers).
#[derive(Debug, Default)]
pub struct Batch {
    /// The recorder (`host:pid`): digests are kept per recorder and per run, and replaced by
    /// each upload (they are cumulative).
    pub recorder: String,
    /// New task records, in the order they were recorded, in chunks (the recorder moves
    /// records once, into chunks that never grow; an in-memory backend keeps the chunks).
    pub tasks: Vec<Vec<TaskRecord>>,
    /// The recorder's cumulative digest of each run (by root DAG id) it recorded tasks of since
    /// the last upload.
    pub digests: BTreeMap<String, Digest>,
    /// The recorder's workers, as of now.
    pub workers: Vec<WorkerRecord>,
}

impl Batch {
    /// The task records, in order.
    pub fn task_records(&self) -> impl Iterator<Item = &TaskRecord> {
        self.tasks.iter().flatten()
    }
}

/// Everything recorded of one run.
#[derive(Debug, Clone)]
pub struct RunMetrics {
    /// The run as its client recorded it.
    pub run: RunRecord,
    /// Every task attempt recorded (of the DAG and its maps' child DAGs), by start time.
    pub tasks: Vec<TaskRecord>,
    /// The digests of every recorder, merged.
    pub digest: Digest,
    /// The workers that ran its tasks.
    pub workers: Vec<WorkerRecord>,
}

/// A place for metrics. Writes come from a background thread; reads from the CLI, the
/// examples' summaries and the dashboard.
#[async_trait]
pub trait MetricsBackend: Send + Sync + 'static {
    /// Stores one upload (taken by value: an in-memory backend keeps its records as they are).
    async fn put(&self, batch: Batch) -> Result<(), MetricsError>;
    /// Stores (replaces) a run's record, indexed by submission time.
    async fn put_run(&self, run: &RunRecord) -> Result<(), MetricsError>;
    /// The `limit` most recently submitted runs, newest first.
    async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, MetricsError>;
    /// Everything recorded of run `id`, `None` if there is no such run.
    async fn run(&self, id: &str) -> Result<Option<RunMetrics>, MetricsError>;
    /// The digest of each run of `ids` (every recorder's, merged), in order: what `dag runs`
    /// counts and what the percentiles across runs of one graph merge, without reading any
    /// task record. Empty for a run with nothing uploaded.
    async fn digests(&self, ids: &[String]) -> Result<Vec<Digest>, MetricsError>;
    /// Removes the runs older than the metrics' time to live (Redis expires their keys on its
    /// own; this removes them from the index too). Returns how many runs were removed.
    async fn gc(&self) -> Result<usize, MetricsError>;
}
