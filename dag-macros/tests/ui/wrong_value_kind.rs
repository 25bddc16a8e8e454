use dag::prelude::*;

// A number where a duration string is expected, and a string where a number is.
#[task(retries = "3", timeout = 30)]
fn flaky(x: i64) -> i64 {
    x
}

fn main() {}
