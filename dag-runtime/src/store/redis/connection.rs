//! [`RedisConnection`]: the one owner of a store's connections to Redis, their revival after a
//! lost connection, and the mapping of redis errors to [`DagError`]s.
//!
//! Two kinds of connection, both opened and revived here and nowhere else:
//!
//! - the **shared** connection (a multiplexed [`ConnectionManager`]) carries every short
//!   command of the worker steps and the client; it reconnects by itself after an error;
//! - **dedicated** connections ([`Dedicated`]) carry blocking commands (`BLPOP`, `XREADGROUP
//!   ... BLOCK`), which would hold up everyone on a shared one. A dedicated connection that
//!   was lost is opened again by its next send, trying for up to [`RECONNECT_WINDOW`], and
//!   that also wakes the shared connection, so that the next worker step does not fail on a
//!   dead socket.
//!
//! Every request goes through [`RedisConnection::send`] (or [`Dedicated::send`]), so every
//! error is mapped by [`RedisConnection::error`], which says what to check.
//!
//! **Redis Cluster** ([`RedisConnection::open_cluster`]): the shared connection is a
//! [`ClusterConnection`] of redis-rs, which keeps a multiplexed connection per node, routes each
//! command by its key's slot, follows `MOVED`/`ASK`, refreshes the slot map after a resharding
//! or a failover and retries (a bounded number of times, see [`CLUSTER_RETRIES`]). A pipeline
//! goes to one node (the slot of its first keyed command), so every pipeline and script of the
//! store names the keys of one hash tag only; the few commands on keys of several slots
//! (`MGET` of several DAGs' statuses in `gc`, `DEL` of a stream and its metrics key) are single
//! commands, which the cluster connection splits per slot.
//!
//! Blocking commands on a cluster: the cluster connection multiplexes every request to a node
//! over one connection per node, so a `BLPOP` or `XREADGROUP ... BLOCK` sent on the shared one
//! would hold up every later request to that node until it returns (the server answers one
//! connection's requests in order). So a dedicated connection on a cluster is a cluster
//! connection of its own (from a second client whose response timeout covers the blocking
//! time): the blocking command is routed to the master owning its key like any other, and
//! `MOVED`, reconnection and failover are handled by redis-rs as on the shared one, rather than
//! by a hand-made single-node connection that would have to follow the key itself. It costs a
//! connection per master per dedicated connection (a waiting client, a stream reader), which
//! idle connections are kept for.
//!
//! The worker threads' own blocking connections ([`thread_conn`](super::thread_conn)) are not
//! used on a cluster: a request there goes through the cluster connection, which knows where
//! each key lives (correct first; a per-thread connection per node is a possible optimization).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{
    AsyncConnectionConfig, Client, FromRedisValue, IntoConnectionInfo, RedisError, RedisResult,
};

use super::config::RedisConfig;
use super::thread_conn;
use crate::error::DagError;

/// How long a lost dedicated connection is tried again before its send fails: long enough to
/// see a restarting server come back (a restart on the same port takes some milliseconds),
/// short enough that a dead server is still a prompt error.
pub(crate) const RECONNECT_WINDOW: Duration = Duration::from_secs(1);

/// The pause between two attempts to reconnect.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);

/// Idle dedicated connections kept for reuse.
const IDLE_KEPT: usize = 16;

/// How many times the cluster connection retries a request after a redirection it could not
/// follow at once, a lost node or `TRYAGAIN`/`CLUSTERDOWN` (a failover in progress), waiting
/// a random time up to 20 ms, 40 ms, ... up to [`CLUSTER_MAX_RETRY_WAIT_MS`] in between: about
/// 20 s in all on average (at most about 40 s), more than a failover takes with a
/// `cluster-node-timeout` of a few seconds, and still an error rather than a hang for a cluster
/// that stays down.
const CLUSTER_RETRIES: u32 = 25;

/// The longest wait between two retries of a cluster request (ms).
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 2000;

