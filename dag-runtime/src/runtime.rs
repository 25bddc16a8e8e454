//! [`Runtime`]: where DAGs run, and the client side of `compute`.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::engine::{Invocation, LoadedPlan, Worker};
use crate::error::DagError;
use crate::graph::{Node, NodeInner};
use crate::interrupt;
use crate::invoke::process::{self, Launcher, SpawnedPool};
use crate::invoke::LocalPool;
use crate::plan::{lower, Plan};
use crate::store::{
    DagId, InvocationStream, MemoryStore, Outcome, RedisConfig, RedisStore, Store, DEFAULT_STREAM,
};
use crate::task::TaskPolicy;

/// A handle to a place where DAGs run: a store plus the workers that execute tasks.
///
/// `Runtime` is a cheap `Clone + Send + Sync` handle. [`Node::compute`] uses a default embedded
/// runtime (in-process store, one worker thread per core); build your own to choose.
///
/// ```
/// use dag::prelude::*;
///
/// #[task]
/// fn add(a: i64, b: i64) -> i64 { a + b }
///
/// let runtime = Runtime::builder().workers(4).build()?;
/// assert_eq!(add(1, 2).compute_on(&runtime)?, 3);
/// # Ok::<(), DagError>(())
/// ```
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    store: Arc<dyn Store>,
    /// The builder's retry policy defaults, carried in every plan this runtime submits.
    policy: TaskPolicy,
    /// Whether SIGINT/SIGTERM cancel this runtime's DAGs in flight (see `interrupt`).
    cancel_on_interrupt: bool,
    // Declared before `io` so that the workers are told to stop before the executor goes away.
    invoker: Invoker,
    io: IoRuntime,
}

/// Where a runtime's invocations go.
enum Invoker {
    /// Worker threads in this process (the embedded default).
    Local(LocalPool),
    /// A Redis Stream read by worker processes.
    Stream(StreamInvoker),
}

struct StreamInvoker {
    stream: InvocationStream,
    /// Processes this runtime started, stopped when it is dropped (before the stream goes).
    processes: Processes,
    /// Whether the stream belongs to this runtime alone (deleted when it is dropped).
    private: bool,
    io: tokio::runtime::Handle,
}

enum Processes {
    None,
    Pool(SpawnedPool),
    Launcher(Launcher),
}

impl Drop for StreamInvoker {
    fn drop(&mut self) {
        // Stop the processes first: they finish and acknowledge their current invocations.
        self.processes = Processes::None;
        if self.private {
            // On a thread of its own: the runtime may be dropped inside async code.
            let (stream, io) = (self.stream.clone(), self.io.clone());
            let _ = std::thread::spawn(move || io.block_on(stream.destroy())).join();
        }
    }
}

/// Where invocations go, as chosen on the builder.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Target {
    #[default]
    Local,
    Pool,
    Spawn(usize),
    PerInvocation(usize),
}

/// What the worker processes of a runtime have done: see [`Runtime::process_stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessStats {
    /// Worker processes this runtime started.
    pub started: usize,
    /// Most worker processes alive at once (for one process per invocation).
    pub peak_alive: usize,
    /// Cold-start times recorded by worker processes on this runtime's stream, oldest first:
    /// from the moment the process was started until it was ready to run its first task
    /// (connected to Redis; with one process per invocation, its DAG's plan loaded).
    pub cold_starts: Vec<Duration>,
}

/// The tokio runtime behind store I/O and `async` task bodies.
struct IoRuntime(Option<tokio::runtime::Runtime>);

