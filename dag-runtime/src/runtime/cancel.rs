//! Ending a DAG the client stopped waiting for: [`CancelOnDrop`], and the [`Cleanups`] that
//! the runtime waits for before it goes away.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::interrupt;
use crate::store::{DagId, Store};

/// How long a `compute` that failed on the client's side waits for its DAG's cancellation
/// before it returns the error: bounded, so that a dead server cannot hold the error up.
pub(super) const CANCEL_LIMIT: Duration = Duration::from_secs(2);

/// Counts cleanups running in the background; [`wait`](Self::wait) waits for them, bounded.
#[derive(Clone, Default)]
pub(crate) struct Cleanups(Arc<(Mutex<usize>, Condvar)>);

impl Cleanups {
    /// Counts one more cleanup until the returned ticket is dropped.
    fn start(&self) -> CleanupTicket {
        *self.0 .0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        CleanupTicket(self.clone())
    }

    /// Waits until no cleanup runs, or `limit` has passed.
    pub(super) fn wait(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let (count, changed) = &*self.0;
        let mut running = count.lock().unwrap_or_else(|e| e.into_inner());
        while *running > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            running = changed
                .wait_timeout(running, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

struct CleanupTicket(Cleanups);

impl Drop for CleanupTicket {
    fn drop(&mut self) {
        let (count, changed) = &*self.0 .0;
        *count.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        changed.notify_all();
    }
}

/// Cancels a submitted DAG when dropped while armed: the client stopped waiting for it (its
/// `compute_async` future was dropped, or a blocking `compute` unwound). While armed, it also
/// keeps the DAG registered for cancellation on SIGINT/SIGTERM, if the runtime wants that.
///
/// Drop must not block, so the cancellation runs as a task on the runtime's own executor,
/// counted in [`Cleanups`] so that the runtime waits for it before it goes away.
pub(super) struct CancelOnDrop {
    armed: Option<Armed>,
    interrupt: Option<interrupt::Tracked>,
}

struct Armed {
    store: Arc<dyn Store>,
    dag: DagId,
    io: tokio::runtime::Handle,
    cleanups: Cleanups,
}

impl CancelOnDrop {
    pub(super) fn new(
        store: &Arc<dyn Store>,
        dag: &DagId,
        io: &tokio::runtime::Handle,
        cleanups: &Cleanups,
        on_interrupt: bool,
    ) -> Self {
        CancelOnDrop {
            interrupt: on_interrupt
                .then(|| interrupt::track(Arc::clone(store), dag.clone(), io.clone())),
            armed: Some(Armed {
                store: Arc::clone(store),
                dag: dag.clone(),
                io: io.clone(),
                cleanups: cleanups.clone(),
            }),
        }
    }

    /// The client collected the outcome: nothing is left to cancel.
    pub(super) fn disarm(&mut self) {
        self.armed = None;
        self.interrupt = None;
    }

    /// Cancels the DAG now and waits for it (at most [`CANCEL_LIMIT`]): the client failed and
    /// will not wait for the DAG, which would otherwise run on with nobody waiting for it.
    pub(super) async fn cancel_now(mut self) {
        self.interrupt = None;
        if let Some(Armed { store, dag, io, .. }) = self.armed.take() {
            // On the runtime's own executor, whose timer works whatever drives this future.
            // Best effort: if the store fails, the keys' TTL and `gc` are the safety net.
            let cancelling = io
                .spawn(async move { tokio::time::timeout(CANCEL_LIMIT, store.cancel(&dag)).await });
            let _ = cancelling.await;
        }
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(Armed {
            store,
            dag,
            io,
            cleanups,
        }) = self.armed.take()
        {
            let ticket = cleanups.start();
            io.spawn(async move {
                let _ = store.cancel(&dag).await;
                drop(ticket);
            });
        }
    }
}
