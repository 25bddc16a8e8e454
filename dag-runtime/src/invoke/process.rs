//! Worker processes that a client starts from its own executable.
//!
//! Two modes of [`RuntimeBuilder`](crate::RuntimeBuilder) start processes:
//!
//! - [`spawn_workers(n)`](crate::RuntimeBuilder::spawn_workers): `n` long-lived worker processes
//!   serving the runtime's invocation stream, stopped (SIGTERM, then SIGKILL after a grace
//!   period) when the runtime is dropped ([`SpawnedPool`]);
//! - [`process_per_invocation(max)`](crate::RuntimeBuilder::process_per_invocation): a launcher
//!   thread reads the runtime's invocation stream and starts one process per invocation, at most
//!   `max` alive at once ([`Launcher`]). The launcher plays the part of a serverless platform: it
//!   only turns invocation requests into processes; which children a worker keeps and which it
//!   delegates is still decided by each worker.
//!
//! A started process is the current executable with the environment below; its `main` must call
//! `dag::worker::run_if_worker()` first, which serves and exits. [`mark_entry_point`] is how the
//! builder knows that `main` does: without it the children would run the client's program again.
//! Everything that runs *inside* a worker process lives in the `dag-workers` crate.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::DagError;
use crate::store::{FailureKind, InvocationStream, Store, StreamEntry, TaskErrorRecord};

/// How often the launcher starts an invocation whose processes keep crashing before it fails
/// the DAG.
pub const MAX_LAUNCHES: u32 = 3;

/// Environment variables that make a process of a `dag` program a worker.
pub mod env {
    /// `1`: serve as a worker (the same as the `--dag-worker` flag).
    pub const WORKER: &str = "DAG_WORKER";
    /// The Redis URL (the same as `--redis URL`).
    pub const REDIS_URL: &str = "DAG_REDIS_URL";
    /// The invocation stream's key (the same as `--stream KEY`; default `dag:invocations`).
    pub const STREAM: &str = "DAG_STREAM";
    /// Worker threads reading the stream (the same as `--concurrency N`).
    pub const CONCURRENCY: &str = "DAG_CONCURRENCY";
    /// `<dag id> <node> [<claim>]`: run this one invocation and exit (one process per
    /// invocation); the claim is the launcher's stream entry id (see `Store::complete`).
    pub const INVOCATION: &str = "DAG_INVOCATION";
    /// How long an invocation may go without a sign of life from its worker before another
    /// worker re-runs it (the same as `--lease`; default 10 s).
    pub const LEASE: &str = "DAG_LEASE";
    /// When the parent started this process, µs since the Unix epoch (for the cold start).
    pub const SPAWNED_AT_US: &str = "DAG_SPAWNED_AT_US";
    /// The pid of the client that started this worker: the worker stops when it goes away.
    pub const PARENT_PID: &str = "DAG_PARENT_PID";
}

static ENTRY_POINT: AtomicBool = AtomicBool::new(false);

/// Records that this program's `main` calls `dag::worker::run_if_worker()` first (which calls
/// this), so that processes started from this executable act as workers.
pub fn mark_entry_point() {
    ENTRY_POINT.store(true, Ordering::Relaxed);
}

/// Whether [`mark_entry_point`] was called in this process.
pub fn entry_point_marked() -> bool {
    ENTRY_POINT.load(Ordering::Relaxed)
}

