use dag::prelude::*;
use std::collections::HashMap;

struct Point {
    x: i64,
    y: i64,
}

#[task]
fn centroid(groups: HashMap<String, Vec<Point>>) -> i64 {
    groups.values().flatten().map(|p| p.x + p.y).sum()
}

fn main() {}
