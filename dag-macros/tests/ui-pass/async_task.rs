use dag::prelude::*;

#[task]
async fn later(x: i64) -> i64 {
    std::future::ready(x + 1).await
}

#[task]
async fn checked(x: i64) -> Result<i64, String> {
    std::future::ready(x.checked_mul(2).ok_or_else(|| "overflow".to_string())).await
}

fn main() {
    let first: Node<i64> = later(1);
    let _second: Node<i64> = checked(&first);
}
