//! Percentiles per task name, kept incrementally in mergeable DDSketches
//! ([`sketches_ddsketch`]: relative error at most 1% on every quantile), so that the digests of
//! many workers and many runs merge without re-reading raw records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

use super::record::{Outcome, TaskRecord};

/// The relative accuracy of every quantile of a [`Sketch`]: a reported p99 of 100 ms means the
/// true p99 is within 99..101 ms.
pub const RELATIVE_ERROR: f64 = 0.01;

/// A quantile sketch of one quantity (µs or bytes).
#[derive(Clone, Serialize, Deserialize)]
pub struct Sketch(DDSketch);

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sketch")
            .field("count", &self.count())
            .finish()
    }
}

impl Default for Sketch {
    fn default() -> Self {
        // The default config: 1% relative accuracy, at most 2048 bins (values over many orders
        // of magnitude, from 1 µs to hours, fit).
        Sketch(DDSketch::new(Config::defaults()))
    }
}

impl Sketch {
    /// Adds one value. Zero is kept as the sketch's smallest bucket, so counts stay exact.
    pub fn add(&mut self, value: u64) {
        self.0.add(value as f64);
    }

    /// Merges `other` in (the result is as if every value had been added here).
    pub fn merge(&mut self, other: &Sketch) {
        // Both use the default config, the only case where merging can fail.
        let _ = self.0.merge(&other.0);
    }

    /// How many values were added.
    pub fn count(&self) -> u64 {
        self.0.count() as u64
    }

    /// The `q`-quantile (0 ≤ q ≤ 1), within [`RELATIVE_ERROR`]; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.0.quantile(q).ok().flatten().map(|v| v.max(0.0))
    }

    /// The exact mean, minimum and maximum (the sketch keeps the sum, min and max exactly).
    pub fn mean(&self) -> Option<f64> {
        let count = self.0.count();
        (count > 0).then(|| self.0.sum().unwrap_or(0.0) / count as f64)
    }

    /// The smallest value added.
    pub fn min(&self) -> Option<f64> {
        self.0.min()
    }

    /// The largest value added.
    pub fn max(&self) -> Option<f64> {
        self.0.max()
    }

    /// Count, mean, min, max and the usual percentiles.
    pub fn stats(&self) -> Stats {
        let q = |q| self.quantile(q).unwrap_or(0.0);
        Stats {
            count: self.count(),
            mean: self.mean().unwrap_or(0.0),
            min: self.min().unwrap_or(0.0),
            max: self.max().unwrap_or(0.0),
            p50: q(0.5),
            p90: q(0.9),
            p95: q(0.95),
            p99: q(0.99),
        }
    }
}

/// Summary statistics of one quantity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Values added.
    pub count: u64,
    /// Their mean (exact).
    pub mean: f64,
    /// The smallest (exact).
    pub min: f64,
    /// The largest (exact).
    pub max: f64,
    /// The median, within [`RELATIVE_ERROR`].
    pub p50: f64,
    /// The 90th percentile, within [`RELATIVE_ERROR`].
    pub p90: f64,
    /// The 95th percentile, within [`RELATIVE_ERROR`].
    pub p95: f64,
    /// The 99th percentile, within [`RELATIVE_ERROR`].
    pub p99: f64,
}

/// The sketches of one task name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TaskDigest {
    /// Time in the task body, per attempt (µs).
    pub run_us: Sketch,
    /// Time waiting for inputs from the store, per task (µs).
    pub fetch_us: Sketch,
    /// Output size, per task (bytes).
    pub output_bytes: Sketch,
    /// Time storing the output and marking children, per task (µs).
    pub store_us: Sketch,
    /// Attempts that failed and were retried.
    pub retried: u64,
    /// Last attempts that failed.
    pub failed: u64,
}

impl TaskDigest {
    /// Merges `other` in.
    pub fn merge(&mut self, other: &TaskDigest) {
        self.run_us.merge(&other.run_us);
        self.fetch_us.merge(&other.fetch_us);
        self.output_bytes.merge(&other.output_bytes);
        self.store_us.merge(&other.store_us);
        self.retried += other.retried;
        self.failed += other.failed;
    }
}

/// Sketches per task name: of one worker for one DAG, of a whole DAG, or of many runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Digest {
    /// Task name → its sketches.
    pub by_task: BTreeMap<String, TaskDigest>,
    /// Records that were dropped instead of queued because the upload queue was full.
    #[serde(default)]
    pub dropped: u64,
}

impl Digest {
    /// Adds one attempt's record.
    pub fn add(&mut self, record: &TaskRecord) {
        let digest = match self.by_task.get_mut(&*record.task) {
            Some(digest) => digest,
            None => self.by_task.entry(record.task.to_string()).or_default(),
        };
        digest.run_us.add(record.run_us);
        match record.outcome {
            Outcome::Retried => {
                digest.retried += 1;
                return; // fetch and store happen once per task, on its last attempt
            }
            Outcome::Error | Outcome::TimedOut => digest.failed += 1,
            Outcome::Ok => {}
        }
        digest.fetch_us.add(record.fetch_us);
        digest.output_bytes.add(record.output_bytes);
        digest.store_us.add(record.store_us);
    }

    /// Merges `other` in.
    pub fn merge(&mut self, other: &Digest) {
        for (task, digest) in &other.by_task {
            self.by_task.entry(task.clone()).or_default().merge(digest);
        }
        self.dropped += other.dropped;
    }
}
