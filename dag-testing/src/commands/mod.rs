//! The command table and the one function that runs a command: lookup, arity, authentication,
//! transactions, statistics; one file per data type holds the commands themselves.

mod hashes;
mod keys;
mod lists;
mod server;
mod sets;
mod streams;
mod strings;
mod transactions;
mod zsets;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpStream;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use crate::db::{Db, DATABASES};
use crate::resp::Reply;
use crate::scripting::Scripting;

/// The command writes (blocked clients are woken after it).
pub(crate) const WRITE: u8 = 1;
/// The command may not run inside a script.
pub(crate) const NOSCRIPT: u8 = 2;
/// The command may run before `AUTH` on a server with a password.
pub(crate) const NOAUTH: u8 = 4;
/// The command runs at once inside `MULTI` instead of being queued.
pub(crate) const NOQUEUE: u8 = 8;

/// A command's implementation: `args[0]` is the command name (and `args[1]` the subcommand's).
pub(crate) type Handler = fn(&mut Ctx<'_>, &[Vec<u8>]) -> Reply;

/// One command (or subcommand) of the table.
pub(crate) struct Spec {
    /// Lowercase name, as `INFO commandstats` and error messages show it.
    pub(crate) name: &'static str,
    /// Redis's arity: `n` exactly n arguments (the name included), `-n` at least n.
    pub(crate) arity: i32,
    /// [`WRITE`], [`NOSCRIPT`], [`NOAUTH`], [`NOQUEUE`].
    pub(crate) flags: u8,
    /// The implementation (unused for a container of subcommands).
    pub(crate) run: Handler,
    /// Subcommands (`XGROUP CREATE`), looked up by `args[1]`.
    pub(crate) subs: &'static [Spec],
}

/// A command spec without subcommands.
pub(crate) const fn cmd(name: &'static str, arity: i32, flags: u8, run: Handler) -> Spec {
    Spec {
        name,
        arity,
        flags,
        run,
        subs: &[],
    }
}

/// A command with subcommands.
pub(crate) const fn container(name: &'static str, flags: u8, subs: &'static [Spec]) -> Spec {
    Spec {
        name,
        arity: -2,
        flags,
        run: |_, _| Reply::Nil,
        subs,
    }
}

static TABLE: LazyLock<HashMap<&'static str, &'static Spec>> = LazyLock::new(|| {
    let groups: [&'static [Spec]; 9] = [
        strings::COMMANDS,
        keys::COMMANDS,
        hashes::COMMANDS,
        sets::COMMANDS,
        lists::COMMANDS,
        zsets::COMMANDS,
        streams::COMMANDS,
        server::COMMANDS,
        transactions::COMMANDS,
    ];
    groups
        .into_iter()
        .flatten()
        .chain(crate::scripting::COMMANDS)
        .map(|spec| (spec.name, spec))
        .collect()
});

/// Calls, time and errors of one command, for `INFO commandstats`.
#[derive(Debug, Default, Clone)]
pub(crate) struct CommandStat {
    pub(crate) calls: u64,
    pub(crate) usec: u64,
    pub(crate) rejected: u64,
    pub(crate) failed: u64,
}

/// A connected client, as the commands see it.
#[derive(Debug)]
pub(crate) struct Client {
    /// `CLIENT ID`.
    pub(crate) id: u64,
    /// The selected database.
    pub(crate) db: usize,
    /// The protocol version, 2 or 3 (`HELLO`).
    pub(crate) resp: u8,
    /// Whether `AUTH` succeeded (or no password is required).
    pub(crate) authenticated: bool,
    /// `CLIENT SETNAME`.
    pub(crate) name: Option<Vec<u8>>,
    /// Commands queued since `MULTI`, if in a transaction.
    pub(crate) multi: Option<Vec<Vec<Vec<u8>>>>,
    /// A command queued since `MULTI` was rejected: `EXEC` aborts.
    pub(crate) multi_failed: bool,
    /// Inside a script: errors are worded for scripts, blocking is refused.
    pub(crate) in_script: bool,
    /// `QUIT` was received: close after the reply.
    pub(crate) quit: bool,
}

impl Client {
    /// A new client; it is authenticated unless the server requires a password.
    pub(crate) fn new(id: u64, needs_auth: bool) -> Client {
        Client {
            id,
            db: 0,
            resp: 2,
            authenticated: !needs_auth,
            name: None,
            multi: None,
            multi_failed: false,
            in_script: false,
            quit: false,
        }
    }
}

/// Everything commands read and write, guarded by the server's one lock.
pub(crate) struct Data {
    /// The databases.
    pub(crate) dbs: Vec<Db>,
    /// Loaded scripts by SHA1 (hex): the bodies (compiled functions live in [`Scripting`]).
    pub(crate) scripts: HashMap<String, Vec<u8>>,
    /// `INFO commandstats`.
    pub(crate) stats: BTreeMap<String, CommandStat>,
    /// `requirepass`, if any.
    pub(crate) requirepass: Option<String>,
    /// ACL users (`ACL SETUSER name on >password`): their passwords.
    pub(crate) users: HashMap<String, Vec<String>>,
    /// Connected clients' sockets, by id (`CLIENT KILL` shuts them down).
    pub(crate) clients: HashMap<u64, TcpStream>,
    /// When the server started (`INFO server`).
    pub(crate) started: Instant,
    /// The port (`INFO server`).
    pub(crate) port: u16,
    /// `CLIENT PAUSE`: until when, and whether all commands wait (`ALL`) or only writes.
    pub(crate) paused: Option<(Instant, bool)>,
}

impl Data {
    /// An empty server's data.
    pub(crate) fn new(requirepass: Option<String>, port: u16) -> Data {
        Data {
            dbs: (0..DATABASES).map(|_| Db::default()).collect(),
            scripts: HashMap::new(),
            stats: BTreeMap::new(),
            requirepass,
            users: HashMap::new(),
            clients: HashMap::new(),
            started: Instant::now(),
            port,
            paused: None,
        }
    }
}

/// What a command runs with: the data, the client, the Lua engine (absent inside a script).
pub(crate) struct Ctx<'a> {
    pub(crate) data: &'a mut Data,
    pub(crate) client: &'a mut Client,
    pub(crate) scripting: Option<&'a mut Scripting>,
    /// Set by a blocking command that found nothing: retry it until this timeout (`None`:
    /// forever), then send the reply it returned.
    pub(crate) would_block: Option<Option<Duration>>,
    /// Whether the command may block (not inside `MULTI`).
    pub(crate) may_block: bool,
    /// Set by a blocking command whose retries must run other arguments: `XREAD`'s `$`, which
    /// stands for the stream's last id when the command was first run, not when it is retried.
    pub(crate) retry_with: Option<Vec<Vec<u8>>>,
}

