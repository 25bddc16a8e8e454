//! `dag show <id>`: one run's report.

use dag::metrics::{Digest, History, MetricsBackend, RedisMetrics, RunMetrics, RunReport};

use crate::error::{addr_of, CliError};

/// How many recent runs a prefix of an id is looked up among.
const PREFIX_SEARCH: usize = 1_000;

/// At most this many recent runs of the same graph go into the percentiles across runs.
const HISTORY_RUNS: usize = 20;

/// The report of run `id` (or of the one run whose id starts with it), as text or JSON.
pub async fn show(
    metrics: &RedisMetrics,
    url: &str,
    id: &str,
    json: bool,
) -> Result<String, CliError> {
    let run = find(metrics, url, id).await?;
    let mut report = RunReport::new(&run);
    if let Some(history) = history(metrics, &run).await? {
        report = report.with_history(history);
    }
    Ok(if json {
        serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
    } else {
        report.to_string()
    })
}

/// The percentiles of the run's task names across the recent runs of the same graph (this one
/// included, at most [`HISTORY_RUNS`]), merged from their digests; `None` if it is the only one.
async fn history(metrics: &RedisMetrics, run: &RunMetrics) -> Result<Option<History>, CliError> {
    let ids: Vec<String> = metrics
        .runs(PREFIX_SEARCH)
        .await?
        .into_iter()
        .filter(|other| other.name == run.run.name && other.submitted_us <= run.run.submitted_us)
        .map(|other| other.id)
        .take(HISTORY_RUNS)
        .collect();
    if ids.len() < 2 {
        return Ok(None);
    }
    let mut merged = Digest::default();
    for digest in metrics.digests(&ids).await? {
        merged.merge(&digest);
    }
    Ok(Some(History::new(run.run.name.clone(), ids.len(), &merged)))
}

async fn find(metrics: &RedisMetrics, url: &str, id: &str) -> Result<RunMetrics, CliError> {
    if let Some(run) = metrics.run(id).await? {
        return Ok(run);
    }
    let no_such_run = || CliError::NoSuchRun {
        id: id.to_owned(),
        addr: addr_of(url),
    };
    if id.is_empty() {
        return Err(no_such_run());
    }
    let matches: Vec<String> = metrics
        .runs(PREFIX_SEARCH)
        .await?
        .into_iter()
        .map(|run| run.id)
        .filter(|candidate| candidate.starts_with(id))
        .collect();
    match matches.as_slice() {
        [one] => metrics.run(one).await?.ok_or_else(no_such_run),
        [] => Err(no_such_run()),
        _ => Err(CliError::AmbiguousRun {
            prefix: id.to_owned(),
            matches,
        }),
    }
}
