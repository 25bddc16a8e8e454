use dag::prelude::*;

#[task]
const fn constant(x: i64) -> i64 {
    x
}

fn main() {}
