//! Whole-system tests: task failures end `compute` with a precise error, never a hang.

mod support;

use dag::prelude::*;
use support::on_every_runtime;

#[task]
fn inc(x: i64) -> i64 {
    x + 1
}

#[task]
fn sum(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

#[task]
fn explode(x: i64) -> i64 {
    if x == 3 {
        panic!("boom at {x}");
    }
    x
}

#[task]
fn checked_half(x: i64) -> Result<i64, String> {
    if x % 2 == 0 {
        Ok(x / 2)
    } else {
        Err(format!("{x} is odd"))
    }
}

#[task]
fn parse(text: String) -> std::io::Result<i64> {
    text.parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn expect_failure<T: std::fmt::Debug>(result: Result<T, DagError>) -> (String, u32, String) {
    match result {
        Err(DagError::TaskFailed {
            task,
            attempt,
            message,
            ..
        }) => (task, attempt, message),
        other => panic!("expected TaskFailed, got {other:?}"),
    }
}

#[test]
fn a_panic_fails_the_dag_with_the_panic_message() {
    on_every_runtime(|rt| {
        let (task, attempt, message) = expect_failure(inc(explode(3)).compute_on(rt));
        assert_eq!(task, "failures::explode");
        assert_eq!(attempt, 1);
        assert_eq!(message, "panicked: boom at 3");
    });
}

#[test]
fn an_err_fails_the_dag_with_its_display_text() {
    on_every_runtime(|rt| {
        let (task, _, message) = expect_failure(checked_half(inc(2)).compute_on(rt));
        assert_eq!(task, "failures::checked_half");
        assert_eq!(message, "3 is odd");
        assert_eq!(checked_half(inc(3)).compute_on(rt), Ok(2));
    });
}

#[test]
fn result_aliases_are_recognised() {
    on_every_runtime(|rt| {
        assert_eq!(parse("41".to_string()).compute_on(rt), Ok(41));
        let (_, _, message) = expect_failure(parse("x".to_string()).compute_on(rt));
        assert!(message.contains("invalid digit"), "{message}");
    });
}

#[test]
fn one_failing_leaf_of_a_wide_fan_in_fails_the_dag() {
    on_every_runtime(|rt| {
        let leaves: Vec<Node<i64>> = (0..500).map(explode).collect();
        let (task, _, message) = expect_failure(sum(leaves).compute_on(rt));
        assert_eq!(task, "failures::explode");
        assert_eq!(message, "panicked: boom at 3");
    });
}

#[test]
fn the_runtime_keeps_working_after_a_failure() {
    on_every_runtime(|rt| {
        for _ in 0..5 {
            assert!(explode(3).compute_on(rt).is_err());
            assert_eq!(inc(explode(4)).compute_on(rt), Ok(5));
        }
    });
}

#[test]
fn the_error_message_names_task_node_and_attempt() {
    let error = explode(3).compute().unwrap_err();
    assert_eq!(
        error.to_string(),
        "task `failures::explode` (node 0) failed on attempt 1: panicked: boom at 3"
    );
    // Usable with `?` in functions returning boxed errors or anyhow.
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(error.clone());
    let _ = anyhow::Error::from(error);
    assert!(boxed.to_string().contains("boom"));
}

struct Unencodable;

impl serde::Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "this value refuses to be encoded",
        ))
    }
}

impl<'de> serde::Deserialize<'de> for Unencodable {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(Unencodable)
    }
}

#[task]
fn takes_unencodable(_u: Unencodable) -> i64 {
    0
}

#[test]
fn a_constant_that_cannot_be_encoded_is_a_codec_error() {
    match takes_unencodable(Unencodable).compute() {
        Err(DagError::Codec {
            action,
            what,
            message,
        }) => {
            assert_eq!(action, "encode");
            assert!(what.contains("takes_unencodable"), "{what}");
            assert_eq!(message, "this value refuses to be encoded");
        }
        other => panic!("expected a codec error, got {other:?}"),
    }
}

/// Runs `plan` with the engine itself, as a worker process does with a plan it loads: the way a
/// plan built by other code (another version of the program) reaches a task.
fn run_plan_on_a_worker(plan: dag::plan::Plan) -> DagError {
    use dag::store::{DagId, MemoryStore, Outcome, Store};
    use dag_runtime::engine::{run_invocation, Delegate, Invocation, LoadedDag, WorkerContext};
    use std::sync::Arc;

    struct Nowhere;
    impl Delegate for Nowhere {
        fn delegate(&self, _: &Arc<LoadedDag>, invocation: Invocation) {
            panic!(
                "a one-node plan delegates nothing, got node {}",
                invocation.node
            );
        }
    }

    let io = tokio::runtime::Runtime::new().unwrap();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let plan = Arc::new(plan);
    let dag = DagId::new();
    io.block_on(store.put_plan(&dag, &plan)).unwrap();
    let loaded = Arc::new(LoadedDag::resolve(dag.clone(), plan).unwrap());
    let ctx = WorkerContext {
        store: Arc::clone(&store),
        io: io.handle().clone(),
        name: "test-worker".into(),
        policy: dag_runtime::task::TaskPolicy::DEFAULT,
        metrics: None,
        locality: dag_runtime::Locality::default(),
    };
    let first = Invocation::fetching(0);
    std::thread::spawn(move || run_invocation(&ctx, &loaded, first, &Nowhere, ""))
        .join()
        .unwrap();
    match io.block_on(store.wait(&dag)).unwrap() {
        Outcome::Failed(record) => record.into(),
        Outcome::Success(bytes) => panic!("expected a failure, got {bytes:?}"),
    }
}

#[test]
fn argument_bytes_that_do_not_decode_fail_the_task_naming_the_argument() {
    let mut plan = inc(1).plan().unwrap();
    // What a plan from other code could hold: a string where `inc` takes an i64.
    plan.nodes[0].args[0] = dag::plan::ArgTemplate::Const(rmp_serde::to_vec("one").unwrap().into());
    match run_plan_on_a_worker(plan) {
        DagError::TaskFailed { task, message, .. } => {
            assert!(task.ends_with("inc"), "{task}");
            assert!(message.contains("argument `x`"), "{message}");
            assert!(
                message.contains("could not be decoded as `i64`"),
                "{message}"
            );
        }
        other => panic!("expected TaskFailed, got {other:?}"),
    }
}

#[test]
fn a_plan_with_too_few_arguments_fails_the_task_naming_it() {
    let mut plan = inc(1).plan().unwrap();
    plan.nodes[0].args.clear();
    match run_plan_on_a_worker(plan) {
        DagError::TaskFailed { task, message, .. } => {
            assert!(task.ends_with("inc"), "{task}");
            assert!(message.contains("passes 0 arguments"), "{message}");
        }
        other => panic!("expected TaskFailed, got {other:?}"),
    }
}
