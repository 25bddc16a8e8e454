use dag::prelude::*;
use std::collections::HashMap;

#[task]
fn one(x: i64) -> i64 {
    x
}

#[task]
fn grid_sum(rows: Vec<Vec<i64>>) -> i64 {
    rows.iter().flatten().sum()
}

#[task]
fn lookup(table: HashMap<String, i64>, key: String) -> i64 {
    table.get(&key).copied().unwrap_or(0)
}

fn main() {
    let grid: Node<i64> = grid_sum(vec![vec![one(1), one(2)], vec![one(3)]]);
    let constant_grid: Node<i64> = grid_sum(vec![vec![1_i64, 2], vec![3]]);
    let table: HashMap<String, Node<i64>> = [("a".to_string(), grid)].into();
    let _ = (lookup(table, "a"), constant_grid);
}
