//! [`TestCluster`]: a throwaway Redis Cluster of 3 masters and 3 replicas on free loopback
//! ports, for the tests of the store on a cluster.
//!
//! Six `redis-server --cluster-enabled yes` processes (nothing written to disk but each node's
//! `nodes-<port>.conf`, in a fresh temporary directory), joined with `redis-cli --cluster create
//! ... --cluster-replicas 1`, ready once `CLUSTER INFO` says `cluster_state:ok` on every node,
//! every node agrees on who serves every slot and every replica is in sync with its master;
//! all killed, and the directory removed, on drop.
//!
//! Without `redis-server` or `redis-cli` on `PATH`, [`TestCluster::start`] returns `None` after
//! printing that the test is skipped (Debian's `redis-server` package carries both), unless
//! `DAG_TEST_REDIS_CLUSTER=1` asks for the cluster: then a missing binary fails the test.
//!
//! ```no_run
//! use dag_test_support::TestCluster;
//!
//! let Some(cluster) = TestCluster::start("my_test") else { return };
//! println!("seed nodes: {:?}", cluster.urls());
//! // The six servers are killed when `cluster` is dropped.
//! ```

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// The environment variable that makes a missing `redis-server`/`redis-cli` fail the cluster
/// tests instead of skipping them (CI sets it where it installed them).
pub const CLUSTER_ENV: &str = "DAG_TEST_REDIS_CLUSTER";

/// Masters of a test cluster; each has one replica.
pub const MASTERS: usize = 3;

/// How long the cluster may take to form (`redis-cli --cluster create`, then every node
/// agreeing): generous, for a loaded 2-core machine.
const FORM_TIMEOUT: Duration = Duration::from_secs(60);

/// `cluster-node-timeout` (ms): short, so that a killed master is noticed and its replica
/// promoted within seconds in the failover tests.
const NODE_TIMEOUT_MS: u64 = 2000;

/// One node of a [`TestCluster`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its node id (40 hex digits).
    pub id: String,
    /// Whether it is a master now (after a failover, a former replica is).
    pub master: bool,
    /// A replica's master's node id.
    pub master_id: Option<String>,
}

/// A Redis Cluster of [`MASTERS`] masters and as many replicas, on free loopback ports, torn
/// down on drop. See the [module docs](self).
pub struct TestCluster {
    children: Vec<(u16, Option<Child>)>,
    dir: PathBuf,
}

