//! [`MemoryStore`]: the in-process store, the embedded default.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::Notify;

use super::{
    missing_output, ChildRef, DagId, EventCursor, Keep, Marked, Outcome, Store, TaskErrorRecord,
};
use crate::error::DagError;
use crate::plan::Plan;

/// The in-process store: the same operations and semantics as the Redis store, kept in memory.
///
/// Per DAG it holds what Redis holds under `dag:{id}:...`: the plan, one output slot per node,
/// one finished-parents set per waiting child, the errors and the outcome. Outputs are
/// reference-counted [`Bytes`], so a fan-out reads them without copying.
///
/// ```
/// use dag::prelude::*;
/// use dag::store::MemoryStore;
///
/// #[task]
/// fn answer() -> i64 { 42 }
///
/// let runtime = Runtime::builder().store(MemoryStore::new()).build()?;
/// assert_eq!(answer().compute_on(&runtime)?, 42);
/// # Ok::<(), DagError>(())
/// ```
pub struct MemoryStore {
    /// Every step of every worker looks its DAG up here: a fast hash (ids are random UUIDs, so
    /// no one picks keys that collide) keeps that lookup short.
    dags: Mutex<FxHashMap<DagId, Arc<DagEntry>>>,
    /// How old a DAG may get before [`Store::gc`] drops it.
    ttl: Duration,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            dags: Mutex::default(),
            ttl: DEFAULT_TTL,
        }
    }
}

/// The default time to live of a DAG's state (24 hours), as [`super::RedisConfig::key_ttl`].
const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

struct DagEntry {
    state: Mutex<DagState>,
    ended: Notify,
    /// When the plan was stored.
    created: Instant,
}

#[derive(Default)]
struct DagState {
    plan: Option<Arc<Plan>>,
    outputs: Vec<Option<Bytes>>,
    /// Per node, how many distinct parents have finished (dense: 4 bytes a node, where a map of
    /// sets cost about 100 at a million nodes). A parent is counted once because it is counted
    /// only when its own output slot goes from empty to full, and a completion fills the slot
    /// and counts the children under one lock: what Redis's `SADD` to a set guarantees.
    finished_parents: Vec<u32>,
    /// Which run made a child ready, and through which parent's completion, for children made
    /// ready with a non-empty claim.
    claims: HashMap<u32, (Box<str>, u32)>,
    /// Edges `(parent, child)` counted while the parent's output stayed in its worker (task
    /// clustering: the slot is not filled, so it cannot say the parent was counted).
    kept: FxHashSet<(u32, u32)>,
    /// Per child, the parent holding its output for it and the output's size (delayed I/O).
    holders: FxHashMap<u32, (u32, u64)>,
    errors: Vec<TaskErrorRecord>,
    /// Nodes whose output was stored (each once), for progress.
    completed: u64,
    outcome: Option<Outcome>,
    /// Removed from the store by [`Store::cancel`] or [`Store::gc`]: a waiter gives up.
    removed: bool,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose [`gc`](Store::gc) drops DAGs older than `ttl` (default 24 hours),
    /// running or not: the in-memory counterpart of [`RedisConfig::key_ttl`](super::RedisConfig).
    ///
    /// ```
    /// use std::time::Duration;
    /// use dag::store::{MemoryStore, Store};
    ///
    /// let store = MemoryStore::with_ttl(Duration::from_secs(3600));
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// assert_eq!(store.gc().await?, 0); // nothing older than an hour
    /// # Ok::<(), dag::DagError>(())
    /// # }).unwrap();
    /// ```
    pub fn with_ttl(ttl: Duration) -> Self {
        MemoryStore {
            ttl,
            ..Self::default()
        }
    }

    /// Number of DAGs whose state is still held (running, or ended but not yet collected by
    /// the client). Lets tests check that finished DAGs leave nothing behind.
    pub fn dag_count(&self) -> usize {
        self.lock_dags().len()
    }

    fn lock_dags(&self) -> MutexGuard<'_, FxHashMap<DagId, Arc<DagEntry>>> {
        // A panic while holding this lock cannot leave the map half-updated (every update is a
        // single insert or remove), so a poisoned lock is safe to keep using.
        self.dags.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry(&self, dag: &DagId) -> Option<Arc<DagEntry>> {
        self.lock_dags().get(dag).cloned()
    }
}

impl DagEntry {
    fn lock(&self) -> MutexGuard<'_, DagState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl DagState {
    /// Whether the DAG succeeded, failed or was removed (cancelled or collected by `gc`).
    fn ended(&self) -> bool {
        self.outcome.is_some() || self.removed
    }

