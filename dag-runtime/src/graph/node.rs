use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use super::scope::Scope;
use super::Arg;
use crate::error::DagError;
use crate::task::{builtin, TaskDef};

/// The innermost scope among the nodes in `args`.
pub(crate) fn args_scope(args: &[Arg]) -> Result<Scope, DagError> {
    let mut scope = Scope::TOP;
    // Most arguments are nodes or constants: only collections go on this stack, so a node
    // without any costs no allocation (this runs once per node built).
    let mut pending: Vec<&Arg> = Vec::new();
    let mut args = args.iter();
    loop {
        let Some(arg) = pending.pop().or_else(|| args.next()) else {
            return Ok(scope);
        };
        match arg {
            Arg::Node(node) => {
                scope = scope.innermost(node.scope).map_err(|()| {
                    DagError::InvalidGraph(
                        "a task combines the elements of two different `.map` closures; an \
                         element can only be used inside the closure that received it"
                            .into(),
                    )
                })?;
            }
            Arg::List(items) => pending.extend(items),
            Arg::Map(entries) => pending.extend(entries.iter().map(|(_, a)| a)),
            Arg::Const(_) | Arg::Invalid(_) => {}
        }
    }
}

/// A lazy value of type `T`: a task and its arguments, not yet run.
///
/// `Node` is a cheap handle (one `Arc`): clone it to use one result in several places; a node
/// used by several children still runs once per `compute`. A node can be computed several times
/// and reused in new graphs.
///
/// ```
/// use dag::prelude::*;
///
/// #[task]
/// fn double(x: i64) -> i64 { x * 2 }
///
/// let four = double(2);
/// let eight = double(&four);             // pass by reference to keep using `four`
/// assert_eq!(eight.compute()?, 8);
/// assert_eq!(four.compute()?, 4);
/// # Ok::<(), DagError>(())
/// ```
pub struct Node<T> {
    inner: Arc<NodeInner>,
    // `fn() -> T` keeps `Node<T>` `Send + Sync` whatever `T` is: a node holds bytes, never a `T`.
    _output: PhantomData<fn() -> T>,
}

/// The untyped record behind a [`Node`]: which task, with which arguments.
///
/// Two built-in "tasks" mark the nodes of a dynamic map: [`builtin::MAP`] (args: the list and
/// the closure's result, `bound` the closure's scope) and [`builtin::ELEMENT`] (the placeholder
/// the closure received).
pub struct NodeInner {
    pub(crate) task: &'static TaskDef,
    pub(crate) args: Vec<Arg>,
    /// The innermost `.map` closure whose element this node depends on.
    pub(crate) scope: Scope,
    /// For a map node, the scope of its closure; unused otherwise.
    pub(crate) bound: Scope,
}

impl NodeInner {
    pub(crate) fn is_map(&self) -> bool {
        std::ptr::eq(self.task, &builtin::MAP)
    }

    pub(crate) fn is_element(&self) -> bool {
        std::ptr::eq(self.task, &builtin::ELEMENT)
    }
}

impl<T> Node<T> {
    /// Records a call of `task` with `args`. Used by the code that `#[task]` generates.
    #[doc(hidden)]
    pub fn __from_task(task: &'static TaskDef, mut args: Vec<Arg>) -> Self {
        let scope = match args_scope(&args) {
            Ok(scope) => scope,
            Err(error) => {
                args.push(Arg::Invalid(Box::new(error)));
                Scope::TOP
            }
        };
        Self::from_inner(NodeInner {
            task,
            args,
            scope,
            bound: Scope::TOP,
        })
    }

    pub(crate) fn from_inner(inner: NodeInner) -> Self {
        Node {
            inner: Arc::new(inner),
            _output: PhantomData,
        }
    }

    /// The registered name of the task that produces this node.
    ///
    /// ```
    /// use dag::prelude::*;
    ///
    /// #[task(name = "examples::one")]
    /// fn one() -> i64 { 1 }
    ///
    /// assert_eq!(one().task_name(), "examples::one");
    /// ```
    pub fn task_name(&self) -> &'static str {
        self.inner.task.name
    }

    pub(crate) fn inner(&self) -> &Arc<NodeInner> {
        &self.inner
    }

    pub(crate) fn into_inner(self) -> Arc<NodeInner> {
        self.inner
    }
}

impl<T> Clone for Node<T> {
    fn clone(&self) -> Self {
        Node {
            inner: Arc::clone(&self.inner),
            _output: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Node<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("task", &self.inner.task.name)
            .field("args", &self.inner.args.len())
            .finish()
    }
}

/// Dropping the last handle to a long chain must not recurse once per node (a million-node chain
/// would overflow the stack), so nodes whose last reference goes away here are unlinked into an
/// explicit stack instead of being dropped inside their child's drop.
impl Drop for NodeInner {
    fn drop(&mut self) {
        let mut pending = std::mem::take(&mut self.args);
        while let Some(arg) = pending.pop() {
            match arg {
                Arg::Node(parent) => {
                    if let Some(mut parent) = Arc::into_inner(parent) {
                        pending.append(&mut parent.args);
                    }
                }
                Arg::List(items) => pending.extend(items),
                Arg::Map(entries) => pending.extend(entries.into_iter().map(|(_, arg)| arg)),
                Arg::Const(_) | Arg::Invalid(_) => {}
            }
        }
    }
}
