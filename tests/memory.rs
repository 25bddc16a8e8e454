//! Memory per node of a built and lowered million-node graph, counted by a global allocator.
//! (Bytes are stable from run to run, unlike times, so this is a test, not a benchmark.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use dag::prelude::*;
use dag_test_support::reduce_pairwise;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[task]
fn inc(x: u64) -> u64 {
    x + 1
}

#[task]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

const N: usize = 1_000_000;

/// Peak bytes allocated while `f` runs, above what was live before.
fn peak_bytes<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let result = f();
    (result, PEAK.load(Ordering::Relaxed) - before)
}

#[test]
fn a_million_node_graph_builds_and_lowers_in_under_500_bytes_per_node() {
    let ((sink, plan), chain_bytes) = peak_bytes(|| {
        let mut node = inc(0);
        for _ in 1..N {
            node = inc(node);
        }
        let plan = node.plan().unwrap();
        (node, plan)
    });
    assert_eq!(plan.nodes.len(), N);
    let chain_bytes = chain_bytes / N;
    drop((sink, plan));

    let ((sink, plan), tree_bytes) = peak_bytes(|| {
        let sink = reduce_pairwise((0..(1u64 << 19)).map(inc).collect(), |a, b| add(a, b));
        let plan = sink.plan().unwrap();
        (sink, plan)
    });
    let tree_bytes = tree_bytes / plan.nodes.len();
    drop((sink, plan));

    eprintln!("peak bytes per node: chain {chain_bytes}, tree {tree_bytes}");
    assert!(chain_bytes < 500, "chain: {chain_bytes} bytes per node");
    assert!(tree_bytes < 500, "tree: {tree_bytes} bytes per node");
}
