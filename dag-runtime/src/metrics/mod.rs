//! Metrics: what every task attempt did, digested into percentiles, stored on the user's
//! schedule.
//!
//! | module | owns |
//! | --- | --- |
//! | `record` | [`TaskRecord`] (one task attempt), [`RunRecord`] (one DAG), [`WorkerRecord`] |
//! | `digest` | [`Digest`]: DDSketches per task name, mergeable across workers and runs |
//! | `storage` | [`MetricsStorage`]: where records go and when ([`Upload`]) |
//! | `backend` | [`MetricsBackend`]: in memory ([`MemoryMetrics`]) or in Redis ([`RedisMetrics`]) |
//! | `recorder` | the bounded queue and background uploader of one process |
//! | `timer` | what the worker step measures, phase by phase |
//! | `report` | a run's summary: makespan, bytes, critical path, percentiles per task |
//!
//! Recording stays off the hot path: a worker measures its phases with `Instant`s, sends one
//! record per attempt into a bounded queue (dropping and counting when it is full), and a
//! background thread digests and uploads them. With metrics off, nothing is measured.

mod backend;
mod digest;
mod record;
mod recorder;
mod report;
mod storage;
mod timer;

pub use backend::{root_of, Batch, MemoryMetrics, MetricsBackend, RedisMetrics, RunMetrics};
pub use digest::{Digest, Sketch, Stats, TaskDigest, RELATIVE_ERROR};
pub use record::{
    now_us, InputRecord, InputRecords, Kept, Outcome, RunRecord, RunState, TaskRecord, WorkerRecord,
};
pub use recorder::Recorder;
pub use report::{
    rfc3339, task_stats, AttemptReport, History, PathStep, RunReport, TaskStats, WorkerReport,
    SLOWEST_KEPT,
};
pub use storage::{MetricsError, MetricsStorage, Upload, DEFAULT_METRICS_TTL, DEFAULT_QUEUE};

pub(crate) use timer::Placed;
pub use timer::WorkerMetrics;
pub(crate) use timer::{shared_task_name, AttemptEnd, TaskTimer};
