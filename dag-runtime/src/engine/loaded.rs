//! [`LoadedDag`]: a DAG's plan with its task names resolved to this process's tasks.

use std::sync::Arc;

use crate::error::DagError;
use crate::plan::{Plan, PlanNode};
use crate::store::{DagId, Store};
use crate::task::{self, TaskDef};

/// A DAG's plan with its task names resolved to this process's registered tasks, and for a
/// map's child DAG the parent DAG it completes.
pub struct LoadedDag {
    /// Which DAG this is.
    pub id: DagId,
    /// The plan itself.
    pub plan: Arc<Plan>,
    tasks: Vec<&'static TaskDef>,
    /// For the child DAG of an expanded map: the parent DAG and its map node.
    pub parent: Option<(Arc<LoadedDag>, u32)>,
}

impl LoadedDag {
    /// Resolves every task of `plan`; fails with [`DagError::TaskNotFound`] if this process
    /// lacks one.
    pub fn resolve(id: DagId, plan: Arc<Plan>) -> Result<Self, DagError> {
        let tasks = plan
            .tasks
            .iter()
            .map(|name| task::lookup(name))
            .collect::<Result<_, _>>()?;
        Ok(LoadedDag {
            id,
            plan,
            tasks,
            parent: None,
        })
    }

    /// This child DAG, linked to the parent DAG whose map node `node` it completes.
    pub fn with_parent(mut self, parent: Arc<LoadedDag>, node: u32) -> Self {
        self.parent = Some((parent, node));
        self
    }

    /// Loads DAG `id`'s plan from the store and resolves its tasks, with the chain of parent
    /// DAGs for a map's child DAG. `None` if the DAG (or a parent) has ended.
    ///
    /// This is how a worker that did not submit or expand a DAG (in another process) finds it.
    /// Every plan on the way is validated ([`Plan::validate`]): a plan that is inconsistent
    /// (written by other code, or tampered with) is [`DagError::InvalidGraph`], never a panic.
    pub async fn load(store: &dyn Store, id: &DagId) -> Result<Option<Arc<LoadedDag>>, DagError> {
        // Walk up to the top DAG first, then link back down: no recursion over the nesting.
        let mut chain = Vec::new();
        let mut next = Some((id.clone(), None));
        while let Some((id, node)) = next.take() {
            let Some(plan) = store.get_plan(&id).await? else {
                return Ok(None);
            };
            // The plan came from the store, where anyone with access could have written it:
            // every index the engine will follow is checked once, here.
            plan.validate()?;
            next = plan
                .parent
                .as_ref()
                .map(|link| (DagId::from(link.dag.as_str()), Some(link.node)));
            chain.push((id, plan, node));
        }
        let mut loaded: Option<Arc<LoadedDag>> = None;
        let mut link_node: Option<u32> = None;
        for (id, plan, node) in chain.into_iter().rev() {
            let mut this = LoadedDag::resolve(id, plan)?;
            if let (Some(parent), Some(node)) = (loaded.take(), link_node) {
                this.plan.validate_parent_link(&parent.plan)?;
                this = this.with_parent(parent, node);
            }
            link_node = node;
            loaded = Some(Arc::new(this));
        }
        Ok(loaded)
    }

    /// Node `index` of the plan.
    pub fn node(&self, index: u32) -> &PlanNode {
        self.plan.node(index)
    }

    /// The task that node `index` runs.
    pub fn task_of(&self, index: u32) -> &'static TaskDef {
        self.tasks[self.node(index).task as usize]
    }

    /// The name errors and events show for node `index` (`task[i]` for a map element), or
    /// `""` for an index the plan does not have: error paths call this, and must not panic.
    pub fn task_name(&self, index: u32) -> String {
        match self.plan.nodes.get(index as usize) {
            Some(node) if (node.task as usize) < self.plan.tasks.len() => {
                self.plan.task_name(index)
            }
            _ => String::new(),
        }
    }

    /// This DAG and the DAGs it is a child of, from this one up to the top.
    pub fn lineage(self: &Arc<Self>) -> impl Iterator<Item = &Arc<LoadedDag>> {
        std::iter::successors(Some(self), |dag| dag.parent.as_ref().map(|(p, _)| p))
    }
}
