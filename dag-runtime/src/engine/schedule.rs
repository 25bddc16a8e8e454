//! Where a node's ready children run: the one decision of the worker step that is not
//! dictated by the graph.
//!
//! Today, WUKONG's basic rule: the worker keeps one ready child for itself, with the parent's
//! output in memory (no fetch), and hands every other ready child to its [`Delegate`] (another
//! thread of this process, which gets the output in memory too, or another process through the
//! invocation stream, which fetches it from the store). Task clustering and delayed I/O
//! refine this decision, and only this one.

use std::sync::Arc;

use bytes::Bytes;

use super::fault::{self, FaultPoint};
use super::{Delegate, Invocation, LoadedDag};

/// What a worker does next: run this invocation of this DAG (which may be another DAG than the
/// last step's, when a map expands into a child DAG or a child DAG completes its parent's map).
pub(crate) type Next = Option<(Arc<LoadedDag>, Invocation)>;

/// Decides where the `ready` children of `dag` run: returns the one this worker continues with
/// and hands the others to `delegate`. `output` is the output (of the node given with it) that
/// made them ready, if any: it travels in memory to whoever can use it.
pub(crate) fn schedule(
    dag: &Arc<LoadedDag>,
    output: Option<(u32, Bytes)>,
    ready: Vec<u32>,
    delegate: &dyn Delegate,
) -> Next {
    let mut ready = ready.into_iter();
    let kept = ready.next()?;
    // The children are claimed by this run (see `Store::complete`), not yet handed on.
    fault::reached(FaultPoint::BeforeDelegate);
    let invocation = |node| Invocation {
        node,
        carried: output.clone(),
    };
    for other in ready {
        delegate.delegate(dag, invocation(other));
    }
    Some((Arc::clone(dag), invocation(kept)))
}
