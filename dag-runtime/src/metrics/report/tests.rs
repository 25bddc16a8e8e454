//! The report on hand-built records whose answers are known.

use super::RunReport;
use crate::metrics::{
    Digest, InputRecord, Outcome, RunMetrics, RunRecord, RunState, TaskRecord, WorkerRecord,
};

const T0: u64 = 1_700_000_000_000_000;

/// One attempt of `task` at `dag:node`, from `start` to `end` ms after [`T0`]; the output of
/// its first parent came in memory, the others' from the store (10 bytes each).
fn attempt(
    dag: &str,
    node: u32,
    task: &str,
    (start, end): (u64, u64),
    parents: &[u32],
) -> TaskRecord {
    TaskRecord {
        dag: dag.into(),
        node,
        task: task.into(),
        worker: format!("host:1/{}", node % 2).into(),
        attempt: 1,
        start_us: T0 + start * 1_000,
        end_us: T0 + end * 1_000,
        fetch_us: 100,
        inputs: parents
            .iter()
            .skip(1)
            .map(|&node| InputRecord { node, bytes: 10 })
            .collect(),
        run_us: (end - start) * 1_000,
        output_bytes: 100,
        store_us: 200,
        continued: 0,
        delegated: 0,
        continuation: !parents.is_empty(),
        carried_from: parents.first().copied(),
        outcome: Outcome::Ok,
        kept_by: None,
        saved_by_clustering: 0,
        saved_by_delayed_io: 0,
    }
}

fn run(state: RunState, ended_ms: Option<u64>, tasks: Vec<TaskRecord>) -> RunMetrics {
    RunMetrics {
        run: RunRecord {
            id: "r".into(),
            name: "sink".into(),
            state,
            nodes: tasks.len() as u64,
            submitted_us: T0,
            ended_us: ended_ms.map(|ms| T0 + ms * 1_000),
            error: (state == RunState::Failed).then(|| "task `d` failed: boom".to_owned()),
            client: "host:1".into(),
        },
        tasks,
        digest: Digest::default(),
        workers: vec![WorkerRecord {
            worker: "host:1/0".into(),
            cold_start_us: Some(5_000),
            ..WorkerRecord::default()
        }],
    }
}

/// a(0) b(1) c(2) are roots; d(3) needs a (in memory) and b (fetched); e(4) needs c (in
/// memory) and d (fetched); f(5) needs e. b ends after a and d after c, so the path is
/// b → d → e → f. d's first attempt failed and was retried (a retried attempt lists no
/// inputs: they are fetched once per task).
fn diamond() -> Vec<TaskRecord> {
    let mut d1 = attempt("r", 3, "d", (20, 25), &[0, 1]);
    d1.outcome = Outcome::Retried;
    d1.inputs.clear();
    let mut d2 = attempt("r", 3, "d", (26, 40), &[0, 1]);
    d2.attempt = 2;
    vec![
        attempt("r", 0, "a", (0, 10), &[]),
        attempt("r", 1, "b", (0, 20), &[]),
        attempt("r", 2, "c", (0, 30), &[]),
        d1,
        d2,
        attempt("r", 4, "e", (40, 50), &[2, 3]),
        attempt("r", 5, "f", (50, 55), &[4]),
    ]
}

#[test]
fn critical_path_follows_the_parent_that_ended_last() {
    let report = RunReport::new(&run(RunState::Succeeded, Some(60), diamond()));
    assert_eq!(report.critical_path, ["b", "d", "e", "f"]);
    let d = &report.critical_path_steps[1];
    assert_eq!((d.node, d.attempts, d.start_us), (3, 2, T0 + 20_000));
    assert!(d.continuation);
}

#[test]
fn critical_path_stops_where_a_parents_record_is_missing() {
    let mut records = diamond();
    records.retain(|r| &*r.task != "e"); // dropped by a full queue, say
    let report = RunReport::new(&run(RunState::Succeeded, Some(60), records));
    assert_eq!(report.critical_path, ["f"]);
}

