//! The DAGs a worker process has loaded: plans resolved against this program's tasks and
//! checked, kept so that an invocation of a known DAG costs no round trip to load it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use dag_runtime::engine::LoadedDag;
use dag_runtime::store::{DagId, Store};
use dag_runtime::DagError;

/// How many loaded DAGs a worker process keeps.
const CAPACITY: usize = 64;

/// Loaded DAGs by id, the oldest dropped first beyond [`CAPACITY`].
#[derive(Default)]
pub(crate) struct LoadedDags {
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    dags: HashMap<DagId, Arc<LoadedDag>>,
    order: VecDeque<DagId>,
}

impl LoadedDags {
    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// DAG `id`, from the cache or else loaded from `store`, resolved and checked (every task
    /// has the signature the client compiled); `None` if it ended. `worker` names this worker
    /// in a signature mismatch.
    pub(crate) async fn get(
        &self,
        store: &dyn Store,
        id: &DagId,
        worker: &str,
    ) -> Result<Option<Arc<LoadedDag>>, DagError> {
        if let Some(dag) = self.cache().dags.get(id).cloned() {
            return Ok(Some(dag));
        }
        let Some(loaded) = LoadedDag::load(store, id).await? else {
            return Ok(None);
        };
        check_signatures(&loaded, worker)?;
        let mut cache = self.cache();
        if cache.dags.insert(id.clone(), Arc::clone(&loaded)).is_none() {
            cache.order.push_back(id.clone());
        }
        while cache.dags.len() > CAPACITY {
            let Some(old) = cache.order.pop_front() else {
                break;
            };
            cache.dags.remove(&old);
        }
        Ok(Some(loaded))
    }
}

/// Fails unless every task of `loaded` (and of the DAGs it is a child of) has the signature
/// the client compiled.
fn check_signatures(loaded: &Arc<LoadedDag>, worker: &str) -> Result<(), DagError> {
    for dag in loaded.lineage() {
        let plan = &dag.plan;
        for (name, expected) in plan.tasks.iter().zip(&plan.signatures) {
            let found = dag_runtime::task::lookup(name)?.signature;
            if found != expected {
                return Err(DagError::TaskMismatch {
                    task: name.clone(),
                    worker: worker.to_owned(),
                    message: format!(
                        "the client's plan was built with `{expected}`, this worker has `{found}`"
                    ),
                });
            }
        }
    }
    Ok(())
}
