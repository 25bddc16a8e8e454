//! [`CliError`]: why a command failed, worded for the person who ran it.

use dag::metrics::MetricsError;
use dag::DagError;

/// Why a command failed; printed after `dag: ` on stderr, with exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Neither `--redis` nor `DAG_REDIS_URL`.
    #[error(
        "no Redis to read from: pass --redis redis://HOST:PORT or set DAG_REDIS_URL \
         (the Redis your runtimes record metrics in)"
    )]
    NoRedis,
    /// `--redis` and `--redis-cluster` (or their variables) both given.
    #[error("{0}")]
    RedisChoice(#[from] dag::worker::RedisChoiceError),
    /// A command that reads metrics, on a Redis Cluster.
    #[error(
        "`dag {command}` reads metrics, and metrics are not kept on a Redis Cluster yet \
         (runtimes on a cluster keep them in their process); only `dag gc` works with \
         --redis-cluster / DAG_REDIS_CLUSTER"
    )]
    NotOnCluster {
        /// The command given.
        command: &'static str,
    },
    /// `dag show` of an id with no metrics.
    #[error(
        "no run {id:?} in the metrics at {addr}: it may have expired (metrics are kept a week), \
         or it ran without metrics turned on; `dag runs` lists the runs kept"
    )]
    NoSuchRun {
        /// The id asked for.
        id: String,
        /// The Redis searched.
        addr: String,
    },
    /// A prefix that matches several runs.
    #[error("{prefix:?} is the start of several runs' ids ({}): give more of the id", matches.join(", "))]
    AmbiguousRun {
        /// The prefix given.
        prefix: String,
        /// The ids it matches.
        matches: Vec<String>,
    },
    /// Reading or removing metrics failed.
    #[error("{0}")]
    Metrics(#[from] MetricsError),
    /// The DAG store failed (`dag gc`).
    #[error("DAG store: {0}")]
    Store(#[from] DagError),
    /// Redis failed outside the metrics backend (reading the runs' digests).
    #[error("Redis at {addr}: {message}")]
    Redis {
        /// `host:port`, never the password.
        addr: String,
        /// What failed.
        message: String,
    },
    /// The command ran past `--timeout`.
    #[error(
        "no answer from Redis at {addr} within {secs} s: is it running and is the URL right? \
         (--timeout SECONDS waits longer)"
    )]
    TimedOut {
        /// `host:port`.
        addr: String,
        /// The timeout.
        secs: u64,
    },
    /// `dag dashboard` could not listen on its address.
    #[error("could not listen on {bind}: {error} (is another dashboard running there? --bind HOST:PORT picks another address)")]
    Bind {
        /// The address asked for.
        bind: String,
        /// Why.
        error: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("could not start the I/O runtime: {0}")]
    Runtime(std::io::Error),
    /// Writing to stdout failed.
    #[error("could not write the output: {0}")]
    Output(std::io::Error),
}

/// `host:port` of a Redis URL, without the password, for messages.
pub fn addr_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split('/').next().unwrap_or(rest).to_owned()
}
