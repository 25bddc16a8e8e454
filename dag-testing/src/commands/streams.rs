//! Stream commands: `XADD` with caps, ranges, `XREAD` with `BLOCK`, consumer groups (`XGROUP`, `XREADGROUP` with
//! `BLOCK`, `XACK`, `XPENDING`, `XCLAIM`, `XAUTOCLAIM`), `XDEL`, `XTRIM`.

use std::time::Duration;

use super::{cmd, container, is, parse_i64, syntax_error, Ctx, Spec, WRITE};
use crate::db::{now_ms, Value};
use crate::resp::Reply;
use crate::stream::{Consumer, Group, Pending, Stream, StreamId};

pub(super) static COMMANDS: &[Spec] = &[
    cmd("xadd", -5, WRITE, xadd),
    cmd("xlen", 2, 0, xlen),
    cmd("xrange", -4, 0, |c, a| xrange(c, a, false)),
    cmd("xrevrange", -4, 0, |c, a| xrange(c, a, true)),
    cmd("xdel", -3, WRITE, xdel),
    cmd("xtrim", -4, WRITE, xtrim),
    cmd("xack", -4, WRITE, xack),
    container("xgroup", 0, GROUP_COMMANDS),
    cmd("xread", -4, 0, xread),
    cmd("xreadgroup", -7, WRITE, xreadgroup),
    cmd("xpending", -3, 0, xpending),
    cmd("xclaim", -6, WRITE, xclaim),
    cmd("xautoclaim", -6, WRITE, xautoclaim),
    container("xinfo", 0, INFO_COMMANDS),
];

static INFO_COMMANDS: &[Spec] = &[cmd("consumers", 4, 0, info_consumers)];

static GROUP_COMMANDS: &[Spec] = &[
    cmd("create", -5, WRITE, group_create),
    cmd("destroy", 4, WRITE, group_destroy),
    cmd("createconsumer", 5, WRITE, group_create_consumer),
    cmd("delconsumer", 5, WRITE, group_del_consumer),
    cmd("setid", -5, WRITE, group_setid),
];

fn invalid_id() -> Reply {
    Reply::err("ERR Invalid stream ID specified as stream command argument")
}

fn no_group(key: &[u8], group: &[u8]) -> Reply {
    Reply::err(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

fn id_arg(arg: &[u8]) -> Result<StreamId, Reply> {
    StreamId::parse(arg, 0).ok_or_else(invalid_id)
}

fn entry_reply(id: StreamId, fields: &[Vec<u8>]) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(id.to_string().into_bytes()),
        Reply::bulks(fields.iter().cloned()),
    ])
}

/// A trimming option: `MAXLEN|MINID [=|~] threshold [LIMIT n]`.
enum Trim {
    MaxLen(usize, bool),
    MinId(StreamId, bool),
}

