//! Connection and server commands: `PING`, `AUTH`, `HELLO`, `SELECT`, `CLIENT`, `INFO`,
//! `CONFIG`, `ACL SETUSER`, `TIME`, `QUIT`.

use std::fmt::Write as _;
use std::net::Shutdown;

use super::{
    cmd, container, is, parse_i64, syntax_error, Ctx, Spec, NOAUTH, NOQUEUE, NOSCRIPT, WRITE,
};
use crate::db::DATABASES;
use crate::resp::Reply;

/// The Redis version this server answers as (the replies it matches are 7.0's).
pub(crate) const VERSION: &str = "7.0.15";

pub(super) static COMMANDS: &[Spec] = &[
    cmd("ping", -1, 0, ping),
    cmd("echo", 2, 0, |_, a| Reply::bulk(a[1].clone())),
    cmd("select", 2, 0, select),
    cmd("auth", -2, NOSCRIPT | NOAUTH | NOQUEUE, auth),
    cmd("hello", -1, NOSCRIPT | NOAUTH | NOQUEUE, hello),
    cmd("quit", -1, NOAUTH | NOQUEUE, |c, _| {
        c.client.quit = true;
        Reply::ok()
    }),
    cmd("time", 1, 0, time),
    cmd("info", -1, 0, info),
    // `CLIENT KILL` wakes blocked clients (WRITE) so that a killed one stops waiting.
    container("client", WRITE | NOSCRIPT, CLIENT_COMMANDS),
    container("config", NOSCRIPT, CONFIG_COMMANDS),
    container("acl", NOSCRIPT, ACL_COMMANDS),
];

static CLIENT_COMMANDS: &[Spec] = &[
    cmd("setinfo", 4, 0, |_, _| Reply::ok()),
    cmd("setname", 3, 0, |c, a| {
        c.client.name = Some(a[2].clone());
        Reply::ok()
    }),
    cmd("getname", 2, 0, |c, _| {
        c.client.name.clone().map_or(Reply::Nil, Reply::Bulk)
    }),
    cmd("id", 2, 0, |c, _| Reply::Int(c.client.id as i64)),
    cmd("kill", -3, 0, client_kill),
    cmd("pause", -3, 0, client_pause),
    cmd("unpause", 2, 0, |c, _| {
        c.data.paused = None;
        Reply::ok()
    }),
];

static CONFIG_COMMANDS: &[Spec] = &[
    cmd("get", -3, 0, config_get),
    cmd("set", -4, 0, config_set),
    cmd("resetstat", 2, 0, |c, _| {
        c.data.stats.clear();
        Reply::ok()
    }),
];

static ACL_COMMANDS: &[Spec] = &[
    cmd("setuser", -3, 0, acl_setuser),
    cmd("whoami", 2, 0, |_, _| Reply::bulk("default")),
];

fn ping(_: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    match args.len() {
        1 => Reply::Status("PONG".to_owned()),
        2 => Reply::bulk(args[1].clone()),
        _ => Reply::err("ERR wrong number of arguments for 'ping' command"),
    }
}

fn select(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    match parse_i64(&args[1]) {
        Some(n) if (0..DATABASES as i64).contains(&n) => {
            ctx.client.db = n as usize;
            Reply::ok()
        }
        Some(n) if i32::try_from(n).is_err() => {
            Reply::err("ERR value is out of range, value must between -2147483648 and 2147483647")
        }
        Some(_) => Reply::err("ERR DB index is out of range"),
        None => super::not_integer(),
    }
}

/// Checks a user's password: `default` against `requirepass`, others against `ACL SETUSER`.
fn check_password(ctx: &Ctx<'_>, user: &[u8], password: &[u8]) -> bool {
    let user = String::from_utf8_lossy(user);
    let password = String::from_utf8_lossy(password);
    if user == "default" {
        return match &ctx.data.requirepass {
            Some(required) => *required == password,
            None => true,
        };
    }
    ctx.data
        .users
        .get(user.as_ref())
        .is_some_and(|passwords| passwords.iter().any(|p| *p == password))
}

fn wrongpass() -> Reply {
    Reply::err("WRONGPASS invalid username-password pair or user is disabled.")
}

/// `AUTH password` or `AUTH user password`.
fn auth(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let (user, password): (&[u8], &[u8]) = match args.len() {
        2 => {
            if ctx.data.requirepass.is_none() {
                return Reply::err(
                    "ERR AUTH <password> called without any password configured for the default \
                     user. Are you sure your configuration is correct?",
                );
            }
            (b"default", &args[1])
        }
        3 => (&args[1], &args[2]),
        _ => return syntax_error(),
    };
    if check_password(ctx, user, password) {
        ctx.client.authenticated = true;
        Reply::ok()
    } else {
        wrongpass()
    }
}

