//! Sorted set commands: `ZADD` with its options, `ZSCORE`, `ZREM`, ranges by index and score.

use super::lists::range;
use super::{cmd, is, parse_f64, parse_i64, syntax_error, Ctx, Spec, WRITE};
use crate::db::{Value, ZSet};
use crate::resp::Reply;

pub(super) static COMMANDS: &[Spec] = &[
    cmd("zadd", -4, WRITE, zadd),
    cmd("zincrby", 4, WRITE, zincrby),
    cmd("zscore", 3, 0, |c, a| {
        read(c, &a[1], |z| {
            z.score(&a[2]).map_or(Reply::Nil, Reply::Double)
        })
    }),
    cmd("zrank", 3, 0, |c, a| {
        read(c, &a[1], |z| {
            z.rank(&a[2]).map_or(Reply::Nil, |r| Reply::Int(r as i64))
        })
    }),
    cmd("zcard", 2, 0, |c, a| {
        read(c, &a[1], |z| Reply::Int(z.len() as i64))
    }),
    cmd("zrem", -3, WRITE, zrem),
    cmd("zcount", 4, 0, zcount),
    cmd("zrange", -4, 0, zrange),
    cmd("zrevrange", -4, 0, |c, a| legacy_range(c, a, false, true)),
    cmd("zrangebyscore", -4, 0, |c, a| {
        legacy_range(c, a, true, false)
    }),
    cmd("zrevrangebyscore", -4, 0, |c, a| {
        legacy_range(c, a, true, true)
    }),
];

fn read(ctx: &mut Ctx<'_>, key: &[u8], f: impl FnOnce(&ZSet) -> Reply) -> Reply {
    match ctx.db().zset(key) {
        Ok(Some(z)) => f(z),
        Ok(None) => f(&ZSet::default()),
        Err(e) => e,
    }
}

fn not_float() -> Reply {
    Reply::err("ERR value is not a valid float")
}

