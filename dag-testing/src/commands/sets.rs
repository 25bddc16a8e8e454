//! Set commands: `SADD`, `SREM`, `SCARD`, `SISMEMBER`, `SMEMBERS`.

use std::collections::HashSet;

use super::{cmd, Ctx, Spec, WRITE};
use crate::db::Value;
use crate::resp::Reply;

pub(super) static COMMANDS: &[Spec] = &[
    cmd("sadd", -3, WRITE, sadd),
    cmd("srem", -3, WRITE, srem),
    cmd("scard", 2, 0, |c, a| {
        read(c, &a[1], |s| Reply::Int(s.len() as i64))
    }),
    cmd("sismember", 3, 0, |c, a| {
        read(c, &a[1], |s| Reply::Int(i64::from(s.contains(&a[2]))))
    }),
    cmd("smismember", -3, 0, |c, a| {
        read(c, &a[1], |s| {
            Reply::Array(
                a[2..]
                    .iter()
                    .map(|m| Reply::Int(i64::from(s.contains(m))))
                    .collect(),
            )
        })
    }),
    cmd("smembers", 2, 0, |c, a| {
        read(c, &a[1], |s| {
            Reply::Set(s.iter().map(|m| Reply::bulk(m.clone())).collect())
        })
    }),
];

fn read(ctx: &mut Ctx<'_>, key: &[u8], f: impl FnOnce(&HashSet<Vec<u8>>) -> Reply) -> Reply {
    match ctx.db().set_value(key) {
        Ok(Some(s)) => f(s),
        Ok(None) => f(&HashSet::new()),
        Err(e) => e,
    }
}

fn sadd(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let set = ctx.db().get_or_create(
        &args[1],
        || Value::Set(HashSet::new()),
        |v| match v {
            Value::Set(s) => Some(s),
            _ => None,
        },
    );
    match set {
        Ok(set) => Reply::Int(
            args[2..]
                .iter()
                .filter(|m| set.insert((*m).clone()))
                .count() as i64,
        ),
        Err(e) => e,
    }
}

fn srem(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let db = ctx.db();
    let removed = match db.set_value(&args[1]) {
        Ok(Some(s)) => args[2..].iter().filter(|m| s.remove(*m)).count(),
        Ok(None) => 0,
        Err(e) => return e,
    };
    db.drop_if_empty(&args[1]);
    Reply::Int(removed as i64)
}
