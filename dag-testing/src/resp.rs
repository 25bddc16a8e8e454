//! The wire protocol: reading commands (multibulk and inline) and writing replies in RESP2 or
//! RESP3, whichever the connection negotiated with `HELLO`.

use std::io::{self, BufRead};

/// Longest bulk argument accepted (Redis's `proto-max-bulk-len` default, 512 MB).
const MAX_BULK: usize = 512 * 1024 * 1024;

/// Most arguments in one command (Redis accepts up to 1024 * 1024 * 1024; this bounds memory).
const MAX_ARGS: usize = 1024 * 1024;

/// A reply, before it is written in the connection's protocol version.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    /// `+OK`: a simple string.
    Status(String),
    /// `-ERR ...`: the full text, code first.
    Error(String),
    /// `:42`.
    Int(i64),
    /// `$3\r\nfoo`.
    Bulk(Vec<u8>),
    /// A missing value: `$-1` in RESP2, `_` in RESP3.
    Nil,
    /// A missing array: `*-1` in RESP2, `_` in RESP3 (BLPOP's timeout, XREADGROUP's nothing).
    NilArray,
    /// `*N`.
    Array(Vec<Reply>),
    /// A map in RESP3 (`%N`), a flat array of keys and values in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// A double in RESP3 (`,1.5`), a bulk string formatted like Redis (`%.17g`) in RESP2.
    Double(f64),
    /// A set in RESP3 (`~N`), an array in RESP2.
    Set(Vec<Reply>),
}

impl Reply {
    /// `+OK`.
    pub(crate) fn ok() -> Reply {
        Reply::Status("OK".to_owned())
    }

    /// An error reply; `text` starts with its code (`ERR`, `WRONGTYPE`, ...).
    pub(crate) fn err(text: impl Into<String>) -> Reply {
        Reply::Error(text.into())
    }

    /// A bulk string.
    pub(crate) fn bulk(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply::Bulk(bytes.into())
    }

    /// An array of bulk strings.
    pub(crate) fn bulks<I, B>(items: I) -> Reply
    where
        I: IntoIterator<Item = B>,
        B: Into<Vec<u8>>,
    {
        Reply::Array(items.into_iter().map(|b| Reply::Bulk(b.into())).collect())
    }

    /// The same reply as RESP2 shows it: maps flattened, doubles as bulk strings, sets as
    /// arrays (what Lua scripts see, and what RESP2 connections are sent).
    pub(crate) fn into_resp2(self) -> Reply {
        match self {
            Reply::Array(items) => Reply::Array(items.into_iter().map(Reply::into_resp2).collect()),
            Reply::Set(items) => Reply::Array(items.into_iter().map(Reply::into_resp2).collect()),
            Reply::Map(pairs) => Reply::Array(
                pairs
                    .into_iter()
                    .flat_map(|(k, v)| [k.into_resp2(), v.into_resp2()])
                    .collect(),
            ),
            Reply::Double(d) => Reply::Bulk(format_double(d).into_bytes()),
            other => other,
        }
    }

