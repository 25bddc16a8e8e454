//! The server: a loopback listener, one thread per connection, one lock over all data, and
//! the public [`InProcessRedis`] handle (start, URL, restart, stop on drop).

use std::io::{self, BufReader, BufWriter, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::blocking::run_command;
use crate::commands::{Client, Data};
use crate::resp::{read_command, ReadError, Reply};
use crate::scripting::Scripting;

/// How long dropping the server waits for its connection threads to end.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything behind the server's one lock.
pub(crate) struct State {
    /// Keys, scripts, statistics, clients.
    pub(crate) data: Data,
    /// The Lua state (scripts run under the lock, so atomically).
    pub(crate) scripting: Scripting,
}

/// What the listener, the connection threads and the handle share.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Notified after every write: blocked commands look again.
    pub(crate) wake: Condvar,
    stopping: AtomicBool,
    next_client: AtomicU64,
    live_connections: AtomicUsize,
    password: Option<String>,
    port: u16,
}

impl Shared {
    /// Takes the server's lock (a panic in another thread does not poison the server).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the server is shutting down.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn fresh_state(&self) -> State {
        State {
            data: Data::new(self.password.clone(), self.port),
            scripting: Scripting::new(),
        }
    }
}

/// A Redis-compatible server inside the current process, on a free loopback port.
///
/// It speaks RESP2 and RESP3 and implements, with Redis 7.0's replies and errors, the
/// commands of strings, keys with TTLs, hashes, sets, lists (with blocking `BLPOP`), sorted
/// sets, streams with consumer groups, `MULTI`/`EXEC`, Lua scripts (`EVAL`, `EVALSHA`,
/// `SCRIPT`), `AUTH`, `SELECT`, `INFO commandstats`; any other command gets Redis's
/// "unknown command" error. Other processes connect to it by its [`url`](Self::url) like to
/// any Redis. Nothing is written to disk; the server stops when the value is dropped.
///
/// ```
/// use dag_testing::InProcessRedis;
///
/// let redis = InProcessRedis::start()?;
/// let client = redis::Client::open(redis.url()).unwrap();
/// let mut conn = client.get_connection().unwrap();
/// let _: () = redis::cmd("SET").arg("greeting").arg("hello").query(&mut conn).unwrap();
/// let value: String = redis::cmd("GET").arg("greeting").query(&mut conn).unwrap();
/// assert_eq!(value, "hello");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct InProcessRedis {
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl InProcessRedis {
    /// Starts a server without a password on a free port of 127.0.0.1 (never 6379).
    ///
    /// ```
    /// let redis = dag_testing::InProcessRedis::start()?;
    /// assert!(redis.url().starts_with("redis://127.0.0.1:"));
    /// assert_ne!(redis.port(), 6379);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn start() -> io::Result<InProcessRedis> {
        Self::launch(None)
    }

    /// Starts a server that requires `password` (as `redis-server --requirepass`): clients
    /// must `AUTH` first, which the [`url`](Self::url) makes redis-rs do.
    ///
    /// ```
    /// let redis = dag_testing::InProcessRedis::start_with_password("s3cret")?;
    /// assert!(redis.url().starts_with("redis://:s3cret@127.0.0.1:"));
    /// let mut conn = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    /// let pong: String = redis::cmd("PING").query(&mut conn).unwrap();
    /// assert_eq!(pong, "PONG");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn start_with_password(password: impl Into<String>) -> io::Result<InProcessRedis> {
        Self::launch(Some(password.into()))
    }

    fn launch(password: Option<String>) -> io::Result<InProcessRedis> {
        let listener = loop {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            if listener.local_addr()?.port() != 6379 {
                break listener;
            }
        };
        let port = listener.local_addr()?.port();
        let password = password.filter(|p| !p.is_empty());
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                data: Data::new(password.clone(), port),
                scripting: Scripting::new(),
            }),
            wake: Condvar::new(),
            stopping: AtomicBool::new(false),
            next_client: AtomicU64::new(1),
            live_connections: AtomicUsize::new(0),
            password,
            port,
        });
        let accepting = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name(format!("redis-accept-{port}"))
            .spawn(move || accept(listener, accepting))?;
        Ok(InProcessRedis {
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.shared.port)
    }

    /// The URL to connect to: `redis://127.0.0.1:<port>`, with `:<password>@` if it has one;
    /// for `Runtime::builder().redis(..)`, redis-rs, worker processes.
    ///
    /// ```
    /// let redis = dag_testing::InProcessRedis::start()?;
    /// assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn url(&self) -> String {
        match &self.shared.password {
            Some(password) => format!(
                "redis://:{}@127.0.0.1:{}",
                percent_encode(password),
                self.shared.port
            ),
            None => format!("redis://127.0.0.1:{}", self.shared.port),
        }
    }

    /// Restarts the server as one without persistence does: every connection is dropped,
    /// every key and loaded script is lost (`EVALSHA` answers `NOSCRIPT` until the script is
    /// loaded again), statistics are reset; the port, the URL and the password stay.
    ///
    /// ```
    /// let redis = dag_testing::InProcessRedis::start()?;
    /// let mut conn = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    /// let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut conn).unwrap();
    /// redis.restart();
    /// // The old connection was dropped; a new one finds the key gone.
    /// let mut conn = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
    /// let value: Option<String> = redis::cmd("GET").arg("k").query(&mut conn).unwrap();
    /// assert_eq!(value, None);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn restart(&self) {
        let fresh = self.shared.fresh_state();
        let mut state = self.shared.lock();
        disconnect_all(&mut state.data);
        *state = fresh;
        drop(state);
        self.shared.wake.notify_all();
    }

    /// Whether the server answers `PING` on a new connection.
    pub fn ping(&self) -> bool {
        let attempt = || -> io::Result<bool> {
            let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.shared.port))?;
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut request = Vec::new();
            if let Some(password) = &self.shared.password {
                Reply::Array(vec![Reply::bulk("AUTH"), Reply::bulk(password.as_str())])
                    .write_to(&mut request, 2);
            }
            Reply::Array(vec![Reply::bulk("PING")]).write_to(&mut request, 2);
            stream.write_all(&request)?;
            let mut reader = BufReader::new(stream);
            let mut reply = String::new();
            loop {
                reply.clear();
                if io::BufRead::read_line(&mut reader, &mut reply)? == 0 {
                    return Ok(false);
                }
                if reply.starts_with('-') {
                    return Ok(false);
                }
                if reply == "+PONG\r\n" {
                    return Ok(true);
                }
            }
        };
        attempt().unwrap_or(false)
    }
}

