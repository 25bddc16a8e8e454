//! [`RedisConfig`]: the timeouts and options of a Redis store.

use std::time::Duration;

/// Timeouts and options of a [`RedisStore`](super::RedisStore). `RedisConfig::default()` suits a
/// server on the same network.
///
/// ```
/// use std::time::Duration;
/// use dag::store::RedisConfig;
///
/// let config = RedisConfig {
///     connect_timeout: Duration::from_secs(1),
///     ..RedisConfig::default()
/// };
/// assert_eq!(config.wait_poll, Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct RedisConfig {
    /// How long connecting (TCP, TLS, `AUTH`, `SELECT`) may take before it fails (default 5 s).
    pub connect_timeout: Duration,
    /// How long one command may wait for its reply before it fails (default 60 s): a server
    /// that stops answering gives an error instead of a hang.
    pub response_timeout: Duration,
    /// The `BLPOP` timeout of [`Store::wait`](crate::store::Store::wait) (default 1 s). Between
    /// two `BLPOP`s the client checks that the DAG still exists, so a DAG deleted by someone
    /// else is an error, not a hang.
    pub wait_poll: Duration,
    /// Whether each completed task appends a `done` event to `dag:{id}:events` (default
    /// `true`; the stream feeds a live dashboard). Failures and success are always recorded.
    pub events: bool,
    /// The safety net for DAGs nobody cleans up (a client killed, a worker gone): every key of a
    /// DAG expires this long after it was created (default 24 hours), and
    /// [`Store::gc`](crate::store::Store::gc) removes DAGs older than this from the `dags`
    /// sorted set, with any keys they still have. Longer than any DAG runs: a DAG older than
    /// this is treated as dead.
    ///
    /// ```
    /// use std::time::Duration;
    /// use dag::store::RedisConfig;
    ///
    /// let config = RedisConfig { key_ttl: Duration::from_secs(3600), ..RedisConfig::default() };
    /// assert_eq!(RedisConfig::default().key_ttl, Duration::from_secs(24 * 3600));
    /// # let _ = config;
    /// ```
    pub key_ttl: Duration,
    /// Keep a finished DAG's keys (plan, outputs, finished-parent sets, status, errors, events)
    /// until their time to live instead of deleting them when the client has the outcome
    /// (default `false`): for debugging, or a dashboard that shows finished DAGs.
    /// [`Store::gc`](crate::store::Store::gc) removes them once they are older than
    /// [`key_ttl`](Self::key_ttl), and [`Store::cancel`](crate::store::Store::cancel) still
    /// deletes everything. The child DAGs of dynamic maps are removed anyway; the map node's
    /// output in the parent holds their result.
    ///
    /// ```
    /// use std::time::Duration;
    /// use dag::store::RedisConfig;
    ///
    /// let debugging = RedisConfig {
    ///     keep_finished: true,
    ///     key_ttl: Duration::from_secs(3600),
    ///     ..RedisConfig::default()
    /// };
    /// # let _ = debugging;
    /// ```
    pub keep_finished: bool,
    /// The largest value (an output, a plan, a result) the store writes (default
    /// [`MAX_VALUE_BYTES`](super::MAX_VALUE_BYTES), Redis's own `proto-max-bulk-len`). A task
    /// whose output is larger fails the DAG with
    /// [`DagError::ValueTooLarge`](crate::DagError::ValueTooLarge) naming the task; lower it to
    /// keep a server's memory for many small values.
    ///
    /// ```
    /// use dag::store::{RedisConfig, MAX_VALUE_BYTES};
    ///
    /// assert_eq!(RedisConfig::default().max_value_bytes, MAX_VALUE_BYTES);
    /// let small = RedisConfig { max_value_bytes: 64 << 20, ..RedisConfig::default() };
    /// # let _ = small;
    /// ```
    pub max_value_bytes: usize,
    /// How many bytes of large outputs (64 KiB and up) this process keeps in memory after
    /// storing or fetching them, so that its later tasks of the same DAG do not download them
    /// again (default [`DEFAULT_OUTPUT_CACHE`]; 0 turns it off). Worker processes take it from
    /// `DAG_OUTPUT_CACHE` (bytes, or with a unit: `512MiB`).
    ///
    /// ```
    /// use dag::store::{RedisConfig, DEFAULT_OUTPUT_CACHE};
    ///
    /// assert_eq!(RedisConfig::default().output_cache_bytes, DEFAULT_OUTPUT_CACHE);
    /// let off = RedisConfig { output_cache_bytes: 0, ..RedisConfig::default() };
    /// # let _ = off;
    /// ```
    pub output_cache_bytes: usize,
}

/// The default [`RedisConfig::output_cache_bytes`]: 256 MiB.
pub const DEFAULT_OUTPUT_CACHE: usize = 256 << 20;

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            wait_poll: Duration::from_secs(1),
            events: true,
            key_ttl: Duration::from_secs(24 * 60 * 60),
            keep_finished: false,
            max_value_bytes: super::MAX_VALUE_BYTES,
            output_cache_bytes: DEFAULT_OUTPUT_CACHE,
        }
    }
}

impl RedisConfig {
    /// [`key_ttl`](Self::key_ttl) in milliseconds (at least 1), as `PEXPIRE` takes it.
    pub(crate) fn ttl_ms(&self) -> u64 {
        (self.key_ttl.as_millis() as u64).max(1)
    }
}
