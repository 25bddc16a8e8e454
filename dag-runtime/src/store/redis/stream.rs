//! [`InvocationStream`]: invocations travelling between processes through a Redis Stream.
//!
//! A client `XADD`s the roots of a DAG; worker processes read entries with `XREADGROUP` in one
//! consumer group (each entry goes to exactly one worker), run the worker step, `XADD` the ready
//! children they do not keep, and then acknowledge the entry (`XACK` and `XDEL` in one round
//! trip, so the stream only holds work that is queued or running).
//!
//! An entry is `dag <id> node <n>`: the DAG's keys (plan, outputs, counters) say everything else,
//! so DAGs of many clients share one stream without mixing anything up.
//!
//! | key | holds |
//! | --- | --- |
//! | `<stream>` (default [`DEFAULT_STREAM`]) | queued and running invocations, group [`GROUP`] |
//! | `<stream>:cold_start_us` | list of worker processes' cold-start times in µs (newest first) |
//!
//! # On a Redis Cluster
//!
//! Today the stream is one key, so on a cluster it lives on one master: every `XADD`,
//! `XREADGROUP`, `XACK` and lease renewal of every worker goes to that shard, while the DAGs'
//! own keys spread over all of them. It works (the stream's commands each name one key, and
//! blocking reads use cluster connections of their own, see `connection.rs`), but that shard
//! is the limit of the hand-offs between processes. The design for spreading it (not built
//! yet):
//!
//! - **Shards of the stream.** `K` streams `<stream>:{s<k>}` (`k` in `0..K`, `K` a small
//!   multiple of the masters, fixed per stream name, say 16), each with its own group
//!   [`GROUP`]. Hash tags pick slots, not masters, so `K` > masters spreads them over the
//!   masters with high probability, and a resharding moves a shard like any key.
//! - **Where an invocation goes.** A root or a handed-on child goes to shard
//!   `hash(dag id, node) mod K`: the invocations of one large DAG spread too (by the DAG id
//!   alone, one large DAG would be a hot key again). Nothing needs them in order.
//! - **Who reads what.** Every worker reads every shard: a `XREADGROUP` names one slot on a
//!   cluster (several streams of several slots in one command are a `CROSSSLOT` error), so
//!   each worker thread has a home shard (`thread index + process offset mod K`) on which it
//!   blocks, and before blocking it sweeps the other shards once without `BLOCK` in turn
//!   (one round trip per shard, pipelined per master through the cluster connection), so that
//!   no shard's entries wait for a reader that happens to block elsewhere; with more threads in
//!   a pool than shards, every shard has a blocking reader.
//! - **Leases and claims.** Leases stay per entry: renewal (`XCLAIM ... JUSTID`) and
//!   acknowledgement go to the entry's shard, grouped per shard in one pipeline each, and each
//!   thread's `XAUTOCLAIM` sweep visits the shards in rotation, so a dead worker's entries on
//!   any shard are taken over within about `K` sweeps (the sweep period is shortened by `K`
//!   to keep the bound of a lease and a half). An entry id is unique within one stream only,
//!   so the *claim* recorded in a DAG's `done` hash (see `complete.lua`) becomes
//!   `<k>/<entry id>`: a re-run of the same entry, on whichever worker, presents the same
//!   claim and gets its children back; `MAX_DELIVERIES` counts per entry as today.
//! - **One server** keeps `K = 1` and the key `<stream>` itself, so nothing changes there.

use std::time::Duration;

use redis::{RedisError, Value};

use super::connection::{Dedicated, Retry};
use super::store::RedisStore;
use crate::error::DagError;
use crate::store::DagId;

/// The stream a worker pool reads unless told otherwise.
pub const DEFAULT_STREAM: &str = "dag:invocations";

/// The consumer group of the workers reading a stream.
pub const GROUP: &str = "dag-workers";

/// How many cold-start times `<stream>:cold_start_us` keeps.
const COLD_STARTS_KEPT: isize = 100_000;

