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
    /// The type-erased entry point: one MessagePack buffer per parameter in, output bytes out.
    pub run: fn(Vec<Bytes>) -> TaskRun,
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
        Ok(tasks) => tasks.get(name).copied().ok_or_else(|| DagError::TaskNotFound {
            task: name.to_owned(),
            worker: crate::worker_id(),
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