#[test]
fn critical_path_goes_through_a_maps_child_dag() {
    // r: split(0) -> map node(1) -> merge(2); the map's child DAG r.1: dag::map(0) fans out
    // to count(1) and count(2), collected by dag::collect(3). count(2) ends last.
    let records = vec![
        attempt("r", 0, "split", (0, 10), &[]),
        attempt("r", 1, "map(count)", (10, 12), &[0]),
        attempt("r.1", 0, "dag::map", (12, 13), &[]),
        attempt("r.1", 1, "count", (13, 20), &[0]),
        attempt("r.1", 2, "count", (13, 30), &[0]),
        attempt("r.1", 3, "dag::collect", (30, 31), &[1, 2]),
        attempt("r", 2, "merge", (31, 40), &[1]),
    ];
    let report = RunReport::new(&run(RunState::Succeeded, Some(41), records));
    assert_eq!(
        report.critical_path,
        [
            "split",
            "map(count)",
            "dag::map",
            "count",
            "dag::collect",
            "merge"
        ]
    );
    assert_eq!(report.critical_path_steps[3].node, 2);
    assert_eq!(report.tasks, 7);
}

#[test]
fn a_long_chain_is_walked_without_recursion() {
    let records: Vec<TaskRecord> = (0..100_000u32)
        .map(|n| {
            let parents: Vec<u32> = n.checked_sub(1).into_iter().collect();
            attempt("r", n, "step", (u64::from(n), u64::from(n) + 1), &parents)
        })
        .collect();
    let report = RunReport::new(&run(RunState::Succeeded, Some(100_001), records));
    assert_eq!(report.critical_path.len(), 100_000);
}

#[test]
fn totals_count_tasks_attempts_bytes_and_round_trips() {
    let report = RunReport::new(&run(RunState::Succeeded, Some(60), diamond()));
    assert_eq!(report.makespan_ms, Some(60.0));
    assert_eq!((report.tasks, report.attempts), (6, 7));
    assert_eq!((report.retries, report.failures), (1, 0));
    assert_eq!(report.bytes_uploaded, 6 * 100); // the retried attempt stored nothing
    assert_eq!(report.bytes_downloaded, 2 * 10);
    assert_eq!(report.store_round_trips, 2 + 6); // two fetches, six completions
    let workers: Vec<(&str, u64)> = report
        .workers
        .iter()
        .map(|w| (&*w.worker, w.tasks))
        .collect();
    assert_eq!(workers, [("host:1/0", 3), ("host:1/1", 4)]);
    assert_eq!(report.workers[0].cold_start_ms, Some(5.0));
    assert_eq!(report.slowest[0].task, "c"); // 30 ms
    assert!(report.errors.is_empty());
}

#[test]
fn percentiles_per_task_come_within_the_sketch_error() {
    let records: Vec<TaskRecord> = (1..=100u64)
        .map(|ms| attempt("r", ms as u32, "t", (0, ms), &[]))
        .collect();
    let metrics = run(RunState::Succeeded, Some(101), records);
    let mut digest = Digest::default();
    metrics.tasks.iter().for_each(|r| digest.add(r));
    // The same answer from an uploaded digest and from one rebuilt from the records.
    for metrics in [metrics.clone(), RunMetrics { digest, ..metrics }] {
        let report = RunReport::new(&metrics);
        let t = &report.by_task[0];
        assert_eq!((&*t.task, t.count), ("t", 100));
        assert!((t.mean_ms - 50.5).abs() < 1e-9);
        assert_eq!((t.min_ms, t.max_ms), (1.0, 100.0));
        for (got, exact) in [
            (t.p50_ms, 50.0),
            (t.p90_ms, 90.0),
            (t.p95_ms, 95.0),
            (t.p99_ms, 99.0),
        ] {
            assert!((got - exact).abs() <= exact * 0.011, "{got} vs {exact}");
        }
        assert!((t.store_ms.p50 - 0.2).abs() < 0.01);
        assert_eq!(t.output_bytes.max, 100.0);
    }
}

#[test]
fn an_unfinished_run_without_records_reports_nothing_rather_than_failing() {
    let report = RunReport::new(&run(RunState::Running, None, Vec::new()));
    assert_eq!(report.makespan_ms, None);
    assert_eq!((report.tasks, report.attempts), (0, 0));
    assert!(report.critical_path.is_empty() && report.by_task.is_empty());
    let text = report.to_string();
    assert!(
        text.contains("running") && text.contains("makespan    -"),
        "{text}"
    );
}

