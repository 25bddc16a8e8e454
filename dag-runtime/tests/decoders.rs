//! The decoders of bytes that come from a store, fed what a hostile user could write there.
//!
//! A Redis-backed DAG keeps its plan, outputs, errors and result where anyone with access to
//! the server can rewrite them. For every decoder of such bytes, a *target* below states what
//! must hold for any input at all: it never panics, it never allocates more than a bound
//! proportional to the input (a claimed length is not a reason to reserve memory), and a plan
//! that passes [`Plan::validate`] is one whose indices the engine can follow without a panic.
//!
//! Each target is checked three ways:
//!
//! - proptest with random bytes, biased towards MessagePack markers that carry lengths;
//! - proptest with mutations (flipped, overwritten, inserted, deleted, duplicated bytes) of real
//!   encodings, so that inputs get past the first header and into the deep structure;
//! - the corpus, `fuzz-corpus/<target>/*.bin`: inputs that broke (or would break) a decoder,
//!   replayed on every run by [`the_corpus_replays_without_a_failure`]. When proptest finds a
//!   failure, it prints the minimal input: add it there as a file. The generated part of the
//!   corpus is rewritten by `cargo test -p dag-runtime --test decoders -- --ignored
//!   write_the_generated_corpus`.
//!
//! Every plan lowered from real graphs (`#[task]` functions, maps, nested and chained maps)
//! must pass validation, so that validating plans when they are loaded never rejects a DAG that
//! this program wrote.
//!
//! Not reachable from here: stream entries (`store::stream::parse_entry`, private, works on
//! already-parsed RESP values and returns `None` on anything unexpected) and the result list's
//! `S`/`F` prefix (`store::redis::decode_outcome`, private). The error record's JSON is covered
//! through the public [`TaskErrorRecord`]; results are decoded by `codec::decode`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use dag::prelude::*;
use dag_runtime::codec::{decode, split_array};
use dag_runtime::plan::{ArgTemplate, MapTemplate, ParentLink, Plan, PlanNode, MAX_NESTING};
use dag_runtime::store::TaskErrorRecord;
use proptest::prelude::*;
use proptest::sample::Index;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Allocation bound

/// The system allocator, recording the largest single allocation each thread asks for, and
/// refusing (as an out-of-memory abort, with its size in the message) any over [`REFUSED`]
/// instead of letting the machine try: a decoder that reserves what a header claims shows up as
/// a failed test, not as a test that needs 64 GB.
struct Tracking;

/// No check here legitimately allocates this much at once.
const REFUSED: usize = 256 << 20;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: the thread-local may already be gone while a thread exits.
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every call is forwarded to `System` with the same arguments; refusing an allocation
// by returning null is allowed by the `GlobalAlloc` contract.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        if layout.size() > REFUSED {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        if layout.size() > REFUSED {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        if new_size > REFUSED {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `f` and asserts that no single allocation it made exceeded what `input_len` bytes of
/// input justify: serde caps a pre-allocation at 1 MiB per container being decoded, and a
/// decoded value may take some tens of bytes of memory per byte of MessagePack (an enum variant
/// in one byte, a `Vec` doubling as it grows).
#[track_caller]
fn bounded<T>(what: &str, input_len: usize, f: impl FnOnce() -> T) -> T {
    LARGEST.with(|largest| largest.set(0));
    let value = f();
    let largest = LARGEST.with(Cell::get);
    let limit = (4 << 20) + 128 * input_len;
    assert!(
        largest <= limit,
        "{what}: one allocation of {largest} bytes for {input_len} bytes of input (limit {limit})"
    );
    value
}

// ---------------------------------------------------------------------------------------------
// Targets

/// A fuzz target: the name of its corpus directory and the check that must pass on any input.
struct Target {
    name: &'static str,
    check: fn(&[u8]),
}

const TARGETS: &[Target] = &[
    Target {
        name: "plan",
        check: check_plan,
    },
    Target {
        name: "split_array",
        check: check_split_array,
    },
    Target {
        name: "decode",
        check: check_decode,
    },
    Target {
        name: "error_record",
        check: check_error_record,
    },
];

/// A plan as a worker loads it: decoded, then validated; a plan that passes must be one the
/// engine can index (see [`follow_every_index`]) and that round-trips.
fn check_plan(bytes: &[u8]) {
    let Ok(plan) = bounded("Plan::decode", bytes.len(), || Plan::decode(bytes)) else {
        return;
    };
    // Validation allocates proportionally to the plan (a few arrays of one entry per node).
    let verdict = bounded("Plan::validate", bytes.len(), || plan.validate());
    match verdict {
        Ok(()) => {
            follow_every_index(&plan);
            let again = rmp_serde::to_vec(&plan).expect("a decoded plan encodes");
            assert_eq!(Plan::decode(&again).as_ref(), Ok(&plan));
        }
        Err(DagError::InvalidGraph(message)) => {
            assert!(message.contains("tampered with"), "{message}");
        }
        Err(other) => panic!("validate fails with InvalidGraph only, not {other:?}"),
    }
}

