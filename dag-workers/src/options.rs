//! What a worker process does, from its flags and environment.

use dag_runtime::metrics::MetricsStorage;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dag_runtime::store::{DagId, RedisAddress, DEFAULT_OUTPUT_CACHE, DEFAULT_STREAM};
use dag_runtime::{Locality, REDIS_MAX_DEFAULT_WORKERS, REDIS_WORKERS_PER_CORE};

use crate::env;

/// What a worker process does, from its flags and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerOptions {
    /// The Redis server, or Redis Cluster, holding the DAGs and the stream.
    pub redis: RedisAddress,
    /// The invocation stream's key.
    pub stream: String,
    /// Threads reading the stream.
    pub concurrency: usize,
    /// Run only this invocation and exit (one process per invocation).
    pub invocation: Option<(DagId, u32)>,
    /// When the parent started this process (for the cold start).
    pub spawned_at: Option<SystemTime>,
    /// Stop when this process is no longer our parent.
    pub parent_pid: Option<u32>,
    /// How long an invocation may go without a sign of life from its worker before another
    /// worker claims and re-runs it (default [`DEFAULT_LEASE`]). A running worker renews the
    /// lease of what it runs every third of this, so only a dead or stuck worker loses one.
    pub lease: Duration,
    /// For one process per invocation: the claim it runs under (the launcher's stream entry
    /// id), so that a re-launch after a crash gets back the children the dead one made ready.
    pub claim: String,
    /// How long a stopping worker (SIGTERM, Ctrl-C) waits for the invocations it runs before
    /// it exits anyway, leaving them to be taken over by other workers after their lease
    /// (default [`DEFAULT_GRACE`]): a task that blocks forever cannot keep it alive.
    pub grace: Duration,
    /// Where this worker's task metrics go (`DAG_METRICS`, `DAG_METRICS_UPLOAD`,
    /// `DAG_METRICS_TTL`); `None`: metrics off. The runtime that starts worker processes
    /// passes its own [`MetricsStorage`] on.
    pub metrics: Option<MetricsStorage>,
    /// Task clustering and delayed I/O of large outputs (`DAG_LARGE_OUTPUT`, `DAG_CLUSTERING`,
    /// `DAG_DELAYED_IO`). The runtime that starts worker processes passes its own on.
    pub locality: Locality,
    /// Bytes of large outputs this process keeps in memory for its later tasks
    /// (`DAG_OUTPUT_CACHE`, bytes or with a unit; default
    /// [`DEFAULT_OUTPUT_CACHE`](dag_runtime::store::DEFAULT_OUTPUT_CACHE), 0: off).
    pub output_cache: usize,
}

/// The default [`WorkerOptions::lease`]: how soon the invocation of a dead worker is re-run.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// The default [`WorkerOptions::grace`]: how long a stopping worker waits for its invocations.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

impl WorkerOptions {
    /// Options for a worker of the pool at `redis_url` on the default stream, with the default
    /// concurrency.
    pub fn new(redis_url: impl Into<String>) -> Self {
        WorkerOptions {
            redis: RedisAddress::Server(redis_url.into()),
            stream: DEFAULT_STREAM.to_owned(),
            concurrency: default_concurrency(),
            invocation: None,
            spawned_at: None,
            parent_pid: None,
            lease: DEFAULT_LEASE,
            claim: String::new(),
            grace: DEFAULT_GRACE,
            metrics: None,
            locality: Locality::default(),
            output_cache: DEFAULT_OUTPUT_CACHE,
        }
    }

    /// Sets how long a stopping worker waits for the invocations it runs.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Sets the lease after which another worker re-runs a dead worker's invocation.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(1));
        self
    }

    /// Sets the number of threads reading the stream.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Serves the DAGs of `redis` (a server or a cluster) instead.
    pub fn redis(mut self, redis: RedisAddress) -> Self {
        self.redis = redis;
        self
    }

    /// Sets the stream's key.
    pub fn stream(mut self, key: impl Into<String>) -> Self {
        self.stream = key.into();
        self
    }
}

/// The default `--concurrency`: like a client runtime on Redis,
/// [`REDIS_WORKERS_PER_CORE`] threads per core, at most [`REDIS_MAX_DEFAULT_WORKERS`] (a worker
/// spends most of a small task waiting for round trips).
pub fn default_concurrency() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    (cores * REDIS_WORKERS_PER_CORE).min(REDIS_MAX_DEFAULT_WORKERS)
}

/// The worker options, as printed when they are wrong.
pub const USAGE: &str = "\
worker options: --dag-worker [--redis URL | --redis-cluster URL,URL,...] [--concurrency N] [--stream KEY] [--lease 10s] [--grace 30s]
  or the environment: DAG_WORKER=1 DAG_REDIS_URL=URL (or DAG_REDIS_CLUSTER=URL,URL,...) DAG_CONCURRENCY=N DAG_STREAM=KEY DAG_LEASE=10s DAG_GRACE=30s";