/// Parses a trimming option at `args[*i]`, advancing `i` past it. `Ok(None)` if `args[*i]` is
/// not one.
fn parse_trim(args: &[Vec<u8>], i: &mut usize) -> Result<Option<Trim>, Reply> {
    let word = &args[*i];
    let maxlen = is(word, "MAXLEN");
    if !maxlen && !is(word, "MINID") {
        return Ok(None);
    }
    *i += 1;
    let mut approximate = false;
    if let Some(a) = args.get(*i) {
        if a.as_slice() == b"~" {
            approximate = true;
            *i += 1;
        } else if a.as_slice() == b"=" {
            *i += 1;
        }
    }
    let Some(threshold) = args.get(*i) else {
        return Err(syntax_error());
    };
    *i += 1;
    let trim = if maxlen {
        match parse_i64(threshold) {
            Some(n) if n >= 0 => Trim::MaxLen(n as usize, approximate),
            Some(_) => return Err(Reply::err("ERR The MAXLEN argument must be >= 0.")),
            None => return Err(super::not_integer()),
        }
    } else {
        Trim::MinId(id_arg(threshold)?, approximate)
    };
    if args.get(*i).is_some_and(|a| is(a, "LIMIT")) {
        let Some(limit) = args.get(*i + 1) else {
            return Err(syntax_error());
        };
        if parse_i64(limit).is_none_or(|n| n < 0) {
            return Err(Reply::err("ERR The LIMIT argument must be >= 0."));
        }
        if !approximate {
            return Err(Reply::err(
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
        *i += 2;
    }
    Ok(Some(trim))
}

fn apply_trim(stream: &mut Stream, trim: &Trim) -> usize {
    match *trim {
        Trim::MaxLen(n, approximate) => stream.trim_to_len(n, approximate),
        Trim::MinId(id, approximate) => stream.trim_to_min_id(id, approximate),
    }
}

/// `XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT n]] *|id field value ...`.
fn xadd(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let mut i = 2;
    let mut nomkstream = false;
    let mut trim = None;
    while i < args.len() {
        if is(&args[i], "NOMKSTREAM") {
            nomkstream = true;
            i += 1;
            continue;
        }
        match parse_trim(args, &mut i) {
            Ok(Some(t)) => trim = Some(t),
            Ok(None) => break,
            Err(e) => return e,
        }
    }
    let Some(id_text) = args.get(i) else {
        return syntax_error();
    };
    let fields = &args[i + 1..];
    // The id is checked first: Redis reports a bad id before the field count.
    let explicit = if id_text.as_slice() == b"*" {
        None
    } else if let Some(ms) = id_text.strip_suffix(b"-*") {
        match std::str::from_utf8(ms)
            .ok()
            .and_then(|m| m.parse::<u64>().ok())
        {
            Some(ms) => Some((ms, None)),
            None => return invalid_id(),
        }
    } else {
        match StreamId::parse(id_text, 0) {
            Some(id) => Some((id.ms, Some(id.seq))),
            None => return invalid_id(),
        }
    };
    if fields.is_empty() || fields.len() % 2 == 1 {
        return Reply::err("ERR wrong number of arguments for 'xadd' command");
    }
    if explicit == Some((0, Some(0))) {
        return Reply::err("ERR The ID specified in XADD must be greater than 0-0");
    }
    let db = ctx.db();
    match db.stream(&args[1]) {
        Err(e) => return e,
        Ok(None) if nomkstream => return Reply::Nil,
        Ok(None) => db.set(args[1].clone(), Value::Stream(Box::default())),
        Ok(Some(_)) => {}
    }
    let stream = db.stream(&args[1]).ok().flatten().expect("created above");
    let last = stream.last_id;
    let id = match explicit {
        None => {
            let ms = (now_ms() as u64).max(last.ms);
            if ms == last.ms {
                match last.next() {
                    Some(id) => id,
                    None => return too_small(),
                }
            } else {
                StreamId { ms, seq: 0 }
            }
        }
        Some((ms, None)) => {
            if ms == last.ms {
                match last.next().filter(|n| n.ms == ms) {
                    Some(id) => id,
                    None => return too_small(),
                }
            } else {
                StreamId { ms, seq: 0 }
            }
        }
        Some((ms, Some(seq))) => StreamId { ms, seq },
    };
    if id <= last {
        return too_small();
    }
    stream.entries.insert(id, fields.to_vec());
    stream.last_id = id;
    if let Some(trim) = &trim {
        apply_trim(stream, trim);
    }
    Reply::Bulk(id.to_string().into_bytes())
}

fn too_small() -> Reply {
    Reply::err("ERR The ID specified in XADD is equal or smaller than the target stream top item")
}

fn xlen(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    match ctx.db().stream(&args[1]) {
        Ok(s) => Reply::Int(s.map_or(0, |s| s.entries.len() as i64)),
        Err(e) => e,
    }
}

/// Parses a range end: `-`, `+`, an id, or `(id` (exclusive). `None` if the range is empty.
fn range_end(arg: &[u8], start: bool) -> Result<Option<StreamId>, Reply> {
    match arg {
        b"-" => Ok(Some(StreamId::MIN)),
        b"+" => Ok(Some(StreamId::MAX)),
        _ => {
            if let Some(rest) = arg.strip_prefix(b"(") {
                let id = StreamId::parse(rest, if start { 0 } else { u64::MAX })
                    .ok_or_else(invalid_id)?;
                Ok(if start { id.next() } else { id.prev() })
            } else {
                Ok(Some(
                    StreamId::parse(arg, if start { 0 } else { u64::MAX })
                        .ok_or_else(invalid_id)?,
                ))
            }
        }
    }
}

/// `XRANGE key start end [COUNT n]` (and `XREVRANGE key end start [COUNT n]`).
fn xrange(ctx: &mut Ctx<'_>, args: &[Vec<u8>], rev: bool) -> Reply {
    let (first, second) = if rev {
        (&args[3], &args[2])
    } else {
        (&args[2], &args[3])
    };
    let (start, end) = match (range_end(first, true), range_end(second, false)) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let mut count = None;
    match args.len() {
        4 => {}
        6 if is(&args[4], "COUNT") => match parse_i64(&args[5]) {
            Some(n) => count = Some(n.max(0) as usize),
            None => return super::not_integer(),
        },
        _ => return syntax_error(),
    }
    let stream = match ctx.db().stream(&args[1]) {
        Ok(Some(s)) => s,
        Ok(None) => return Reply::Array(Vec::new()),
        Err(e) => return e,
    };
    let (Some(start), Some(end)) = (start, end) else {
        return Reply::Array(Vec::new());
    };
    if start > end || count == Some(0) {
        return Reply::Array(Vec::new());
    }
    let range = stream.entries.range(start..=end);
    let items: Vec<Reply> = if rev {
        range
            .rev()
            .take(count.unwrap_or(usize::MAX))
            .map(|(id, f)| entry_reply(*id, f))
            .collect()
    } else {
        range
            .take(count.unwrap_or(usize::MAX))
            .map(|(id, f)| entry_reply(*id, f))
            .collect()
    };
    Reply::Array(items)
}

fn ids_arg(args: &[Vec<u8>]) -> Result<Vec<StreamId>, Reply> {
    args.iter().map(|a| id_arg(a)).collect()
}

fn xdel(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let stream = match ctx.db().stream(&args[1]) {
        Ok(Some(s)) => s,
        Ok(None) => return Reply::Int(0),
        Err(e) => return e,
    };
    let ids = match ids_arg(&args[2..]) {
        Ok(ids) => ids,
        Err(e) => return e,
    };
    Reply::Int(
        ids.iter()
            .filter(|id| stream.entries.remove(id).is_some())
            .count() as i64,
    )
}

fn xtrim(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let mut i = 2;
    let trim = match parse_trim(args, &mut i) {
        Ok(Some(t)) => t,
        Ok(None) => return syntax_error(),
        Err(e) => return e,
    };
    if i != args.len() {
        return syntax_error();
    }
    match ctx.db().stream(&args[1]) {
        Ok(Some(s)) => Reply::Int(apply_trim(s, &trim) as i64),
        Ok(None) => Reply::Int(0),
        Err(e) => e,
    }
}

fn xack(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    // No key or group: nothing to acknowledge, whatever the ids (as Redis).
    let stream = match ctx.db().stream(&args[1]) {
        Ok(Some(s)) => s,
        Ok(None) => return Reply::Int(0),
        Err(e) => return e,
    };
    let Some(group) = stream.groups.get_mut(args[2].as_slice()) else {
        return Reply::Int(0);
    };
    let ids = match ids_arg(&args[3..]) {
        Ok(ids) => ids,
        Err(e) => return e,
    };
    Reply::Int(
        ids.iter()
            .filter(|id| group.pending.remove(id).is_some())
            .count() as i64,
    )
}

fn key_must_exist() -> Reply {
    Reply::err(
        "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want \
         to use the MKSTREAM option to create an empty stream automatically.",
    )
}

/// `XGROUP CREATE key group id|$ [MKSTREAM] [ENTRIESREAD n]`.
fn group_create(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let mut mkstream = false;
    let mut i = 5;
    while i < args.len() {
        if is(&args[i], "MKSTREAM") {
            mkstream = true;
            i += 1;
        } else if is(&args[i], "ENTRIESREAD") && i + 1 < args.len() {
            if parse_i64(&args[i + 1]).is_none() {
                return super::not_integer();
            }
            i += 2;
        } else {
            return syntax_error();
        }
    }
    let dollar = args[4].as_slice() == b"$";
    let id = if dollar {
        None
    } else {
        match id_arg(&args[4]) {
            Ok(id) => Some(id),
            Err(e) => return e,
        }
    };
    let db = ctx.db();
    match db.stream(&args[2]) {
        Err(e) => return e,
        Ok(None) if !mkstream => return key_must_exist(),
        Ok(None) => db.set(args[2].clone(), Value::Stream(Box::default())),
        Ok(Some(_)) => {}
    }
    let stream = db.stream(&args[2]).ok().flatten().expect("exists");
    if stream.groups.contains_key(args[3].as_slice()) {
        return Reply::err("BUSYGROUP Consumer Group name already exists");
    }
    let last_delivered = id.unwrap_or(stream.last_id);
    stream.groups.insert(
        args[3].clone(),
        Group {
            last_delivered,
            ..Group::default()
        },
    );
    Reply::ok()
}

/// The group `args[3]` of the stream `args[2]`, for the `XGROUP` subcommands.
fn group_of<'a>(ctx: &'a mut Ctx<'_>, args: &[Vec<u8>]) -> Result<&'a mut Group, Reply> {
    let stream = match ctx.db().stream(&args[2]) {
        Ok(Some(s)) => s,
        Ok(None) => return Err(key_must_exist()),
        Err(e) => return Err(e),
    };
    stream.groups.get_mut(args[3].as_slice()).ok_or_else(|| {
        Reply::err(format!(
            "NOGROUP No such consumer group '{}' for key name '{}'",
            String::from_utf8_lossy(&args[3]),
            String::from_utf8_lossy(&args[2])
        ))
    })
}

fn group_destroy(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    match ctx.db().stream(&args[2]) {
        Ok(Some(s)) => Reply::Int(i64::from(s.groups.remove(args[3].as_slice()).is_some())),
        Ok(None) => key_must_exist(),
        Err(e) => e,
    }
}

fn group_create_consumer(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    match group_of(ctx, args) {
        Ok(group) => Reply::Int(i64::from(touch_consumer(group, &args[4]))),
        Err(e) => e,
    }
}

fn group_del_consumer(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    match group_of(ctx, args) {
        Ok(group) => {
            let name = &args[4];
            if group.consumers.remove(name.as_slice()).is_none() {
                return Reply::Int(0);
            }
            let before = group.pending.len();
            group.pending.retain(|_, p| p.consumer != *name);
            Reply::Int((before - group.pending.len()) as i64)
        }
        Err(e) => e,
    }
}

fn group_setid(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    match args.len() {
        5 => {}
        7 if is(&args[5], "ENTRIESREAD") => {}
        _ => return syntax_error(),
    }
    let last = match ctx.db().stream(&args[2]) {
        Ok(Some(s)) => s.last_id,
        Ok(None) => return key_must_exist(),
        Err(e) => return e,
    };
    let id = if args[4].as_slice() == b"$" {
        last
    } else {
        match id_arg(&args[4]) {
            Ok(id) => id,
            Err(e) => return e,
        }
    };
    match group_of(ctx, args) {
        Ok(group) => {
            group.last_delivered = id;
            Reply::ok()
        }
        Err(e) => e,
    }
}

/// Registers `name` in `group` (or refreshes it); returns whether it is new.
fn touch_consumer(group: &mut Group, name: &[u8]) -> bool {
    let now = now_ms();
    match group.consumers.get_mut(name) {
        Some(c) => {
            c.seen_at = now;
            false
        }
        None => {
            group
                .consumers
                .insert(name.to_vec(), Consumer { seen_at: now });
            true
        }
    }
}

/// The options of `XREAD` and `XREADGROUP` before `STREAMS`.
struct ReadOptions {
    count: Option<usize>,
    block: Option<u64>,
    noack: bool,
    /// The index of the first key, after `STREAMS`.
    streams_at: usize,
}

/// Parses `[COUNT n] [BLOCK ms] [NOACK] STREAMS key ... id ...` from `args[from..]` for
/// `command` (`xread`, or `xreadgroup`, which alone takes `NOACK`) and checks that keys and ids
/// pair up and that a script does not block; returns the options, the keys and the ids.
fn read_streams<'a>(
    args: &'a [Vec<u8>],
    from: usize,
    command: &str,
    in_script: bool,
) -> Result<StreamsRead<'a>, Reply> {
    let options = read_options(args, from, command == "xreadgroup")?;
    let rest = &args[options.streams_at..];
    if rest.is_empty() || rest.len() % 2 == 1 {
        return Err(Reply::err(format!(
            "ERR Unbalanced '{command}' list of streams: for each stream key an ID or '$' must be \
             specified."
        )));
    }
    if options.block.is_some() && in_script {
        return Err(Reply::err(format!(
            "ERR {command} command is not allowed with BLOCK option from scripts"
        )));
    }
    let (keys, ids) = rest.split_at(rest.len() / 2);
    Ok(StreamsRead { options, keys, ids })
}

/// What [`read_streams`] parsed: the options, then the keys and their ids.
struct StreamsRead<'a> {
    options: ReadOptions,
    keys: &'a [Vec<u8>],
    ids: &'a [Vec<u8>],
}