/// `HELLO [protover [AUTH user password] [SETNAME name]]`.
fn hello(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let mut version = ctx.client.resp;
    if let Some(v) = args.get(1) {
        match parse_i64(v) {
            Some(2) => version = 2,
            Some(3) => version = 3,
            Some(_) => return Reply::err("NOPROTO unsupported protocol version"),
            None => return Reply::err("ERR Protocol version is not an integer or out of range"),
        }
    }
    let mut i = 2;
    let mut name = None;
    while i < args.len() {
        if is(&args[i], "AUTH") && i + 2 < args.len() {
            if !check_password(ctx, &args[i + 1], &args[i + 2]) {
                return wrongpass();
            }
            ctx.client.authenticated = true;
            i += 3;
        } else if is(&args[i], "SETNAME") && i + 1 < args.len() {
            name = Some(args[i + 1].clone());
            i += 2;
        } else {
            return Reply::err(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&args[i])
            ));
        }
    }
    if !ctx.client.authenticated {
        return Reply::err(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
             select the RESP protocol version at the same time",
        );
    }
    if name.is_some() {
        ctx.client.name = name;
    }
    ctx.client.resp = version;
    let field = |k: &str, v: Reply| (Reply::bulk(k), v);
    Reply::Map(vec![
        field("server", Reply::bulk("redis")),
        field("version", Reply::bulk(VERSION)),
        field("proto", Reply::Int(i64::from(version))),
        field("id", Reply::Int(ctx.client.id as i64)),
        field("mode", Reply::bulk("standalone")),
        field("role", Reply::bulk("master")),
        field("modules", Reply::Array(Vec::new())),
    ])
}

fn time(_: &mut Ctx<'_>, _: &[Vec<u8>]) -> Reply {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Reply::bulks([
        now.as_secs().to_string().into_bytes(),
        now.subsec_micros().to_string().into_bytes(),
    ])
}

/// `INFO [section ...]`: server, clients, stats, keyspace and commandstats.
fn info(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let wanted: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let everything = wanted.iter().any(|w| w == "all" || w == "everything");
    let default = wanted.is_empty() || wanted.iter().any(|w| w == "default");
    let show = |section: &str, in_default: bool| {
        everything || (default && in_default) || wanted.iter().any(|w| w == section)
    };
    let mut out = String::new();
    if show("server", true) {
        let uptime = ctx.data.started.elapsed().as_secs();
        let _ = write!(
            out,
            "# Server\r\nredis_version:{VERSION}\r\nredis_mode:standalone\r\n\
             process_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{uptime}\r\n\
             executable:in-process (dag-testing)\r\n\r\n",
            std::process::id(),
            ctx.data.port
        );
    }
    if show("clients", true) {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\n\r\n",
            ctx.data.clients.len()
        );
    }
    if show("stats", true) {
        let total: u64 = ctx.data.stats.values().map(|s| s.calls).sum();
        let _ = write!(out, "# Stats\r\ntotal_commands_processed:{total}\r\n\r\n");
    }
    if show("commandstats", false) {
        out.push_str("# Commandstats\r\n");
        for (name, stat) in &ctx.data.stats {
            let per_call = if stat.calls == 0 {
                0.0
            } else {
                stat.usec as f64 / stat.calls as f64
            };
            let _ = write!(
                out,
                "cmdstat_{name}:calls={},usec={},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}\r\n",
                stat.calls, stat.usec, stat.rejected, stat.failed
            );
        }
        out.push_str("\r\n");
    }
    if show("keyspace", true) {
        out.push_str("# Keyspace\r\n");
        for (i, db) in ctx.data.dbs.iter_mut().enumerate() {
            let keys = db.len();
            if keys > 0 {
                let _ = write!(out, "db{i}:keys={keys},expires=0,avg_ttl=0\r\n");
            }
        }
    }
    Reply::Bulk(out.into_bytes())
}

/// The parameters `CONFIG GET` knows, with their values.
fn config_values(ctx: &Ctx<'_>) -> Vec<(&'static str, String)> {
    vec![
        ("appendonly", "no".to_owned()),
        ("save", String::new()),
        ("databases", DATABASES.to_string()),
        ("port", ctx.data.port.to_string()),
        ("bind", "127.0.0.1".to_owned()),
        ("maxmemory", "0".to_owned()),
        (
            "requirepass",
            ctx.data.requirepass.clone().unwrap_or_default(),
        ),
        ("stream-node-max-entries", "100".to_owned()),
        ("lua-time-limit", "5000".to_owned()),
    ]
}