impl Ctx<'_> {
    /// The selected database.
    pub(crate) fn db(&mut self) -> &mut Db {
        &mut self.data.dbs[self.client.db]
    }
}

/// Whether `CLIENT PAUSE` holds `args` back now: every command but `CLIENT ...` with `ALL`,
/// writes (scripts included) with `WRITE`.
pub(crate) fn is_paused(data: &Data, args: &[Vec<u8>]) -> Option<Instant> {
    let (until, all) = data.paused?;
    if Instant::now() >= until || args.first().is_some_and(|a| is(a, "CLIENT")) {
        return None;
    }
    (all || is_write(args)).then_some(until)
}

/// Whether running `args` would write (so that blocked clients are woken afterwards).
pub(crate) fn is_write(args: &[Vec<u8>]) -> bool {
    let Some(name) = args.first() else {
        return false;
    };
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    match TABLE.get(name.as_str()) {
        Some(spec) => spec.flags & WRITE != 0,
        None => false,
    }
}

/// Runs one command as a client sent it (or as a script's `redis.call` did): looks it up,
/// checks arity, authentication and transactions, runs it and counts it.
pub(crate) fn execute(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let Some(name) = args.first() else {
        return Reply::err("ERR empty command");
    };
    let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
    let in_script = ctx.client.in_script;
    let Some(&spec) = TABLE.get(lower.as_str()) else {
        flag_multi(ctx);
        if in_script {
            return Reply::err("ERR Unknown Redis command called from script");
        }
        return Reply::err(unknown_command(args));
    };
    let (spec, full_name) = match resolve(spec, args) {
        Ok(found) => found,
        Err(reply) => {
            flag_multi(ctx);
            return reply;
        }
    };
    if !arity_ok(spec.arity, args.len()) {
        flag_multi(ctx);
        ctx.data
            .stats
            .entry(full_name.clone())
            .or_default()
            .rejected += 1;
        if in_script {
            return Reply::err("ERR Wrong number of args calling Redis command from script");
        }
        return Reply::err(format!(
            "ERR wrong number of arguments for '{full_name}' command"
        ));
    }
    if in_script && spec.flags & NOSCRIPT != 0 {
        return Reply::err("ERR This Redis command is not allowed from script");
    }
    if !ctx.client.authenticated && spec.flags & NOAUTH == 0 {
        flag_multi(ctx);
        return Reply::err("NOAUTH Authentication required.");
    }
    if ctx.client.multi.is_some() && spec.flags & NOQUEUE == 0 {
        if let Some(queue) = ctx.client.multi.as_mut() {
            queue.push(args.to_vec());
        }
        return Reply::Status("QUEUED".to_owned());
    }
    let started = Instant::now();
    let reply = (spec.run)(ctx, args);
    if ctx.would_block.is_none() {
        let stat = ctx.data.stats.entry(full_name).or_default();
        stat.calls += 1;
        stat.usec += started.elapsed().as_micros() as u64;
        if reply.is_error() {
            stat.failed += 1;
        }
    }
    reply
}

