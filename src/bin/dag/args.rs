//! The command line, as clap parses it.

use clap::{Parser, Subcommand};

/// Reads the metrics of dag runs from Redis, and cleans up after old runs.
///
/// Metrics are recorded by runtimes built with `.metrics(MetricsStorage::dag_store())` (or
/// `MetricsStorage::redis(url)`) and by worker processes with `DAG_METRICS=dag`.
#[derive(Debug, Parser)]
#[command(name = "dag", version)]
pub struct Cli {
    /// The Redis that holds the metrics (and the DAGs, for `gc`), e.g. redis://127.0.0.1:6379.
    #[arg(long, env = "DAG_REDIS_URL", global = true, value_name = "URL")]
    pub redis: Option<String>,

    /// A Redis Cluster holding the DAGs instead: the URLs of some of its nodes, separated by
    /// commas. Only `gc` works on a cluster so far (metrics are not kept on one yet).
    #[arg(
        long,
        env = "DAG_REDIS_CLUSTER",
        global = true,
        value_name = "URL,URL,..."
    )]
    pub redis_cluster: Option<String>,

    /// Give up on a command (and Redis) after this many seconds.
    #[arg(long, global = true, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Lists recent runs, newest first: id, name, state, start, makespan, tasks, failures.
    Runs {
        /// How many runs to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Shows one run: summary, critical path, percentiles per task, bytes moved, slowest
    /// attempts and errors.
    Show {
        /// The run's id (a unique prefix of it is enough).
        id: String,
        /// Print a JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Removes the metrics of runs older than their time to live (a week) and the DAGs
    /// older than the store's (a day) that are not running.
    Gc,
    /// Serves the dashboard: recent runs, and each run's live graph and metrics, in the
    /// browser (read-only).
    Dashboard {
        /// Where to listen. The default serves this machine only; another address serves
        /// everyone who can reach it, so give it a --token.
        #[arg(long, default_value = "127.0.0.1:8787", value_name = "HOST:PORT")]
        bind: String,
        /// A secret every request must carry (`?token=...` in the page's address, or an
        /// `Authorization: Bearer ...` header for scripts).
        #[arg(long, env = "DAG_DASHBOARD_TOKEN", value_name = "TOKEN")]
        token: Option<String>,
    },
}
