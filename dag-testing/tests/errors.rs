//! Bad input gets Redis's own errors, word for word (the texts were taken from Redis 7.0.15):
//! wrong arity, wrong type, unknown commands, script syntax and runtime errors, a script that
//! fails half-way keeping what it wrote, `NOSCRIPT` after a restart, `NOAUTH`.

mod support;

use std::time::{Duration, Instant};

use dag_testing::InProcessRedis;
use support::{Conn, Raw};

fn server() -> (InProcessRedis, Conn) {
    let redis = InProcessRedis::start().expect("starts");
    let conn = Conn::open(redis.port());
    (redis, conn)
}

fn err(text: &str) -> Raw {
    Raw::Error(text.to_owned())
}

fn ok() -> Raw {
    Raw::Simple("OK".to_owned())
}

#[test]
fn wrong_arity_and_unknown_commands_are_redis_errors() {
    let (_redis, mut conn) = server();
    assert_eq!(
        conn.cmd(&["GET"]),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        conn.cmd(&["XGROUP", "CREATE", "s"]),
        err("ERR wrong number of arguments for 'xgroup|create' command")
    );
    assert_eq!(
        conn.cmd(&["blabla", "x", "y"]),
        err("ERR unknown command 'blabla', with args beginning with: 'x' 'y' ")
    );
    assert_eq!(
        conn.cmd(&["XGROUP", "FOO"]),
        err("ERR unknown subcommand 'FOO'. Try XGROUP HELP.")
    );
    // Commands this server leaves out are unknown, never answered wrongly.
    assert_eq!(
        conn.cmd(&["SUBSCRIBE", "ch"]),
        err("ERR unknown command 'SUBSCRIBE', with args beginning with: 'ch' ")
    );
}

#[test]
fn a_command_on_a_key_of_another_type_is_wrongtype() {
    let (_redis, mut conn) = server();
    assert_eq!(conn.cmd(&["SET", "k", "v"]), ok());
    let wrongtype = err("WRONGTYPE Operation against a key holding the wrong kind of value");
    for args in [
        vec!["LPUSH", "k", "a"],
        vec!["SADD", "k", "a"],
        vec!["HSET", "k", "f", "v"],
        vec!["ZADD", "k", "1", "m"],
        vec!["XADD", "k", "*", "f", "v"],
        vec!["BLPOP", "k", "0.01"],
    ] {
        assert_eq!(conn.cmd(&args), wrongtype, "{args:?}");
    }
    assert_eq!(
        conn.cmd(&["INCR", "k"]),
        err("ERR value is not an integer or out of range")
    );
}

