//! Blocked matrix multiplication, C = A × B, the shape WUKONG's locality optimizations were built
//! for: every block of A and of B feeds a row or a column of block products, and every block of
//! C sums the products of its row and column. Blocks are several MB, so where they go matters:
//! compare the bytes moved with task clustering and delayed I/O on and off (see the README's
//! "Locality" and `cargo bench --bench locality`).
//!
//! ```sh
//! cargo run --release --example gemm                              # 2048 x 2048, 512-blocks
//! cargo run --release --example gemm -- --size 1024 --block 256
//! cargo run --release --example gemm -- --redis redis://127.0.0.1:6379 --workers 2
//! DAG_CLUSTERING=0 DAG_DELAYED_IO=0 cargo run --release --example gemm -- --redis ... --workers 2
//! ```
//!
//! The product is checked against a direct multiplication of the whole matrices; the program
//! exits with status 1 if it differs.

use std::time::Instant;

#[path = "graphs/cli.rs"]
mod cli;
#[path = "graphs/gemm.rs"]
mod graph;

fn main() {
    dag::worker::run_if_worker(); // a worker process serves here and exits
    cli::exit_with(run());
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().collect();
    let runtime = dag::worker::runtime_from_args(&mut args)?;
    let [size, block] = cli::numbers(&args, [("--size", 2048), ("--block", 512)])?;
    let block = block.min(size);
    let n = size.div_ceil(block);
    let started = Instant::now();
    let difference = graph::gemm(size, block).compute_on(&runtime)?;
    let elapsed = started.elapsed();
    let block_mb = (block * block * 8) as f64 / 1e6;
    println!(
        "C = A x B, {size} x {size} in {n} x {n} blocks of {block} x {block} ({block_mb:.1} MB): \
         {:.3} s",
        elapsed.as_secs_f64()
    );
    let passed = difference < 1e-9 * size as f64;
    println!(
        "check against a direct multiplication: {} (largest difference {difference:.2e})",
        if passed { "passed" } else { "FAILED" }
    );
    dag::worker::print_run_summary(&runtime);
    Ok(passed)
}
