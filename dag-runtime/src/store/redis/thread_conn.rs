//! Connections owned by worker threads: a worker step's round trip goes from the worker thread
//! straight to the socket and back, with no hand-off to the I/O runtime's thread.
//!
//! Why: a worker thread waits for every store call anyway (`block_on`). Through the shared
//! multiplexed connection, one round trip costs two thread hand-offs on top of the network
//! (the worker wakes the I/O thread, which writes; the I/O thread reads the reply and wakes
//! the worker), and on a busy 2-core machine each wake-up can wait for a core. A blocking
//! connection per worker thread makes the round trip one `write` and one `read` on the thread
//! that waits for it.
//!
//! It is used only for a request that is alone in flight on its store (a chain, a quiet
//! moment): among concurrent requests the shared connection is the better road, because it
//! carries them to the server in one write and their replies back in one read, and the
//! server's CPU per read and write is as large as that of a whole completion script
//! ([`RedisConnection::send`](super::connection::RedisConnection::send) decides).
//!
//! A thread opts in with [`ThreadConnections::enter`] (the worker threads of a pool, in this
//! process or in a worker process); other threads (a client's, the I/O runtime's) keep the
//! shared connection, where blocking would hold up other futures. The connection of a thread
//! is opened on its first store call, one per store and thread, and closed when the thread
//! ends (or leaves with its guard) or when its store is gone. A connection that fails is
//! dropped and opened again by the next call, like the shared one.

use std::cell::{Cell, RefCell};
use std::sync::{Arc, Weak};

use redis::{Client, FromRedisValue, RedisResult};

use super::config::RedisConfig;
use super::connection::Request;

thread_local! {
    /// Whether this thread's store calls may block it on a connection of its own.
    static ENTERED: Cell<bool> = const { Cell::new(false) };
    /// This thread's connections, one per store (identified by its connection owner).
    static CONNECTIONS: RefCell<Vec<(Weak<()>, redis::Connection)>> =
        const { RefCell::new(Vec::new()) };
}

/// While alive, the calling thread sends the Redis store's short commands on blocking
/// connections of its own (see the docs of `store/redis/thread_conn.rs`). For threads that
/// only wait on store calls and run task bodies, never for threads that run async code
/// concurrently.
///
/// ```
/// use dag_runtime::store::ThreadConnections;
///
/// std::thread::spawn(|| {
///     let _direct = ThreadConnections::enter();
///     // ... run worker steps on this thread ...
/// })
/// .join()
/// .unwrap();
/// ```
#[must_use = "the thread uses its own connections only while the guard lives"]
pub struct ThreadConnections {
    was: bool,
}

impl ThreadConnections {
    /// Lets the calling thread use connections of its own until the guard is dropped.
    pub fn enter() -> Self {
        ThreadConnections {
            was: ENTERED.replace(true),
        }
    }
}

impl Drop for ThreadConnections {
    fn drop(&mut self) {
        ENTERED.set(self.was);
        if !self.was {
            // Closed now rather than when the thread ends.
            let _ = CONNECTIONS.try_with(|c| c.borrow_mut().clear());
        }
    }
}

/// Sends `request` on this thread's connection to the store `owner` identifies, if this
/// thread entered [`ThreadConnections`]; `None` if it did not (send it on the shared one).
///
/// A connection that failed (not an answer of the server) is dropped; with `retry_dropped`, a
/// request that failed because the connection dropped is sent once more on a new one.
pub(super) fn send<T: FromRedisValue>(
    owner: &Arc<()>,
    client: &Client,
    config: &RedisConfig,
    request: &Request<'_>,
    retry_dropped: bool,
) -> Option<RedisResult<T>> {
    if !ENTERED.with(Cell::get) {
        return None;
    }
    CONNECTIONS
        .try_with(|connections| {
            let mut connections = connections.borrow_mut();
            // Stores dropped since: close their connections.
            connections.retain(|(store, _)| store.strong_count() > 0);
            let mut sent = send_once(&mut connections, owner, client, config, request);
            if let Err(e) = &sent {
                if retry_dropped && e.is_connection_dropped() {
                    sent = send_once(&mut connections, owner, client, config, request);
                }
            }
            sent
        })
        .ok()
}

fn send_once<T: FromRedisValue>(
    connections: &mut Vec<(Weak<()>, redis::Connection)>,
    owner: &Arc<()>,
    client: &Client,
    config: &RedisConfig,
    request: &Request<'_>,
) -> RedisResult<T> {
    let position = match connections
        .iter()
        .position(|(store, _)| std::ptr::eq(store.as_ptr(), Arc::as_ptr(owner)))
    {
        Some(position) => position,
        None => {
            connections.push((Arc::downgrade(owner), open(client, config)?));
            connections.len() - 1
        }
    };
    let sent = request.on_blocking(&mut connections[position].1);
    if let Err(e) = &sent {
        if e.clone().into_server_errors().is_none() {
            // Not the server's answer: the connection failed. Open a new one next time.
            connections.swap_remove(position);
        }
    }
    sent
}

fn open(client: &Client, config: &RedisConfig) -> RedisResult<redis::Connection> {
    let conn = client.get_connection_with_timeout(config.connect_timeout)?;
    conn.set_read_timeout(Some(config.response_timeout))?;
    conn.set_write_timeout(Some(config.response_timeout))?;
    Ok(conn)
}
