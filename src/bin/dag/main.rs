//! `dag`: reads what dag runs recorded (their metrics, in Redis) and cleans up after them.
//!
//! ```text
//! dag runs [--limit N] [--json]     recent runs, newest first
//! dag show <id> [--json]            one run: summary, critical path, percentiles per task
//! dag gc                            removes expired runs' metrics and expired DAGs
//! dag dashboard [--bind ADDR]       serves the runs' live graphs and metrics to a browser
//! ```
//!
//! Every command reads the Redis of `--redis URL` or `DAG_REDIS_URL`; `gc` also works on a
//! Redis Cluster (`--redis-cluster URL,URL,...` or `DAG_REDIS_CLUSTER`). Errors go to stderr with
//! exit code 1; output goes to stdout (a closed pipe, as with `| head`, is not an error).
//!
//! | module | owns |
//! | --- | --- |
//! | `args` | the command line (clap) |
//! | `connection` | the CLI's own Redis connection, checked before anything else |
//! | `runs`, `show`, `gc` | one command each |
//! | `dashboard` | `dag dashboard`: the web UI, its JSON API and live updates |
//! | `table` | aligned text columns |
//! | `error` | [`CliError`]: what went wrong and what to try |

mod args;
mod connection;
mod dashboard;
mod error;
mod gc;
mod runs;
mod show;
mod table;

use std::io::{ErrorKind, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use dag::metrics::{RedisMetrics, DEFAULT_METRICS_TTL};
use dag::store::{RedisAddress, Store};

use crate::args::{Cli, Command};
use crate::error::{addr_of, CliError};

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dag: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let redis = cli.redis.filter(|url| !url.trim().is_empty());
    let cluster = cli.redis_cluster.filter(|urls| !urls.trim().is_empty());
    let url = match dag::worker::redis_choice(redis.as_deref(), cluster.as_deref(), |_| None)? {
        None => return Err(CliError::NoRedis),
        Some(RedisAddress::Server(url)) => url,
        Some(cluster @ RedisAddress::Cluster(_)) => {
            return run_on_cluster(cli.command, &cluster, cli.timeout)
        }
    };
    if let Command::Dashboard { bind, token } = cli.command {
        // Long-running, and it must start (and say why pages fail) while Redis is down.
        return dashboard::serve(url, &bind, token);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let metrics = RedisMetrics::new(url.clone(), DEFAULT_METRICS_TTL);
    let command = async {
        // Its own PING first: a refused connection is reported at once.
        connection::connect(&url).await?;
        match cli.command {
            Command::Runs { limit, json } => runs::runs(&metrics, limit, json).await,
            Command::Show { id, json } => show::show(&metrics, &url, &id, json).await,
            Command::Gc => gc::gc(&metrics, &url).await,
            Command::Dashboard { .. } => unreachable!("served above"),
        }
    };
    // One deadline for the whole command: a Redis that accepts connections but never answers
    // (or a client that reconnects on its own) must not hang a script.
    let timeout = Duration::from_secs(cli.timeout);
    let output = runtime
        .block_on(async { tokio::time::timeout(timeout, command).await })
        .map_err(|_| CliError::TimedOut {
            addr: addr_of(&url),
            secs: cli.timeout,
        })??;
    print(&output)
}

/// `dag gc` on a Redis Cluster (the other commands read metrics, which a cluster does not keep).
fn run_on_cluster(command: Command, cluster: &RedisAddress, secs: u64) -> Result<(), CliError> {
    match command {
        Command::Gc => {}
        Command::Runs { .. } => return Err(CliError::NotOnCluster { command: "runs" }),
        Command::Show { .. } => return Err(CliError::NotOnCluster { command: "show" }),
        Command::Dashboard { .. } => {
            return Err(CliError::NotOnCluster {
                command: "dashboard",
            })
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let gc = async {
        let store = cluster.connect(Default::default()).await?;
        let dags = store.gc().await?;
        Ok::<_, CliError>(format!(
            "removed {dags} expired DAG{} from the store at {}\n",
            if dags == 1 { "" } else { "s" },
            store.addr()
        ))
    };
    let output = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(secs), gc).await })
        .map_err(|_| CliError::TimedOut {
            addr: cluster.to_string(),
            secs,
        })??;
    print(&output)
}

fn print(output: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(CliError::Output(e)),
        _ => Ok(()),
    }
}