impl Drop for IoRuntime {
    fn drop(&mut self) {
        // The last `Runtime` handle may be dropped inside async code, where a blocking shutdown
        // would panic; nothing needs to be waited for once no DAG runs.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Configures a [`Runtime`]. Start with [`Runtime::builder`].
#[derive(Default)]
#[must_use]
pub struct RuntimeBuilder {
    store: Option<StoreChoice>,
    workers: Option<usize>,
    redis_config: RedisConfig,
    policy: TaskPolicy,
    target: Target,
    stream: Option<String>,
    cancel_on_interrupt: Option<bool>,
}

enum StoreChoice {
    /// A store of the user's; `in_process` for a [`MemoryStore`], whose DAGs end with the process.
    Given {
        store: Arc<dyn Store>,
        in_process: bool,
    },
    Redis(String),
}

/// Default number of local worker threads per core with a Redis store (at most
/// [`REDIS_MAX_DEFAULT_WORKERS`] in all).
///
/// A worker spends most of a small task waiting for its round trips, so more threads than cores
/// keep the cores and the server busy on wide graphs. Measured on 2 cores with
/// `DAG_BENCH_WORKERS=1,2,4,8,16,32 cargo bench --bench redis_commands` (µs per task, tree of
/// 16,384 leaves / fan of 10,000): 2 workers 48 / 39, 4: 38 / 30, 8: 32 / 26, 16: 27 / 23,
/// 32: 32 / 22. A chain does not care (one task runs at a time).
pub const REDIS_WORKERS_PER_CORE: usize = 8;

/// Upper bound of the default number of worker threads with a Redis store: one Redis server
/// runs commands one at a time, so beyond a few dozen clients in flight nothing is gained.
pub const REDIS_MAX_DEFAULT_WORKERS: usize = 64;

impl RuntimeBuilder {
    /// Keeps DAG state in `store` instead of a new [`MemoryStore`].
    ///
    /// ```
    /// use dag::prelude::*;
    /// use dag::store::MemoryStore;
    ///
    /// let runtime = Runtime::builder().store(MemoryStore::new()).build()?;
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn store(mut self, store: impl Store) -> Self {
        let in_process = (&store as &dyn std::any::Any).is::<MemoryStore>();
        self.store = Some(StoreChoice::Given {
            store: Arc::new(store),
            in_process,
        });
        self
    }

    /// Keeps DAG state in Redis at `url`: `redis://[[user]:password@]host[:port][/db]`, or
    /// `rediss://...` with the `tls` feature. [`build`](Self::build) connects (see
    /// [`RedisStore`]); it replaces a store set with [`store`](Self::store) and vice versa.
    ///
    /// Unless [`workers`](Self::workers) says otherwise, a Redis runtime starts
    /// [`REDIS_WORKERS_PER_CORE`] worker threads per core (at most
    /// [`REDIS_MAX_DEFAULT_WORKERS`]): workers wait on round trips, so more of them than cores
    /// keep a wide graph moving.
    ///
    /// ```no_run
    /// use dag::prelude::*;
    ///
    /// #[task]
    /// fn add(a: i64, b: i64) -> i64 { a + b }
    ///
    /// let runtime = Runtime::builder().redis("redis://:secret@127.0.0.1:6379/0").build()?;
    /// assert_eq!(add(2, 3).compute_on(&runtime)?, 5);
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.store = Some(StoreChoice::Redis(url.into()));
        self
    }

    /// Timeouts and options of the Redis store that [`redis`](Self::redis) selects (default:
    /// [`RedisConfig::default`]).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use dag::prelude::*;
    /// use dag::store::RedisConfig;
    ///
    /// let runtime = Runtime::builder()
    ///     .redis("redis://127.0.0.1:6379")
    ///     .redis_config(RedisConfig { connect_timeout: Duration::from_secs(1), ..Default::default() })
    ///     .build()?;
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn redis_config(mut self, config: RedisConfig) -> Self {
        self.redis_config = config;
        self
    }

    /// Runs tasks on `n` worker threads (default: one per core; with [`redis`](Self::redis),
    /// [`REDIS_WORKERS_PER_CORE`] per core). With [`spawn_workers`](Self::spawn_workers), `n`
    /// is the number of threads of each worker process; with
    /// [`worker_pool`](Self::worker_pool) and
    /// [`process_per_invocation`](Self::process_per_invocation) it is not used.
    ///
    /// ```
    /// use dag::prelude::*;
    ///
    /// let runtime = Runtime::builder().workers(8).build()?;
    /// assert_eq!(runtime.workers(), 8);
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Sends invocations to a pool of worker processes through a Redis Stream instead of
    /// running them in this process, which then runs no tasks itself. Needs
    /// [`redis`](Self::redis); the workers are processes of a program built from the same code
    /// (any number, on any machines) started with `--dag-worker --redis URL` or `DAG_WORKER=1
    /// DAG_REDIS_URL=...`, whose `main` calls `dag::worker::run_if_worker()` first.
    ///
    /// The stream is `dag:invocations` unless [`stream`](Self::stream) names another.
    ///
    /// ```no_run
    /// use dag::prelude::*;
    ///
    /// #[task]
    /// fn add(a: i64, b: i64) -> i64 { a + b }
    ///
    /// fn main() -> Result<(), DagError> {
    ///     dag::worker::run_if_worker(); // a worker serves here and exits; a client goes on
    ///     let runtime = Runtime::builder().redis("redis://127.0.0.1:6379").worker_pool().build()?;
    ///     assert_eq!(add(1, 2).compute_on(&runtime)?, 3);
    ///     Ok(())
    /// }
    /// ```
    pub fn worker_pool(mut self) -> Self {
        self.target = Target::Pool;
        self
    }

    /// Like [`worker_pool`](Self::worker_pool), with `n` worker processes of this executable
    /// that the runtime starts itself (each with [`workers`](Self::workers) threads, by
    /// default the Redis default) and stops when it is dropped. Unless
    /// [`stream`](Self::stream) names a shared one, they serve a stream of this runtime's own.
    ///
    /// `main` must call `dag::worker::run_if_worker()` first; [`build`](Self::build) fails
    /// otherwise, since the processes would run the client's program again.
    ///
    /// ```no_run
    /// use dag::prelude::*;
    ///
    /// #[task]
    /// fn add(a: i64, b: i64) -> i64 { a + b }
    ///
    /// fn main() -> Result<(), DagError> {
    ///     dag::worker::run_if_worker();
    ///     let runtime = Runtime::builder().redis("redis://127.0.0.1:6379").spawn_workers(2).build()?;
    ///     assert_eq!(add(1, 2).compute_on(&runtime)?, 3);
    ///     Ok(())
    /// }
    /// ```
    pub fn spawn_workers(mut self, n: usize) -> Self {
        self.target = Target::Spawn(n.max(1));
        self
    }

    /// Runs every invocation in a fresh process of this executable, serverless style: the
    /// roots and every child that a worker delegates start a new process, which runs that
    /// invocation (and the children it keeps) and exits. At most `max_alive` such processes run
    /// at once; each records its cold start ([`Runtime::process_stats`]). Needs
    /// [`redis`](Self::redis), and `main` must call `dag::worker::run_if_worker()` first.
    pub fn process_per_invocation(mut self, max_alive: usize) -> Self {
        self.target = Target::PerInvocation(max_alive.max(1));
        self
    }

    /// The Redis Stream key that carries invocations to worker processes (default
    /// `dag:invocations` for [`worker_pool`](Self::worker_pool), a key of the runtime's own for
    /// [`spawn_workers`](Self::spawn_workers) and
    /// [`process_per_invocation`](Self::process_per_invocation)). Workers started by hand
    /// serve it with `--stream KEY`.
    pub fn stream(mut self, key: impl Into<String>) -> Self {
        self.stream = Some(key.into());
        self
    }

    /// Retries a failed task `n` more times (after a panic, an `Err` or a timeout) unless the task
    /// sets its own `#[task(retries = ..)]`. Default: 0.
    ///
    /// This and [`backoff`](Self::backoff) and [`task_timeout`](Self::task_timeout) travel in
    /// each plan the runtime submits, so worker processes apply them as well.
    ///
    /// ```
    /// use dag::prelude::*;
    /// use std::time::Duration;
    ///
    /// let runtime = Runtime::builder()
    ///     .retries(2)
    ///     .backoff(Duration::from_millis(10))
    ///     .task_timeout(Duration::from_secs(60))
    ///     .build()?;
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn retries(mut self, n: u32) -> Self {
        self.policy.retries = Some(n);
        self
    }

    /// Waits `delay` before the first retry, doubling it for each further one (with jitter),
    /// unless the task sets its own `backoff`. Default: 100 ms.
    pub fn backoff(mut self, delay: std::time::Duration) -> Self {
        self.policy.backoff = Some(delay);
        self
    }

    /// Fails an attempt that runs longer than `limit`, unless the task sets its own `timeout`.
    /// An `async` task is cancelled; a sync task is abandoned. Default: no limit.
    pub fn task_timeout(mut self, limit: std::time::Duration) -> Self {
        self.policy.timeout = Some(limit);
        self
    }

    /// Whether Ctrl-C (SIGINT) or SIGTERM first cancels the DAGs this runtime is running, then
    /// ends the process as the signal would have. Default: on, except with an in-process
    /// [`MemoryStore`] (the embedded default), whose DAGs end with the process anyway.
    ///
    /// A blocking [`compute`](Node::compute) interrupted by Ctrl-C never returns, so without this
    /// a DAG kept in Redis runs on in worker processes until its keys expire
    /// ([`RedisConfig::key_ttl`]). With it, while a `compute` of this runtime waits, SIGINT and
    /// SIGTERM cancel its DAG ([`Store::cancel`]: its keys are deleted and workers stop taking its
    /// tasks), waiting at most about 2 seconds for the store so that a dead server cannot hold the
    /// exit up; then the default disposition is restored and the signal raised again, so the
    /// process ends by that signal as it would have (exit status 130 in a shell for Ctrl-C). With
    /// no DAG in flight the signal acts as the default right away. Signals sent together (within
    /// 100 ms, such as the SIGTERM that `timeout` sends to the process and again to its group)
    /// are one request and wait for the cancellation; a later one during the cancellation ends
    /// the process at once.
    ///
    /// Unix only. The signals are watched by a thread started on the first `compute` of a
    /// runtime with this on (not at [`build`](Self::build)), and only a signal whose disposition
    /// is still the default is taken over then: a program that handles SIGINT or SIGTERM itself
    /// (a worker process of `dag::worker`, or a handler of your own installed before the first
    /// `compute`) or ignores it keeps that behaviour. A handler installed later with
    /// `signal-hook` or `tokio::signal` runs alongside, and the process still ends: turn this off
    /// in a program that wants to survive Ctrl-C.
    ///
    /// ```no_run
    /// use dag::prelude::*;
    ///
    /// #[task]
    /// fn add(a: i64, b: i64) -> i64 { a + b }
    ///
    /// // On: Ctrl-C during this `compute` deletes the DAG from Redis before the process dies.
    /// let runtime = Runtime::builder().redis("redis://127.0.0.1:6379").build()?;
    /// assert!(runtime.cancels_on_interrupt());
    /// assert_eq!(add(1, 2).compute_on(&runtime)?, 3);
    ///
    /// // Off: the program handles Ctrl-C itself; DAGs it leaves behind expire or are `gc`ed.
    /// let runtime = Runtime::builder()
    ///     .redis("redis://127.0.0.1:6379")
    ///     .cancel_on_interrupt(false)
    ///     .build()?;
    /// assert!(!runtime.cancels_on_interrupt());
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn cancel_on_interrupt(mut self, on: bool) -> Self {
        self.cancel_on_interrupt = Some(on);
        self
    }

    /// Starts the runtime's threads, and connects to Redis if [`redis`](Self::redis) was given.
    ///
    /// Fails with [`DagError::Runtime`] if the operating system refuses to start the threads,
    /// and with [`DagError::Redis`] if the Redis server cannot be reached or refuses the
    /// credentials (after at most a few seconds).
    ///
    /// ```
    /// use dag::prelude::*;
    ///
    /// let runtime = Runtime::builder().build()?;
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn build(self) -> Result<Runtime, DagError> {
        let io = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dag-io")
            .enable_all()
            .build()
            .map_err(|e| DagError::Runtime(format!("could not start the I/O runtime: {e}")))?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        if self.target != Target::Local && !matches!(self.store, Some(StoreChoice::Redis(_))) {
            return Err(DagError::Runtime(
                "worker processes share DAGs through Redis: give the runtime a Redis URL with \
                 .redis(url)"
                    .into(),
            ));
        }
        if matches!(self.target, Target::Spawn(_) | Target::PerInvocation(_)) {
            process::check_can_spawn()?;
        }
        let mut redis: Option<(String, RedisStore)> = None;
        let in_process = match &self.store {
            None => true,
            Some(StoreChoice::Given { in_process, .. }) => *in_process,
            Some(StoreChoice::Redis(_)) => false,
        };
        let cancel_on_interrupt = self.cancel_on_interrupt.unwrap_or(!in_process);
        let (store, default_workers): (Arc<dyn Store>, usize) = match self.store {
            None => (Arc::new(MemoryStore::new()), cores),
            Some(StoreChoice::Given { store, .. }) => (store, cores),
            Some(StoreChoice::Redis(url)) => {
                let kept_url = url.clone();
                // Connect on the runtime's own executor, where the connection's background
                // task will live, and wait for it from whatever thread calls `build`.
                let config = self.redis_config;
                let connecting =
                    io.spawn(async move { RedisStore::connect_with(&url, config).await });
                let store = futures::executor::block_on(connecting).map_err(|e| {
                    DagError::Runtime(format!("connecting to Redis did not finish: {e}"))
                })??;
                redis = Some((kept_url, store.clone()));
                (
                    Arc::new(store),
                    (cores * REDIS_WORKERS_PER_CORE).min(REDIS_MAX_DEFAULT_WORKERS),
                )
            }
        };
        let workers = self.workers.unwrap_or(default_workers);
        let invoker =
            match (self.target, redis) {
                (Target::Local, _) | (_, None) => {
                    let worker = Worker {
                        store: Arc::clone(&store),
                        handle: io.handle().clone(),
                        id: crate::worker_id(),
                        policy: self.policy.or(TaskPolicy::DEFAULT),
                    };
                    Invoker::Local(LocalPool::start(workers, worker)?)
                }
                (target, Some((url, redis))) => {
                    let private = self.stream.is_none() && target != Target::Pool;
                    let key = self.stream.unwrap_or_else(|| match target {
                        Target::Pool => DEFAULT_STREAM.to_owned(),
                        _ => format!("dag:stream:{}", DagId::new()),
                    });
                    let stream = InvocationStream::new(redis, key);
                    let creating = {
                        let stream = stream.clone();
                        io.spawn(async move { stream.create_group().await })
                    };
                    futures::executor::block_on(creating).map_err(|e| {
                        DagError::Runtime(format!(
                            "creating the invocation stream did not finish: {e}"
                        ))
                    })??;
                    let mut invoker = StreamInvoker {
                        stream: stream.clone(),
                        processes: Processes::None,
                        private,
                        io: io.handle().clone(),
                    };
                    invoker.processes =
                        match target {
                            Target::Spawn(n) => {
                                Processes::Pool(SpawnedPool::start(n, &url, stream.key(), workers)?)
                            }
                            Target::PerInvocation(max_alive) => Processes::Launcher(
                                Launcher::start(stream, url, max_alive, io.handle().clone())?,
                            ),
                            Target::Local | Target::Pool => Processes::None,
                        };
                    Invoker::Stream(invoker)
                }
            };
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                store,
                policy: self.policy,
                cancel_on_interrupt,
                invoker,
                io: IoRuntime(Some(io)),
            }),
        })
    }
}