/// Does with a validated plan what the engine does with it, through the same public accessors,
/// and checks the facts the engine relies on without checking them itself.
fn follow_every_index(plan: &Plan) {
    let len = plan.nodes.len() as u32;
    assert_eq!(plan.sink, len - 1);
    assert!(plan.roots().next().is_some(), "a valid plan has a root");
    if plan.parent.is_none() {
        assert_eq!(plan.signatures.len(), plan.tasks.len());
    }
    for index in 0..len {
        let node = plan.node(index);
        let _ = plan.task_name(index);
        let parents = node.distinct_parents();
        assert_eq!(parents.len(), node.parents as usize);
        for &parent in &parents {
            assert!(parent < index);
            assert!(plan.node(parent).children.contains(&index));
        }
        for &child in &node.children {
            assert!(plan.node(child).distinct_parents().contains(&index));
        }
        for arg in &node.args {
            assert_no_template_refs(arg);
        }
        if let Some(template) = &node.map {
            assert!(!node.args.is_empty());
            check_template(plan, template, node.args.len() - 1);
        }
    }
}

/// What expanding a map indexes: the plan's tasks, the template's nodes, the outer values.
fn check_template(plan: &Plan, template: &MapTemplate, outer: usize) {
    let mut templates = vec![(template, outer)];
    while let Some((template, outer)) = templates.pop() {
        let refs_ok = |arg: &ArgTemplate, below: usize| {
            each_leaf(arg, &mut |leaf| match leaf {
                ArgTemplate::Parent(p) => assert!((*p as usize) < below),
                ArgTemplate::Outer(k) => assert!((*k as usize) < outer),
                _ => {}
            })
        };
        refs_ok(&template.body, template.nodes.len());
        for (index, node) in template.nodes.iter().enumerate() {
            assert!((node.task as usize) < plan.tasks.len());
            for arg in &node.args {
                refs_ok(arg, index);
            }
            if let Some(inner) = &node.map {
                assert!(!node.args.is_empty());
                templates.push((inner, node.args.len() - 1));
            }
        }
    }
}

fn assert_no_template_refs(arg: &ArgTemplate) {
    each_leaf(arg, &mut |leaf| {
        assert!(!matches!(
            leaf,
            ArgTemplate::Element | ArgTemplate::Outer(_)
        ));
    });
}

/// Calls `f` on every template inside `arg` that is not a list or map (explicit stack).
fn each_leaf(arg: &ArgTemplate, f: &mut impl FnMut(&ArgTemplate)) {
    let mut stack = vec![arg];
    while let Some(arg) = stack.pop() {
        match arg {
            ArgTemplate::List(items) => stack.extend(items),
            ArgTemplate::Map(entries) => stack.extend(entries.iter().map(|(_, a)| a)),
            leaf => f(leaf),
        }
    }
}

/// A list as a map node splits it: the elements are consecutive slices of the input, right
/// after the header, each one whole MessagePack value.
fn check_split_array(bytes: &[u8]) {
    let input = Bytes::copy_from_slice(bytes);
    let Ok(elements) = bounded("split_array", bytes.len(), || split_array(&input)) else {
        return;
    };
    let mut cursor = bytes;
    let len = rmp::decode::read_array_len(&mut cursor).expect("split_array read this header");
    assert_eq!(elements.len(), len as usize);
    let mut at = bytes.len() - cursor.len();
    for element in &elements {
        assert_eq!(&bytes[at..at + element.len()], &element[..]);
        assert!(!element.is_empty());
        // Splitting an element that is itself a list gives the same answer as a decoder would.
        if let Ok(parts) = split_array(element) {
            let mut inner = &element[..];
            let claimed = rmp::decode::read_array_len(&mut inner).unwrap();
            assert_eq!(parts.len(), claimed as usize);
        }
        at += element.len();
    }
}

/// A nested type like the ones tasks take.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Record {
    name: String,
    values: Vec<i64>,
    tags: HashMap<String, Vec<String>>,
    next: Option<Box<Record>>,
    blob: Bytes,
}

/// A recursive type: how deep its values nest is up to the bytes.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
enum Tree {
    Leaf(i64),
    Branch(Vec<Tree>),
}

/// A type that nests exactly as deep as the arrays of its encoding.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Deep(Vec<Deep>);

/// Outputs and results decoded as the types tasks take (what `decode_arg` and `compute` do).
fn check_decode(bytes: &[u8]) {
    let n = bytes.len();
    let _ = bounded("decode i64", n, || decode::<i64>(bytes));
    let _ = bounded("decode f64", n, || decode::<f64>(bytes));
    let _ = bounded("decode String", n, || decode::<String>(bytes));
    let _ = bounded("decode Bytes", n, || decode::<Bytes>(bytes));
    let _ = bounded("decode Vec<u64>", n, || decode::<Vec<u64>>(bytes));
    let _ = bounded("decode Vec<Vec<String>>", n, || {
        decode::<Vec<Vec<String>>>(bytes)
    });
    let _ = bounded("decode HashMap", n, || {
        decode::<HashMap<String, Vec<String>>>(bytes)
    });
    let _ = bounded("decode (String, Vec<i64>, Option<bool>)", n, || {
        decode::<(String, Vec<i64>, Option<bool>)>(bytes)
    });
    let _ = bounded("decode Vec<Record>", n, || decode::<Vec<Record>>(bytes));
    let _ = bounded("decode Tree", n, || decode::<Tree>(bytes));
    let _ = bounded("decode Deep", n, || decode::<Deep>(bytes));
}

/// What the store keeps per failed node: the record and when it was written, as JSON
/// (`store::redis::ErrorJson`, private: the same shape).
#[derive(Deserialize)]
#[allow(dead_code)] // only decoded
struct ErrorJson {
    #[serde(flatten)]
    record: TaskErrorRecord,
    time: u64,
}

