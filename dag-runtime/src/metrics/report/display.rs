//! The text form of a [`RunReport`]: a summary, then aligned tables (critical path,
//! percentiles per task, workers, slowest attempts, errors). Sections with nothing to show are
//! left out.

use std::fmt::{self, Display, Formatter};

use super::{AttemptReport, RunReport};
use crate::metrics::record::Outcome;

impl Display for RunReport {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.summary(f)?;
        self.critical_path_table(f)?;
        self.task_tables(f)?;
        self.worker_table(f)?;
        if !self.slowest.is_empty() {
            writeln!(f, "\nslowest attempts")?;
            attempt_table(&self.id, &self.slowest, false).write(f)?;
        }
        if !self.errors.is_empty() {
            writeln!(f, "\nerrors")?;
            attempt_table(&self.id, &self.errors, true).write(f)?;
        }
        if let Some(history) = &self.history {
            writeln!(
                f,
                "\nrun time per task (ms) across the last {} runs of {}",
                history.runs, history.name
            )?;
            run_time_table(&history.by_task).write(f)?;
        }
        Ok(())
    }
}

impl RunReport {
    fn summary(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "run {}  {}  {}", self.id, self.name, self.state.as_str())?;
        let makespan = self.makespan_ms.map_or("-".to_owned(), duration);
        writeln!(f, "  started     {}", self.started_at)?;
        writeln!(f, "  makespan    {makespan}")?;
        writeln!(
            f,
            "  tasks       {} ({} attempts, {} retries, {} failures; {} nodes planned)",
            self.tasks, self.attempts, self.retries, self.failures, self.nodes
        )?;
        writeln!(
            f,
            "  bytes       {} uploaded, {} downloaded, {} store round trips",
            bytes(self.bytes_uploaded as f64),
            bytes(self.bytes_downloaded as f64),
            self.store_round_trips
        )?;
        if self.saved_by_clustering + self.saved_by_delayed_io > 0 {
            writeln!(
                f,
                "  not moved   {} thanks to task clustering, {} thanks to delayed I/O",
                bytes(self.saved_by_clustering as f64),
                bytes(self.saved_by_delayed_io as f64)
            )?;
        }
        if self.dropped_records > 0 {
            writeln!(
                f,
                "  dropped     {} records (a full upload queue): the figures miss them",
                self.dropped_records
            )?;
        }
        if let Some(error) = &self.error {
            writeln!(f, "  error       {error}")?;
        }
        Ok(())
    }

    fn critical_path_table(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let (Some(first), Some(last)) = (
            self.critical_path_steps.first(),
            self.critical_path_steps.last(),
        ) else {
            return Ok(());
        };
        writeln!(
            f,
            "\ncritical path ({} tasks, {} from the first start to the last end)",
            self.critical_path_steps.len(),
            duration(last.end_us.saturating_sub(first.start_us) as f64 / 1e3)
        )?;
        let mut table = Table::new(&[
            "task", "node", "start", "took", "run", "fetch", "store", "via",
        ])
        .left(&[0, 7]);
        for step in &self.critical_path_steps {
            let offset = step.start_us.saturating_sub(self.started_at_us) as f64 / 1e3;
            let via = if step.continuation {
                "continuation"
            } else {
                "invocation"
            };
            table.row(vec![
                step.task.clone(),
                node_label(&self.id, &step.dag, step.node),
                format!("+{}", duration(offset)),
                duration(step.end_us.saturating_sub(step.start_us) as f64 / 1e3),
                duration(step.run_ms),
                duration(step.fetch_ms),
                duration(step.store_ms),
                match step.attempts {
                    1 => via.to_owned(),
                    n => format!("{via}, {n} attempts"),
                },
            ]);
        }
        table.write(f)
    }

    fn task_tables(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.by_task.is_empty() {
            return Ok(());
        }
        writeln!(f, "\nrun time per task (ms)")?;
        run_time_table(&self.by_task).write(f)?;

        writeln!(f, "\ninput wait, store time (ms) and output size per task")?;
        let mut table = Table::new(&[
            "task",
            "wait p50",
            "wait p99",
            "store p50",
            "store p99",
            "out p50",
            "out max",
        ]);
        for t in &self.by_task {
            table.row(vec![
                t.task.clone(),
                number(t.input_wait_ms.p50),
                number(t.input_wait_ms.p99),
                number(t.store_ms.p50),
                number(t.store_ms.p99),
                bytes(t.output_bytes.p50),
                bytes(t.output_bytes.max),
            ]);
        }
        table.write(f)
    }

    fn worker_table(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.workers.is_empty() {
            return Ok(());
        }
        writeln!(f, "\nworkers ({})", self.workers.len())?;
        let mut table = Table::new(&["worker", "attempts", "busy", "cold start"]).left(&[0]);
        for w in &self.workers {
            table.row(vec![
                w.worker.clone(),
                w.tasks.to_string(),
                duration(w.busy_ms),
                w.cold_start_ms.map_or("-".to_owned(), duration),
            ]);
        }
        table.write(f)
    }
}

