//! [`RedisStore`]: DAG state in Redis, shared by workers on many machines.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, RedisError, Script, Value};
use serde::{Deserialize, Serialize};

use super::{ChildRef, Completion, DagId, Outcome, Store, TaskErrorRecord};
use crate::error::DagError;
use crate::plan::Plan;

/// Redis refuses a single value larger than this (`proto-max-bulk-len`, 512 MB by default).
pub const MAX_VALUE_BYTES: usize = 512 * 1024 * 1024;

/// How many decoded plans a store keeps (the plans of running DAGs that this process works on).
const PLAN_CACHE_CAPACITY: usize = 256;

/// The value of `dag:{id}:status` while the DAG runs.
const RUNNING: &[u8] = b"running";

static COMPLETE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/complete.lua")));
static FAIL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{}\n{}",
        include_str!("scripts/cleanup.lua"),
        include_str!("scripts/fail.lua")
    ))
});
static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{}\n{}",
        include_str!("scripts/cleanup.lua"),
        include_str!("scripts/finish.lua")
    ))
});
static CANCEL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{}\n{}",
        include_str!("scripts/cleanup.lua"),
        include_str!("scripts/cancel.lua")
    ))
});

/// About how many events a DAG's `events` stream keeps (`XADD ... MAXLEN ~`, as the scripts do).
const EVENTS_KEPT: u32 = 1000;

/// Timeouts of a [`RedisStore`]. `RedisConfig::default()` suits a server on the same network.
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
    /// The `BLPOP` timeout of [`Store::wait`] (default 1 s). Between two `BLPOP`s the client
    /// checks that the DAG still exists, so a DAG deleted by someone else is an error, not a hang.
    pub wait_poll: Duration,
    /// Whether each completed task appends a `done` event to `dag:{id}:events` (default
    /// `true`; the stream feeds a live dashboard). Failures and success are always recorded.
    pub events: bool,
    /// The safety net for DAGs nobody cleans up (a client killed, a worker gone): every key of a
    /// DAG expires this long after it was created (default 24 hours), and
    /// [`Store::gc`] removes DAGs older than this from the `dags` sorted set, with any keys
    /// they still have. Longer than any DAG runs: a DAG older than this is treated as dead.
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
    /// [`Store::gc`] removes them once they are older than [`key_ttl`](Self::key_ttl), and
    /// [`Store::cancel`] still deletes everything. The child DAGs of dynamic maps are removed
    /// anyway; the map node's output in the parent holds their result.
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
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            wait_poll: Duration::from_secs(1),
            events: true,
            key_ttl: Duration::from_secs(24 * 60 * 60),
            keep_finished: false,
        }
    }
}

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
/// | `dag:{id}:done:<n>` | set of the parents of n that finished |
/// | `dag:{id}:errors` | hash: node -> JSON error |
/// | `dag:{id}:events` | stream of task events, each naming the worker process (capped at about 1,000 entries) |
/// | `dag:{id}:result` | list the client blocks on (`BLPOP`) for the outcome |
/// | `dags` | sorted set of DAG ids by submission time (ms) |
///
/// Every `dag:{id}:...` key expires [`RedisConfig::key_ttl`] after it was created (set where it
/// is created, inside the same command or script: no extra round trip).
///
/// Each worker-step operation is one round trip: [`fetch_outputs`](Store::fetch_outputs) is one
/// `MGET` (which also reads the status), [`complete`](Store::complete), [`fail`](Store::fail) and
/// [`finish`](Store::finish) are one Lua script each (`EVALSHA`, loaded again on `NOSCRIPT`).
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
    client: Client,
    /// `host:port` (never the password), for error messages.
    addr: String,
    config: RedisConfig,
    /// The shared multiplexed connection of the worker-step operations.
    conn: ConnectionManager,
    /// Idle dedicated connections for blocking commands (`BLPOP`).
    blocking: Mutex<Vec<MultiplexedConnection>>,
    plans: Mutex<PlanCache>,
    /// This process (`host:pid`), named in the `done` events.
    worker: String,
}

#[derive(Default)]
struct PlanCache {
    plans: HashMap<DagId, Arc<Plan>>,
    order: VecDeque<DagId>,
}