/// Parses `[COUNT n] [BLOCK ms] [NOACK] STREAMS` from `args[from..]` (`NOACK` only where
/// `noack_allowed`: `XREADGROUP`).
fn read_options(args: &[Vec<u8>], from: usize, noack_allowed: bool) -> Result<ReadOptions, Reply> {
    let mut options = ReadOptions {
        count: None,
        block: None,
        noack: false,
        streams_at: 0,
    };
    let mut i = from;
    loop {
        let Some(a) = args.get(i) else {
            return Err(syntax_error());
        };
        if is(a, "COUNT") && i + 1 < args.len() {
            match parse_i64(&args[i + 1]) {
                Some(n) => options.count = (n > 0).then_some(n as usize),
                None => return Err(super::not_integer()),
            }
            i += 2;
        } else if is(a, "BLOCK") && i + 1 < args.len() {
            match parse_i64(&args[i + 1]) {
                Some(n) if n >= 0 => options.block = Some(n as u64),
                Some(_) => return Err(Reply::err("ERR timeout is negative")),
                None => return Err(Reply::err("ERR timeout is not an integer or out of range")),
            }
            i += 2;
        } else if noack_allowed && is(a, "NOACK") {
            options.noack = true;
            i += 1;
        } else if is(a, "STREAMS") {
            options.streams_at = i + 1;
            return Ok(options);
        } else {
            return Err(syntax_error());
        }
    }
}

