//! What `dag runs` shows beside each run record: its tasks and failures, from the run's
//! digests (one small hash per run) rather than its task records (one per attempt, too many
//! to read for a list).
//!
//! [`MetricsBackend`](dag::metrics::MetricsBackend) has no call for this, so the hashes are
//! read here by their documented key, `dagm:{<id>}:digest` (see `RedisMetrics`), in one
//! pipelined round trip.

use dag::metrics::Digest;
use redis::aio::MultiplexedConnection;

use crate::error::{addr_of, CliError};

/// Tasks and failures of one run, as its digests count them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Tasks that ran (their last attempts).
    pub tasks: u64,
    /// Last attempts that failed.
    pub failures: u64,
}

impl Counts {
    fn of(digest: &Digest) -> Counts {
        let mut counts = Counts::default();
        for task in digest.by_task.values() {
            counts.tasks += task.run_us.count().saturating_sub(task.retried);
            counts.failures += task.failed;
        }
        counts
    }
}

/// The counts of each run of `ids`, in order (zero for a run with nothing uploaded yet).
pub async fn counts(
    connection: &mut MultiplexedConnection,
    url: &str,
    ids: &[String],
) -> Result<Vec<Counts>, CliError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.hgetall(format!("dagm:{{{id}}}:digest"));
    }
    let hashes: Vec<Vec<(String, Vec<u8>)>> =
        pipe.query_async(connection)
            .await
            .map_err(|e| CliError::Redis {
                addr: addr_of(url),
                message: format!("reading the runs' digests: {e}"),
            })?;
    Ok(hashes
        .iter()
        .map(|recorders| {
            let mut digest = Digest::default();
            // A digest that does not decode (another version of dag wrote it) counts nothing
            // rather than hiding the whole list; `dag show` reports the decoding error.
            for (_, bytes) in recorders {
                if let Ok(part) = rmp_serde::from_slice::<Digest>(bytes) {
                    digest.merge(&part);
                }
            }
            Counts::of(&digest)
        })
        .collect())
}