impl PlanCache {
    fn insert(&mut self, dag: &DagId, plan: Arc<Plan>) {
        if self.plans.insert(dag.clone(), plan).is_none() {
            self.order.push_back(dag.clone());
        }
        while self.plans.len() > PLAN_CACHE_CAPACITY {
            match self.order.pop_front() {
                Some(old) => {
                    self.plans.remove(&old);
                }
                None => break,
            }
        }
    }

    fn remove(&mut self, dag: &DagId) {
        if self.plans.remove(dag).is_some() {
            self.order.retain(|d| d != dag);
        }
    }
}

/// The keys of one DAG.
struct Keys(String);

impl Keys {
    fn new(dag: &DagId) -> Self {
        Keys(format!("dag:{{{dag}}}:"))
    }
    fn prefix(&self) -> &str {
        &self.0
    }
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.0)
    }
    fn out(&self, node: u32) -> String {
        format!("{}out:{node}", self.0)
    }
    fn done(&self, node: u32) -> String {
        format!("{}done:{node}", self.0)
    }
}

/// What `dag:{id}:errors` holds per node: the record plus when it was written.
#[derive(Serialize, Deserialize)]
struct ErrorJson {
    #[serde(flatten)]
    record: TaskErrorRecord,
    /// Milliseconds since the Unix epoch.
    time: u64,
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
        let client = Client::open(url).map_err(|e| DagError::Redis {
            addr: redact(url),
            message: format!("invalid Redis URL: {e}"),
        })?;
        let addr = client.get_connection_info().addr().to_string();
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = tokio::time::timeout(
            config.connect_timeout * 2,
            client.get_connection_manager_with_config(manager_config),
        )
        .await
        .map_err(|_| DagError::Redis {
            addr: addr.clone(),
            message: format!(
                "could not connect within {:?}; is the address right and the server up?",
                config.connect_timeout * 2
            ),
        })?
        .map_err(|e| redis_error(&addr, "could not connect", &e))?;
        let store = RedisStore {
            inner: Arc::new(Inner {
                client,
                addr,
                config,
                conn,
                blocking: Mutex::new(Vec::new()),
                plans: Mutex::new(PlanCache::default()),
                worker: crate::worker_id(),
            }),
        };
        // Load the scripts now, so that the first worker steps are one round trip each.
        let mut conn = store.inner.conn.clone();
        for script in [&*COMPLETE, &*FAIL, &*FINISH, &*CANCEL] {
            script
                .prepare_invoke()
                .load_async(&mut conn)
                .await
                .map_err(|e| store.error("could not load the Lua scripts", e))?;
        }
        Ok(store)
    }

    /// The server's address, `host:port`.
    ///
    /// ```no_run
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = dag::store::RedisStore::connect("redis://127.0.0.1:6379").await?;
    /// assert_eq!(store.addr(), "127.0.0.1:6379");
    /// # Ok::<(), dag::DagError>(())
    /// # }).unwrap();
    /// ```
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    fn error(&self, action: &str, e: RedisError) -> DagError {
        redis_error(&self.inner.addr, action, &e)
    }

    fn conn(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    /// [`RedisConfig::key_ttl`] in milliseconds (at least 1).
    fn ttl_ms(&self) -> u64 {
        (self.inner.config.key_ttl.as_millis() as u64).max(1)
    }

    /// The shared multiplexed connection (for [`InvocationStream`](super::InvocationStream)).
    pub(crate) fn connection(&self) -> ConnectionManager {
        self.conn()
    }

    /// A [`DagError::Redis`] for a failed `action` on this store's server.
    pub(crate) fn redis_error(&self, action: &str, e: RedisError) -> DagError {
        self.error(action, e)
    }

    fn plans(&self) -> MutexGuard<'_, PlanCache> {
        self.inner.plans.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cached_plan(&self, dag: &DagId) -> Option<Arc<Plan>> {
        self.plans().plans.get(dag).cloned()
    }

    /// The number of nodes of `dag`, from the cache or else from the stored plan.
    async fn node_count(&self, dag: &DagId) -> Result<usize, DagError> {
        if let Some(plan) = self.cached_plan(dag) {
            return Ok(plan.nodes.len());
        }
        let bytes: Option<Bytes> = redis::cmd("GET")
            .arg(Keys::new(dag).key("plan"))
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error("could not read the plan", e))?;
        match bytes {
            Some(bytes) => Ok(decode_plan(dag, &bytes)?.nodes.len()),
            None => Ok(0),
        }
    }

    /// The node count the fail and finish scripts delete the intermediate keys of: `-1` when
    /// [`RedisConfig::keep_finished`] keeps them (and the plan), which skips the lookup too.
    async fn nodes_to_delete(&self, dag: &DagId) -> Result<i64, DagError> {
        if self.inner.config.keep_finished {
            return Ok(-1);
        }
        Ok(self.node_count(dag).await? as i64)
    }

    fn check_size(&self, what: impl FnOnce() -> String, size: usize) -> Result<(), DagError> {
        if size > MAX_VALUE_BYTES {
            return Err(DagError::ValueTooLarge {
                what: what(),
                size,
                limit: MAX_VALUE_BYTES,
            });
        }
        Ok(())
    }

    /// The task name an event shows for `node` (`task[i]` for a map's element), if the plan is
    /// cached here (it is whenever this process submitted, expanded or loaded the DAG).
    fn event_task_name(&self, dag: &DagId, node: u32) -> String {
        if !self.inner.config.events {
            return String::new();
        }
        match self.cached_plan(dag) {
            Some(plan) if (node as usize) < plan.nodes.len() => plan.task_name(node),
            _ => String::new(),
        }
    }

    fn describe_node(&self, dag: &DagId, node: u32) -> String {
        match self.cached_plan(dag) {
            Some(plan) if (node as usize) < plan.nodes.len() => {
                format!(
                    "the output of node {node} (task `{}`)",
                    plan.task_name(node)
                )
            }
            _ => format!("the output of node {node}"),
        }
    }

    /// Makes the shared connection notice now that the server went away, if it did: a `PING`
    /// that fails on a dead connection starts its reconnection, so that the next real command
    /// (a worker's step, a client's plan) does not fail on it. Called when a dedicated
    /// connection found its server gone and connected again.
    pub(crate) async fn revive_shared_connection(&self) {
        let _ = redis::cmd("PING").query_async::<()>(&mut self.conn()).await;
    }

    /// A dedicated connection for a blocking command: an idle one or a new one.
    pub(crate) async fn blocking_connection(&self) -> Result<MultiplexedConnection, DagError> {
        let idle = self.idle_blocking().pop();
        if let Some(conn) = idle {
            return Ok(conn);
        }
        self.new_blocking_connection()
            .await
            .map_err(|e| self.error("could not open a connection to wait on", e))
    }

    fn idle_blocking(&self) -> MutexGuard<'_, Vec<MultiplexedConnection>> {
        self.inner
            .blocking
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A new dedicated connection for blocking commands.
    pub(crate) async fn new_blocking_connection(
        &self,
    ) -> Result<MultiplexedConnection, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.inner.config.connect_timeout))
            .set_response_timeout(Some(
                self.inner.config.wait_poll + self.inner.config.response_timeout,
            ));
        self.inner
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    fn return_blocking_connection(&self, conn: MultiplexedConnection) {
        let mut idle = self.idle_blocking();
        if idle.len() < 16 {
            idle.push(conn);
        }
    }

    /// Waits for the outcome of `dag` on a dedicated connection, and takes it off the result
    /// list.
    ///
    /// If the connection drops (the server stopped, restarted or the network failed), it
    /// tries to reconnect for up to [`RECONNECT_WINDOW`] and looks at the DAG again: a server
    /// that restarted without persistence has lost it, which is an error saying so; a DAG still
    /// there is waited for on the new connection. A server that stays away is an error after
    /// that window.
    async fn wait_outcome(&self, dag: &DagId) -> Result<Bytes, DagError> {
        let mut conn = self.blocking_connection().await?;
        let mut check_first = false;
        loop {
            match self.pop_outcome(dag, &mut conn, check_first).await {
                Ok(Popped::Outcome(bytes)) => {
                    self.return_blocking_connection(conn);
                    return Ok(bytes);
                }
                Ok(Popped::Gone) => return Err(self.dag_gone(dag)),
                Ok(Popped::Taken) => return Err(self.outcome_taken(dag)),
                Err(e) if e.clone().into_server_errors().is_some() => {
                    return Err(self.error(&format!("could not wait for DAG {dag}"), e));
                }
                Err(lost) => {
                    // Idle connections to a server that dropped this one are likely dead too.
                    self.idle_blocking().clear();
                    conn = self.reconnect(dag, lost).await?;
                    self.revive_shared_connection().await;
                    check_first = true;
                }
            }
        }
    }

    /// A new dedicated connection after `lost`, trying for up to [`RECONNECT_WINDOW`] (or
    /// [`RedisConfig::connect_timeout`] if that is shorter).
    async fn reconnect(
        &self,
        dag: &DagId,
        lost: RedisError,
    ) -> Result<MultiplexedConnection, DagError> {
        let limit = RECONNECT_WINDOW.min(self.inner.config.connect_timeout);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            tokio::time::sleep(RECONNECT_PAUSE).await;
            let last = match self.new_blocking_connection().await {
                Ok(conn) => return Ok(conn),
                Err(e) => e,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(DagError::Redis {
                    addr: self.inner.addr.clone(),
                    message: format!(
                        "lost the connection while waiting for DAG {dag} ({lost}) and could not \
                         reconnect within {limit:?} ({last}); is the server down? If it \
                         restarts without persistence, the DAG is lost with it: compute it again"
                    ),
                });
            }
        }
    }

    /// Blocks until the outcome of `dag` is on its result list and takes it, polling the DAG's
    /// status every [`RedisConfig::wait_poll`] (first of all if `check_first`).
    async fn pop_outcome(
        &self,
        dag: &DagId,
        conn: &mut MultiplexedConnection,
        check_first: bool,
    ) -> Result<Popped, RedisError> {
        let keys = Keys::new(dag);
        let result_key = keys.key("result");
        let status_key = keys.key("status");
        let poll = self.inner.config.wait_poll.as_secs_f64();
        let mut check = check_first;
        loop {
            if check {
                let status: Option<Bytes> =
                    redis::cmd("GET").arg(&status_key).query_async(conn).await?;
                match status.as_deref() {
                    None => return Ok(Popped::Gone),
                    Some(RUNNING) => {}
                    // Ended: the outcome is on the list (the scripts set both atomically),
                    // unless someone else took it.
                    Some(_) => {
                        let popped: Option<Bytes> = redis::cmd("LPOP")
                            .arg(&result_key)
                            .query_async(conn)
                            .await?;
                        return Ok(popped.map_or(Popped::Taken, Popped::Outcome));
                    }
                }
            }
            let popped: Option<(String, Bytes)> = redis::cmd("BLPOP")
                .arg(&result_key)
                .arg(poll)
                .query_async(conn)
                .await?;
            if let Some((_, bytes)) = popped {
                return Ok(Popped::Outcome(bytes));
            }
            check = true;
        }
    }

    /// The error for a DAG whose keys are gone while a client waits for it.
    fn dag_gone(&self, dag: &DagId) -> DagError {
        DagError::Store(format!(
            "DAG {dag} is unknown to Redis at {}: its keys are gone. Either the server \
             restarted and lost them (no persistence), or they were deleted (the DAG was \
             cancelled, expired after `key_ttl`, or was already collected); compute it again",
            self.inner.addr
        ))
    }

    /// The error for a DAG that ended but whose outcome someone else took off the list.
    fn outcome_taken(&self, dag: &DagId) -> DagError {
        DagError::Store(format!(
            "DAG {dag} has ended, but its outcome is no longer on its result list in Redis at {}: \
             another client collected it, or the reply was lost with a dropped connection; \
             compute it again",
            self.inner.addr
        ))
    }
}