impl Drop for InProcessRedis {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the acceptor with a connection of our own, then wait for it.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.shared.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        disconnect_all(&mut self.shared.lock().data);
        self.shared.wake.notify_all();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while self.shared.live_connections.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl std::fmt::Debug for InProcessRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessRedis")
            .field("port", &self.shared.port)
            .field("password", &self.shared.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Drops every client connection (their threads end at their next read or wake-up).
fn disconnect_all(data: &mut Data) {
    for (_, stream) in data.clients.drain() {
        let _ = stream.shutdown(Shutdown::Both);
    }
}

/// Encodes a password for the userinfo part of a URL.
fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Accepts connections until the server stops, one thread each.
fn accept(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.is_stopping() {
            break;
        }
        let Ok(stream) = stream else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let id = shared.next_client.fetch_add(1, Ordering::SeqCst);
        let serving = Arc::clone(&shared);
        shared.live_connections.fetch_add(1, Ordering::SeqCst);
        let spawned = std::thread::Builder::new()
            .name(format!("redis-client-{id}"))
            .spawn(move || {
                serve(&serving, stream, id);
                serving.live_connections.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            shared.live_connections.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Serves one connection: read a command, run it, write its reply (replies to pipelined
/// commands are flushed together).
fn serve(shared: &Shared, stream: TcpStream, id: u64) {
    let (Ok(read_half), Ok(registered)) = (stream.try_clone(), stream.try_clone()) else {
        return;
    };
    let mut client = {
        let mut state = shared.lock();
        if shared.is_stopping() {
            return;
        }
        state.data.clients.insert(id, registered);
        Client::new(id, state.data.requirepass.is_some())
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = BufWriter::new(&stream);
    let mut out = Vec::new();
    loop {
        let args = match read_command(&mut reader) {
            Ok(Some(args)) => args,
            Ok(None) | Err(ReadError::Io) => break,
            Err(ReadError::Protocol(message)) => {
                out.clear();
                Reply::Error(message).write_to(&mut out, client.resp);
                let _ = writer.write_all(&out);
                let _ = writer.flush();
                break;
            }
        };
        if args.is_empty() {
            continue;
        }
        let Some(reply) = run_command(shared, &stream, &mut client, &args) else {
            break;
        };
        out.clear();
        reply.write_to(&mut out, client.resp);
        if writer.write_all(&out).is_err() {
            break;
        }
        if reader.buffer().is_empty() && writer.flush().is_err() {
            break;
        }
        if client.quit {
            break;
        }
    }
    let _ = writer.flush();
    let mut state = shared.lock();
    state.data.clients.remove(&id);
    let _ = stream.shutdown(Shutdown::Both);
}