/// One request to Redis: a command, a pipeline or a script invocation.
pub(crate) enum Request<'a> {
    Cmd(&'a redis::Cmd),
    Pipe(&'a redis::Pipeline),
    Script(&'a redis::ScriptInvocation<'a>),
}

impl<'a> From<&'a redis::Cmd> for Request<'a> {
    fn from(cmd: &'a redis::Cmd) -> Self {
        Request::Cmd(cmd)
    }
}

impl<'a> From<&'a mut redis::Cmd> for Request<'a> {
    fn from(cmd: &'a mut redis::Cmd) -> Self {
        Request::Cmd(cmd)
    }
}

impl<'a> From<&'a redis::Pipeline> for Request<'a> {
    fn from(pipe: &'a redis::Pipeline) -> Self {
        Request::Pipe(pipe)
    }
}

impl<'a> From<&'a redis::ScriptInvocation<'a>> for Request<'a> {
    fn from(script: &'a redis::ScriptInvocation<'a>) -> Self {
        Request::Script(script)
    }
}

impl Request<'_> {
    /// Sends the request on a blocking connection (see [`thread_conn`](super::thread_conn)).
    pub(super) fn on_blocking<T: FromRedisValue>(
        &self,
        conn: &mut redis::Connection,
    ) -> RedisResult<T> {
        match self {
            Request::Cmd(cmd) => cmd.query(conn),
            Request::Pipe(pipe) => pipe.query(conn),
            // Loads the script again on NOSCRIPT (a restarted server forgot it).
            Request::Script(script) => script.invoke(conn),
        }
    }

    async fn on<T: FromRedisValue>(
        &self,
        conn: &mut impl redis::aio::ConnectionLike,
    ) -> RedisResult<T> {
        match self {
            Request::Cmd(cmd) => cmd.query_async(conn).await,
            Request::Pipe(pipe) => pipe.query_async(conn).await,
            // Loads the script again on NOSCRIPT (a restarted server forgot it).
            Request::Script(script) => script.invoke_async(conn).await,
        }
    }
}

/// Whether a request may be sent again after the connection dropped under it: one that does
/// the same thing twice (storing a plan, reading outputs) is retried once on the new
/// connection; one that must not run twice (queueing invocations) is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    Once,
    Never,
}

/// The connections of a store to one Redis server or one Redis Cluster: see the
/// [module docs](self).
#[derive(Clone)]
pub(crate) struct RedisConnection {
    inner: Arc<Inner>,
}

/// The server, or the cluster, and the shared connection to it.
enum Backend {
    Server {
        client: Client,
        shared: ConnectionManager,
    },
    Cluster {
        /// Opens the dedicated connections: its response timeout covers a blocking command.
        /// (Boxed: a cluster client is much larger than the server's variant.)
        blocking: Box<ClusterClient>,
        shared: ClusterConnection,
    },
}

/// A dedicated connection: to the server, or a cluster connection of its own.
enum DedicatedConn {
    Server(MultiplexedConnection),
    Cluster(ClusterConnection),
}

struct Inner {
    backend: Backend,
    /// `host:port` (never the password), for error messages; for a cluster, its seed nodes'.
    addr: String,
    config: RedisConfig,
    idle: Mutex<Vec<DedicatedConn>>,
    /// Names this store to the worker threads' own connections
    /// ([`thread_conn`](super::thread_conn)), which close once it is gone.
    token: Arc<()>,
    /// Requests being sent through [`RedisConnection::send`] right now, by any thread.
    sending: AtomicUsize,
}