/// The JSON error record of a failed node (`dag:{id}:errors`, the result list's `F` entry).
fn check_error_record(bytes: &[u8]) {
    let n = bytes.len();
    let _ = bounded("TaskErrorRecord", n, || {
        serde_json::from_slice::<TaskErrorRecord>(bytes)
    });
    let _ = bounded("ErrorJson", n, || {
        serde_json::from_slice::<ErrorJson>(bytes)
    });
}

// ---------------------------------------------------------------------------------------------
// Real encodings: plans lowered from graphs of tasks, and values

mod tasks {
    use dag::prelude::*;
    use std::collections::HashMap;

    #[task]
    pub fn inc(x: i64) -> i64 {
        x + 1
    }

    #[task]
    pub fn add(a: i64, b: i64) -> i64 {
        a + b
    }

    #[task]
    pub fn total(xs: Vec<i64>) -> i64 {
        xs.iter().sum()
    }

    #[task]
    pub fn grid_total(xs: Vec<Vec<i64>>) -> i64 {
        xs.iter().flatten().sum()
    }

    #[task]
    pub fn named(values: HashMap<String, i64>) -> i64 {
        values.values().sum()
    }

    #[task]
    pub fn range(n: i64) -> Vec<i64> {
        (0..n).collect()
    }
}

/// Plans lowered from real graphs: a chain, shared nodes, every argument shape, maps with
/// outer values, nested maps, chained (fused) maps, a map whose body is its element.
fn lowered_plans() -> Vec<(&'static str, Plan)> {
    use tasks::*;
    let x = inc(1);
    let shared = add(&x, inc(&x));
    let shapes = add(
        total(vec![inc(1), inc(2), x.clone()]),
        add(
            grid_total(vec![vec![inc(3)], vec![inc(4), x.clone()]]),
            named(HashMap::from([
                ("a".to_string(), x.clone()),
                ("b".into(), inc(5)),
            ])),
        ),
    );
    let factor = inc(10);
    let mapped = total(range(4).map(|e| add(inc(e), &factor)));
    let nested = total(range(3).map(|n| total(range(n).map(|m| add(m, &factor)))));
    let nested_outer = total(range(3).map(|n| total(range(2).map(|m| add(m, &n)))));
    let chained = total(range(5).map(inc).map(|e| add(e, &factor)));
    let identity = total(range(5).map(|e| e));
    let outer_body = total(range(5).map(|_| factor.clone()));
    let graphs = [
        ("one task", inc(1)),
        ("chain", inc(inc(inc(1)))),
        ("shared node", shared),
        ("argument shapes", shapes),
        ("map with an outer value", mapped),
        ("nested maps", nested),
        ("nested map using the outer element", nested_outer),
        ("chained maps", chained),
        ("map of the element itself", identity),
        ("map of an outer value", outer_body),
    ];
    graphs
        .into_iter()
        .map(|(name, node)| (name, node.plan().expect("the graph lowers")))
        .collect()
}

/// The child plan that expanding `plan`'s first map node over `elements` gives, built the way
/// the engine builds it: the template once per element, then a collecting sink.
fn child_plan(plan: &Plan, elements: usize) -> Option<Plan> {
    let (index, map_node) = plan
        .nodes
        .iter()
        .enumerate()
        .find(|(_, n)| n.map.is_some())?;
    let template = map_node.map.as_ref()?;
    let width = template.nodes.len() as u32;
    let outer = vec![ArgTemplate::Const(Bytes::from_static(&[0x07])); map_node.args.len() - 1];
    let mut tasks = plan.tasks.clone();
    tasks.push("dag::collect".into());
    let mut nodes = Vec::new();
    let mut results = Vec::new();
    for i in 0..elements as u32 {
        let element = ArgTemplate::Const(Bytes::from(vec![i as u8 & 0x7f]));
        let instance = |arg: &ArgTemplate| instantiate(arg, i * width, &element, &outer);
        for node in &template.nodes {
            nodes.push(PlanNode {
                args: node.args.iter().map(instance).collect(),
                children: Vec::new(),
                parents: 0,
                element: Some(i),
                ..node.clone()
            });
        }
        results.push(instance(&template.body));
    }
    nodes.push(PlanNode {
        task: (tasks.len() - 1) as u32,
        args: vec![ArgTemplate::List(results)],
        children: Vec::new(),
        parents: 0,
        map: None,
        element: None,
    });
    dag_runtime::plan::link(&mut nodes);
    Some(Plan {
        tasks,
        sink: (nodes.len() - 1) as u32,
        nodes,
        parent: Some(ParentLink {
            dag: "top".into(),
            node: index as u32,
        }),
        signatures: Vec::new(),
        policy: plan.policy,
    })
}

fn instantiate(
    arg: &ArgTemplate,
    base: u32,
    element: &ArgTemplate,
    outer: &[ArgTemplate],
) -> ArgTemplate {
    match arg {
        ArgTemplate::Parent(j) => ArgTemplate::Parent(base + j),
        ArgTemplate::Element => element.clone(),
        ArgTemplate::Outer(k) => outer[*k as usize].clone(),
        ArgTemplate::List(items) => ArgTemplate::List(
            items
                .iter()
                .map(|a| instantiate(a, base, element, outer))
                .collect(),
        ),
        ArgTemplate::Map(entries) => ArgTemplate::Map(
            entries
                .iter()
                .map(|(k, a)| (k.clone(), instantiate(a, base, element, outer)))
                .collect(),
        ),
        ArgTemplate::Const(_) => arg.clone(),
    }
}

