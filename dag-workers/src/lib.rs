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
//!   [`process_per_invocation`](dag_runtime::RuntimeBuilder::process_per_invocation), which
//!   start processes of the current executable with `std::process` (see
//!   [`dag_runtime::invoke::process`]). No hook is needed: a started process is just this
//!   program again, with the environment variables of [`env`](mod@env).
//! - This crate holds what runs *inside* a worker process: option parsing, the serving loop
//!   ([`serve`]), graceful shutdown on SIGTERM/SIGINT, the delegate that queues ready children
//!   on the stream, and the version check of the plan's tasks.
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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dag_runtime::engine::{run_invocation, Delegate, Invocation, LoadedPlan, Worker};
use dag_runtime::store::{
    DagId, FailureKind, InvocationStream, RedisStore, Store, StreamEntry, TaskErrorRecord,
    DEFAULT_STREAM,
};
use dag_runtime::task::TaskPolicy;
use dag_runtime::{DagError, Runtime, REDIS_MAX_DEFAULT_WORKERS, REDIS_WORKERS_PER_CORE};

pub use dag_runtime::invoke::process::env;
pub use dag_runtime::worker_id;

/// How long one `XREADGROUP` waits before the thread checks whether it should stop.
const READ_BLOCK: Duration = Duration::from_millis(250);

/// How many loaded plans a worker process keeps.
const PLAN_CACHE: usize = 64;

/// What a worker process does, from its flags and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerOptions {
    /// The Redis server holding the DAGs and the stream.
    pub redis_url: String,
    /// The invocation stream's key.
    pub stream: String,
    /// Threads reading the stream.
    pub concurrency: usize,
    /// Run only this invocation and exit (one process per invocation).
    pub invocation: Option<(DagId, u32)>,
    /// When the parent started this process (for the cold start).
    pub spawned_at: Option<SystemTime>,
    /// Stop when this process is no longer our parent.
    pub parent_pid: Option<u32>,
}

impl WorkerOptions {
    /// Options for a worker of the pool at `redis_url` on the default stream, with the default
    /// concurrency.
    pub fn new(redis_url: impl Into<String>) -> Self {
        WorkerOptions {
            redis_url: redis_url.into(),
            stream: DEFAULT_STREAM.to_owned(),
            concurrency: default_concurrency(),
            invocation: None,
            spawned_at: None,
            parent_pid: None,
        }
    }

    /// Sets the number of threads reading the stream.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Sets the stream's key.
    pub fn stream(mut self, key: impl Into<String>) -> Self {
        self.stream = key.into();
        self
    }
}

/// The default `--concurrency`: like a client runtime on Redis,
/// [`REDIS_WORKERS_PER_CORE`] threads per core, at most [`REDIS_MAX_DEFAULT_WORKERS`] (a worker
/// spends most of a small task waiting for round trips).
pub fn default_concurrency() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    (cores * REDIS_WORKERS_PER_CORE).min(REDIS_MAX_DEFAULT_WORKERS)
}

const USAGE: &str = "\
worker options: --dag-worker [--redis URL] [--concurrency N] [--stream KEY]
  or the environment: DAG_WORKER=1 DAG_REDIS_URL=URL DAG_CONCURRENCY=N DAG_STREAM=KEY";

/// Whether this process was started as a worker, and with what options.
///
/// `None`: not a worker (neither `--dag-worker` among `args` nor `DAG_WORKER=1`). `Some(Err)`:
/// a worker whose options are wrong (the message says which). Flags win over the environment.
pub fn worker_options<I, S>(
    args: I,
    env: impl Fn(&str) -> Option<String>,
) -> Option<Result<WorkerOptions, String>>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let args: Vec<String> = args.into_iter().map(Into::into).collect();
    let flagged = args.iter().skip(1).any(|a| a == "--dag-worker");
    let by_env = env(env::WORKER).is_some_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    if !flagged && !by_env {
        return None;
    }
    Some(parse_options(&args, env))
}

