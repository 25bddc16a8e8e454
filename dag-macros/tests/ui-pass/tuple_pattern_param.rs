use dag::prelude::*;

#[task]
fn pair((a, b): (i64, String), _: bool) -> String {
    format!("{a}{b}")
}

fn main() {
    let _: Node<String> = pair((1, "x".to_string()), true);
}
