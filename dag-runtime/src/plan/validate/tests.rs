//! Each rule of [`Plan::validate`], stated by a test's name, with a plan that breaks only it.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::MAX_NESTING;
use crate::error::DagError;
use crate::plan::{link, ArgTemplate, MapTemplate, ParentLink, Plan, PlanNode};

use ArgTemplate::{Element, Outer, Parent};

fn constant() -> ArgTemplate {
    ArgTemplate::Const(Bytes::from_static(&[0x01]))
}

fn node(task: u32, args: Vec<ArgTemplate>) -> PlanNode {
    PlanNode {
        task,
        args,
        children: Vec::new(),
        parents: 0,
        map: None,
        element: None,
    }
}

fn map_node(args: Vec<ArgTemplate>, nodes: Vec<PlanNode>, body: ArgTemplate) -> PlanNode {
    let mut nodes = nodes;
    link(&mut nodes);
    PlanNode {
        map: Some(Box::new(MapTemplate { nodes, body })),
        ..node(1, args)
    }
}

/// A client's plan of `nodes`, linked as lowering links them, with tasks `t0`, `t1`, `t2`.
fn plan(mut nodes: Vec<PlanNode>) -> Plan {
    link(&mut nodes);
    let tasks: Vec<String> = (0..3).map(|t| format!("t{t}")).collect();
    Plan {
        signatures: tasks.iter().map(|t| format!("fn {t}()")).collect(),
        tasks,
        sink: nodes.len().saturating_sub(1) as u32,
        nodes,
        parent: None,
        policy: Default::default(),
    }
}

/// 0 -> 1 -> 2, and 0 -> 2 as well, through a list and a map argument.
fn diamond() -> Plan {
    plan(vec![
        node(0, vec![constant()]),
        node(0, vec![Parent(0)]),
        node(
            2,
            vec![
                ArgTemplate::List(vec![Parent(0), constant(), Parent(1)]),
                ArgTemplate::Map(vec![("a".into(), Parent(0))]),
            ],
        ),
    ])
}

/// A list (node 0) and an outer value (node 1) feed a map (node 2) whose template runs two
/// tasks per element, the second of them a nested map over the first's result with the element
/// as its outer value; the sink (node 3) takes the map's result.
fn with_maps() -> Plan {
    let inner = map_node(
        vec![Parent(0), Element],
        vec![node(0, vec![Element, Outer(0)])],
        Parent(0),
    );
    plan(vec![
        node(0, vec![]),
        node(0, vec![constant()]),
        map_node(
            vec![Parent(0), Parent(1)],
            vec![node(2, vec![Element, Outer(0)]), inner],
            Parent(1),
        ),
        node(2, vec![Parent(2), Parent(1)]),
    ])
}

/// The message of `plan`'s validation error; panics if it passes.
fn problem(plan: &Plan) -> String {
    match plan.validate() {
        Err(DagError::InvalidGraph(message)) => message,
        other => panic!("expected InvalidGraph, got {other:?}"),
    }
}

#[track_caller]
fn assert_invalid(plan: &Plan, expected: &str) {
    let message = problem(plan);
    assert!(
        message.contains(expected),
        "{message:?} should say {expected:?}"
    );
    assert!(
        message.starts_with("the stored plan of this DAG is inconsistent: ")
            && message.ends_with("was it written by other code or tampered with?"),
        "{message}"
    );
}

#[test]
fn a_linked_plan_with_lists_maps_and_shared_parents_is_valid() {
    diamond().validate().unwrap();
}

#[test]
fn a_plan_with_maps_and_nested_maps_is_valid() {
    with_maps().validate().unwrap();
}

#[test]
fn a_plan_without_nodes_is_invalid() {
    assert_invalid(&plan(vec![]), "it has no nodes");
}

#[test]
fn the_sink_is_the_last_node() {
    let mut p = diamond();
    p.sink = 1;
    assert_invalid(
        &p,
        "its sink is node 1 but the last of its 3 nodes is node 2",
    );
    p.sink = 3;
    assert_invalid(&p, "its sink is node 3");
}

#[test]
fn every_node_names_a_task_of_the_plan() {
    let mut p = diamond();
    p.tasks.truncate(1);
    p.signatures.truncate(1);
    p.nodes[2].task = 12;
    assert_invalid(&p, "node 2 names task 12 but the plan has 1 task;");
}