impl Runtime {
    /// A builder for a runtime; `Runtime::builder().build()` is the embedded default.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// The shared default runtime that [`Node::compute`] uses, started on first use.
    pub fn global() -> Result<Runtime, DagError> {
        static GLOBAL: OnceLock<Result<Runtime, DagError>> = OnceLock::new();
        GLOBAL.get_or_init(|| Runtime::builder().build()).clone()
    }

    /// Whether Ctrl-C and SIGTERM cancel this runtime's DAGs in flight before the process ends
    /// (see [`RuntimeBuilder::cancel_on_interrupt`]).
    ///
    /// ```
    /// use dag::prelude::*;
    ///
    /// // The embedded store's DAGs end with the process: nothing to cancel.
    /// assert!(!Runtime::builder().build()?.cancels_on_interrupt());
    /// assert!(Runtime::builder().cancel_on_interrupt(true).build()?.cancels_on_interrupt());
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn cancels_on_interrupt(&self) -> bool {
        self.inner.cancel_on_interrupt
    }

    /// Number of worker threads in this process (0 when invocations go to worker processes).
    pub fn workers(&self) -> usize {
        match &self.inner.invoker {
            Invoker::Local(pool) => pool.threads(),
            Invoker::Stream(_) => 0,
        }
    }

    /// The Redis Stream that carries this runtime's invocations to worker processes, if they
    /// go there.
    pub fn invocation_stream(&self) -> Option<&InvocationStream> {
        match &self.inner.invoker {
            Invoker::Local(_) => None,
            Invoker::Stream(invoker) => Some(&invoker.stream),
        }
    }