fn as_zset(value: &mut Value) -> Option<&mut ZSet> {
    match value {
        Value::ZSet(z) => Some(z),
        _ => None,
    }
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]`.
fn zadd(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        if is(a, "NX") {
            nx = true;
        } else if is(a, "XX") {
            xx = true;
        } else if is(a, "GT") {
            gt = true;
        } else if is(a, "LT") {
            lt = true;
        } else if is(a, "CH") {
            ch = true;
        } else if is(a, "INCR") {
            incr = true;
        } else {
            break;
        }
        i += 1;
    }
    let pairs = &args[i..];
    if pairs.is_empty() || pairs.len() % 2 == 1 {
        return syntax_error();
    }
    if nx && xx {
        return Reply::err("ERR XX and NX options at the same time are not compatible");
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Reply::err("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if incr && pairs.len() > 2 {
        return Reply::err("ERR INCR option supports a single increment-element pair");
    }
    let mut parsed = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks(2) {
        let Some(score) = parse_f64(&pair[0]) else {
            return not_float();
        };
        parsed.push((score, pair[1].clone()));
    }
    let db = ctx.db();
    if xx && !db.contains(&args[1]) {
        // Nothing to update; the key is not created.
        if let Err(e) = db.zset(&args[1]) {
            return e;
        }
        return if incr { Reply::Nil } else { Reply::Int(0) };
    }
    let zset = match db.get_or_create(&args[1], || Value::ZSet(ZSet::default()), as_zset) {
        Ok(z) => z,
        Err(e) => return e,
    };
    let (mut added, mut changed) = (0, 0);
    let mut incr_result = None;
    for (score, member) in parsed {
        let old = zset.score(&member);
        let new = if incr {
            let sum = old.unwrap_or(0.0) + score;
            if sum.is_nan() {
                db_cleanup(ctx, &args[1]);
                return Reply::err("ERR resulting score is not a number (NaN)");
            }
            sum
        } else {
            score
        };
        let allowed = match old {
            None => !xx,
            Some(o) => !nx && (!gt || new > o) && (!lt || new < o),
        };
        if !allowed {
            continue;
        }
        if old.is_none() {
            added += 1;
        } else if old != Some(new) {
            changed += 1;
        }
        zset.insert(member, new);
        incr_result = Some(new);
    }
    db_cleanup(ctx, &args[1]);
    if incr {
        return incr_result.map_or(Reply::Nil, Reply::Double);
    }
    Reply::Int(if ch { added + changed } else { added })
}

fn db_cleanup(ctx: &mut Ctx<'_>, key: &[u8]) {
    ctx.db().drop_if_empty(key);
}

fn zincrby(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let Some(by) = parse_f64(&args[2]) else {
        return not_float();
    };
    let zset = match ctx
        .db()
        .get_or_create(&args[1], || Value::ZSet(ZSet::default()), as_zset)
    {
        Ok(z) => z,
        Err(e) => return e,
    };
    let new = zset.score(&args[3]).unwrap_or(0.0) + by;
    if new.is_nan() {
        db_cleanup(ctx, &args[1]);
        return Reply::err("ERR resulting score is not a number (NaN)");
    }
    zset.insert(args[3].clone(), new);
    Reply::Double(new)
}

fn zrem(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let db = ctx.db();
    let removed = match db.zset(&args[1]) {
        Ok(Some(z)) => args[2..].iter().filter(|m| z.remove(m)).count(),
        Ok(None) => 0,
        Err(e) => return e,
    };
    db.drop_if_empty(&args[1]);
    Reply::Int(removed as i64)
}

/// One end of a score range: the value and whether it is exclusive (`(`).
#[derive(Clone, Copy)]
struct Bound {
    value: f64,
    exclusive: bool,
}

fn parse_bound(arg: &[u8]) -> Option<Bound> {
    let (exclusive, number) = match arg.strip_prefix(b"(") {
        Some(rest) => (true, rest),
        None => (false, arg),
    };
    let value = parse_f64(number)?;
    Some(Bound { value, exclusive })
}

fn above(score: f64, min: Bound) -> bool {
    if min.exclusive {
        score > min.value
    } else {
        score >= min.value
    }
}

fn below(score: f64, max: Bound) -> bool {
    if max.exclusive {
        score < max.value
    } else {
        score <= max.value
    }
}

fn zcount(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let (Some(min), Some(max)) = (parse_bound(&args[2]), parse_bound(&args[3])) else {
        return Reply::err("ERR min or max is not a float");
    };
    read(ctx, &args[1], |z| {
        Reply::Int(
            z.iter()
                .filter(|(_, s)| above(*s, min) && below(*s, max))
                .count() as i64,
        )
    })
}

/// What a range command asked for.
struct RangeQuery {
    by_score: bool,
    rev: bool,
    with_scores: bool,
    limit: Option<(i64, i64)>,
}

/// `ZRANGE key start stop [BYSCORE] [REV] [LIMIT offset count] [WITHSCORES]`.
fn zrange(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let mut query = RangeQuery {
        by_score: false,
        rev: false,
        with_scores: false,
        limit: None,
    };
    let mut i = 4;
    while i < args.len() {
        let a = &args[i];
        if is(a, "BYSCORE") {
            query.by_score = true;
        } else if is(a, "REV") {
            query.rev = true;
        } else if is(a, "WITHSCORES") {
            query.with_scores = true;
        } else if is(a, "LIMIT") && i + 2 < args.len() {
            let (Some(offset), Some(count)) = (parse_i64(&args[i + 1]), parse_i64(&args[i + 2]))
            else {
                return super::not_integer();
            };
            query.limit = Some((offset, count));
            i += 2;
        } else {
            return syntax_error();
        }
        i += 1;
    }
    if query.limit.is_some() && !query.by_score {
        return Reply::err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        );
    }
    run_range(ctx, &args[1], &args[2], &args[3], &query)
}

/// `ZREVRANGE`, `ZRANGEBYSCORE`, `ZREVRANGEBYSCORE`: the forms before `ZRANGE` took options.
fn legacy_range(ctx: &mut Ctx<'_>, args: &[Vec<u8>], by_score: bool, rev: bool) -> Reply {
    let mut query = RangeQuery {
        by_score,
        rev,
        with_scores: false,
        limit: None,
    };
    let mut i = 4;
    while i < args.len() {
        if is(&args[i], "WITHSCORES") {
            query.with_scores = true;
        } else if by_score && is(&args[i], "LIMIT") && i + 2 < args.len() {
            let (Some(offset), Some(count)) = (parse_i64(&args[i + 1]), parse_i64(&args[i + 2]))
            else {
                return super::not_integer();
            };
            query.limit = Some((offset, count));
            i += 2;
        } else {
            return syntax_error();
        }
        i += 1;
    }
    run_range(ctx, &args[1], &args[2], &args[3], &query)
}

fn run_range(ctx: &mut Ctx<'_>, key: &[u8], start: &[u8], stop: &[u8], q: &RangeQuery) -> Reply {
    let resp = ctx.client.resp;
    let items: Vec<(Vec<u8>, f64)> = if q.by_score {
        // With REV the first bound is the maximum.
        let (min, max) = if q.rev { (stop, start) } else { (start, stop) };
        let (Some(min), Some(max)) = (parse_bound(min), parse_bound(max)) else {
            return Reply::err("ERR min or max is not a float");
        };
        let collected = match ctx.db().zset(key) {
            Ok(Some(z)) => {
                let matching = z.iter().filter(|(_, s)| above(*s, min) && below(*s, max));
                let ordered: Vec<(&[u8], f64)> = if q.rev {
                    matching.rev().collect()
                } else {
                    matching.collect()
                };
                ordered.into_iter().map(|(m, s)| (m.to_vec(), s)).collect()
            }
            Ok(None) => Vec::new(),
            Err(e) => return e,
        };
        match q.limit {
            Some((offset, count)) if offset < 0 => {
                let _ = count;
                Vec::new()
            }
            Some((offset, count)) => {
                let take = if count < 0 {
                    usize::MAX
                } else {
                    count as usize
                };
                collected
                    .into_iter()
                    .skip(offset as usize)
                    .take(take)
                    .collect()
            }
            None => collected,
        }
    } else {
        let (Some(start), Some(stop)) = (parse_i64(start), parse_i64(stop)) else {
            return super::not_integer();
        };
        match ctx.db().zset(key) {
            Ok(Some(z)) => match range(start, stop, z.len()) {
                Some((a, b)) => {
                    let all: Vec<(&[u8], f64)> = if q.rev {
                        z.iter().rev().collect()
                    } else {
                        z.iter().collect()
                    };
                    all[a..=b].iter().map(|(m, s)| (m.to_vec(), *s)).collect()
                }
                None => Vec::new(),
            },
            Ok(None) => Vec::new(),
            Err(e) => return e,
        }
    };
    if !q.with_scores {
        return Reply::bulks(items.into_iter().map(|(m, _)| m));
    }
    if resp >= 3 {
        Reply::Array(
            items
                .into_iter()
                .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
                .collect(),
        )
    } else {
        Reply::Array(
            items
                .into_iter()
                .flat_map(|(m, s)| [Reply::Bulk(m), Reply::Double(s)])
                .collect(),
        )
    }
}
