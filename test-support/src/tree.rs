//! Tree reductions, the DAG shape most tests and benches build: leaves combined pairwise, level
//! by level, into one root.
//!
//! This crate cannot define `#[task]`s (their expansion names the root `dag` crate), so the
//! builder is generic: the caller passes the leaves and the task that combines two nodes.
//!
//! ```
//! use dag_test_support::tree::{reduce_pairwise, sum_1_to};
//!
//! // With `Node<u64>` leaves and an `add` task: `reduce_pairwise(leaves, |a, b| add(a, b))`.
//! let leaves: Vec<u64> = (1..=10).collect();
//! assert_eq!(reduce_pairwise(leaves, |a, b| a + b), sum_1_to(10));
//! ```

/// Combines `leaves` pairwise, level by level, until one value is left: the root of a balanced
/// binary tree of `combine` calls (`leaves.len() - 1` of them), depth `⌈log2 n⌉`.
///
/// Each level combines neighbours `(0, 1), (2, 3), ...`; with an odd count, the last one goes up
/// to the next level unchanged. The reduction is a loop over the levels, not a recursion.
///
/// Panics if `leaves` is empty.
///
/// ```
/// use dag_test_support::tree::reduce_pairwise;
///
/// let shape = reduce_pairwise(vec!["a", "b", "c"].into_iter().map(String::from).collect(), |a, b| {
///     format!("({a} {b})")
/// });
/// assert_eq!(shape, "((a b) c)");
/// ```
pub fn reduce_pairwise<N>(leaves: Vec<N>, mut combine: impl FnMut(&N, &N) -> N) -> N {
    assert!(
        !leaves.is_empty(),
        "a tree reduction needs at least one leaf"
    );
    let mut level = leaves;
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        let mut nodes = level.into_iter();
        while let Some(left) = nodes.next() {
            match nodes.next() {
                Some(right) => next.push(combine(&left, &right)),
                None => next.push(left),
            }
        }
        level = next;
    }
    level.pop().expect("one node is left")
}

/// `1 + 2 + ... + n`: the value of a tree reduction over leaves `1..=n` with addition, as the
/// tests' trees of `leaf(i) = i + 1` for `i` in `0..n`.
///
/// ```
/// assert_eq!(dag_test_support::tree::sum_1_to(4), 10);
/// ```
pub const fn sum_1_to(n: u64) -> u64 {
    n * (n + 1) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_leaf_is_combined_once_in_order() {
        for n in 1..40 {
            let leaves: Vec<String> = (0..n).map(|i| i.to_string()).collect();
            let mut calls = 0;
            let root = reduce_pairwise(leaves, |a, b| {
                calls += 1;
                format!("{a},{b}")
            });
            let expected: Vec<String> = (0..n).map(|i| i.to_string()).collect();
            assert_eq!(root, expected.join(","));
            assert_eq!(calls, n - 1);
        }
    }

    #[test]
    fn the_tree_is_balanced() {
        // Depth of each leaf, counted by the combinations above it.
        let leaves: Vec<Vec<u32>> = (0..1024).map(|_| vec![0]).collect();
        let root = reduce_pairwise(leaves, |a, b| {
            a.iter().chain(b).map(|depth| depth + 1).collect()
        });
        assert!(root.iter().all(|&depth| depth == 10));
        assert_eq!(sum_1_to(1024), (1..=1024).sum::<u64>());
    }
}
