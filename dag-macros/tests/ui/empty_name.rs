use dag::prelude::*;

#[task(name = "")]
fn unnamed(x: i64) -> i64 {
    x
}

fn main() {}
