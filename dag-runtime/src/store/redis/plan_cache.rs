//! The decoded plans a store keeps, so that a plan crosses the network once per process.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::plan::Plan;
use crate::store::DagId;

/// How many decoded plans a store keeps (the plans of running DAGs this process works on).
const CAPACITY: usize = 256;

/// Decoded plans by DAG, the oldest dropped first beyond [`CAPACITY`].
#[derive(Default)]
pub(crate) struct PlanCache {
    plans: HashMap<DagId, Arc<Plan>>,
    order: VecDeque<DagId>,
}

impl PlanCache {
    pub(crate) fn get(&self, dag: &DagId) -> Option<Arc<Plan>> {
        self.plans.get(dag).cloned()
    }

    pub(crate) fn insert(&mut self, dag: &DagId, plan: Arc<Plan>) {
        if self.plans.insert(dag.clone(), plan).is_none() {
            self.order.push_back(dag.clone());
        }
        while self.plans.len() > CAPACITY {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.plans.remove(&old);
        }
    }

    pub(crate) fn remove(&mut self, dag: &DagId) {
        if self.plans.remove(dag).is_some() {
            self.order.retain(|d| d != dag);
        }
    }
}