/// The reply of a read of several streams: `[[key, entries], ...]`, a map in RESP3.
fn streams_reply(resp: u8, results: Vec<(Reply, Reply)>) -> Reply {
    if resp >= 3 {
        Reply::Map(results)
    } else {
        Reply::Array(
            results
                .into_iter()
                .map(|(k, v)| Reply::Array(vec![k, v]))
                .collect(),
        )
    }
}

/// `XREAD [COUNT n] [BLOCK ms] STREAMS key ... id ...`: the entries after each id (`$`: after
/// the stream's last entry when the command is first run, so a blocked read waits for new ones).
fn xread(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let StreamsRead { options, keys, ids } =
        match read_streams(args, 1, "xread", ctx.client.in_script) {
            Ok(read) => read,
            Err(e) => return e,
        };
    let ReadOptions {
        count,
        block,
        streams_at,
        ..
    } = options;
    // Every key's type and every id are checked before anything is read.
    let mut starts = Vec::with_capacity(ids.len());
    for (key, id) in keys.iter().zip(ids) {
        let last = match ctx.db().stream(key) {
            Ok(stream) => stream.map(|s| s.last_id),
            Err(e) => return e,
        };
        if id.as_slice() == b"$" {
            starts.push(last.unwrap_or(StreamId::MIN));
        } else {
            match id_arg(id) {
                Ok(id) => starts.push(id),
                Err(e) => return e,
            }
        }
    }
    let resp = ctx.client.resp;
    let mut results = Vec::new();
    for (key, start) in keys.iter().zip(&starts) {
        let Some(stream) = ctx.db().stream(key).ok().flatten() else {
            continue;
        };
        let items: Vec<Reply> = match start.next() {
            Some(from) => stream
                .entries
                .range(from..)
                .take(count.unwrap_or(usize::MAX))
                .map(|(id, f)| entry_reply(*id, f))
                .collect(),
            None => Vec::new(),
        };
        if !items.is_empty() {
            results.push((Reply::bulk(key.clone()), Reply::Array(items)));
        }
    }
    if results.is_empty() {
        if let (Some(ms), true) = (block, ctx.may_block) {
            ctx.would_block = Some((ms > 0).then(|| Duration::from_millis(ms)));
            if ids.iter().any(|id| id.as_slice() == b"$") {
                let mut resolved = args[..streams_at + keys.len()].to_vec();
                resolved.extend(starts.iter().map(|id| id.to_string().into_bytes()));
                ctx.retry_with = Some(resolved);
            }
        }
        return Reply::NilArray;
    }
    streams_reply(resp, results)
}