#[test]
fn a_node_in_a_map_template_names_a_task_of_the_plan_too() {
    let mut p = with_maps();
    p.nodes[2].map.as_mut().unwrap().nodes[0].task = 3;
    assert_invalid(
        &p,
        "node 0 of the `.map` template of node 2 names task 3 but the plan has 3 tasks",
    );
}

#[test]
fn a_clients_plan_carries_one_signature_per_task() {
    let mut p = diamond();
    p.signatures.pop();
    assert_invalid(&p, "it lists 3 tasks but 2 task signatures");
    p.signatures.clear();
    assert_invalid(&p, "it carries no task signatures");
}

#[test]
fn only_a_maps_child_plan_may_omit_signatures() {
    let mut p = diamond();
    p.signatures.clear();
    p.parent = Some(ParentLink {
        dag: "top".into(),
        node: 2,
    });
    p.validate().unwrap();
}

#[test]
fn a_parent_comes_before_its_child() {
    let mut p = diamond();
    p.nodes[1].args = vec![Parent(2)];
    assert_invalid(
        &p,
        "node 1: argument 0 takes the output of node 2, which does not come before it",
    );
    p.nodes[1].args = vec![Parent(1)];
    assert_invalid(&p, "node 1: argument 0 takes the output of node 1");
    p.nodes[1].args = vec![Parent(u32::MAX)];
    assert_invalid(&p, "takes the output of node 4294967295");
}

#[test]
fn a_child_comes_after_its_parent_and_exists() {
    let mut p = diamond();
    p.nodes[0].children = vec![1, 2, 3];
    assert_invalid(
        &p,
        "node 0 lists node 3 as a child, but children come after",
    );
    let mut p = diamond();
    p.nodes[1].children = vec![0];
    assert_invalid(&p, "node 1 lists node 0 as a child");
}

#[test]
fn a_child_is_listed_once() {
    let mut p = diamond();
    p.nodes[0].children = vec![1, 2, 1];
    assert_invalid(&p, "node 0 lists node 1 as a child twice");
}

#[test]
fn a_listed_child_takes_its_parents_output() {
    let mut p = plan(vec![
        node(0, vec![]),
        node(0, vec![]),
        node(0, vec![Parent(0)]),
    ]);
    p.nodes[1].children = vec![2];
    assert_invalid(
        &p,
        "node 1 lists node 2 as a child, but node 2 does not take its output",
    );
}

#[test]
fn a_parent_lists_every_node_that_takes_its_output() {
    let mut p = diamond();
    p.nodes[0].children = vec![1];
    assert_invalid(
        &p,
        "node 2 takes the output of node 0, which does not list it as a child",
    );
}

#[test]
fn parents_counts_the_distinct_parents() {
    let mut p = diamond();
    // Node 2 names node 0 twice and node 1 once: two distinct parents.
    assert_eq!(p.nodes[2].parents, 2);
    p.nodes[2].parents = 3;
    assert_invalid(
        &p,
        "node 2 counts 3 parents but its arguments take the outputs of 2 distinct nodes",
    );
    p.nodes[2].parents = 0;
    assert_invalid(&p, "node 2 counts 0 parents");
}

#[test]
fn element_and_outer_values_appear_only_inside_map_templates() {
    let mut p = diamond();
    p.nodes[1].args = vec![Parent(0), Element];
    assert_invalid(
        &p,
        "node 1: argument 1 takes a `.map` element outside any `.map` template",
    );
    p.nodes[1].args = vec![ArgTemplate::List(vec![Parent(0), Outer(0)])];
    assert_invalid(
        &p,
        "node 1: argument 0 takes outer value 0 of a `.map` outside any `.map` template",
    );
}

#[test]
fn outer_names_one_of_the_map_nodes_outer_values() {
    let mut p = with_maps();
    // The map node passes one outer value (its argument 1).
    p.nodes[2].map.as_mut().unwrap().nodes[0].args = vec![Element, Outer(1)];
    assert_invalid(
        &p,
        "node 0 of the `.map` template of node 2: argument 1 takes outer value 1 of its `.map` \
         but the map node passes 1",
    );
}