    /// The ids of the worker processes that [`spawn_workers`](RuntimeBuilder::spawn_workers)
    /// started (empty otherwise).
    pub fn worker_pids(&self) -> Vec<u32> {
        match &self.inner.invoker {
            Invoker::Stream(StreamInvoker {
                processes: Processes::Pool(pool),
                ..
            }) => pool.pids(),
            _ => Vec::new(),
        }
    }

    /// What this runtime's worker processes have done: how many were started, how many were
    /// alive at most at once, and the cold starts they recorded on its stream.
    ///
    /// Empty for the local runtime. Cold starts are recorded by processes that a runtime
    /// started ([`spawn_workers`](RuntimeBuilder::spawn_workers),
    /// [`process_per_invocation`](RuntimeBuilder::process_per_invocation)), not by workers
    /// started by hand.
    pub fn process_stats(&self) -> Result<ProcessStats, DagError> {
        let Invoker::Stream(invoker) = &self.inner.invoker else {
            return Ok(ProcessStats::default());
        };
        let mut stats = ProcessStats {
            cold_starts: self.block_on(invoker.stream.cold_starts())??,
            ..ProcessStats::default()
        };
        match &invoker.processes {
            Processes::Pool(pool) => {
                stats.started = pool.pids().len();
                stats.peak_alive = stats.started;
            }
            Processes::Launcher(launcher) => {
                stats.started = launcher.counters.started.load(Ordering::Relaxed);
                stats.peak_alive = launcher.counters.peak_alive.load(Ordering::Relaxed);
            }
            Processes::None => {}
        }
        Ok(stats)
    }