impl RedisConnection {
    /// Connects to `url`; fails promptly with [`DagError::Redis`] naming the address if the
    /// server is unreachable or refuses the credentials.
    pub(crate) async fn open(url: &str, config: RedisConfig) -> Result<Self, DagError> {
        let invalid = |e: RedisError| DagError::Redis {
            addr: redact(url),
            message: format!("invalid Redis URL: {e}"),
        };
        // Requests are small and each waits for its reply: Nagle's algorithm would only hold
        // back a request written while another one's reply is on its way.
        let info = url.into_connection_info().map_err(invalid)?;
        let tcp = info.tcp_settings().clone().set_nodelay(true);
        let client = Client::open(info.set_tcp_settings(tcp)).map_err(invalid)?;
        let addr = client.get_connection_info().addr().to_string();
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let limit = config.connect_timeout * 2;
        let shared = tokio::time::timeout(
            limit,
            client.get_connection_manager_with_config(manager_config),
        )
        .await
        .map_err(|_| DagError::Redis {
            addr: addr.clone(),
            message: format!(
                "could not connect within {limit:?}; is the address right and the server up?"
            ),
        })?
        .map_err(|e| map_error(&addr, "could not connect", &e))?;
        Ok(Self::with_backend(
            Backend::Server { client, shared },
            addr,
            config,
        ))
    }

    fn with_backend(backend: Backend, addr: String, config: RedisConfig) -> Self {
        RedisConnection {
            inner: Arc::new(Inner {
                backend,
                addr,
                config,
                idle: Mutex::new(Vec::new()),
                token: Arc::new(()),
                sending: AtomicUsize::new(0),
            }),
        }
    }

    /// Connects to the Redis Cluster whose seed nodes are `urls` (any of its nodes; the client
    /// learns the others from them); fails promptly with [`DagError::Redis`] naming the seeds if
    /// none is reachable, or with [`DagError::Runtime`] if `urls` is empty.
    pub(crate) async fn open_cluster(
        urls: &[String],
        config: RedisConfig,
    ) -> Result<Self, DagError> {
        let addr = cluster_addr(urls);
        if urls.is_empty() {
            return Err(DagError::Runtime(
                "a Redis Cluster needs at least one seed node URL (redis://host:port)".into(),
            ));
        }
        let mut infos = Vec::with_capacity(urls.len());
        for url in urls {
            let info = url
                .as_str()
                .into_connection_info()
                .map_err(|e| DagError::Redis {
                    addr: redact(url),
                    message: format!("invalid Redis URL of a cluster seed node: {e}"),
                })?;
            let tcp = info.tcp_settings().clone().set_nodelay(true);
            infos.push(info.set_tcp_settings(tcp));
        }
        let builder = |response: Duration| -> RedisResult<ClusterClient> {
            ClusterClientBuilder::new(infos.clone())
                .connection_timeout(config.connect_timeout)
                .response_timeout(response)
                .retries(CLUSTER_RETRIES)
                .min_retry_wait(10)
                .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
                .build()
        };
        let invalid = |e: RedisError| DagError::Redis {
            addr: addr.clone(),
            message: format!("invalid Redis Cluster configuration: {e}"),
        };
        let client = builder(config.response_timeout).map_err(invalid)?;
        let blocking = builder(config.wait_poll + config.response_timeout).map_err(invalid)?;
        let limit = config.connect_timeout * 2;
        let shared = tokio::time::timeout(limit, client.get_async_connection())
            .await
            .map_err(|_| DagError::Redis {
                addr: addr.clone(),
                message: format!(
                    "could not connect to the cluster within {limit:?}; are the seed addresses \
                     right and the nodes up?"
                ),
            })?
            .map_err(|e| map_error(&addr, "could not connect to the cluster", &e))?;
        Ok(Self::with_backend(
            Backend::Cluster {
                blocking: Box::new(blocking),
                shared,
            },
            addr,
            config,
        ))
    }