/// `XREADGROUP GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS key ... id ...`.
fn xreadgroup(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    if !is(&args[1], "GROUP") {
        return syntax_error();
    }
    let (group_name, consumer) = (&args[2], &args[3]);
    let StreamsRead { options, keys, ids } =
        match read_streams(args, 4, "xreadgroup", ctx.client.in_script) {
            Ok(read) => read,
            Err(e) => return e,
        };
    let ReadOptions {
        count,
        block,
        noack,
        ..
    } = options;
    // Parse every id, and check every stream and group, before reading anything.
    let mut starts = Vec::with_capacity(ids.len());
    for id in ids {
        if id.as_slice() == b"$" {
            return Reply::err(
                "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the \
                 history of this consumer by specifying a proper ID, or use the > ID to get new \
                 messages. The $ ID would just return an empty result set.",
            );
        }
        if id.as_slice() == b">" {
            starts.push(None);
        } else {
            match id_arg(id) {
                Ok(id) => starts.push(Some(id)),
                Err(e) => return e,
            }
        }
    }
    for key in keys {
        let found = match ctx.db().stream(key) {
            Ok(Some(s)) => s.groups.contains_key(group_name.as_slice()),
            Ok(None) => false,
            Err(e) => return e,
        };
        if !found {
            return Reply::err(format!(
                "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(group_name)
            ));
        }
    }
    let resp = ctx.client.resp;
    let mut results = Vec::new();
    for (key, start) in keys.iter().zip(&starts) {
        let stream = ctx.db().stream(key).ok().flatten().expect("checked above");
        let Stream {
            entries, groups, ..
        } = stream;
        let group = groups
            .get_mut(group_name.as_slice())
            .expect("checked above");
        let now = now_ms();
        // A history read creates the consumer; a read of new entries only when it gets some.
        // Either refreshes an existing consumer's last-seen time.
        if let Some(c) = group.consumers.get_mut(consumer.as_slice()) {
            c.seen_at = now;
        }
        if start.is_some() {
            touch_consumer(group, consumer);
        }
        let items = match start {
            None => {
                let new: Vec<(StreamId, Vec<Vec<u8>>)> = match group.last_delivered.next() {
                    Some(from) => entries
                        .range(from..)
                        .take(count.unwrap_or(usize::MAX))
                        .map(|(id, f)| (*id, f.clone()))
                        .collect(),
                    None => Vec::new(),
                };
                if new.is_empty() {
                    continue;
                }
                touch_consumer(group, consumer);
                for (id, _) in &new {
                    group.last_delivered = *id;
                    if !noack {
                        group.pending.insert(
                            *id,
                            Pending {
                                consumer: consumer.clone(),
                                delivered_at: now,
                                deliveries: 1,
                            },
                        );
                    }
                }
                new.iter().map(|(id, f)| entry_reply(*id, f)).collect()
            }
            // A history read delivers again: as `streamReplyWithRangeFromConsumerPEL` does, an
            // entry still in the stream gets a new delivery time and count; a deleted one is
            // reported with no fields and left as it was.
            Some(from) => match from.next() {
                Some(after) => group
                    .pending
                    .range_mut(after..)
                    .filter(|(_, p)| p.consumer == *consumer)
                    .take(count.unwrap_or(usize::MAX))
                    .map(|(id, pending)| match entries.get(id) {
                        Some(f) => {
                            pending.delivered_at = now;
                            pending.deliveries += 1;
                            entry_reply(*id, f)
                        }
                        None => Reply::Array(vec![
                            Reply::Bulk(id.to_string().into_bytes()),
                            Reply::NilArray,
                        ]),
                    })
                    .collect(),
                None => Vec::new(),
            },
        };
        results.push((Reply::bulk(key.clone()), Reply::Array(items)));
    }
    if results.is_empty() {
        if let (Some(ms), true) = (block, ctx.may_block) {
            ctx.would_block = Some((ms > 0).then(|| Duration::from_millis(ms)));
        }
        return Reply::NilArray;
    }
    streams_reply(resp, results)
}

