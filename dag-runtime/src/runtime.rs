//! [`Runtime`]: where DAGs run, and the client side of `compute`.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::engine::{Invocation, LoadedPlan, Worker};
use crate::error::DagError;
use crate::graph::{Node, NodeInner};
use crate::invoke::LocalPool;
use crate::plan::{lower, Plan};
use crate::store::{DagId, MemoryStore, Outcome, RedisConfig, RedisStore, Store};
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
    // Declared before `io` so that the workers are told to stop before the executor goes away.
    pool: LocalPool,
    io: IoRuntime,
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
}

enum StoreChoice {
    Given(Arc<dyn Store>),
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
        self.store = Some(StoreChoice::Given(Arc::new(store)));
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
    /// [`REDIS_WORKERS_PER_CORE`] per core).
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

    /// Retries a failed task `n` more times (after a panic, an `Err` or a timeout) unless the task
    /// sets its own `#[task(retries = ..)]`. Default: 0.
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
        let (store, default_workers): (Arc<dyn Store>, usize) = match self.store {
            None => (Arc::new(MemoryStore::new()), cores),
            Some(StoreChoice::Given(store)) => (store, cores),
            Some(StoreChoice::Redis(url)) => {
                // Connect on the runtime's own executor, where the connection's background
                // task will live, and wait for it from whatever thread calls `build`.
                let config = self.redis_config;
                let connecting =
                    io.spawn(async move { RedisStore::connect_with(&url, config).await });
                let store = futures::executor::block_on(connecting).map_err(|e| {
                    DagError::Runtime(format!("connecting to Redis did not finish: {e}"))
                })??;
                (
                    Arc::new(store),
                    (cores * REDIS_WORKERS_PER_CORE).min(REDIS_MAX_DEFAULT_WORKERS),
                )
            }
        };
        let workers = self.workers.unwrap_or(default_workers);
        let worker = Worker {
            store: Arc::clone(&store),
            handle: io.handle().clone(),
            id: crate::worker_id(),
            policy: self.policy.or(TaskPolicy::DEFAULT),
        };
        let pool = LocalPool::start(workers, worker)?;
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                store,
                pool,
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

    /// Number of worker threads in this process.
    pub fn workers(&self) -> usize {
        self.inner.pool.threads()
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

    /// Lowers the graph behind `sink`, runs it and returns the sink's output bytes.
    async fn run(&self, sink: &Arc<NodeInner>) -> Result<Bytes, DagError> {
        let plan: Arc<Plan> = Arc::new(lower(sink)?);
        let loaded = Arc::new(LoadedPlan::resolve(DagId::new(), Arc::clone(&plan))?);
        let store = &self.inner.store;
        store.put_plan(&loaded.dag, &plan).await?;
        for root in plan.roots() {
            self.inner.pool.submit(
                Arc::clone(&loaded),
                Invocation {
                    node: root,
                    carried: None,
                },
            );
        }
        match store.wait(&loaded.dag).await? {
            Outcome::Success(bytes) => Ok(bytes),
            Outcome::Failed(record) => Err(record.into()),
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