#[test]
fn script_errors_read_like_redis() {
    let (_redis, mut conn) = server();
    assert_eq!(
        conn.cmd(&["EVAL", "retur 1", "0"]),
        err("ERR Error compiling script (new function): user_script:1: '=' expected near '1'")
    );
    assert_eq!(conn.cmd(&["SET", "s", "x"]), ok());
    assert_eq!(
        conn.cmd(&["EVAL", "return redis.call('lpush', KEYS[1], 'a')", "1", "s"]),
        err(
            "WRONGTYPE Operation against a key holding the wrong kind of value script: \
             30066d0618efaa6f4d54a3824876d45cb637d4f7, on @user_script:1."
        )
    );
    assert_eq!(
        conn.cmd(&["EVAL", "local x = nil; x()", "0"]),
        err(
            "ERR user_script:1: attempt to call local 'x' (a nil value) script: \
             08176a12c7441b3579927fa1ba7fd7b07aff46c9, on @user_script:1."
        )
    );
    assert_eq!(
        conn.cmd(&[
            "EVAL",
            "return redis.pcall('lpush', KEYS[1], 'a')",
            "1",
            "s"
        ]),
        err("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
    assert_eq!(
        conn.cmd(&["EVAL", "return redis.error_reply('-X My Error')", "0"]),
        err("X My Error")
    );
    assert_eq!(
        conn.cmd(&["EVAL", "return redis.call('blpop', 'l', 0)", "0"]),
        err("ERR This Redis command is not allowed from script script: \
             9796143aa36f79ff4329423cd8247733070488e9, on @user_script:1.")
    );
    assert_eq!(
        conn.cmd(&["EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"]),
        err("NOSCRIPT No matching script. Please use EVAL.")
    );
}

#[test]
fn a_script_that_fails_half_way_keeps_what_it_wrote() {
    let (_redis, mut conn) = server();
    assert_eq!(conn.cmd(&["SET", "s", "x"]), ok());
    let script = "redis.call('RPUSH', KEYS[1], 'first'); redis.call('LPUSH', KEYS[2], 'x'); \
                  redis.call('RPUSH', KEYS[1], 'never')";
    assert!(matches!(
        conn.cmd(&["EVAL", script, "2", "list", "s"]),
        Raw::Error(e) if e.starts_with("WRONGTYPE")
    ));
    assert_eq!(
        conn.cmd(&["LRANGE", "list", "0", "-1"]),
        Raw::bulks(&["first"])
    );
}

#[test]
fn scripts_are_lost_on_restart_and_keys_too() {
    let (redis, mut conn) = server();
    let sha = match conn.cmd(&["SCRIPT", "LOAD", "return ARGV[1]"]) {
        Raw::Bulk(Some(sha)) => String::from_utf8(sha).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(conn.cmd(&["EVALSHA", &sha, "0", "hi"]), Raw::bulk("hi"));
    assert_eq!(conn.cmd(&["SET", "k", "v"]), ok());
    redis.restart();
    let mut conn = Conn::open(redis.port());
    assert_eq!(
        conn.cmd(&["EVALSHA", &sha, "0", "hi"]),
        err("NOSCRIPT No matching script. Please use EVAL.")
    );
    assert_eq!(conn.cmd(&["GET", "k"]), Raw::Bulk(None));
}

#[test]
fn a_password_is_required_before_anything_else() {
    let redis = InProcessRedis::start_with_password("s3cret").unwrap();
    let mut conn = Conn::open(redis.port());
    assert_eq!(
        conn.cmd(&["GET", "k"]),
        err("NOAUTH Authentication required.")
    );
    assert_eq!(
        conn.cmd(&["AUTH", "wrong"]),
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(conn.cmd(&["AUTH", "s3cret"]), ok());
    assert_eq!(conn.cmd(&["GET", "k"]), Raw::Bulk(None));
}

#[test]
fn blpop_waits_for_a_push_or_its_timeout() {
    let (redis, mut conn) = server();
    let started = Instant::now();
    assert_eq!(conn.cmd(&["BLPOP", "l", "0.1"]), Raw::Array(None));
    assert!(started.elapsed() >= Duration::from_millis(100));
    let port = redis.port();
    let pusher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        Conn::open(port).cmd(&["RPUSH", "l", "v"])
    });
    assert_eq!(conn.cmd(&["BLPOP", "l", "5"]), Raw::bulks(&["l", "v"]));
    assert_eq!(pusher.join().unwrap(), Raw::Int(1));
}

#[test]
fn transactions_run_queued_commands_or_abort() {
    let (_redis, mut conn) = server();
    assert_eq!(conn.cmd(&["MULTI"]), ok());
    assert_eq!(conn.cmd(&["SET", "k", "1"]), Raw::Simple("QUEUED".into()));
    assert_eq!(conn.cmd(&["LPUSH", "k", "x"]), Raw::Simple("QUEUED".into()));
    assert_eq!(
        conn.cmd(&["EXEC"]),
        Raw::Array(Some(vec![
            ok(),
            err("WRONGTYPE Operation against a key holding the wrong kind of value"),
        ]))
    );
    assert_eq!(conn.cmd(&["MULTI"]), ok());
    assert_eq!(
        conn.cmd(&["GET"]),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        conn.cmd(&["EXEC"]),
        err("EXECABORT Transaction discarded because of previous errors.")
    );
}
