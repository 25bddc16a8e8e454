//! Starting worker processes from a client: the [`ProcessLauncher`] that
//! [`run_if_worker`](crate::run_if_worker) registers with the runtime.
//!
//! - [`SpawnedPool`]: `n` long-lived worker processes serving the runtime's stream, stopped
//!   (SIGTERM, then SIGKILL after a grace period) when the runtime is dropped;
//! - [`Launcher`]: a thread that reads the runtime's stream and starts one process per
//!   invocation, at most `max` alive at once.
//!
//! A started process is the current executable with the environment of [`env`](crate::env);
//! its `main` calls `run_if_worker()` first, which serves and exits.

mod command;
mod per_invocation;
mod pool;

use per_invocation::Launcher;
pub use per_invocation::MAX_LAUNCHES;
use pool::SpawnedPool;

use dag_runtime::invoke::processes::{ProcessLauncher, WorkerProcesses};
use dag_runtime::store::InvocationStream;
use dag_runtime::store::RedisAddress;
use dag_runtime::DagError;

use crate::env;

/// Starts processes of this executable as workers; registered by `run_if_worker()`.
pub(crate) struct ThisExecutable;

impl ThisExecutable {
    /// Fails if this process is itself a worker: its children would be workers of workers.
    fn check(&self) -> Result<(), DagError> {
        if std::env::var_os(env::WORKER).is_some() {
            return Err(DagError::Runtime(format!(
                "this process was started as a dag worker ({}=1) but is building a client \
                 runtime that starts workers; call dag::worker::run_if_worker() first thing in \
                 main",
                env::WORKER
            )));
        }
        Ok(())
    }
}

impl ProcessLauncher for ThisExecutable {
    fn spawn_pool(
        &self,
        processes: usize,
        threads: usize,
        redis: &RedisAddress,
        stream: &InvocationStream,
        env: &[(String, String)],
    ) -> Result<Box<dyn WorkerProcesses>, DagError> {
        self.check()?;
        let pool = SpawnedPool::start(processes, redis, stream.key(), threads, env)?;
        Ok(Box::new(pool))
    }

    fn per_invocation(
        &self,
        max_alive: usize,
        redis: &RedisAddress,
        stream: &InvocationStream,
        io: &tokio::runtime::Handle,
        env: &[(String, String)],
    ) -> Result<Box<dyn WorkerProcesses>, DagError> {
        self.check()?;
        let launcher = Launcher::start(
            stream.clone(),
            redis.clone(),
            max_alive,
            io.clone(),
            env.to_vec(),
        )?;
        Ok(Box::new(launcher))
    }
}
