//! [`SpawnedPool`]: long-lived worker processes started by
//! [`RuntimeBuilder::spawn_workers`](dag_runtime::RuntimeBuilder::spawn_workers), stopped when
//! the runtime is dropped.

use std::process::Child;
use std::time::Duration;

use dag_runtime::invoke::processes::WorkerProcesses;
use dag_runtime::store::RedisAddress;
use dag_runtime::DagError;

use super::command::{stop_children, worker_command};
use crate::env;

/// How long stopped workers get to finish their current invocation before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Long-lived worker processes started by [`RuntimeBuilder::spawn_workers`](dag_runtime::RuntimeBuilder::spawn_workers);
/// stopped when dropped.
pub struct SpawnedPool {
    children: Vec<Child>,
}

impl SpawnedPool {
    /// Starts `n` workers with `concurrency` threads each on `stream`.
    pub(crate) fn start(
        n: usize,
        redis: &RedisAddress,
        stream: &str,
        concurrency: usize,
        extra_env: &[(String, String)],
    ) -> Result<Self, DagError> {
        let mut pool = SpawnedPool {
            children: Vec::with_capacity(n),
        };
        for _ in 0..n {
            let child = worker_command(redis, stream, extra_env)?
                .env(env::CONCURRENCY, concurrency.to_string())
                .spawn()
                .map_err(|e| DagError::Runtime(format!("could not start a worker process: {e}")))?;
            pool.children.push(child);
        }
        Ok(pool)
    }

    /// The worker processes' ids.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }
}

impl WorkerProcesses for SpawnedPool {
    fn pids(&self) -> Vec<u32> {
        SpawnedPool::pids(self)
    }

    fn started(&self) -> usize {
        self.children.len()
    }

    fn peak_alive(&self) -> usize {
        self.children.len()
    }
}

impl Drop for SpawnedPool {
    fn drop(&mut self) {
        stop_children(&mut self.children, STOP_GRACE);
    }
}
