//! Commands on keys of any type: deletion, existence, TTLs, `TYPE`, `KEYS`, `SCAN`, `DBSIZE`.

use super::{cmd, glob_match, is, not_integer, parse_i64, syntax_error, Ctx, Spec, WRITE};
use crate::db::now_ms;
use crate::resp::Reply;

pub(super) static COMMANDS: &[Spec] = &[
    cmd("del", -2, WRITE, del),
    cmd("unlink", -2, WRITE, del),
    cmd("exists", -2, 0, exists),
    cmd("expire", -3, WRITE, |c, a| {
        expire(c, a, 1000, false, "expire")
    }),
    cmd("pexpire", -3, WRITE, |c, a| {
        expire(c, a, 1, false, "pexpire")
    }),
    cmd("expireat", -3, WRITE, |c, a| {
        expire(c, a, 1000, true, "expireat")
    }),
    cmd("pexpireat", -3, WRITE, |c, a| {
        expire(c, a, 1, true, "pexpireat")
    }),
    cmd("ttl", 2, 0, |c, a| ttl(c, a, 1000)),
    cmd("pttl", 2, 0, |c, a| ttl(c, a, 1)),
    cmd("persist", 2, WRITE, persist),
    cmd("type", 2, 0, type_of),
    cmd("keys", 2, 0, keys),
    cmd("scan", -2, 0, scan),
    cmd("dbsize", 1, 0, |c, _| Reply::Int(c.db().len() as i64)),
    cmd("flushdb", -1, WRITE, flushdb),
    cmd("flushall", -1, WRITE, flushall),
];

fn del(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let db = ctx.db();
    let removed = args[1..]
        .iter()
        .filter(|key| db.remove(key).is_some())
        .count();
    Reply::Int(removed as i64)
}

fn exists(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let db = ctx.db();
    let found = args[1..].iter().filter(|key| db.contains(key)).count();
    Reply::Int(found as i64)
}

/// `EXPIRE key n [NX|XX|GT|LT]` and its millisecond and absolute forms.
fn expire(ctx: &mut Ctx<'_>, args: &[Vec<u8>], unit_ms: i64, absolute: bool, name: &str) -> Reply {
    let Some(n) = parse_i64(&args[2]) else {
        return not_integer();
    };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for option in &args[3..] {
        if is(option, "NX") {
            nx = true;
        } else if is(option, "XX") {
            xx = true;
        } else if is(option, "GT") {
            gt = true;
        } else if is(option, "LT") {
            lt = true;
        } else {
            return Reply::err(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(option)
            ));
        }
    }
    if nx && (xx || gt || lt) {
        return Reply::err("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return Reply::err("ERR GT and LT options at the same time are not compatible");
    }
    let at = n.checked_mul(unit_ms).and_then(|ms| {
        if absolute {
            Some(ms)
        } else {
            ms.checked_add(now_ms())
        }
    });
    let Some(at) = at else {
        return Reply::err(format!("ERR invalid expire time in '{name}' command"));
    };
    let db = ctx.db();
    let Some(entry) = db.get(&args[1]) else {
        return Reply::Int(0);
    };
    let current = entry.expires_at;
    let allowed = match current {
        None => !xx && !gt,
        Some(old) => !nx && (!gt || at > old) && (!lt || at < old),
    };
    if !allowed {
        return Reply::Int(0);
    }
    if at <= now_ms() {
        db.remove(&args[1]);
    } else {
        entry.expires_at = Some(at);
    }
    Reply::Int(1)
}

fn ttl(ctx: &mut Ctx<'_>, args: &[Vec<u8>], unit_ms: i64) -> Reply {
    match ctx.db().get(&args[1]) {
        None => Reply::Int(-2),
        Some(entry) => match entry.expires_at {
            None => Reply::Int(-1),
            Some(at) => {
                let left = (at - now_ms()).max(0);
                // TTL rounds to the nearest second, as Redis does.
                Reply::Int(if unit_ms == 1 {
                    left
                } else {
                    (left + 500) / 1000
                })
            }
        },
    }
}

fn persist(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    match ctx.db().get(&args[1]) {
        Some(entry) if entry.expires_at.is_some() => {
            entry.expires_at = None;
            Reply::Int(1)
        }
        _ => Reply::Int(0),
    }
}

fn type_of(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    match ctx.db().get(&args[1]) {
        None => Reply::Status("none".to_owned()),
        Some(entry) => Reply::Status(entry.value.type_name().to_owned()),
    }
}

fn keys(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let pattern = &args[1];
    let keys = ctx.db().sorted_keys();
    Reply::bulks(keys.into_iter().filter(|k| glob_match(pattern, k)))
}

/// The position of a key in `SCAN`'s order: a fixed hash (FNV-1a), never 0 (the cursor that
/// means "start" and "done"). Keys are visited by increasing hash, so a key that exists for the
/// whole iteration is returned whatever is added or deleted meanwhile, as Redis guarantees.
fn scan_position(key: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash.max(1)
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`.
fn scan(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let Some(cursor) = std::str::from_utf8(&args[1])
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
    else {
        return Reply::err("ERR invalid cursor");
    };
    let (mut pattern, mut count, mut kind) = (None, 10_usize, None);
    let mut i = 2;
    while i < args.len() {
        let Some(value) = args.get(i + 1) else {
            return syntax_error();
        };
        if is(&args[i], "MATCH") {
            pattern = Some(value.clone());
        } else if is(&args[i], "COUNT") {
            match parse_i64(value) {
                Some(n) if n >= 1 => count = n as usize,
                Some(_) => return syntax_error(),
                None => return not_integer(),
            }
        } else if is(&args[i], "TYPE") {
            kind = Some(String::from_utf8_lossy(value).to_ascii_lowercase());
        } else {
            return syntax_error();
        }
        i += 2;
    }
    let db = ctx.db();
    let mut ordered: Vec<(u64, Vec<u8>)> = db
        .sorted_keys()
        .into_iter()
        .map(|k| (scan_position(&k), k))
        .filter(|(pos, _)| *pos >= cursor)
        .collect();
    ordered.sort();
    let next = ordered.get(count).map_or(0, |(pos, _)| *pos);
    let mut found = Vec::new();
    for (_, key) in ordered.into_iter().take(count) {
        if pattern.as_ref().is_some_and(|p| !glob_match(p, &key)) {
            continue;
        }
        if let Some(kind) = &kind {
            let matches = db
                .get(&key)
                .is_some_and(|e| e.value.type_name() == kind.as_str());
            if !matches {
                continue;
            }
        }
        found.push(key);
    }
    Reply::Array(vec![
        Reply::Bulk(next.to_string().into_bytes()),
        Reply::bulks(found),
    ])
}

fn flush_mode_ok(args: &[Vec<u8>]) -> bool {
    match args.len() {
        1 => true,
        2 => is(&args[1], "ASYNC") || is(&args[1], "SYNC"),
        _ => false,
    }
}

fn flushdb(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    if !flush_mode_ok(args) {
        return syntax_error();
    }
    ctx.db().clear();
    Reply::ok()
}

fn flushall(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    if !flush_mode_ok(args) {
        return syntax_error();
    }
    for db in &mut ctx.data.dbs {
        db.clear();
    }
    Reply::ok()
}