/// The spec a command resolves to (its subcommand's, for a container) and its full name.
fn resolve(spec: &'static Spec, args: &[Vec<u8>]) -> Result<(&'static Spec, String), Reply> {
    if spec.subs.is_empty() {
        return Ok((spec, spec.name.to_owned()));
    }
    let Some(sub) = args.get(1) else {
        return Err(Reply::err(format!(
            "ERR wrong number of arguments for '{}' command",
            spec.name
        )));
    };
    let sub_lower = String::from_utf8_lossy(sub).to_ascii_lowercase();
    match spec.subs.iter().find(|s| s.name == sub_lower) {
        Some(found) => Ok((found, format!("{}|{}", spec.name, found.name))),
        None => Err(Reply::err(format!(
            "ERR unknown subcommand '{}'. Try {} HELP.",
            String::from_utf8_lossy(&sub[..sub.len().min(128)]),
            spec.name.to_ascii_uppercase()
        ))),
    }
}

fn arity_ok(arity: i32, given: usize) -> bool {
    if arity >= 0 {
        given == arity as usize
    } else {
        given >= arity.unsigned_abs() as usize
    }
}

/// A rejected command inside `MULTI` makes `EXEC` abort.
fn flag_multi(ctx: &mut Ctx<'_>) {
    if ctx.client.multi.is_some() {
        ctx.client.multi_failed = true;
    }
}

/// Redis's text for a command it does not know.
fn unknown_command(args: &[Vec<u8>]) -> String {
    let mut listed = String::new();
    for arg in &args[1..] {
        if listed.len() >= 128 {
            break;
        }
        let room = 128 - listed.len();
        let text = String::from_utf8_lossy(arg);
        let shown: String = text.chars().take(room).collect();
        listed.push_str(&format!("'{shown}' "));
    }
    let name = String::from_utf8_lossy(&args[0]);
    let name: String = name.chars().take(128).collect();
    format!("ERR unknown command '{name}', with args beginning with: {listed}")
        .replace(['\r', '\n'], " ")
}