    /// Ends the DAG with `outcome` and drops its intermediate state, unless it already ended.
    fn end(&mut self, outcome: Outcome) -> bool {
        if self.ended() {
            return false;
        }
        self.outcome = Some(outcome);
        self.plan = None;
        self.outputs = Vec::new();
        self.finished_parents = Vec::new();
        self.claims = HashMap::new();
        self.kept = FxHashSet::default();
        self.holders = FxHashMap::default();
        true
    }
}

impl DagState {
    /// Counts `parent` toward `child`; true if that made the child ready (claimed by `claim`).
    fn count(&mut self, parent: u32, child: &ChildRef, claim: &str) -> bool {
        let finished = &mut self.finished_parents[child.node as usize];
        *finished += 1;
        if *finished != child.parents {
            return false;
        }
        if !claim.is_empty() {
            self.claims.insert(child.node, (claim.into(), parent));
        }
        true
    }

    /// Whether `child` was made ready by `parent` in the run named `claim` (never for an empty
    /// claim).
    fn claimed_by(&self, parent: u32, child: u32, claim: &str) -> bool {
        !claim.is_empty()
            && self
                .claims
                .get(&child)
                .is_some_and(|(c, p)| **c == *claim && *p == parent)
    }

    /// Ends `node`'s holds on `children`.
    fn release(&mut self, node: u32, children: &[ChildRef]) {
        for child in children {
            if self
                .holders
                .get(&child.node)
                .is_some_and(|&(h, _)| h == node)
            {
                self.holders.remove(&child.node);
            }
        }
    }

    /// Whether `parent` already counted toward `child`.
    fn counted(&self, parent: u32, child: u32) -> bool {
        self.outputs[parent as usize].is_some() || self.kept.contains(&(parent, child))
    }

    /// The same as `complete.lua`'s rule 'n': the output stays in the worker; only the
    /// children that become ready are marked, and with `hold`, none if none would.
    fn complete_kept(
        &mut self,
        node: u32,
        children: &[ChildRef],
        claim: &str,
        hold: Option<u64>,
    ) -> Marked {
        let would_ready = |state: &Self, child: &ChildRef| {
            if state.counted(node, child.node) {
                state.claimed_by(node, child.node, claim)
            } else {
                state.finished_parents[child.node as usize] + 1 == child.parents
            }
        };
        let readying: Vec<bool> = children.iter().map(|c| would_ready(self, c)).collect();
        if let Some(size) = hold {
            let outranked = children.iter().any(|c| {
                self.holders.get(&c.node).is_some_and(|&(holder, held)| {
                    holder != node && (held > size || (held == size && holder < node))
                })
            });
            if !children.is_empty() && !readying.contains(&true) && !outranked {
                for child in children {
                    self.holders.insert(child.node, (node, size));
                }
                return Marked::Held;
            }
        }
        self.release(node, children);
        let (mut ready, mut pending) = (Vec::new(), Vec::new());
        for (child, readying) in children.iter().zip(readying) {
            if !readying {
                pending.push(child.node);
            } else if self.counted(node, child.node) {
                ready.push(child.node); // claimed by this run before
            } else {
                self.kept.insert((node, child.node));
                let made_ready = self.count(node, child, claim);
                debug_assert!(made_ready);
                ready.push(child.node);
            }
        }
        if pending.is_empty() && self.outputs[node as usize].is_none() {
            self.completed += 1;
        }
        Marked::Ready { ready, pending }
    }
}

