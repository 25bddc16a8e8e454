use dag::prelude::*;

#[task(timeout = "soon")]
fn vague() -> i64 {
    1
}

fn main() {}
