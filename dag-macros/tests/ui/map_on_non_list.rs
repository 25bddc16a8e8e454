use dag::prelude::*;

#[task]
fn one() -> i64 {
    1
}

#[task]
fn inc(x: i64) -> i64 {
    x + 1
}

fn main() {
    // `.map` fans out over a list; a node of a single value has no `.map`.
    let _ = one().map(inc);
}
