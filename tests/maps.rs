//! Whole-system tests: dynamic fan-outs with `.map`, on every runtime.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use dag::prelude::*;
use support::on_every_runtime;

#[task]
fn split(text: String, chunks: usize) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let per_chunk = words.len().div_ceil(chunks.max(1)).max(1);
    words.chunks(per_chunk).map(|c| c.join(" ")).collect()
}

#[task]
fn count(chunk: String) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for word in chunk.split_whitespace() {
        *counts.entry(word.to_string()).or_insert(0) += 1;
    }
    counts
}

#[task]
fn merge(parts: Vec<HashMap<String, u64>>) -> Vec<(String, u64)> {
    let mut total: HashMap<String, u64> = HashMap::new();
    for part in parts {
        for (word, n) in part {
            *total.entry(word).or_insert(0) += n;
        }
    }
    let mut pairs: Vec<_> = total.into_iter().collect();
    pairs.sort();
    pairs
}

#[task]
fn range(n: u64) -> Vec<u64> {
    (0..n).collect()
}

#[task]
fn inc(x: u64) -> u64 {
    x + 1
}

#[task]
fn double(x: u64) -> u64 {
    2 * x
}

#[task]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[task]
fn total(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

#[task]
fn explode_at_three(x: u64) -> u64 {
    if x == 3 {
        panic!("element {x} is bad");
    }
    x
}

#[test]
fn word_count_with_a_run_time_number_of_chunks() {
    on_every_runtime(|rt| {
        let text = "the cat and the dog and the bird".to_string();
        for chunks in [1, 3, 8] {
            let counts = split(text.clone(), chunks).map(count);
            let expected = vec![
                ("and".to_string(), 2),
                ("bird".to_string(), 1),
                ("cat".to_string(), 1),
                ("dog".to_string(), 1),
                ("the".to_string(), 3),
            ];
            assert_eq!(merge(counts).compute_on(rt), Ok(expected));
        }
    });
}

#[test]
fn the_result_keeps_input_order() {
    on_every_runtime(|rt| {
        let squares = range(50).map(|x| add(double(&x), inc(&x)));
        assert_eq!(
            squares.compute_on(rt),
            Ok((0..50).map(|x| 2 * x + x + 1).collect())
        );
    });
}

#[test]
fn chains_of_two_and_three_maps() {
    on_every_runtime(|rt| {
        let two = range(10).map(inc).map(double);
        assert_eq!(
            two.compute_on(rt),
            Ok((0..10).map(|x| 2 * (x + 1)).collect())
        );
        let three = range(10).map(inc).map(double).map(|x| add(&x, 100));
        assert_eq!(
            total(three).compute_on(rt),
            Ok((0..10).map(|x| 2 * (x + 1) + 100).sum())
        );
    });
}

#[test]
fn a_map_inside_a_map() {
    on_every_runtime(|rt| {
        // For each n in 0..5: the sum of 0..n, each doubled.
        let sums = range(5).map(|n| total(range(n).map(double)));
        assert_eq!(sums.compute_on(rt), Ok(vec![0, 0, 2, 6, 12]));
    });
}

#[test]
fn an_inner_map_may_use_the_outer_element() {
    on_every_runtime(|rt| {
        let table = range(3).map(|row| total(range(3).map(|col| add(&row, col))));
        assert_eq!(table.compute_on(rt), Ok(vec![3, 6, 9]));
    });
}

#[test]
fn a_map_over_an_empty_list_gives_an_empty_vec_and_the_consumer_runs() {
    on_every_runtime(|rt| {
        let nothing = range(0).map(inc);
        assert_eq!(nothing.compute_on(rt), Ok(vec![]));
        assert_eq!(total(range(0).map(inc)).compute_on(rt), Ok(0));
    });
}

static OUTER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[task]
fn counted_offset() -> u64 {
    OUTER_RUNS.fetch_add(1, Ordering::SeqCst);
    1000
}

#[test]
fn outer_nodes_and_constants_inside_the_closure_run_once() {
    on_every_runtime(|rt| {
        OUTER_RUNS.store(0, Ordering::SeqCst);
        let offset = counted_offset();
        let shifted = range(20).map(|x| add(add(&x, &offset), 1));
        assert_eq!(
            total(shifted).compute_on(rt),
            Ok((0..20).map(|x| x + 1001).sum())
        );
        assert_eq!(OUTER_RUNS.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn identity_and_constant_bodies() {
    on_every_runtime(|rt| {
        assert_eq!(range(3).map(|x| x).compute_on(rt), Ok(vec![0, 1, 2]));
        let seven = inc(6);
        assert_eq!(
            range(3).map(|_| seven.clone()).compute_on(rt),
            Ok(vec![7, 7, 7])
        );
    });
}

#[test]
fn a_map_result_is_mapped_again_after_a_fan_in() {
    on_every_runtime(|rt| {
        let firsts = range(4).map(inc);
        let both = total(firsts.clone());
        let again = range(both).map(|x| add(x, 1));
        assert_eq!(total(again).compute_on(rt), Ok((1..=10).sum()));
        assert_eq!(firsts.compute_on(rt), Ok(vec![1, 2, 3, 4]));
    });
}

#[test]
fn a_failing_element_reports_its_index() {
    on_every_runtime(
        |rt| match total(range(6).map(|x| inc(explode_at_three(x)))).compute_on(rt) {
            Err(DagError::TaskFailed { task, message, .. }) => {
                assert_eq!(task, "maps::explode_at_three[3]");
                assert_eq!(message, "panicked: element 3 is bad");
            }
            other => panic!("expected TaskFailed, got {other:?}"),
        },
    );
}

#[test]
fn a_hundred_thousand_elements() {
    on_every_runtime(|rt| {
        let n = 100_000;
        assert_eq!(
            total(range(n).map(inc)).compute_on(rt),
            Ok((1..=n).sum::<u64>())
        );
    });
}

#[test]
fn using_an_element_outside_its_closure_is_an_error() {
    let mut leaked = None;
    let mapped = range(3).map(|x| {
        leaked = Some(x.clone());
        inc(x)
    });
    let misuse = add(leaked.unwrap(), 1);
    assert!(matches!(misuse.compute(), Err(DagError::InvalidGraph(_))));
    assert_eq!(mapped.compute(), Ok(vec![1, 2, 3]));
}

#[test]
fn chained_maps_fuse_into_one_element_wise_map() {
    // range -> map(inc) -> map(double): one map node whose template runs inc then double.
    let plan = range(10)
        .map(inc)
        .map(double)
        .map(|x| add(&x, 1))
        .plan()
        .unwrap();
    assert_eq!(plan.nodes.len(), 2, "{plan:#?}");
    let template = plan.nodes[1].map.as_ref().expect("the sink is a map");
    let tasks: Vec<&str> = template
        .nodes
        .iter()
        .map(|n| plan.tasks[n.task as usize].as_str())
        .collect();
    assert_eq!(tasks, ["maps::inc", "maps::double", "maps::add"]);
}

#[test]
fn a_map_whose_list_is_used_elsewhere_is_not_fused() {
    let firsts = range(10).map(inc);
    let both = add(total(firsts.clone()), total(firsts.map(double)));
    let plan = both.plan().unwrap();
    let maps = plan.nodes.iter().filter(|n| n.map.is_some()).count();
    assert_eq!(maps, 2);
    on_every_runtime(|rt| {
        assert_eq!(both.compute_on(rt), Ok(55 + 110));
    });
}