/// A stream's entries.
type Entries = std::collections::BTreeMap<StreamId, Vec<Vec<u8>>>;

/// The stream `key` and its group `group`, or `NOGROUP`.
fn stream_group<'a>(
    ctx: &'a mut Ctx<'_>,
    key: &[u8],
    group: &[u8],
) -> Result<(&'a mut Entries, &'a mut Group), Reply> {
    match ctx.db().stream(key) {
        Ok(Some(s)) => {
            let Stream {
                entries, groups, ..
            } = s;
            match groups.get_mut(group) {
                Some(g) => Ok((entries, g)),
                None => Err(no_group(key, group)),
            }
        }
        Ok(None) => Err(no_group(key, group)),
        Err(e) => Err(e),
    }
}

/// `XPENDING key group [[IDLE ms] start end count [consumer]]`.
fn xpending(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let mut i = 3;
    let mut min_idle = None;
    if args.len() > 3 && is(&args[3], "IDLE") {
        match args.get(4).and_then(|a| parse_i64(a)) {
            Some(n) => min_idle = Some(n),
            None => return super::not_integer(),
        }
        i = 5;
    }
    let extended = args.len() > i;
    if extended && !(args.len() == i + 3 || args.len() == i + 4) {
        return syntax_error();
    }
    let mut range = None;
    if extended {
        let (start, end) = match (range_end(&args[i], true), range_end(&args[i + 1], false)) {
            (Ok(s), Ok(e)) => (s, e),
            (Err(e), _) | (_, Err(e)) => return e,
        };
        let Some(count) = parse_i64(&args[i + 2]) else {
            return super::not_integer();
        };
        range = Some((start, end, count.max(0) as usize, args.get(i + 3).cloned()));
    }
    let (_, group) = match stream_group(ctx, &args[1], &args[2]) {
        Ok(found) => found,
        Err(e) => return e,
    };
    let now = now_ms();
    let Some((start, end, count, consumer)) = range else {
        if group.pending.is_empty() {
            return Reply::Array(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::NilArray]);
        }
        let mut per_consumer: std::collections::BTreeMap<&[u8], u64> = Default::default();
        for p in group.pending.values() {
            *per_consumer.entry(&p.consumer).or_default() += 1;
        }
        let first = group.pending.keys().next().expect("not empty");
        let last = group.pending.keys().next_back().expect("not empty");
        return Reply::Array(vec![
            Reply::Int(group.pending.len() as i64),
            Reply::Bulk(first.to_string().into_bytes()),
            Reply::Bulk(last.to_string().into_bytes()),
            Reply::Array(
                per_consumer
                    .into_iter()
                    .map(|(c, n)| {
                        Reply::Array(vec![
                            Reply::bulk(c),
                            Reply::Bulk(n.to_string().into_bytes()),
                        ])
                    })
                    .collect(),
            ),
        ]);
    };
    let (Some(start), Some(end)) = (start, end) else {
        return Reply::Array(Vec::new());
    };
    if start > end {
        return Reply::Array(Vec::new());
    }
    Reply::Array(
        group
            .pending
            .range(start..=end)
            .filter(|(_, p)| consumer.as_ref().is_none_or(|c| p.consumer == *c))
            .filter(|(_, p)| min_idle.is_none_or(|m| now - p.delivered_at >= m))
            .take(count)
            .map(|(id, p)| {
                Reply::Array(vec![
                    Reply::Bulk(id.to_string().into_bytes()),
                    Reply::bulk(p.consumer.clone()),
                    Reply::Int(now - p.delivered_at),
                    Reply::Int(p.deliveries as i64),
                ])
            })
            .collect(),
    )
}

