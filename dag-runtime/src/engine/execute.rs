//! Running one task body: panics caught, `async` bodies driven to completion.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;
use futures::FutureExt;

use crate::task::{TaskDef, TaskRun};

/// Runs `def` on its parameter bytes. `Err` carries the task's error text or panic message.
///
/// Called on a worker thread, where blocking is allowed: a sync body runs right here, and an
/// `async` body is driven by `handle` (so it can use tokio timers and I/O) while this thread waits.
pub fn execute(
    def: &TaskDef,
    args: Vec<Bytes>,
    handle: &tokio::runtime::Handle,
) -> Result<Bytes, String> {
    match catch_unwind(AssertUnwindSafe(|| (def.run)(args))) {
        Err(panic) => Err(panic_message(panic)),
        Ok(TaskRun::Done(result)) => result.map_err(|f| f.0),
        Ok(TaskRun::Pending(future)) => {
            match handle.block_on(AssertUnwindSafe(future).catch_unwind()) {
                Err(panic) => Err(panic_message(panic)),
                Ok(result) => result.map_err(|f| f.0),
            }
        }
    }
}

fn panic_message(panic: Box<dyn Any + Send>) -> String {
    let text = if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a value that is not a string".to_owned()
    };
    format!("panicked: {text}")
}
