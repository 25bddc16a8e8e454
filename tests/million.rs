//! A million-node chain builds, lowers, runs and drops without recursion.

use dag::prelude::*;

#[task]
fn inc(x: u64) -> u64 {
    x + 1
}

#[test]
fn a_chain_of_a_million_nodes_builds_runs_and_drops() {
    const N: u64 = 1_000_000;
    // Run on a thread with a small stack, so that recursion proportional to depth would show.
    let result = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let mut node = inc(0);
            for _ in 1..N {
                node = inc(node);
            }
            let value = node.compute();
            drop(node);
            value
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    assert_eq!(result, Ok(N));
}

#[test]
fn a_wide_graph_of_a_million_leaves_drops() {
    let leaves: Vec<Node<u64>> = (0..1_000_000).map(inc).collect();
    drop(leaves);
}