#[test]
fn a_map_node_has_the_list_to_map_over() {
    let mut p = with_maps();
    p.nodes[2].args.clear();
    p.nodes[2].parents = 0;
    p.nodes[0].children.clear();
    p.nodes[1].children = vec![3];
    assert_invalid(&p, "node 2 is a `.map` without the list to map over");
}

#[test]
fn a_template_node_takes_outputs_of_earlier_template_nodes_only() {
    let mut p = with_maps();
    p.nodes[2].map.as_mut().unwrap().nodes[0].args = vec![Parent(0)];
    assert_invalid(
        &p,
        "node 0 of the `.map` template of node 2: argument 0 takes the output of template node \
         0, which does not come before it",
    );
}

#[test]
fn a_templates_result_names_an_existing_template_node() {
    let mut p = with_maps();
    p.nodes[2].map.as_mut().unwrap().body = Parent(2);
    assert_invalid(
        &p,
        "the result of the `.map` template of node 2 takes the output of template node 2 but \
         the template has 2 nodes",
    );
}

#[test]
fn a_template_without_nodes_may_give_the_element_or_an_outer_value() {
    let mut p = with_maps();
    let template = p.nodes[2].map.as_mut().unwrap();
    template.nodes.clear();
    template.body = Element;
    p.validate().unwrap();
    p.nodes[2].map.as_mut().unwrap().body = Outer(0);
    p.validate().unwrap();
}

#[test]
fn a_nested_template_is_checked_against_its_own_map_node() {
    fn nested(p: &mut Plan) -> &mut MapTemplate {
        let outer = p.nodes[2].map.as_mut().unwrap();
        outer.nodes[1].map.as_mut().unwrap()
    }
    let mut p = with_maps();
    // The nested map node passes one outer value: Outer(0) is fine, Outer(1) is not.
    nested(&mut p).nodes[0].args = vec![Element, Outer(1)];
    assert_invalid(
        &p,
        "node 0 of the `.map` template of template node 1 of node 2: argument 1 takes outer \
         value 1",
    );
    let mut p = with_maps();
    nested(&mut p).nodes[0].task = 9;
    assert_invalid(
        &p,
        "node 0 of the `.map` template of template node 1 of node 2 names task 9",
    );
    let mut p = with_maps();
    nested(&mut p).body = Parent(1);
    assert_invalid(
        &p,
        "the result of the `.map` template of template node 1 of node 2 takes the output of \
         template node 1",
    );
}

#[test]
fn a_template_nodes_children_and_parents_are_not_read_so_not_checked() {
    let mut p = with_maps();
    let template = p.nodes[2].map.as_mut().unwrap();
    template.nodes[0].children.clear();
    template.nodes[1].parents = 7;
    p.validate().unwrap();
}

/// An argument template nested `depth` lists deep, built and taken apart without recursion.
fn nested_list(depth: usize) -> ArgTemplate {
    let mut arg = constant();
    for _ in 0..depth {
        arg = ArgTemplate::List(vec![arg]);
    }
    arg
}

/// Drops a deeply nested template one level at a time: the derived `Drop` would recurse.
fn dismantle(mut arg: ArgTemplate) {
    while let ArgTemplate::List(items) = &mut arg {
        let Some(inner) = items.pop() else { break };
        arg = inner;
    }
}

/// Runs `f` on a thread with a small stack, so that recursion proportional to the input would
/// overflow it.
fn on_a_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn argument_templates_nest_at_most_max_nesting_levels_without_recursion() {
    let mut p = diamond();
    p.nodes[0].args = vec![nested_list(MAX_NESTING - 1)];
    p.validate().unwrap();
    p.nodes[0].args = vec![nested_list(MAX_NESTING)];
    assert_invalid(
        &p,
        &format!("node 0: argument 0 nests lists or maps deeper than {MAX_NESTING} levels"),
    );

    let message = on_a_small_stack(|| {
        let mut p = diamond();
        p.nodes[0].args = vec![nested_list(100_000)];
        let message = problem(&p);
        dismantle(p.nodes[0].args.pop().unwrap());
        message
    });
    assert!(message.contains("nests lists or maps deeper"), "{message}");
}