/// Every real plan: the lowered ones and the child plans their maps expand into.
fn real_plans() -> Vec<(String, Plan)> {
    let mut plans = Vec::new();
    for (name, plan) in lowered_plans() {
        for elements in [1, 3] {
            if let Some(child) = child_plan(&plan, elements) {
                plans.push((format!("child of {name} ({elements} elements)"), child));
            }
        }
        plans.push((name.to_string(), plan));
    }
    plans
}

/// Encodings of values like the ones outputs and arguments hold.
fn real_values() -> Vec<Vec<u8>> {
    let record = Record {
        name: "r".into(),
        values: vec![1, -300, 70_000, i64::MIN],
        tags: HashMap::from([("k".into(), vec!["v".into(), String::new()])]),
        next: Some(Box::new(Record {
            name: String::new(),
            values: vec![],
            tags: HashMap::new(),
            next: None,
            blob: Bytes::from_static(b"\x00\x01"),
        })),
        blob: Bytes::from(vec![9; 40]),
    };
    let tree = Tree::Branch(vec![Tree::Leaf(1), Tree::Branch(vec![Tree::Leaf(-2)])]);
    vec![
        rmp_serde::to_vec(&5_i64).unwrap(),
        rmp_serde::to_vec(&"text".repeat(10)).unwrap(),
        rmp_serde::to_vec(&(0..40_u64).collect::<Vec<_>>()).unwrap(),
        rmp_serde::to_vec(&vec![vec!["a".to_string()], vec![]]).unwrap(),
        rmp_serde::to_vec(&vec![record]).unwrap(),
        rmp_serde::to_vec(&tree).unwrap(),
        rmp_serde::to_vec(&HashMap::from([("x".to_string(), vec!["y".to_string()])])).unwrap(),
    ]
}

fn real_error_records() -> Vec<Vec<u8>> {
    let record = br#"{"kind":"Task","task":"m::f","node":3,"attempt":2,"message":"boom","worker":"h:1/local-0","backtrace":"at f","time":1700000000000}"#;
    vec![
        record.to_vec(),
        br#"{"task":"t","node":0,"attempt":1,"message":"","worker":"w","time":0}"#.to_vec(),
    ]
}

/// The real encodings each target's mutations start from.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "plan" => real_plans()
            .iter()
            .map(|(_, plan)| rmp_serde::to_vec(plan).unwrap())
            .collect(),
        "split_array" | "decode" => real_values(),
        "error_record" => real_error_records(),
        other => panic!("no seeds for target {other}"),
    }
}

#[test]
fn every_plan_lowered_from_a_real_graph_is_valid() {
    for (name, plan) in real_plans() {
        if let Err(e) = plan.validate() {
            panic!("{name}: {e}\n{plan:#?}");
        }
        follow_every_index(&plan);
        let bytes = rmp_serde::to_vec(&plan).unwrap();
        assert_eq!(Plan::decode(&bytes).as_ref(), Ok(&plan), "{name}");
    }
}

#[test]
fn a_child_plan_links_to_its_parents_map_node() {
    for (name, plan) in lowered_plans() {
        if let Some(child) = child_plan(&plan, 2) {
            child
                .validate_parent_link(&plan)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fuzzing

/// Bytes that MessagePack decoders find interesting: length-carrying markers, their extremes.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => any::<u8>(),
        1 => prop::sample::select(vec![
            0x00, 0x01, 0x7f, 0x80, 0x81, 0x8f, 0x90, 0x91, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2,
            0xc4, 0xc5, 0xc6, 0xc7, 0xc9, 0xcc, 0xce, 0xcf, 0xd4, 0xd8, 0xd9, 0xda, 0xdb, 0xdc,
            0xdd, 0xde, 0xdf, 0xff,
        ]),
    ]
}

fn random_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(interesting_byte(), 0..200)
}

/// One edit of an encoding.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    /// Overwrites four bytes with a big-endian u32: a length, an index, a count.
    SetU32(Index, u32),
    /// Copies a stretch of the input elsewhere: structures repeat and nest.
    Duplicate(Index, Index, Index),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let big = prop_oneof![
        Just(u32::MAX),
        Just(0x7fff_ffff),
        Just(0x0001_0000),
        0..16_u32,
        any::<u32>()
    ];
    prop_oneof![
        3 => (any::<Index>(), 0..8_u8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        3 => (any::<Index>(), interesting_byte()).prop_map(|(at, b)| Mutation::Set(at, b)),
        2 => (any::<Index>(), interesting_byte()).prop_map(|(at, b)| Mutation::Insert(at, b)),
        2 => any::<Index>().prop_map(Mutation::Delete),
        2 => (any::<Index>(), big).prop_map(|(at, v)| Mutation::SetU32(at, v)),
        1 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(from, len, to)| Mutation::Duplicate(from, len, to)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        bytes.push(0x90);
    }
    let len = bytes.len();
    match mutation {
        Mutation::Flip(at, bit) => bytes[at.index(len)] ^= 1 << bit,
        Mutation::Set(at, byte) => bytes[at.index(len)] = *byte,
        Mutation::Insert(at, byte) => bytes.insert(at.index(len + 1), *byte),
        Mutation::Delete(at) => {
            bytes.remove(at.index(len));
        }
        Mutation::SetU32(at, value) => {
            let at = at.index(len);
            for (i, b) in value.to_be_bytes().into_iter().enumerate() {
                if let Some(slot) = bytes.get_mut(at + i) {
                    *slot = b;
                }
            }
        }
        Mutation::Duplicate(from, span, to) => {
            let from = from.index(len);
            let span = span.index(len - from) + 1;
            let piece = bytes[from..from + span].to_vec();
            let to = to.index(len + 1);
            bytes.splice(to..to, piece);
        }
        Mutation::Truncate(at) => bytes.truncate(at.index(len)),
    }
}

