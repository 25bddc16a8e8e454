//! Where the dashboard's answers come from: the runs' metrics (`dagm:` keys, through
//! [`RedisMetrics`]) and, while a run goes, its DAG's own keys (through
//! [`RedisStore::inspect`]). Connections are opened on first use and again after a failure, so
//! the dashboard starts, and its pages explain, while Redis is down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dag::metrics::{MetricsBackend, RedisMetrics, RunReport, RunState, DEFAULT_METRICS_TTL};
use dag::store::{DagId, RedisConfig, RedisStore};
use serde::Serialize;
use tokio::sync::Mutex;

use super::graph::{self, GraphView};
use crate::error::addr_of;
use crate::runs::{self, RunRow};

/// The longest a request may wait on Redis before the page is told it is failing. Generous:
/// reading the records of a run of a million tasks takes seconds. A Redis that refuses
/// connections is reported at once (see [`Sources::bounded`]).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an answer could not be given.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// No such run in the metrics.
    #[error(
        "no run {0:?}: it may have expired (metrics are kept a week), or it ran without metrics \
         turned on"
    )]
    NoSuchRun(String),
    /// Redis failed or did not answer.
    #[error("Redis at {addr} is unreachable or failing ({message}); the page retries on its own")]
    Unavailable {
        /// `host:port`.
        addr: String,
        /// What failed.
        message: String,
    },
}

/// One run, as `/api/runs/{id}` serves it.
#[derive(Debug, Serialize)]
pub struct RunView {
    pub run: RunRow,
    /// The metrics digested: summary, percentiles per task, critical path, workers.
    pub report: RunReport,
    pub graph: GraphView,
    /// Every attempt recorded (for the timeline), in start order: at most
    /// [`TIMELINE_ATTEMPTS`], the longest kept when there are more.
    pub timeline: Vec<TimelineBar>,
    /// Whether `timeline` had to leave attempts out.
    pub timeline_truncated: bool,
}

/// At most this many attempts are drawn on a run's timeline.
pub const TIMELINE_ATTEMPTS: usize = 5_000;

/// One attempt on the timeline of its worker.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineBar {
    pub worker: String,
    pub dag: String,
    pub node: u32,
    pub task: String,
    pub start_us: u64,
    pub end_us: u64,
    pub fetch_us: u64,
    pub run_us: u64,
    pub store_us: u64,
    pub ok: bool,
}

/// The dashboard's view of one Redis.
pub struct Sources {
    url: String,
    metrics: RedisMetrics,
    /// The DAG store's client, for snapshots of running DAGs; opened on first use.
    store: Mutex<Option<RedisStore>>,
    /// Whether Redis answered since the last failure. Until it has, each request first checks
    /// with a `PING` of its own, which fails at once on a refused connection, where the
    /// metrics' client would retry for seconds.
    reachable: AtomicBool,
}

impl Sources {
    pub fn new(url: String) -> Sources {
        Sources {
            metrics: RedisMetrics::new(url.clone(), DEFAULT_METRICS_TTL),
            url,
            store: Mutex::new(None),
            reachable: AtomicBool::new(false),
        }
    }

    /// `host:port` of the Redis, without its password.
    pub fn addr(&self) -> String {
        addr_of(&self.url)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn unavailable(&self, message: impl ToString) -> SourceError {
        SourceError::Unavailable {
            addr: self.addr(),
            message: message.to_string(),
        }
    }

    /// Bounds `future` by [`REQUEST_TIMEOUT`], after checking that Redis answers if it did not
    /// last time.
    async fn bounded<T>(
        &self,
        future: impl std::future::Future<Output = Result<T, SourceError>>,
    ) -> Result<T, SourceError> {
        let checked = async {
            if !self.reachable.load(Ordering::Relaxed) {
                crate::connection::connect(&self.url)
                    .await
                    .map_err(|e| self.unavailable(e))?;
                self.reachable.store(true, Ordering::Relaxed);
            }
            future.await
        };
        let result = tokio::time::timeout(REQUEST_TIMEOUT, checked)
            .await
            .map_err(|_| self.unavailable(format!("no answer in {} s", REQUEST_TIMEOUT.as_secs())))
            .and_then(|result| result);
        if let Err(SourceError::Unavailable { .. }) = &result {
            self.reachable.store(false, Ordering::Relaxed);
        }
        result
    }

    /// The `limit` most recent runs, newest first.
    pub async fn runs(&self, limit: usize) -> Result<Vec<RunRow>, SourceError> {
        self.bounded(async {
            runs::rows(&self.metrics, limit)
                .await
                .map_err(|e| self.unavailable(e))
        })
        .await
    }

    /// Run `id`: its record, report, graph and timeline.
    pub async fn run(&self, id: &str) -> Result<RunView, SourceError> {
        self.bounded(async {
            let metrics = self
                .metrics
                .run(id)
                .await
                .map_err(|e| self.unavailable(e))?
                .ok_or_else(|| SourceError::NoSuchRun(id.to_owned()))?;
            let report = RunReport::new(&metrics);
            let snapshot = self.snapshot(id).await?;
            // The critical path is the one that determined the makespan: marked once there is one.
            let ended = metrics.run.state != RunState::Running;
            let critical_path = if ended {
                &report.critical_path_steps[..]
            } else {
                &[]
            };
            let graph = graph::build(
                id,
                snapshot.as_ref(),
                &metrics.tasks,
                critical_path,
                metrics.run.error.as_deref(),
            );
            let counts = runs::Counts::of(&metrics.digest);
            let (timeline, timeline_truncated) = timeline(&metrics.tasks);
            Ok(RunView {
                run: RunRow::new(&metrics.run, counts),
                report,
                graph,
                timeline,
                timeline_truncated,
            })
        })
        .await
    }

    /// The store's snapshot of DAG `id` if it is running.
    async fn snapshot(&self, id: &str) -> Result<Option<dag::store::DagSnapshot>, SourceError> {
        let mut store = self.store.lock().await;
        if store.is_none() {
            let config = RedisConfig {
                connect_timeout: Duration::from_secs(2),
                ..RedisConfig::default()
            };
            let opened = RedisStore::connect_with(&self.url, config)
                .await
                .map_err(|e| self.unavailable(e))?;
            *store = Some(opened);
        }
        let result = store
            .as_ref()
            .expect("opened above")
            .inspect(&DagId::from(id))
            .await;
        result.map_err(|e| {
            // Open it again next time: the server may have restarted.
            *store = None;
            self.unavailable(e)
        })
    }
}

fn timeline(records: &[dag::metrics::TaskRecord]) -> (Vec<TimelineBar>, bool) {
    let mut chosen: Vec<&dag::metrics::TaskRecord> = records.iter().collect();
    let truncated = chosen.len() > TIMELINE_ATTEMPTS;
    if truncated {
        chosen.sort_by_key(|r| std::cmp::Reverse(r.end_us.saturating_sub(r.start_us)));
        chosen.truncate(TIMELINE_ATTEMPTS);
    }
    chosen.sort_by_key(|r| r.start_us);
    let bars = chosen
        .into_iter()
        .map(|r| TimelineBar {
            worker: r.worker.to_string(),
            dag: r.dag.to_string(),
            node: r.node,
            task: r.task.to_string(),
            start_us: r.start_us,
            end_us: r.end_us,
            fetch_us: r.fetch_us,
            run_us: r.run_us,
            store_us: r.store_us,
            ok: r.outcome == dag::metrics::Outcome::Ok,
        })
        .collect();
    (bars, truncated)
}
