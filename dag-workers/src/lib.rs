//! Worker processes for `dag`: the same binary as client and as a pool of workers.
//!
//! A program's `main` calls [`run_if_worker`] first. Started normally, the call returns and the
//! program is a client; started as a worker (`--dag-worker` or `DAG_WORKER=1`), it serves
//! invocations from a Redis Stream until SIGTERM or Ctrl-C and then exits the process:
//!
//! ```no_run
//! use dag::prelude::*;
//!
//! #[task]
//! fn add(a: i64, b: i64) -> i64 { a + b }
//!
//! fn main() -> Result<(), DagError> {
//!     dag::worker::run_if_worker();
//!     let runtime = Runtime::builder().redis("redis://127.0.0.1:6379").worker_pool().build()?;
//!     println!("{}", add(1, 2).compute_on(&runtime)?);
//!     Ok(())
//! }
//! ```
//!
//! ```sh
//! my-program --dag-worker --redis redis://127.0.0.1:6379 --concurrency 8   # on each machine
//! DAG_WORKER=1 DAG_REDIS_URL=redis://127.0.0.1:6379 my-program              # the same
//! my-program                                                                # the client
//! ```
//!
//! # How the pieces are split
//!
//! - `dag-runtime` holds everything a *client* needs: the [`InvocationStream`] next to the
//!   Redis store (`XADD`, `XREADGROUP`, `XACK`), and the builder options
//!   [`worker_pool`](dag_runtime::RuntimeBuilder::worker_pool),
//!   [`spawn_workers`](dag_runtime::RuntimeBuilder::spawn_workers) and
//!   [`process_per_invocation`](dag_runtime::RuntimeBuilder::process_per_invocation), which ask
//!   for processes through the seam [`dag_runtime::invoke::processes`].
//! - This crate holds the worker-process concept whole: the environment and flags that make a
//!   process a worker ([`env`](mod@env), [`WorkerOptions`]), starting worker processes for a
//!   client (`launch`: the pool and the process-per-invocation launcher, registered with the
//!   runtime by [`run_if_worker`]), and what runs *inside* a worker process: the serving loop
//!   ([`serve`]), its cache of loaded DAGs (`dags`), graceful shutdown (`signals`), the
//!   delegate that queues ready children on the stream (`publish`), and the version check of
//!   the plan's tasks.
//!
//! # What a worker does
//!
//! `--concurrency N` threads each read the stream with `XREADGROUP` in the group
//! [`GROUP`](dag_runtime::store::GROUP) (one entry at a time, so idle workers anywhere take the
//! next one), load the DAG's plan (cached per process) and check it, run the worker step
//! ([`run_invocation`]) — continuing with one ready child in the thread as the embedded runtime
//! does, and queueing the others on the stream, all of one step's in one pipeline — and then
//! acknowledge the entry once every child it queued is in the stream (the `XACK` travels with
//! the thread's next `XREADGROUP`, in one round trip).
//!
//! # When a worker dies
//!
//! An entry is acknowledged only after its whole run (and every child it queued) is done, so a
//! worker killed at any point leaves its entry pending in the group. While a thread runs an
//! entry, its process renews the entry's lease every third of [`WorkerOptions::lease`]
//! (`XCLAIM ... JUSTID` to itself). Every half lease or so, before reading new work, each thread
//! claims one entry that has gone a whole lease without renewal (`XAUTOCLAIM`) and runs it again.
//! The re-run passes the entry's id as its *claim* to
//! [`Store::complete`], which gives it back the children
//! the dead run had made ready but not handed on. An entry delivered more than
//! [`MAX_DELIVERIES`] times fails its DAG with [`DagError::WorkerLost`].
//!
//! A plan naming a task this program lacks fails the DAG with [`DagError::TaskNotFound`]; a
//! task whose signature differs from the one the client compiled (the plan carries each task's
//! signature) fails it with [`DagError::TaskMismatch`], naming the task and both signatures.
//!
//! SIGTERM or Ctrl-C: the threads stop reading, finish the invocation they run (including the
//! children they continue with), acknowledge it and the process exits with status 0. A second
//! signal exits at once. A worker started by a client ([`env::PARENT_PID`]) also stops when that
//! client has gone.
//!
//! With [`env::INVOCATION`] set (one process per invocation), the process runs that one
//! invocation, records its cold start and exits.

#[cfg(doc)]
use dag_runtime::{
    engine::run_invocation,
    store::{InvocationStream, Store},
    DagError,
};

mod address;
mod cli;
mod dags;
pub mod env;
mod launch;
mod options;
mod publish;
mod serve;
mod signals;

