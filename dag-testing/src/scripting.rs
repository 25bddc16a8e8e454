//! Lua scripting as Redis 7.0 does it: `EVAL`, `EVALSHA`, `SCRIPT LOAD|EXISTS|FLUSH`, on a
//! real Lua 5.1 (mlua, vendored), with `redis.call`/`redis.pcall`, `redis.error_reply`,
//! `redis.status_reply`, `redis.sha1hex`, Redis's reply conversions both ways, read-only globals
//! and its error texts (`... script: <sha>, on @user_script:<line>.`).
//!
//! A script runs while the server's lock is held, so it is atomic like in Redis; what it wrote
//! before an error stays written.

use std::cell::RefCell;
use std::collections::HashMap;

use mlua::{Function, Lua, LuaOptions, MultiValue, StdLib, Table, Value as LuaValue};

use crate::commands::{cmd, container, execute, is, parse_i64, Ctx, Spec, NOSCRIPT, WRITE};
use crate::resp::Reply;

/// The scripting commands (joined to the command table).
pub(crate) static COMMANDS: &[Spec] = &[
    cmd("eval", -3, WRITE | NOSCRIPT, eval),
    cmd("evalsha", -3, WRITE | NOSCRIPT, evalsha),
    container("script", NOSCRIPT, SCRIPT_COMMANDS),
];

static SCRIPT_COMMANDS: &[Spec] = &[
    cmd("load", 3, 0, script_load),
    cmd("exists", -3, 0, script_exists),
    cmd("flush", -2, 0, script_flush),
];

/// Set up once per Lua state: the `redis` table, the error handler, the runner and the
/// read-only environment scripts see. Returns `run(f)`, `bind(exec)` and the environment.
const BOOTSTRAP: &str = r#"
local exec = nil
local getinfo = debug.getinfo
local G = _G

redis = {}
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3

function redis.pcall(...)
  return exec(...)
end

-- redis.call itself is a C function (see CALL_TRAMPOLINE) that calls this one: a C function
-- keeps the calling script's frame even in `return redis.call(...)`, so an error it raises
-- names the script's line, as in Redis.
local function call(...)
  local reply = exec(...)
  if type(reply) == 'table' and rawget(reply, 'err') ~= nil then
    error(reply)
  end
  return reply
end

function redis.error_reply(msg)
  if type(msg) ~= 'string' then
    error('wrong number or type of arguments', 2)
  end
  if string.sub(msg, 1, 1) == '-' then
    msg = string.sub(msg, 2)
  end
  return {err = msg}
end

function redis.status_reply(msg)
  if type(msg) ~= 'string' then
    error('wrong number or type of arguments', 2)
  end
  return {ok = msg}
end

function redis.log() end
function redis.set_repl() end
function redis.replicate_commands() return true end
function redis.setresp(v)
  if v ~= 2 then error('RESP version other than 2 is not supported here', 2) end
end

-- Redis's error handler: a string error becomes {err = 'ERR ' .. msg}; the position is the
-- innermost frame of the user's script.
local function handler(err)
  local level, info = 2, nil
  while true do
    info = getinfo(level, 'Sl')
    if info == nil or info.source == '@user_script' then break end
    level = level + 1
  end
  if type(err) ~= 'table' then
    err = {err = 'ERR ' .. tostring(err)}
  end
  if info then
    err.source = info.source
    err.line = info.currentline
  end
  return err
end

local function run(f)
  return xpcall(f, handler)
end

local function bind(f)
  exec = f
end

-- Scripts see the globals read-only, and reading an undefined one is an error.
local env
env = setmetatable({}, {
  __index = function(_, name)
    if name == '_G' then
      return env
    end
    local v = rawget(G, name)
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
    end
    return v
  end,
  __newindex = function()
    error('Attempt to modify a readonly table', 2)
  end,
  __metatable = false,
})

return run, bind, env, call
"#;

/// The registry key of the Lua function behind `redis.call`.
const CALL_IMPL: &str = "dag_testing.redis_call";

/// `redis.call`: a C function that calls the Lua function registered as [`CALL_IMPL`] with its
/// arguments, and returns what it returns (or lets its error through).
unsafe extern "C-unwind" fn call_trampoline(
    state: *mut mlua::ffi::lua_State,
) -> std::os::raw::c_int {
    use mlua::ffi;
    // SAFETY: plain Lua C API calls on the state Lua gave this C function; the function holds
    // nothing that needs dropping, so an error unwinding through it skips nothing.
    unsafe {
        let args = ffi::lua_gettop(state);
        ffi::lua_getfield(
            state,
            ffi::LUA_REGISTRYINDEX,
            c"dag_testing.redis_call".as_ptr(),
        );
        ffi::lua_insert(state, 1);
        ffi::lua_call(state, args, ffi::LUA_MULTRET);
        ffi::lua_gettop(state)
    }
}

