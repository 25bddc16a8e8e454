//! Failing a DAG from wherever a failure is found: a worker step, a worker process that cannot
//! run an invocation, the launcher of a process that crashed.
//!
//! The failure goes to the DAG the client waits for. For a map's child DAG that is the top of
//! its chain of parents: the top fails first (the client learns of it even if this process dies
//! before the rest), then the child DAGs on the way are removed, since nobody waits for them
//! (cancelling one also stops its other workers). A child DAG left behind expires with its keys'
//! time to live.

use std::sync::Arc;

use super::{LoadedDag, WorkerContext};
use crate::error::DagError;
use crate::store::{DagId, Store, TaskErrorRecord};

/// Fails `plan`'s DAG, or the top of its parents, with `record`; the parents are in hand.
pub(crate) fn fail_dag(
    ctx: &WorkerContext,
    dag: &Arc<LoadedDag>,
    record: TaskErrorRecord,
) -> Result<(), DagError> {
    let chain: Vec<DagId> = dag.lineage().map(|dag| dag.id.clone()).collect();
    ctx.io.block_on(fail_chain(&*ctx.store, &chain, record))
}

/// Fails DAG `dag`, or the top of its parents, with `record`, finding the parents in the stored
/// plans (for a process that has not loaded the DAG). A DAG that has ended already ends the
/// walk there, and so does a plan that cannot be read: the failure is then recorded on the
/// DAG itself, which needs nothing but its id.
pub async fn fail_stored(
    store: &dyn Store,
    dag: &DagId,
    record: TaskErrorRecord,
) -> Result<(), DagError> {
    let mut chain = vec![dag.clone()];
    while let Some(last) = chain.last() {
        let Ok(Some(plan)) = store.get_plan(last).await else {
            break;
        };
        let Some(link) = &plan.parent else { break };
        chain.push(DagId::from(link.dag.as_str()));
    }
    fail_chain(store, &chain, record).await
}

/// `chain` runs from a child DAG up to the top DAG, the one the client waits for.
async fn fail_chain(
    store: &dyn Store,
    chain: &[DagId],
    record: TaskErrorRecord,
) -> Result<(), DagError> {
    let Some((top, children)) = chain.split_last() else {
        return Ok(());
    };
    store.fail(top, record).await?;
    for child in children {
        store.cancel(child).await?;
    }
    Ok(())
}
