//! DAG state in Redis: [`RedisStore`], and the [`InvocationStream`] that carries invocations to
//! worker processes.
//!
//! The pieces, one concept each:
//!
//! | module | owns |
//! | --- | --- |
//! | `address` | [`RedisAddress`]: one server or a Redis Cluster |
//! | `config` | [`RedisConfig`]: timeouts, events, time to live, `keep_finished` |
//! | `connection` | the connections to the server (shared and dedicated), their revival after a lost connection, and the mapping of redis errors to [`DagError`](crate::DagError) |
//! | `thread_conn` | [`ThreadConnections`]: worker threads' own blocking connections, so a step's round trip needs no hand-off to the I/O thread |
//! | `keys` | the names of a DAG's keys (`dag:{<id>}:...`) |
//! | `scripts` | the Lua scripts, the constants they share with Rust, one typed call each |
//! | `store` | the [`Store`](crate::store::Store) operations |
//! | `wait` | the client's wait for the outcome |
//! | `outcome` | what the result list holds |
//! | `cleanup` | deleting a finished DAG's keys in bounded batches |
//! | `plan_cache` | decoded plans kept per process |
//! | `plan_chunks` | a plan stored as a hash of chunks, so no command handles a large plan at once |
//! | `stream` | the invocation stream and its readers |
//! | `output_cache` | large outputs this process stored or fetched, kept for its later tasks |
//! | `inspect` | a running DAG read from outside (the dashboard): finished nodes, failures, events |

mod address;
mod cleanup;
mod config;
mod connection;
mod inspect;
mod keys;
mod outcome;
mod output_cache;
mod plan_cache;
mod plan_chunks;
mod scripts;
mod store;
mod stream;
mod thread_conn;
mod wait;

pub use address::RedisAddress;
pub use config::{RedisConfig, DEFAULT_OUTPUT_CACHE};
pub use inspect::{event_stream_key, DagSnapshot};

/// The Redis ACL rules a client and a worker of `dag` need, and no more: every command the
/// store, the scripts, the invocation stream and the metrics (`dagm:*`, when they are kept in
/// the DAG's Redis) send, on the keys `dag:*`, `dags` and `dagm:*`; the `dag` command and its
/// dashboard need no more either. On a Redis Cluster the cluster client also sends
/// `CLUSTER SLOTS` (its map of slots) and `ASKING` (a slot being moved); ACL users are per
/// node, so set the user on every node, replicas included.
///
/// A user for `dag` alone, with `redis-cli` or in `redis.conf`:
///
/// ```text
/// ACL SETUSER dag on >secret <REDIS_ACL>
/// ```
///
/// and the URL `redis://dag:secret@host:6379`. The README lists the same rules (a test keeps
/// them equal).
///
/// ```
/// assert!(dag::store::REDIS_ACL.starts_with("~dag:* ~dags ~dagm:* -@all"));
/// assert!(dag::store::REDIS_ACL.contains("+evalsha"));
/// ```
pub const REDIS_ACL: &str = "~dag:* ~dags ~dagm:* -@all +ping +get +mget +set +psetex +del \
+unlink +pexpire +hset +hsetnx +hincrby +hget +hgetall +hmget +hlen +rpush +lpop +blpop +lpush \
+ltrim +lrange +llen +zadd +zrem +zrangebyscore +zrevrange +scan +multi +exec +evalsha \
+script|load +xadd +xack +xdel +xclaim +xautoclaim +xpending +xread +xreadgroup +xgroup|create \
+xgroup|delconsumer +xinfo|consumers +cluster|slots +asking";
pub use store::{RedisStore, MAX_VALUE_BYTES};
pub use stream::{InvocationStream, StreamEntry, StreamReader, DEFAULT_STREAM, GROUP};
pub use thread_conn::ThreadConnections;
