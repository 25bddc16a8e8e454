use dag::prelude::*;

#[task(retry = 3)]
fn flaky(x: i64) -> i64 {
    x
}

fn main() {}