/// How many of a consumer's pending entries `XPENDING` lists when looking up delivery counts
/// (a worker thread has at most a few: the one it runs and the ones awaiting their `XACK`).
const PENDING_SCAN: usize = 64;

/// One invocation read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// The stream entry id, to acknowledge it.
    pub id: String,
    /// The DAG.
    pub dag: DagId,
    /// The node to run.
    pub node: u32,
}

/// A Redis Stream of invocations, shared by a client and the worker processes that serve it.
///
/// ```no_run
/// use dag::store::{DagId, InvocationStream, RedisStore, DEFAULT_STREAM};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// let stream = InvocationStream::new(store, DEFAULT_STREAM);
/// stream.create_group().await?;
/// stream.submit(&[(DagId::new(), 0)]).await?;
/// # Ok::<(), dag::DagError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct InvocationStream {
    store: RedisStore,
    key: String,
}

impl InvocationStream {
    /// The stream `key` on `store`'s server.
    pub fn new(store: RedisStore, key: impl Into<String>) -> Self {
        InvocationStream {
            store,
            key: key.into(),
        }
    }

    /// The stream's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The store whose connection this stream uses.
    pub fn store(&self) -> &RedisStore {
        &self.store
    }

    fn metrics_key(&self) -> String {
        format!("{}:cold_start_us", self.key)
    }

    /// Creates the stream and its consumer group if they do not exist yet.
    ///
    /// The group starts at id 0, so entries added before any worker started are served too.
    pub async fn create_group(&self) -> Result<(), DagError> {
        let mut create = redis::cmd("XGROUP");
        create
            .arg("CREATE")
            .arg(&self.key)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM");
        match self
            .store
            .connection()
            .dedicated()
            .await?
            .send::<()>(&create)
            .await
        {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other.map_err(|e| {
                self.store
                    .connection()
                    .error("could not create the stream", e)
            }),
        }
    }

    /// Queues invocations, in one round trip (a pipeline of `XADD`s).
    pub async fn submit(&self, invocations: &[(DagId, u32)]) -> Result<(), DagError> {
        if invocations.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (dag, node) in invocations {
            pipe.cmd("XADD")
                .arg(&self.key)
                .arg("*")
                .arg("dag")
                .arg(dag.as_str())
                .arg("node")
                .arg(*node)
                .ignore();
        }
        // Never sent twice: a duplicate entry would run its invocation twice.
        self.store
            .connection()
            .send(&pipe, Retry::Never, "could not queue invocations")
            .await
    }

    /// A reader for consumer `consumer` of the group, on a connection of its own (its blocking
    /// reads never hold up the store's shared connection).
    pub async fn reader(&self, consumer: impl Into<String>) -> Result<StreamReader, DagError> {
        Ok(StreamReader {
            conn: self.store.connection().dedicated().await?,
            stream: self.clone(),
            consumer: consumer.into(),
        })
    }

