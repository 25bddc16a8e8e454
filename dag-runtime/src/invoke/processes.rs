//! The seam between a client runtime and the worker processes it starts.
//!
//! [`RuntimeBuilder::spawn_workers`](crate::RuntimeBuilder::spawn_workers) and
//! [`process_per_invocation`](crate::RuntimeBuilder::process_per_invocation) start processes of
//! the current executable as workers. How a worker process is started, served and stopped is the
//! `dag-workers` crate's concept; this runtime only asks for it through [`ProcessLauncher`],
//! which `dag::worker::run_if_worker()` registers. That call is also what makes a started
//! process act as a worker, so a program whose `main` does not call it cannot start workers:
//! building the runtime says so instead of running the client's program again in every child.

use std::sync::OnceLock;

use crate::error::DagError;
use crate::store::{InvocationStream, RedisAddress};

/// Starts worker processes of this executable for a runtime. Implemented by `dag-workers`.
pub trait ProcessLauncher: Send + Sync + 'static {
    /// Starts `processes` long-lived workers serving `stream` at `redis`, with `threads`
    /// worker threads each and `env` added to their environment (e.g. the metrics settings).
    fn spawn_pool(
        &self,
        processes: usize,
        threads: usize,
        redis: &RedisAddress,
        stream: &InvocationStream,
        env: &[(String, String)],
    ) -> Result<Box<dyn WorkerProcesses>, DagError>;

    /// Starts a launcher that reads `stream` and runs each invocation in a fresh process, at
    /// most `max_alive` at once.
    fn per_invocation(
        &self,
        max_alive: usize,
        redis: &RedisAddress,
        stream: &InvocationStream,
        io: &tokio::runtime::Handle,
        env: &[(String, String)],
    ) -> Result<Box<dyn WorkerProcesses>, DagError>;
}

/// Worker processes a runtime started; dropping this stops them (they finish and acknowledge
/// what they run first).
pub trait WorkerProcesses: Send + Sync {
    /// The ids of the processes alive now (long-lived pools), or empty.
    fn pids(&self) -> Vec<u32>;
    /// How many processes were started so far.
    fn started(&self) -> usize;
    /// The most processes alive at once.
    fn peak_alive(&self) -> usize;
}

static LAUNCHER: OnceLock<&'static dyn ProcessLauncher> = OnceLock::new();

/// Registers how to start worker processes of this executable. Called by
/// `dag::worker::run_if_worker()`; not for users.
#[doc(hidden)]
pub fn register_launcher(launcher: &'static dyn ProcessLauncher) {
    let _ = LAUNCHER.set(launcher);
}

/// The registered launcher, or an error saying why this program cannot start workers.
pub(crate) fn launcher() -> Result<&'static dyn ProcessLauncher, DagError> {
    LAUNCHER.get().copied().ok_or_else(|| {
        DagError::Runtime(
            "spawn_workers and process_per_invocation start this executable as worker \
             processes, but main has not called dag::worker::run_if_worker(); call it first \
             thing in main"
                .into(),
        )
    })
}
