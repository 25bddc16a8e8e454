//! String commands: `GET`, `SET` with its options, `MGET`, `INCR` and friends.

use super::{cmd, is, not_integer, parse_i64, syntax_error, Ctx, Spec, WRITE};
use crate::db::{now_ms, Entry, Value};
use crate::resp::Reply;

pub(super) static COMMANDS: &[Spec] = &[
    cmd("get", 2, 0, get),
    cmd("set", -3, WRITE, set),
    cmd("setex", 4, WRITE, setex),
    cmd("psetex", 4, WRITE, psetex),
    cmd("setnx", 3, WRITE, setnx),
    cmd("getdel", 2, WRITE, getdel),
    cmd("mget", -2, 0, mget),
    cmd("mset", -3, WRITE, mset),
    cmd("incr", 2, WRITE, |ctx, a| incr_by(ctx, &a[1], 1)),
    cmd("decr", 2, WRITE, |ctx, a| incr_by(ctx, &a[1], -1)),
    cmd("incrby", 3, WRITE, |ctx, a| match parse_i64(&a[2]) {
        Some(n) => incr_by(ctx, &a[1], n),
        None => not_integer(),
    }),
    cmd("decrby", 3, WRITE, |ctx, a| match parse_i64(&a[2]) {
        Some(n) if n != i64::MIN => incr_by(ctx, &a[1], -n),
        Some(_) => Reply::err("ERR decrement would overflow"),
        None => not_integer(),
    }),
    cmd("append", 3, WRITE, append),
    cmd("strlen", 2, 0, strlen),
];

fn get(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    match ctx.db().string(&args[1]) {
        Ok(Some(s)) => Reply::Bulk(s.clone()),
        Ok(None) => Reply::Nil,
        Err(e) => e,
    }
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`.
fn set(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
    let mut expires_at: Option<i64> = None;
    let mut i = 3;
    while i < args.len() {
        let a = &args[i];
        let next = args.get(i + 1);
        if is(a, "NX") && !xx {
            nx = true;
        } else if is(a, "XX") && !nx {
            xx = true;
        } else if is(a, "GET") {
            get = true;
        } else if is(a, "KEEPTTL") && expires_at.is_none() {
            keepttl = true;
        } else if let (true, Some(next)) = (
            (is(a, "EX") || is(a, "PX") || is(a, "EXAT") || is(a, "PXAT"))
                && !keepttl
                && expires_at.is_none(),
            next,
        ) {
            let Some(n) = parse_i64(next) else {
                return super::not_integer();
            };
            if n <= 0 {
                return Reply::err("ERR invalid expire time in 'set' command");
            }
            let at = if is(a, "EX") {
                n.checked_mul(1000).and_then(|ms| ms.checked_add(now_ms()))
            } else if is(a, "PX") {
                n.checked_add(now_ms())
            } else if is(a, "EXAT") {
                n.checked_mul(1000)
            } else {
                Some(n)
            };
            let Some(at) = at else {
                return Reply::err("ERR invalid expire time in 'set' command");
            };
            expires_at = Some(at);
            i += 1;
        } else {
            return syntax_error();
        }
        i += 1;
    }
    let key = &args[1];
    let db = ctx.db();
    let old = db.get(key).cloned();
    let old_value = match &old {
        Some(Entry {
            value: Value::Str(s),
            ..
        }) => Some(s.clone()),
        Some(_) if get => return Reply::err(crate::db::WRONGTYPE),
        _ => None,
    };
    if (nx && old.is_some()) || (xx && old.is_none()) {
        return if get {
            old_value.map_or(Reply::Nil, Reply::Bulk)
        } else {
            Reply::Nil
        };
    }
    let expires_at = if keepttl {
        old.as_ref().and_then(|e| e.expires_at)
    } else {
        expires_at
    };
    db.put(
        key.clone(),
        Entry {
            value: Value::Str(args[2].clone()),
            expires_at,
        },
    );
    if get {
        old_value.map_or(Reply::Nil, Reply::Bulk)
    } else {
        Reply::ok()
    }
}

fn set_with_ttl(ctx: &mut Ctx<'_>, args: &[Vec<u8>], unit_ms: i64, name: &str) -> Reply {
    let Some(n) = parse_i64(&args[2]) else {
        return not_integer();
    };
    let Some(at) = n
        .checked_mul(unit_ms)
        .and_then(|ms| ms.checked_add(now_ms()))
        .filter(|_| n > 0)
    else {
        return Reply::err(format!("ERR invalid expire time in '{name}' command"));
    };
    ctx.db().put(
        args[1].clone(),
        Entry {
            value: Value::Str(args[3].clone()),
            expires_at: Some(at),
        },
    );
    Reply::ok()
}

fn setex(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    set_with_ttl(ctx, args, 1000, "setex")
}

fn psetex(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    set_with_ttl(ctx, args, 1, "psetex")
}

fn setnx(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let db = ctx.db();
    if db.contains(&args[1]) {
        return Reply::Int(0);
    }
    db.set(args[1].clone(), Value::Str(args[2].clone()));
    Reply::Int(1)
}

fn getdel(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let db = ctx.db();
    match db.string(&args[1]) {
        Ok(Some(s)) => {
            let value = s.clone();
            db.remove(&args[1]);
            Reply::Bulk(value)
        }
        Ok(None) => Reply::Nil,
        Err(e) => e,
    }
}

fn mget(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let db = ctx.db();
    Reply::Array(
        args[1..]
            .iter()
            .map(|key| match db.string(key) {
                Ok(Some(s)) => Reply::Bulk(s.clone()),
                _ => Reply::Nil,
            })
            .collect(),
    )
}

fn mset(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    if args.len().is_multiple_of(2) {
        return Reply::err("ERR wrong number of arguments for 'mset' command");
    }
    let db = ctx.db();
    for pair in args[1..].chunks(2) {
        db.set(pair[0].clone(), Value::Str(pair[1].clone()));
    }
    Reply::ok()
}

fn incr_by(ctx: &mut Ctx<'_>, key: &[u8], by: i64) -> Reply {
    let db = ctx.db();
    let current = match db.string(key) {
        Ok(Some(s)) => match parse_i64(s) {
            Some(n) => n,
            None => return not_integer(),
        },
        Ok(None) => 0,
        Err(e) => return e,
    };
    let Some(next) = current.checked_add(by) else {
        return Reply::err("ERR increment or decrement would overflow");
    };
    let bytes = next.to_string().into_bytes();
    match db.string(key) {
        Ok(Some(s)) => *s = bytes,
        _ => db.set(key.to_vec(), Value::Str(bytes)),
    }
    Reply::Int(next)
}

fn append(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let db = ctx.db();
    match db.string(&args[1]) {
        Ok(Some(s)) => {
            s.extend_from_slice(&args[2]);
            Reply::Int(s.len() as i64)
        }
        Ok(None) => {
            db.set(args[1].clone(), Value::Str(args[2].clone()));
            Reply::Int(args[2].len() as i64)
        }
        Err(e) => e,
    }
}

fn strlen(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    match ctx.db().string(&args[1]) {
        Ok(Some(s)) => Reply::Int(s.len() as i64),
        Ok(None) => Reply::Int(0),
        Err(e) => e,
    }
}