/// Whether `program` is on `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Whether the cluster tests must run (see [`CLUSTER_ENV`]).
fn required() -> bool {
    std::env::var(CLUSTER_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Whether a test cluster can be started here: `redis-server` and `redis-cli` are on `PATH`.
/// Otherwise prints that `test` is skipped and returns `false`, or panics if [`CLUSTER_ENV`]
/// asks for the cluster.
pub fn needs_redis_cluster(test: &str) -> bool {
    let missing: Vec<&str> = ["redis-server", "redis-cli"]
        .into_iter()
        .filter(|p| !on_path(p))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let verb = if missing.len() == 1 { "is" } else { "are" };
    if required() {
        panic!(
            "{test}: {CLUSTER_ENV} asks for a Redis Cluster, but {} {verb} not on PATH \
             (Debian/Ubuntu: `apt-get install redis-server`, which has both redis-server and \
             redis-cli)",
            missing.join(" and ")
        );
    }
    println!(
        "{test}: SKIPPED, it needs a Redis Cluster and {} {verb} not on PATH (Debian/Ubuntu: \
         `apt-get install redis-server`)",
        missing.join(" and ")
    );
    false
}

/// A loopback port free now whose cluster bus port (`port + 10000`) is free too.
fn free_cluster_port(taken: &[u16]) -> u16 {
    loop {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("can bind a loopback port");
        let port = listener.local_addr().expect("a bound socket").port();
        if port == 6379 || port > 55_000 || taken.contains(&port) {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl TestCluster {
    /// Starts a cluster for `test`, or returns `None` (having printed why) if `redis-server`
    /// or `redis-cli` is missing; see [`needs_redis_cluster`].
    ///
    /// Panics if the cluster does not form.
    pub fn start(test: &str) -> Option<TestCluster> {
        if !needs_redis_cluster(test) {
            return None;
        }
        // Ports taken between choosing and binding by another test: a few attempts.
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(cluster) => return Some(cluster),
                Err(e) => last = e,
            }
        }
        // (`last` is read below; the loop always runs.)
        panic!("the test Redis Cluster did not form: {last}");
    }

    fn try_start() -> Result<TestCluster, String> {
        let mut ports = Vec::new();
        for _ in 0..MASTERS * 2 {
            let port = free_cluster_port(&ports);
            ports.push(port);
        }
        let dir = std::env::temp_dir().join(format!(
            "dag-test-cluster-{}-{}",
            std::process::id(),
            ports[0]
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let mut cluster = TestCluster {
            children: Vec::new(),
            dir,
        };
        for &port in &ports {
            let child = cluster.spawn(port)?;
            cluster.children.push((port, Some(child)));
        }
        for &port in &ports {
            cluster.wait_for_ping(port)?;
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for &port in &ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        run_redis_cli(
            create.args(["--cluster-replicas", "1", "--cluster-yes"]),
            "create",
        )?;
        cluster.wait_until_ok(FORM_TIMEOUT)?;
        Ok(cluster)
    }

    fn spawn(&self, port: u16) -> Result<Child, String> {
        Command::new("redis-server")
            .arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--cluster-enabled", "yes"])
            .arg("--cluster-config-file")
            .arg(self.dir.join(format!("nodes-{port}.conf")))
            .arg("--cluster-node-timeout")
            .arg(NODE_TIMEOUT_MS.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start redis-server: {e}"))
    }

    fn wait_for_ping(&self, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pong = self
                .query::<String>(port, &redis::cmd("PING"))
                .is_ok_and(|p| p == "PONG");
            if pong {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("redis-server on port {port} did not answer PING"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `cmd` to the node on `port` alone (no redirection).
    pub fn query<T: redis::FromRedisValue>(
        &self,
        port: u16,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        cmd.query(&mut conn)
    }

    /// Waits until every live node says `cluster_state:ok` and all of them agree on the
    /// masters serving the 16,384 slots.
    pub fn wait_until_ok(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.check_ok() {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() > deadline {
                return Err(format!("the cluster is not ok after {timeout:?}: {last}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn check_ok(&self) -> Result<(), String> {
        let mut views = Vec::new();
        for port in self.live_ports() {
            let info: String = self
                .query(port, redis::cmd("CLUSTER").arg("INFO"))
                .map_err(|e| format!("CLUSTER INFO on {port}: {e}"))?;
            if !info.contains("cluster_state:ok") {
                return Err(format!("node {port} is not ok yet"));
            }
            let slots: redis::Value = self
                .query(port, redis::cmd("CLUSTER").arg("SLOTS"))
                .map_err(|e| format!("CLUSTER SLOTS on {port}: {e}"))?;
            views.push(slot_owners(&slots));
            // Roles travel by gossip: wait until this node sees every replica as one.
            let text: String = self
                .query(port, redis::cmd("CLUSTER").arg("NODES"))
                .map_err(|e| format!("CLUSTER NODES on {port}: {e}"))?;
            let live = self.live_ports();
            let masters = parse_nodes(&text)
                .iter()
                .filter(|n| n.master && live.contains(&n.port))
                .count();
            if masters != MASTERS {
                return Err(format!("node {port} sees {masters} masters"));
            }
            // A replica that has not finished its first sync cannot take over (its data is
            // too old for an election): wait until each is in sync with its master.
            let replication: String = self
                .query(port, redis::cmd("INFO").arg("replication"))
                .map_err(|e| format!("INFO replication on {port}: {e}"))?;
            if replication.contains("role:slave") && !replication.contains("master_link_status:up")
            {
                return Err(format!("replica {port} is not in sync with its master yet"));
            }
        }
        let first = views.first().ok_or("no node is alive")?;
        if first.iter().map(|(a, b, _)| b - a + 1).sum::<u64>() != 16_384 {
            return Err("the slots are not all assigned yet".into());
        }
        if views.iter().any(|v| v != first) {
            return Err("the nodes do not agree on the slots yet".into());
        }
        Ok(())
    }

    fn live_ports(&self) -> Vec<u16> {
        self.children
            .iter()
            .filter(|(_, c)| c.is_some())
            .map(|(p, _)| *p)
            .collect()
    }

    /// `redis://127.0.0.1:<port>` of every node started (the seed nodes of a client).
    pub fn urls(&self) -> Vec<String> {
        self.children
            .iter()
            .map(|(p, _)| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// The nodes alive now, as the first live node describes them (`CLUSTER NODES`).
    pub fn nodes(&self) -> Vec<ClusterNode> {
        for port in self.live_ports() {
            if let Ok(text) = self.query::<String>(port, redis::cmd("CLUSTER").arg("NODES")) {
                return parse_nodes(&text)
                    .into_iter()
                    .filter(|n| self.live_ports().contains(&n.port))
                    .collect();
            }
        }
        Vec::new()
    }

    /// The ports of the masters alive now.
    pub fn master_ports(&self) -> Vec<u16> {
        self.nodes()
            .into_iter()
            .filter(|n| n.master)
            .map(|n| n.port)
            .collect()
    }

    /// The number of keys on the node on `port` that match `pattern` (`SCAN` on that node).
    pub fn keys_on(&self, port: u16, pattern: &str) -> Vec<String> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let mut conn = client.get_connection().unwrap();
        crate::keys_matching(&mut conn, pattern)
    }

    /// Every key matching `pattern` on every master, sorted.
    pub fn keys_matching(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .master_ports()
            .into_iter()
            .flat_map(|port| self.keys_on(port, pattern))
            .collect();
        keys.sort();
        keys
    }

    /// Kills the node on `port` (SIGKILL), as a crash would.
    pub fn kill(&mut self, port: u16) {
        if let Some((_, child)) = self.children.iter_mut().find(|(p, _)| *p == port) {
            if let Some(mut child) = child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Promotes the replica on `port` with `CLUSTER FAILOVER` (`FORCE` if its master is dead:
    /// add `force`), and waits until it is a master and the cluster is ok again.
    pub fn failover(&self, port: u16, force: bool) -> Result<(), String> {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("FAILOVER");
        if force {
            cmd.arg("FORCE");
        }
        self.query::<()>(port, &cmd)
            .map_err(|e| format!("CLUSTER FAILOVER on {port}: {e}"))?;
        let deadline = Instant::now() + FORM_TIMEOUT;
        loop {
            let promoted = self.nodes().iter().any(|n| n.port == port && n.master);
            if promoted && self.check_ok().is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("the replica on {port} was not promoted in time"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Moves `slots` hash slots from the master on `from` to the master on `to` with
    /// `redis-cli --cluster reshard` (keys migrate one by one: clients see `ASK` and `MOVED`
    /// meanwhile), and waits until the cluster is ok again.
    pub fn reshard(&self, from: u16, to: u16, slots: usize) -> Result<(), String> {
        let nodes = self.nodes();
        let id = |port: u16| {
            nodes
                .iter()
                .find(|n| n.port == port)
                .map(|n| n.id.clone())
                .ok_or_else(|| format!("no node on port {port}"))
        };
        run_redis_cli(
            Command::new("redis-cli")
                .arg("--cluster")
                .arg("reshard")
                .arg(format!("127.0.0.1:{from}"))
                .args(["--cluster-from", &id(from)?, "--cluster-to", &id(to)?])
                .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
                .args(["--cluster-pipeline", "10"]),
            "reshard",
        )?;
        self.wait_until_ok(FORM_TIMEOUT)
    }

    /// The port of the master serving hash slot `slot`.
    pub fn owner_of(&self, slot: u16) -> Option<u16> {
        let port = *self.live_ports().first()?;
        let slots: redis::Value = self.query(port, redis::cmd("CLUSTER").arg("SLOTS")).ok()?;
        slot_owners(&slots)
            .into_iter()
            .find(|(first, last, _)| (*first..=*last).contains(&u64::from(slot)))
            .map(|(_, _, port)| port)
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &str) -> u16 {
        let port = self.live_ports()[0];
        self.query(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .expect("CLUSTER KEYSLOT answers")
    }

    /// Moves hash slot `slot`, with its keys, to the master on `to`, as `redis-cli --cluster
    /// reshard` does for each slot (`SETSLOT IMPORTING/MIGRATING`, `MIGRATE`, `SETSLOT NODE`
    /// on every master); clients that knew the old owner get `MOVED` next time.
    pub fn move_slot(&self, slot: u16, to: u16) -> Result<(), String> {
        let from = self.owner_of(slot).ok_or("nobody serves the slot")?;
        if from == to {
            return Ok(());
        }
        let nodes = self.nodes();
        let id = |port: u16| {
            nodes
                .iter()
                .find(|n| n.port == port)
                .map(|n| n.id.clone())
                .ok_or_else(|| format!("no node on port {port}"))
        };
        let (from_id, to_id) = (id(from)?, id(to)?);
        let setslot = |port: u16, args: &[&str]| {
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("SETSLOT").arg(slot).arg(args);
            self.query::<()>(port, &cmd)
                .map_err(|e| format!("CLUSTER SETSLOT {slot} {args:?} on {port}: {e}"))
        };
        setslot(to, &["IMPORTING", &from_id])?;
        setslot(from, &["MIGRATING", &to_id])?;
        loop {
            let keys: Vec<String> = self
                .query(
                    from,
                    redis::cmd("CLUSTER")
                        .arg("GETKEYSINSLOT")
                        .arg(slot)
                        .arg(100),
                )
                .map_err(|e| format!("GETKEYSINSLOT: {e}"))?;
            if keys.is_empty() {
                break;
            }
            let mut migrate = redis::cmd("MIGRATE");
            migrate
                .arg("127.0.0.1")
                .arg(to)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys);
            self.query::<()>(from, &migrate)
                .map_err(|e| format!("MIGRATE: {e}"))?;
        }
        for port in self.master_ports() {
            setslot(port, &["NODE", &to_id])?;
        }
        self.wait_until_ok(FORM_TIMEOUT)
    }

    /// The port of a replica of the master on `master_port`.
    pub fn replica_of(&self, master_port: u16) -> Option<u16> {
        let nodes = self.nodes();
        let master = nodes.iter().find(|n| n.port == master_port)?;
        nodes
            .iter()
            .find(|n| n.master_id.as_deref() == Some(master.id.as_str()))
            .map(|n| n.port)
    }
}

/// `(first slot, last slot, master port)` of each range in a `CLUSTER SLOTS` reply, sorted.
fn slot_owners(reply: &redis::Value) -> Vec<(u64, u64, u16)> {
    let redis::Value::Array(ranges) = reply else {
        return Vec::new();
    };
    let mut owners: Vec<(u64, u64, u16)> = ranges
        .iter()
        .filter_map(|range| {
            let redis::Value::Array(parts) = range else {
                return None;
            };
            let int = |v: &redis::Value| match v {
                redis::Value::Int(n) => Some(*n),
                _ => None,
            };
            let first = int(parts.first()?)?;
            let last = int(parts.get(1)?)?;
            let redis::Value::Array(master) = parts.get(2)? else {
                return None;
            };
            let port = int(master.get(1)?)?;
            Some((first as u64, last as u64, port as u16))
        })
        .collect();
    owners.sort();
    owners
}

/// The nodes of a `CLUSTER NODES` reply.
fn parse_nodes(text: &str) -> Vec<ClusterNode> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let id = (*fields.first()?).to_owned();
            let addr = fields.get(1)?;
            let port = addr.split('@').next()?.rsplit(':').next()?.parse().ok()?;
            let flags = fields.get(2)?;
            if flags.contains("fail") && !flags.contains("fail?") {
                return None;
            }
            let master = flags.split(',').any(|f| f == "master");
            let master_id = fields
                .get(3)
                .filter(|m| **m != "-")
                .map(|m| (*m).to_owned());
            Some(ClusterNode {
                port,
                id,
                master,
                master_id,
            })
        })
        .collect()
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            if let Some(mut child) = child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The pids of the shared cluster's servers, killed when the test process exits.
static SHARED_PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

extern "C" fn kill_shared() {
    let pids = SHARED_PIDS.lock().map(|p| p.clone()).unwrap_or_default();
    for pid in pids {
        // SAFETY: kill(2) on a pid this process started; no memory is touched.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

static SHARED: LazyLock<Option<TestCluster>> = LazyLock::new(|| {
    let cluster = TestCluster::start("the shared test cluster")?;
    let pids: Vec<u32> = cluster
        .children
        .iter()
        .filter_map(|(_, c)| c.as_ref().map(Child::id))
        .collect();
    *SHARED_PIDS.lock().unwrap_or_else(|e| e.into_inner()) = pids;
    // SAFETY: registers a plain function without captures; atexit runs it at `exit`.
    unsafe {
        libc::atexit(kill_shared);
    }
    Some(cluster)
});

impl TestCluster {
    /// One cluster shared by every test of this process that asks for it (started on first
    /// use, killed when the process exits), or `None` (having printed why) where it cannot
    /// run. For tests that only add DAGs of their own; tests that kill nodes start their own.
    pub fn shared(test: &str) -> Option<&'static TestCluster> {
        if !needs_redis_cluster(test) {
            return None;
        }
        SHARED.as_ref()
    }
}

/// Runs `redis-cli --cluster <what> ...` (`command`), failing with its output if it fails.
fn run_redis_cli(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run redis-cli: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "redis-cli --cluster {what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_are_parsed() {
        let text = "a1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460\n\
                    b2 127.0.0.1:30004@40004 slave a1 0 1 4 connected\n\
                    c3 127.0.0.1:30002@40002 master,fail - 0 1 2 disconnected\n";
        let nodes = parse_nodes(text);
        assert_eq!(nodes.len(), 2);
        assert!(nodes[0].master && nodes[0].port == 30001);
        assert_eq!(nodes[1].master_id.as_deref(), Some("a1"));
    }
}
