use dag::prelude::*;

#[task(large_output = "huge")]
fn vague() -> Vec<u8> {
    Vec::new()
}

#[task(large_output = 4096)]
fn unquoted() -> Vec<u8> {
    Vec::new()
}

fn main() {}
