use dag::prelude::*;
use std::io;

#[task]
fn read_len(path: String) -> io::Result<u64> {
    Ok(std::fs::metadata(path)?.len())
}

#[task]
fn parse(text: String) -> Result<i64, String> {
    text.trim().parse().map_err(|e| format!("{e}"))
}

fn main() {
    let len: Node<u64> = read_len("Cargo.toml");
    let n: Node<i64> = parse("42".to_string());
    let _ = (len, n);
}
