//! Test helpers of the `dag` workspace (not published; a dev-dependency only).
//!
//! - [`TestRedis`] is the Redis a test runs on: the in-process server of `dag-testing`
//!   ([`InProcessRedis`], nothing to install) or a throwaway `redis-server` on a free port
//!   ([`RedisServer`]); never a server on the default port 6379. Which one, [`Backend`] says:
//!   tests that need *a* Redis use [`TestRedis::start`], the in-process server; the suites that
//!   check the Redis code path against Redis itself (the store conformance suite, the fault
//!   and worker-process tests) run each test on every backend of [`backends`] (the in-process
//!   server, and `redis-server` too when it is on `PATH`) with [`on_each_backend`] or the
//!   [`harness`]; `DAG_TEST_REDIS=inprocess|real|both` overrides both choices. Tests of
//!   `redis-server`'s own features (ACL rules, SLOWLOG) use [`RedisServer`] after
//!   [`needs_redis_server`].
//! - [`cluster`]: [`TestCluster`], a throwaway Redis Cluster (3 masters, 3 replicas) on free
//!   ports, skipped with a message where `redis-server` or `redis-cli` is missing.
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

pub mod cluster;
pub mod harness;
pub mod keys;
pub mod tree;
pub mod worker_process;

pub use cluster::{needs_redis_cluster, ClusterNode, TestCluster};
pub use harness::{run_tests, Test};
pub use keys::{connect, info_number, keys_matching};
pub use tree::{reduce_pairwise, sum_1_to};
pub use worker_process::{WorkerBuilder, WorkerProcess};

use std::cell::Cell;
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
            "redis-server is not on PATH, and this test needs it ({BACKEND_ENV} or a test of \
             redis-server's own features). Install it (Debian/Ubuntu: `apt-get install \
             redis-server`) or unset {BACKEND_ENV}: the tests then run on the in-process Redis."
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

pub use dag_testing::InProcessRedis;

/// The environment variable that chooses the Redis the tests run on:
/// `inprocess`, `real` or `both`.
pub const BACKEND_ENV: &str = "DAG_TEST_REDIS";

/// A kind of Redis server the tests can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `dag_testing::InProcessRedis`, inside the test process.
    InProcess,
    /// A `redis-server` child process.
    Real,
}

impl Backend {
    /// `in-process Redis` or `redis-server`, for test output.
    pub fn name(self) -> &'static str {
        match self {
            Backend::InProcess => "in-process Redis",
            Backend::Real => "redis-server",
        }
    }
}

/// Whether a `redis-server` binary is on `PATH`.
pub fn redis_server_on_path() -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("redis-server").is_file())
    })
}

fn backend_override() -> Option<Vec<Backend>> {
    let value = std::env::var(BACKEND_ENV).ok()?;
    match value.trim().to_ascii_lowercase().as_str() {
        "" => None,
        "inprocess" | "in-process" => Some(vec![Backend::InProcess]),
        "real" => Some(vec![Backend::Real]),
        "both" => Some(vec![Backend::InProcess, Backend::Real]),
        other => panic!("{BACKEND_ENV}={other}: expected `inprocess`, `real` or `both`"),
    }
}

/// The backends the suites that compare against Redis run on: the in-process server, and
/// `redis-server` too if it is on `PATH`; [`BACKEND_ENV`] overrides.
pub fn backends() -> Vec<Backend> {
    backend_override().unwrap_or_else(|| {
        if redis_server_on_path() {
            vec![Backend::InProcess, Backend::Real]
        } else {
            vec![Backend::InProcess]
        }
    })
}

/// The backend of a test that needs one Redis: the in-process server, unless
/// [`BACKEND_ENV`] says `real`.
pub fn default_backend() -> Backend {
    backend_override()
        .and_then(|b| b.first().copied())
        .unwrap_or(Backend::InProcess)
}

