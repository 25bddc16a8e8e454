//! Deleting a DAG's per-node keys (`out:<n>`), its finished-parents hash (`done`) and its plan
//! in bounded batches.
//!
//! A DAG of a million nodes has a million such keys (`UNLINK` frees a large hash, like the
//! `done` of such a DAG, in the background). Deleting them in one script blocked the
//! server for seconds, stalling every other DAG on it; here each `UNLINK` names at most
//! [`KEYS_PER_COMMAND`] keys, and a round trip carries at most [`COMMANDS_PER_ROUND_TRIP`] of
//! them, so the server serves other clients in between. Whoever ends a DAG's life calls this
//! after the outcome is recorded (the client once it has the outcome, or the one that cancels),
//! with the node count of the plan it holds; keys nobody can name (a plan that cannot be read)
//! are left to their time to live and to `gc`.

use super::connection::{RedisConnection, Retry};
use super::keys::DagKeys;
use crate::error::DagError;

/// Keys named by one `UNLINK`: small enough that one command takes well under a millisecond.
pub(crate) const KEYS_PER_COMMAND: usize = 1000;

/// `UNLINK` commands sent together in one pipeline.
const COMMANDS_PER_ROUND_TRIP: usize = 32;

/// Deletes the plan, the `done` hash and the `out:<n>` keys of nodes `0..nodes`.
pub(crate) async fn delete_node_keys(
    conn: &RedisConnection,
    keys: &DagKeys,
    nodes: usize,
) -> Result<(), DagError> {
    let mut names = [keys.plan(), keys.done()]
        .into_iter()
        .chain((0..nodes as u32).map(|n| keys.out(n)));
    loop {
        let mut pipe = redis::pipe();
        let mut commands = 0;
        while commands < COMMANDS_PER_ROUND_TRIP {
            let batch: Vec<String> = names.by_ref().take(KEYS_PER_COMMAND).collect();
            if batch.is_empty() {
                break;
            }
            pipe.cmd("UNLINK").arg(batch).ignore();
            commands += 1;
        }
        if commands == 0 {
            return Ok(());
        }
        conn.send::<()>(&pipe, Retry::Once, "could not delete a finished DAG's keys")
            .await?;
        if commands < COMMANDS_PER_ROUND_TRIP {
            return Ok(());
        }
    }
}