impl DagEntry {
    /// Marks the entry removed from the store (its state dropped) and wakes a waiter, which
    /// then fails as for an unknown DAG. Returns whether the DAG was still running.
    fn remove(&self) -> bool {
        let mut state = self.lock();
        let running = !state.ended();
        *state = DagState {
            removed: true,
            ..DagState::default()
        };
        self.ended.notify_one();
        running
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn put_plan(&self, dag: &DagId, plan: &Arc<Plan>) -> Result<(), DagError> {
        let state = DagState {
            plan: Some(Arc::clone(plan)),
            outputs: vec![None; plan.nodes.len()],
            finished_parents: vec![0; plan.nodes.len()],
            ..DagState::default()
        };
        let entry = Arc::new(DagEntry {
            state: Mutex::new(state),
            ended: Notify::new(),
            created: Instant::now(),
        });
        self.lock_dags().insert(dag.clone(), entry);
        Ok(())
    }

    async fn get_plan(&self, dag: &DagId) -> Result<Option<Arc<Plan>>, DagError> {
        Ok(self.entry(dag).and_then(|e| e.lock().plan.clone()))
    }

    async fn fetch_outputs(
        &self,
        dag: &DagId,
        nodes: &[u32],
    ) -> Result<Option<Vec<Bytes>>, DagError> {
        let Some(entry) = self.entry(dag) else {
            return Ok(None);
        };
        let state = entry.lock();
        if state.ended() {
            return Ok(None);
        }
        nodes
            .iter()
            .map(|&n| {
                state
                    .outputs
                    .get(n as usize)
                    .cloned()
                    .flatten()
                    .ok_or_else(|| missing_output(dag, n))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    async fn complete_with(
        &self,
        dag: &DagId,
        node: u32,
        output: Bytes,
        children: &[ChildRef],
        claim: &str,
        keep: Keep,
    ) -> Result<Marked, DagError> {
        let Some(entry) = self.entry(dag) else {
            return Ok(Marked::Ended);
        };
        let mut state = entry.lock();
        if state.ended() {
            return Ok(Marked::Ended);
        }
        let state = &mut *state;
        let nodes = state.outputs.len();
        let no_node = |n: u32| DagError::Store(format!("DAG {dag} has no node {n}"));
        if node as usize >= nodes {
            return Err(no_node(node));
        }
        if let Some(child) = children.iter().find(|c| c.node as usize >= nodes) {
            return Err(no_node(child.node));
        }
        if keep.output {
            return Ok(state.complete_kept(node, children, claim, keep.hold));
        }
        // The same as `complete.lua`'s rule 'a'.
        let slot = &mut state.outputs[node as usize];
        // Without a kept edge, a node whose slot was full already counted toward its children.
        let first = slot.is_none();
        *slot = Some(output);
        if first {
            state.completed += 1;
        }
        if keep.hold.is_some() {
            state.release(node, children); // this node held before
        }
        let mut ready = Vec::new();
        for child in children {
            if first && !state.kept.is_empty() && state.kept.remove(&(node, child.node)) {
                // Counted when this node's output stayed in its worker.
                if state.claimed_by(node, child.node, claim) {
                    ready.push(child.node);
                }
            } else if first {
                if state.count(node, child, claim) {
                    ready.push(child.node);
                }
            } else if state.claimed_by(node, child.node, claim) {
                ready.push(child.node); // the claiming run again: it may not have handed it on
            }
        }
        Ok(Marked::Ready {
            ready,
            pending: Vec::new(),
        })
    }

    async fn progress(&self, dag: &DagId, cursor: &mut EventCursor) -> Result<(), DagError> {
        if let Some(entry) = self.entry(dag) {
            let state = entry.lock();
            // The sink's output is the result, not an output: it counts once the DAG succeeded.
            let sink = matches!(state.outcome, Some(Outcome::Success(_)));
            cursor.completed = state.completed + u64::from(sink);
        }
        Ok(())
    }

    async fn fail(&self, dag: &DagId, error: TaskErrorRecord) -> Result<(), DagError> {
        let Some(entry) = self.entry(dag) else {
            return Ok(());
        };
        let mut state = entry.lock();
        if state.removed {
            return Ok(());
        }
        state.errors.push(error.clone());
        if state.end(Outcome::Failed(error)) {
            entry.ended.notify_one();
        }
        Ok(())
    }

    async fn finish(&self, dag: &DagId, result: Bytes) -> Result<(), DagError> {
        let Some(entry) = self.entry(dag) else {
            return Ok(());
        };
        if entry.lock().end(Outcome::Success(result)) {
            entry.ended.notify_one();
        }
        Ok(())
    }

    async fn wait(&self, dag: &DagId) -> Result<Outcome, DagError> {
        let entry = self.entry(dag).ok_or_else(|| unknown_dag(dag))?;
        loop {
            {
                let state = entry.lock();
                if state.removed {
                    return Err(unknown_dag(dag));
                }
                if let Some(outcome) = state.outcome.clone() {
                    drop(state);
                    self.lock_dags().remove(dag);
                    return Ok(outcome);
                }
            }
            // `notify_one` leaves a permit when nobody waits yet, so an end between the check
            // above and this await is not missed.
            entry.ended.notified().await;
        }
    }

    async fn cancel(&self, dag: &DagId) -> Result<bool, DagError> {
        let removed = self.lock_dags().remove(dag);
        Ok(removed.is_some_and(|entry| entry.remove()))
    }

    fn in_process(&self) -> bool {
        true
    }

    async fn gc(&self) -> Result<usize, DagError> {
        let expired: Vec<Arc<DagEntry>> = {
            let mut dags = self.lock_dags();
            let old: Vec<DagId> = dags
                .iter()
                .filter(|(_, entry)| entry.created.elapsed() > self.ttl)
                .map(|(dag, _)| dag.clone())
                .collect();
            old.iter().filter_map(|dag| dags.remove(dag)).collect()
        };
        for entry in &expired {
            entry.remove();
        }
        Ok(expired.len())
    }
}

fn unknown_dag(dag: &DagId) -> DagError {
    DagError::Store(format!(
        "DAG {dag} is unknown to this store (never submitted, cancelled, expired or already \
         collected)"
    ))
}
