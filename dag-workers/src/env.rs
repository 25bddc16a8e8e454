//! The environment variables that make a process of a `dag` program a worker, and tell it
//! what to serve. Each has a command-line flag of the same meaning (see [`USAGE`](crate::USAGE)).

/// `1`: serve as a worker (the same as the `--dag-worker` flag).
pub const WORKER: &str = "DAG_WORKER";
/// The Redis URL (the same as `--redis URL`).
pub const REDIS_URL: &str = "DAG_REDIS_URL";
/// A Redis Cluster's seed node URLs, separated by commas (the same as `--redis-cluster`); not
/// together with [`REDIS_URL`].
pub const REDIS_CLUSTER: &str = "DAG_REDIS_CLUSTER";
/// The invocation stream's key (the same as `--stream KEY`; default `dag:invocations`).
pub const STREAM: &str = "DAG_STREAM";
/// Worker threads reading the stream (the same as `--concurrency N`).
pub const CONCURRENCY: &str = "DAG_CONCURRENCY";
/// `<dag id> <node> [<claim>]`: run this one invocation and exit (one process per
/// invocation); the claim is the launcher's stream entry id (see `Store::complete`).
pub const INVOCATION: &str = "DAG_INVOCATION";
/// How long an invocation may go without a sign of life from its worker before another
/// worker re-runs it (the same as `--lease`; default 10 s).
pub const LEASE: &str = "DAG_LEASE";
/// How long a stopping worker waits for the invocations it runs before it exits and leaves
/// them to other workers (the same as `--grace`; default 30 s).
pub const GRACE: &str = "DAG_GRACE";
/// When the parent started this process, µs since the Unix epoch (for the cold start).
pub const SPAWNED_AT_US: &str = "DAG_SPAWNED_AT_US";
/// The pid of the client that started this worker: the worker stops when it goes away.
pub const PARENT_PID: &str = "DAG_PARENT_PID";
/// Bytes of large outputs a worker process keeps in memory for its later tasks (`0`: off).
pub const OUTPUT_CACHE: &str = "DAG_OUTPUT_CACHE";