/// A seed of `target` with a few mutations.
fn mutated(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds(target);
    (
        prop::sample::select(seeds),
        prop::collection::vec(mutation(), 1..6),
    )
        .prop_map(|(mut bytes, mutations)| {
            for m in &mutations {
                mutate(&mut bytes, m);
            }
            bytes
        })
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Failures go into `fuzz-corpus/` by hand, where every run replays them.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn target(name: &str) -> &'static Target {
    TARGETS
        .iter()
        .find(|t| t.name == name)
        .expect("a target of that name")
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn random_bytes_never_break_plan_decoding(bytes in random_bytes()) {
        (target("plan").check)(&bytes);
    }

    #[test]
    fn mutated_plans_never_break_decoding_or_validation(bytes in mutated("plan")) {
        (target("plan").check)(&bytes);
    }

    #[test]
    fn random_bytes_never_break_split_array(bytes in random_bytes()) {
        (target("split_array").check)(&bytes);
    }

    #[test]
    fn mutated_lists_never_break_split_array(bytes in mutated("split_array")) {
        (target("split_array").check)(&bytes);
    }

    #[test]
    fn random_bytes_never_break_value_decoding(bytes in random_bytes()) {
        (target("decode").check)(&bytes);
    }

    #[test]
    fn mutated_values_never_break_value_decoding(bytes in mutated("decode")) {
        (target("decode").check)(&bytes);
    }

    #[test]
    fn mutated_error_records_never_break_their_decoding(bytes in mutated("error_record")) {
        (target("error_record").check)(&bytes);
    }
}

/// One edit of a decoded plan: what a tamperer who understands the format would change.
#[derive(Debug, Clone)]
enum PlanEdit {
    /// Changes one of the plan's numbers: a task, a parent count, a child, a parent or outer
    /// reference, the sink, the parent link's node.
    Number(Index, NumberEdit),
    /// Replaces a leaf of an argument template (anywhere, templates included).
    Leaf(Index, ArgTemplate),
    /// Adds a child to, or removes one from, a node's children (templates included).
    Children(Index, Option<u32>),
    ClearSignatures,
    DropSignature,
    ToggleParentLink,
    /// Removes one node (the indices after it are not renumbered).
    RemoveNode(Index),
}

#[derive(Debug, Clone, Copy)]
enum NumberEdit {
    Increment,
    Decrement,
    Set(u32),
}

fn plan_edit() -> impl Strategy<Value = PlanEdit> {
    let number = prop_oneof![
        Just(NumberEdit::Increment),
        Just(NumberEdit::Decrement),
        prop_oneof![Just(u32::MAX), Just(0), 0..12_u32].prop_map(NumberEdit::Set),
    ];
    let leaf = prop_oneof![
        Just(ArgTemplate::Element),
        (0..3_u32).prop_map(ArgTemplate::Outer),
        (0..12_u32).prop_map(ArgTemplate::Parent),
        Just(ArgTemplate::Const(Bytes::from_static(&[0xc0]))),
        Just(ArgTemplate::List(vec![])),
    ];
    prop_oneof![
        6 => (any::<Index>(), number).prop_map(|(at, edit)| PlanEdit::Number(at, edit)),
        3 => (any::<Index>(), leaf).prop_map(|(at, leaf)| PlanEdit::Leaf(at, leaf)),
        2 => (any::<Index>(), prop::option::of(0..12_u32))
            .prop_map(|(at, child)| PlanEdit::Children(at, child)),
        1 => Just(PlanEdit::ClearSignatures),
        1 => Just(PlanEdit::DropSignature),
        1 => Just(PlanEdit::ToggleParentLink),
        1 => any::<Index>().prop_map(PlanEdit::RemoveNode),
    ]
}

/// Where every node of `plan` is, templates' included: its index, then its index in each
/// template on the way (explicit stack).
fn node_paths(plan: &Plan) -> Vec<Vec<usize>> {
    let mut paths = Vec::new();
    let mut stack: Vec<(Vec<usize>, &PlanNode)> = plan
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (vec![i], n))
        .collect();
    while let Some((path, node)) = stack.pop() {
        if let Some(template) = &node.map {
            for (i, inner) in template.nodes.iter().enumerate() {
                let mut inner_path = path.clone();
                inner_path.push(i);
                stack.push((inner_path, inner));
            }
        }
        paths.push(path);
    }
    paths
}

fn node_at_mut<'p>(plan: &'p mut Plan, path: &[usize]) -> &'p mut PlanNode {
    let mut node = &mut plan.nodes[path[0]];
    for &i in &path[1..] {
        node = &mut node
            .map
            .as_mut()
            .expect("a path goes through templates")
            .nodes[i];
    }
    node
}

