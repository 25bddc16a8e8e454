//! [`MetricsStorage`]: where metrics are kept and when they are uploaded.

use std::time::Duration;

use crate::units::parse_duration;

use super::backend::{MemoryMetrics, MetricsBackend, RedisMetrics};
use super::recorder::Recorder;
use crate::error::DagError;

/// When a worker uploads the records it has queued. Whatever is chosen, a graceful shutdown
/// (the runtime dropped, a worker process's SIGTERM) uploads what is left.
///
/// What a worker killed with SIGKILL loses is what it had not uploaded yet: nothing with
/// [`Upload::EachTask`] but the record in flight, at most `n` records with [`Upload::Batch`],
/// at most the last period's with [`Upload::Every`], everything with [`Upload::OnShutdown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    /// Only when the worker shuts down.
    OnShutdown,
    /// After each task (in the background: the task's worker never waits for it).
    EachTask,
    /// Every this long.
    Every(Duration),
    /// When this many records are queued.
    Batch(usize),
}

impl Upload {
    /// Parses `shutdown`, `task`, `every:<duration>` (`500ms`, `2s`) or `batch:<n>`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use dag::metrics::Upload;
    ///
    /// assert_eq!(Upload::parse("every:500ms")?, Upload::Every(Duration::from_millis(500)));
    /// assert_eq!(Upload::parse("batch:100")?, Upload::Batch(100));
    /// assert!(Upload::parse("sometimes").is_err());
    /// # Ok::<(), dag::metrics::MetricsError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Upload, MetricsError> {
        let bad = || MetricsError::BadSetting {
            name: "upload strategy",
            value: text.to_owned(),
            expected: "shutdown, task, every:<duration> (e.g. every:2s) or batch:<n>",
        };
        match text.trim() {
            "shutdown" => Ok(Upload::OnShutdown),
            "task" => Ok(Upload::EachTask),
            other => {
                if let Some(period) = other.strip_prefix("every:") {
                    let period = parse_duration(period).ok_or_else(bad)?;
                    if period.is_zero() {
                        return Err(bad());
                    }
                    Ok(Upload::Every(period))
                } else if let Some(n) = other.strip_prefix("batch:") {
                    match n.parse::<usize>() {
                        Ok(n) if n > 0 => Ok(Upload::Batch(n)),
                        _ => Err(bad()),
                    }
                } else {
                    Err(bad())
                }
            }
        }
    }
}

impl std::fmt::Display for Upload {
    /// The form [`Upload::parse`] reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upload::OnShutdown => f.write_str("shutdown"),
            Upload::EachTask => f.write_str("task"),
            Upload::Every(period) => write!(f, "every:{}ms", period.as_millis().max(1)),
            Upload::Batch(n) => write!(f, "batch:{n}"),
        }
    }
}

/// Where records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// In this process (the embedded runtime; read with [`Runtime::metrics`](crate::Runtime::metrics)).
    Memory,
    /// The Redis of the runtime's store (memory for the embedded runtime).
    DagStore,
    /// Another Redis.
    Redis(String),
}

/// Where metrics are kept and when they are uploaded; set with
/// [`RuntimeBuilder::metrics`](crate::RuntimeBuilder::metrics), and for worker processes with
/// `DAG_METRICS` / `DAG_METRICS_UPLOAD` (see [`MetricsStorage::from_env`]).
///
/// Recording never stalls a task: records go into a bounded queue that a background thread
/// uploads; when the queue is full, records are dropped and counted (the count is reported
/// with the run).
///
/// ```
/// use std::time::Duration;
/// use dag::metrics::{MetricsStorage, Upload};
/// use dag::prelude::*;
///
/// #[task]
/// fn add(a: i64, b: i64) -> i64 { a + b }
///
/// let runtime = Runtime::builder()
///     .metrics(MetricsStorage::memory().upload(Upload::Batch(100)))
///     .build()?;
/// assert_eq!(add(1, 2).compute_on(&runtime)?, 3);
/// let run = runtime.metrics().expect("metrics are on").last_run()?.expect("one run");
/// assert!(run.run.name.ends_with("add")); // the registered name: `<module path>::add`
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsStorage {
    pub(crate) target: Target,
    pub(crate) upload: Upload,
    pub(crate) ttl: Duration,
    pub(crate) queue: usize,
}

/// Metrics keys live this long by default: a week, well beyond the DAG's own keys.
pub const DEFAULT_METRICS_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Records queued for upload before new ones are dropped, by default.
pub const DEFAULT_QUEUE: usize = 65_536;

impl MetricsStorage {
    fn with_target(target: Target) -> Self {
        MetricsStorage {
            target,
            upload: Upload::Every(Duration::from_secs(1)),
            ttl: DEFAULT_METRICS_TTL,
            queue: DEFAULT_QUEUE,
        }
    }

    /// In this process: read with [`Runtime::metrics`](crate::Runtime::metrics). The records of
    /// worker processes cannot reach it; use a Redis target for those.
    pub fn memory() -> Self {
        Self::with_target(Target::Memory)
    }

    /// In the runtime's own store: its Redis (keys `dagm:...`, with their own time to live), or
    /// this process's memory for the embedded runtime.
    pub fn dag_store() -> Self {
        Self::with_target(Target::DagStore)
    }

    /// In the Redis at `url` (keys `dagm:...`).
    pub fn redis(url: impl Into<String>) -> Self {
        Self::with_target(Target::Redis(url.into()))
    }

    /// When to upload (default: every second, and at shutdown).
    pub fn upload(mut self, upload: Upload) -> Self {
        self.upload = upload;
        self
    }

