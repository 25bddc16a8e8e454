//! Running a command for a connection, and waiting when it blocks (`BLPOP`, `XREAD ... BLOCK`,
//! `XREADGROUP ... BLOCK`): the command is run again after every write to the server until it finds what it
//! waits for, its timeout passes, or its client goes away.
//!
//! One condition variable serves every blocked client: simple, and correct because a blocked
//! command re-checks its keys itself; a client woken for a key it does not wait on just waits
//! again.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use crate::commands::{execute, is_paused, is_write, Client, Ctx};
use crate::resp::Reply;
use crate::server::{Shared, State};

/// The longest a blocked client waits without checking that its peer is still connected.
const PEER_CHECK: Duration = Duration::from_millis(200);

/// Runs `args` for `client`; `None` if the client was disconnected meanwhile (`CLIENT KILL`, a
/// restart, the server stopping, the peer closing while blocked).
pub(crate) fn run_command(
    shared: &Shared,
    stream: &TcpStream,
    client: &mut Client,
    args: &[Vec<u8>],
) -> Option<Reply> {
    let mut guard: MutexGuard<'_, State> = shared.lock();
    let mut deadline: Option<Option<Instant>> = None;
    let mut retry_args: Option<Vec<Vec<u8>>> = None;
    loop {
        if shared.is_stopping() || !guard.data.clients.contains_key(&client.id) {
            return None;
        }
        if let Some(until) = is_paused(&guard.data, args) {
            let wait = until
                .saturating_duration_since(Instant::now())
                .min(PEER_CHECK);
            guard = shared
                .wake
                .wait_timeout(guard, wait)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
            if peer_closed(stream) {
                return None;
            }
            continue;
        }
        let state = &mut *guard;
        let mut ctx = Ctx {
            data: &mut state.data,
            client: &mut *client,
            scripting: Some(&mut state.scripting),
            would_block: None,
            may_block: true,
            retry_with: None,
        };
        let reply = execute(&mut ctx, retry_args.as_deref().unwrap_or(args));
        let blocked = ctx.would_block;
        if let Some(retry_with) = ctx.retry_with.take() {
            retry_args = Some(retry_with);
        }
        if is_write(args) {
            shared.wake.notify_all();
        }
        let Some(timeout) = blocked else {
            return Some(reply);
        };
        let until = *deadline.get_or_insert_with(|| timeout.map(|t| Instant::now() + t));
        let now = Instant::now();
        let wait = match until {
            Some(until) if now >= until => return Some(reply),
            Some(until) => (until - now).min(PEER_CHECK),
            None => PEER_CHECK,
        };
        let (next, _) = shared
            .wake
            .wait_timeout(guard, wait)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard = next;
        // A client that went away must not take what it waited for (Redis drops a blocked
        // client as soon as its connection closes): checked before every retry.
        if peer_closed(stream) {
            return None;
        }
    }
}

/// Whether the peer closed the connection (checked without consuming anything it sent).
fn peer_closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut byte = [0_u8; 1];
    let closed = match stream.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    };
    let _ = stream.set_nonblocking(false);
    closed
}
