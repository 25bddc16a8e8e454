//! Which Redis a worker process, an example or a tool uses: `--redis URL` / `DAG_REDIS_URL`
//! (one server) or `--redis-cluster URL,URL,...` / `DAG_REDIS_CLUSTER` (a Redis Cluster's seed
//! nodes), flags winning over the environment.

use dag_runtime::store::RedisAddress;

use crate::env;

/// A wrong choice of Redis on the command line or in the environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisChoiceError {
    /// Both a server and a cluster were given, in the flags or (no flag given) in the
    /// environment.
    #[error(
        "both a Redis server ({server}) and a Redis Cluster ({cluster}) were given {source_of}; \
         give one: --redis URL (or DAG_REDIS_URL) for one server, --redis-cluster URL,URL,... \
         (or DAG_REDIS_CLUSTER) for a cluster"
    )]
    Both {
        /// The server's URL.
        server: String,
        /// The cluster's seeds as given.
        cluster: String,
        /// `on the command line` or `in the environment`.
        source_of: &'static str,
    },
    /// A cluster with no seed node (`--redis-cluster ""`, `DAG_REDIS_CLUSTER=,`).
    #[error(
        "--redis-cluster (or DAG_REDIS_CLUSTER) names no node: give the redis:// URLs of some \
         of the cluster's nodes, separated by commas (redis://10.0.0.1:7000,redis://10.0.0.2:7000)"
    )]
    NoSeed,
}

/// The Redis chosen by `--redis` (`server`) and `--redis-cluster` (`cluster`, the flag's value)
/// or, where neither flag is given, by `DAG_REDIS_URL` and `DAG_REDIS_CLUSTER` read with `env`;
/// `Ok(None)` if none is given.
///
/// ```
/// use dag::store::RedisAddress;
/// use dag::worker::{redis_choice, RedisChoiceError};
///
/// let none = |_: &str| None;
/// let cluster = redis_choice(None, Some("redis://h:1,redis://h:2"), none)?;
/// assert_eq!(cluster, Some(RedisAddress::cluster(["redis://h:1", "redis://h:2"])));
/// let both = redis_choice(Some("redis://h:1"), Some("redis://h:2"), none);
/// assert!(matches!(both, Err(RedisChoiceError::Both { .. })));
/// # Ok::<(), RedisChoiceError>(())
/// ```
pub fn redis_choice(
    server: Option<&str>,
    cluster: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<RedisAddress>, RedisChoiceError> {
    let (server, cluster, source_of) = if server.is_some() || cluster.is_some() {
        (
            server.map(str::to_owned),
            cluster.map(str::to_owned),
            "on the command line",
        )
    } else {
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        (
            set(env::REDIS_URL),
            set(env::REDIS_CLUSTER),
            "in the environment",
        )
    };
    match (server, cluster) {
        (Some(server), Some(cluster)) => Err(RedisChoiceError::Both {
            server,
            cluster,
            source_of,
        }),
        (Some(server), None) => Ok(Some(RedisAddress::Server(server))),
        (None, Some(cluster)) => match RedisAddress::parse_cluster(&cluster) {
            RedisAddress::Cluster(seeds) if seeds.is_empty() => Err(RedisChoiceError::NoSeed),
            address => Ok(Some(address)),
        },
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_environment() {
        let env = |name: &str| (name == "DAG_REDIS_CLUSTER").then(|| "redis://c:1".to_owned());
        assert_eq!(
            redis_choice(Some("redis://s:1"), None, env),
            Ok(Some(RedisAddress::Server("redis://s:1".into())))
        );
        assert_eq!(
            redis_choice(None, None, env),
            Ok(Some(RedisAddress::cluster(["redis://c:1"])))
        );
    }

    #[test]
    fn both_or_no_seed_is_an_error_that_says_what_to_give() {
        let both = |name: &str| Some(format!("redis://{name}:1"));
        let error = redis_choice(None, None, both).unwrap_err();
        assert!(matches!(error, RedisChoiceError::Both { .. }));
        assert!(error.to_string().contains("in the environment"), "{error}");
        assert!(error.to_string().contains("--redis-cluster"), "{error}");
        assert_eq!(
            redis_choice(None, Some(" , "), |_| None),
            Err(RedisChoiceError::NoSeed)
        );
    }
}