/// Every argument template of `plan` (leaves and collections), templates' bodies included.
fn all_args_mut(plan: &mut Plan) -> Vec<&mut ArgTemplate> {
    let mut roots: Vec<&mut ArgTemplate> = Vec::new();
    let mut nodes: Vec<&mut PlanNode> = plan.nodes.iter_mut().collect();
    while let Some(node) = nodes.pop() {
        let PlanNode { args, map, .. } = node;
        roots.extend(args.iter_mut());
        if let Some(template) = map {
            let MapTemplate { nodes: inner, body } = &mut **template;
            nodes.extend(inner.iter_mut());
            roots.push(body);
        }
    }
    let mut found = Vec::new();
    while let Some(arg) = roots.pop() {
        let leaf = match &*arg {
            ArgTemplate::List(items) => items.is_empty(),
            ArgTemplate::Map(entries) => entries.is_empty(),
            _ => true,
        };
        if leaf {
            found.push(arg);
            continue;
        }
        match arg {
            ArgTemplate::List(items) => roots.extend(items.iter_mut()),
            ArgTemplate::Map(entries) => roots.extend(entries.iter_mut().map(|(_, a)| a)),
            _ => {}
        }
    }
    found
}

fn all_numbers_mut(plan: &mut Plan) -> Vec<&mut u32> {
    let Plan {
        sink,
        parent,
        nodes,
        ..
    } = plan;
    let mut found: Vec<&mut u32> = vec![sink];
    if let Some(link) = parent {
        found.push(&mut link.node);
    }
    let mut stack: Vec<&mut PlanNode> = nodes.iter_mut().collect();
    let mut args: Vec<&mut ArgTemplate> = Vec::new();
    while let Some(node) = stack.pop() {
        let PlanNode {
            task,
            args: node_args,
            children,
            parents,
            map,
            ..
        } = node;
        found.push(task);
        found.push(parents);
        found.extend(children.iter_mut());
        args.extend(node_args.iter_mut());
        if let Some(template) = map {
            let MapTemplate { nodes: inner, body } = &mut **template;
            stack.extend(inner.iter_mut());
            args.push(body);
        }
    }
    while let Some(arg) = args.pop() {
        match arg {
            ArgTemplate::Parent(n) | ArgTemplate::Outer(n) => found.push(n),
            ArgTemplate::List(items) => args.extend(items.iter_mut()),
            ArgTemplate::Map(entries) => args.extend(entries.iter_mut().map(|(_, a)| a)),
            ArgTemplate::Const(_) | ArgTemplate::Element => {}
        }
    }
    found
}

fn edit_plan(plan: &mut Plan, edit: &PlanEdit) {
    match edit {
        PlanEdit::Number(at, edit) => {
            let mut numbers = all_numbers_mut(plan);
            if numbers.is_empty() {
                return;
            }
            let n = at.index(numbers.len());
            let number = &mut *numbers[n];
            *number = match edit {
                NumberEdit::Increment => number.wrapping_add(1),
                NumberEdit::Decrement => number.wrapping_sub(1),
                NumberEdit::Set(value) => *value,
            };
        }
        PlanEdit::Leaf(at, leaf) => {
            let mut leaves = all_args_mut(plan);
            if !leaves.is_empty() {
                let n = at.index(leaves.len());
                *leaves[n] = leaf.clone();
            }
        }
        PlanEdit::Children(at, child) => {
            let paths = node_paths(plan);
            if paths.is_empty() {
                return;
            }
            let path = &paths[at.index(paths.len())];
            let children = &mut node_at_mut(plan, path).children;
            match child {
                Some(child) => children.push(*child),
                None => {
                    children.pop();
                }
            }
        }
        PlanEdit::ClearSignatures => plan.signatures.clear(),
        PlanEdit::DropSignature => {
            plan.signatures.pop();
        }
        PlanEdit::ToggleParentLink => {
            plan.parent = match plan.parent {
                Some(_) => None,
                None => Some(ParentLink {
                    dag: "top".into(),
                    node: 0,
                }),
            }
        }
        PlanEdit::RemoveNode(at) => {
            if !plan.nodes.is_empty() {
                let n = at.index(plan.nodes.len());
                plan.nodes.remove(n);
            }
        }
    }
}

/// A real plan with a few edits of its structure.
fn edited_plan() -> impl Strategy<Value = Plan> {
    let plans: Vec<Plan> = real_plans().into_iter().map(|(_, plan)| plan).collect();
    (
        prop::sample::select(plans),
        prop::collection::vec(plan_edit(), 1..4),
    )
        .prop_map(|(mut plan, edits)| {
            for edit in &edits {
                edit_plan(&mut plan, edit);
            }
            plan
        })
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn an_edited_plan_that_passes_validation_is_one_the_engine_can_follow(plan in edited_plan()) {
        if plan.validate().is_ok() {
            follow_every_index(&plan);
        }
        (target("plan").check)(&rmp_serde::to_vec(&plan).unwrap());
    }
}

