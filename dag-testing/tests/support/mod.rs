//! A raw RESP client for the tests: it sends commands and parses replies without interpreting
//! them, so that replies can be compared byte for byte (RESP2 and RESP3 types kept apart).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A reply as it came on the wire.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Raw {
    /// `+...`
    Simple(String),
    /// `-...`
    Error(String),
    /// `:n`
    Int(i64),
    /// `$n`; `None` for `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*n`; `None` for `*-1`.
    Array(Option<Vec<Raw>>),
    /// RESP3 `_`.
    Null,
    /// RESP3 `,` (kept as text: it is compared exactly).
    Double(String),
    /// RESP3 `#t` / `#f`.
    Bool(bool),
    /// RESP3 `%`.
    Map(Vec<(Raw, Raw)>),
    /// RESP3 `~`.
    Set(Vec<Raw>),
    /// RESP3 `=` (verbatim string, with its format prefix).
    Verbatim(Vec<u8>),
}

impl Raw {
    /// A bulk string.
    pub fn bulk(text: &str) -> Raw {
        Raw::Bulk(Some(text.as_bytes().to_vec()))
    }

    /// An array of bulk strings.
    pub fn bulks(items: &[&str]) -> Raw {
        Raw::Array(Some(items.iter().map(|i| Raw::bulk(i)).collect()))
    }
}

/// One connection, speaking raw RESP.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    /// Connects to `127.0.0.1:port`.
    pub fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Conn {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    /// Sends a command and reads its reply.
    pub fn call(&mut self, args: &[&[u8]]) -> Raw {
        self.send(args);
        self.read()
    }

    /// Sends a command given as text arguments and reads its reply.
    pub fn cmd(&mut self, args: &[&str]) -> Raw {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.call(&args)
    }

    /// Sends a command without reading its reply.
    pub fn send(&mut self, args: &[&[u8]]) {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).expect("sends");
    }

    /// Reads one reply.
    pub fn read(&mut self) -> Raw {
        read_reply(&mut self.reader)
    }
}

fn line(reader: &mut impl BufRead) -> String {
    let mut text = String::new();
    reader.read_line(&mut text).expect("reads a reply");
    assert!(text.ends_with("\r\n"), "a complete line: {text:?}");
    text.truncate(text.len() - 2);
    text
}

fn read_reply(reader: &mut impl BufRead) -> Raw {
    let header = line(reader);
    let (kind, rest) = header.split_at(1);
    let read_bytes = |reader: &mut dyn BufRead, len: usize| {
        let mut buf = vec![0; len + 2];
        reader.read_exact(&mut buf).expect("reads a bulk");
        buf.truncate(len);
        buf
    };
    match kind {
        "+" => Raw::Simple(rest.to_owned()),
        "-" => Raw::Error(rest.to_owned()),
        ":" => Raw::Int(rest.parse().expect("an integer")),
        "$" => {
            let len: i64 = rest.parse().expect("a length");
            if len < 0 {
                Raw::Bulk(None)
            } else {
                Raw::Bulk(Some(read_bytes(reader, len as usize)))
            }
        }
        "=" => {
            let len: usize = rest.parse().expect("a length");
            Raw::Verbatim(read_bytes(reader, len))
        }
        "*" | "~" | ">" => {
            let len: i64 = rest.parse().expect("a length");
            if len < 0 {
                return Raw::Array(None);
            }
            let items = (0..len).map(|_| read_reply(reader)).collect();
            if kind == "~" {
                Raw::Set(items)
            } else {
                Raw::Array(Some(items))
            }
        }
        "%" => {
            let len: usize = rest.parse().expect("a length");
            Raw::Map(
                (0..len)
                    .map(|_| (read_reply(reader), read_reply(reader)))
                    .collect(),
            )
        }
        "_" => Raw::Null,
        "," => Raw::Double(rest.to_owned()),
        "#" => Raw::Bool(rest == "t"),
        other => panic!("unexpected reply type {other:?} in {header:?}"),
    }
}

/// A `redis-server` child process on a free port, killed on drop.
pub struct RealRedis {
    child: Child,
    pub port: u16,
}

impl RealRedis {
    /// Starts one, or `None` if `redis-server` is not on `PATH`.
    pub fn start() -> Option<RealRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = RealRedis { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }
}

impl Drop for RealRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