// Argument helpers shared by the command files.

/// `ERR syntax error`.
pub(crate) fn syntax_error() -> Reply {
    Reply::err("ERR syntax error")
}

/// The error for an argument that is not an integer.
pub(crate) fn not_integer() -> Reply {
    Reply::err("ERR value is not an integer or out of range")
}

/// Whether `arg` is `word`, ignoring ASCII case.
pub(crate) fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// Parses a signed 64-bit integer the way Redis does (no spaces, no `+`, no leading zeros).
pub(crate) fn parse_i64(arg: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(arg).ok()?;
    if text.is_empty()
        || text.starts_with('+')
        || (text.len() > 1 && text.starts_with('0'))
        || text.starts_with("-0")
    {
        return None;
    }
    text.parse().ok()
}

/// Parses a float the way Redis's `strtod`-based parsing accepts it (`inf`, `-inf` too).
pub(crate) fn parse_f64(arg: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(arg).ok()?;
    if text.is_empty()
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace)
    {
        return None;
    }
    let value: f64 = match text.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => text.parse().ok()?,
    };
    if value.is_nan() {
        return None;
    }
    Some(value)
}

/// A timeout in seconds (`BLPOP`), as a duration; `None` for 0 (forever).
pub(crate) fn timeout_secs(arg: &[u8]) -> Result<Option<Duration>, Reply> {
    let secs = parse_f64(arg)
        .filter(|s| s.is_finite())
        .ok_or_else(|| Reply::err("ERR timeout is not a float or out of range"))?;
    if secs < 0.0 {
        return Err(Reply::err("ERR timeout is negative"));
    }
    Ok((secs > 0.0).then(|| Duration::from_secs_f64(secs)))
}

/// Redis's glob matching (`KEYS`, `SCAN MATCH`): `*`, `?`, `[...]` with ranges and `^`, `\`.
pub(crate) fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let (mut star_p, mut star_t) = (None, 0);
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star_p = Some(p);
                    star_t = t;
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = match_class(pattern, p, text[t]) {
                        if matched {
                            p = next;
                            t += 1;
                            continue;
                        }
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == text[t] {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                c => {
                    if c == text[t] {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        match star_p {
            Some(sp) => {
                p = sp + 1;
                star_t += 1;
                t = star_t;
            }
            None => return false,
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

/// Matches `c` against the class starting at `pattern[start] == b'['`: whether it matched and
/// the index after the class.
fn match_class(pattern: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    while i < pattern.len() && pattern[i] != b']' {
        if pattern[i] == b'\\' && i + 1 < pattern.len() {
            matched |= pattern[i + 1] == c;
            i += 2;
        } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            let (lo, hi) = (
                pattern[i].min(pattern[i + 2]),
                pattern[i].max(pattern[i + 2]),
            );
            matched |= (lo..=hi).contains(&c);
            i += 3;
        } else {
            matched |= pattern[i] == c;
            i += 1;
        }
    }
    if i >= pattern.len() {
        return None;
    }
    Some((matched != negate, i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_redis() {
        assert!(glob_match(b"dag:{*", b"dag:{abc}:plan"));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"h?llo", b"hello"));
        assert!(glob_match(b"h[ae]llo", b"hallo"));
        assert!(!glob_match(b"h[^e]llo", b"hello"));
        assert!(glob_match(b"h[a-c]llo", b"hbllo"));
        assert!(!glob_match(b"a*b", b"acbd"));
        assert!(glob_match(b"a\\*", b"a*"));
    }

    #[test]
    fn integers_parse_strictly() {
        assert_eq!(parse_i64(b"12"), Some(12));
        assert_eq!(parse_i64(b"-3"), Some(-3));
        assert_eq!(parse_i64(b"012"), None);
        assert_eq!(parse_i64(b" 1"), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b"0"), Some(0));
    }
}