#[test]
fn an_unfinished_run_measures_its_makespan_to_the_last_record() {
    let report = RunReport::new(&run(RunState::Running, None, diamond()));
    assert_eq!(report.makespan_ms, Some(55.0));
    assert_eq!(report.critical_path, ["b", "d", "e", "f"]);
}

#[test]
fn a_failed_run_lists_its_errors_and_ends_its_path_at_the_failure() {
    let mut records = diamond();
    records.truncate(5); // a, b, c, d (retried, then failed)
    records[4].outcome = Outcome::Error;
    records.push(attempt("r", 6, "late", (0, 90), &[])); // still ran after the failure
    let report = RunReport::new(&run(RunState::Failed, Some(45), records));
    assert_eq!(report.critical_path, ["b", "d"]);
    assert_eq!((report.retries, report.failures), (1, 1));
    assert_eq!(report.errors.len(), 1);
    assert_eq!(report.errors[0].task, "d");
    assert_eq!(
        report.errors[0].message.as_deref(),
        Some("task `d` failed: boom")
    );
    let text = report.to_string();
    assert!(text.contains("errors") && text.contains("boom"), "{text}");
}

#[test]
fn the_text_form_aligns_its_percentile_table() {
    let report = RunReport::new(&run(RunState::Succeeded, Some(60), diamond()));
    let text = report.to_string();
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("run time per task"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(table.len(), 1 + 6, "{text}");
    let width = table[0].len();
    assert!(table.iter().all(|l| l.len() == width), "{text}");
    assert!(text.contains("critical path (4 tasks"), "{text}");
}

#[test]
fn kept_outputs_are_not_uploaded_and_their_savings_add_up() {
    let mut records = diamond();
    records[0].kept_by = Some(crate::metrics::Kept::Clustering);
    records[0].saved_by_clustering = 300;
    records[1].kept_by = Some(crate::metrics::Kept::DelayedIo);
    records[1].saved_by_delayed_io = 200;
    let report = RunReport::new(&run(RunState::Succeeded, Some(60), records));
    // Two of the six stored outputs stayed in their workers.
    assert_eq!(report.bytes_uploaded, 4 * 100);
    assert_eq!(
        (report.saved_by_clustering, report.saved_by_delayed_io),
        (300, 200)
    );
    let text = report.to_string();
    assert!(text.contains("thanks to task clustering"), "{text}");
}

#[test]
fn the_json_form_has_the_fields_scripts_read() {
    let report = RunReport::new(&run(RunState::Succeeded, Some(60), diamond()));
    let json = serde_json::to_value(&report).unwrap();
    for field in [
        "id",
        "state",
        "tasks",
        "makespan_ms",
        "bytes_uploaded",
        "bytes_downloaded",
        "saved_by_clustering",
        "saved_by_delayed_io",
    ] {
        assert!(json.get(field).is_some(), "{field} missing: {json}");
    }
    assert_eq!(json["state"], "succeeded");
    assert_eq!(
        json["critical_path"],
        serde_json::json!(["b", "d", "e", "f"])
    );
    let first = &json["by_task"][0];
    for field in [
        "task", "count", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms",
    ] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }
}

/// A leaf whose worker recorded its end after the sink had run on another thread does not
/// start the path: a run that succeeded ends with its sink.
#[test]
fn a_succeeded_run_ends_with_its_sink() {
    let records = vec![
        attempt("r", 0, "leaf", (0, 10), &[]),
        attempt("r", 1, "leaf", (0, 5), &[]),
        attempt("r", 2, "sum", (5, 8), &[1, 0]),
    ];
    let mut late = records;
    late[0].end_us = T0 + 9_000; // after the sum's end
    let report = RunReport::new(&run(RunState::Succeeded, Some(12), late));
    assert_eq!(report.critical_path, ["leaf", "sum"]);
    assert_eq!(report.critical_path_steps[1].node, 2);
}