/// Fails unless processes of this executable will act as workers.
pub(crate) fn check_can_spawn() -> Result<(), DagError> {
    if std::env::var_os(env::WORKER).is_some() {
        return Err(DagError::Runtime(format!(
            "this process was started as a dag worker ({}=1) but is building a client runtime \
             that starts workers; call dag::worker::run_if_worker() first thing in main",
            env::WORKER
        )));
    }
    if !entry_point_marked() {
        return Err(DagError::Runtime(
            "spawn_workers and process_per_invocation start this executable as worker \
             processes, but main has not called dag::worker::run_if_worker(); call it first \
             thing in main"
                .into(),
        ));
    }
    Ok(())
}

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// A command that starts this executable as a worker on `stream` at `redis_url`.
fn worker_command(redis_url: &str, stream: &str) -> Result<Command, DagError> {
    let exe = std::env::current_exe()
        .map_err(|e| DagError::Runtime(format!("could not find this program's executable: {e}")))?;
    let mut command = Command::new(exe);
    command
        .env(env::WORKER, "1")
        .env(env::REDIS_URL, redis_url)
        .env(env::STREAM, stream)
        .env(env::PARENT_PID, std::process::id().to_string())
        .env(env::SPAWNED_AT_US, now_micros().to_string())
        .env_remove(env::INVOCATION)
        .stdin(Stdio::null());
    Ok(command)
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; a stale pid only yields ESRCH.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// Stops `children`: SIGTERM (they finish and acknowledge what they run), then SIGKILL for any
/// still alive after `grace`. Reaps them all.
fn stop_children(children: &mut [Child], grace: Duration) {
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

/// How long stopped workers get to finish their current invocation before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Long-lived worker processes started by [`RuntimeBuilder::spawn_workers`](crate::RuntimeBuilder::spawn_workers);
/// stopped when dropped.
pub struct SpawnedPool {
    children: Vec<Child>,
}

impl SpawnedPool {
    /// Starts `n` workers with `concurrency` threads each on `stream`.
    pub(crate) fn start(
        n: usize,
        redis_url: &str,
        stream: &str,
        concurrency: usize,
    ) -> Result<Self, DagError> {
        let mut pool = SpawnedPool {
            children: Vec::with_capacity(n),
        };
        for _ in 0..n {
            let child = worker_command(redis_url, stream)?
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

impl Drop for SpawnedPool {
    fn drop(&mut self) {
        stop_children(&mut self.children, STOP_GRACE);
    }
}

/// What a [`Launcher`] has done so far.
#[derive(Debug, Default)]
pub(crate) struct LaunchCounters {
    pub started: AtomicUsize,
    pub alive: AtomicUsize,
    pub peak_alive: AtomicUsize,
}

/// The launcher of [`RuntimeBuilder::process_per_invocation`](crate::RuntimeBuilder::process_per_invocation):
/// one process per invocation read from the stream, at most `max_alive` at once.
pub struct Launcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub(crate) counters: Arc<LaunchCounters>,
}

impl Launcher {
    /// Starts the launcher thread.
    pub(crate) fn start(
        stream: InvocationStream,
        redis_url: String,
        max_alive: usize,
        handle: tokio::runtime::Handle,
    ) -> Result<Self, DagError> {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(LaunchCounters::default());
        let state = LauncherState {
            stream,
            redis_url,
            max_alive: max_alive.max(1),
            handle,
            stop: Arc::clone(&stop),
            counters: Arc::clone(&counters),
            pids: Arc::new(Mutex::new(HashSet::new())),
        };
        let thread = std::thread::Builder::new()
            .name("dag-launcher".into())
            .spawn(move || state.run())
            .map_err(|e| DagError::Runtime(format!("could not start the launcher thread: {e}")))?;
        Ok(Launcher {
            stop,
            thread: Some(thread),
            counters,
        })
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct LauncherState {
    stream: InvocationStream,
    redis_url: String,
    max_alive: usize,
    handle: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
    counters: Arc<LaunchCounters>,
    /// Processes alive, to kill them if the runtime is dropped while they run.
    pids: Arc<Mutex<HashSet<u32>>>,
}

/// An invocation's process has exited: its entry, pid and exit status.
type Exit = (StreamEntry, u32, std::io::Result<ExitStatus>);

impl LauncherState {
    fn run(self) {
        let consumer = format!("{}/launcher", crate::worker_id());
        let mut reader = loop {
            match self.handle.block_on(self.stream.reader(consumer.clone())) {
                Ok(reader) => break reader,
                Err(e) if !self.stop.load(Ordering::Relaxed) => {
                    eprintln!("dag launcher: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(_) => return,
            }
        };
        let (exits, exited) = crossbeam_channel::unbounded::<Exit>();
        let mut alive = 0usize;
        // Launches so far of each entry whose process has not finished it yet.
        let mut launches: HashMap<String, u32> = HashMap::new();
        let on_exit = |exit: Exit, alive: &mut usize, launches: &mut HashMap<String, u32>| {
            *alive -= 1;
            if let Some(entry) = self.finished(exit, launches) {
                if self.launch(entry, &exits) {
                    *alive += 1;
                }
            }
        };
        while !self.stop.load(Ordering::Relaxed) {
            while let Ok(exit) = exited.try_recv() {
                on_exit(exit, &mut alive, &mut launches);
            }
            if alive >= self.max_alive {
                if let Ok(exit) = exited.recv_timeout(Duration::from_millis(100)) {
                    on_exit(exit, &mut alive, &mut launches);
                }
                continue;
            }
            let entries = match self
                .handle
                .block_on(reader.read(self.max_alive - alive, Duration::from_millis(50)))
            {
                Ok(entries) => entries,
                Err(e) => {
                    eprintln!("dag launcher: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
            };
            for entry in entries {
                launches.insert(entry.id.clone(), 1);
                if self.launch(entry, &exits) {
                    alive += 1;
                }
            }
        }
        // The runtime is going away: nothing waits for these processes any more.
        for pid in self.pids.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            signal(*pid, libc::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive > 0 && Instant::now() < deadline {
            if exited.recv_timeout(Duration::from_millis(100)).is_ok() {
                alive -= 1;
            }
        }
    }

    /// Starts the process of `entry`; `false` if it could not be started (the DAG is failed).
    fn launch(&self, entry: StreamEntry, exits: &crossbeam_channel::Sender<Exit>) -> bool {
        let started = worker_command(&self.redis_url, self.stream.key()).and_then(|mut c| {
            // The entry id is the run's claim: a re-launch gets back what a crashed one made
            // ready (see `Store::complete`).
            c.env(
                env::INVOCATION,
                format!("{} {} {}", entry.dag, entry.node, entry.id),
            )
            .spawn()
            .map_err(|e| DagError::Runtime(format!("could not start a worker process: {e}")))
        });
        let mut child = match started {
            Ok(child) => child,
            Err(e) => {
                self.fail(&entry, e.to_string(), crate::worker_id());
                return false;
            }
        };
        let pid = child.id();
        self.pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pid);
        let c = &self.counters;
        c.started.fetch_add(1, Ordering::Relaxed);
        let now = c.alive.fetch_add(1, Ordering::Relaxed) + 1;
        c.peak_alive.fetch_max(now, Ordering::Relaxed);
        let (exits, pids, counters) = (exits.clone(), Arc::clone(&self.pids), Arc::clone(c));
        let waiter = std::thread::Builder::new()
            .name("dag-launch-wait".into())
            .spawn(move || {
                let status = child.wait();
                pids.lock().unwrap_or_else(|e| e.into_inner()).remove(&pid);
                counters.alive.fetch_sub(1, Ordering::Relaxed);
                let _ = exits.send((entry, pid, status));
            });
        if let Err(e) = waiter {
            // Without a waiter nobody would reap the process or acknowledge its entry.
            signal(pid, libc::SIGKILL);
            eprintln!("dag launcher: could not start a thread to wait for process {pid}: {e}");
            return false;
        }
        true
    }

    /// Acknowledges `entry` once its process has exited, or returns it to be launched again:
    /// a process that crashed may have died anywhere in its invocation, and the platform
    /// re-runs it, as a serverless platform retries a crashed function. After
    /// [`MAX_LAUNCHES`] launches the DAG fails instead.
    fn finished(
        &self,
        (entry, pid, status): Exit,
        launches: &mut HashMap<String, u32>,
    ) -> Option<StreamEntry> {
        let worker = format!("{}:{pid}", hostname_of_worker_id());
        let launched = launches.remove(&entry.id).unwrap_or(1);
        match status {
            Ok(status) if status.success() => {}
            Ok(_) if launched < MAX_LAUNCHES => {
                launches.insert(entry.id.clone(), launched + 1);
                return Some(entry);
            }
            Ok(status) => self.fail(
                &entry,
                format!(
                    "the worker process for node {} exited with {status}, {launched} times",
                    entry.node
                ),
                worker,
            ),
            Err(e) => self.fail(
                &entry,
                format!(
                    "could not wait for the worker process of node {}: {e}",
                    entry.node
                ),
                worker,
            ),
        }
        if let Err(e) = self.handle.block_on(self.stream.ack(&[entry.id])) {
            eprintln!("dag launcher: {e}");
        }
        None
    }

    fn fail(&self, entry: &StreamEntry, message: String, worker: String) {
        let store = self.stream.store();
        let task = match self.handle.block_on(store.get_plan(&entry.dag)) {
            Ok(Some(plan)) if (entry.node as usize) < plan.nodes.len() => {
                plan.task_name(entry.node).to_owned()
            }
            Ok(_) => return, // the DAG has ended already
            Err(_) => "?".to_owned(),
        };
        let record = TaskErrorRecord {
            kind: FailureKind::WorkerLost,
            task,
            node: entry.node,
            attempt: 1,
            message,
            worker,
            backtrace: None,
        };
        // For a map's child DAG, the DAG its client waits for fails.
        let failed = crate::engine::fail_stored(store, &entry.dag, record);
        if let Err(e) = self.handle.block_on(failed) {
            eprintln!("dag launcher: could not record a failed worker process: {e}");
        }
    }
}

fn hostname_of_worker_id() -> String {
    let id = crate::worker_id();
    id.rsplit_once(':').map(|(h, _)| h.to_owned()).unwrap_or(id)
}