    /// Whether this is a connection to a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.inner.backend, Backend::Cluster { .. })
    }

    /// One step of a `SCAN ... MATCH pattern` over every master (one server: the server):
    /// the keys of the next batch, or `None` once every node was scanned. Start with
    /// `ScanState::default()`.
    pub(crate) async fn scan_step(
        &self,
        state: &mut ScanState,
        pattern: &str,
        count: usize,
        action: &str,
    ) -> Result<Option<Vec<String>>, DagError> {
        if state.nodes.is_none() {
            state.nodes = Some(match &self.inner.backend {
                Backend::Server { .. } => vec![None],
                Backend::Cluster { .. } => self.masters().await?.into_iter().map(Some).collect(),
            });
        }
        let nodes = state.nodes.as_ref().map(Vec::len).unwrap_or(0);
        if state.node >= nodes {
            return Ok(None);
        }
        let node = state.nodes.as_ref().and_then(|n| n[state.node].clone());
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(state.cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count);
        let (next, batch): (u64, Vec<String>) = match (&self.inner.backend, node) {
            (Backend::Cluster { shared, .. }, Some((host, port))) => {
                let routing =
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                let value = shared
                    .clone()
                    .route_command(cmd, routing)
                    .await
                    .map_err(|e| self.error(action, e))?;
                redis::from_redis_value(value).map_err(|e| self.error(action, e.into()))?
            }
            _ => self.send(&cmd, Retry::Once, action).await?,
        };
        if next == 0 {
            state.node += 1;
            state.cursor = 0;
        } else {
            state.cursor = next;
        }
        Ok(Some(batch))
    }

    /// `(host, port)` of every master of the cluster, from `CLUSTER SLOTS`.
    async fn masters(&self) -> Result<Vec<(String, u16)>, DagError> {
        let reply: redis::Value = self
            .send(
                redis::cmd("CLUSTER").arg("SLOTS"),
                Retry::Once,
                "could not list the cluster's masters",
            )
            .await?;
        let mut masters = Vec::new();
        if let redis::Value::Array(ranges) = reply {
            for range in ranges {
                let redis::Value::Array(parts) = range else {
                    continue;
                };
                let Some(redis::Value::Array(master)) = parts.get(2) else {
                    continue;
                };
                let host = match master.first() {
                    Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                    Some(redis::Value::SimpleString(s)) => s.clone(),
                    _ => continue,
                };
                let Some(redis::Value::Int(port)) = master.get(1) else {
                    continue;
                };
                let node = (host, *port as u16);
                if !masters.contains(&node) {
                    masters.push(node);
                }
            }
        }
        Ok(masters)
    }

    /// The server's address, `host:port`.
    pub(crate) fn addr(&self) -> &str {
        &self.inner.addr
    }

    pub(crate) fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// A [`DagError::Redis`] for a failed `action` on this server, with a hint of what to check.
    pub(crate) fn error(&self, action: &str, e: RedisError) -> DagError {
        map_error(&self.inner.addr, action, &e)
    }

    /// Sends `request` on the shared connection, or on the calling worker thread's own
    /// connection if it has entered [`ThreadConnections`](super::ThreadConnections); `action`
    /// says what failed if it fails.
    ///
    /// With [`Retry::Once`], a request that fails because the connection dropped (the server
    /// restarted since the last command, say: the first command on the dead socket fails and
    /// starts the reconnection) is sent once more on the new connection.
    pub(crate) async fn send<'a, T: FromRedisValue>(
        &self,
        request: impl Into<Request<'a>>,
        retry: Retry,
        action: &str,
    ) -> Result<T, DagError> {
        let request = request.into();
        let inner = &*self.inner;
        let sending = Sending::start(&inner.sending);
        // Alone, a request goes on the worker thread's own connection (when it has entered
        // `ThreadConnections`): nothing could share its round trip, and skipping the I/O
        // thread halves its latency. Among others in flight, it goes on the shared connection,
        // where concurrent requests travel in one write and their replies in one read: the
        // server spends about as much CPU on each read and write as on a whole completion, so
        // that batching is what keeps its cost per task down.
        let sent = match &inner.backend {
            Backend::Server { client, shared } => {
                let direct = if sending.alone {
                    thread_conn::send(
                        &inner.token,
                        client,
                        &inner.config,
                        &request,
                        retry == Retry::Once,
                    )
                } else {
                    None
                };
                if let Some(sent) = direct {
                    return sent.map_err(|e| self.error(action, e));
                }
                let mut conn = shared.clone();
                match request.on(&mut conn).await {
                    Err(e) if retry == Retry::Once && e.is_connection_dropped() => {
                        request.on(&mut conn).await
                    }
                    sent => sent,
                }
            }
            // The cluster connection reconnects, follows redirections and retries by itself
            // (see the module docs); but not a pipeline whose commands were redirected (a
            // transaction aborted by `MOVED`, a slot migrating), which ran nowhere: see
            // `send_to_cluster`.
            Backend::Cluster { shared, .. } => send_to_cluster(&request, shared).await,
        };
        sent.map_err(|e| self.error(action, e))
    }

    /// A dedicated connection for blocking commands: an idle one, or a new one.
    pub(crate) async fn dedicated(&self) -> Result<Dedicated, DagError> {
        let idle = self.idle().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self
                .open_dedicated()
                .await
                .map_err(|e| self.error("could not open a connection for blocking commands", e))?,
        };
        Ok(Dedicated {
            owner: self.clone(),
            conn: Some(conn),
        })
    }

    fn idle(&self) -> MutexGuard<'_, Vec<DedicatedConn>> {
        self.inner.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn open_dedicated(&self) -> RedisResult<DedicatedConn> {
        let config = &self.inner.config;
        match &self.inner.backend {
            Backend::Server { client, .. } => {
                // A blocking command may legitimately wait its own timeout before the reply.
                let connection = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    .set_response_timeout(Some(config.wait_poll + config.response_timeout));
                client
                    .get_multiplexed_async_connection_with_config(&connection)
                    .await
                    .map(DedicatedConn::Server)
            }
            Backend::Cluster { blocking, .. } => {
                let limit = config.connect_timeout * 2;
                match tokio::time::timeout(limit, blocking.get_async_connection()).await {
                    Ok(conn) => conn.map(DedicatedConn::Cluster),
                    Err(_) => Err(RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "connecting to the cluster timed out",
                    ))),
                }
            }
        }
    }

    /// Wakes the shared connection after a dedicated one was lost.
    async fn ping_shared(&self) {
        let ping = redis::cmd("PING");
        let _ = match &self.inner.backend {
            Backend::Server { shared, .. } => ping.query_async::<()>(&mut shared.clone()).await,
            Backend::Cluster { shared, .. } => ping.query_async::<()>(&mut shared.clone()).await,
        };
    }

    /// A new dedicated connection after one was lost, trying for up to [`RECONNECT_WINDOW`]
    /// (or the connect timeout, if shorter). Once connected, the shared connection is woken
    /// too: idle connections to a server that dropped one are likely dead as well.
    async fn reopen(&self) -> RedisResult<DedicatedConn> {
        self.idle().clear();
        let window = RECONNECT_WINDOW.min(self.inner.config.connect_timeout);
        let deadline = tokio::time::Instant::now() + window;
        loop {
            match self.open_dedicated().await {
                Ok(conn) => {
                    // A PING that fails on a dead shared connection starts its reconnection.
                    self.ping_shared().await;
                    return Ok(conn);
                }
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(RECONNECT_PAUSE).await,
            }
        }
    }
}

