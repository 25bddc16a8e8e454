//! `MULTI`, `EXEC`, `DISCARD`: commands queued, then run together under the server's lock.

use super::{cmd, execute, Ctx, Spec, NOQUEUE, NOSCRIPT, WRITE};
use crate::resp::Reply;

pub(super) static COMMANDS: &[Spec] = &[
    cmd("multi", 1, NOSCRIPT | NOQUEUE, multi),
    cmd("exec", 1, WRITE | NOSCRIPT | NOQUEUE, exec),
    cmd("discard", 1, NOSCRIPT | NOQUEUE, discard),
];

fn multi(ctx: &mut Ctx<'_>, _: &[Vec<u8>]) -> Reply {
    if ctx.client.multi.is_some() {
        return Reply::err("ERR MULTI calls can not be nested");
    }
    ctx.client.multi = Some(Vec::new());
    ctx.client.multi_failed = false;
    Reply::ok()
}

fn exec(ctx: &mut Ctx<'_>, _: &[Vec<u8>]) -> Reply {
    let Some(queued) = ctx.client.multi.take() else {
        return Reply::err("ERR EXEC without MULTI");
    };
    if std::mem::take(&mut ctx.client.multi_failed) {
        return Reply::err("EXECABORT Transaction discarded because of previous errors.");
    }
    // Blocking commands inside a transaction answer at once, as if they timed out.
    let may_block = std::mem::replace(&mut ctx.may_block, false);
    let replies = queued.iter().map(|args| execute(ctx, args)).collect();
    ctx.may_block = may_block;
    Reply::Array(replies)
}

fn discard(ctx: &mut Ctx<'_>, _: &[Vec<u8>]) -> Reply {
    if ctx.client.multi.take().is_none() {
        return Reply::err("ERR DISCARD without MULTI");
    }
    ctx.client.multi_failed = false;
    Reply::ok()
}