/// The Lua state and the compiled scripts.
pub(crate) struct Scripting {
    lua: Lua,
    run: Function,
    bind: Function,
    env: Table,
    /// Compiled scripts by SHA1 (hex, lowercase).
    functions: HashMap<String, Function>,
}

impl Scripting {
    /// A fresh Lua state with Redis's libraries and the `redis` table.
    pub(crate) fn new() -> Scripting {
        // Redis loads base, table, string, math and debug (the error handler needs it).
        let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG;
        // SAFETY: the debug library is loaded for the error handler, as Redis loads it; no
        // script can reach anything outside the Lua state through it (no io, os or package).
        let lua = unsafe { Lua::unsafe_new_with(libs, LuaOptions::default()) };
        let globals = lua.globals();
        for name in ["loadfile", "dofile"] {
            let _ = globals.raw_remove(name);
        }
        let (run, bind, env, call): (Function, Function, Table, Function) = lua
            .load(BOOTSTRAP)
            .set_name("=bootstrap")
            .call(())
            .expect("the scripting bootstrap runs");
        let install = || -> mlua::Result<()> {
            lua.set_named_registry_value(CALL_IMPL, call)?;
            let redis: Table = globals.get("redis")?;
            // SAFETY: `call_trampoline` only uses the Lua C API on the state it is given.
            let trampoline = unsafe { lua.create_c_function(call_trampoline)? };
            redis.raw_set("call", trampoline)?;
            let sha1hex =
                lua.create_function(|_, text: mlua::String| Ok(sha1_hex(&text.as_bytes())))?;
            redis.raw_set("sha1hex", sha1hex)?;
            Ok(())
        };
        install().expect("the redis table is set up");
        Scripting {
            lua,
            run,
            bind,
            env,
            functions: HashMap::new(),
        }
    }

    /// Forgets every compiled script (`SCRIPT FLUSH`, restarts).
    pub(crate) fn flush(&mut self) {
        self.functions.clear();
    }

    /// Compiles `body` (cached by its SHA1): Redis's error text if it does not compile.
    fn compile(&mut self, sha: &str, body: &[u8]) -> Result<Function, Reply> {
        if let Some(f) = self.functions.get(sha) {
            return Ok(f.clone());
        }
        let compiled = self
            .lua
            .load(body)
            .set_name("@user_script")
            .set_environment(self.env.clone())
            .into_function();
        match compiled {
            Ok(f) => {
                self.functions.insert(sha.to_owned(), f.clone());
                Ok(f)
            }
            Err(e) => Err(Reply::err(format!(
                "ERR Error compiling script (new function): {}",
                lua_error_text(&e)
            ))),
        }
    }
}

/// The message of a Lua error, without mlua's decorations.
fn lua_error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(message) => message.clone(),
        mlua::Error::CallbackError { cause, .. } => lua_error_text(cause),
        other => other.to_string(),
    }
}

/// The SHA1 of a script, lowercase hex (the name `EVALSHA` uses).
pub(crate) fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

fn eval(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let body = args[1].clone();
    let sha = sha1_hex(&body);
    run_script(ctx, &sha, Some(body), &args[2..])
}

fn evalsha(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let sha = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    run_script(ctx, &sha, None, &args[2..])
}

/// Runs the script `sha` (compiling `body` if given, or the loaded body) with `numkeys key ...
/// arg ...`.
fn run_script(ctx: &mut Ctx<'_>, sha: &str, body: Option<Vec<u8>>, rest: &[Vec<u8>]) -> Reply {
    let Some(numkeys) = parse_i64(&rest[0]) else {
        return crate::commands::not_integer();
    };
    if numkeys < 0 {
        return Reply::err("ERR Number of keys can't be negative");
    }
    if numkeys as usize > rest.len() - 1 {
        return Reply::err("ERR Number of keys can't be greater than number of args");
    }
    let (keys, argv) = rest[1..].split_at(numkeys as usize);
    let body = match body {
        Some(b) => b,
        None => match ctx.data.scripts.get(sha) {
            Some(b) => b.clone(),
            None => return Reply::err("NOSCRIPT No matching script. Please use EVAL."),
        },
    };
    let Some(scripting) = ctx.scripting.take() else {
        return Reply::err("ERR This Redis command is not allowed from script");
    };
    let reply = match scripting.compile(sha, &body) {
        Ok(function) => {
            ctx.data.scripts.insert(sha.to_owned(), body);
            call(scripting, ctx, sha, &function, keys, argv)
        }
        Err(e) => e,
    };
    ctx.scripting = Some(scripting);
    reply
}