/// Plans with arbitrary structure and small numbers, so that many of them get past decoding:
/// validation must reject every one the engine could not follow.
fn arbitrary_plan() -> impl Strategy<Value = Plan> {
    let leaf = prop_oneof![
        4 => (0..8_u32).prop_map(ArgTemplate::Parent),
        1 => Just(ArgTemplate::Element),
        1 => (0..3_u32).prop_map(ArgTemplate::Outer),
        1 => Just(ArgTemplate::Const(Bytes::from_static(&[0x2a]))),
    ];
    let arg = leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(ArgTemplate::List),
            prop::collection::vec(("[a-b]", inner), 0..3).prop_map(ArgTemplate::Map),
        ]
    });
    let template_node =
        (0..4_u32, prop::collection::vec(arg.clone(), 0..3)).prop_map(|(task, args)| PlanNode {
            task,
            args,
            children: Vec::new(),
            parents: 0,
            map: None,
            element: None,
        });
    let template = (prop::collection::vec(template_node, 0..4), arg.clone())
        .prop_map(|(nodes, body)| Box::new(MapTemplate { nodes, body }));
    let node = (
        0..4_u32,
        prop::collection::vec(arg, 0..3),
        prop::collection::vec(0..9_u32, 0..3),
        0..4_u32,
        prop::option::weighted(0.3, template),
    )
        .prop_map(|(task, args, children, parents, map)| PlanNode {
            task,
            args,
            children,
            parents,
            map,
            element: None,
        });
    (
        prop::collection::vec(node, 0..8),
        1..4_usize,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(mut nodes, tasks, relink, child, right_sink)| {
            // `link` trusts its input (it only sees nodes the engine built): relink only when
            // every parent comes before its child.
            let in_order = nodes
                .iter()
                .enumerate()
                .all(|(i, n)| n.distinct_parents().iter().all(|&p| (p as usize) < i));
            if relink && in_order {
                for node in &mut nodes {
                    node.children.clear();
                    node.parents = 0;
                }
                dag_runtime::plan::link(&mut nodes);
            }
            let tasks: Vec<String> = (0..tasks).map(|t| format!("t{t}")).collect();
            Plan {
                signatures: if child { Vec::new() } else { tasks.clone() },
                parent: child.then(|| ParentLink {
                    dag: "top".into(),
                    node: 0,
                }),
                tasks,
                sink: if right_sink {
                    nodes.len().saturating_sub(1) as u32
                } else {
                    3
                },
                nodes,
                policy: Default::default(),
            }
        })
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn a_plan_that_passes_validation_is_one_the_engine_can_follow(plan in arbitrary_plan()) {
        if plan.validate().is_ok() {
            follow_every_index(&plan);
        }
        (target("plan").check)(&rmp_serde::to_vec(&plan).unwrap());
    }
}

// ---------------------------------------------------------------------------------------------
// Known-bad inputs

#[test]
fn a_five_byte_header_claiming_two_billion_elements_allocates_nothing_for_them() {
    let bytes: &'static [u8] = &[0xdd, 0x7f, 0xff, 0xff, 0xff];
    let error = bounded("split_array", 5, || split_array(&Bytes::from_static(bytes)));
    let error = error.unwrap_err();
    assert!(error.contains("claims 2147483647 elements"), "{error}");
    check_decode(bytes);
    check_plan(bytes);
}

