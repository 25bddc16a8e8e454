use dag::prelude::*;

#[task(retries = 2, timeout = "0s")]
fn impatient() -> i64 {
    1
}

fn main() {}