/// Calls a compiled script with `KEYS` and `ARGV`, its `redis.call`s running on `ctx`.
fn call(
    scripting: &Scripting,
    ctx: &mut Ctx<'_>,
    sha: &str,
    function: &Function,
    keys: &[Vec<u8>],
    argv: &[Vec<u8>],
) -> Reply {
    let lua = &scripting.lua;
    let set_args = || -> mlua::Result<()> {
        let globals = lua.globals();
        globals.raw_set("KEYS", string_table(lua, keys)?)?;
        globals.raw_set("ARGV", string_table(lua, argv)?)?;
        Ok(())
    };
    if let Err(e) = set_args() {
        return Reply::err(format!("ERR {}", lua_error_text(&e)));
    }
    let was_in_script = std::mem::replace(&mut ctx.client.in_script, true);
    let resp = std::mem::replace(&mut ctx.client.resp, 2);
    let cell = RefCell::new(&mut *ctx);
    let outcome = lua.scope(|scope| {
        let exec = scope.create_function(|lua, args: MultiValue| {
            let mut ctx = cell.borrow_mut();
            command_from_script(lua, &mut ctx, args)
        })?;
        scripting.bind.call::<()>(exec)?;
        let result: MultiValue = scripting.run.call(function.clone())?;
        scripting.bind.call::<()>(LuaValue::Nil)?;
        let mut values = result.into_iter();
        let ok = matches!(values.next(), Some(LuaValue::Boolean(true)));
        let value = values.next().unwrap_or(LuaValue::Nil);
        Ok(if ok {
            lua_to_reply(&value, 0)
        } else {
            script_error(&value, sha)
        })
    });
    ctx.client.in_script = was_in_script;
    ctx.client.resp = resp;
    match outcome {
        Ok(reply) => reply,
        Err(e) => Reply::err(format!("ERR Error running script: {}", lua_error_text(&e))),
    }
}

/// Redis's reply for a script that raised `err` (the table the error handler built).
fn script_error(err: &LuaValue, sha: &str) -> Reply {
    let LuaValue::Table(t) = err else {
        return Reply::err(format!(
            "ERR Error running script {sha}, {}",
            lua_value_text(err)
        ));
    };
    let message = t
        .raw_get::<LuaValue>("err")
        .map(|v| lua_value_text(&v))
        .unwrap_or_default();
    let message = message.strip_prefix('-').unwrap_or(&message).to_owned();
    let source = t.raw_get::<Option<mlua::String>>("source").ok().flatten();
    let line = t.raw_get::<LuaValue>("line").ok();
    match (source, line) {
        (Some(source), Some(line)) if !line.is_nil() => Reply::err(format!(
            "{message} script: {sha}, on {}:{}.",
            source.to_string_lossy(),
            lua_value_text(&line)
        )),
        _ => Reply::err(message),
    }
}

/// A Lua value as text, the way `tostring` shows strings and numbers.
fn lua_value_text(v: &LuaValue) -> String {
    match v {
        LuaValue::String(s) => s.to_string_lossy().to_string(),
        LuaValue::Number(n) => lua_number_text(*n),
        LuaValue::Integer(n) => n.to_string(),
        LuaValue::Boolean(b) => b.to_string(),
        LuaValue::Nil => "nil".to_owned(),
        other => format!("{other:?}"),
    }
}