#[test]
fn a_header_claiming_four_billion_elements_fails_quickly_in_every_decoder() {
    let started = std::time::Instant::now();
    for header in [
        vec![0xdd, 0xff, 0xff, 0xff, 0xff],       // array32
        vec![0xdf, 0xff, 0xff, 0xff, 0xff],       // map32
        vec![0xdb, 0xff, 0xff, 0xff, 0xff, b'a'], // str32
        vec![0xc6, 0xff, 0xff, 0xff, 0xff, 0x00], // bin32
        vec![0x91, 0xdd, 0xff, 0xff, 0xff, 0xff], // inside a list
    ] {
        assert!(decode::<Vec<u64>>(&header).is_err());
        assert!(decode::<String>(&header).is_err());
        assert!(decode::<Bytes>(&header).is_err());
        assert!(decode::<HashMap<String, Vec<String>>>(&header).is_err());
        assert!(Plan::decode(&header).is_err());
        for target in TARGETS {
            (target.check)(&header);
        }
    }
    // Generous: a decoder that trusted the headers would allocate 4 GiB each time.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

/// `depth` arrays, one inside the other, around a 0.
fn nested_arrays(depth: usize) -> Vec<u8> {
    let mut bytes = vec![0x91; depth];
    bytes.push(0x00);
    bytes
}

/// A plan whose first node's argument is `List(List(...))`, `depth` levels deep, encoded by
/// hand: building it as a value and dropping it would itself recurse that deep.
fn deeply_nested_plan(depth: usize) -> Vec<u8> {
    let mut plan = lowered_plans().remove(0).1; // one task: `inc(1)`
    plan.nodes[0].args = vec![ArgTemplate::List(vec![])];
    let bytes = rmp_serde::to_vec(&plan).unwrap();
    // The empty list's encoding: {"List": []}, the only 0x90 after the "List" key.
    let key = rmp_serde::to_vec(&ArgTemplate::List(vec![])).unwrap();
    let at = find(&bytes, &key).expect("the list is in the encoding");
    let level = &key[..key.len() - 1]; // {"List": plus the array header below
    let mut nested = bytes[..at].to_vec();
    for _ in 0..depth {
        nested.extend_from_slice(level);
        nested.push(0x91);
    }
    nested.extend_from_slice(&key);
    nested.extend_from_slice(&bytes[at + key.len()..]);
    nested
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Runs `f` on a thread with the stack a worker thread has (the platform's default for spawned
/// threads, 2 MiB), so that a decoder recursing as deep as the input nests would overflow it.
fn on_a_worker_sized_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_plan_nested_a_hundred_thousand_levels_deep_is_refused_without_overflowing_the_stack() {
    on_a_worker_sized_stack(|| {
        let bytes = deeply_nested_plan(100_000);
        let error = Plan::decode(&bytes).unwrap_err();
        assert!(
            error.contains("nests arrays and maps deeper than"),
            "{error}"
        );
        check_plan(&bytes);
    });
}

#[test]
fn plans_nested_as_deep_as_validation_allows_decode_on_a_worker_sized_stack() {
    on_a_worker_sized_stack(|| {
        // As many nested lists as validation allows, and one more: validation draws the line,
        // not decoding.
        let fits = Plan::decode(&deeply_nested_plan(MAX_NESTING - 1)).unwrap();
        fits.validate().unwrap();
        let deeper = Plan::decode(&deeply_nested_plan(MAX_NESTING)).unwrap();
        let error = deeper.validate().unwrap_err().to_string();
        assert!(
            error.contains(&format!("deeper than {MAX_NESTING} levels")),
            "{error}"
        );
    });
}

#[test]
fn the_deepest_plan_that_decodes_needs_less_than_half_a_worker_stack() {
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(|| {
            let mut depth = MAX_NESTING;
            while Plan::decode(&deeply_nested_plan(depth + 1)).is_ok() {
                depth += 1;
            }
            // Decoding accepts every nesting validation does (a level of a map argument takes
            // two), and far less than rmp-serde's own limit.
            assert!(depth >= 2 * MAX_NESTING, "{depth}");
            assert!(depth < 512, "{depth}");
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_value_nested_a_hundred_thousand_levels_deep_is_refused_without_overflowing_the_stack() {
    on_a_worker_sized_stack(|| {
        let bytes = nested_arrays(100_000);
        assert!(decode::<Tree>(&bytes).is_err());
        let error = decode::<Deep>(&bytes).unwrap_err();
        assert!(error.contains("deeper than 128 levels"), "{error}");
        assert!(decode::<Vec<Vec<u8>>>(&bytes).is_err());
        let elements = split_array(&Bytes::from(bytes.clone())).unwrap();
        assert_eq!(elements.len(), 1);
        check_decode(&bytes);
    });
}

/// The known-bad inputs that are generated rather than written by hand, by corpus file name.
fn generated_corpus() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let real = real_plans();
    let plan_named = |name: &str| -> Plan {
        real.iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
            .expect("a real plan of that name")
    };
    let encode = |plan: &Plan| rmp_serde::to_vec(plan).unwrap();
    let mut out_of_range = plan_named("chain");
    out_of_range.nodes[1].task = 12;
    out_of_range.signatures.clear();
    let mut unlisted_parent = plan_named("chain");
    unlisted_parent.nodes[1].args = vec![ArgTemplate::Parent(7)];
    let mut outer_out_of_range = plan_named("map with an outer value");
    for node in &mut outer_out_of_range.nodes {
        if let Some(template) = &mut node.map {
            template.body = ArgTemplate::Outer(9);
        }
    }
    let mut element_at_top = plan_named("chain");
    element_at_top.nodes[0].args = vec![ArgTemplate::Element];
    let mut cycle = plan_named("chain");
    cycle.nodes[0].args = vec![ArgTemplate::Parent(2)];
    vec![
        (
            "plan",
            "task-index-out-of-range-without-signatures",
            encode(&out_of_range),
        ),
        (
            "plan",
            "parent-not-among-the-fetched-inputs",
            encode(&unlisted_parent),
        ),
        (
            "plan",
            "outer-value-out-of-range",
            encode(&outer_out_of_range),
        ),
        ("plan", "element-outside-a-map", encode(&element_at_top)),
        ("plan", "parent-after-its-child", encode(&cycle)),
        (
            "plan",
            "list-nested-100000-deep",
            deeply_nested_plan(100_000),
        ),
        (
            "plan",
            "list-nested-one-level-too-deep",
            deeply_nested_plan(MAX_NESTING),
        ),
        ("plan", "nested-maps", encode(&plan_named("nested maps"))),
        (
            "decode",
            "arrays-nested-100000-deep",
            nested_arrays(100_000),
        ),
        (
            "split_array",
            "arrays-nested-100000-deep",
            nested_arrays(100_000),
        ),
    ]
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus")
}

/// Rewrites the generated part of the corpus (the hand-written files stay as they are).
#[test]
#[ignore = "writes into the source tree; run by hand after changing the generated inputs"]
fn write_the_generated_corpus() {
    for (target, name, bytes) in generated_corpus() {
        let dir = corpus_dir().join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.bin")), bytes).unwrap();
    }
}

#[test]
fn the_generated_corpus_is_up_to_date() {
    for (target, name, bytes) in generated_corpus() {
        let path = corpus_dir().join(target).join(format!("{name}.bin"));
        let stored = std::fs::read(&path).unwrap_or_default();
        assert!(
            stored == bytes,
            "{} differs from what this test generates: run the ignored test \
             write_the_generated_corpus",
            path.display()
        );
    }
}

#[test]
fn the_corpus_replays_without_a_failure() {
    let mut replayed = 0;
    for entry in std::fs::read_dir(corpus_dir()).expect("fuzz-corpus/ exists") {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let target = TARGETS
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("fuzz-corpus/{name} names no target of this test"));
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let path = path.display().to_string();
            // Deep inputs need a worker's stack, not the test harness thread's.
            std::thread::Builder::new()
                .name(path.clone())
                .stack_size(2 << 20)
                .spawn(move || (target.check)(&bytes))
                .unwrap()
                .join()
                .unwrap_or_else(|_| panic!("{path} fails its target's check"));
            replayed += 1;
        }
    }
    assert!(replayed >= TARGETS.len(), "only {replayed} corpus files");
}
