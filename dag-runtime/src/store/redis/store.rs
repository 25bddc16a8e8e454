//! [`RedisStore`]: the [`Store`] operations on Redis.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;

use super::cleanup::{delete_node_keys, KEYS_PER_COMMAND};
use super::config::RedisConfig;
use super::connection::{RedisConnection, Retry, ScanState};
use super::keys::{dag_of_key, DagKeys, DAGS};
use super::outcome::{self, ErrorJson};
use super::output_cache::OutputCache;
use super::plan_cache::PlanCache;
use super::plan_chunks;
use super::scripts::{self, DoneEvent, EVENTS_KEPT, RUNNING};
use crate::error::DagError;
use crate::plan::Plan;
use crate::store::{
    missing_output, ChildRef, DagId, EventCursor, Keep, Marked, Outcome, Store, TaskErrorRecord,
};

/// Events read per progress poll at most.
const PROGRESS_BATCH: usize = 10_000;

/// Redis refuses a single value larger than this (`proto-max-bulk-len`, 512 MB by default).
pub const MAX_VALUE_BYTES: usize = 512 * 1024 * 1024;

/// The Redis store: a DAG's plan, outputs, finished-parent sets, errors, events and outcome live
/// in Redis, so workers on many machines can share one DAG.
///
/// Every key of one DAG shares the hash tag `{<id>}`:
///
/// | key | holds |
/// | --- | --- |
/// | `dag:{id}:plan` | the plan, MessagePack (stored once; decoded plans are cached per process) |
/// | `dag:{id}:status` | `running`, `succeeded` or `failed` (a cancelled DAG is deleted) |
/// | `dag:{id}:out:<n>` | output of node n (MessagePack) |
/// | `dag:{id}:done` | hash: which parents of each node finished, and the claim that made it ready (see `complete.lua`) |
/// | `dag:{id}:errors` | hash: node -> JSON error |
/// | `dag:{id}:events` | stream of task events, each naming the worker process (capped at about 1,000 entries) |
/// | `dag:{id}:result` | list the client blocks on (`BLPOP`) for the outcome |
/// | `dags` | sorted set of DAG ids by submission time (ms) |
///
/// Every `dag:{id}:...` key expires [`RedisConfig::key_ttl`] after it was created (set where it
/// is created, inside the same command or script: no extra round trip).
///
/// Each worker-step operation is one round trip: [`fetch_outputs`](Store::fetch_outputs) is one
/// pipeline of `MGET`s (which also reads the status), [`complete`](Store::complete),
/// [`fail`](Store::fail) and [`finish`](Store::finish) are one Lua script each (`EVALSHA`,
/// loaded again on `NOSCRIPT`). No command does work proportional to a DAG's size: inputs are
/// read and a finished DAG's keys deleted in batches of at most 1,000 keys per command.
/// [`wait`](Store::wait) blocks on a connection of its own, so that a blocking `BLPOP` never
/// holds up the shared multiplexed connection the workers use.
///
/// Usually selected with [`RuntimeBuilder::redis`](crate::RuntimeBuilder::redis):
///
/// ```no_run
/// use dag::prelude::*;
///
/// #[task]
/// fn add(a: i64, b: i64) -> i64 { a + b }
///
/// let runtime = Runtime::builder().redis("redis://:secret@127.0.0.1:6379/0").build()?;
/// assert_eq!(add(1, 2).compute_on(&runtime)?, 3);
/// # Ok::<(), DagError>(())
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    conn: RedisConnection,
    plans: Mutex<PlanCache>,
    /// Large outputs this process stored or fetched lately.
    outputs: OutputCache,
    /// This process (`host:pid`), named in the `done` events.
    process: String,
}

impl RedisStore {
    /// Connects to the server at `url` with [`RedisConfig::default`].
    ///
    /// `url` is `redis://[[user]:password@]host[:port][/db]`, or `rediss://...` (TLS) when the
    /// `tls` feature of `dag` is enabled. Fails promptly with [`DagError::Redis`] naming the
    /// address if the server is unreachable or refuses the credentials.
    ///
    /// ```no_run
    /// use dag::prelude::*;
    /// use dag::store::RedisStore;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
    /// let runtime = Runtime::builder().store(store).build()?;
    /// # Ok::<(), DagError>(())
    /// # }).unwrap();
    /// ```
    pub async fn connect(url: &str) -> Result<Self, DagError> {
        Self::connect_with(url, RedisConfig::default()).await
    }

