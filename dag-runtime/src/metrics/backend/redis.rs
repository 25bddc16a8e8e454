//! Metrics in Redis, under their own prefix and time to live (they outlive the DAG's keys):
//!
//! | key | holds |
//! | --- | --- |
//! | `dagm:runs` | sorted set of run ids by submission time (µs) |
//! | `dagm:{<id>}:run` | the run's record (MessagePack), written by its client |
//! | `dagm:{<id>}:tasks` | list of task records (MessagePack), appended by each upload |
//! | `dagm:{<id>}:digest` | hash: recorder (`host:pid`) → its cumulative digest of the run |
//! | `dagm:workers` | hash: worker → its latest record |
//!
//! One run's keys share the hash tag `{<id>}` (the root DAG's id: a map's child DAGs file
//! under it), so they live on one shard of a cluster. Every write refreshes the time to live
//! of the keys it touches.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::OnceCell;

use super::{root_of, Batch, MetricsBackend, RunMetrics};
use crate::error::DagError;
use crate::metrics::digest::Digest;
use crate::metrics::record::{now_us, RunRecord, TaskRecord, WorkerRecord};
use crate::metrics::storage::MetricsError;

const RUNS: &str = "dagm:runs";
/// Task records read by one `LRANGE` (about 100 bytes each).
const RECORDS_PER_READ: usize = 10_000;
const WORKERS: &str = "dagm:workers";

fn run_key(id: &str) -> String {
    format!("dagm:{{{id}}}:run")
}
fn tasks_key(id: &str) -> String {
    format!("dagm:{{{id}}}:tasks")
}
fn digest_key(id: &str) -> String {
    format!("dagm:{{{id}}}:digest")
}

/// Metrics in a Redis server, connected on first use.
pub struct RedisMetrics {
    url: String,
    ttl: Duration,
    connection: OnceCell<ConnectionManager>,
}

impl RedisMetrics {
    /// Metrics in the Redis at `url`, kept for `ttl`.
    pub fn new(url: impl Into<String>, ttl: Duration) -> Self {
        RedisMetrics {
            url: url.into(),
            ttl,
            connection: OnceCell::new(),
        }
    }

    async fn connection(&self) -> Result<ConnectionManager, MetricsError> {
        let redis_error = |e: redis::RedisError| self.error("connecting", e);
        let connection = self
            .connection
            .get_or_try_init(|| async {
                let client = redis::Client::open(self.url.as_str()).map_err(redis_error)?;
                client.get_connection_manager().await.map_err(redis_error)
            })
            .await?;
        Ok(connection.clone())
    }

    fn ttl_ms(&self) -> i64 {
        self.ttl.as_millis().min(i64::MAX as u128) as i64
    }

    async fn query<T: redis::FromRedisValue>(
        &self,
        action: &str,
        pipe: &redis::Pipeline,
    ) -> Result<T, MetricsError> {
        let mut connection = self.connection().await?;
        pipe.query_async(&mut connection)
            .await
            .map_err(|e| self.error(action, e))
    }

    fn error(&self, action: &str, e: redis::RedisError) -> MetricsError {
        MetricsError::Store(DagError::Redis {
            addr: addr_of(&self.url),
            message: format!("metrics: {action}: {e}"),
        })
    }
}

/// `host:port` of a Redis URL, without the password.
fn addr_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Records are plain data: encoding them cannot fail.
    rmp_serde::to_vec_named(value).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, MetricsError> {
    rmp_serde::from_slice(bytes).map_err(|e| MetricsError::Decode {
        key: key.to_owned(),
        message: e.to_string(),
    })
}

#[async_trait]
impl MetricsBackend for RedisMetrics {
    async fn put(&self, batch: Batch) -> Result<(), MetricsError> {
        let ttl = self.ttl_ms();
        let mut pipe = redis::pipe();
        let mut by_run: std::collections::BTreeMap<&str, Vec<Vec<u8>>> = Default::default();
        for record in batch.task_records() {
            by_run
                .entry(root_of(&record.dag))
                .or_default()
                .push(encode(record));
        }
        for (run, records) in &by_run {
            let key = tasks_key(run);
            pipe.rpush(&key, records).ignore();
            pipe.pexpire(&key, ttl).ignore();
        }
        for (run, digest) in &batch.digests {
            let key = digest_key(run);
            pipe.hset(&key, &batch.recorder, encode(digest)).ignore();
            pipe.pexpire(&key, ttl).ignore();
        }
        if !batch.workers.is_empty() {
            let fields: Vec<(&str, Vec<u8>)> = batch
                .workers
                .iter()
                .map(|w| (w.worker.as_str(), encode(w)))
                .collect();
            // `HSET` with several pairs (what `hset_multiple` would send as `HMSET`, which
            // Redis deprecated and `REDIS_ACL` does not grant).
            pipe.cmd("HSET").arg(WORKERS).arg(&fields).ignore();
            pipe.pexpire(WORKERS, ttl).ignore();
        }
        if by_run.is_empty() && batch.digests.is_empty() && batch.workers.is_empty() {
            return Ok(());
        }
        self.query("uploading metrics", &pipe).await
    }