#[test]
fn map_templates_nest_at_most_max_nesting_levels_without_recursion() {
    /// A map node whose template is a map node whose template ... `depth` levels deep.
    fn nested_maps(depth: usize) -> PlanNode {
        let mut current = node(0, vec![Element]);
        for _ in 0..depth {
            current = map_node(vec![Element], vec![current], Parent(0));
        }
        current.args = vec![Parent(0)];
        current
    }
    fn with_depth(depth: usize) -> Plan {
        plan(vec![node(0, vec![]), nested_maps(depth)])
    }
    with_depth(MAX_NESTING).validate().unwrap();
    assert_invalid(
        &with_depth(MAX_NESTING + 1),
        &format!("nests `.map` templates deeper than {MAX_NESTING} levels"),
    );
    let message = on_a_small_stack(|| {
        let p = with_depth(10_000);
        let message = problem(&p);
        // Take the templates apart one level at a time: the derived `Drop` would recurse.
        let mut next = p.nodes.into_iter().nth(1).and_then(|n| n.map);
        while let Some(template) = next {
            next = template.nodes.into_iter().next().and_then(|n| n.map);
        }
        message
    });
    assert!(message.contains("deeper than 32 levels"), "{message}");
}

#[test]
fn a_child_plan_completes_a_map_node_of_its_parent() {
    let parent = with_maps();
    let mut child = diamond();
    child.parent = Some(ParentLink {
        dag: "top".into(),
        node: 2,
    });
    child.validate_parent_link(&parent).unwrap();
    diamond().validate_parent_link(&parent).unwrap(); // no link: nothing to check
    child.parent.as_mut().unwrap().node = 1;
    let error = child.validate_parent_link(&parent).unwrap_err().to_string();
    assert!(
        error.contains("node 1 of DAG top, which is not a `.map`"),
        "{error}"
    );
    child.parent.as_mut().unwrap().node = 4;
    let error = child.validate_parent_link(&parent).unwrap_err().to_string();
    assert!(
        error.contains("node 4 of DAG top but that plan has 4 nodes"),
        "{error}"
    );
}

#[test]
fn a_retry_backoff_longer_than_a_century_is_invalid() {
    let mut p = diamond();
    p.policy.backoff = Some(Duration::from_secs(3600));
    p.validate().unwrap();
    p.policy.backoff = Some(Duration::MAX);
    assert_invalid(&p, "retry backoff");
}

/// A chain of `n` nodes, each also taking node 0's output: a fan-out and a chain at once.
fn wide_chain(n: u32) -> Plan {
    let mut nodes = vec![node(0, vec![constant()])];
    for i in 1..n {
        let args = if i == 1 {
            vec![Parent(0)]
        } else {
            vec![Parent(i - 1), Parent(0)]
        };
        nodes.push(node(0, args));
    }
    plan(nodes)
}

#[test]
fn a_million_node_plan_validates_in_linear_time() {
    let p = wide_chain(1_000_000);
    let started = Instant::now();
    p.validate().unwrap();
    // Well under a second in release; the test profile's opt-level 1 is slower, and the
    // machine may be shared.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_parent_missing_one_of_many_children_is_found_in_linear_time() {
    let mut p = wide_chain(300_000);
    // Node 0 has 299,999 children; drop the last: the search for it must not be quadratic.
    p.nodes[0].children.pop();
    let started = Instant::now();
    assert_invalid(
        &p,
        "node 299999 takes the output of node 0, which does not list it as a child",
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn task_name_never_panics_on_an_index_the_plan_lacks() {
    let mut p = diamond();
    assert_eq!(p.task_name(1), "t0");
    assert_eq!(p.task_name(9), "<node 9, not in the plan>");
    p.nodes[1].task = 40;
    assert_eq!(p.task_name(1), "<task 40 of node 1, not in the plan>");
    p.nodes[2].element = Some(3);
    assert_eq!(p.task_name(2), "t2[3]");
}

#[test]
fn checked_node_refuses_an_index_the_plan_lacks() {
    let p = diamond();
    assert_eq!(p.checked_node(2).unwrap(), &p.nodes[2]);
    match p.checked_node(3) {
        Err(DagError::InvalidGraph(message)) => {
            assert!(
                message.contains("names node 3 but the plan has 3 nodes"),
                "{message}"
            )
        }
        other => panic!("expected InvalidGraph, got {other:?}"),
    }
}
