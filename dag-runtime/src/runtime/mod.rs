//! [`Runtime`]: where DAGs run, and the client side of `compute`.
//!
//! | module | owns |
//! | --- | --- |
//! | `builder` | [`RuntimeBuilder`]: the store, the workers, where invocations go |
//! | `invoker` | one constructor per place invocations can go, and starting a DAG's roots |
//! | `io` | the tokio runtime for store I/O, and blocking on it from any thread |
//! | `cancel` | cancelling a DAG its client stopped waiting for, and waiting for that cleanup |
//! | `progress` | the progress bar of a `compute`, fed by the DAG's events |
//! | `metrics` | the runtime's metrics recorder, its run records, and [`Metrics`] to read them |
//!
//! `Node::compute` and its siblings live with [`Node`](crate::Node) (`graph/compute.rs`) and
//! call `Runtime::run`.

mod builder;
mod cancel;
mod invoker;
mod io;
mod metrics;
mod progress;

pub use self::metrics::Metrics;
pub use builder::{RuntimeBuilder, REDIS_MAX_DEFAULT_WORKERS, REDIS_WORKERS_PER_CORE};

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;

use self::cancel::CancelOnDrop;
use self::invoker::{Invoker, StreamInvoker};
use self::io::IoRuntime;
use crate::engine::LoadedDag;
use crate::error::DagError;
use crate::graph::NodeInner;
use crate::plan::lower;
use crate::store::{DagId, InvocationStream, Outcome, Store};
use crate::task::TaskPolicy;

/// A handle to a place where DAGs run: a store plus the workers that execute tasks.
///
/// `Runtime` is a cheap `Clone + Send + Sync` handle. [`Node::compute`](crate::Node::compute) uses a default embedded
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
    /// Whether `compute` shows a progress bar (on a terminal).
    progress: bool,
    // Declared before `io` so that the workers are told to stop before the executor goes away.
    invoker: Invoker,
    /// Dropped after the workers are told to stop, with a last upload before `io` goes away.
    metrics: Option<self::metrics::RuntimeMetrics>,
    io: IoRuntime,
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

impl Runtime {
    /// A builder for a runtime; `Runtime::builder().build()` is the embedded default.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    /// The shared default runtime that [`Node::compute`](crate::Node::compute) uses, started on first use.
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
                processes: Some(processes),
                ..
            }) => processes.pids(),
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
        if let Some(processes) = &invoker.processes {
            stats.started = processes.started();
            stats.peak_alive = processes.peak_alive();
        }
        Ok(stats)
    }

    /// Blocks this thread on `future`, whatever kind of thread it is.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> Result<F::Output, DagError> {
        self.inner.io.block_on(future)
    }

    /// Removes what expired or abandoned DAGs left in this runtime's store, and returns how
    /// many DAGs it removed; blocks until done. See [`Store::gc`]: on Redis, DAGs older than
    /// [`RedisConfig::key_ttl`](crate::store::RedisConfig::key_ttl) (24 hours by default) that no longer run.
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
    /// If the future is dropped before the outcome is collected, a `CancelOnDrop` guard
    /// cancels the DAG in the store (see [`Store::cancel`]); if the client fails meanwhile (its
    /// store call fails), the DAG is cancelled before the error is returned.
    pub(crate) async fn run(&self, sink: &Arc<NodeInner>) -> Result<Bytes, DagError> {
        let mut plan = lower(sink)?;
        // Workers in other processes apply this runtime's defaults too.
        plan.policy = self.inner.policy;
        // Resolved here, so that a task this program lacks fails before anything is stored.
        let dag = Arc::new(LoadedDag::resolve(DagId::new(), Arc::new(plan))?);
        let RuntimeInner { store, io, .. } = &*self.inner;
        // Armed before the plan is stored: a drop during `put_plan` cancels too.
        let mut guard = CancelOnDrop::new(
            store,
            &dag.id,
            io.handle(),
            &io.cleanups,
            self.inner.cancel_on_interrupt,
        );
        let run_record = self.inner.metrics.as_ref().map(|m| m.submitted(&dag));
        let _progress = self.inner.progress.then(|| {
            let total = dag.plan.nodes.len() as u64;
            self::progress::Progress::start(store, &dag.id, total, io.handle())
        });
        let outcome = async {
            store.put_plan(&dag.id, &dag.plan).await?;
            self.inner.invoker.start(&dag).await?;
            store.wait(&dag.id).await
        };
        let result = match outcome.await {
            Ok(outcome) => {
                // Collected: nothing is left to cancel.
                guard.disarm();
                match outcome {
                    Outcome::Success(bytes) => Ok(bytes),
                    Outcome::Failed(record) => Err(record.into()),
                }
            }
            Err(error) => {
                guard.cancel_now().await;
                Err(error)
            }
        };
        if let (Some(metrics), Some(record)) = (&self.inner.metrics, run_record) {
            metrics.ended(record, result.as_ref().map(|_| ()));
        }
        result
    }
}
