//! How a plan is stored: `dag:{id}:plan` is a hash of chunks (`0`, `1`, ...) of at most
//! [`CHUNK_BYTES`] each, not one string.
//!
//! A million-node plan is tens of megabytes. As one string, deleting it blocked the server for
//! milliseconds (Redis frees a string synchronously, even on `UNLINK`), and reading it copied it
//! whole in one command. As a hash of chunks, every command touches at most
//! [`CHUNKS_PER_COMMAND`] chunks, and `UNLINK` hands a large hash to Redis's background thread.

use bytes::{Bytes, BytesMut};
use redis::Value;

use super::connection::{RedisConnection, Retry};
use super::keys::DagKeys;
use crate::error::DagError;

/// The most bytes of a plan one hash field holds.
pub(crate) const CHUNK_BYTES: usize = 256 * 1024;

/// The most chunks one `HSET` or `HMGET` names (4 MiB).
const CHUNKS_PER_COMMAND: usize = 16;

/// Adds to `pipe` the commands that store `plan` (its encoding) with a time to live.
pub(crate) fn write(pipe: &mut redis::Pipeline, keys: &DagKeys, plan: &[u8], ttl_ms: u64) {
    let chunks: Vec<&[u8]> = if plan.is_empty() {
        vec![&[][..]]
    } else {
        plan.chunks(CHUNK_BYTES).collect()
    };
    for (batch_index, batch) in chunks.chunks(CHUNKS_PER_COMMAND).enumerate() {
        let cmd = pipe.cmd("HSET").arg(keys.plan());
        for (i, chunk) in batch.iter().enumerate() {
            cmd.arg(batch_index * CHUNKS_PER_COMMAND + i).arg(*chunk);
        }
        cmd.ignore();
    }
    pipe.cmd("PEXPIRE").arg(keys.plan()).arg(ttl_ms).ignore();
}

/// Adds to `pipe` the two commands that start reading a plan: its chunk count and its first
/// chunks. [`read_rest`] takes their replies.
pub(crate) fn read_first(pipe: &mut redis::Pipeline, keys: &DagKeys) {
    pipe.cmd("HLEN").arg(keys.plan());
    hmget(pipe, keys, 0..CHUNKS_PER_COMMAND);
}

fn hmget(pipe: &mut redis::Pipeline, keys: &DagKeys, chunks: std::ops::Range<usize>) {
    let cmd = pipe.cmd("HMGET").arg(keys.plan());
    for i in chunks {
        cmd.arg(i);
    }
}

/// The plan's bytes from the replies to [`read_first`] (`count`, `first`), reading any further
/// chunks in one more round trip. `None` if there is no plan (or a chunk is missing).
pub(crate) async fn read_rest(
    conn: &RedisConnection,
    keys: &DagKeys,
    count: Value,
    first: Value,
) -> Result<Option<Bytes>, DagError> {
    let parse = |e: redis::ParsingError| conn.error("could not read the plan", e.into());
    let count: usize = redis::from_redis_value(count).map_err(parse)?;
    if count == 0 {
        return Ok(None);
    }
    let mut chunks: Vec<Option<Bytes>> = redis::from_redis_value(first).map_err(parse)?;
    chunks.truncate(count);
    if count > CHUNKS_PER_COMMAND {
        let mut pipe = redis::pipe();
        let mut start = CHUNKS_PER_COMMAND;
        while start < count {
            hmget(
                &mut pipe,
                keys,
                start..(start + CHUNKS_PER_COMMAND).min(count),
            );
            start += CHUNKS_PER_COMMAND;
        }
        let rest: Vec<Vec<Option<Bytes>>> = conn
            .send(&pipe, Retry::Once, "could not read the plan")
            .await?;
        chunks.extend(rest.into_iter().flatten());
    }
    let mut plan = BytesMut::new();
    for chunk in chunks {
        let Some(chunk) = chunk else {
            return Ok(None);
        };
        plan.extend_from_slice(&chunk);
    }
    Ok(Some(plan.freeze()))
}
