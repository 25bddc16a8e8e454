use dag::prelude::*;

#[task(name = "a", name = "b")]
fn named(x: i64) -> i64 {
    x
}

fn main() {}
