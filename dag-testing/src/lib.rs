//! An in-process, Redis-compatible server for tests: `cargo test` needs no `redis-server`,
//! and users test their graphs on the Redis code path (scripts, the stream of invocations,
//! worker processes) without installing anything.
//!
//! ```
//! let redis = dag_testing::InProcessRedis::start()?;
//! // Any Redis client, in this process or another, connects by URL.
//! let mut conn = redis::Client::open(redis.url()).unwrap().get_connection().unwrap();
//! let n: i64 = redis::cmd("INCR").arg("counter").query(&mut conn).unwrap();
//! assert_eq!(n, 1);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The server listens on a free loopback port, speaks RESP2 and RESP3, and answers like Redis
//! 7.0 for every command the `dag` project sends, inside and outside Lua scripts; a command it
//! does not implement gets Redis's "unknown command" error, never a wrong reply. A differential
//! test (`tests/differential.rs`) runs random command sequences against it and a real
//! `redis-server` and compares every reply.
//!
//! How it is built:
//!
//! | module | job |
//! | --- | --- |
//! | `server` | [`InProcessRedis`]: listener, a thread per connection, restart, stop on drop |
//! | `blocking` | runs a command for a connection; `BLPOP` and `XREADGROUP ... BLOCK` wait there |
//! | `resp` | reading commands, writing replies in RESP2 or RESP3 |
//! | `db` | the keyspace: values of each type, lazy expiry, the 16 databases |
//! | `stream` | the stream type: entries, consumer groups, pending entries |
//! | `commands` | the command table and dispatch (arity, auth, `MULTI`), one file per type |
//! | `scripting` | Lua 5.1 (mlua, vendored): `EVAL`, `EVALSHA`, `redis.call`, conversions |
//!
//! One mutex guards all data, so a command, a script or a `MULTI`/`EXEC` block runs
//! atomically, as in Redis. Keys expire lazily when touched, and `SCAN`, `KEYS` and `DBSIZE`
//! drop expired keys first, which is what clients can observe of Redis's expiry.
//!
//! Not implemented (they answer "unknown command", or "unknown subcommand"): pub/sub,
//! `WATCH`, `XINFO` other than `CONSUMERS`, `SLOWLOG`, `OBJECT`, `DEBUG`, replication
//! and persistence commands, ACL rules (`ACL SETUSER` records users and passwords; every user
//! may run everything), Lua's `cjson`, `cmsgpack`, `bit` and `struct` libraries, and a script
//! time limit (`BUSY`).

mod blocking;
mod commands;
mod db;
mod resp;
mod scripting;
mod server;
mod stream;

pub use server::InProcessRedis;
