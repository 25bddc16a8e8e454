use dag::prelude::*;

#[task]
fn double(x: i64) -> i64 {
    x * 2
}

fn main() {
    let text = String::from("2");
    let _ = double(text);
}