    fn io_handle(&self) -> &tokio::runtime::Handle {
        self.inner
            .io
            .0
            .as_ref()
            .expect("the I/O runtime lives as long as the Runtime")
            .handle()
    }

    /// Blocks this thread on `future`, whatever kind of thread it is.
    fn block_on<F: Future>(&self, future: F) -> Result<F::Output, DagError> {
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current() {
            Err(_) => Ok(self.io_handle().block_on(future)),
            Ok(current) if current.runtime_flavor() == RuntimeFlavor::MultiThread => {
                Ok(tokio::task::block_in_place(|| {
                    self.io_handle().block_on(future)
                }))
            }
            Ok(_) => Err(DagError::Runtime(
                "compute() blocks the thread, but this thread runs a single-threaded tokio \
                 runtime; use `compute_async().await` here instead"
                    .into(),
            )),
        }
    }

    /// Removes what expired or abandoned DAGs left in this runtime's store, and returns how
    /// many DAGs it removed; blocks until done. See [`Store::gc`]: on Redis, DAGs older than
    /// [`RedisConfig::key_ttl`] (24 hours by default) that no longer run.
    ///
    /// ```
    /// use dag::prelude::*;
    ///
    /// let runtime = Runtime::builder().build()?;
    /// assert_eq!(runtime.gc()?, 0);
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn gc(&self) -> Result<usize, DagError> {
        self.block_on(self.inner.store.gc())?
    }

