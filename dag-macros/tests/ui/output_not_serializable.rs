use dag::prelude::*;

struct Point {
    x: i64,
    y: i64,
}

#[task]
fn origin(x: i64) -> Point {
    Point { x, y: 0 }
}

fn main() {}