    /// A pipeline that starts by acknowledging and deleting `ids` (empty if there are none).
    fn ack_pipeline(&self, ids: &[String]) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        if !ids.is_empty() {
            pipe.cmd("XACK")
                .arg(&self.key)
                .arg(GROUP)
                .arg(ids)
                .ignore()
                .cmd("XDEL")
                .arg(&self.key)
                .arg(ids)
                .ignore();
        }
        pipe
    }

    /// Parses entries as invocations; entries that are not (deleted meanwhile, or written by
    /// something else) are acknowledged and skipped.
    async fn invocations(
        &self,
        entries: Vec<(String, Vec<Value>)>,
    ) -> Result<Vec<StreamEntry>, DagError> {
        let mut invocations = Vec::new();
        let mut malformed = Vec::new();
        for (id, fields) in entries {
            match parse_entry(&fields) {
                Some((dag, node)) => invocations.push(StreamEntry { id, dag, node }),
                None => malformed.push(id),
            }
        }
        if !malformed.is_empty() {
            eprintln!(
                "dag: skipping {} entries of stream `{}` that are not invocations: {malformed:?}",
                malformed.len(),
                self.key
            );
            self.ack(&malformed).await?;
        }
        Ok(invocations)
    }

    /// Resets the idle time of `ids`, pending with `consumer`, so that no other worker claims
    /// them with [`StreamReader::ack_and_take_over_stale`] while they run: the lease's heartbeat.
    /// `XCLAIM ... JUSTID` to the same consumer; one round trip for every consumer given.
    pub async fn keep_alive(&self, running: &[(String, String)]) -> Result<(), DagError> {
        if running.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (consumer, id) in running {
            pipe.cmd("XCLAIM")
                .arg(&self.key)
                .arg(GROUP)
                .arg(consumer)
                .arg(0)
                .arg(id)
                .arg("JUSTID")
                .ignore();
        }
        self.store
            .connection()
            .send(&pipe, Retry::Once, "could not renew the invocations' lease")
            .await
    }

    /// Acknowledges entries and deletes them from the stream, in one round trip.
    pub async fn ack(&self, ids: &[String]) -> Result<(), DagError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.store
            .connection()
            .send(
                &self.ack_pipeline(ids),
                Retry::Once,
                "could not acknowledge invocations",
            )
            .await
    }

    /// Removes from the group the consumers that have nothing pending and have not read for
    /// longer than `idle`: what killed workers leave behind (a live worker reads at least every
    /// few hundred milliseconds, or has the entry it runs pending). Returns how many it removed.
    /// One `XINFO CONSUMERS`, plus one pipeline of `XGROUP DELCONSUMER` if any is stale.
    pub async fn prune_consumers(&self, idle: Duration) -> Result<usize, DagError> {
        let conn = self.store.connection();
        let reply: Value = conn
            .send(
                redis::cmd("XINFO")
                    .arg("CONSUMERS")
                    .arg(&self.key)
                    .arg(GROUP),
                Retry::Once,
                "could not list the stream's consumers",
            )
            .await?;
        let stale: Vec<String> = consumers(reply)
            .into_iter()
            .filter(|c| c.pending == 0 && c.idle_ms > idle.as_millis() as u64)
            .map(|c| c.name)
            .collect();
        if stale.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for name in &stale {
            pipe.cmd("XGROUP")
                .arg("DELCONSUMER")
                .arg(&self.key)
                .arg(GROUP)
                .arg(name)
                .ignore();
        }
        conn.send::<()>(&pipe, Retry::Once, "could not remove stale consumers")
            .await?;
        Ok(stale.len())
    }

    /// Number of entries delivered to a worker and not acknowledged yet.
    pub async fn pending(&self) -> Result<usize, DagError> {
        let reply: Value = self
            .store
            .connection()
            .send(
                redis::cmd("XPENDING").arg(&self.key).arg(GROUP),
                Retry::Once,
                "could not read the pending invocations",
            )
            .await?;
        match reply {
            Value::Array(items) => match items.first() {
                Some(Value::Int(n)) => Ok(*n as usize),
                _ => Ok(0),
            },
            _ => Ok(0),
        }
    }

    /// Records how long a worker process took from being started to being ready.
    pub async fn record_cold_start(&self, time: Duration) -> Result<(), DagError> {
        let key = self.metrics_key();
        let mut pipe = redis::pipe();
        pipe.lpush(&key, time.as_micros() as u64)
            .ignore()
            .ltrim(&key, 0, COLD_STARTS_KEPT - 1)
            .ignore();
        self.store
            .connection()
            .send(&pipe, Retry::Never, "could not record a cold start")
            .await
    }

    /// The cold-start times recorded on this stream, oldest first.
    pub async fn cold_starts(&self) -> Result<Vec<Duration>, DagError> {
        let micros: Vec<u64> = self
            .store
            .connection()
            .send(
                redis::cmd("LRANGE").arg(self.metrics_key()).arg(0).arg(-1),
                Retry::Once,
                "could not read the cold starts",
            )
            .await?;
        Ok(micros
            .into_iter()
            .rev()
            .map(Duration::from_micros)
            .collect())
    }

    /// Deletes the stream, its group and its metrics (for a stream private to one runtime).
    pub async fn destroy(&self) -> Result<(), DagError> {
        self.store
            .connection()
            .send(
                redis::cmd("DEL").arg(&self.key).arg(self.metrics_key()),
                Retry::Once,
                "could not delete the stream",
            )
            .await
    }
}

