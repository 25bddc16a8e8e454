use dag::prelude::*;

// Each bad option and the bad parameter are reported together, not one per compile.
#[task(retry = 3, backoff = "soon", name = "a", name = "b")]
fn shout(text: &str) -> String {
    text.to_uppercase()
}

fn main() {}
