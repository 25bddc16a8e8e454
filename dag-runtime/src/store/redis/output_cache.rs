//! The outputs this process stored or fetched lately, kept in memory so that a later task of the
//! same DAG in this process does not download them again: with clustering, a worker process
//! runs a large output's children here, and those children's other inputs are often the same
//! few large blocks (GEMM's rows and columns).
//!
//! Only large outputs are kept ([`CACHED_FROM`] bytes and up): a small one costs a round trip
//! whether it is cached or not, since the fetch reads the DAG's status anyway. The cache holds
//! at most its budget of bytes and forgets the oldest first. An output never changes once
//! stored (a re-run after a crash may store it again, as the same task on the same inputs),
//! and DAG ids are never reused, so nothing in it goes stale.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

use crate::store::DagId;

/// Outputs smaller than this are not kept.
pub(crate) const CACHED_FROM: usize = 64 * 1024;

/// Outputs by (DAG, node), oldest forgotten first.
pub(crate) struct OutputCache {
    budget: usize,
    /// Whether anything is cached: the common case of small outputs only never takes the lock.
    used: AtomicBool,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    outputs: HashMap<(DagId, u32), Bytes>,
    order: VecDeque<(DagId, u32)>,
    bytes: usize,
}

impl OutputCache {
    /// A cache of at most `budget` bytes (0: off).
    pub(crate) fn new(budget: usize) -> Self {
        OutputCache {
            budget,
            used: AtomicBool::new(false),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Keeps `output` of `dag`'s `node` if it is large enough and fits.
    pub(crate) fn insert(&self, dag: &DagId, node: u32, output: &Bytes) {
        if output.len() < CACHED_FROM || output.len() > self.budget {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let key = (dag.clone(), node);
        if inner.outputs.contains_key(&key) {
            return;
        }
        while inner.bytes + output.len() > self.budget {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(gone) = inner.outputs.remove(&oldest) {
                inner.bytes -= gone.len();
            }
        }
        inner.bytes += output.len();
        inner.order.push_back(key.clone());
        inner.outputs.insert(key, output.clone());
        self.used.store(true, Ordering::Relaxed);
    }

    /// The cached outputs of `dag`'s `nodes`, in order (`None` for each one not cached); `None`
    /// if nothing is cached at all.
    pub(crate) fn get(&self, dag: &DagId, nodes: &[u32]) -> Option<Vec<Option<Bytes>>> {
        if !self.used.load(Ordering::Relaxed) {
            return None;
        }
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let found: Vec<Option<Bytes>> = nodes
            .iter()
            .map(|&node| inner.outputs.get(&(dag.clone(), node)).cloned())
            .collect();
        found.iter().any(Option::is_some).then_some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(byte: u8) -> Bytes {
        Bytes::from(vec![byte; CACHED_FROM])
    }

    #[test]
    fn keeps_large_outputs_and_forgets_the_oldest_first() {
        let cache = OutputCache::new(2 * CACHED_FROM);
        let dag = DagId::from("d");
        assert!(cache.get(&dag, &[0]).is_none(), "empty");
        cache.insert(&dag, 0, &Bytes::from_static(b"small"));
        assert!(
            cache.get(&dag, &[0]).is_none(),
            "small outputs are not kept"
        );
        cache.insert(&dag, 1, &block(1));
        cache.insert(&dag, 2, &block(2));
        let found = cache.get(&dag, &[1, 2, 3]).unwrap();
        assert_eq!(found[0].as_deref(), Some(&block(1)[..]));
        assert_eq!(found[1].as_deref(), Some(&block(2)[..]));
        assert!(found[2].is_none());
        cache.insert(&dag, 3, &block(3));
        let found = cache.get(&dag, &[1, 2, 3]).unwrap();
        assert!(found[0].is_none(), "the oldest went to make room");
        assert!(found[1].is_some() && found[2].is_some());
        assert!(cache.get(&DagId::from("other"), &[2]).is_none());
    }

    #[test]
    fn a_budget_of_zero_keeps_nothing() {
        let cache = OutputCache::new(0);
        cache.insert(&DagId::from("d"), 1, &block(1));
        assert!(cache.get(&DagId::from("d"), &[1]).is_none());
    }
}
