//! Backtraces of panicking tasks, for the error record (`RUST_BACKTRACE=1` enables them).
//!
//! A caught panic's payload has no backtrace, so a panic hook takes one while the panic
//! unwinds, on the panicking thread, and leaves it in a thread-local for [`take`]. The hook is
//! installed the first time a task runs, and hands every panic on to the hook that was there
//! before (by default the one that prints the message), so a program's own hook or output is
//! not lost. It only captures inside task bodies ([`InTask`]), and only when the standard
//! library's rules say backtraces are on (`RUST_BACKTRACE` / `RUST_LIB_BACKTRACE`).

use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::{Cell, RefCell};
use std::sync::Once;

thread_local! {
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
    static CAPTURED: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Marks this thread as running a task body until dropped.
pub(crate) struct InTask {
    was: bool,
}

impl InTask {
    pub(crate) fn enter() -> InTask {
        HOOK.call_once(install_hook);
        CAPTURED.with(|c| c.borrow_mut().take());
        InTask {
            was: IN_TASK.with(|t| t.replace(true)),
        }
    }
}

impl Drop for InTask {
    fn drop(&mut self) {
        IN_TASK.with(|t| t.set(self.was));
    }
}

/// The backtrace of the last panic of a task body on this thread, if one was captured.
pub(crate) fn take() -> Option<String> {
    CAPTURED.with(|c| c.borrow_mut().take())
}

fn install_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if IN_TASK.with(Cell::get) {
            let backtrace = Backtrace::capture();
            if backtrace.status() == BacktraceStatus::Captured {
                CAPTURED.with(|c| *c.borrow_mut() = Some(backtrace.to_string()));
            }
        }
        previous(info);
    }));
}
