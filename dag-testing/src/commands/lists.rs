//! List commands: pushes, pops (`BLPOP`/`BRPOP` block until a push or their timeout), ranges.

use std::collections::VecDeque;

use super::{cmd, parse_i64, timeout_secs, Ctx, Spec, NOSCRIPT, WRITE};
use crate::db::Value;
use crate::resp::Reply;

pub(super) static COMMANDS: &[Spec] = &[
    cmd("lpush", -3, WRITE, |c, a| push(c, a, true)),
    cmd("rpush", -3, WRITE, |c, a| push(c, a, false)),
    cmd("lpop", -2, WRITE, |c, a| pop(c, a, true)),
    cmd("rpop", -2, WRITE, |c, a| pop(c, a, false)),
    cmd("llen", 2, 0, |c, a| match c.db().list(&a[1]) {
        Ok(l) => Reply::Int(l.map_or(0, |l| l.len() as i64)),
        Err(e) => e,
    }),
    cmd("lrange", 4, 0, lrange),
    cmd("lindex", 3, 0, lindex),
    cmd("ltrim", 4, WRITE, ltrim),
    cmd("blpop", -3, WRITE | NOSCRIPT, |c, a| {
        blocking_pop(c, a, true)
    }),
    cmd("brpop", -3, WRITE | NOSCRIPT, |c, a| {
        blocking_pop(c, a, false)
    }),
];

fn push(ctx: &mut Ctx<'_>, args: &[Vec<u8>], front: bool) -> Reply {
    let list = ctx.db().get_or_create(
        &args[1],
        || Value::List(VecDeque::new()),
        |v| match v {
            Value::List(l) => Some(l),
            _ => None,
        },
    );
    let list = match list {
        Ok(l) => l,
        Err(e) => return e,
    };
    for item in &args[2..] {
        if front {
            list.push_front(item.clone());
        } else {
            list.push_back(item.clone());
        }
    }
    Reply::Int(list.len() as i64)
}

fn pop(ctx: &mut Ctx<'_>, args: &[Vec<u8>], front: bool) -> Reply {
    if args.len() > 3 {
        return super::syntax_error();
    }
    let count = match args.get(2) {
        None => None,
        Some(c) => match parse_i64(c) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => return Reply::err("ERR value is out of range, must be positive"),
        },
    };
    let db = ctx.db();
    let list = match db.list(&args[1]) {
        Ok(Some(l)) => l,
        Ok(None) => {
            return if count.is_some() {
                Reply::NilArray
            } else {
                Reply::Nil
            }
        }
        Err(e) => return e,
    };
    let reply = match count {
        None => {
            let item = if front {
                list.pop_front()
            } else {
                list.pop_back()
            };
            item.map_or(Reply::Nil, Reply::Bulk)
        }
        Some(n) => {
            let mut items = Vec::new();
            for _ in 0..n {
                let item = if front {
                    list.pop_front()
                } else {
                    list.pop_back()
                };
                match item {
                    Some(i) => items.push(i),
                    None => break,
                }
            }
            Reply::bulks(items)
        }
    };
    db.drop_if_empty(&args[1]);
    reply
}

/// `BLPOP key [key ...] timeout`: pops from the first non-empty list, else blocks.
fn blocking_pop(ctx: &mut Ctx<'_>, args: &[Vec<u8>], front: bool) -> Reply {
    let timeout = match timeout_secs(&args[args.len() - 1]) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let keys = &args[1..args.len() - 1];
    let db = ctx.db();
    for key in keys {
        match db.list(key) {
            Ok(Some(list)) if !list.is_empty() => {
                let item = if front {
                    list.pop_front()
                } else {
                    list.pop_back()
                };
                db.drop_if_empty(key);
                return Reply::Array(vec![
                    Reply::bulk(key.clone()),
                    Reply::Bulk(item.expect("not empty")),
                ]);
            }
            Ok(_) => {}
            Err(e) => return e,
        }
    }
    if ctx.may_block {
        ctx.would_block = Some(timeout);
    }
    Reply::NilArray
}

/// Resolves a Redis range (negative indexes count from the end) over `len` items.
pub(super) fn range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    (start <= stop && start < len).then_some((start as usize, stop as usize))
}

fn lrange(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let (Some(start), Some(stop)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
        return super::not_integer();
    };
    match ctx.db().list(&args[1]) {
        Ok(Some(list)) => match range(start, stop, list.len()) {
            Some((a, b)) => Reply::bulks(list.range(a..=b).cloned()),
            None => Reply::Array(Vec::new()),
        },
        Ok(None) => Reply::Array(Vec::new()),
        Err(e) => e,
    }
}

fn lindex(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    // The key is looked up before the index is parsed, as in Redis.
    let list = match ctx.db().list(&args[1]) {
        Ok(Some(list)) => list,
        Ok(None) => return Reply::Nil,
        Err(e) => return e,
    };
    let Some(index) = parse_i64(&args[2]) else {
        return super::not_integer();
    };
    let i = if index < 0 {
        list.len() as i64 + index
    } else {
        index
    };
    if i < 0 {
        return Reply::Nil;
    }
    list.get(i as usize)
        .map_or(Reply::Nil, |v| Reply::bulk(v.clone()))
}

fn ltrim(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let (Some(start), Some(stop)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
        return super::not_integer();
    };
    let db = ctx.db();
    match db.list(&args[1]) {
        Ok(Some(list)) => {
            match range(start, stop, list.len()) {
                Some((a, b)) => {
                    list.truncate(b + 1);
                    list.drain(..a);
                }
                None => list.clear(),
            }
            db.drop_if_empty(&args[1]);
            Reply::ok()
        }
        Ok(None) => Reply::ok(),
        Err(e) => e,
    }
}
