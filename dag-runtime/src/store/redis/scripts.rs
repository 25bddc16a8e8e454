//! The Lua scripts of the Redis store and their typed calls: the whole Rust/Lua contract.
//!
//! Each script's header (in `scripts/*.lua`) lists its `KEYS` and `ARGV`; the one function here
//! that calls it passes them in that order, so the two sides meet in one place per script.
//! Constants that both sides use (the status values, how many events a DAG keeps) are written
//! once, below, and put at the top of every script as a Lua prelude.
//!
//! Every script does a constant amount of work, whatever the DAG's size (a completion does
//! work proportional to the node's children): deleting a DAG's per-node keys is left to
//! [`cleanup`](super::cleanup), in bounded batches.

use std::sync::LazyLock;

use redis::{Script, Value};

use super::connection::{RedisConnection, Retry};
use super::keys::{DagKeys, DAGS};
use crate::error::DagError;
use crate::store::{ChildRef, DagId, Keep, Marked};

/// `dag:{id}:status` while the DAG runs.
pub(crate) const RUNNING: &str = "running";
/// `dag:{id}:status` once the sink's result is stored.
pub(crate) const SUCCEEDED: &str = "succeeded";
/// `dag:{id}:status` once a failure is recorded.
pub(crate) const FAILED: &str = "failed";
/// About how many events a DAG's `events` stream keeps (`XADD ... MAXLEN ~`).
pub(crate) const EVENTS_KEPT: u32 = 1000;

/// The constants above, as Lua locals at the top of every script.
fn prelude() -> String {
    format!(
        "local RUNNING = '{RUNNING}'\nlocal SUCCEEDED = '{SUCCEEDED}'\nlocal FAILED = '{FAILED}'\n\
         local EVENTS_KEPT = {EVENTS_KEPT}\n"
    )
}

/// A script with its source, which `SCRIPT LOAD` needs ([`Script`] keeps only the hash public).
struct LuaScript {
    source: String,
    script: Script,
}

impl LuaScript {
    fn new(body: &str) -> Self {
        let source = format!("{}{body}", prelude());
        LuaScript {
            script: Script::new(&source),
            source,
        }
    }
}

static COMPLETE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/complete.lua")));
static FAIL: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/fail.lua")));
static FINISH: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/finish.lua")));
static CANCEL: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new(include_str!("scripts/cancel.lua")));

/// Loads every script into the server's script cache, so that the first worker steps are one
/// round trip each. (A server that forgets them, after a restart, gets them again on
/// `NOSCRIPT`.)
pub(crate) async fn load_all(conn: &RedisConnection) -> Result<(), DagError> {
    let mut load = redis::pipe();
    for lua in [&*COMPLETE, &*FAIL, &*FINISH, &*CANCEL] {
        if conn.is_cluster() {
            // Alone, `SCRIPT LOAD` goes to every node of a cluster (a pipeline goes to one).
            conn.send::<()>(
                redis::cmd("SCRIPT").arg("LOAD").arg(&lua.source),
                Retry::Once,
                "could not load the Lua scripts",
            )
            .await?;
        } else {
            load.cmd("SCRIPT").arg("LOAD").arg(&lua.source).ignore();
        }
    }
    if conn.is_cluster() {
        return Ok(());
    }
    conn.send(&load, Retry::Once, "could not load the Lua scripts")
        .await
}

/// A node's `done` event, when events are on.
pub(crate) struct DoneEvent<'a> {
    /// The worker process that ran the node.
    pub worker: &'a str,
    /// The node's task name (`task[i]` for a map element), or `""` if unknown.
    pub task: &'a str,
}