/// How long [`Store::wait`] tries to reconnect after its connection dropped, to tell a
/// restarted server (which may have lost the DAG) from one that is gone: short, so that a dead
/// server is still a prompt error.
const RECONNECT_WINDOW: Duration = Duration::from_secs(1);

/// How long [`Store::wait`] pauses between two attempts to reconnect.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);

/// What waiting on a DAG's result list found.
enum Popped {
    /// The outcome, taken off the list.
    Outcome(Bytes),
    /// The DAG's keys are gone.
    Gone,
    /// The DAG ended, but its outcome is not on the list.
    Taken,
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
        let keys = Keys::new(dag);
        self.plans().insert(dag, Arc::clone(plan));
        let submitted = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let ttl = self.ttl_ms();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .pset_ex(keys.key("plan"), bytes, ttl)
            .ignore()
            .pset_ex(keys.key("status"), RUNNING, ttl)
            .ignore()
            .zadd("dags", dag.as_str(), submitted)
            .ignore();
        if self.inner.config.events {
            // Created here with its expiry, so that the completions appending to it need not
            // set one (one command less per task).
            pipe.cmd("XADD")
                .arg(keys.key("events"))
                .arg("MAXLEN")
                .arg("~")
                .arg(EVENTS_KEPT)
                .arg("*")
                .arg("event")
                .arg("submitted")
                .arg("nodes")
                .arg(plan.nodes.len())
                .ignore()
                .pexpire(keys.key("events"), ttl as i64)
                .ignore();
        }
        let stored = match pipe.query_async::<()>(&mut self.conn()).await {
            // The shared connection died while idle (say the server restarted since the last
            // DAG): that first command fails and starts the reconnection. Storing the plan is
            // idempotent, so once more on the new connection.
            Err(e) if e.is_connection_dropped() => pipe.query_async::<()>(&mut self.conn()).await,
            stored => stored,
        };
        stored.map_err(|e| {
            self.plans().remove(dag);
            self.error("could not store the plan", e)
        })
    }

    async fn get_plan(&self, dag: &DagId) -> Result<Option<Arc<Plan>>, DagError> {
        let keys = Keys::new(dag);
        let cached = self.cached_plan(dag);
        // One round trip either way: the status, and the plan only if it is not cached.
        let mut cmd = redis::cmd("MGET");
        cmd.arg(keys.key("status"));
        if cached.is_none() {
            cmd.arg(keys.key("plan"));
        }
        let values: Vec<Option<Bytes>> = cmd
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error("could not read the plan", e))?;
        if values.first().and_then(|s| s.as_deref()) != Some(RUNNING) {
            self.plans().remove(dag);
            return Ok(None);
        }
        if let Some(plan) = cached {
            return Ok(Some(plan));
        }
        let Some(Some(bytes)) = values.get(1) else {
            return Ok(None);
        };
        let plan = Arc::new(decode_plan(dag, bytes)?);
        self.plans().insert(dag, Arc::clone(&plan));
        Ok(Some(plan))
    }

    async fn fetch_outputs(
        &self,
        dag: &DagId,
        nodes: &[u32],
    ) -> Result<Option<Vec<Bytes>>, DagError> {
        let keys = Keys::new(dag);
        let mut cmd = redis::cmd("MGET");
        cmd.arg(keys.key("status"));
        for &node in nodes {
            cmd.arg(keys.out(node));
        }
        let values: Vec<Option<Bytes>> = cmd
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.error("could not fetch inputs", e))?;
        let mut values = values.into_iter();
        if values.next().flatten().as_deref() != Some(RUNNING) {
            return Ok(None);
        }
        nodes
            .iter()
            .zip(values)
            .map(|(&node, value)| value.ok_or_else(|| super::missing_output(dag, node)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    async fn complete(
        &self,
        dag: &DagId,
        node: u32,
        output: Bytes,
        children: &[ChildRef],
        claim: &str,
    ) -> Result<Completion, DagError> {
        self.check_size(|| self.describe_node(dag, node), output.len())?;
        let keys = Keys::new(dag);
        let mut invocation = COMPLETE.prepare_invoke();
        invocation
            .key(keys.key("status"))
            .key(keys.out(node))
            .key(keys.key("events"))
            .arg(output.as_ref())
            .arg(node)
            .arg(if self.inner.config.events { "1" } else { "0" })
            .arg(&self.inner.worker)
            .arg(self.ttl_ms())
            .arg(self.event_task_name(dag, node))
            .arg(claim);
        for child in children {
            invocation.key(keys.done(child.node)).arg(child.parents);
        }
        let reply: Value = invocation
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error(&format!("could not store the output of node {node}"), e))?;
        match reply {
            Value::Int(_) => Ok(Completion::Ended),
            Value::Array(positions) => positions
                .into_iter()
                .map(|p| match p {
                    Value::Int(j) if j >= 1 && (j as usize) <= children.len() => {
                        Ok(children[j as usize - 1].node)
                    }
                    other => Err(DagError::Store(format!(
                        "unexpected reply from the completion script: {other:?}"
                    ))),
                })
                .collect::<Result<_, _>>()
                .map(Completion::Ready),
            other => Err(DagError::Store(format!(
                "unexpected reply from the completion script: {other:?}"
            ))),
        }
    }

    async fn fail(&self, dag: &DagId, error: TaskErrorRecord) -> Result<(), DagError> {
        let keys = Keys::new(dag);
        let nodes = self.nodes_to_delete(dag).await?;
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let node = error.node;
        let json = serde_json::to_string(&ErrorJson {
            record: error,
            time,
        })
        .map_err(|e| DagError::Store(format!("could not encode a task error as JSON: {e}")))?;
        let mut outcome = Vec::with_capacity(json.len() + 1);
        outcome.push(b'F');
        outcome.extend_from_slice(json.as_bytes());
        FAIL.key(keys.key("status"))
            .key(keys.key("errors"))
            .key(keys.key("result"))
            .key(keys.key("plan"))
            .key(keys.key("events"))
            .arg(node)
            .arg(json.as_bytes())
            .arg(outcome)
            .arg(nodes)
            .arg(keys.prefix())
            .arg(self.ttl_ms())
            .invoke_async::<i64>(&mut self.conn())
            .await
            .map_err(|e| self.error("could not record a task failure", e))?;
        self.plans().remove(dag);
        Ok(())
    }

    async fn finish(&self, dag: &DagId, result: Bytes) -> Result<(), DagError> {
        self.check_size(|| format!("the result of DAG {dag}"), result.len() + 1)?;
        let keys = Keys::new(dag);
        let nodes = self.nodes_to_delete(dag).await?;
        let mut outcome = Vec::with_capacity(result.len() + 1);
        outcome.push(b'S');
        outcome.extend_from_slice(&result);
        FINISH
            .key(keys.key("status"))
            .key(keys.key("result"))
            .key(keys.key("plan"))
            .key(keys.key("events"))
            .arg(outcome)
            .arg(nodes)
            .arg(keys.prefix())
            .arg(self.ttl_ms())
            .invoke_async::<i64>(&mut self.conn())
            .await
            .map_err(|e| self.error("could not store the result", e))?;
        self.plans().remove(dag);
        Ok(())
    }

    async fn wait(&self, dag: &DagId) -> Result<Outcome, DagError> {
        let bytes = self.wait_outcome(dag).await?;
        if self.inner.config.keep_finished {
            // Kept for inspection: the keys expire, and `gc` removes the DAG from `dags`.
            return decode_outcome(dag, &bytes);
        }
        let keys = Keys::new(dag);
        redis::pipe()
            .atomic()
            .del(&[
                keys.key("status"),
                keys.key("errors"),
                keys.key("result"),
                keys.key("events"),
            ])
            .ignore()
            .zrem("dags", dag.as_str())
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| self.error("could not clean up a finished DAG", e))?;
        self.plans().remove(dag);
        decode_outcome(dag, &bytes)
    }

    async fn cancel(&self, dag: &DagId) -> Result<bool, DagError> {
        let keys = Keys::new(dag);
        let nodes = self.node_count(dag).await?;
        let cancelled: i64 = CANCEL
            .key(keys.key("status"))
            .key(keys.key("errors"))
            .key(keys.key("result"))
            .key(keys.key("plan"))
            .key(keys.key("events"))
            .key("dags")
            .arg(nodes)
            .arg(keys.prefix())
            .arg(dag.as_str())
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| self.error("could not cancel the DAG", e))?;
        self.plans().remove(dag);
        Ok(cancelled == 1)
    }

    async fn gc(&self) -> Result<usize, DagError> {
        let mut conn = self.conn();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let cutoff = now.saturating_sub(self.ttl_ms());
        let old: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg("dags")
            .arg("-inf")
            .arg(cutoff)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error("could not list the DAGs", e))?;
        let mut stale = std::collections::HashSet::new();
        for batch in old.chunks(1000) {
            // A DAG still running past the TTL was submitted by a client with a longer one.
            let mut cmd = redis::cmd("MGET");
            for id in batch {
                cmd.arg(Keys::new(&DagId::from(id.as_str())).key("status"));
            }
            let statuses: Vec<Option<Bytes>> = cmd
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error("could not read the status of old DAGs", e))?;
            for (id, status) in batch.iter().zip(statuses) {
                if status.as_deref() != Some(RUNNING) {
                    stale.insert(id.as_str());
                }
            }
        }
        if stale.is_empty() {
            return Ok(0);
        }
        // One pass over the DAG keys (rather than one SCAN per DAG): `dag:{<id>}:...`.
        let mut cursor = 0_u64;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("dag:{*")
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.error("could not scan for keys of old DAGs", e))?;
            let doomed: Vec<&String> = batch
                .iter()
                .filter(|key| {
                    key.strip_prefix("dag:{")
                        .and_then(|rest| rest.split_once('}'))
                        .is_some_and(|(id, _)| stale.contains(id))
                })
                .collect();
            if !doomed.is_empty() {
                redis::cmd("UNLINK")
                    .arg(&doomed)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(|e| self.error("could not delete keys of old DAGs", e))?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let stale: Vec<&str> = stale.into_iter().collect();
        for batch in stale.chunks(1000) {
            redis::cmd("ZREM")
                .arg("dags")
                .arg(batch)
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| self.error("could not remove old DAGs from `dags`", e))?;
        }
        let mut plans = self.plans();
        for id in &stale {
            plans.remove(&DagId::from(*id));
        }
        Ok(stale.len())
    }
}

