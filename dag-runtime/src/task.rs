//! Task definitions and the link-time registry that finds them by name.
//!
//! `#[task]` emits one [`TaskDef`] per function and submits it to the registry with `inventory`,
//! so any process built from the same code (a client or a worker) can run a task knowing only its
//! name. The definition holds a type-erased entry point, [`TaskDef::run`], that decodes the
//! parameters from MessagePack, calls the user's body and encodes the output.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;

use crate::error::DagError;

/// A task's failure as the task itself reports it: an `Err`'s text, a decode error, a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure(pub String);

/// The future of an `async` task, already bound to its decoded arguments.
pub type TaskFuture = Pin<Box<dyn Future<Output = Result<Bytes, TaskFailure>>>>;

/// What calling a task's entry point gives: a finished output, or a future for an `async` task.
pub enum TaskRun {
    /// A synchronous task has run to completion.
    Done(Result<Bytes, TaskFailure>),
    /// An `async` task; the engine drives the future where blocking is allowed.
    Pending(TaskFuture),
}

/// One registered task, emitted by `#[task]` as a `static`.
#[derive(Debug)]
pub struct TaskDef {
    /// The stable name the plan refers to: `module::path::function` unless `#[task(name = ..)]`.
    pub name: &'static str,
    /// Parameter names, in order, for error messages.
    pub params: &'static [&'static str],
    /// The function's signature as written, so that a plan from other code can be detected.
    pub signature: &'static str,
    /// Whether the body is an `async fn` (its entry point returns [`TaskRun::Pending`]).
    pub is_async: bool,
    /// Retries and timeout given in `#[task(...)]`; unset fields take the runtime's defaults.
    pub policy: TaskPolicy,
    /// `#[task(large_output = "4MiB")]`: the size from which this task's output counts as large
    /// for task clustering and delayed I/O, instead of the runtime's
    /// [`large_output`](crate::RuntimeBuilder::large_output).
    pub large_output: Option<usize>,
    /// The type-erased entry point: one MessagePack buffer per parameter in, output bytes out.
    pub run: fn(Vec<Bytes>) -> TaskRun,
}

/// How often a task is tried and how long an attempt may take.
///
/// A task's own `#[task(retries = 3, backoff = "100ms", timeout = "30s")]` wins; what it leaves
/// unset comes from the runtime ([`RuntimeBuilder::retries`](crate::RuntimeBuilder::retries) and
/// its siblings), and then from [`TaskPolicy::DEFAULT`]: no retries, 100 ms backoff, no timeout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskPolicy {
    /// Attempts after the first one (a panic, an `Err` and a timeout each count).
    pub retries: Option<u32>,
    /// Delay before the first retry; it doubles for each further retry, with random jitter
    /// (each delay is drawn between half and all of its nominal value).
    pub backoff: Option<Duration>,
    /// How long one attempt may run. An `async` task past it is cancelled; a sync task is
    /// abandoned (its thread finishes on its own) and the attempt counts as failed.
    pub timeout: Option<Duration>,
}

impl TaskPolicy {
    /// No retries, a 100 ms first backoff, no timeout.
    pub const DEFAULT: TaskPolicy = TaskPolicy {
        retries: Some(0),
        backoff: Some(Duration::from_millis(100)),
        timeout: None,
    };

    /// This policy with the unset fields taken from `fallback`.
    pub fn or(self, fallback: TaskPolicy) -> TaskPolicy {
        TaskPolicy {
            retries: self.retries.or(fallback.retries),
            backoff: self.backoff.or(fallback.backoff),
            timeout: self.timeout.or(fallback.timeout),
        }
    }

    /// The delay before retry number `retry` (1 for the first), jittered by `unit` in `[0, 1)`.
    pub fn delay_before(&self, retry: u32, unit: f64) -> Duration {
        let base = self.backoff.unwrap_or_default();
        let nominal = base.saturating_mul(1u32 << (retry.saturating_sub(1)).min(16));
        // Saturating: a backoff near `Duration::MAX` must not overflow into a panic.
        let jittered = nominal.as_secs_f64() * (0.5 + 0.5 * unit.clamp(0.0, 1.0));
        Duration::try_from_secs_f64(jittered).unwrap_or(Duration::MAX)
    }
}

/// What `#[task]` submits to the registry.
pub struct TaskRegistration(pub &'static TaskDef);

inventory::collect!(TaskRegistration);

/// Looks up a registered task by name.
///
/// Fails with [`DagError::DuplicateTaskName`] when two tasks claim one name, since a worker could
/// not tell which to run, and with [`DagError::TaskNotFound`] when none has it.
pub fn lookup(name: &str) -> Result<&'static TaskDef, DagError> {
    match registry() {
        Err(e) => Err(e.clone()),
        Ok(tasks) => tasks
            .get(name)
            .copied()
            .ok_or_else(|| DagError::TaskNotFound {
                task: name.to_owned(),
                worker: crate::process_name(),
            }),
    }
}

fn registry() -> &'static Result<HashMap<&'static str, &'static TaskDef>, DagError> {
    static REGISTRY: OnceLock<Result<HashMap<&'static str, &'static TaskDef>, DagError>> =
        OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut tasks = HashMap::new();
        for TaskRegistration(def) in inventory::iter::<TaskRegistration> {
            if tasks.insert(def.name, *def).is_some() {
                return Err(DagError::DuplicateTaskName {
                    name: def.name.to_owned(),
                });
            }
        }
        Ok(tasks)
    })
}

/// Tasks the runtime itself puts into graphs and plans.
pub mod builtin {
    use super::{TaskDef, TaskFailure, TaskPolicy, TaskRegistration, TaskRun};

    /// A dynamic map node: expanded by the engine when its list is ready, never run as a task.
    pub static MAP: TaskDef = TaskDef {
        name: "dag::map",
        params: &["list"],
        signature: "fn(list: Vec<T>, ..) -> Vec<R>",
        is_async: false,
        policy: TaskPolicy {
            retries: Some(0),
            backoff: None,
            timeout: None,
        },
        large_output: None,
        run: |_| {
            TaskRun::Done(Err(TaskFailure(
                "a map node is expanded by the engine, not run as a task".into(),
            )))
        },
    };

    /// The placeholder a `.map` closure receives; it stands for one element and never runs.
    pub static ELEMENT: TaskDef = TaskDef {
        name: "dag::element",
        params: &[],
        signature: "fn() -> T",
        is_async: false,
        policy: TaskPolicy {
            retries: Some(0),
            backoff: None,
            timeout: None,
        },
        large_output: None,
        run: |_| TaskRun::Done(Err(TaskFailure("a map element never runs".into()))),
    };

    /// Gathers the elements' results of an expanded map into its list, in input order: its one
    /// argument is already that list, assembled from the element outputs.
    pub static COLLECT: TaskDef = TaskDef {
        name: "dag::collect",
        params: &["elements"],
        signature: "fn(elements: Vec<R>) -> Vec<R>",
        is_async: false,
        policy: TaskPolicy {
            retries: Some(0),
            backoff: None,
            timeout: None,
        },
        large_output: None,
        run: |mut args| match args.pop() {
            Some(list) => TaskRun::Done(Ok(list)),
            None => TaskRun::Done(Err(TaskFailure("dag::collect takes one argument".into()))),
        },
    };

    inventory::submit! { TaskRegistration(&MAP) }
    inventory::submit! { TaskRegistration(&COLLECT) }
}
