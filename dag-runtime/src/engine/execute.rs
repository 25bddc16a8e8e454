//! Running a task body: each attempt with panics caught, `async` bodies driven to completion and
//! the timeout enforced; and the attempts the task's retry policy allows.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;

use crate::task::{TaskDef, TaskPolicy, TaskRun};

use super::backtrace;
use crate::metrics::AttemptEnd;

/// Why a task failed: the task's error text, the panic message or the timeout, on which
/// attempt, and for a panic the backtrace when backtraces are enabled (`RUST_BACKTRACE=1`).
#[derive(Debug)]
pub(crate) struct Failed {
    /// The attempt that failed (1-based); the last one, once retries are used up.
    pub attempt: u32,
    pub message: String,
    pub backtrace: Option<String>,
}

impl Failed {
    /// Whether the attempt ran over the task's timeout.
    pub(crate) fn timed_out(&self) -> bool {
        self.message.starts_with(TIMED_OUT)
    }
}

/// How a timeout's message starts.
const TIMED_OUT: &str = "timed out after";

/// What the retry loop reports to its observer (the metrics timer and the tracing span).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Attempt {
    /// This attempt (1-based) starts.
    Started(u32),
    /// The attempt that started last ended so.
    Ended(AttemptEnd),
}

impl From<String> for Failed {
    /// A failure before or outside any retry: the first attempt's.
    fn from(message: String) -> Self {
        Failed {
            attempt: 1,
            message,
            backtrace: None,
        }
    }
}

/// Runs `def` on `args` until an attempt succeeds or `policy`'s retries are used up; the
/// `Err` is the last attempt's failure. Blocks the calling worker thread, backoff included.
pub(crate) fn run_with_retries(
    def: &'static TaskDef,
    mut args: Vec<Bytes>,
    policy: TaskPolicy,
    io: &tokio::runtime::Handle,
    observe: &mut dyn FnMut(Attempt),
) -> Result<Bytes, Failed> {
    let retries = policy.retries.unwrap_or(0);
    let mut attempt = 1;
    loop {
        observe(Attempt::Started(attempt));
        // Arguments are reference-counted bytes: keeping them for a retry copies no data.
        let attempt_args = if attempt <= retries {
            args.clone()
        } else {
            std::mem::take(&mut args)
        };
        let result = execute(def, attempt_args, io, policy.timeout);
        let end = match &result {
            Ok(_) => AttemptEnd::Ok,
            Err(failed) => AttemptEnd::Failed {
                timed_out: failed.timed_out(),
                last: attempt > retries,
            },
        };
        observe(Attempt::Ended(end));
        match result {
            Ok(output) => return Ok(output),
            Err(_) if attempt <= retries => {
                // The worker thread waits out the backoff: blocking is allowed here.
                std::thread::sleep(policy.delay_before(attempt, fastrand::f64()));
                attempt += 1;
            }
            Err(failed) => return Err(Failed { attempt, ..failed }),
        }
    }
}

/// A caught panic as a failure, with the backtrace the panic hook captured on this thread.
fn panicked(panic: Box<dyn Any + Send>) -> Failed {
    Failed {
        attempt: 1,
        message: panic_message(panic),
        backtrace: backtrace::take(),
    }
}

/// Runs one attempt of `def` on its parameter bytes. `Err` carries the task's error text, the
/// panic message or the timeout.
///
/// Called on a worker thread, where blocking is allowed: a sync body runs right here (or, with a
/// timeout, on a thread of its own that is abandoned if it overruns), and an `async` body is
/// driven by `handle` (so it can use tokio timers and I/O) while this thread waits.
fn execute(
    def: &'static TaskDef,
    args: Vec<Bytes>,
    handle: &tokio::runtime::Handle,
    timeout: Option<Duration>,
) -> Result<Bytes, Failed> {
    let _in_task = backtrace::InTask::enter();
    let run = match timeout {
        None => catch_unwind(AssertUnwindSafe(|| (def.run)(args))),
        Some(limit) => return execute_with_timeout(def, args, handle, limit),
    };
    match run {
        Err(panic) => Err(panicked(panic)),
        Ok(TaskRun::Done(result)) => result.map_err(|f| f.0.into()),
        Ok(TaskRun::Pending(future)) => {
            match handle.block_on(AssertUnwindSafe(future).catch_unwind()) {
                Err(panic) => Err(panicked(panic)),
                Ok(result) => result.map_err(|f| f.0.into()),
            }
        }
    }
}

fn execute_with_timeout(
    def: &'static TaskDef,
    args: Vec<Bytes>,
    handle: &tokio::runtime::Handle,
    limit: Duration,
) -> Result<Bytes, Failed> {
    let timed_out = || Err(Failed::from(format!("{TIMED_OUT} {limit:?}")));
    if def.is_async {
        // Decoding is quick; the future is cancelled at the deadline by dropping it.
        return match catch_unwind(AssertUnwindSafe(|| (def.run)(args))) {
            Err(panic) => Err(panicked(panic)),
            Ok(TaskRun::Done(result)) => result.map_err(|f| f.0.into()),
            Ok(TaskRun::Pending(future)) => {
                // The timer must be created inside the runtime, hence the async block.
                let guarded = async move {
                    tokio::time::timeout(limit, AssertUnwindSafe(future).catch_unwind()).await
                };
                match handle.block_on(guarded) {
                    Err(_) => timed_out(),
                    Ok(Err(panic)) => Err(panicked(panic)),
                    Ok(Ok(result)) => result.map_err(|f| f.0.into()),
                }
            }
        };
    }
    // A sync body cannot be interrupted, so it runs on a thread of its own that this worker
    // stops waiting for at the deadline (the thread finishes on its own and is discarded).
    let (sender, receiver) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("dag-task-{}", def.name))
        .spawn(move || {
            let _in_task = backtrace::InTask::enter();
            let run = catch_unwind(AssertUnwindSafe(|| match (def.run)(args) {
                TaskRun::Done(result) => result.map_err(|f| Failed::from(f.0)),
                TaskRun::Pending(_) => Err("an async task was declared sync".to_owned().into()),
            }));
            let _ = sender.send(run.unwrap_or_else(|panic| Err(panicked(panic))));
        })
        .map_err(|e| format!("could not start a thread for the task's timeout: {e}"))?;
    receiver.recv_timeout(limit).unwrap_or_else(|_| timed_out())
}

pub(crate) fn panic_message(panic: Box<dyn Any + Send>) -> String {
    let text = if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a value that is not a string".to_owned()
    };
    format!("panicked: {text}")
}