/// One consumer of an [`InvocationStream`]'s group, on a dedicated connection.
///
/// A reader outlives a restart of the server: after its connection drops, the read fails and
/// the next one connects again; a stream or group that vanished (a server restarted without
/// persistence, or the key deleted) is created again, and the read goes on.
pub struct StreamReader {
    /// Its own connection: a blocking read must not hold up the store's shared one. It opens
    /// itself again after a failure.
    conn: Dedicated,
    stream: InvocationStream,
    consumer: String,
}

impl StreamReader {
    /// The consumer's name in the group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Takes up to `count` new entries, waiting at most `block` for the first one.
    ///
    /// Entries that are not invocations (written by something else) are acknowledged, reported
    /// on stderr and skipped.
    pub async fn read(
        &mut self,
        count: usize,
        block: Duration,
    ) -> Result<Vec<StreamEntry>, DagError> {
        self.ack_and_read(&[], count, block).await
    }

    /// Acknowledges (and deletes) the entries `ack` and takes up to `count` new ones, waiting at
    /// most `block` for the first, in one round trip: a worker acknowledges what it finished
    /// together with asking for more.
    pub async fn ack_and_read(
        &mut self,
        ack: &[String],
        count: usize,
        block: Duration,
    ) -> Result<Vec<StreamEntry>, DagError> {
        let mut pipe = self.stream.ack_pipeline(ack);
        pipe.cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count.max(1))
            .arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(&self.stream.key)
            .arg(">");
        let (reply,): (Value,) = self
            .query(&pipe, "could not read the invocation stream")
            .await?;
        self.stream.invocations(stream_entries(reply)).await
    }

    /// Acknowledges `ack` (like [`ack_and_read`](Self::ack_and_read)) and takes over for this
    /// reader's consumer up to `count` invocations that have been pending with other consumers
    /// for at least `lease` without a sign of life: their worker died, or hangs. One round trip
    /// (`XAUTOCLAIM`, then `XPENDING` for the claimed entries' delivery counts).
    ///
    /// Returns each claimed invocation with the number of times it has been delivered,
    /// this one included: 2 for the first re-run after a worker died. A worker keeps what it
    /// runs from being claimed with [`InvocationStream::keep_alive`].
    pub async fn ack_and_take_over_stale(
        &mut self,
        ack: &[String],
        lease: Duration,
        count: usize,
    ) -> Result<Vec<(StreamEntry, u64)>, DagError> {
        let mut pipe = self.stream.ack_pipeline(ack);
        pipe.cmd("XAUTOCLAIM")
            .arg(&self.stream.key)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(lease.as_millis().max(1) as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(count.max(1))
            .cmd("XPENDING")
            .arg(&self.stream.key)
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(PENDING_SCAN)
            .arg(&self.consumer);
        let (claimed, pending): (Value, Value) = self
            .query(&pipe, "could not take over stale invocations")
            .await?;
        // [next cursor, [[id, fields], ..], [deleted ids]]; only the entries matter here.
        let entries = match claimed {
            Value::Array(mut parts) if parts.len() >= 2 => entry_list(parts.swap_remove(1)),
            _ => Vec::new(),
        };
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let counts = delivery_counts(pending);
        let entries = self.stream.invocations(entries).await?;
        Ok(entries
            .into_iter()
            .map(|entry| {
                let deliveries = counts
                    .iter()
                    .find(|(id, _)| *id == entry.id)
                    .map_or(2, |(_, n)| *n);
                (entry, deliveries)
            })
            .collect())
    }

    /// Runs `pipe` on the reader's connection. A missing stream or group (`NOGROUP`: the
    /// server restarted without persistence, or the key was deleted) is created again and the
    /// pipe sent once more; after a connection failure, the next call opens a new connection.
    async fn query<T: redis::FromRedisValue>(
        &mut self,
        pipe: &redis::Pipeline,
        what: &str,
    ) -> Result<T, DagError> {
        let mut recreated = false;
        loop {
            match self.conn.send::<T>(pipe).await {
                Ok(reply) => return Ok(reply),
                Err(e) if !recreated && is_no_group(&e) => {
                    eprintln!(
                        "dag: the invocation stream `{}` or its group `{GROUP}` is missing at {} \
                         (did the server restart, or was the key deleted?); creating it again",
                        self.stream.key,
                        self.stream.store.addr()
                    );
                    self.stream.create_group().await?;
                    recreated = true;
                }
                Err(e) => return Err(self.conn.owner().error(what, e)),
            }
        }
    }

    /// Removes this consumer from the group (call it when it has nothing pending any more).
    pub async fn remove_consumer(&mut self) -> Result<(), DagError> {
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("DELCONSUMER")
            .arg(&self.stream.key)
            .arg(GROUP)
            .arg(&self.consumer);
        self.conn
            .send::<()>(&cmd)
            .await
            .map_err(|e| self.conn.owner().error("could not leave the group", e))
    }
}

