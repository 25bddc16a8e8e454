use dag::prelude::*;

struct Point {
    x: i64,
    y: i64,
}

#[task]
fn norm(p: Point) -> i64 {
    p.x.abs() + p.y.abs()
}

fn main() {}
