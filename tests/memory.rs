//! Memory per node of a built and lowered million-node graph, counted by a global allocator.
//! (Bytes are stable from run to run, unlike times, so this is a test, not a benchmark.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use dag::prelude::*;
use dag_test_support::reduce_pairwise;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Allocations made, ever: a count as stable as the bytes, and a cost of every task.
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
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

#[task]
fn total(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

const N: usize = 1_000_000;

/// One test at a time: the counter is global, so tests running in parallel would count each
/// other's bytes.
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ALONE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Peak bytes allocated while `f` runs (counted by this process's allocator, on every thread,
/// so the workers' allocations count too), above what was live before.
fn peak_bytes<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let result = f();
    (result, PEAK.load(Ordering::Relaxed) - before)
}

#[test]
fn a_million_node_graph_builds_and_lowers_in_under_500_bytes_per_node() {
    let _alone = alone();
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
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
    let chain_allocations = (ALLOCATIONS.load(Ordering::Relaxed) - allocations) as f64 / N as f64;
    drop((sink, plan));

    let ((sink, plan), tree_bytes) = peak_bytes(|| {
        let sink = reduce_pairwise((0..(1u64 << 19)).map(inc).collect(), |a, b| add(a, b));
        let plan = sink.plan().unwrap();
        (sink, plan)
    });
    let tree_bytes = tree_bytes / plan.nodes.len();
    drop((sink, plan));

    eprintln!(
        "peak bytes per node: chain {chain_bytes}, tree {tree_bytes}; allocations per node \
         (chain, build and lower): {chain_allocations:.1}"
    );
    assert!(chain_bytes < 500, "chain: {chain_bytes} bytes per node");
    assert!(tree_bytes < 500, "tree: {tree_bytes} bytes per node");
}

/// Peak heap bytes of computing a graph on the embedded runtime (lowering, the store's state,
/// the outputs, the workers' buffers), the graph built beforehand as in `benches/overhead.rs`.
/// The time is printed for orientation only; `cargo bench --bench overhead` measures it.
fn compute_peak(name: &str, runtime: &Runtime, sink: Node<u64>, expected: u64) -> usize {
    let tasks = sink.plan().unwrap().nodes.len();
    let started = std::time::Instant::now();
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    let (value, bytes) = peak_bytes(|| sink.compute_on(runtime).unwrap());
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations;
    let elapsed = started.elapsed();
    assert_eq!(value, expected);
    eprintln!(
        "{name}: {tasks} tasks, peak {:.1} MiB ({} bytes per task), {:.1} allocations per \
         task, {:.3} s",
        bytes as f64 / (1 << 20) as f64,
        bytes / tasks,
        allocations as f64 / tasks as f64,
        elapsed.as_secs_f64()
    );
    bytes
}

#[test]
fn running_big_graphs_embedded_stays_within_its_memory_budget() {
    let _alone = alone();
    let runtime = Runtime::builder().build().unwrap();
    // Warm the workers up, so that their first allocations are not counted.
    assert_eq!(inc(1).compute_on(&runtime).unwrap(), 2);

    let leaves = 1u64 << 16;
    let tree = reduce_pairwise((0..leaves).map(inc).collect(), |a, b| add(a, b));
    let tree_bytes = compute_peak(
        "tree of 2^16 leaves",
        &runtime,
        tree,
        leaves * (leaves + 1) / 2,
    );

    let width = 1_000_000u64;
    let source = inc(0);
    let fan = total((0..width).map(|_| inc(&source)).collect::<Vec<_>>());
    let fan_bytes = compute_peak("fan-in of 1,000,000", &runtime, fan, 2 * width);

    assert!(tree_bytes < 40 << 20, "tree: {tree_bytes} bytes");
    assert!(fan_bytes < 300 << 20, "fan-in: {fan_bytes} bytes");
}
