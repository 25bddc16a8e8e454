//! Worker processes that a test starts by hand, with the environment a worker reads
//! ([`dag_workers::env`]), killed when dropped.
//!
//! A test executable whose `main` calls `dag::worker::run_if_worker()` first (a
//! `harness = false` test, see [`harness`](crate::harness)) is a worker when started this way;
//! so is any program of the workspace that calls it, such as an example.
//!
//! ```no_run
//! use std::time::Duration;
//! use dag_test_support::{RedisServer, WorkerProcess};
//!
//! let server = RedisServer::start();
//! let pool = WorkerProcess::builder(&server.url())
//!     .stream("dag:my-test")
//!     .concurrency(2);
//! let workers = pool.spawn_many(3);
//! // ... a client runtime with `.worker_pool().stream("dag:my-test")` computes on them ...
//! workers[0].sigterm();
//! ```

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dag_workers::env;

/// How often [`WorkerProcess::wait_exit`] looks whether the process ended.
const POLL: Duration = Duration::from_millis(10);

/// How to start worker processes: the program, the Redis URL and the worker options, as
/// environment variables. Made by [`WorkerProcess::builder`]; [`spawn`](Self::spawn) can be
/// called any number of times.
#[derive(Clone, Debug)]
pub struct WorkerBuilder {
    program: Option<PathBuf>,
    url: String,
    stream: Option<String>,
    concurrency: Option<usize>,
    lease: Option<String>,
    record_cold_start: bool,
    env: Vec<(OsString, Option<OsString>)>,
}

impl WorkerBuilder {
    /// The program to start (default: this test's own executable).
    ///
    /// ```no_run
    /// # let url = "redis://127.0.0.1:1";
    /// let example = std::path::Path::new("target/debug/examples/fanout_fanin");
    /// let worker = dag_test_support::WorkerProcess::builder(url).program(example).spawn();
    /// ```
    pub fn program(mut self, program: impl AsRef<Path>) -> Self {
        self.program = Some(program.as_ref().to_owned());
        self
    }

    /// The invocation stream the workers serve ([`env::STREAM`]; the worker's default
    /// `dag:invocations` if not set).
    ///
    /// ```no_run
    /// # let url = "redis://127.0.0.1:1";
    /// let worker = dag_test_support::WorkerProcess::builder(url).stream("dag:test").spawn();
    /// ```
    pub fn stream(mut self, stream: impl Into<String>) -> Self {
        self.stream = Some(stream.into());
        self
    }

    /// Worker threads per process ([`env::CONCURRENCY`]; the worker's default if not set).
    ///
    /// ```no_run
    /// # let url = "redis://127.0.0.1:1";
    /// let worker = dag_test_support::WorkerProcess::builder(url).concurrency(1).spawn();
    /// ```
    pub fn concurrency(mut self, threads: usize) -> Self {
        self.concurrency = Some(threads);
        self
    }

    /// How long an invocation may go without a sign of life before another worker re-runs it
    /// ([`env::LEASE`], e.g. `"300ms"`; the worker's default if not set).
    ///
    /// ```no_run
    /// # let url = "redis://127.0.0.1:1";
    /// let worker = dag_test_support::WorkerProcess::builder(url).lease("300ms").spawn();
    /// ```
    pub fn lease(mut self, lease: impl Into<String>) -> Self {
        self.lease = Some(lease.into());
        self
    }

    /// Passes the time of each start ([`env::SPAWNED_AT_US`]), so that every worker records
    /// its cold start in `<stream>:cold_start_us` once it is ready to serve: a test can wait
    /// for that list to grow.
    ///
    /// ```no_run
    /// # let url = "redis://127.0.0.1:1";
    /// let worker = dag_test_support::WorkerProcess::builder(url).record_cold_start().spawn();
    /// ```
    pub fn record_cold_start(mut self) -> Self {
        self.record_cold_start = true;
        self
    }

    /// One more environment variable for the workers (after the ones above, so it can
    /// override them).
    ///
    /// ```no_run
    /// # let url = "redis://127.0.0.1:1";
    /// let worker = dag_test_support::WorkerProcess::builder(url)
    ///     .env("DAG_FAULT", "before_ack:1")
    ///     .spawn();
    /// ```
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((name.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Leaves an environment variable of this process out of the workers' environment (unless
    /// a later [`env`](Self::env) sets it).
    ///
    /// ```no_run
    /// # let url = "redis://127.0.0.1:1";
    /// let worker = dag_test_support::WorkerProcess::builder(url).env_remove("DAG_FAULT").spawn();
    /// ```
    pub fn env_remove(mut self, name: impl AsRef<OsStr>) -> Self {
        self.env.push((name.as_ref().to_owned(), None));
        self
    }

    /// Starts one worker process. Its stdin is closed; stdout and stderr are this process's.
    /// It also gets this process's pid ([`env::PARENT_PID`]), so that it stops if the test
    /// dies without dropping it.
    ///
    /// Panics naming the program if it cannot be started.
    pub fn spawn(&self) -> WorkerProcess {
        let program = match &self.program {
            Some(program) => program.clone(),
            None => std::env::current_exe().expect("the path of this test's executable"),
        };
        let mut command = Command::new(&program);
        command
            .env(env::WORKER, "1")
            .env(env::REDIS_URL, &self.url)
            .env(env::PARENT_PID, std::process::id().to_string())
            .stdin(Stdio::null());
        if let Some(stream) = &self.stream {
            command.env(env::STREAM, stream);
        }
        if let Some(threads) = self.concurrency {
            command.env(env::CONCURRENCY, threads.to_string());
        }
        if let Some(lease) = &self.lease {
            command.env(env::LEASE, lease);
        }
        if self.record_cold_start {
            command.env(env::SPAWNED_AT_US, now_micros().to_string());
        }
        for (name, value) in &self.env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "could not start {} as a worker process: {e}",
                program.display()
            )
        });
        WorkerProcess { child }
    }

    /// Starts `n` worker processes (see [`spawn`](Self::spawn)).
    ///
    /// ```no_run
    /// # let url = "redis://127.0.0.1:1";
    /// let workers = dag_test_support::WorkerProcess::builder(url).spawn_many(3);
    /// assert_eq!(workers.len(), 3);
    /// ```
    pub fn spawn_many(&self, n: usize) -> Vec<WorkerProcess> {
        (0..n).map(|_| self.spawn()).collect()
    }
}

/// A worker process started by a test; killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct WorkerProcess {
    child: Child,
}

impl WorkerProcess {
    /// How to start workers serving the Redis server at `url` (see [`WorkerBuilder`]).
    ///
    /// ```no_run
    /// let server = dag_test_support::RedisServer::start();
    /// let worker = dag_test_support::WorkerProcess::builder(&server.url()).spawn();
    /// println!("worker {}", worker.pid());
    /// ```
    pub fn builder(url: &str) -> WorkerBuilder {
        WorkerBuilder {
            program: None,
            url: url.to_owned(),
            stream: None,
            concurrency: None,
            lease: None,
            record_cold_start: false,
            env: Vec::new(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (a `libc::SIG*` number) to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child, which is not reaped before `self` is dropped (or
        // `kill` is called), so the pid is not reused.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
    }

    /// Asks the worker to stop gracefully (SIGTERM): it finishes what it runs, then exits 0.
    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Kills the process (SIGKILL) and waits for it to end.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// How the process ended, if it has; does not wait.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `limit` for the process to end by itself; how it ended, or `None` if it
    /// still runs. `Duration::ZERO` only looks.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Microseconds since the Unix epoch, as [`env::SPAWNED_AT_US`] takes them.
fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_micros()
}