/// Whether this process was started as a worker, and with what options.
///
/// `None`: not a worker (neither `--dag-worker` among `args` nor `DAG_WORKER=1`). `Some(Err)`:
/// a worker whose options are wrong (the message says which). Flags win over the environment.
pub fn worker_options<I, S>(
    args: I,
    env: impl Fn(&str) -> Option<String>,
) -> Option<Result<WorkerOptions, String>>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let args: Vec<String> = args.into_iter().map(Into::into).collect();
    let flagged = args.iter().skip(1).any(|a| a == "--dag-worker");
    let by_env = env(env::WORKER).is_some_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    if !flagged && !by_env {
        return None;
    }
    Some(parse_options(&args, env))
}

fn parse_options(
    args: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<WorkerOptions, String> {
    let (mut url, mut cluster, mut stream, mut concurrency, mut lease, mut grace) =
        (None, None, None, None, None, None);
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| rest.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag {
            "--dag-worker" => {}
            "--redis" => url = Some(value("--redis")?),
            "--redis-cluster" => cluster = Some(value("--redis-cluster")?),
            "--stream" => stream = Some(value("--stream")?),
            "--concurrency" => concurrency = Some(value("--concurrency")?),
            "--lease" => lease = Some(value("--lease")?),
            "--grace" => grace = Some(value("--grace")?),
            other => {
                return Err(format!(
                    "unknown worker option `{other}` (a worker takes only these)"
                ))
            }
        }
    }
    let redis = crate::address::redis_choice(url.as_deref(), cluster.as_deref(), &env)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            "a worker needs the Redis server: --redis URL or DAG_REDIS_URL (or a Redis Cluster: \
             --redis-cluster URL,URL,... or DAG_REDIS_CLUSTER)"
                .to_owned()
        })?;
    let concurrency = match concurrency.or_else(|| env(env::CONCURRENCY)) {
        None => default_concurrency(),
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("the concurrency must be a positive integer, not {n:?}"))?,
    };
    let lease = match lease.or_else(|| env(env::LEASE)) {
        None => DEFAULT_LEASE,
        Some(text) => parse_duration(&text)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                format!("the lease must be a duration like `10s` or `500ms`, not {text:?}")
            })?,
    };
    let grace = match grace.or_else(|| env(env::GRACE)) {
        None => DEFAULT_GRACE,
        Some(text) => parse_duration(&text).ok_or_else(|| {
            format!("the grace period must be a duration like `30s` or `0s`, not {text:?}")
        })?,
    };
    let (invocation, claim) = match env(env::INVOCATION) {
        None => (None, String::new()),
        Some(text) => {
            let mut parts = text.split(' ');
            let parsed = match (parts.next(), parts.next().map(str::parse::<u32>)) {
                (Some(dag), Some(Ok(node))) if !dag.is_empty() => Some((DagId::from(dag), node)),
                _ => None,
            };
            let invocation = parsed.ok_or_else(|| {
                format!(
                    "{} must be `<dag id> <node> [<claim>]`, not {text:?}",
                    env::INVOCATION
                )
            })?;
            (Some(invocation), parts.next().unwrap_or("").to_owned())
        }
    };
    let spawned_at = env(env::SPAWNED_AT_US)
        .and_then(|us| us.parse::<u64>().ok())
        .map(|us| UNIX_EPOCH + Duration::from_micros(us));
    Ok(WorkerOptions {
        redis,
        stream: stream
            .or_else(|| env(env::STREAM))
            .unwrap_or_else(|| DEFAULT_STREAM.to_owned()),
        concurrency,
        invocation,
        spawned_at,
        parent_pid: env(env::PARENT_PID).and_then(|p| p.parse().ok()),
        lease,
        claim,
        grace,
        metrics: MetricsStorage::from_env().map_err(|e| e.to_string())?,
        locality: Locality::from_env()?,
        output_cache: match env(env::OUTPUT_CACHE) {
            None => DEFAULT_OUTPUT_CACHE,
            Some(text) => dag_runtime::units::parse_size(&text).ok_or_else(|| {
                format!(
                    "{} must be a size in bytes, optionally with a unit (512MiB), or 0 \
                     to turn the cache off; not {text:?}",
                    env::OUTPUT_CACHE
                )
            })?,
        },
    })
}

/// `500ms`, `10s` or `2m`: stricter than `dag_runtime::units::parse_duration`, since a lease
/// or grace period without a unit is more likely a mistake than seconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(number)),
        "s" => Some(Duration::from_secs(number)),
        "m" => Some(Duration::from_secs(number.checked_mul(60)?)),
        _ => None,
    }
}
