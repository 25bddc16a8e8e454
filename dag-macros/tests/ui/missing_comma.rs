use dag::prelude::*;

#[task(retries = 3 timeout = "1s")]
fn flaky(x: i64) -> i64 {
    x
}

fn main() {}
