//! Property test: random DAGs compute to what a plain sequential evaluation gives.

mod support;

use dag::prelude::*;
use proptest::prelude::*;
use std::collections::HashMap;

/// How a node combines its inputs; each is a task below and a plain function in `evaluate`.
#[derive(Debug, Clone)]
enum Op {
    Leaf(i64),
    Mix {
        a: usize,
        b: usize,
        k: i64,
    },
    Sum(Vec<usize>),
    Nested(Vec<Vec<usize>>),
    Keyed(Vec<usize>),
    /// A dynamic fan-out: a run-time list from `src`, each element mixed with `other`, summed.
    Spread {
        src: usize,
        other: usize,
        k: i64,
    },
}

#[task]
fn spread(v: i64) -> Vec<i64> {
    spread_values(v)
}

fn spread_values(v: i64) -> Vec<i64> {
    (0..v.rem_euclid(6)).map(|i| v.wrapping_add(i)).collect()
}

#[task]
fn leaf(x: i64) -> i64 {
    x
}

#[task]
fn mix(a: i64, b: i64, k: i64) -> i64 {
    a.wrapping_mul(31).wrapping_add(b).wrapping_add(k)
}

#[task]
fn sum(xs: Vec<i64>) -> i64 {
    xs.iter()
        .fold(7_i64, |acc, x| acc.wrapping_mul(3).wrapping_add(*x))
}

#[task]
fn nested(rows: Vec<Vec<i64>>) -> i64 {
    rows.iter()
        .map(|r| {
            r.iter()
                .fold(1_i64, |a, x| a.wrapping_mul(5).wrapping_add(*x))
        })
        .fold(0_i64, |a, x| a.wrapping_mul(11).wrapping_add(x))
}

#[task]
fn keyed(values: HashMap<String, i64>) -> i64 {
    let mut keys: Vec<_> = values.keys().cloned().collect();
    keys.sort();
    keys.iter()
        .fold(0_i64, |a, k| a.wrapping_mul(13).wrapping_add(values[k]))
}

/// A random DAG: node `i` only uses nodes before it.
fn dag_strategy() -> impl Strategy<Value = Vec<Op>> {
    (2usize..40).prop_flat_map(|n| {
        let ops: Vec<BoxedStrategy<Op>> = (0..n)
            .map(|i| {
                if i == 0 {
                    (-50i64..50).prop_map(Op::Leaf).boxed()
                } else {
                    let earlier = 0..i;
                    prop_oneof![
                        (-50i64..50).prop_map(Op::Leaf),
                        (earlier.clone(), earlier.clone(), -5i64..5)
                            .prop_map(|(a, b, k)| Op::Mix { a, b, k }),
                        prop::collection::vec(earlier.clone(), 0..6).prop_map(Op::Sum),
                        prop::collection::vec(prop::collection::vec(earlier.clone(), 0..3), 0..3)
                            .prop_map(Op::Nested),
                        prop::collection::vec(earlier.clone(), 1..4).prop_map(Op::Keyed),
                        (earlier.clone(), earlier, -5i64..5)
                            .prop_map(|(src, other, k)| Op::Spread { src, other, k }),
                    ]
                    .boxed()
                }
            })
            .collect();
        ops
    })
}

fn evaluate(ops: &[Op]) -> Vec<i64> {
    let mut values: Vec<i64> = Vec::new();
    for op in ops {
        let v = match op {
            Op::Leaf(x) => *x,
            Op::Mix { a, b, k } => values[*a]
                .wrapping_mul(31)
                .wrapping_add(values[*b])
                .wrapping_add(*k),
            Op::Sum(xs) => xs
                .iter()
                .fold(7_i64, |acc, x| acc.wrapping_mul(3).wrapping_add(values[*x])),
            Op::Nested(rows) => rows
                .iter()
                .map(|r| {
                    r.iter()
                        .fold(1_i64, |a, x| a.wrapping_mul(5).wrapping_add(values[*x]))
                })
                .fold(0_i64, |a, x| a.wrapping_mul(11).wrapping_add(x)),
            Op::Spread { src, other, k } => spread_values(values[*src])
                .into_iter()
                .map(|x| {
                    x.wrapping_mul(31)
                        .wrapping_add(values[*other])
                        .wrapping_add(*k)
                })
                .fold(7_i64, |acc, x| acc.wrapping_mul(3).wrapping_add(x)),
            Op::Keyed(xs) => {
                let map = keyed_inputs(xs);
                let mut keys: Vec<_> = map.keys().cloned().collect();
                keys.sort();
                keys.iter().fold(0_i64, |a, k| {
                    a.wrapping_mul(13).wrapping_add(values[map[k]])
                })
            }
        };
        values.push(v);
    }
    values
}

/// Keys of a keyed node: `k<position>` -> input index (a repeated input keeps both keys).
fn keyed_inputs(xs: &[usize]) -> HashMap<String, usize> {
    xs.iter()
        .enumerate()
        .map(|(pos, &x)| (format!("k{pos}"), x))
        .collect()
}

fn build(ops: &[Op]) -> Vec<Node<i64>> {
    let mut nodes: Vec<Node<i64>> = Vec::new();
    for op in ops {
        let node = match op {
            Op::Leaf(x) => leaf(*x),
            Op::Mix { a, b, k } => mix(&nodes[*a], &nodes[*b], *k),
            Op::Sum(xs) => sum(xs.iter().map(|x| nodes[*x].clone()).collect::<Vec<_>>()),
            Op::Nested(rows) => nested(
                rows.iter()
                    .map(|r| r.iter().map(|x| nodes[*x].clone()).collect())
                    .collect::<Vec<Vec<_>>>(),
            ),
            Op::Spread { src, other, k } => {
                let other = &nodes[*other];
                sum(spread(&nodes[*src]).map(|x| mix(x, other, *k)))
            }
            Op::Keyed(xs) => keyed(
                keyed_inputs(xs)
                    .into_iter()
                    .map(|(k, x)| (k, nodes[x].clone()))
                    .collect::<HashMap<_, _>>(),
            ),
        };
        nodes.push(node);
    }
    nodes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_dags_match_sequential_evaluation(ops in dag_strategy(), sink_back in 0usize..3) {
        let expected = evaluate(&ops);
        let nodes = build(&ops);
        // Sinks other than the last node leave later nodes unused: they must not matter.
        let sink = ops.len().saturating_sub(1 + sink_back);
        support::on_every_runtime(|rt| {
            assert_eq!(nodes[sink].compute_on(rt), Ok(expected[sink]));
        });
    }
}
