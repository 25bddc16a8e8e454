//! Fault injection for tests: kill this process at a chosen point of the worker step.
//!
//! Built only with the `fault-injection` feature (the workspace's tests enable it; a normal
//! build compiles [`reached`] to nothing). A worker process started with
//! `DAG_FAULT=<point>:<n>` sends itself SIGKILL the `n`-th time (1-based) it reaches `<point>`,
//! so a test can check that the DAG still completes, on other workers, with the right result
//! (with [`ONCE_ENV`] set, only the first process to reach the point dies):
//!
//! | point | the process dies ... |
//! | --- | --- |
//! | `before_task` | with the inputs fetched, before running the task |
//! | `before_complete` | after running the task, before storing its output and marking its children (one atomic store call, so there is no state between those two) |
//! | `before_delegate` | after the children became ready, before handing them on |
//! | `before_ack` | after handing everything on, before acknowledging its stream entry |
//! | `while_kept` | a large output kept in the worker (clustering) or held (delayed I/O): some children marked, the others not, the output not stored |

/// A point in the worker step where a test can kill the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// Inputs fetched, the task not run.
    BeforeTask,
    /// The task ran; its output is not stored and its children are not marked.
    BeforeComplete,
    /// Children became ready (they are claimed by this run) but are not handed on.
    BeforeDelegate,
    /// Everything is handed on; the stream entry is not acknowledged.
    BeforeAck,
    /// A large output is kept in the worker or held: the children it made ready are marked
    /// and claimed, the others not, and the output is not stored (task clustering, delayed
    /// I/O).
    WhileKept,
}

impl FaultPoint {
    /// The name `DAG_FAULT` uses.
    pub fn name(self) -> &'static str {
        match self {
            FaultPoint::BeforeTask => "before_task",
            FaultPoint::BeforeComplete => "before_complete",
            FaultPoint::BeforeDelegate => "before_delegate",
            FaultPoint::BeforeAck => "before_ack",
            FaultPoint::WhileKept => "while_kept",
        }
    }

    /// Every point, in the order the step reaches them.
    pub const ALL: [FaultPoint; 5] = [
        FaultPoint::BeforeTask,
        FaultPoint::BeforeComplete,
        FaultPoint::WhileKept,
        FaultPoint::BeforeDelegate,
        FaultPoint::BeforeAck,
    ];
}

/// The environment variable naming the point and the count: `before_delegate:2`.
pub const ENV: &str = "DAG_FAULT";

/// Optional: a file path. A process kills itself only if it can create this file, so among
/// processes started with the same environment (one process per invocation) only the first
/// to get there dies.
pub const ONCE_ENV: &str = "DAG_FAULT_ONCE";

/// Called by the engine at `point`: kills the process if `DAG_FAULT` says so (and the
/// `fault-injection` feature is on); otherwise does nothing.
#[inline]
pub fn reached(point: FaultPoint) {
    #[cfg(feature = "fault-injection")]
    armed::reached(point);
    #[cfg(not(feature = "fault-injection"))]
    let _ = point;
}

#[cfg(feature = "fault-injection")]
mod armed {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    use super::{FaultPoint, ENV, ONCE_ENV};

    static PLAN: OnceLock<Option<(FaultPoint, u64)>> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);

    fn plan() -> Option<(FaultPoint, u64)> {
        *PLAN.get_or_init(|| {
            let text = std::env::var(ENV).ok()?;
            let (name, nth) = text.split_once(':').unwrap_or((&text, "1"));
            let point = FaultPoint::ALL.into_iter().find(|p| p.name() == name);
            match (point, nth.parse::<u64>()) {
                (Some(point), Ok(nth)) if nth >= 1 => Some((point, nth)),
                _ => panic!(
                    "{ENV} must be `<point>:<n>` with a point of {:?}",
                    FaultPoint::ALL
                ),
            }
        })
    }

    pub(super) fn reached(point: FaultPoint) {
        let Some((at, nth)) = plan() else { return };
        if at == point && COUNT.fetch_add(1, Ordering::SeqCst) + 1 == nth {
            if let Ok(path) = std::env::var(ONCE_ENV) {
                let first = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path);
                if first.is_err() {
                    return;
                }
            }
            eprintln!("dag: {ENV}: killing this process at {}", point.name());
            // SAFETY: kill and getpid have no preconditions; SIGKILL ends the process here,
            // like a machine failure: no destructor, no flush, no acknowledgement runs.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}