/// Whether the server answered that the stream or its consumer group does not exist.
fn is_no_group(e: &RedisError) -> bool {
    e.clone()
        .into_server_errors()
        .is_some_and(|errors| errors.iter().any(|(_, e)| e.code() == "NOGROUP"))
}

/// `(id, [field, value, ...])` of each entry of an `XREADGROUP` reply (RESP2 or RESP3).
fn stream_entries(reply: Value) -> Vec<(String, Vec<Value>)> {
    // RESP2: [[key, [[id, [f, v, ..]], ..]], ..]; RESP3: {key: [[id, [f, v, ..]], ..]}.
    let streams: Vec<Value> = match reply {
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(mut pair) if pair.len() == 2 => pair.pop(),
                _ => None,
            })
            .collect(),
        Value::Map(pairs) => pairs.into_iter().map(|(_, v)| v).collect(),
        _ => Vec::new(),
    };
    streams.into_iter().flat_map(entry_list).collect()
}

/// `[[id, [field, value, ..]], ..]` (the entries of `XRANGE`, `XAUTOCLAIM` or one stream of
/// `XREADGROUP`) as ids and fields. Entries deleted meanwhile (`[id, nil]`) have no fields.
fn entry_list(items: Value) -> Vec<(String, Vec<Value>)> {
    let Value::Array(items) = items else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let Value::Array(mut pair) = item else {
            continue;
        };
        if pair.len() != 2 {
            continue;
        }
        let fields = match pair.pop() {
            Some(Value::Array(fields)) => fields,
            Some(Value::Map(pairs)) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            _ => Vec::new(),
        };
        if let Some(id) = pair.pop().and_then(|v| text(&v)) {
            out.push((id, fields));
        }
    }
    out
}

/// The delivery counts in an `XPENDING key group start end count [consumer]` reply:
/// `[[id, consumer, idle ms, deliveries], ..]`.
fn delivery_counts(reply: Value) -> Vec<(String, u64)> {
    let Value::Array(items) = reply else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| match item {
            Value::Array(fields) if fields.len() == 4 => {
                let deliveries = match &fields[3] {
                    Value::Int(n) => *n as u64,
                    other => text(other)?.parse().ok()?,
                };
                Some((text(&fields[0])?, deliveries))
            }
            _ => None,
        })
        .collect()
}