pub use address::{redis_choice, RedisChoiceError};
pub use cli::{print_run_summary, runtime_from_args};
pub use dag_runtime::process_name;
pub use launch::MAX_LAUNCHES;
pub use options::{
    default_concurrency, worker_options, WorkerOptions, DEFAULT_GRACE, DEFAULT_LEASE, USAGE,
};
pub use serve::{serve, MAX_DELIVERIES};
pub use signals::{request_stop, stop_requested};

/// Call this first thing in `main`. If the process was started as a worker (`--dag-worker` or
/// `DAG_WORKER=1`; Redis URL from `--redis` or `DAG_REDIS_URL`), it serves until told to stop
/// and exits the process (status 0 after a graceful stop, 1 on an error, 2 for wrong options).
/// Otherwise it returns, and the program goes on as a client.
///
/// It also tells the runtime builder that processes of this executable can be workers, which
/// [`spawn_workers`](dag_runtime::RuntimeBuilder::spawn_workers) and
/// [`process_per_invocation`](dag_runtime::RuntimeBuilder::process_per_invocation) require.
pub fn run_if_worker() {
    // Processes of this executable act as workers (this very call makes them), so the client
    // side may start them.
    dag_runtime::invoke::processes::register_launcher(&launch::ThisExecutable);
    let Some(options) = worker_options(std::env::args(), |name| std::env::var(name).ok()) else {
        return;
    };
    let options = match options {
        Ok(options) => options,
        Err(message) => {
            eprintln!("dag worker: {message}\n{USAGE}");
            std::process::exit(2);
        }
    };
    match serve(options) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("dag worker {}: {e}", process_name());
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use dag_runtime::store::{DagId, RedisAddress, DEFAULT_STREAM};

    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_client_is_not_a_worker() {
        assert!(worker_options(["prog", "--redis", "redis://x"], no_env).is_none());
    }

    #[test]
    fn flags_make_a_worker() {
        let options = worker_options(
            [
                "prog",
                "--dag-worker",
                "--redis",
                "redis://h:1",
                "--concurrency=3",
            ],
            no_env,
        )
        .unwrap()
        .unwrap();
        assert_eq!(options.redis, RedisAddress::Server("redis://h:1".into()));
        assert_eq!(options.concurrency, 3);
        assert_eq!(options.stream, DEFAULT_STREAM);
        assert_eq!(options.invocation, None);
        assert_eq!(options.lease, DEFAULT_LEASE);
    }

    #[test]
    fn the_lease_takes_a_unit() {
        let lease = |value: &str| {
            worker_options(
                ["prog", "--dag-worker", "--redis=r", "--lease", value],
                no_env,
            )
            .unwrap()
            .map(|o| o.lease)
        };
        assert_eq!(lease("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(lease("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(lease("2m"), Ok(Duration::from_secs(120)));
        for wrong in ["10", "0s", "fast", "-1s", "1h"] {
            assert!(lease(wrong).unwrap_err().contains("lease"), "{wrong}");
        }
    }

    #[test]
    fn the_environment_makes_a_worker() {
        let env = |name: &str| match name {
            "DAG_WORKER" => Some("1".to_owned()),
            "DAG_REDIS_URL" => Some("redis://e:2".to_owned()),
            "DAG_STREAM" => Some("s".to_owned()),
            "DAG_INVOCATION" => Some("abc 7 1700000000000-0".to_owned()),
            "DAG_LEASE" => Some("750ms".to_owned()),
            _ => None,
        };
        let options = worker_options(["prog"], env).unwrap().unwrap();
        assert_eq!(options.redis, RedisAddress::Server("redis://e:2".into()));
        assert_eq!(options.stream, "s");
        assert_eq!(options.invocation, Some((DagId::from("abc"), 7)));
        assert_eq!(options.claim, "1700000000000-0");
        assert_eq!(options.lease, Duration::from_millis(750));
    }

    #[test]
    fn wrong_options_are_explained() {
        let missing = worker_options(["prog", "--dag-worker"], no_env).unwrap();
        assert!(missing.unwrap_err().contains("DAG_REDIS_URL"));
        let unknown = worker_options(["prog", "--dag-worker", "--bogus"], no_env).unwrap();
        assert!(unknown.unwrap_err().contains("--bogus"));
        let zero = worker_options(
            ["prog", "--dag-worker", "--redis=r", "--concurrency", "0"],
            no_env,
        );
        assert!(zero.unwrap().unwrap_err().contains("positive"));
    }
}
