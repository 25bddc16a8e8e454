//! [`RedisAddress`]: where a Redis store lives, one server or a Redis Cluster.

use super::config::RedisConfig;
use super::store::RedisStore;
use crate::error::DagError;

/// Where a [`RedisStore`] lives: one server, or a Redis Cluster (or Valkey cluster) named by
/// some of its nodes. A runtime passes it on to the worker processes it starts
/// (`DAG_REDIS_URL` or `DAG_REDIS_CLUSTER`).
///
/// ```
/// use dag::store::RedisAddress;
///
/// let one = RedisAddress::Server("redis://127.0.0.1:6379".into());
/// assert_eq!(one.server_url(), Some("redis://127.0.0.1:6379"));
/// let cluster = RedisAddress::cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]);
/// assert_eq!(cluster.server_url(), None);
/// assert_eq!(cluster.to_string(), "redis://10.0.0.1:7000,redis://10.0.0.2:7000");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisAddress {
    /// One server: `redis://[[user]:password@]host[:port][/db]`.
    Server(String),
    /// A cluster: the URLs of its seed nodes.
    Cluster(Vec<String>),
}

impl RedisAddress {
    /// A cluster with these seed nodes.
    pub fn cluster<I, S>(urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisAddress::Cluster(urls.into_iter().map(Into::into).collect())
    }

    /// A cluster from a comma-separated list of seed URLs (`DAG_REDIS_CLUSTER`,
    /// `--redis-cluster`); blanks around the commas and empty items are ignored.
    ///
    /// ```
    /// use dag::store::RedisAddress;
    ///
    /// let a = RedisAddress::parse_cluster("redis://h:1, redis://h:2,");
    /// assert_eq!(a, RedisAddress::cluster(["redis://h:1", "redis://h:2"]));
    /// ```
    pub fn parse_cluster(list: &str) -> Self {
        RedisAddress::cluster(
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        )
    }

    /// The URL of a single server; `None` for a cluster.
    pub fn server_url(&self) -> Option<&str> {
        match self {
            RedisAddress::Server(url) => Some(url),
            RedisAddress::Cluster(_) => None,
        }
    }

    /// Connects a store to it with `config`.
    pub async fn connect(&self, config: RedisConfig) -> Result<RedisStore, DagError> {
        match self {
            RedisAddress::Server(url) => RedisStore::connect_with(url, config).await,
            RedisAddress::Cluster(urls) => RedisStore::connect_cluster(urls, config).await,
        }
    }
}

/// The URL, or the cluster's seed URLs separated by commas (as `DAG_REDIS_CLUSTER` takes them).
impl std::fmt::Display for RedisAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisAddress::Server(url) => f.write_str(url),
            RedisAddress::Cluster(urls) => f.write_str(&urls.join(",")),
        }
    }
}
