//! The tokio runtime behind a [`Runtime`](super::Runtime)'s store I/O and `async` task bodies,
//! and the bridge that lets blocking code wait on it from any kind of thread.

use std::future::Future;
use std::time::Duration;

use super::cancel::Cleanups;
use crate::error::DagError;

/// How long dropping a runtime waits for the cleanups its dropped `compute`s started.
const CLEANUP_LIMIT: Duration = Duration::from_secs(2);

/// A small multi-threaded tokio runtime (one thread): store calls are I/O, and worker threads
/// block on them rather than run inside it.
pub(super) struct IoRuntime {
    runtime: Option<tokio::runtime::Runtime>,
    /// Cleanups started in the background (by a dropped `compute`), waited for before the
    /// runtime goes away, so that a program exiting right after an error leaves no keys behind.
    pub(super) cleanups: Cleanups,
}

impl IoRuntime {
    pub(super) fn start() -> Result<Self, DagError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dag-io")
            .enable_all()
            .build()
            .map_err(|e| DagError::Runtime(format!("could not start the I/O runtime: {e}")))?;
        Ok(IoRuntime {
            runtime: Some(runtime),
            cleanups: Cleanups::default(),
        })
    }

    pub(super) fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("the I/O runtime lives as long as its owner")
            .handle()
    }

    /// Runs `future` on the I/O runtime and waits for it from this (non-async) thread, as
    /// `build` does while the runtime is not a [`Runtime`](super::Runtime) yet.
    pub(super) fn run<F>(&self, future: F) -> Result<F::Output, DagError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let running = self.handle().spawn(future);
        futures::executor::block_on(running)
            .map_err(|e| DagError::Runtime(format!("the I/O runtime dropped a task: {e}")))
    }

    /// Blocks this thread on `future`, whatever kind of thread it is.
    pub(super) fn block_on<F: Future>(&self, future: F) -> Result<F::Output, DagError> {
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current() {
            Err(_) => Ok(self.handle().block_on(future)),
            Ok(current) if current.runtime_flavor() == RuntimeFlavor::MultiThread => {
                Ok(tokio::task::block_in_place(|| {
                    self.handle().block_on(future)
                }))
            }
            Ok(_) => Err(DagError::Runtime(
                "compute() blocks the thread, but this thread runs a single-threaded tokio \
                 runtime; use `compute_async().await` here instead"
                    .into(),
            )),
        }
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        self.cleanups.wait(CLEANUP_LIMIT);
        // The last `Runtime` handle may be dropped inside async code, where a blocking shutdown
        // would panic; nothing needs to be waited for once no DAG runs.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
