//! Where a node's ready children run: the one decision of the worker step that is not
//! dictated by the graph.
//!
//! WUKONG's basic rule: the worker keeps one ready child for itself, with the parent's output
//! in memory (no fetch), and hands every other ready child to its [`Delegate`] (another thread
//! of this process, which gets the output in memory too, or another process through the
//! invocation stream, which fetches it from the store). Task clustering (`locality.rs`) keeps
//! every ready child of a large output in this process instead: the other threads of this
//! process take them with the output in memory, or, when handing on means another process,
//! this worker runs them in turn.

use std::sync::Arc;

use bytes::Bytes;

use super::fault::{self, FaultPoint};
use super::{Delegate, Invocation, LoadedDag};

/// What a worker runs next, last pushed first: invocations of a DAG (which may be another DAG
/// than the last step's, when a map expands into a child DAG or a child DAG completes its
/// parent's map).
pub(crate) type Todo = Vec<(Arc<LoadedDag>, Invocation)>;

/// Decides where the `ready` children of `dag` run: pushes the ones this worker runs onto
/// `todo` and hands the others to `delegate`. `output` is the output (of the node given with
/// it) that made them ready, if any: it travels in memory to whoever can use it. With `stay`,
/// every child stays in this process.
pub(crate) fn schedule(
    dag: &Arc<LoadedDag>,
    output: Option<(u32, Bytes)>,
    ready: Vec<u32>,
    stay: bool,
    delegate: &dyn Delegate,
    todo: &mut Todo,
) {
    let mut ready = ready.into_iter();
    let Some(kept) = ready.next() else {
        return;
    };
    // The children are claimed by this run (see `Store::complete`), not yet handed on.
    fault::reached(FaultPoint::BeforeDelegate);
    let invocation = |node| Invocation {
        node,
        carried: output.clone(),
    };
    if stay && !delegate.in_process() {
        // In turn, first ready first.
        let rest: Vec<u32> = ready.collect();
        todo.extend(
            rest.into_iter()
                .rev()
                .map(|n| (Arc::clone(dag), invocation(n))),
        );
    } else {
        for other in ready {
            delegate.delegate(dag, invocation(other));
        }
    }
    todo.push((Arc::clone(dag), invocation(kept)));
}
