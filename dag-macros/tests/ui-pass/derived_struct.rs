use dag::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Point {
    x: i64,
    y: i64,
}

#[task]
fn origin() -> Point {
    Point { x: 0, y: 0 }
}

#[task]
fn shift(p: Point, by: i64) -> Result<Point, String> {
    Ok(Point {
        x: p.x + by,
        y: p.y + by,
    })
}

fn main() {
    let start: Node<Point> = origin();
    let _moved: Node<Point> = shift(&start, 1);
    let _constant: Node<Point> = shift(Point { x: 1, y: 2 }, 3);
}