fn config_get(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let values = config_values(ctx);
    let mut found = Vec::new();
    for (name, value) in &values {
        if args[2..]
            .iter()
            .any(|pattern| super::glob_match(&pattern.to_ascii_lowercase(), name.as_bytes()))
        {
            found.push((Reply::bulk(*name), Reply::bulk(value.clone())));
        }
    }
    Reply::Map(found)
}

fn config_set(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    if args.len() % 2 == 1 {
        return Reply::err("ERR wrong number of arguments for 'config|set' command");
    }
    for pair in args[2..].chunks(2) {
        let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
        match name.as_str() {
            "requirepass" => {
                let password = String::from_utf8_lossy(&pair[1]).into_owned();
                ctx.data.requirepass = (!password.is_empty()).then_some(password);
            }
            "appendonly" | "save" | "maxmemory" | "lua-time-limit" => {}
            _ => {
                return Reply::err(format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                ))
            }
        }
    }
    Reply::ok()
}

/// `CLIENT KILL ip:port` or `CLIENT KILL [ID id] [TYPE normal] [SKIPME yes|no] ...`.
fn client_kill(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    if args.len() == 3 {
        // The old form names an address; clients are not listed by address here.
        return Reply::err("ERR No such client");
    }
    if args.len() % 2 == 1 {
        return syntax_error();
    }
    let (mut id, mut skipme) = (None, true);
    for pair in args[2..].chunks(2) {
        let value = &pair[1];
        if is(&pair[0], "ID") {
            match parse_i64(value) {
                Some(n) => id = Some(n as u64),
                None => return Reply::err("ERR client-id should be greater than 0"),
            }
        } else if is(&pair[0], "TYPE") {
            if !(is(value, "normal")
                || is(value, "master")
                || is(value, "replica")
                || is(value, "pubsub"))
            {
                return Reply::err(format!(
                    "ERR Unknown client type '{}'",
                    String::from_utf8_lossy(value)
                ));
            }
            if !is(value, "normal") {
                id = Some(0);
            }
        } else if is(&pair[0], "SKIPME") {
            if is(value, "yes") {
                skipme = true;
            } else if is(value, "no") {
                skipme = false;
            } else {
                return syntax_error();
            }
        } else if is(&pair[0], "USER") || is(&pair[0], "ADDR") || is(&pair[0], "LADDR") {
            // Accepted, not filtered on: every client here is the default user on loopback.
        } else {
            return syntax_error();
        }
    }
    let me = ctx.client.id;
    let doomed: Vec<u64> = ctx
        .data
        .clients
        .keys()
        .copied()
        .filter(|c| id.is_none_or(|id| id == *c))
        .filter(|c| !(skipme && *c == me))
        .collect();
    for client in &doomed {
        if let Some(stream) = ctx.data.clients.remove(client) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
    Reply::Int(doomed.len() as i64)
}

/// `ACL SETUSER name [on|off] [>password ...] [rules ...]`: enough for users with passwords.
fn acl_setuser(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let name = String::from_utf8_lossy(&args[2]).into_owned();
    let mut enabled = None;
    let mut passwords = ctx.data.users.get(&name).cloned().unwrap_or_default();
    for rule in &args[3..] {
        if is(rule, "on") {
            enabled = Some(true);
        } else if is(rule, "off") {
            enabled = Some(false);
        } else if let Some(password) = rule.strip_prefix(b">") {
            passwords.push(String::from_utf8_lossy(password).into_owned());
        } else if is(rule, "nopass") || is(rule, "resetpass") {
            passwords.clear();
        }
        // Key, channel and command rules (~*, &*, +@all) are accepted: every user may do all.
    }
    if enabled == Some(false) {
        ctx.data.users.remove(&name);
    } else {
        ctx.data.users.insert(name, passwords);
    }
    Reply::ok()
}

/// `CLIENT PAUSE ms [WRITE|ALL]`: commands (or only writes) of every client wait until `ms`
/// have passed or `CLIENT UNPAUSE`.
fn client_pause(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let Some(ms) = parse_i64(&args[2]) else {
        return Reply::err("ERR timeout is not an integer or out of range");
    };
    if ms < 0 {
        return Reply::err("ERR timeout is negative");
    }
    let all = match args.get(3) {
        None => true,
        Some(mode) if is(mode, "ALL") => true,
        Some(mode) if is(mode, "WRITE") => false,
        Some(_) => return syntax_error(),
    };
    if args.len() > 4 {
        return syntax_error();
    }
    let until = std::time::Instant::now() + std::time::Duration::from_millis(ms as u64);
    ctx.data.paused = Some((until, all));
    Reply::ok()
}
