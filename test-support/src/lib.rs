//! Test helpers of the `dag` workspace (not published; a dev-dependency only).
//!
//! - [`RedisServer`] starts a throwaway `redis-server` on a free port, so that tests are
//!   isolated from each other and never touch a server on the default port 6379.
//! - [`harness`]: one libtest-style front end ([`run_tests`], [`tests!`]) for the test
//!   executables with their own `main` (`harness = false`), such as the process tests that are
//!   also the worker processes they start.
//! - [`worker_process`]: [`WorkerProcess`] starts worker processes by hand, with the
//!   environment a worker reads ([`dag_workers::env`]), and kills them when dropped.
//! - [`tree`]: [`reduce_pairwise`] builds a tree reduction from leaves and a combining task;
//!   [`sum_1_to`] is the value the tests' trees add up to.
//! - [`keys`]: [`keys_matching`] lists the keys on a server that match a pattern (what a DAG
//!   left behind), over a [`connect`]ion.
//!
//! This crate depends on `dag-workers` (for the environment's names) but not on the root `dag`
//! crate: `#[task]` expands to `::dag::...` paths, so the tasks stay in the tests, and a
//! dev-dependency cycle through `dag` would build it twice.
//!
//! ```no_run
//! use dag_test_support::RedisServer;
//!
//! let server = RedisServer::start();
//! println!("connect to {}", server.url());
//! // The server is killed when `server` is dropped.
//! ```

pub mod harness;
pub mod keys;
pub mod tree;
pub mod worker_process;

pub use harness::{run_tests, Test};
pub use keys::{connect, keys_matching};
pub use tree::{reduce_pairwise, sum_1_to};
pub use worker_process::{WorkerBuilder, WorkerProcess};

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a freshly started server may take to answer `PING`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` child process on a free loopback port, killed on drop.
///
/// It runs with `--save "" --appendonly no` (nothing written to disk) in a fresh temporary
/// directory. Panics with a message saying how to install `redis-server` if it is not on `PATH`.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    password: Option<String>,
    dir: PathBuf,
    /// The extra arguments it was started with, to start it again the same way.
    args: Vec<String>,
}

impl RedisServer {
    /// Starts a server with no password.
    ///
    /// ```no_run
    /// let server = dag_test_support::RedisServer::start();
    /// assert!(server.url().starts_with("redis://127.0.0.1:"));
    /// ```
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// Starts a server with extra command-line arguments, e.g. `["--requirepass", "secret"]`.
    ///
    /// A `--requirepass` argument is remembered, so that [`url`](Self::url) includes the
    /// password and the readiness `PING` authenticates.
    ///
    /// ```no_run
    /// let server = dag_test_support::RedisServer::start_with_args(&["--requirepass", "s3cret"]);
    /// assert!(server.url().starts_with("redis://:s3cret@127.0.0.1:"));
    /// ```
    pub fn start_with_args(args: &[&str]) -> Self {
        let password = args
            .windows(2)
            .find(|w| w[0] == "--requirepass")
            .map(|w| w[1].to_owned());
        // A port that was free a moment ago can be taken by another test before the server
        // binds it; a few attempts make that race harmless.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir =
                std::env::temp_dir().join(format!("dag-test-redis-{}-{port}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
            let mut server = RedisServer {
                child: Some(spawn(port, &dir, &args)),
                port,
                password: password.clone(),
                dir,
                args,
            };
            match server.wait_until_ready() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut out = String::new();
                    if let Some(mut stdout) = child.stdout.take() {
                        let _ = stdout.read_to_string(&mut out);
                    }
                    if let Some(mut stderr) = child.stderr.take() {
                        let _ = stderr.read_to_string(&mut out);
                    }
                    self.child = None;
                    return Err(format!("it exited with {status}: {}", out.trim()));
                }
            }
            if self.ping() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "it did not answer PING on port {} within {STARTUP_TIMEOUT:?}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server answers `PING` (authenticating first if it has a password).
    pub fn ping(&self) -> bool {
        let attempt = || -> std::io::Result<bool> {
            let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))?;
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            if let Some(password) = &self.password {
                write!(
                    stream,
                    "*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n",
                    password.len()
                )?;
            }
            stream.write_all(b"*1\r\n$4\r\nPING\r\n")?;
            let mut reply = Vec::new();
            let mut buf = [0; 64];
            while !reply.ends_with(b"+PONG\r\n") {
                let n = stream.read(&mut buf)?;
                if n == 0 {
                    return Ok(false);
                }
                reply.extend_from_slice(&buf[..n]);
                if reply.starts_with(b"-") {
                    return Ok(false);
                }
            }
            Ok(true)
        };
        attempt().unwrap_or(false)
    }

    /// The port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`, with `:<password>@` if the server requires one.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// `127.0.0.1:<port>`, as error messages name the server.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the server now (to test what clients do when it goes away).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts a new one on the same port with the same arguments, and
    /// waits until it answers `PING`: a restart that loses every key, as a server without
    /// persistence (`--save "" --appendonly no`) does. Clients connected before see their
    /// connections drop; the URL stays valid.
    ///
    /// Panics if the new server does not start (for example if another process took the port
    /// in the meantime).
    ///
    /// ```no_run
    /// let mut server = dag_test_support::RedisServer::start();
    /// let url = server.url();
    /// server.restart();
    /// assert_eq!(server.url(), url);
    /// assert!(server.ping());
    /// ```
    pub fn restart(&mut self) {
        self.kill();
        // The old server's listening socket is closed once it is dead; a few attempts cover a
        // kernel that is slow to release the port.
        let mut last_error = String::new();
        for _ in 0..5 {
            self.child = Some(spawn(self.port, &self.dir, &self.args));
            match self.wait_until_ready() {
                Ok(()) => return,
                Err(e) => last_error = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "redis-server did not start again on port {}: {last_error}",
            self.port
        );
    }
}

/// Starts `redis-server` on `port` with nothing written to disk, in `dir`, with `args`.
fn spawn(port: u16, dir: &Path, args: &[String]) -> Child {
    let child = Command::new("redis-server")
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "redis-server is not on PATH: the Redis tests start their own server. \
             Install it (Debian/Ubuntu: `apt-get install redis-server`) and retry."
        ),
        Err(e) => panic!("could not start redis-server: {e}"),
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nobody listens on right now, from the kernel's ephemeral range (never 6379).
fn free_port() -> u16 {
    loop {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("can bind a loopback port");
        let port = listener
            .local_addr()
            .expect("a bound socket has an address")
            .port();
        if port != 6379 {
            return port;
        }
    }
}