/// How many times a pipeline refused by a moving slot is sent again.
const REDIRECTED_RETRIES: u32 = 20;

/// Sends `request` on the cluster connection. A pipeline that the cluster refused because its
/// slot moved or is moving (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`, or a transaction that
/// `EXEC` aborted for one of those) did not run, so it is sent again, whatever its
/// [`Retry`]: first a plain `EXISTS` of its first key teaches the cluster connection where
/// the slot is now (it follows the redirection of a single command and updates its slot map),
/// then the pipeline goes there, with a growing pause (up to 20 times, about 10 s).
async fn send_to_cluster<T: FromRedisValue>(
    request: &Request<'_>,
    shared: &ClusterConnection,
) -> RedisResult<T> {
    let mut conn = shared.clone();
    let mut attempt = 0;
    loop {
        let sent = request.on(&mut conn).await;
        let Request::Pipe(pipe) = request else {
            return sent;
        };
        match sent {
            Err(e) if attempt < REDIRECTED_RETRIES && redirected(&e) => {
                attempt += 1;
                if let Some(key) = first_key(pipe) {
                    let _ = redis::cmd("EXISTS")
                        .arg(key)
                        .query_async::<i64>(&mut conn)
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(25 * u64::from(attempt.min(20)))).await;
            }
            sent => return sent,
        }
    }
}

