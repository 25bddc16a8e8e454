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
//! have without the watcher, also when no DAG is in flight. Signals sent together with the
//! first one (within [`SAME_REQUEST`]: the SIGTERM `timeout` sends to the process and again to
//! its group, Ctrl-C and a supervisor's SIGTERM) are the same request and wait for the
//! cancellation; a later signal, while the cancellation still waits for the store, ends the
//! process at once.
//!
//! The signal handler itself only updates atomics and writes a byte to a socket that wakes the
//! watcher (async-signal-safe); everything else runs on the watcher thread.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use crate::store::{DagId, Store};
use crate::DagError;

/// How long the watcher waits for the cancellations before it lets the signal end the process.
pub(crate) const CANCEL_LIMIT: Duration = Duration::from_secs(2);

/// Signals that arrive within this time of the first one are the same request to stop, so they
/// do not end the process before its DAGs are cancelled; a later one ends it at once. `timeout`
/// sends SIGTERM to the process and then to its group, and a supervisor's SIGTERM can coincide
/// with Ctrl-C: on a loaded machine the two can arrive milliseconds apart, while a person does
/// not press Ctrl-C twice within a tenth of a second.
const SAME_REQUEST: Duration = Duration::from_millis(100);

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

/// Starts cancelling every DAG in flight, all at once, on the executors of their runtimes;
/// [`Cancellations::wait_until`] waits for them.
fn cancel_in_flight() -> Cancellations {
    let dags: Vec<(Arc<dyn Store>, DagId, tokio::runtime::Handle)> = in_flight()
        .values()
        .map(|f| (Arc::clone(&f.store), f.dag.clone(), f.io.clone()))
        .collect();
    let (done, finished) = std::sync::mpsc::channel();
    for (store, dag, io) in &dags {
        let (store, dag, done) = (Arc::clone(store), dag.clone(), done.clone());
        io.spawn(async move {
            let result = store.cancel(&dag).await;
            let _ = done.send((dag, result));
        });
    }
    Cancellations {
        finished,
        left: dags.len(),
    }
}

/// The cancellations [`cancel_in_flight`] started.
struct Cancellations {
    finished: std::sync::mpsc::Receiver<(DagId, Result<bool, DagError>)>,
    left: usize,
}

impl Cancellations {
    /// Waits for the cancellations until `deadline`; true if every one has ended by then. Reports
    /// on stderr what could not be cancelled (the keys' TTL and `gc` are the safety net).
    fn wait_until(&mut self, deadline: Instant, signal: &str) -> bool {
        while self.left > 0 {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.finished.recv_timeout(wait) {
                Ok((_, Ok(_))) => self.left -= 1,
                Ok((dag, Err(e))) => {
                    self.left -= 1;
                    eprintln!(
                        "dag: {signal}: could not cancel DAG {dag}: {e}; its keys expire after \
                         the store's key TTL, and `Runtime::gc` removes them"
                    );
                }
                Err(_) => return false,
            }
        }
        true
    }

    /// Reports the cancellations that did not end within [`CANCEL_LIMIT`].
    fn give_up(&self, signal: &str) {
        eprintln!(
            "dag: {signal}: gave up cancelling {} DAG(s) after {CANCEL_LIMIT:?}; their keys \
             expire after the store's key TTL, and `Runtime::gc` removes them",
            self.left
        );
    }
}

#[cfg(unix)]
mod watcher {
    use std::io::Read;
    use std::os::fd::{IntoRawFd, RawFd};
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
    use std::time::Instant;

    use signal_hook::consts::signal::{SIGINT, SIGTERM};
    use signal_hook::low_level;

    use super::{CANCEL_LIMIT, SAME_REQUEST};

    /// Set by the watcher thread once the cancellations have run for [`SAME_REQUEST`] without
    /// ending; from then on the handler ends the process at once, so that a user who insists is
    /// not kept waiting for a slow store.
    ///
    /// Signals whose handler ran before are one request, not an insistent second one. Counting
    /// signals in the handler instead ended a pair such as `timeout`'s at once, skipping the
    /// cancellation.
    static CANCELLING: AtomicBool = AtomicBool::new(false);

    /// The first signal received, which the watcher handles and ends the process by; 0 before.
    static FIRST: AtomicI32 = AtomicI32::new(0);

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

    /// What the handler does on `signal`: end the process at once if the watcher is already
    /// cancelling, otherwise note the signal and wake the watcher through `wake`.
    ///
    /// One action does both, the check before the wake-up. Were the wake-up a separate action
    /// run first (signal-hook's `Signals` iterator), the woken watcher could set `CANCELLING`
    /// before this signal's own check, which would then end the process mid-cancellation.
    fn on_signal(signal: libc::c_int, wake: RawFd) {
        if CANCELLING.load(Ordering::SeqCst) {
            let _ = low_level::emulate_default_handler(signal);
            return;
        }
        let _ = FIRST.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
        // SAFETY: write(2) of one byte from a static buffer; `wake` stays open for the life of
        // the process. The socket does not block: when it is full the watcher is awake already.
        unsafe { libc::write(wake, b"!".as_ptr().cast(), 1) };
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
        let (mut woken, wake) = match UnixStream::pair().and_then(|(read, write)| {
            write.set_nonblocking(true)?;
            Ok((read, write))
        }) {
            Ok(pair) => pair,
            Err(e) => {
                eprintln!("dag: cannot watch for Ctrl-C to cancel DAGs on it: {e}");
                return;
            }
        };
        // The handler may run at any time until the process ends, so the write end is never
        // closed.
        let wake = wake.into_raw_fd();
        for &signal in &signals {
            // SAFETY: `on_signal` only reads and swaps atomics, writes to a socket and calls
            // emulate_default_handler, all async-signal-safe; it allocates nothing and takes no
            // lock.
            if let Err(e) = unsafe { low_level::register(signal, move || on_signal(signal, wake)) }
            {
                let name = low_level::signal_name(signal).unwrap_or("signal");
                eprintln!("dag: cannot watch for {name} to cancel DAGs on it: {e}");
            }
        }
        let spawned = std::thread::Builder::new()
            .name("dag-interrupt".into())
            .spawn(move || {
                let mut byte = [0u8];
                loop {
                    match woken.read(&mut byte) {
                        Ok(1) => break,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        // Cannot happen while the write end is open; nothing to watch then.
                        _ => return,
                    }
                }
                let started = Instant::now();
                let signal = FIRST.load(Ordering::SeqCst);
                let name = low_level::signal_name(signal).unwrap_or("signal");
                let mut cancellations = super::cancel_in_flight();
                // A signal sent together with the first one is the same request, and must not
                // skip the cancellations; a later one ends the process at once.
                if !cancellations.wait_until(started + SAME_REQUEST, name) {
                    CANCELLING.store(true, Ordering::SeqCst);
                    if !cancellations.wait_until(started + CANCEL_LIMIT, name) {
                        cancellations.give_up(name);
                    }
                }
                let _ = low_level::emulate_default_handler(signal);
                // Not reached for SIGINT and SIGTERM, whose default ends the process.
                std::process::exit(128 + signal);
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
