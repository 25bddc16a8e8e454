//! Whole-system tests: graph shapes, argument kinds and results, on every runtime.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use dag::prelude::*;
use dag_test_support::reduce_pairwise;
use support::on_every_runtime;

#[task]
fn inc(x: i64) -> i64 {
    x + 1
}

#[task]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[task]
fn multiply(a: i64, b: i64) -> i64 {
    a * b
}

#[task]
fn square(x: i64) -> i64 {
    x * x
}

#[task]
fn sum(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

#[task]
fn literal(x: i64) -> i64 {
    x
}

#[test]
fn a_single_task_computes() {
    on_every_runtime(|rt| assert_eq!(add(2, 3).compute_on(rt), Ok(5)));
}

#[test]
fn chain() {
    on_every_runtime(|rt| {
        let mut node = literal(0);
        for _ in 0..100 {
            node = inc(node);
        }
        assert_eq!(node.compute_on(rt), Ok(100));
    });
}

#[test]
fn diamond() {
    on_every_runtime(|rt| {
        let top = literal(3);
        let left = inc(&top);
        let right = square(&top);
        assert_eq!(add(left, right).compute_on(rt), Ok(4 + 9));
    });
}

#[test]
fn fan_out_fan_in_from_the_issue() {
    on_every_runtime(|rt| {
        let products = vec![multiply(2, 3), multiply(3, 4), multiply(4, 5)];
        let total = sum(products);
        let squares = vec![square(&total), square(&total), square(&total)];
        let result = square(sum(squares));
        assert_eq!(result.compute_on(rt), Ok(18766224));
    });
}

#[test]
fn wide_fan_out_from_one_source() {
    on_every_runtime(|rt| {
        let source = literal(1);
        let children: Vec<Node<i64>> = (0..1000).map(|_| inc(&source)).collect();
        assert_eq!(sum(children).compute_on(rt), Ok(2000));
    });
}

#[test]
fn tree_reduction() {
    on_every_runtime(|rt| {
        let root = reduce_pairwise((0..1024).map(inc).collect(), |a, b| add(a, b));
        assert_eq!(root.compute_on(rt), Ok((1..=1024).sum()));
    });
}

#[task]
fn nested_total(rows: Vec<Vec<i64>>) -> Vec<i64> {
    rows.iter().map(|r| r.iter().sum()).collect()
}

#[test]
fn nested_lists_of_nodes() {
    on_every_runtime(|rt| {
        let rows = vec![vec![literal(1), literal(2)], vec![], vec![inc(9)]];
        assert_eq!(nested_total(rows).compute_on(rt), Ok(vec![3, 0, 10]));
    });
}

#[task]
fn describe(scores: HashMap<String, i64>) -> Vec<(String, i64)> {
    let mut pairs: Vec<_> = scores.into_iter().collect();
    pairs.sort();
    pairs
}

#[test]
fn maps_of_nodes() {
    on_every_runtime(|rt| {
        let scores: HashMap<String, Node<i64>> = [
            ("ann".to_string(), literal(3)),
            ("bob".to_string(), square(4)),
        ]
        .into();
        assert_eq!(
            describe(scores).compute_on(rt),
            Ok(vec![("ann".to_string(), 3), ("bob".to_string(), 16)])
        );
    });
}

#[test]
fn the_same_node_twice_in_one_call() {
    on_every_runtime(|rt| {
        let x = inc(4);
        assert_eq!(multiply(&x, &x).compute_on(rt), Ok(25));
        assert_eq!(sum(vec![x.clone(), x.clone(), x]).compute_on(rt), Ok(15));
    });
}

#[test]
fn constants_and_nodes_mix() {
    on_every_runtime(|rt| {
        assert_eq!(add(inc(1), 10).compute_on(rt), Ok(12));
        assert_eq!(sum(vec![1, 2, 3]).compute_on(rt), Ok(6));
    });
}

static SHARED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[task]
fn counted_source() -> i64 {
    SHARED_RUNS.fetch_add(1, Ordering::SeqCst);
    7
}

#[test]
fn a_shared_node_runs_once_per_compute() {
    on_every_runtime(|rt| {
        SHARED_RUNS.store(0, Ordering::SeqCst);
        let shared = counted_source();
        let total = sum((0..50).map(|_| inc(&shared)).collect::<Vec<_>>());
        assert_eq!(total.compute_on(rt), Ok(50 * 8));
        assert_eq!(SHARED_RUNS.load(Ordering::SeqCst), 1);
    });
}

static UNUSED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[task]
fn never_needed() -> i64 {
    UNUSED_RUNS.fetch_add(1, Ordering::SeqCst);
    0
}

#[test]
fn unused_nodes_never_run() {
    on_every_runtime(|rt| {
        let unused = never_needed();
        let used = inc(1);
        let _also_unused = add(&unused, &used);
        assert_eq!(used.compute_on(rt), Ok(2));
        assert_eq!(UNUSED_RUNS.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn a_node_can_be_computed_again_and_reused() {
    on_every_runtime(|rt| {
        let x = square(inc(2));
        assert_eq!(x.compute_on(rt), Ok(9));
        assert_eq!(x.compute_on(rt), Ok(9));
        assert_eq!(add(&x, &x).compute_on(rt), Ok(18));
    });
}

#[task]
fn unit_task() {}

#[test]
fn tasks_may_return_unit() {
    on_every_runtime(|rt| assert_eq!(unit_task().compute_on(rt), Ok(())));
}

#[task]
fn with_patterns((a, b): (i64, i64), mut c: i64) -> i64 {
    c += a * b;
    c
}

#[test]
fn parameters_may_be_patterns() {
    on_every_runtime(|rt| assert_eq!(with_patterns((2, 3), 1).compute_on(rt), Ok(7)));
}

#[task]
fn greet(name: String) -> String {
    format!("hello {name}")
}

#[test]
fn str_literals_pass_as_strings() {
    on_every_runtime(|rt| assert_eq!(greet("ann").compute_on(rt), Ok("hello ann".to_string())));
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
struct Point {
    x: f64,
    y: f64,
}

#[task]
fn midpoint(a: Point, b: Point) -> Point {
    Point {
        x: (a.x + b.x) / 2.0,
        y: (a.y + b.y) / 2.0,
    }
}

#[test]
fn user_structs_cross_between_tasks() {
    on_every_runtime(|rt| {
        let a = midpoint(Point { x: 0.0, y: 0.0 }, Point { x: 2.0, y: 4.0 });
        let b = midpoint(&a, Point { x: 3.0, y: 2.0 });
        assert_eq!(b.compute_on(rt), Ok(Point { x: 2.0, y: 2.0 }));
    });
}

#[test]
fn compute_uses_the_default_runtime() {
    assert_eq!(add(inc(1), inc(2)).compute(), Ok(5));
}
