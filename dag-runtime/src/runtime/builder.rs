//! [`RuntimeBuilder`]: choosing a runtime's store, its workers and where invocations go.

use std::sync::Arc;
use std::time::Duration;

use super::invoker::{Invoker, RedisTarget};
use super::io::IoRuntime;
use super::metrics::RuntimeMetrics;
use super::{Runtime, RuntimeInner};
use crate::engine::{Locality, WorkerContext};
use crate::error::DagError;
use crate::metrics::MetricsStorage;
use crate::store::{MemoryStore, RedisAddress, RedisConfig, RedisStore, Store};
use crate::task::TaskPolicy;

/// Where invocations go, as chosen on the builder.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Target {
    #[default]
    Local,
    Pool,
    Spawn(usize),
    PerInvocation(usize),
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
    metrics: Option<MetricsStorage>,
    progress: bool,
    locality: Locality,
}

enum StoreChoice {
    /// A store of the user's; `in_process` for a [`MemoryStore`], whose DAGs end with the process.
    Given {
        store: Arc<dyn Store>,
        in_process: bool,
    },
    Redis(RedisAddress),
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
        self.store = Some(StoreChoice::Redis(RedisAddress::Server(url.into())));
        self
    }

    /// Keeps DAG state in a Redis Cluster (or Valkey cluster) whose seed nodes are `urls`
    /// (any iterator of URL strings, `redis://[[user]:password@]host:port`: some of its nodes;
    /// the client learns the others from them), through the redis crate's async cluster client.
    /// Like [`redis`](Self::redis) otherwise (the same defaults, worker processes too: they get
    /// the seeds as `DAG_REDIS_CLUSTER`); it replaces a store set before, and vice versa.
    ///
    /// Every key of one DAG carries the DAG's hash tag, so each DAG's scripts run on one shard
    /// while different DAGs spread over the shards; redirections, resharding and failovers are
    /// followed by the cluster client. What works on a cluster and what not yet: the README's
    /// "Redis Cluster" section (metrics kept in the DAG's store stay in the process on a
    /// cluster, for one).
    ///
    /// ```no_run
    /// use dag::prelude::*;
    ///
    /// #[task]
    /// fn add(a: i64, b: i64) -> i64 { a + b }
    ///
    /// let seeds = ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000", "redis://10.0.0.3:7000"];
    /// let runtime = Runtime::builder().redis_cluster(seeds).build()?;
    /// assert_eq!(add(2, 3).compute_on(&runtime)?, 5);
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn redis_cluster<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.store = Some(StoreChoice::Redis(RedisAddress::cluster(urls)));
        self
    }

    /// Keeps DAG state at `address`: [`redis`](Self::redis) or
    /// [`redis_cluster`](Self::redis_cluster), whichever it names.
    ///
    /// ```no_run
    /// use dag::prelude::*;
    /// use dag::store::RedisAddress;
    ///
    /// let address = RedisAddress::parse_cluster("redis://10.0.0.1:7000,redis://10.0.0.2:7000");
    /// let runtime = Runtime::builder().redis_address(address).build()?;
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn redis_address(mut self, address: RedisAddress) -> Self {
        self.store = Some(StoreChoice::Redis(address));
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
        // Longer than anyone waits, and what a plan may carry (see `Plan::validate`).
        const LONGEST: std::time::Duration = std::time::Duration::from_secs(u32::MAX as u64);
        self.policy.backoff = Some(delay.min(LONGEST));
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
    /// A blocking [`compute`](crate::Node::compute) interrupted by Ctrl-C never returns, so without this
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

    /// Records metrics of every task this runtime's workers run and of every DAG it submits,
    /// stored and uploaded as `storage` says (off by default: nothing is measured). Worker
    /// processes that this runtime starts record too, into the same Redis (a
    /// [`MetricsStorage::memory`] target cannot reach them: their records are lost). Read them
    /// back with [`Runtime::metrics`] or the `dag` command-line tool.
    ///
    /// ```
    /// use dag::metrics::{MetricsStorage, Upload};
    /// use dag::prelude::*;
    ///
    /// let runtime = Runtime::builder()
    ///     .metrics(MetricsStorage::dag_store().upload(Upload::Batch(1_000)))
    ///     .build()?;
    /// assert!(runtime.metrics().is_some());
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn metrics(mut self, storage: MetricsStorage) -> Self {
        self.metrics = Some(storage);
        self
    }

    /// The size (bytes, serialized) from which a task's output is large, for task clustering
    /// and delayed I/O ([`Locality::DEFAULT_LARGE_OUTPUT`], 1 MiB, by default). A task's own
    /// `#[task(large_output = "4MiB")]` wins. See the README's "Locality".
    ///
    /// ```
    /// use dag::prelude::*;
    ///
    /// let runtime = Runtime::builder().large_output(8 << 20).build()?;
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn large_output(mut self, bytes: usize) -> Self {
        self.locality.large_output = bytes;
        self
    }

    /// Task clustering (on by default): the ready children of a large output run in the worker
    /// that has it (in turn, or on the other threads of its process) rather than being handed
    /// to other workers, and the output is stored only if a child that needs it can still
    /// become ready elsewhere. Turn it off when a large output has many children that are
    /// each slow: they then spread over the workers instead of running where the output is.
    ///
    /// ```
    /// use dag::prelude::*;
    ///
    /// let runtime = Runtime::builder().clustering(false).build()?;
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn clustering(mut self, on: bool) -> Self {
        self.locality.clustering = on;
        self
    }

    /// Delayed I/O (off by default): when no child of a large output is ready yet,
    /// the worker holds the output up to this long, checking whether it has become the last
    /// missing parent of a child, and runs the child itself if so; it stores the output only
    /// when the wait runs out. The children a large output makes ready at once stay in the
    /// worker too, as with [`clustering`](Self::clustering). `None` (the default) turns it
    /// off: it saved bytes on some shapes but was slower than clustering alone on every shape
    /// measured (BENCHMARKS.md), and a holding worker takes no other task meanwhile.
    ///
    /// ```
    /// use std::time::Duration;
    /// use dag::prelude::*;
    ///
    /// let runtime = Runtime::builder().delayed_io(Some(Duration::from_millis(250))).build()?;
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn delayed_io(mut self, longest_wait: Option<Duration>) -> Self {
        self.locality.delayed_io = longest_wait;
        self
    }

    /// All three locality settings at once (see [`Locality`]).
    ///
    /// ```
    /// use dag::prelude::*;
    /// use dag::Locality;
    ///
    /// let runtime = Runtime::builder().locality(Locality::OFF).build()?;
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn locality(mut self, locality: Locality) -> Self {
        self.locality = locality;
        self
    }

    /// Shows a progress bar on stderr during each `compute` (tasks done / total, rate, ETA),
    /// fed by the DAG's events; only drawn when stderr is a terminal (off by default). Tasks of
    /// a dynamic map's elements are not in the total.
    ///
    /// ```
    /// use dag::prelude::*;
    /// use std::io::IsTerminal;
    ///
    /// let runtime = Runtime::builder().progress(std::io::stderr().is_terminal()).build()?;
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
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
        if self.target != Target::Local && !matches!(self.store, Some(StoreChoice::Redis(_))) {
            return Err(DagError::Runtime(
                "worker processes share DAGs through Redis: give the runtime a Redis URL with \
                 .redis(url)"
                    .into(),
            ));
        }
        let io = IoRuntime::start()?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let in_process = match &self.store {
            None => true,
            Some(StoreChoice::Given { in_process, .. }) => *in_process,
            Some(StoreChoice::Redis(_)) => false,
        };
        let (store, redis): (Arc<dyn Store>, Option<(RedisAddress, RedisStore)>) = match self.store
        {
            None => (Arc::new(MemoryStore::new()), None),
            Some(StoreChoice::Given { store, .. }) => (store, None),
            Some(StoreChoice::Redis(address)) => {
                // Connect on the runtime's own executor, where the connection's background
                // task will live.
                let config = self.redis_config;
                let connecting = address.clone();
                let store = io.run(async move { connecting.connect(config).await })??;
                (Arc::new(store.clone()), Some((address, store)))
            }
        };
        let threads = self.workers.unwrap_or(match redis {
            Some(_) => (cores * REDIS_WORKERS_PER_CORE).min(REDIS_MAX_DEFAULT_WORKERS),
            None => cores,
        });
        let metrics = match &self.metrics {
            Some(storage) => Some(RuntimeMetrics::start(
                storage,
                // Metrics kept "in the DAG's store" stay in this process on a cluster (their
                // writes span slots; not supported there yet).
                redis.as_ref().and_then(|(address, _)| address.server_url()),
                io.handle(),
            )?),
            None => None,
        };
        let stream = self.stream.as_deref();
        let mut env = self
            .metrics
            .as_ref()
            .map(|m| m.worker_env())
            .unwrap_or_default();
        env.extend(self.locality.env());
        let target = |(address, store)| RedisTarget {
            address,
            store,
            stream,
            env: env.clone(),
        };
        let invoker = match (self.target, redis.as_ref().map(|(a, s)| (a, s))) {
            (Target::Local, _) | (_, None) => {
                let ctx = WorkerContext {
                    store: Arc::clone(&store),
                    io: io.handle().clone(),
                    name: crate::process_name(),
                    policy: self.policy.or(TaskPolicy::DEFAULT),
                    metrics: metrics.as_ref().map(|m| m.workers(&crate::process_name())),
                    locality: self.locality,
                };
                Invoker::local(threads, ctx)?
            }
            (Target::Pool, Some(redis)) => Invoker::pool(target(redis), &io)?,
            (Target::Spawn(n), Some(redis)) => Invoker::spawned(n, threads, target(redis), &io)?,
            (Target::PerInvocation(max), Some(redis)) => {
                Invoker::per_invocation(max, target(redis), &io)?
            }
        };
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                store,
                policy: self.policy,
                cancel_on_interrupt: self.cancel_on_interrupt.unwrap_or(!in_process),
                progress: self.progress,
                invoker,
                metrics,
                io,
            }),
        })
    }
}