/// The backend of the benchmarks: `redis-server` when it is on `PATH` (their figures are
/// about Redis), else the in-process server; [`BACKEND_ENV`] overrides.
pub fn benchmark_backend() -> Backend {
    backend_override()
        .and_then(|b| b.first().copied())
        .unwrap_or(if redis_server_on_path() {
            Backend::Real
        } else {
            Backend::InProcess
        })
}

thread_local! {
    static CURRENT: Cell<Option<Backend>> = const { Cell::new(None) };
}

/// Runs `check` once per backend of [`backends`], each time with [`TestRedis::start`] on this
/// thread starting that backend; prints which backend runs.
pub fn on_each_backend(check: impl Fn(Backend)) {
    for backend in backends() {
        eprintln!("-- on {}", backend.name());
        with_backend(backend, || check(backend));
    }
}

/// Runs `f` with [`TestRedis::start`] on this thread starting `backend`.
pub fn with_backend<R>(backend: Backend, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Backend>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(Some(backend))));
    f()
}

/// Whether a test of `redis-server`'s own features (ACL rules, SLOWLOG) can run: `redis-server`
/// is on `PATH`, or [`BACKEND_ENV`] asks for it (then a missing one fails the test). Otherwise
/// prints that `test` is skipped.
pub fn needs_redis_server(test: &str) -> bool {
    if redis_server_on_path() || backends().contains(&Backend::Real) {
        return true;
    }
    println!("{test}: SKIPPED, it checks redis-server itself and redis-server is not on PATH");
    false
}

/// The backend [`TestRedis::start`] starts on this thread.
pub fn current_backend() -> Backend {
    CURRENT.with(|c| c.get()).unwrap_or_else(default_backend)
}

enum Running {
    InProcess(InProcessRedis),
    Real(RedisServer),
}

/// A Redis server for one test, of either [`Backend`], stopped on drop.
pub struct TestRedis {
    backend: Backend,
    server: Option<Running>,
    url: String,
    port: u16,
}

impl TestRedis {
    /// Starts a server of the [`current_backend`].
    ///
    /// Panics if it does not start.
    pub fn start() -> TestRedis {
        Self::start_on(current_backend(), None)
    }

    /// Starts a server of the [`current_backend`] that requires `password`.
    pub fn start_with_password(password: &str) -> TestRedis {
        Self::start_on(current_backend(), Some(password))
    }

    /// Starts a server of `backend`, with `password` if given.
    pub fn start_on(backend: Backend, password: Option<&str>) -> TestRedis {
        let server = match backend {
            Backend::InProcess => Running::InProcess(
                match password {
                    Some(p) => InProcessRedis::start_with_password(p),
                    None => InProcessRedis::start(),
                }
                .unwrap_or_else(|e| panic!("the in-process Redis did not start: {e}")),
            ),
            Backend::Real => Running::Real(match password {
                Some(p) => RedisServer::start_with_args(&["--requirepass", p]),
                None => RedisServer::start(),
            }),
        };
        let (url, port) = match &server {
            Running::InProcess(s) => (s.url(), s.port()),
            Running::Real(s) => (s.url(), s.port()),
        };
        TestRedis {
            backend,
            server: Some(server),
            url,
            port,
        }
    }

    /// Which kind of server this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// `redis://127.0.0.1:<port>`, with `:<password>@` if the server requires one.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`, as error messages name the server.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Whether the server answers `PING`.
    pub fn ping(&self) -> bool {
        match &self.server {
            Some(Running::InProcess(s)) => s.ping(),
            Some(Running::Real(s)) => s.ping(),
            None => false,
        }
    }

    /// Stops the server now (to test what clients do when it goes away).
    pub fn kill(&mut self) {
        match self.server.take() {
            Some(Running::Real(mut s)) => s.kill(),
            Some(Running::InProcess(s)) => drop(s),
            None => {}
        }
    }

    /// Restarts the server on the same port, losing every key and script, as a server
    /// without persistence does; connected clients see their connections drop.
    pub fn restart(&mut self) {
        match &mut self.server {
            Some(Running::InProcess(s)) => s.restart(),
            Some(Running::Real(s)) => s.restart(),
            None => panic!("restart of a killed test server"),
        }
    }
}