/// `XCLAIM key group consumer min-idle id ... [IDLE ms] [TIME ms] [RETRYCOUNT n] [FORCE]
/// [JUSTID] [LASTID id]`.
fn xclaim(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    // Redis looks the group up before it reads the other arguments.
    if let Err(e) = stream_group(ctx, &args[1], &args[2]) {
        return e;
    }
    let consumer = &args[3];
    let Some(min_idle) = parse_i64(&args[4]) else {
        return Reply::err("ERR Invalid min-idle-time argument for XCLAIM");
    };
    let mut ids = Vec::new();
    let mut i = 5;
    while i < args.len() {
        match StreamId::parse(&args[i], 0) {
            Some(id) => ids.push(id),
            None => break,
        }
        i += 1;
    }
    let now = now_ms();
    let (mut delivered_at, mut retry, mut force, mut justid) = (now, None, false, false);
    while i < args.len() {
        let a = &args[i];
        let value = args.get(i + 1).and_then(|v| parse_i64(v));
        if is(a, "FORCE") {
            force = true;
        } else if is(a, "JUSTID") {
            justid = true;
        } else if let (true, Some(ms)) = (is(a, "IDLE"), value) {
            delivered_at = now - ms;
            i += 1;
        } else if let (true, Some(at)) = (is(a, "TIME"), value) {
            delivered_at = at;
            i += 1;
        } else if is(a, "RETRYCOUNT") && value.is_some() {
            retry = value;
            i += 1;
        } else if is(a, "LASTID") && args.get(i + 1).is_some() {
            if StreamId::parse(&args[i + 1], 0).is_none() {
                return invalid_id();
            }
            i += 1;
        } else {
            return Reply::err(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                String::from_utf8_lossy(a)
            ));
        }
        i += 1;
    }
    let (entries, group) = match stream_group(ctx, &args[1], &args[2]) {
        Ok(found) => found,
        Err(e) => return e,
    };
    let mut claimed = Vec::new();
    for id in ids {
        if !entries.contains_key(&id) {
            // Deleted from the stream: it leaves the pending list too.
            group.pending.remove(&id);
            continue;
        }
        if force && !group.pending.contains_key(&id) {
            group.pending.insert(
                id,
                Pending {
                    consumer: consumer.clone(),
                    delivered_at: now,
                    deliveries: 0,
                },
            );
        }
        let Some(pending) = group.pending.get_mut(&id) else {
            continue;
        };
        if min_idle > 0 && now - pending.delivered_at < min_idle {
            continue;
        }
        pending.consumer = consumer.clone();
        pending.delivered_at = delivered_at;
        // Redis creates the consumer when it first claims something.
        group
            .consumers
            .entry(consumer.clone())
            .or_insert(Consumer { seen_at: now });
        if let Some(n) = retry {
            pending.deliveries = n as u64;
        } else if !justid {
            pending.deliveries += 1;
        }
        claimed.push(if justid {
            Reply::Bulk(id.to_string().into_bytes())
        } else {
            entry_reply(id, &entries[&id])
        });
    }
    Reply::Array(claimed)
}