/// `complete.lua`: marks `node` finished for each child, stores its output unless `keep` lets
/// it stay in the worker, and returns the children that became ready (see
/// [`Store::complete_with`](crate::store::Store::complete_with)).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn complete(
    conn: &RedisConnection,
    keys: &DagKeys,
    node: u32,
    output: &[u8],
    children: &[ChildRef],
    claim: &str,
    keep: Keep,
    event: Option<DoneEvent<'_>>,
) -> Result<Marked, DagError> {
    let mut call = COMPLETE.script.prepare_invoke();
    let (event, worker, task) = match &event {
        Some(e) => ("1", e.worker, e.task),
        None => ("0", "", ""),
    };
    // A kept output is not sent: it is what clustering saves.
    let output: &[u8] = if keep.output { &[] } else { output };
    call.key(keys.status())
        .key(keys.out(node))
        .key(keys.events())
        .key(keys.done())
        .arg(output)
        .arg(node)
        .arg(event)
        .arg(worker)
        .arg(conn.config().ttl_ms())
        .arg(task)
        .arg(claim)
        .arg(if keep.output { "n" } else { "a" });
    match keep.hold {
        Some(size) => call.arg(size),
        None => call.arg(""),
    };
    for child in children {
        call.arg(child.node).arg(child.parents);
    }
    let action = format!("could not store the output of node {node}");
    // A completion may run twice: HSETNX counts a parent once, and the claim hands the same
    // children back to the same run.
    let reply: Value = conn.send(&call, Retry::Once, &action).await?;
    let unexpected =
        |other: &Value| DagError::Store(format!("unexpected reply from complete.lua: {other:?}"));
    match reply {
        Value::Int(-2) => Ok(Marked::Held),
        Value::Int(_) => Ok(Marked::Ended),
        Value::Array(positions) => {
            // The script reports positions in increasing order: one walk over the children
            // splits them into ready and (with a kept output) pending.
            let (mut ready, mut pending) = (Vec::new(), Vec::new());
            let mut positions = positions.iter().peekable();
            for (j, child) in (1..).zip(children) {
                match positions.peek() {
                    Some(Value::Int(p)) if *p == j => {
                        positions.next();
                        ready.push(child.node);
                    }
                    _ if keep.output => pending.push(child.node),
                    _ => {}
                }
            }
            if let Some(other) = positions.next() {
                return Err(unexpected(other)); // out of range, or out of order
            }
            Ok(Marked::Ready { ready, pending })
        }
        other => Err(unexpected(&other)),
    }
}

/// `fail.lua`: records `error_json` for `node`; if the DAG still ran, marks it failed and
/// pushes `outcome` for the client. Returns whether this call ended the DAG.
pub(crate) async fn fail(
    conn: &RedisConnection,
    keys: &DagKeys,
    node: u32,
    error_json: &[u8],
    outcome: &[u8],
) -> Result<bool, DagError> {
    let mut call = FAIL.script.prepare_invoke();
    call.key(keys.status())
        .key(keys.errors())
        .key(keys.result())
        .key(keys.events())
        .arg(node)
        .arg(error_json)
        .arg(outcome)
        .arg(conn.config().ttl_ms());
    let ended: i64 = conn
        .send(&call, Retry::Once, "could not record a task failure")
        .await?;
    Ok(ended == 1)
}

/// `finish.lua`: if the DAG still runs, marks it succeeded and pushes `outcome` for the
/// client. Returns whether this call ended the DAG.
pub(crate) async fn finish(
    conn: &RedisConnection,
    keys: &DagKeys,
    outcome: &[u8],
) -> Result<bool, DagError> {
    let mut call = FINISH.script.prepare_invoke();
    call.key(keys.status())
        .key(keys.result())
        .key(keys.events())
        .arg(outcome)
        .arg(conn.config().ttl_ms());
    let ended: i64 = conn
        .send(&call, Retry::Once, "could not store the result")
        .await?;
    Ok(ended == 1)
}

/// `cancel.lua`: ends the DAG and removes its keys other than the per-node ones (and, on one
/// server, its entry in `dags`). Returns whether this call ended a running DAG.
pub(crate) async fn cancel(
    conn: &RedisConnection,
    keys: &DagKeys,
    dag: &DagId,
) -> Result<bool, DagError> {
    let mut call = CANCEL.script.prepare_invoke();
    call.key(keys.status())
        .key(keys.errors())
        .key(keys.result())
        .key(keys.plan())
        .key(keys.events());
    if !conn.is_cluster() {
        // On a cluster `dags` is in another slot: the caller removes the DAG from it apart.
        call.key(DAGS);
    }
    call.arg(dag.as_str());
    let cancelled: i64 = conn
        .send(&call, Retry::Once, "could not cancel the DAG")
        .await?;
    Ok(cancelled == 1)
}