/// A node of run `run`: its index, prefixed inside a map's child DAG by the rest of that DAG's
/// id (`.3:2` is node 2 of the child DAG of map node 3).
fn node_label(run: &str, dag: &str, node: u32) -> String {
    match dag.strip_prefix(run) {
        Some(child) => format!("{child}{}{node}", if child.is_empty() { "" } else { ":" }),
        None => format!("{dag}:{node}"),
    }
}

fn attempt_table(run: &str, attempts: &[AttemptReport], with_message: bool) -> Table {
    let mut headers = vec!["task", "node", "attempt", "run", "outcome", "worker"];
    if with_message {
        headers.push("message");
    }
    let mut table = Table::new(&headers).left(&[0, 4, 5, 6]);
    for a in attempts {
        let mut row = vec![
            a.task.clone(),
            node_label(run, &a.dag, a.node),
            a.attempt.to_string(),
            duration(a.run_ms),
            outcome(a.outcome).to_owned(),
            a.worker.clone(),
        ];
        if with_message {
            // One line per row: a multi-line message would break the table's columns.
            let message = a.message.as_deref().unwrap_or("-");
            row.push(message.lines().next().unwrap_or("").to_owned());
        }
        table.row(row);
    }
    table
}

fn outcome(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Ok => "ok",
        Outcome::Retried => "retried",
        Outcome::Error => "error",
        Outcome::TimedOut => "timed out",
    }
}

/// A number of milliseconds for a table: three decimals below 10, fewer above.
fn number(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.3}")
    } else if value < 1_000.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

/// Milliseconds as `850 µs`, `12.3 ms` or `4.56 s`.
pub(super) fn duration(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1e3)
    } else if ms < 1_000.0 {
        format!("{} ms", number(ms))
    } else {
        format!("{:.2} s", ms / 1e3)
    }
}

/// A size as `512 B`, `1.5 KiB`, `3.2 MiB` or `1.1 GiB`.
pub(super) fn bytes(value: f64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if value < 1024.0 {
        return format!("{value:.0} B");
    }
    let mut value = value / 1024.0;
    let mut unit = UNITS[0];
    for next in &UNITS[1..] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

/// Columns padded to their widest cell: text left-aligned (the first column, and those named
/// with [`Table::left`]), numbers right-aligned; two spaces apart, indented by two.
struct Table {
    rows: Vec<Vec<String>>,
    left: Vec<usize>,
}

impl Table {
    fn new(headers: &[&str]) -> Table {
        Table {
            rows: vec![headers.iter().map(|h| (*h).to_owned()).collect()],
            left: vec![0],
        }
    }

    /// These columns hold text: left-aligned.
    fn left(mut self, columns: &[usize]) -> Table {
        self.left = columns.to_vec();
        self
    }

    fn row(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    fn write(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::from(" ");
            for (c, cell) in row.iter().enumerate() {
                let pad = widths[c].saturating_sub(cell.chars().count());
                line.push(' ');
                if self.left.contains(&c) {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                } else {
                    line.push(' ');
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                }
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// Count, mean, min, percentiles, max, retried and failed of the run time per task (ms).
fn run_time_table(by_task: &[super::TaskStats]) -> Table {
    let mut table = Table::new(&[
        "task", "count", "mean", "min", "p50", "p90", "p95", "p99", "max", "retried", "failed",
    ]);
    for t in by_task {
        let mut row = vec![t.task.clone(), t.count.to_string()];
        row.extend(
            [
                t.mean_ms, t.min_ms, t.p50_ms, t.p90_ms, t.p95_ms, t.p99_ms, t.max_ms,
            ]
            .map(number),
        );
        row.extend([t.retried.to_string(), t.failed.to_string()]);
        table.row(row);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::{bytes, duration};

    #[test]
    fn durations_and_sizes_read_in_their_natural_unit() {
        assert_eq!(duration(0.25), "250 µs");
        assert_eq!(duration(12.34), "12.3 ms");
        assert_eq!(duration(4_560.0), "4.56 s");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0), "3.0 MiB");
    }
}