    /// Like [`connect`](Self::connect), with other timeouts.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use dag::store::{RedisConfig, RedisStore};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let config = RedisConfig { connect_timeout: Duration::from_millis(500), ..Default::default() };
    /// let store = RedisStore::connect_with("redis://127.0.0.1:6379", config).await?;
    /// # Ok::<(), dag::DagError>(())
    /// # }).unwrap();
    /// ```
    pub async fn connect_with(url: &str, config: RedisConfig) -> Result<Self, DagError> {
        let outputs = OutputCache::new(config.output_cache_bytes);
        Self::on(RedisConnection::open(url, config).await?, outputs).await
    }

    /// A store on `conn` (one server or a cluster), once its scripts are loaded.
    async fn on(conn: RedisConnection, outputs: OutputCache) -> Result<Self, DagError> {
        scripts::load_all(&conn).await?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                conn,
                outputs,
                plans: Mutex::new(PlanCache::default()),
                process: crate::process_name(),
            }),
        })
    }

    /// Connects to the Redis Cluster (or Valkey cluster) whose seed nodes are `urls` (any
    /// iterator of `redis://host:port` URL strings: a few of its nodes; the others are learned
    /// from them), with `config`.
    ///
    /// Every key of one DAG carries the DAG's hash tag, so each DAG's scripts run on one shard
    /// while different DAGs spread over the shards. Fails promptly with [`DagError::Redis`]
    /// naming the seeds if none answers, and with [`DagError::Runtime`] if `urls` is empty.
    ///
    /// ```no_run
    /// use dag::store::{RedisConfig, RedisStore};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let seeds = ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"];
    /// let store = RedisStore::connect_cluster(seeds, RedisConfig::default()).await?;
    /// assert!(store.is_cluster());
    /// # Ok::<(), dag::DagError>(())
    /// # }).unwrap();
    /// ```
    pub async fn connect_cluster<I, S>(urls: I, config: RedisConfig) -> Result<Self, DagError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let urls: Vec<String> = urls.into_iter().map(Into::into).collect();
        let outputs = OutputCache::new(config.output_cache_bytes);
        Self::on(RedisConnection::open_cluster(&urls, config).await?, outputs).await
    }

    /// Whether this store is on a Redis Cluster ([`connect_cluster`](Self::connect_cluster)).
    pub fn is_cluster(&self) -> bool {
        self.inner.conn.is_cluster()
    }

    /// The server's address, `host:port` (for a cluster: `Redis Cluster ` and its seeds).
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = dag::store::RedisStore::connect("redis://127.0.0.1:6379").await?;
    /// assert_eq!(store.addr(), "127.0.0.1:6379");
    /// # Ok::<(), dag::DagError>(())
    /// # }).unwrap();
    /// ```
    pub fn addr(&self) -> &str {
        self.inner.conn.addr()
    }

    /// The connections this store (and an invocation stream on it) uses.
    pub(crate) fn connection(&self) -> &RedisConnection {
        &self.inner.conn
    }

    fn config(&self) -> &RedisConfig {
        self.inner.conn.config()
    }

    fn plans(&self) -> MutexGuard<'_, PlanCache> {
        self.inner.plans.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The plan of `dag` as far as this process can tell without asking twice: the cached one,
    /// else the stored one if it decodes. `None` if neither (the DAG is gone, or its plan is
    /// not readable: what cannot be named is left to the keys' time to live and `gc`).
    async fn known_plan(&self, dag: &DagId) -> Option<Arc<Plan>> {
        if let Some(plan) = self.plans().get(dag) {
            return Some(plan);
        }
        let keys = DagKeys::new(dag);
        let mut pipe = redis::pipe();
        plan_chunks::read_first(&mut pipe, &keys);
        let conn = &self.inner.conn;
        let replies: Vec<redis::Value> = conn
            .send(&pipe, Retry::Once, "could not read the plan")
            .await
            .ok()?;
        let [count, first]: [redis::Value; 2] = replies.try_into().ok()?;
        let bytes = plan_chunks::read_rest(conn, &keys, count, first)
            .await
            .ok()??;
        decode_plan(dag, &bytes).ok().map(Arc::new)
    }

    /// Deletes what is left of an ended DAG: the per-node keys of `plan` (if known), then
    /// `extra` keys, in bounded batches.
    async fn remove_ended(
        &self,
        dag: &DagId,
        keys: &DagKeys,
        plan: Option<Arc<Plan>>,
        extra: Option<redis::Pipeline>,
    ) -> Result<(), DagError> {
        if let Some(plan) = plan {
            delete_node_keys(&self.inner.conn, keys, plan.nodes.len()).await?;
        }
        if let Some(pipe) = extra {
            self.inner
                .conn
                .send::<()>(&pipe, Retry::Once, "could not clean up a finished DAG")
                .await?;
        }
        self.plans().remove(dag);
        Ok(())
    }

    /// Removes `dag` from `dags` (on a cluster, where no script or transaction of the DAG's
    /// slot can name it).
    async fn unlist(&self, dag: &DagId) -> Result<(), DagError> {
        self.inner
            .conn
            .send::<()>(
                redis::cmd("ZREM").arg(DAGS).arg(dag.as_str()),
                Retry::Once,
                "could not remove the DAG from `dags`",
            )
            .await
    }

    fn check_size(&self, what: impl FnOnce() -> String, size: usize) -> Result<(), DagError> {
        let limit = self.config().max_value_bytes;
        if size > limit {
            return Err(DagError::ValueTooLarge {
                what: what(),
                size,
                limit,
            });
        }
        Ok(())
    }

    /// `node`'s task name, if the plan is cached here (it is whenever this process submitted,
    /// expanded or loaded the DAG): what events and errors show.
    fn task_name(&self, dag: &DagId, node: u32) -> Option<String> {
        let plan = self.plans().get(dag)?;
        ((node as usize) < plan.nodes.len()).then(|| plan.task_name(node))
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn put_plan(&self, dag: &DagId, plan: &Arc<Plan>) -> Result<(), DagError> {
        let bytes = rmp_serde::to_vec(&**plan).map_err(|e| DagError::Codec {
            action: "encode",
            what: format!("the plan of DAG {dag}"),
            message: e.to_string(),
        })?;
        self.check_size(|| format!("the plan of DAG {dag}"), bytes.len())?;
        let keys = DagKeys::new(dag);
        self.plans().insert(dag, Arc::clone(plan));
        let submitted = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let ttl = self.config().ttl_ms();
        let mut pipe = redis::pipe();
        pipe.atomic();
        plan_chunks::write(&mut pipe, &keys, &bytes, ttl);
        pipe.pset_ex(keys.status(), RUNNING, ttl)
            .ignore()
            // Created here with its expiry, so that completions, which add to it, never create
            // a key (nor set an expiry) per child.
            .hset(keys.done(), "nodes", plan.nodes.len())
            .ignore()
            .pexpire(keys.done(), ttl as i64)
            .ignore();
        // `dags` is not tagged with the DAG: on a cluster it lives in another slot, so it is
        // updated by a command of its own (sent at the same time), never in this transaction.
        let cluster = self.inner.conn.is_cluster();
        if !cluster {
            pipe.zadd(DAGS, dag.as_str(), submitted).ignore();
        }
        if self.config().events {
            // Created here with its expiry, so that the completions appending to it need not
            // set one (one command less per task).
            pipe.cmd("XADD")
                .arg(keys.events())
                .arg("MAXLEN")
                .arg("~")
                .arg(EVENTS_KEPT)
                .arg("*")
                .arg("event")
                .arg("submitted")
                .arg("nodes")
                .arg(plan.nodes.len())
                .ignore()
                .pexpire(keys.events(), ttl as i64)
                .ignore();
        }
        let conn = &self.inner.conn;
        let store = conn.send::<()>(&pipe, Retry::Once, "could not store the plan");
        let stored = if cluster {
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(DAGS).arg(submitted).arg(dag.as_str());
            let list = conn.send::<()>(&zadd, Retry::Once, "could not list the DAG in `dags`");
            let (stored, listed) = futures::join!(store, list);
            stored.and(listed)
        } else {
            store.await
        };
        if stored.is_err() {
            self.plans().remove(dag);
        }
        stored
    }

    async fn get_plan(&self, dag: &DagId) -> Result<Option<Arc<Plan>>, DagError> {
        let keys = DagKeys::new(dag);
        let cached = self.plans().get(dag);
        // One round trip for a plan of up to 4 MiB: the status, and the plan only if it is not
        // cached.
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(keys.status());
        if cached.is_none() {
            plan_chunks::read_first(&mut pipe, &keys);
        }
        let conn = &self.inner.conn;
        let mut replies = conn
            .send::<Vec<redis::Value>>(&pipe, Retry::Once, "could not read the plan")
            .await?
            .into_iter();
        let status: Option<Bytes> = replies
            .next()
            .map(redis::from_redis_value)
            .transpose()
            .map_err(|e| conn.error("could not read the status", e.into()))?
            .flatten();
        if status.as_deref() != Some(RUNNING.as_bytes()) {
            self.plans().remove(dag);
            return Ok(None);
        }
        if let Some(plan) = cached {
            return Ok(Some(plan));
        }
        let (Some(count), Some(first)) = (replies.next(), replies.next()) else {
            return Err(DagError::Store("a short reply to the plan's read".into()));
        };
        let Some(bytes) = plan_chunks::read_rest(conn, &keys, count, first).await? else {
            return Ok(None);
        };
        let plan = Arc::new(decode_plan(dag, &bytes)?);
        self.plans().insert(dag, Arc::clone(&plan));
        Ok(Some(plan))
    }

    async fn fetch_outputs(
        &self,
        dag: &DagId,
        nodes: &[u32],
    ) -> Result<Option<Vec<Bytes>>, DagError> {
        let keys = DagKeys::new(dag);
        // Large outputs this process has already: only the others are read.
        let cached = self.inner.outputs.get(dag, nodes);
        let wanted: Vec<u32> = match &cached {
            Some(cached) => nodes
                .iter()
                .zip(cached)
                .filter(|(_, c)| c.is_none())
                .map(|(&n, _)| n)
                .collect(),
            None => nodes.to_vec(),
        };
        // One round trip, but no command reads more than a batch of keys: a fan-in of a
        // million inputs must not stall the server for everyone else. The status travels in
        // the first `MGET`, so a small fetch stays one command.
        let mut pipe = redis::pipe();
        let mut batches = wanted.chunks(KEYS_PER_COMMAND);
        let first = pipe.cmd("MGET").arg(keys.status());
        for &node in batches.next().unwrap_or_default() {
            first.arg(keys.out(node));
        }
        for batch in batches {
            let cmd = pipe.cmd("MGET");
            for &node in batch {
                cmd.arg(keys.out(node));
            }
        }
        let conn = &self.inner.conn;
        let replies: Vec<Vec<Option<Bytes>>> = conn
            .send(&pipe, Retry::Once, "could not fetch inputs")
            .await?;
        let mut values = replies.into_iter().flatten();
        if values.next().flatten().as_deref() != Some(RUNNING.as_bytes()) {
            return Ok(None);
        }
        let fetched: Vec<Option<Bytes>> = values.collect();
        if fetched.len() != wanted.len() {
            return Err(DagError::Store(format!(
                "asked Redis for {} outputs of DAG {dag}, got {}",
                wanted.len(),
                fetched.len()
            )));
        }
        for (&node, value) in wanted.iter().zip(&fetched) {
            if let Some(value) = value {
                self.inner.outputs.insert(dag, node, value);
            }
        }
        let mut fetched = fetched.into_iter();
        let cached = cached.unwrap_or_else(|| vec![None; nodes.len()]);
        nodes
            .iter()
            .zip(cached)
            .map(|(&node, cached)| {
                cached
                    .or_else(|| fetched.next().flatten())
                    .ok_or_else(|| missing_output(dag, node))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    async fn complete_with(
        &self,
        dag: &DagId,
        node: u32,
        output: Bytes,
        children: &[ChildRef],
        claim: &str,
        keep: Keep,
    ) -> Result<Marked, DagError> {
        let task = self.task_name(dag, node);
        self.check_size(
            || match &task {
                Some(task) => format!("the output of node {node} (task `{task}`)"),
                None => format!("the output of node {node}"),
            },
            output.len(),
        )?;
        let event = self.config().events.then(|| DoneEvent {
            worker: &self.inner.process,
            task: task.as_deref().unwrap_or(""),
        });
        let keys = DagKeys::new(dag);
        let marked = scripts::complete(
            &self.inner.conn,
            &keys,
            node,
            &output,
            children,
            claim,
            keep,
            event,
        )
        .await?;
        // Stored (not kept, not held): this process's later tasks can read it from memory.
        if !keep.output && matches!(marked, Marked::Ready { .. }) {
            self.inner.outputs.insert(dag, node, &output);
        }
        Ok(marked)
    }

    async fn fail(&self, dag: &DagId, error: TaskErrorRecord) -> Result<(), DagError> {
        // Nothing here needs the plan: a DAG whose plan cannot be read still fails, and its
        // client wakes up.
        let keys = DagKeys::new(dag);
        let node = error.node;
        let json = ErrorJson::encode(error)?;
        let outcome = outcome::failure(dag, &json);
        let Err(failed) = scripts::fail(&self.inner.conn, &keys, node, &json, &outcome).await
        else {
            return Ok(());
        };
        // The script could not run (a user without `EVALSHA`, a server refusing scripts):
        // wake the client with plain commands, so that nobody waits for an outcome that
        // cannot be recorded. Not atomic, which a failure that already happened can afford.
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(keys.status())
            .arg(scripts::FAILED)
            .arg("XX")
            .arg("KEEPTTL")
            .ignore()
            .rpush(keys.result(), &outcome)
            .ignore()
            .pexpire(keys.result(), self.config().ttl_ms() as i64)
            .ignore();
        match self
            .inner
            .conn
            .send::<()>(&pipe, Retry::Never, "could not record a task failure")
            .await
        {
            Ok(()) => Ok(()),
            Err(_) => Err(failed),
        }
    }

    async fn finish(&self, dag: &DagId, result: Bytes) -> Result<(), DagError> {
        // Checked before the tagged copy is made: a refused result costs no copy.
        self.check_size(
            || format!("the result of DAG {dag}"),
            outcome::success_len(dag, &result),
        )?;
        let value = outcome::success(dag, &result);
        scripts::finish(&self.inner.conn, &DagKeys::new(dag), &value).await?;
        Ok(())
    }

    async fn wait(&self, dag: &DagId) -> Result<Outcome, DagError> {
        let outcome = self.wait_outcome(dag).await?;
        if self.config().keep_finished {
            // Kept for inspection: the keys expire, and `gc` removes the DAG from `dags`.
            self.plans().remove(dag);
            return Ok(outcome);
        }
        let keys = DagKeys::new(dag);
        let mut rest = redis::pipe();
        rest.atomic().del(&keys.outcome_keys()).ignore();
        let cluster = self.inner.conn.is_cluster();
        if !cluster {
            rest.zrem(DAGS, dag.as_str()).ignore();
        }
        let plan = self.known_plan(dag).await;
        self.remove_ended(dag, &keys, plan, Some(rest)).await?;
        if cluster {
            // `dags` is in another slot than the DAG's keys: a command of its own.
            self.unlist(dag).await?;
        }
        Ok(outcome)
    }

    async fn cancel(&self, dag: &DagId) -> Result<bool, DagError> {
        let keys = DagKeys::new(dag);
        // Read the node count before the script deletes the plan.
        let plan = self.known_plan(dag).await;
        let cancelled = scripts::cancel(&self.inner.conn, &keys, dag).await?;
        self.remove_ended(dag, &keys, plan, None).await?;
        if self.inner.conn.is_cluster() {
            // The script could not name `dags` (another slot): removed from it here.
            self.unlist(dag).await?;
        }
        Ok(cancelled)
    }

    async fn progress(&self, dag: &DagId, cursor: &mut EventCursor) -> Result<(), DagError> {
        // Reads the events added since the last call. The stream keeps about EVENTS_KEPT
        // entries: a poller that falls further behind than that undercounts until the end.
        let start = match &cursor.last {
            Some(last) => format!("({last}"),
            None => "-".to_owned(),
        };
        // Each entry: its id and its fields and values, flat.
        let events: Vec<(String, Vec<String>)> = self
            .inner
            .conn
            .send(
                redis::cmd("XRANGE")
                    .arg(DagKeys::new(dag).events())
                    .arg(start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(PROGRESS_BATCH),
                Retry::Once,
                "could not read the DAG's events",
            )
            .await?;
        for (_, fields) in &events {
            let kind = fields
                .chunks(2)
                .find(|pair| pair[0] == "event")
                .and_then(|pair| pair.get(1));
            if matches!(kind.map(String::as_str), Some("done" | "succeeded")) {
                cursor.completed += 1;
            }
        }
        if let Some((last, _)) = events.last() {
            cursor.last = Some(last.clone());
        }
        Ok(())
    }

    async fn gc(&self) -> Result<usize, DagError> {
        let conn = &self.inner.conn;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let cutoff = now.saturating_sub(self.config().ttl_ms());
        let old: Vec<String> = conn
            .send(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(DAGS)
                    .arg("-inf")
                    .arg(cutoff),
                Retry::Once,
                "could not list the DAGs",
            )
            .await?;
        let mut stale = HashSet::new();
        for batch in old.chunks(KEYS_PER_COMMAND) {
            // A DAG still running past the TTL was submitted by a client with a longer one.
            let mut cmd = redis::cmd("MGET");
            for id in batch {
                cmd.arg(DagKeys::new(&DagId::from(id.as_str())).status());
            }
            let statuses: Vec<Option<Bytes>> = conn
                .send(&cmd, Retry::Once, "could not read the status of old DAGs")
                .await?;
            for (id, status) in batch.iter().zip(statuses) {
                if status.as_deref() != Some(RUNNING.as_bytes()) {
                    stale.insert(id.as_str());
                }
            }
        }
        if stale.is_empty() {
            return Ok(0);
        }
        // One pass over the DAG keys (rather than one SCAN per DAG): `dag:{<id>}:...`, on
        // every master of a cluster.
        let mut scan = ScanState::default();
        while let Some(batch) = conn
            .scan_step(
                &mut scan,
                "dag:{*",
                KEYS_PER_COMMAND,
                "could not scan for keys of old DAGs",
            )
            .await?
        {
            let doomed: Vec<&String> = batch
                .iter()
                .filter(|key| dag_of_key(key).is_some_and(|id| stale.contains(id)))
                .collect();
            if !doomed.is_empty() {
                conn.send::<()>(
                    redis::cmd("UNLINK").arg(&doomed),
                    Retry::Once,
                    "could not delete keys of old DAGs",
                )
                .await?;
            }
        }
        let stale: Vec<&str> = stale.into_iter().collect();
        for batch in stale.chunks(KEYS_PER_COMMAND) {
            conn.send::<()>(
                redis::cmd("ZREM").arg(DAGS).arg(batch),
                Retry::Once,
                "could not remove old DAGs from `dags`",
            )
            .await?;
        }
        let mut plans = self.plans();
        for id in &stale {
            plans.remove(&DagId::from(*id));
        }
        Ok(stale.len())
    }
}

fn decode_plan(dag: &DagId, bytes: &[u8]) -> Result<Plan, DagError> {
    Plan::decode(bytes).map_err(|message| DagError::Codec {
        action: "decode",
        what: format!("the plan of DAG {dag}"),
        message,
    })
}