    /// How long the metrics of a run are kept in Redis (default [`DEFAULT_METRICS_TTL`]).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How many records may wait for upload before new ones are dropped (default
    /// [`DEFAULT_QUEUE`]).
    pub fn queue_capacity(mut self, records: usize) -> Self {
        self.queue = records.max(1);
        self
    }

    /// The environment that gives worker processes this storage (see [`Self::from_env`]).
    /// A [`MetricsStorage::memory`] target is this process's memory, which other processes
    /// cannot reach: their metrics are off.
    ///
    /// ```
    /// use dag::metrics::{MetricsStorage, Upload};
    ///
    /// let env = MetricsStorage::dag_store().upload(Upload::Batch(5)).worker_env();
    /// assert_eq!(env[0], ("DAG_METRICS".to_owned(), "dag".to_owned()));
    /// assert_eq!(env[1], ("DAG_METRICS_UPLOAD".to_owned(), "batch:5".to_owned()));
    /// ```
    pub fn worker_env(&self) -> Vec<(String, String)> {
        let target = match &self.target {
            Target::Memory => "off".to_owned(),
            Target::DagStore => "dag".to_owned(),
            Target::Redis(url) => url.clone(),
        };
        vec![
            ("DAG_METRICS".to_owned(), target),
            ("DAG_METRICS_UPLOAD".to_owned(), self.upload.to_string()),
            (
                "DAG_METRICS_TTL".to_owned(),
                format!("{}s", self.ttl.as_secs().max(1)),
            ),
        ]
    }

    /// The backend this storage writes to: `dag_store_url` is the Redis of the runtime's
    /// store, if it has one (otherwise the DAG store is this process's memory).
    pub fn backend(&self, dag_store_url: Option<&str>) -> std::sync::Arc<dyn MetricsBackend> {
        use std::sync::Arc;
        match (&self.target, dag_store_url) {
            (Target::Memory, _) | (Target::DagStore, None) => Arc::new(MemoryMetrics::new()),
            (Target::DagStore, Some(url)) => Arc::new(RedisMetrics::new(url, self.ttl)),
            (Target::Redis(url), _) => Arc::new(RedisMetrics::new(url.as_str(), self.ttl)),
        }
    }

    /// Starts this process's recorder for this storage (a background thread uploading through
    /// `io`), named `name` (`host:pid`). Worker processes call this; a runtime does it itself.
    pub fn start_recorder(
        &self,
        name: String,
        dag_store_url: Option<&str>,
        io: tokio::runtime::Handle,
    ) -> Result<std::sync::Arc<Recorder>, MetricsError> {
        Recorder::start(
            name,
            self.backend(dag_store_url),
            self.upload,
            self.queue,
            io,
        )
    }

    /// The storage worker processes and the examples read from their environment:
    /// `DAG_METRICS` = `off` (or unset: `None`), `dag` (the DAG's store), `memory`, or a
    /// `redis://` URL; `DAG_METRICS_UPLOAD` = an [`Upload::parse`] strategy.
    ///
    /// ```
    /// use dag::metrics::MetricsStorage;
    ///
    /// // Unset or `off`: no metrics.
    /// assert_eq!(MetricsStorage::from_env_vars(None, None)?, None);
    /// let storage = MetricsStorage::from_env_vars(Some("dag"), Some("batch:10"))?;
    /// assert!(storage.is_some());
    /// assert!(MetricsStorage::from_env_vars(Some("somewhere"), None).is_err());
    /// # Ok::<(), dag::metrics::MetricsError>(())
    /// ```
    pub fn from_env() -> Result<Option<Self>, MetricsError> {
        let metrics = std::env::var("DAG_METRICS").ok();
        let upload = std::env::var("DAG_METRICS_UPLOAD").ok();
        Self::from_env_vars(metrics.as_deref(), upload.as_deref())
    }

    /// [`MetricsStorage::from_env`] on given values.
    pub fn from_env_vars(
        metrics: Option<&str>,
        upload: Option<&str>,
    ) -> Result<Option<Self>, MetricsError> {
        let storage = match metrics.map(str::trim) {
            None | Some("") | Some("off") | Some("0") => return Ok(None),
            Some("dag") | Some("1") | Some("on") => Self::dag_store(),
            Some("memory") => Self::memory(),
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                Self::redis(url)
            }
            Some(other) => {
                return Err(MetricsError::BadSetting {
                    name: "DAG_METRICS",
                    value: other.to_owned(),
                    expected: "off, dag, memory or a redis:// URL",
                })
            }
        };
        let storage = match upload {
            Some(upload) => storage.upload(Upload::parse(upload)?),
            None => storage,
        };
        let ttl = std::env::var("DAG_METRICS_TTL").ok();
        Ok(Some(match ttl.as_deref().map(|t| (t, parse_duration(t))) {
            None => storage,
            Some((_, Some(ttl))) if !ttl.is_zero() => storage.ttl(ttl),
            Some((text, _)) => {
                return Err(MetricsError::BadSetting {
                    name: "DAG_METRICS_TTL",
                    value: text.to_owned(),
                    expected: "a duration in s, m or h, e.g. 168h",
                })
            }
        }))
    }
}

/// Why metrics could not be configured, stored or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A setting has a value that means nothing.
    #[error("{name} = {value:?} is not valid: expected {expected}")]
    BadSetting {
        /// The setting.
        name: &'static str,
        /// What it was set to.
        value: String,
        /// What it accepts.
        expected: &'static str,
    },
    /// The metrics store failed.
    #[error("metrics store: {0}")]
    Store(#[from] DagError),
    /// Stored metrics could not be decoded (written by another version of dag?).
    #[error("metrics record {key} could not be decoded: {message}")]
    Decode {
        /// The key it was read from.
        key: String,
        /// The decoder's message.
        message: String,
    },
}