/// A number as Lua 5.1 prints it (`%.14g`).
fn lua_number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        return format!("{}", n as i64);
    }
    let text = format!("{n:.13e}");
    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..14).contains(&exp) {
        let decimals = (13 - exp).max(0) as usize;
        let fixed = format!("{n:.decimals$}");
        fixed.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

fn string_table(lua: &Lua, items: &[Vec<u8>]) -> mlua::Result<Table> {
    let table = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.iter().enumerate() {
        table.raw_set(i + 1, lua.create_string(item)?)?;
    }
    Ok(table)
}

/// `redis.call`/`redis.pcall`: runs a command, returning its reply as Lua sees it (an error
/// as `{err = ...}`, which `redis.call` raises).
fn command_from_script(lua: &Lua, ctx: &mut Ctx<'_>, args: MultiValue) -> mlua::Result<LuaValue> {
    if args.is_empty() {
        return error_table(
            lua,
            "ERR Please specify at least one argument for this redis lib call",
        );
    }
    let mut command = Vec::with_capacity(args.len());
    for arg in args {
        match arg {
            LuaValue::String(s) => command.push(s.as_bytes().to_vec()),
            LuaValue::Number(_) | LuaValue::Integer(_) => match lua.coerce_string(arg)? {
                Some(s) => command.push(s.as_bytes().to_vec()),
                None => return error_table(lua, ARG_TYPE_ERROR),
            },
            _ => return error_table(lua, ARG_TYPE_ERROR),
        }
    }
    let may_block = std::mem::replace(&mut ctx.may_block, false);
    let reply = execute(ctx, &command);
    ctx.may_block = may_block;
    reply_to_lua(lua, reply.into_resp2())
}

const ARG_TYPE_ERROR: &str = "ERR Lua redis lib command arguments must be strings or integers";

fn error_table(lua: &Lua, message: &str) -> mlua::Result<LuaValue> {
    let t = lua.create_table()?;
    t.raw_set("err", message)?;
    Ok(LuaValue::Table(t))
}

/// A reply as Lua sees it (Redis's RESP2 to Lua conversion).
fn reply_to_lua(lua: &Lua, reply: Reply) -> mlua::Result<LuaValue> {
    Ok(match reply {
        Reply::Int(n) => LuaValue::Number(n as f64),
        Reply::Bulk(b) => LuaValue::String(lua.create_string(&b)?),
        Reply::Nil | Reply::NilArray => LuaValue::Boolean(false),
        Reply::Status(s) => {
            let t = lua.create_table()?;
            t.raw_set("ok", s)?;
            LuaValue::Table(t)
        }
        Reply::Error(e) => error_table(lua, &e)?,
        Reply::Array(items) | Reply::Set(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.into_iter().enumerate() {
                t.raw_set(i + 1, reply_to_lua(lua, item)?)?;
            }
            LuaValue::Table(t)
        }
        other @ (Reply::Map(_) | Reply::Double(_)) => reply_to_lua(lua, other.into_resp2())?,
    })
}

/// Deepest nesting of tables converted to a reply (Redis stops at the same kind of limit).
const MAX_DEPTH: usize = 1000;

/// A script's return value as a reply (Redis's Lua to RESP conversion).
fn lua_to_reply(value: &LuaValue, depth: usize) -> Reply {
    match value {
        LuaValue::Nil => Reply::Nil,
        LuaValue::Boolean(true) => Reply::Int(1),
        LuaValue::Boolean(false) => Reply::Nil,
        // Truncated toward zero, as C's (long long) cast does.
        LuaValue::Number(n) => Reply::Int(*n as i64),
        LuaValue::Integer(n) => Reply::Int(*n),
        LuaValue::String(s) => Reply::Bulk(s.as_bytes().to_vec()),
        LuaValue::Table(t) => {
            if depth > MAX_DEPTH {
                return Reply::err("ERR reached lua stack limit");
            }
            if let Ok(LuaValue::String(e)) = t.raw_get::<LuaValue>("err") {
                let text = e.to_string_lossy().to_string();
                let text = text.strip_prefix('-').unwrap_or(&text);
                return Reply::err(text.replace(['\r', '\n'], " "));
            }
            if let Ok(LuaValue::String(s)) = t.raw_get::<LuaValue>("ok") {
                return Reply::Status(s.to_string_lossy().to_string().replace(['\r', '\n'], " "));
            }
            let mut items = Vec::new();
            for i in 1.. {
                match t.raw_get::<LuaValue>(i) {
                    Ok(LuaValue::Nil) | Err(_) => break,
                    Ok(v) => items.push(lua_to_reply(&v, depth + 1)),
                }
            }
            Reply::Array(items)
        }
        _ => Reply::Nil,
    }
}

fn script_load(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    let body = args[2].clone();
    let sha = sha1_hex(&body);
    let Some(scripting) = ctx.scripting.as_deref_mut() else {
        return Reply::err("ERR This Redis command is not allowed from script");
    };
    match scripting.compile(&sha, &body) {
        Ok(_) => {
            ctx.data.scripts.insert(sha.clone(), body);
            Reply::Bulk(sha.into_bytes())
        }
        Err(e) => e,
    }
}

fn script_exists(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    Reply::Array(
        args[2..]
            .iter()
            .map(|sha| {
                let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
                Reply::Int(i64::from(ctx.data.scripts.contains_key(&sha)))
            })
            .collect(),
    )
}

fn script_flush(ctx: &mut Ctx<'_>, args: &[Vec<u8>]) -> Reply {
    match args.len() {
        2 => {}
        3 if is(&args[2], "ASYNC") || is(&args[2], "SYNC") => {}
        _ => return crate::commands::syntax_error(),
    }
    ctx.data.scripts.clear();
    if let Some(scripting) = ctx.scripting.as_deref_mut() {
        scripting.flush();
    }
    Reply::ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_matches_redis() {
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }

    #[test]
    fn numbers_print_like_lua() {
        assert_eq!(lua_number_text(3.0), "3");
        assert_eq!(lua_number_text(1.5), "1.5");
        assert_eq!(lua_number_text(0.1), "0.1");
    }
}