    async fn put_run(&self, run: &RunRecord) -> Result<(), MetricsError> {
        let ttl = self.ttl_ms();
        let key = run_key(&run.id);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&key)
            .arg(encode(run))
            .arg("PX")
            .arg(ttl)
            .ignore();
        pipe.zadd(RUNS, &run.id, run.submitted_us).ignore();
        pipe.pexpire(RUNS, ttl).ignore();
        self.query("recording a run's metrics", &pipe).await
    }

    async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, MetricsError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        pipe.zrevrange(RUNS, 0, limit as isize - 1);
        let (ids,): (Vec<String>,) = self.query("listing runs", &pipe).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| run_key(id)).collect();
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.get(key);
        }
        let values: Vec<Option<Vec<u8>>> = self.query("reading runs", &pipe).await?;
        let mut runs = Vec::new();
        for (key, value) in keys.iter().zip(values) {
            // A run whose record expired is skipped (gc removes it from the index).
            if let Some(bytes) = value {
                runs.push(decode(key, &bytes)?);
            }
        }
        Ok(runs)
    }

    async fn run(&self, id: &str) -> Result<Option<RunMetrics>, MetricsError> {
        let (run_key, tasks_key, digest_key) = (run_key(id), tasks_key(id), digest_key(id));
        let mut pipe = redis::pipe();
        pipe.get(&run_key).llen(&tasks_key).hgetall(&digest_key);
        let (run, count, digests): (
            Option<Vec<u8>>,
            usize,
            std::collections::HashMap<String, Vec<u8>>,
        ) = self.query("reading a run's metrics", &pipe).await?;
        let Some(run) = run else {
            return Ok(None);
        };
        let run: RunRecord = decode(&run_key, &run)?;
        // The records in slices: one command for a run of 100,000 tasks would pass the
        // connection's response timeout, and hold the server that long.
        let mut records = Vec::with_capacity(count);
        for start in (0..count).step_by(RECORDS_PER_READ) {
            let end = (start + RECORDS_PER_READ).min(count) - 1;
            let mut pipe = redis::pipe();
            pipe.lrange(&tasks_key, start as isize, end as isize);
            let (slice,): (Vec<Vec<u8>>,) =
                self.query("reading a run's task records", &pipe).await?;
            for bytes in &slice {
                records.push(decode::<TaskRecord>(&tasks_key, bytes)?);
            }
        }
        records.sort_by_key(|t| (t.start_us, t.end_us));
        let mut digest = Digest::default();
        for bytes in digests.values() {
            digest.merge(&decode::<Digest>(&digest_key, bytes)?);
        }
        let names: std::collections::BTreeSet<&str> = records.iter().map(|t| &*t.worker).collect();
        let mut workers = Vec::new();
        if !names.is_empty() {
            let mut pipe = redis::pipe();
            pipe.cmd("HMGET")
                .arg(WORKERS)
                .arg(names.iter().collect::<Vec<_>>());
            let (values,): (Vec<Option<Vec<u8>>>,) =
                self.query("reading workers' metrics", &pipe).await?;
            for bytes in values.into_iter().flatten() {
                workers.push(decode::<WorkerRecord>(WORKERS, &bytes)?);
            }
        }
        Ok(Some(RunMetrics {
            run,
            tasks: records,
            digest,
            workers,
        }))
    }

    async fn digests(&self, ids: &[String]) -> Result<Vec<Digest>, MetricsError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(digest_key(id));
        }
        let hashes: Vec<std::collections::HashMap<String, Vec<u8>>> =
            self.query("reading runs' digests", &pipe).await?;
        let mut digests = Vec::with_capacity(hashes.len());
        for (id, recorders) in ids.iter().zip(hashes) {
            let mut digest = Digest::default();
            for bytes in recorders.values() {
                digest.merge(&decode::<Digest>(&digest_key(id), bytes)?);
            }
            digests.push(digest);
        }
        Ok(digests)
    }

    async fn gc(&self) -> Result<usize, MetricsError> {
        let cutoff = now_us().saturating_sub(self.ttl.as_micros().min(u64::MAX as u128) as u64);
        let mut pipe = redis::pipe();
        pipe.cmd("ZRANGEBYSCORE").arg(RUNS).arg("-inf").arg(cutoff);
        let (old,): (Vec<String>,) = self.query("finding old runs", &pipe).await?;
        let mut removed = 0;
        // Batches keep each command small, whatever the number of old runs.
        for ids in old.chunks(256) {
            let mut pipe = redis::pipe();
            pipe.zrem(RUNS, ids).ignore();
            for id in ids {
                pipe.cmd("UNLINK")
                    .arg(run_key(id))
                    .arg(tasks_key(id))
                    .arg(digest_key(id))
                    .ignore();
            }
            self.query::<()>("removing old runs", &pipe).await?;
            removed += ids.len();
        }
        Ok(removed)
    }
}
