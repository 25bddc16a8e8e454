//! Starting this executable as a worker process, and stopping such processes.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dag_runtime::store::RedisAddress;
use dag_runtime::DagError;

use crate::env;

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// A command that starts this executable as a worker on `stream` at `redis`, with `env`
/// added to its environment.
pub(super) fn worker_command(
    redis: &RedisAddress,
    stream: &str,
    env: &[(String, String)],
) -> Result<Command, DagError> {
    let exe = std::env::current_exe()
        .map_err(|e| DagError::Runtime(format!("could not find this program's executable: {e}")))?;
    let mut command = Command::new(exe);
    command
        .env(env::WORKER, "1")
        .env_remove(env::REDIS_URL)
        .env_remove(env::REDIS_CLUSTER)
        .env(env::STREAM, stream)
        .env(env::PARENT_PID, std::process::id().to_string())
        .env(env::SPAWNED_AT_US, now_micros().to_string())
        .env_remove(env::INVOCATION)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    match redis {
        RedisAddress::Server(url) => command.env(env::REDIS_URL, url),
        RedisAddress::Cluster(_) => command.env(env::REDIS_CLUSTER, redis.to_string()),
    };
    Ok(command)
}

pub(super) fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; a stale pid only yields ESRCH.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// Stops `children`: SIGTERM (they finish and acknowledge what they run), then SIGKILL for any
/// still alive after `grace`. Reaps them all.
pub(super) fn stop_children(children: &mut [Child], grace: Duration) {
    for child in children.iter() {
        signal(child.id(), libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    for child in children.iter_mut() {
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}
