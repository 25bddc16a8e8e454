//! The command-line flags of examples and tools: `--redis URL` or `--redis-cluster URL,...`,
//! `--workers N`.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use dag_runtime::metrics::{MetricsStorage, RunReport};
use dag_runtime::{DagError, Locality, Runtime};

/// Builds the runtime an example or tool asked for on its command line, removing the flags it
/// used from `args`:
///
/// - `--redis URL` (or `DAG_REDIS_URL`): DAG state in Redis, invocations to the worker pool
///   serving `dag:invocations` (started by hand with `--dag-worker`);
/// - `--redis-cluster URL,URL,...` (or `DAG_REDIS_CLUSTER`): the same on a Redis Cluster,
///   named by some of its nodes (not together with `--redis`: that is a
///   [`RedisChoiceError`](crate::RedisChoiceError));
/// - `--workers N` with a Redis URL: start `N` worker processes of this executable instead
///   (`--workers 0`: run the tasks on threads of this process, state in Redis);
/// - neither: the embedded runtime.
///
/// Metrics are on, in the DAG's store (Redis, or this process's memory), unless
/// `DAG_METRICS` says otherwise (see [`MetricsStorage::from_env`]; `DAG_METRICS=off` turns them
/// off); [`print_run_summary`] prints what they recorded. A progress bar is shown when stderr
/// is a terminal.
///
/// ```no_run
/// let mut args: Vec<String> = std::env::args().collect();
/// let runtime = dag::worker::runtime_from_args(&mut args)?;
/// # Ok::<(), dag::DagError>(())
/// ```
pub fn runtime_from_args(args: &mut Vec<String>) -> Result<Runtime, DagError> {
    let mut url = None;
    let mut cluster = None;
    let mut workers = None;
    let mut i = 0;
    while i < args.len() {
        let (flag, inline) = match args[i].split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (args[i].clone(), None),
        };
        if flag != "--redis" && flag != "--redis-cluster" && flag != "--workers" {
            i += 1;
            continue;
        }
        args.remove(i);
        let value = match inline {
            Some(value) => value,
            None if i < args.len() => args.remove(i),
            None => return Err(DagError::Runtime(format!("{flag} needs a value"))),
        };
        if flag == "--redis" {
            url = Some(value);
        } else if flag == "--redis-cluster" {
            cluster = Some(value);
        } else {
            workers = Some(value.parse::<usize>().map_err(|_| {
                DagError::Runtime(format!("--workers takes a number, not {value:?}"))
            })?);
        }
    }
    let redis = crate::address::redis_choice(url.as_deref(), cluster.as_deref(), |name| {
        std::env::var(name).ok()
    })
    .map_err(|e| DagError::Runtime(e.to_string()))?;
    let metrics = match std::env::var_os("DAG_METRICS") {
        None => Some(MetricsStorage::dag_store()),
        Some(_) => MetricsStorage::from_env().map_err(|e| DagError::Runtime(e.to_string()))?,
    };
    let locality = Locality::from_env().map_err(DagError::Runtime)?;
    let mut builder = Runtime::builder()
        .progress(std::io::stderr().is_terminal())
        .locality(locality);
    if let Some(metrics) = metrics {
        builder = builder.metrics(metrics);
    }
    match (redis, workers) {
        (None, None) => builder.build(),
        (None, Some(_)) => Err(DagError::Runtime(
            "--workers starts worker processes, which share DAGs through Redis: give --redis URL \
             (or DAG_REDIS_URL, or a cluster: --redis-cluster URL,URL,...) too"
                .into(),
        )),
        (Some(redis), None) => builder.redis_address(redis).worker_pool().build(),
        (Some(redis), Some(0)) => builder.redis_address(redis).build(),
        (Some(redis), Some(n)) => builder.redis_address(redis).spawn_workers(n).build(),
    }
}

/// Prints what the metrics recorded of `runtime`'s last run (its summary, percentiles per task,
/// critical path: see [`RunReport`]) to stderr, so that stdout stays the program's, if metrics
/// are on. Records of worker processes arrive on their upload schedule: this waits up to two
/// seconds for every task of the plan.
///
/// ```no_run
/// # use dag::prelude::*;
/// # #[task] fn one() -> u64 { 1 }
/// let mut args: Vec<String> = std::env::args().collect();
/// let runtime = dag::worker::runtime_from_args(&mut args)?;
/// one().compute_on(&runtime)?;
/// dag::worker::print_run_summary(&runtime);
/// # Ok::<(), dag::DagError>(())
/// ```
pub fn print_run_summary(runtime: &Runtime) {
    let Some(metrics) = runtime.metrics() else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match metrics.last_run() {
            Ok(Some(run)) => {
                let tasks: BTreeSet<(&str, u32)> =
                    run.tasks.iter().map(|t| (&*t.dag, t.node)).collect();
                if tasks.len() as u64 >= run.run.nodes || Instant::now() >= deadline {
                    eprintln!("\n{}", RunReport::new(&run));
                    return;
                }
            }
            Ok(None) => return,
            Err(error) => {
                eprintln!("metrics: {error}");
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