/// `XAUTOCLAIM key group consumer min-idle start [COUNT n] [JUSTID]`.
fn xautoclaim(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let consumer = &args[3];
    let Some(min_idle) = parse_i64(&args[4]).map(|n| n.max(0)) else {
        return Reply::err("ERR Invalid min-idle-time argument for XAUTOCLAIM");
    };
    let start = match range_end(&args[5], true) {
        Ok(Some(s)) => s,
        Ok(None) => return invalid_id(),
        Err(e) => return e,
    };
    let (mut count, mut justid) = (100_usize, false);
    let mut i = 6;
    while i < args.len() {
        if is(&args[i], "JUSTID") {
            justid = true;
            i += 1;
        } else if is(&args[i], "COUNT") && i + 1 < args.len() {
            match parse_i64(&args[i + 1]) {
                Some(n) if (1..=i64::MAX / 10).contains(&n) => count = n as usize,
                Some(_) => return Reply::err("ERR COUNT must be > 0"),
                None => return super::not_integer(),
            }
            i += 2;
        } else {
            return syntax_error();
        }
    }
    let (entries, group) = match stream_group(ctx, &args[1], &args[2]) {
        Ok(found) => found,
        Err(e) => return e,
    };
    let now = now_ms();
    let mut attempts = count * 10;
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    let mut next = StreamId::MIN;
    let candidates: Vec<StreamId> = group.pending.range(start..).map(|(id, _)| *id).collect();
    let mut iter = candidates.into_iter().peekable();
    while let Some(&id) = iter.peek() {
        // Deleted entries count toward COUNT too: it bounds the reply's size (as in Redis).
        if attempts == 0 || claimed.len() + deleted.len() >= count {
            next = id;
            break;
        }
        iter.next();
        attempts -= 1;
        if !entries.contains_key(&id) {
            group.pending.remove(&id);
            deleted.push(Reply::Bulk(id.to_string().into_bytes()));
            continue;
        }
        let pending = group.pending.get_mut(&id).expect("a candidate is pending");
        if now - pending.delivered_at < min_idle {
            continue;
        }
        pending.consumer = consumer.clone();
        pending.delivered_at = now;
        group
            .consumers
            .entry(consumer.clone())
            .or_insert(Consumer { seen_at: now });
        if !justid {
            pending.deliveries += 1;
        }
        claimed.push(if justid {
            Reply::Bulk(id.to_string().into_bytes())
        } else {
            entry_reply(id, &entries[&id])
        });
    }
    Reply::Array(vec![
        Reply::Bulk(next.to_string().into_bytes()),
        Reply::Array(claimed),
        Reply::Array(deleted),
    ])
}

/// `XINFO CONSUMERS key group`: each consumer's name, pending count and idle time (ms).
fn info_consumers(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let (key, group_name) = (&args[2], &args[3]);
    let stream = match ctx.db().stream(key) {
        Ok(Some(s)) => s,
        Ok(None) => return Reply::err("ERR no such key"),
        Err(e) => return e,
    };
    let Some(group) = stream.groups.get(group_name.as_slice()) else {
        return Reply::err(format!(
            "NOGROUP No such consumer group '{}' for key name '{}'",
            String::from_utf8_lossy(group_name),
            String::from_utf8_lossy(key)
        ));
    };
    let now = now_ms();
    Reply::Array(
        group
            .consumers
            .iter()
            .map(|(name, consumer)| {
                let pending = group
                    .pending
                    .values()
                    .filter(|p| p.consumer == *name)
                    .count();
                Reply::Map(vec![
                    (Reply::bulk("name"), Reply::bulk(name.clone())),
                    (Reply::bulk("pending"), Reply::Int(pending as i64)),
                    (
                        Reply::bulk("idle"),
                        Reply::Int((now - consumer.seen_at).max(0)),
                    ),
                ])
            })
            .collect(),
    )
}