fn parse_options(
    args: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<WorkerOptions, String> {
    let (mut url, mut stream, mut concurrency) = (None, None, None);
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| rest.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag {
            "--dag-worker" => {}
            "--redis" => url = Some(value("--redis")?),
            "--stream" => stream = Some(value("--stream")?),
            "--concurrency" => concurrency = Some(value("--concurrency")?),
            other => {
                return Err(format!(
                    "unknown worker option `{other}` (a worker takes only these)"
                ))
            }
        }
    }
    let url = url.or_else(|| env(env::REDIS_URL)).ok_or_else(|| {
        "a worker needs the Redis server: --redis URL or DAG_REDIS_URL".to_owned()
    })?;
    let concurrency = match concurrency.or_else(|| env(env::CONCURRENCY)) {
        None => default_concurrency(),
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("the concurrency must be a positive integer, not {n:?}"))?,
    };
    let invocation = match env(env::INVOCATION) {
        None => None,
        Some(text) => {
            let parsed = text
                .split_once(' ')
                .and_then(|(dag, node)| Some((DagId::from(dag), node.parse().ok()?)));
            Some(parsed.ok_or_else(|| {
                format!(
                    "{} must be `<dag id> <node>`, not {text:?}",
                    env::INVOCATION
                )
            })?)
        }
    };
    let spawned_at = env(env::SPAWNED_AT_US)
        .and_then(|us| us.parse::<u64>().ok())
        .map(|us| UNIX_EPOCH + Duration::from_micros(us));
    Ok(WorkerOptions {
        redis_url: url,
        stream: stream
            .or_else(|| env(env::STREAM))
            .unwrap_or_else(|| DEFAULT_STREAM.to_owned()),
        concurrency,
        invocation,
        spawned_at,
        parent_pid: env(env::PARENT_PID).and_then(|p| p.parse().ok()),
    })
}

/// Call this first thing in `main`. If the process was started as a worker (`--dag-worker` or
/// `DAG_WORKER=1`; Redis URL from `--redis` or `DAG_REDIS_URL`), it serves until told to stop
/// and exits the process (status 0 after a graceful stop, 1 on an error, 2 for wrong options).
/// Otherwise it returns, and the program goes on as a client.
///
/// It also tells the runtime builder that processes of this executable can be workers, which
/// [`spawn_workers`](dag_runtime::RuntimeBuilder::spawn_workers) and
/// [`process_per_invocation`](dag_runtime::RuntimeBuilder::process_per_invocation) require.
pub fn run_if_worker() {
    dag_runtime::invoke::process::mark_entry_point();
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
            eprintln!("dag worker {}: {e}", worker_id());
            std::process::exit(1);
        }
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

/// Asks this process's worker threads to stop after their current invocation (what SIGTERM and
/// Ctrl-C do).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether a stop was requested.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

extern "C" fn on_signal(_: libc::c_int) {
    // Only async-signal-safe work here: an atomic swap, and _exit on the second signal.
    if STOP.swap(true, Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

fn install_signal_handlers() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only touches an atomic and calls _exit, both async-signal-safe.
        unsafe {
            libc::signal(signal, handler as libc::sighandler_t);
        }
    }
}

/// Serves as a worker with `options` until stopped ([`request_stop`], SIGTERM, Ctrl-C), or runs
/// the one invocation of [`WorkerOptions::invocation`]. Returns when done; fails if Redis
/// cannot be reached.
pub fn serve(options: WorkerOptions) -> Result<(), DagError> {
    install_signal_handlers();
    let io = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("dag-worker-io")
        .enable_all()
        .build()
        .map_err(|e| DagError::Runtime(format!("could not start the I/O runtime: {e}")))?;
    let store = io.block_on(RedisStore::connect(&options.redis_url))?;
    let stream = InvocationStream::new(store.clone(), options.stream.clone());
    let process = Arc::new(Process {
        store: store.clone(),
        stream: stream.clone(),
        handle: io.handle().clone(),
        publisher: Publisher::start(io.handle(), stream.clone()),
        plans: Mutex::new(PlanCache::default()),
    });
    let result = match &options.invocation {
        Some((dag, node)) => {
            process.run_one(dag, *node, options.spawned_at);
            Ok(())
        }
        None => serve_pool(&process, &options),
    };
    process.publisher.flush();
    drop(process);
    io.shutdown_timeout(Duration::from_secs(1));
    result
}

