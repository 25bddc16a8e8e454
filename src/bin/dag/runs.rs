//! `dag runs`: recent runs, newest first.

use dag::metrics::{
    rfc3339, Digest, MetricsBackend, MetricsError, RedisMetrics, RunRecord, RunState,
};
use serde::Serialize;

use crate::error::CliError;
use crate::table::Table;

/// One run as `dag runs --json` prints it (and the dashboard's `/api/runs` serves it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub id: String,
    pub name: String,
    pub state: RunState,
    /// Submission, RFC 3339 (UTC).
    pub started_at: String,
    /// Submission, µs since the Unix epoch.
    pub started_at_us: u64,
    pub ended_at_us: Option<u64>,
    /// `null` while running.
    pub makespan_ms: Option<f64>,
    /// Nodes in the submitted plan (maps' elements excluded).
    pub nodes: u64,
    /// Tasks that ran (maps' elements included).
    pub tasks: u64,
    pub failures: u64,
    pub error: Option<String>,
}

impl RunRow {
    pub fn new(run: &RunRecord, counts: Counts) -> Self {
        RunRow {
            id: run.id.clone(),
            name: run.name.clone(),
            state: run.state,
            started_at: rfc3339(run.submitted_us),
            started_at_us: run.submitted_us,
            ended_at_us: run.ended_us,
            makespan_ms: run.makespan_us().map(|us| us as f64 / 1e3),
            nodes: run.nodes,
            tasks: counts.tasks,
            failures: counts.failures,
            error: run.error.clone(),
        }
    }
}

/// The `limit` most recent runs, as a table or a JSON array.
///
/// Each run's tasks and failures come from its digests (one small hash per run, read with
/// [`MetricsBackend::digests`]) rather than its task records (one per attempt, too many to read
/// for a list).
pub async fn runs(metrics: &RedisMetrics, limit: usize, json: bool) -> Result<String, CliError> {
    let rows = rows(metrics, limit).await?;
    if json {
        return Ok(serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n");
    }
    if rows.is_empty() {
        return Ok(
            "no runs recorded (metrics are on when a runtime is built with \
                   .metrics(...) or a worker has DAG_METRICS set)\n"
                .to_owned(),
        );
    }
    let mut table = Table::new(
        &[
            "id",
            "name",
            "state",
            "started (UTC)",
            "makespan",
            "tasks",
            "failures",
        ],
        4,
    );
    for row in &rows {
        table.row(vec![
            row.id.clone(),
            row.name.clone(),
            row.state.as_str().to_owned(),
            // `2026-12-02 00:41:25`: RFC 3339 to the second, easier on the eye.
            row.started_at[..19].replace('T', " "),
            row.makespan_ms.map_or("-".to_owned(), seconds),
            row.tasks.to_string(),
            row.failures.to_string(),
        ]);
    }
    Ok(table.render())
}

/// The `limit` most recent runs, newest first.
pub async fn rows(metrics: &RedisMetrics, limit: usize) -> Result<Vec<RunRow>, MetricsError> {
    let runs = metrics.runs(limit).await?;
    let ids: Vec<String> = runs.iter().map(|run| run.id.clone()).collect();
    let counts = metrics.digests(&ids).await?;
    Ok(runs
        .iter()
        .zip(counts.iter().map(Counts::of))
        .map(|(run, counts)| RunRow::new(run, counts))
        .collect())
}

fn seconds(ms: f64) -> String {
    format!("{:.3} s", ms / 1e3)
}

/// Tasks and failures of one run, as its digests count them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Tasks that ran (their last attempts).
    pub tasks: u64,
    /// Last attempts that failed.
    pub failures: u64,
}

impl Counts {
    pub fn of(digest: &Digest) -> Counts {
        let mut counts = Counts::default();
        for task in digest.by_task.values() {
            counts.tasks += task.run_us.count().saturating_sub(task.retried);
            counts.failures += task.failed;
        }
        counts
    }
}
