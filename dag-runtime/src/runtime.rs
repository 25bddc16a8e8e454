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
use crate::store::{DagId, MemoryStore, Outcome, Store};

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
    store: Option<Arc<dyn Store>>,
    workers: Option<usize>,
}

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
        self.store = Some(Arc::new(store));
        self
    }

    /// Runs tasks on `n` worker threads (default: one per core).
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

    /// Starts the runtime's threads.
    ///
    /// Fails with [`DagError::Runtime`] if the operating system refuses to start them.
    pub fn build(self) -> Result<Runtime, DagError> {
        let io = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dag-io")
            .enable_all()
            .build()
            .map_err(|e| DagError::Runtime(format!("could not start the I/O runtime: {e}")))?;
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let workers = self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let worker = Worker {
            store: Arc::clone(&store),
            handle: io.handle().clone(),
            id: crate::worker_id(),
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
            Ok(current) if current.runtime_flavor() == RuntimeFlavor::MultiThread => Ok(
                tokio::task::block_in_place(|| self.io_handle().block_on(future)),
            ),
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