fn serve_pool(process: &Arc<Process>, options: &WorkerOptions) -> Result<(), DagError> {
    process.handle.block_on(process.stream.create_group())?;
    let id = worker_id();
    eprintln!(
        "dag worker {id}: serving stream `{}` at {} with {} threads",
        options.stream,
        process.store.addr(),
        options.concurrency
    );
    if let Some(spawned_at) = options.spawned_at {
        let cold = SystemTime::now()
            .duration_since(spawned_at)
            .unwrap_or_default();
        let _ = process
            .handle
            .block_on(process.stream.record_cold_start(cold));
    }
    let threads: Vec<_> = (0..options.concurrency)
        .map(|i| {
            let process = Arc::clone(process);
            let parent = options.parent_pid;
            let consumer = format!("{id}/t{i}");
            std::thread::Builder::new()
                .name(format!("dag-worker-{i}"))
                .spawn(move || process.serve_thread(consumer, parent))
                .map_err(|e| DagError::Runtime(format!("could not start a worker thread: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let mut first_error = None;
    for thread in threads {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert(DagError::Runtime("a worker thread panicked".into()));
            }
        }
    }
    eprintln!("dag worker {id}: stopped");
    first_error.map_or(Ok(()), Err)
}

/// What the threads of one worker process share.
struct Process {
    store: RedisStore,
    stream: InvocationStream,
    handle: tokio::runtime::Handle,
    publisher: Publisher,
    plans: Mutex<PlanCache>,
}

#[derive(Default)]
struct PlanCache {
    plans: HashMap<DagId, Arc<LoadedPlan>>,
    order: VecDeque<DagId>,
}

impl Process {
    fn worker(&self, id: String) -> Worker {
        Worker {
            store: Arc::new(self.store.clone()),
            handle: self.handle.clone(),
            id,
            policy: TaskPolicy::DEFAULT,
        }
    }

    fn serve_thread(&self, consumer: String, parent: Option<u32>) -> Result<(), DagError> {
        let worker = self.worker(consumer.clone());
        let mut reader = self.handle.block_on(self.stream.reader(consumer))?;
        let mut failures = 0u32;
        // Finished entries, acknowledged together with the next read (one round trip).
        let mut finished: Vec<String> = Vec::new();
        while !stop_requested() {
            if parent.is_some_and(|p| parent_pid() != p) {
                // The client that started this worker has gone: nobody waits for its DAGs.
                request_stop();
                break;
            }
            let read = reader.ack_and_read(&finished, 1, READ_BLOCK);
            let entries = match self.handle.block_on(read) {
                Ok(entries) => {
                    failures = 0;
                    finished.clear();
                    entries
                }
                Err(e) => {
                    failures += 1;
                    eprintln!("dag worker {}: {e}; retrying", worker.id);
                    std::thread::sleep(Duration::from_millis(200 * u64::from(failures.min(10))));
                    continue;
                }
            };
            for entry in entries {
                self.run_entry(&worker, &entry);
                // Every child this invocation queued is in the stream before it is acknowledged.
                self.publisher.flush();
                finished.push(entry.id);
            }
        }
        if let Err(e) = self.handle.block_on(self.stream.ack(&finished)) {
            eprintln!("dag worker {}: {e}", worker.id);
        }
        let _ = self.handle.block_on(reader.remove_consumer());
        Ok(())
    }

    fn run_entry(&self, worker: &Worker, entry: &StreamEntry) {
        match self.load(&entry.dag, &worker.id) {
            Ok(Some(plan)) if (entry.node as usize) < plan.plan.nodes.len() => {
                let invocation = Invocation {
                    node: entry.node,
                    carried: None,
                };
                run_invocation(worker, &plan, invocation, &StreamDelegate(&self.publisher));
            }
            Ok(Some(_)) => eprintln!(
                "dag worker {}: DAG {} has no node {}; skipping the invocation",
                worker.id, entry.dag, entry.node
            ),
            Ok(None) => {} // the DAG has ended
            Err(e) => self.fail_load(worker, entry, e),
        }
    }

    /// Runs one invocation, the whole life of a process per invocation.
    fn run_one(&self, dag: &DagId, node: u32, spawned_at: Option<SystemTime>) {
        let worker = self.worker(format!("{}/once", worker_id()));
        let loaded = self.load(dag, &worker.id);
        if let Some(spawned_at) = spawned_at {
            let cold = SystemTime::now()
                .duration_since(spawned_at)
                .unwrap_or_default();
            if let Err(e) = self.handle.block_on(self.stream.record_cold_start(cold)) {
                eprintln!("dag worker {}: {e}", worker.id);
            }
        }
        let entry = StreamEntry {
            id: String::new(),
            dag: dag.clone(),
            node,
        };
        match loaded {
            Ok(Some(plan)) if (node as usize) < plan.plan.nodes.len() => {
                let invocation = Invocation {
                    node,
                    carried: None,
                };
                run_invocation(&worker, &plan, invocation, &StreamDelegate(&self.publisher));
            }
            Ok(_) => {}
            Err(e) => self.fail_load(&worker, &entry, e),
        }
    }

    /// The DAG's plan, resolved against this program's tasks and checked; `None` if it ended.
    fn load(&self, dag: &DagId, worker: &str) -> Result<Option<Arc<LoadedPlan>>, DagError> {
        if let Some(plan) = self.cached(dag) {
            return Ok(Some(plan));
        }
        let Some(loaded) = LoadedPlan::load(&self.store, &self.handle, dag)? else {
            return Ok(None);
        };
        check_signatures(&loaded, worker)?;
        let mut cache = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if cache
            .plans
            .insert(dag.clone(), Arc::clone(&loaded))
            .is_none()
        {
            cache.order.push_back(dag.clone());
        }
        while cache.plans.len() > PLAN_CACHE {
            let Some(old) = cache.order.pop_front() else {
                break;
            };
            cache.plans.remove(&old);
        }
        Ok(Some(loaded))
    }

    fn cached(&self, dag: &DagId) -> Option<Arc<LoadedPlan>> {
        let cache = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        cache.plans.get(dag).cloned()
    }

    /// Records why this worker cannot run the DAG of `entry` as the failure of that DAG and of
    /// the top DAG it belongs to (a map's child DAG links to its parent).
    fn fail_load(&self, worker: &Worker, entry: &StreamEntry, error: DagError) {
        let (kind, task, message) = match &error {
            DagError::TaskNotFound { task, .. } => {
                (FailureKind::TaskNotFound, task.clone(), error.to_string())
            }
            DagError::TaskMismatch { task, message, .. } => {
                (FailureKind::TaskMismatch, task.clone(), message.clone())
            }
            DagError::Redis { .. } | DagError::Store(_) | DagError::Codec { .. } => {
                (FailureKind::Store, String::new(), error.to_string())
            }
            _ => (FailureKind::Worker, String::new(), error.to_string()),
        };
        let mut dags = vec![entry.dag.clone()];
        let mut next = entry.dag.clone();
        while let Ok(Some(plan)) = self.handle.block_on(self.store.get_plan(&next)) {
            let Some(link) = &plan.parent else { break };
            next = DagId::from(link.dag.as_str());
            dags.push(next.clone());
        }
        for dag in dags.into_iter().rev() {
            let record = TaskErrorRecord {
                kind,
                task: task.clone(),
                node: entry.node,
                attempt: 1,
                message: message.clone(),
                worker: worker.id.clone(),
            };
            if let Err(e) = self.handle.block_on(self.store.fail(&dag, record)) {
                eprintln!("dag worker {}: could not record a failure: {e}", worker.id);
            }
        }
    }
}

/// Fails unless every task of `loaded` (and of the DAGs it is a child of) has the signature
/// the client compiled.
fn check_signatures(loaded: &LoadedPlan, worker: &str) -> Result<(), DagError> {
    let mut next = Some(loaded);
    while let Some(loaded) = next {
        let plan = &loaded.plan;
        for (name, expected) in plan.tasks.iter().zip(&plan.signatures) {
            let found = dag_runtime::task::lookup(name)?.signature;
            if found != expected {
                return Err(DagError::TaskMismatch {
                    task: name.clone(),
                    worker: worker.to_owned(),
                    message: format!(
                        "the client's plan was built with `{expected}`, this worker has `{found}`"
                    ),
                });
            }
        }
        next = loaded.parent.as_ref().map(|(parent, _)| &**parent);
    }
    Ok(())
}

fn parent_pid() -> u32 {
    // SAFETY: getppid has no preconditions and cannot fail.
    unsafe { libc::getppid() as u32 }
}

/// Hands the ready children a worker does not keep to the stream, through the [`Publisher`].
struct StreamDelegate<'a>(&'a Publisher);

impl Delegate for StreamDelegate<'_> {
    fn delegate(&self, plan: &Arc<LoadedPlan>, invocation: Invocation) {
        // The output it carries is stored already; another process fetches it from Redis.
        self.0.send(Arc::clone(plan), invocation.node);
    }
}

enum Message {
    Add(Arc<LoadedPlan>, u32),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Queues delegated invocations on the stream: a task that sends whatever has accumulated in
/// one pipeline, so the children one step delegates cost one round trip together.
struct Publisher {
    sender: tokio::sync::mpsc::UnboundedSender<Message>,
    handle: tokio::runtime::Handle,
}

impl Publisher {
    fn start(handle: &tokio::runtime::Handle, stream: InvocationStream) -> Self {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        handle.spawn(publish(receiver, stream));
        Publisher {
            sender,
            handle: handle.clone(),
        }
    }

    fn send(&self, plan: Arc<LoadedPlan>, node: u32) {
        let _ = self.sender.send(Message::Add(plan, node));
    }

    /// Waits until everything sent before is in the stream (or its DAG was failed).
    fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.sender.send(Message::Flush(done)).is_ok() {
            let _ = self.handle.block_on(wait);
        }
    }
}

async fn publish(
    mut receiver: tokio::sync::mpsc::UnboundedReceiver<Message>,
    stream: InvocationStream,
) {
    while let Some(first) = receiver.recv().await {
        let mut adds = Vec::new();
        let mut flushes = Vec::new();
        let mut take = |message| match message {
            Message::Add(plan, node) => adds.push((plan, node)),
            Message::Flush(done) => flushes.push(done),
        };
        take(first);
        while let Ok(message) = receiver.try_recv() {
            take(message);
        }
        if !adds.is_empty() {
            let invocations: Vec<(DagId, u32)> = adds
                .iter()
                .map(|(plan, node)| (plan.dag.clone(), *node))
                .collect();
            if let Err(e) = stream.submit(&invocations).await {
                fail_unqueued(&stream, &adds, &e).await;
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// The children could not be queued: their DAGs cannot finish, so they fail now (a lost
/// invocation must not leave a client waiting forever).
async fn fail_unqueued(stream: &InvocationStream, adds: &[(Arc<LoadedPlan>, u32)], e: &DagError) {
    let mut failed: Vec<&DagId> = Vec::new();
    for (plan, node) in adds {
        if failed.contains(&&plan.dag) {
            continue;
        }
        failed.push(&plan.dag);
        let record = TaskErrorRecord {
            kind: FailureKind::Store,
            task: plan.plan.task_name(*node).to_owned(),
            node: *node,
            attempt: 1,
            message: format!("could not hand node {node} to another worker: {e}"),
            worker: worker_id(),
        };
        let _ = stream.store().fail(&plan.dag, record).await;
    }
}

/// Builds the runtime an example or tool asked for on its command line, removing the flags it
/// used from `args`:
///
/// - `--redis URL` (or `DAG_REDIS_URL`): DAG state in Redis, invocations to the worker pool
///   serving `dag:invocations` (started by hand with `--dag-worker`);
/// - `--workers N` with a Redis URL: start `N` worker processes of this executable instead
///   (`--workers 0`: run the tasks on threads of this process, state in Redis);
/// - neither: the embedded runtime ([`Runtime::global`]).
///
/// ```no_run
/// let mut args: Vec<String> = std::env::args().collect();
/// let runtime = dag::worker::runtime_from_args(&mut args)?;
/// # Ok::<(), dag::DagError>(())
/// ```
pub fn runtime_from_args(args: &mut Vec<String>) -> Result<Runtime, DagError> {
    let mut url = None;
    let mut workers = None;
    let mut i = 0;
    while i < args.len() {
        let (flag, inline) = match args[i].split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (args[i].clone(), None),
        };
        if flag != "--redis" && flag != "--workers" {
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
        } else {
            workers = Some(value.parse::<usize>().map_err(|_| {
                DagError::Runtime(format!("--workers takes a number, not {value:?}"))
            })?);
        }
    }
    let url = url.or_else(|| std::env::var(env::REDIS_URL).ok().filter(|u| !u.is_empty()));
    match (url, workers) {
        (None, None) => Runtime::global(),
        (None, Some(_)) => Err(DagError::Runtime(
            "--workers starts worker processes, which share DAGs through Redis: give --redis URL \
             (or DAG_REDIS_URL) too"
                .into(),
        )),
        (Some(url), None) => Runtime::builder().redis(url).worker_pool().build(),
        (Some(url), Some(0)) => Runtime::builder().redis(url).build(),
        (Some(url), Some(n)) => Runtime::builder().redis(url).spawn_workers(n).build(),
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(options.redis_url, "redis://h:1");
        assert_eq!(options.concurrency, 3);
        assert_eq!(options.stream, DEFAULT_STREAM);
        assert_eq!(options.invocation, None);
    }

    #[test]
    fn the_environment_makes_a_worker() {
        let env = |name: &str| match name {
            "DAG_WORKER" => Some("1".to_owned()),
            "DAG_REDIS_URL" => Some("redis://e:2".to_owned()),
            "DAG_STREAM" => Some("s".to_owned()),
            "DAG_INVOCATION" => Some("abc 7".to_owned()),
            _ => None,
        };
        let options = worker_options(["prog"], env).unwrap().unwrap();
        assert_eq!(options.redis_url, "redis://e:2");
        assert_eq!(options.stream, "s");
        assert_eq!(options.invocation, Some((DagId::from("abc"), 7)));
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
