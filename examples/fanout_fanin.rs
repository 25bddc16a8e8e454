//! Fan-out and fan-in: three products, summed, squared three ways, summed and squared again.
//!
//! ```sh
//! cargo run --release --example fanout_fanin
//! cargo run --release --example fanout_fanin -- --redis redis://127.0.0.1:6379 --workers 2
//! ```
//!
//! ```text
//!  multiply(2,3)  multiply(3,4)  multiply(4,5)      fan-in
//!            \         |         /
//!                    sum                       = 6 + 12 + 20 = 38
//!            /         |         \              fan-out
//!     square         square        square       = 1444 each
//!            \         |         /
//!                    sum                       = 4332
//!                     |
//!                  square                      = 18766224
//! ```

use dag::prelude::*;

#[task]
fn multiply(a: i64, b: i64) -> i64 {
    a * b
}

#[task]
fn sum(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

#[task]
fn square(x: i64) -> i64 {
    x * x
}

fn main() -> Result<(), DagError> {
    dag::worker::run_if_worker(); // a worker process serves here and exits
    let mut args: Vec<String> = std::env::args().collect();
    let runtime = dag::worker::runtime_from_args(&mut args)?;
    let products = vec![multiply(2, 3), multiply(3, 4), multiply(4, 5)];
    let total = sum(products);
    let squares: Vec<Node<i64>> = (0..3).map(|_| square(&total)).collect();
    let result = square(sum(squares));
    let value = result.compute_on(&runtime)?;
    println!("{value}");
    assert_eq!(value, 18766224);
    dag::worker::print_run_summary(&runtime);
    Ok(())
}
