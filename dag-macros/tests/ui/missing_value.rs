use dag::prelude::*;

#[task(retries, timeout = )]
fn flaky(x: i64) -> i64 {
    x
}

fn main() {}
