use dag::prelude::*;
use std::borrow::Cow;

#[task]
fn shout(text: Cow<'static, str>) -> String {
    text.to_uppercase()
}

fn main() {}