/// Whether `e` says the request's slot moved or is moving, or the cluster is changing over:
/// the request did not run.
fn redirected(e: &RedisError) -> bool {
    const CODES: [&str; 5] = ["MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "EXECABORT"];
    e.code().is_some_and(|code| CODES.contains(&code))
        || e.clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, e)| CODES.contains(&e.code())))
}

/// The first key of `pipe`: the first argument of its first command (every pipeline of the
/// store starts with a command on a key of its slot).
fn first_key(pipe: &redis::Pipeline) -> Option<Vec<u8>> {
    let cmd = pipe.cmd_iter().next()?;
    match cmd.args_iter().nth(1)? {
        redis::Arg::Simple(key) => Some(key.to_vec()),
        _ => None,
    }
}

/// Counts a request in [`Inner::sending`] while it lives.
struct Sending<'a> {
    count: &'a AtomicUsize,
    /// Whether no other request was being sent when this one started.
    alone: bool,
}

impl<'a> Sending<'a> {
    fn start(count: &'a AtomicUsize) -> Self {
        let alone = count.fetch_add(1, Ordering::Relaxed) == 0;
        Sending { count, alone }
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection of its own for blocking commands. Returned to its owner's idle connections
/// when dropped, unless it was lost.
pub(crate) struct Dedicated {
    owner: RedisConnection,
    /// `None` after the connection failed: the next send opens a new one.
    conn: Option<DedicatedConn>,
}

impl Dedicated {
    /// Sends `request` on this connection, first opening it again if the last send lost it.
    ///
    /// Errors are redis errors, so that the caller can tell the server's answers (`NOGROUP`)
    /// from a lost connection (`into_server_errors` is `None`); it maps them with
    /// [`RedisConnection::error`].
    pub(crate) async fn send<'a, T: FromRedisValue>(
        &mut self,
        request: impl Into<Request<'a>>,
    ) -> RedisResult<T> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.owner.reopen().await?,
        };
        let conn = self.conn.insert(conn);
        let request = request.into();
        let sent = match conn {
            DedicatedConn::Server(conn) => request.on(conn).await,
            DedicatedConn::Cluster(conn) => request.on(conn).await,
        };
        if let Err(e) = &sent {
            if e.clone().into_server_errors().is_none() {
                // Not the server's answer: the connection failed. Open a new one next time.
                self.conn = None;
            }
        }
        sent
    }

    /// The owner, to map errors.
    pub(crate) fn owner(&self) -> &RedisConnection {
        &self.owner
    }
}

impl Drop for Dedicated {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = self.owner.idle();
            if idle.len() < IDLE_KEPT {
                idle.push(conn);
            }
        }
    }
}

/// Turns a redis error into a [`DagError::Redis`] that says what to check.
fn map_error(addr: &str, action: &str, e: &RedisError) -> DagError {
    let text = e.to_string();
    let hint = if e.kind() == redis::ErrorKind::AuthenticationFailed
        || text.contains("WRONGPASS")
        || text.contains("NOAUTH")
        || text.contains("invalid password")
    {
        "; authentication failed: check the user and password in the URL"
    } else if text.to_ascii_uppercase().contains("NOPERM") {
        "; the user lacks a permission: see the README for the ACL a client and a worker need"
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

/// The position of a [`RedisConnection::scan_step`] over the nodes.
#[derive(Default)]
pub(crate) struct ScanState {
    /// The masters to scan (`None` inside: the one server), once known.
    nodes: Option<Vec<Option<(String, u16)>>>,
    /// The node being scanned.
    node: usize,
    cursor: u64,
}

/// How a cluster is named in errors: `cluster of host:port,host:port` (its seeds, without
/// passwords).
fn cluster_addr(urls: &[String]) -> String {
    let seeds: Vec<String> = urls
        .iter()
        .map(|url| {
            let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            rest.split('/').next().unwrap_or(rest).to_owned()
        })
        .collect();
    format!("Redis Cluster {}", seeds.join(","))
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
}