fn decode_plan(dag: &DagId, bytes: &[u8]) -> Result<Plan, DagError> {
    rmp_serde::from_slice(bytes).map_err(|e| DagError::Codec {
        action: "decode",
        what: format!("the plan of DAG {dag}"),
        message: e.to_string(),
    })
}

fn decode_outcome(dag: &DagId, bytes: &Bytes) -> Result<Outcome, DagError> {
    match bytes.first() {
        Some(b'S') => Ok(Outcome::Success(bytes.slice(1..))),
        Some(b'F') => serde_json::from_slice::<ErrorJson>(&bytes[1..])
            .map(|e| Outcome::Failed(e.record))
            .map_err(|e| {
                DagError::Store(format!("the failure record of DAG {dag} is not valid: {e}"))
            }),
        _ => Err(DagError::Store(format!(
            "the result list of DAG {dag} holds a value this store did not write"
        ))),
    }
}

/// Turns a redis error into a [`DagError::Redis`] that says what to check.
fn redis_error(addr: &str, action: &str, e: &RedisError) -> DagError {
    let text = e.to_string();
    let hint = if e.kind() == redis::ErrorKind::AuthenticationFailed
        || text.contains("WRONGPASS")
        || text.contains("NOAUTH")
        || text.contains("invalid password")
    {
        "; authentication failed: check the user and password in the URL"
    } else if e.is_connection_refusal() {
        "; is redis-server running and listening there?"
    } else if e.is_timeout() {
        "; the server did not answer in time"
    } else if e.is_connection_dropped() || e.is_io_error() {
        "; the connection was lost: did the server stop?"
    } else {
        ""
    };
    DagError::Redis {
        addr: addr.to_owned(),
        message: format!("{action}: {text}{hint}"),
    }
}

/// `url` with any password replaced by `***`, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://:pw@h:1"), "redis://:***@h:1");
        assert_eq!(redact("redis://u:pw@h:1/2"), "redis://u:***@h:1/2");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn keys_share_the_hash_tag() {
        let keys = Keys::new(&DagId::from("abc"));
        assert_eq!(keys.out(3), "dag:{abc}:out:3");
        assert_eq!(keys.done(4), "dag:{abc}:done:4");
        assert_eq!(keys.key("status"), "dag:{abc}:status");
    }
}
