use dag::prelude::*;

#[task(name = "ui::patient", retries = 3, backoff = "250ms", timeout = "1.5s")]
fn patient(x: i64) -> i64 {
    x
}

#[task(timeout = "2m")]
async fn slow(x: i64) -> i64 {
    x
}

fn main() {
    let _ = slow(patient(1));
}