/// One consumer of the group, as `XINFO CONSUMERS` describes it.
#[derive(Debug, PartialEq, Eq)]
struct Consumer {
    name: String,
    pending: u64,
    idle_ms: u64,
}

/// The consumers in an `XINFO CONSUMERS` reply: a list of field/value lists (RESP2) or maps
/// (RESP3) with at least `name`, `pending` and `idle`.
fn consumers(reply: Value) -> Vec<Consumer> {
    let Value::Array(items) = reply else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| {
            let pairs: Vec<(Value, Value)> = match item {
                Value::Array(fields) => {
                    let mut fields = fields.into_iter();
                    std::iter::from_fn(|| Some((fields.next()?, fields.next()?))).collect()
                }
                Value::Map(pairs) => pairs,
                _ => return None,
            };
            let (mut name, mut pending, mut idle) = (None, None, None);
            for (field, value) in pairs {
                let number = || match &value {
                    Value::Int(n) => u64::try_from(*n).ok(),
                    other => text(other)?.parse().ok(),
                };
                match text(&field)?.as_str() {
                    "name" => name = text(&value),
                    "pending" => pending = number(),
                    "idle" => idle = number(),
                    _ => {}
                }
            }
            Some(Consumer {
                name: name?,
                pending: pending?,
                idle_ms: idle?,
            })
        })
        .collect()
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn parse_entry(fields: &[Value]) -> Option<(DagId, u32)> {
    let (mut dag, mut node) = (None, None);
    for pair in fields.chunks(2) {
        let [name, value] = pair else { continue };
        match text(name)?.as_str() {
            "dag" => dag = text(value),
            "node" => node = text(value).and_then(|n| n.parse().ok()),
            _ => {}
        }
    }
    Some((DagId::from(dag?.as_str()), node?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn entries_are_parsed_from_a_resp2_reply() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("dag:invocations"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("1-0"),
                    Value::Array(vec![bulk("dag"), bulk("abc"), bulk("node"), bulk("7")]),
                ]),
                Value::Array(vec![bulk("1-1"), Value::Array(vec![bulk("x"), bulk("y")])]),
            ]),
        ])]);
        let entries = stream_entries(reply);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0, "1-0");
        assert_eq!(parse_entry(&entries[0].1), Some((DagId::from("abc"), 7)));
        assert_eq!(parse_entry(&entries[1].1), None);
    }

    #[test]
    fn consumers_are_parsed_from_xinfo() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("name"),
            bulk("host:1/t0"),
            bulk("pending"),
            Value::Int(0),
            bulk("idle"),
            Value::Int(1234),
        ])]);
        assert_eq!(
            consumers(reply),
            vec![Consumer {
                name: "host:1/t0".into(),
                pending: 0,
                idle_ms: 1234
            }]
        );
    }

    #[test]
    fn a_timeout_is_no_entries() {
        assert!(stream_entries(Value::Nil).is_empty());
    }

    /// Any reply shape: what a server (or a hostile stream entry) could send.
    fn any_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Nil),
            any::<i64>().prop_map(Value::Int),
            proptest::collection::vec(any::<u8>(), 0..12).prop_map(Value::BulkString),
            "[a-z0-9-]{0,8}".prop_map(Value::SimpleString),
            prop_oneof![
                Just("dag"),
                Just("node"),
                Just("name"),
                Just("pending"),
                Just("idle")
            ]
            .prop_map(|s| Value::BulkString(s.as_bytes().to_vec())),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Value::Map),
            ]
        })
    }

    proptest::proptest! {
        /// Stream replies, entries and consumer lists of any shape are parsed or skipped,
        /// never a panic.
        #[test]
        fn any_reply_is_parsed_or_skipped(reply in any_value()) {
            for (_, fields) in stream_entries(reply.clone()) {
                let _ = parse_entry(&fields);
            }
            let _ = entry_list(reply.clone());
            let _ = delivery_counts(reply.clone());
            let _ = consumers(reply);
        }
    }
}
