//! Ctrl-C and SIGTERM in a client: cancel the DAGs it runs, then end the process as the signal
//! would have.
//!
//! A blocking `compute` interrupted by Ctrl-C never drops its future (the process just dies), so
//! the `CancelOnDrop` guard of `compute` never runs and a DAG in Redis would go on running
//! on workers until its keys expire. A runtime built with
//! [`cancel_on_interrupt`](crate::RuntimeBuilder::cancel_on_interrupt) therefore registers each
//! DAG it submits here ([`track`]) for as long as the client waits for it.
//!
//! The first registration starts a watcher thread (Unix only), once per process. It takes over
//! SIGINT and SIGTERM, each only if its disposition is still the default: a program that handles
//! a signal itself (a worker process of `dag-workers`, or the user's own handler) or ignores it
//! (`nohup`, a background job) keeps that behaviour. On a signal the thread cancels every DAG in
//! flight ([`Store::cancel`](crate::store::Store::cancel), all at once, bounded by
//! [`CANCEL_LIMIT`] so that a dead server cannot delay the exit), then restores the default
//! disposition and raises the signal again: the process ends by that signal, exactly as it would
//! have without the watcher, also when no DAG is in flight. A second signal during the
//! cancellation ends the process at once.
//!
//! The signal handler itself only writes to signal-hook's self-pipe and counts signals in an
//! atomic (async-signal-safe); everything else runs on the watcher thread.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::Duration;

use crate::store::{DagId, Store};

/// How long the watcher waits for the cancellations before it lets the signal end the process.
pub(crate) const CANCEL_LIMIT: Duration = Duration::from_secs(2);

/// A DAG that a client waits for: what cancelling it needs.
struct InFlight {
    store: Arc<dyn Store>,
    dag: DagId,
    io: tokio::runtime::Handle,
}

static IN_FLIGHT: Mutex<BTreeMap<u64, InFlight>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
static WATCHER: Once = Once::new();

fn in_flight() -> MutexGuard<'static, BTreeMap<u64, InFlight>> {
    IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers `dag` as in flight until the returned guard is dropped, and starts the watcher on
/// first use. `io` runs the cancellation (the runtime's own executor, where the store's
/// connection lives).
pub(crate) fn track(store: Arc<dyn Store>, dag: DagId, io: tokio::runtime::Handle) -> Tracked {
    WATCHER.call_once(watcher::start);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    in_flight().insert(id, InFlight { store, dag, io });
    Tracked(id)
}

/// A DAG registered with [`track`]; dropping it unregisters the DAG.
pub(crate) struct Tracked(u64);

impl Drop for Tracked {
    fn drop(&mut self) {
        in_flight().remove(&self.0);
    }
}

/// Cancels every DAG in flight, all at once, waiting at most [`CANCEL_LIMIT`] in all. Reports
/// on stderr what could not be cancelled (the keys' TTL and `gc` are the safety net).
fn cancel_in_flight(signal: &str) {
    let dags: Vec<(Arc<dyn Store>, DagId, tokio::runtime::Handle)> = in_flight()
        .values()
        .map(|f| (Arc::clone(&f.store), f.dag.clone(), f.io.clone()))
        .collect();
    if dags.is_empty() {
        return;
    }
    let (done, finished) = std::sync::mpsc::channel();
    for (store, dag, io) in &dags {
        let (store, dag, done) = (Arc::clone(store), dag.clone(), done.clone());
        io.spawn(async move {
            let result = store.cancel(&dag).await;
            let _ = done.send((dag, result));
        });
    }
    drop(done);
    let deadline = std::time::Instant::now() + CANCEL_LIMIT;
    let mut left = dags.len();
    while left > 0 {
        let wait = deadline.saturating_duration_since(std::time::Instant::now());
        match finished.recv_timeout(wait) {
            Ok((_, Ok(_))) => left -= 1,
            Ok((dag, Err(e))) => {
                left -= 1;
                eprintln!(
                    "dag: {signal}: could not cancel DAG {dag}: {e}; its keys expire after the \
                     store's key TTL, and `Runtime::gc` removes them"
                );
            }
            Err(_) => {
                eprintln!(
                    "dag: {signal}: gave up cancelling {left} DAG(s) after {CANCEL_LIMIT:?}; \
                     their keys expire after the store's key TTL, and `Runtime::gc` removes them"
                );
                return;
            }
        }
    }
}

#[cfg(unix)]
mod watcher {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use signal_hook::consts::signal::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;
    use signal_hook::low_level;

    /// Signals received by the watcher's handler; from the second one on, the handler ends the
    /// process at once.
    static RECEIVED: AtomicUsize = AtomicUsize::new(0);

    /// Whether `signal` still has its default disposition (no handler, not ignored).
    fn is_default(signal: libc::c_int) -> bool {
        // SAFETY: sigaction with a null new action only reads the current one into `current`,
        // a zeroed (valid) sigaction struct owned by this frame.
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            libc::sigaction(signal, std::ptr::null(), &mut current) == 0
                && current.sa_sigaction == libc::SIG_DFL
        }
    }

    /// Takes over the signals that still have their default disposition, and starts the thread
    /// that handles them. Called once per process.
    pub(super) fn start() {
        let signals: Vec<libc::c_int> = [SIGINT, SIGTERM]
            .into_iter()
            .filter(|&s| is_default(s))
            .collect();
        if signals.is_empty() {
            return;
        }
        // The pipe first, the counter second: a signal arriving in between still reaches the
        // watcher, which ends the process in any case.
        let mut iterator = match Signals::new(&signals) {
            Ok(iterator) => iterator,
            Err(e) => {
                eprintln!("dag: cannot watch for Ctrl-C to cancel DAGs on it: {e}");
                return;
            }
        };
        for &signal in &signals {
            let action = move || {
                if RECEIVED.fetch_add(1, Ordering::SeqCst) > 0 {
                    let _ = low_level::emulate_default_handler(signal);
                }
            };
            // SAFETY: the action only updates an atomic and calls emulate_default_handler, both
            // async-signal-safe; it allocates nothing and takes no lock.
            if let Err(e) = unsafe { low_level::register(signal, action) } {
                eprintln!("dag: cannot watch for a second Ctrl-C: {e}");
            }
        }
        let spawned = std::thread::Builder::new()
            .name("dag-interrupt".into())
            .spawn(move || {
                if let Some(signal) = iterator.forever().next() {
                    let name = low_level::signal_name(signal).unwrap_or("signal");
                    super::cancel_in_flight(name);
                    let _ = low_level::emulate_default_handler(signal);
                    // Not reached for SIGINT and SIGTERM, whose default ends the process.
                    std::process::exit(128 + signal);
                }
            });
        if let Err(e) = spawned {
            // The handlers are installed but nobody would act on them: give the signals back
            // their default disposition.
            for &signal in &signals {
                // SAFETY: restores the default disposition; no handler of ours runs after it.
                unsafe { libc::signal(signal, libc::SIG_DFL) };
            }
            eprintln!("dag: cannot start the thread that cancels DAGs on Ctrl-C: {e}");
        }
    }
}

#[cfg(not(unix))]
mod watcher {
    /// Signals are a Unix matter: elsewhere an interrupted client leaves its DAGs to the keys'
    /// TTL and `gc`.
    pub(super) fn start() {}
}
