//! Reading a DAG from outside while it runs (the dashboard): which nodes finished, which
//! failed, and where its events are. It lives here, beside the key layout and the scripts that
//! write those keys, so that nothing else needs to know what the `done` hash means.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::connection::Retry;
use super::keys::DagKeys;
use super::scripts::SUCCEEDED;
use super::store::RedisStore;
use crate::error::DagError;
use crate::plan::Plan;
use crate::store::{DagId, Store, TaskErrorRecord};

/// What a running DAG's keys say about it, read by [`RedisStore::inspect`].
#[derive(Debug, Clone)]
pub struct DagSnapshot {
    /// The plan as submitted.
    pub plan: Arc<Plan>,
    /// Per node (by index): whether it finished, as far as the store knows. A node is known
    /// to have finished once one of its children counts it; the sink, once the DAG succeeded;
    /// a node that keeps its output in its worker (task clustering, delayed I/O) only once it
    /// marks its children.
    pub finished: Vec<bool>,
    /// The failures recorded (at most one per node; a failed DAG has at least one).
    pub errors: Vec<TaskErrorRecord>,
}

/// The name of the stream of DAG `dag`'s events (`XADD`ed by the scripts: `done` with `node`,
/// `ready`, `worker` and `task`; `failed` with `node`; `succeeded`; `cancelled`), for readers
/// that follow several DAGs with one `XREAD`.
///
/// ```
/// use dag::store::{event_stream_key, DagId};
///
/// assert_eq!(event_stream_key(&DagId::from("abc")), "dag:{abc}:events");
/// ```
pub fn event_stream_key(dag: &DagId) -> String {
    DagKeys::new(dag).events()
}

impl RedisStore {
    /// A snapshot of DAG `dag` while it runs (`None` if it is not running: ended, expired or
    /// unknown), in one round trip after the plan: its plan, which nodes finished and the
    /// failures recorded. This is what `dag dashboard` draws a running DAG from.
    ///
    /// ```no_run
    /// use dag::store::{DagId, RedisStore};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
    /// if let Some(snapshot) = store.inspect(&DagId::from("3f2a...")).await? {
    ///     let done = snapshot.finished.iter().filter(|f| **f).count();
    ///     println!("{done} of {} nodes finished", snapshot.plan.nodes.len());
    ///     for error in &snapshot.errors {
    ///         println!("node {} ({}) failed: {}", error.node, error.task, error.message);
    ///     }
    /// }
    /// # Ok::<(), dag::DagError>(())
    /// # }).unwrap();
    /// ```
    pub async fn inspect(&self, dag: &DagId) -> Result<Option<DagSnapshot>, DagError> {
        let Some(plan) = self.get_plan(dag).await? else {
            return Ok(None);
        };
        let keys = DagKeys::new(dag);
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(keys.status());
        pipe.cmd("HGETALL").arg(keys.done());
        pipe.cmd("HGETALL").arg(keys.errors());
        let conn = self.connection();
        let (status, done, errors): (
            Option<String>,
            HashMap<String, Bytes>,
            HashMap<String, String>,
        ) = conn
            .send(&pipe, Retry::Once, "could not read the DAG's state")
            .await?;
        let succeeded = status.as_deref() == Some(SUCCEEDED);
        let mut errors: Vec<TaskErrorRecord> = errors
            .values()
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect();
        errors.sort_by_key(|e| e.node);
        Ok(Some(DagSnapshot {
            finished: finished_nodes(&plan, &done, succeeded),
            plan,
            errors,
        }))
    }
}

/// Which nodes of `plan` the `done` hash shows finished (see `scripts/complete.lua`): parent
/// `p` of a child `c` with one parent once `c` is set, of a child with several once `c<p` is.
fn finished_nodes(plan: &Plan, done: &HashMap<String, Bytes>, succeeded: bool) -> Vec<bool> {
    let mut finished = vec![false; plan.nodes.len()];
    let mut field = String::new();
    for (index, node) in plan.nodes.iter().enumerate() {
        if node.children.is_empty() {
            finished[index] = succeeded && index as u32 == plan.sink;
            continue;
        }
        finished[index] = node.children.iter().any(|&child| {
            use std::fmt::Write;
            field.clear();
            let single = plan
                .nodes
                .get(child as usize)
                .is_some_and(|c| c.parents == 1);
            if single {
                let _ = write!(field, "{child}");
            } else {
                let _ = write!(field, "{child}<{index}");
            }
            done.contains_key(&field)
        });
    }
    finished
}