    /// Lowers the graph behind `sink`, runs it and returns the sink's output bytes.
    ///
    /// If the future is dropped before the outcome is collected, a [`CancelOnDrop`] guard
    /// cancels the DAG in the store (see [`Store::cancel`]).
    async fn run(&self, sink: &Arc<NodeInner>) -> Result<Bytes, DagError> {
        let mut plan = lower(sink)?;
        // Workers in other processes apply this runtime's defaults too.
        plan.policy = self.inner.policy;
        let plan = Arc::new(plan);
        let store = &self.inner.store;
        let (dag, mut guard) = match &self.inner.invoker {
            Invoker::Local(pool) => {
                let loaded = Arc::new(LoadedPlan::resolve(DagId::new(), Arc::clone(&plan))?);
                // Armed before the plan is stored: a drop during `put_plan` cancels too.
                let guard = self.cancel_on_drop(&loaded.dag);
                store.put_plan(&loaded.dag, &plan).await?;
                for root in plan.roots() {
                    pool.submit(
                        Arc::clone(&loaded),
                        Invocation {
                            node: root,
                            carried: None,
                        },
                    );
                }
                (loaded.dag.clone(), guard)
            }
            Invoker::Stream(invoker) => {
                let dag = DagId::new();
                let guard = self.cancel_on_drop(&dag);
                store.put_plan(&dag, &plan).await?;
                let roots: Vec<(DagId, u32)> = plan.roots().map(|r| (dag.clone(), r)).collect();
                invoker.stream.submit(&roots).await?;
                (dag, guard)
            }
        };
        let outcome = store.wait(&dag).await?;
        // Collected: nothing is left to cancel. (After an error the guard still cancels: the
        // DAG may run on with nobody waiting for it.)
        guard.disarm();
        match outcome {
            Outcome::Success(bytes) => Ok(bytes),
            Outcome::Failed(record) => Err(record.into()),
        }
    }

