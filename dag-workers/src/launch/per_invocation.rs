//! [`Launcher`]: one process per invocation, for
//! [`RuntimeBuilder::process_per_invocation`](dag_runtime::RuntimeBuilder::process_per_invocation).
//!
//! The launcher plays the part of a serverless platform: a thread reads the runtime's
//! invocation stream and turns each entry into a process, at most `max_alive` at once; which
//! children a worker keeps and which it delegates is still decided by each worker.

use std::collections::{HashMap, HashSet};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dag_runtime::engine::fail_stored;
use dag_runtime::invoke::processes::WorkerProcesses;
use dag_runtime::store::RedisAddress;
use dag_runtime::store::{FailureKind, InvocationStream, Store, StreamEntry, TaskErrorRecord};
use dag_runtime::DagError;

use super::command::{signal, worker_command};
use crate::env;

/// How often the launcher starts an invocation whose processes keep crashing before it fails
/// the DAG.
pub const MAX_LAUNCHES: u32 = 3;

/// What a [`Launcher`] has done so far.
#[derive(Debug, Default)]
pub(crate) struct LaunchCounters {
    pub started: AtomicUsize,
    pub alive: AtomicUsize,
    pub peak_alive: AtomicUsize,
}

/// The launcher of [`RuntimeBuilder::process_per_invocation`](dag_runtime::RuntimeBuilder::process_per_invocation):
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
        redis: RedisAddress,
        max_alive: usize,
        handle: tokio::runtime::Handle,
        extra_env: Vec<(String, String)>,
    ) -> Result<Self, DagError> {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(LaunchCounters::default());
        let state = LauncherState {
            stream,
            redis,
            extra_env,
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

impl WorkerProcesses for Launcher {
    fn pids(&self) -> Vec<u32> {
        Vec::new()
    }

    fn started(&self) -> usize {
        self.counters.started.load(Ordering::Relaxed)
    }

    fn peak_alive(&self) -> usize {
        self.counters.peak_alive.load(Ordering::Relaxed)
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
    redis: RedisAddress,
    /// Added to each process's environment.
    extra_env: Vec<(String, String)>,
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
        let consumer = format!("{}/launcher", dag_runtime::process_name());
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
        let started =
            worker_command(&self.redis, self.stream.key(), &self.extra_env).and_then(|mut c| {
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
                self.fail(&entry, e.to_string(), dag_runtime::process_name());
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
        let record =
            TaskErrorRecord::new(FailureKind::WorkerLost, task, entry.node, message, &worker);
        // For a map's child DAG, the DAG its client waits for fails.
        let failed = fail_stored(store, &entry.dag, record);
        if let Err(e) = self.handle.block_on(failed) {
            eprintln!("dag launcher: could not record a failed worker process: {e}");
        }
    }
}

fn hostname_of_worker_id() -> String {
    let id = dag_runtime::process_name();
    id.rsplit_once(':').map(|(h, _)| h.to_owned()).unwrap_or(id)
}
