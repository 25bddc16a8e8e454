//! Looking at the keys a test leaves on its Redis server: a plain connection, and every key that
//! matches a pattern.
//!
//! ```no_run
//! use dag_test_support::keys::{connect, keys_matching};
//! use dag_test_support::RedisServer;
//!
//! let server = RedisServer::start();
//! let mut conn = connect(&server.url());
//! assert_eq!(keys_matching(&mut conn, "dag:{*"), Vec::<String>::new());
//! ```

/// How many keys one `SCAN` step looks at.
const SCAN_COUNT: usize = 1000;

/// A synchronous connection to the server at `url`, for a test to inspect it.
///
/// Panics naming `url` if the server cannot be reached.
///
/// ```no_run
/// let server = dag_test_support::RedisServer::start();
/// let mut conn = dag_test_support::keys::connect(&server.url());
/// let pong: String = redis::cmd("PING").query(&mut conn).unwrap();
/// assert_eq!(pong, "PONG");
/// ```
pub fn connect(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .and_then(|client| client.get_connection())
        .unwrap_or_else(|e| panic!("a test connection to the Redis server at {url}: {e}"))
}

/// Every key that matches the glob-style `pattern` (`*` for all, `dag:{<id>}:*` for one DAG's),
/// sorted, found with `SCAN ... MATCH` (which, unlike `KEYS`, does not block the server).
///
/// Panics if the server does not answer `SCAN`.
///
/// ```no_run
/// let server = dag_test_support::RedisServer::start();
/// let mut conn = dag_test_support::keys::connect(&server.url());
/// let _: () = redis::cmd("SET").arg("dag:{d1}:status").arg("running").query(&mut conn).unwrap();
/// let keys = dag_test_support::keys_matching(&mut conn, "dag:{d1}:*");
/// assert_eq!(keys, ["dag:{d1}:status"]);
/// ```
pub fn keys_matching(conn: &mut dyn redis::ConnectionLike, pattern: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor = 0_u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query(conn)
            .unwrap_or_else(|e| panic!("SCAN {cursor} MATCH {pattern} answers: {e}"));
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    // A key can come twice when the keyspace is rehashed during the scan.
    keys.sort();
    keys.dedup();
    keys
}

/// The number `field` of the server's `INFO section` (`total_commands_processed` of `stats`,
/// `used_cpu_sys` of `cpu`, ...), or `None` if the section has no such field (the in-process
/// Redis has fewer than `redis-server`).
///
/// Panics if the server does not answer `INFO`.
///
/// ```no_run
/// let server = dag_test_support::RedisServer::start();
/// let mut conn = dag_test_support::keys::connect(&server.url());
/// let commands = dag_test_support::keys::info_number(&mut conn, "stats", "total_commands_processed");
/// assert!(commands.is_some());
/// ```
pub fn info_number(
    conn: &mut dyn redis::ConnectionLike,
    section: &str,
    field: &str,
) -> Option<f64> {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(conn)
        .unwrap_or_else(|e| panic!("INFO {section} answers: {e}"));
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
}