    fn cancel_on_drop(&self, dag: &DagId) -> CancelOnDrop {
        let (store, io) = (&self.inner.store, self.io_handle());
        CancelOnDrop {
            interrupt: self
                .inner
                .cancel_on_interrupt
                .then(|| interrupt::track(Arc::clone(store), dag.clone(), io.clone())),
            armed: Some((Arc::clone(store), dag.clone(), io.clone())),
        }
    }
}

/// Cancels a submitted DAG when dropped while armed: the client stopped waiting for it (its
/// `compute_async` future was dropped, or a blocking `compute` unwound). While armed, it also
/// keeps the DAG registered for cancellation on SIGINT/SIGTERM, if the runtime wants that.
///
/// Drop must not block, so the cancellation runs as a task on the runtime's own executor.
struct CancelOnDrop {
    armed: Option<(Arc<dyn Store>, DagId, tokio::runtime::Handle)>,
    interrupt: Option<interrupt::Tracked>,
}

impl CancelOnDrop {
    fn disarm(&mut self) {
        self.armed = None;
        self.interrupt = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some((store, dag, io)) = self.armed.take() {
            // Best effort: if the store fails, the keys' TTL and `gc` are the safety net.
            io.spawn(async move {
                let _ = store.cancel(&dag).await;
            });
        }
    }
}

impl<T> Node<T> {
    /// Lowers the graph that ends in this node into the [`Plan`] that workers execute, without
    /// running it: useful to inspect a graph's size and shape.
    ///
    /// ```
    /// use dag::prelude::*;
    ///
    /// #[task]
    /// fn inc(x: i64) -> i64 { x + 1 }
    ///
    /// let x = inc(1);
    /// let plan = inc(inc(&x)).plan()?;
    /// assert_eq!(plan.nodes.len(), 3);
    /// assert_eq!(plan.roots().collect::<Vec<_>>(), vec![0]);
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn plan(&self) -> Result<Plan, DagError> {
        lower(self.inner())
    }
}

impl<T: DeserializeOwned> Node<T> {
    /// Runs the graph that ends in this node on the default embedded runtime and returns its
    /// value, blocking until it is done.
    ///
    /// Works from any thread, including a worker thread of a multi-threaded tokio runtime; in
    /// async code prefer [`compute_async`](Node::compute_async).
    ///
    /// ```
    /// use dag::prelude::*;
    ///
    /// #[task]
    /// fn square(x: i64) -> i64 { x * x }
    ///
    /// assert_eq!(square(square(3)).compute()?, 81);
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn compute(&self) -> Result<T, DagError> {
        self.compute_on(&Runtime::global()?)
    }

    /// Like [`compute`](Node::compute), on `runtime`.
    ///
    /// ```
    /// use dag::prelude::*;
    ///
    /// #[task]
    /// fn square(x: i64) -> i64 { x * x }
    ///
    /// let runtime = Runtime::builder().workers(2).build()?;
    /// assert_eq!(square(4).compute_on(&runtime)?, 16);
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn compute_on(&self, runtime: &Runtime) -> Result<T, DagError> {
        runtime.block_on(self.compute_async_on(runtime))?
    }

    /// Runs the graph on the default embedded runtime without blocking the caller's executor.
    ///
    /// ```
    /// use dag::prelude::*;
    ///
    /// #[task]
    /// async fn delayed(x: i64) -> i64 {
    ///     tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    ///     x
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// assert_eq!(delayed(5).compute_async().await?, 5);
    /// # Ok::<(), DagError>(())
    /// # }).unwrap();
    /// ```
    pub async fn compute_async(&self) -> Result<T, DagError> {
        self.compute_async_on(&Runtime::global()?).await
    }

    /// Like [`compute_async`](Node::compute_async), on `runtime`.
    pub async fn compute_async_on(&self, runtime: &Runtime) -> Result<T, DagError> {
        let bytes = runtime.run(self.inner()).await?;
        codec::decode(&bytes).map_err(|message| DagError::Codec {
            action: "decode",
            what: format!("the result of task `{}`", self.task_name()),
            message,
        })
    }
}