    /// Whether this is an error reply.
    pub(crate) fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Writes the reply in protocol version `resp` (2 or 3).
    pub(crate) fn write_to(&self, out: &mut Vec<u8>, resp: u8) {
        match self {
            Reply::Status(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(s) => line(out, b'-', s.as_bytes()),
            Reply::Int(n) => line(out, b':', n.to_string().as_bytes()),
            Reply::Bulk(b) => {
                line(out, b'$', b.len().to_string().as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Nil if resp >= 3 => out.extend_from_slice(b"_\r\n"),
            Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
            Reply::NilArray if resp >= 3 => out.extend_from_slice(b"_\r\n"),
            Reply::NilArray => out.extend_from_slice(b"*-1\r\n"),
            Reply::Array(items) => {
                line(out, b'*', items.len().to_string().as_bytes());
                for item in items {
                    item.write_to(out, resp);
                }
            }
            Reply::Set(items) => {
                let kind = if resp >= 3 { b'~' } else { b'*' };
                line(out, kind, items.len().to_string().as_bytes());
                for item in items {
                    item.write_to(out, resp);
                }
            }
            Reply::Map(pairs) => {
                if resp >= 3 {
                    line(out, b'%', pairs.len().to_string().as_bytes());
                } else {
                    line(out, b'*', (pairs.len() * 2).to_string().as_bytes());
                }
                for (k, v) in pairs {
                    k.write_to(out, resp);
                    v.write_to(out, resp);
                }
            }
            Reply::Double(d) if resp >= 3 => {
                let text = if d.is_infinite() {
                    if *d > 0.0 { "inf" } else { "-inf" }.to_owned()
                } else {
                    format_double(*d)
                };
                line(out, b',', text.as_bytes());
            }
            Reply::Double(d) => Reply::Bulk(format_double(*d).into_bytes()).write_to(out, resp),
        }
    }
}

fn line(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    out.push(kind);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

/// A double as Redis 7.0 prints it: `%.17g`, with `inf`/`-inf`/`nan`.
pub(crate) fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".to_owned();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // %.17g: 17 significant digits, exponent form when exp < -4 or exp >= 17, and trailing
    // zeros removed.
    let sci = format!("{d:.16e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("an integer exponent");
    if !(-4..17).contains(&exp) {
        let mantissa = trim_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let decimals = (16 - exp).max(0) as usize;
    trim_zeros(&format!("{d:.decimals$}")).to_owned()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Why reading a command failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The connection closed or failed.
    Io,
    /// The client broke the protocol: the error to send before closing the connection.
    Protocol(String),
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        ReadError::Io
    }
}

/// Reads one command: a multibulk array of bulk strings, or an inline command line. Returns
/// `Ok(None)` at a clean end of the stream, and an empty vector for an empty inline line.
pub(crate) fn read_command(input: &mut impl BufRead) -> Result<Option<Vec<Vec<u8>>>, ReadError> {
    let mut header = Vec::new();
    if input.read_until(b'\n', &mut header)? == 0 {
        return Ok(None);
    }
    if !header.ends_with(b"\n") {
        return Ok(None);
    }
    let header = strip_eol(&header);
    if header.first() != Some(&b'*') {
        return Ok(Some(split_inline(header)?));
    }
    let count = parse_len(&header[1..])
        .filter(|&n| n <= MAX_ARGS as i64)
        .ok_or_else(|| {
            ReadError::Protocol("ERR Protocol error: invalid multibulk length".into())
        })?;
    let mut args = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count.max(0) {
        let mut len_line = Vec::new();
        if input.read_until(b'\n', &mut len_line)? == 0 {
            return Ok(None);
        }
        let len_line = strip_eol(&len_line);
        if len_line.first() != Some(&b'$') {
            let got = len_line.first().map_or(' ', |&b| b as char);
            return Err(ReadError::Protocol(format!(
                "ERR Protocol error: expected '$', got '{got}'"
            )));
        }
        let len = parse_len(&len_line[1..])
            .filter(|&n| (0..=MAX_BULK as i64).contains(&n))
            .ok_or_else(|| ReadError::Protocol("ERR Protocol error: invalid bulk length".into()))?
            as usize;
        let mut arg = vec![0; len + 2];
        input.read_exact(&mut arg)?;
        arg.truncate(len);
        args.push(arg);
    }
    Ok(Some(args))
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn parse_len(digits: &[u8]) -> Option<i64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Splits an inline command on spaces, honouring double and single quotes like Redis.
fn split_inline(line: &[u8]) -> Result<Vec<Vec<u8>>, ReadError> {
    let unbalanced =
        || ReadError::Protocol("ERR Protocol error: unbalanced quotes in request".into());
    let mut args = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            break;
        }
        let mut arg = Vec::new();
        match line[i] {
            quote @ (b'"' | b'\'') => {
                i += 1;
                loop {
                    let Some(&c) = line.get(i) else {
                        return Err(unbalanced());
                    };
                    i += 1;
                    if c == quote {
                        break;
                    }
                    if c == b'\\' && quote == b'"' {
                        let Some(&e) = line.get(i) else {
                            return Err(unbalanced());
                        };
                        i += 1;
                        arg.push(match e {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            other => other,
                        });
                    } else {
                        arg.push(c);
                    }
                }
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    arg.push(line[i]);
                    i += 1;
                }
            }
        }
        args.push(arg);
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_like_redis() {
        assert_eq!(format_double(1.0), "1");
        assert_eq!(format_double(1.5), "1.5");
        assert_eq!(format_double(0.1), "0.10000000000000001");
        assert_eq!(format_double(-3.25), "-3.25");
        assert_eq!(format_double(1e20), "1e+20");
        assert_eq!(format_double(1234567.0), "1234567");
        assert_eq!(format_double(0.0001), "0.0001");
        assert_eq!(format_double(0.00001), "1.0000000000000001e-05");
    }

    #[test]
    fn commands_parse_in_both_forms() {
        let mut input: &[u8] = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nSET a \"b c\"\r\n";
        assert_eq!(
            read_command(&mut input).unwrap(),
            Some(vec![b"GET".to_vec(), b"k".to_vec()])
        );
        assert_eq!(
            read_command(&mut input).unwrap(),
            Some(vec![b"SET".to_vec(), b"a".to_vec(), b"b c".to_vec()])
        );
        assert_eq!(read_command(&mut input).unwrap(), None);
    }
}
