//! Hash commands: `HSET`, `HGET`, `HDEL`, `HGETALL`, `HINCRBY` and friends.

use std::collections::HashMap;

use super::{cmd, not_integer, parse_i64, Ctx, Spec, WRITE};
use crate::db::Value;
use crate::resp::Reply;

pub(super) static COMMANDS: &[Spec] = &[
    cmd("hset", -4, WRITE, |c, a| hset(c, a, false)),
    cmd("hmset", -4, WRITE, |c, a| hset(c, a, true)),
    cmd("hsetnx", 4, WRITE, hsetnx),
    cmd("hget", 3, 0, hget),
    cmd("hmget", -3, 0, hmget),
    cmd("hdel", -3, WRITE, hdel),
    cmd("hlen", 2, 0, |c, a| {
        read(c, &a[1], |h| Reply::Int(h.len() as i64))
    }),
    cmd("hexists", 3, 0, |c, a| {
        read(c, &a[1], |h| Reply::Int(i64::from(h.contains_key(&a[2]))))
    }),
    cmd("hgetall", 2, 0, |c, a| {
        read(c, &a[1], |h| {
            Reply::Map(
                h.iter()
                    .map(|(k, v)| (Reply::bulk(k.clone()), Reply::bulk(v.clone())))
                    .collect(),
            )
        })
    }),
    cmd("hkeys", 2, 0, |c, a| {
        read(c, &a[1], |h| Reply::bulks(h.keys().cloned()))
    }),
    cmd("hvals", 2, 0, |c, a| {
        read(c, &a[1], |h| Reply::bulks(h.values().cloned()))
    }),
    cmd("hincrby", 4, WRITE, hincrby),
];

fn new_hash() -> Value {
    Value::Hash(HashMap::new())
}

fn as_hash(value: &mut Value) -> Option<&mut HashMap<Vec<u8>, Vec<u8>>> {
    match value {
        Value::Hash(h) => Some(h),
        _ => None,
    }
}

/// Runs `f` on the hash at `key` (an empty one if missing; `WRONGTYPE` for another type).
fn read(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(&HashMap<Vec<u8>, Vec<u8>>) -> Reply,
) -> Reply {
    match ctx.db().hash(key) {
        Ok(Some(h)) => f(h),
        Ok(None) => f(&HashMap::new()),
        Err(e) => e,
    }
}

fn hset(ctx: &mut Ctx<'_>, args: &[Vec<u8>], legacy: bool) -> Reply {
    if args.len() % 2 == 1 {
        let name = if legacy { "hmset" } else { "hset" };
        return Reply::err(format!(
            "ERR wrong number of arguments for '{name}' command"
        ));
    }
    let hash = match ctx.db().get_or_create(&args[1], new_hash, as_hash) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let mut added = 0;
    for pair in args[2..].chunks(2) {
        if hash.insert(pair[0].clone(), pair[1].clone()).is_none() {
            added += 1;
        }
    }
    if legacy {
        Reply::ok()
    } else {
        Reply::Int(added)
    }
}

fn hsetnx(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let hash = match ctx.db().get_or_create(&args[1], new_hash, as_hash) {
        Ok(h) => h,
        Err(e) => return e,
    };
    if hash.contains_key(&args[2]) {
        return Reply::Int(0);
    }
    hash.insert(args[2].clone(), args[3].clone());
    Reply::Int(1)
}

fn hget(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    read(ctx, &args[1], |h| {
        h.get(&args[2])
            .map_or(Reply::Nil, |v| Reply::bulk(v.clone()))
    })
}

fn hmget(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    read(ctx, &args[1], |h| {
        Reply::Array(
            args[2..]
                .iter()
                .map(|f| h.get(f).map_or(Reply::Nil, |v| Reply::bulk(v.clone())))
                .collect(),
        )
    })
}

fn hdel(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let db = ctx.db();
    let removed = match db.hash(&args[1]) {
        Ok(Some(h)) => args[2..].iter().filter(|f| h.remove(*f).is_some()).count(),
        Ok(None) => 0,
        Err(e) => return e,
    };
    db.drop_if_empty(&args[1]);
    Reply::Int(removed as i64)
}

fn hincrby(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let Some(by) = parse_i64(&args[3]) else {
        return not_integer();
    };
    let hash = match ctx.db().get_or_create(&args[1], new_hash, as_hash) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let current = match hash.get(&args[2]) {
        None => 0,
        Some(v) => match parse_i64(v) {
            Some(n) => n,
            None => return Reply::err("ERR hash value is not an integer"),
        },
    };
    let Some(next) = current.checked_add(by) else {
        return Reply::err("ERR increment or decrement would overflow");
    };
    hash.insert(args[2].clone(), next.to_string().into_bytes());
    Reply::Int(next)
}
