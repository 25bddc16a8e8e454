//! Tall-and-skinny SVD, A = U Σ Vᵀ, by blocked QR (TSQR): A is cut into row blocks of several
//! MB; each block's R factor is computed where the block is, the R factors are reduced up a
//! tree (QR of two stacked Rs), the SVD of the last R gives Σ and V, and each block of U is
//! A_i V Σ⁻¹, computed again where A_i is. Every large block has several consumers: a case for
//! task clustering and delayed I/O (see the README's "Locality").
//!
//! ```sh
//! cargo run --release --example svd                                   # 131072 x 64, 8 blocks
//! cargo run --release --example svd -- --rows 65536 --cols 32 --blocks 16
//! cargo run --release --example svd -- --redis redis://127.0.0.1:6379 --workers 2
//! ```
//!
//! Checked against a direct SVD of the whole matrix (singular values) and by rebuilding every
//! block from U Σ Vᵀ; exits with status 1 if either differs.

use std::time::Instant;

use nalgebra::DMatrix;

#[path = "graphs/cli.rs"]
mod cli;
#[path = "graphs/svd.rs"]
mod graph;

fn main() {
    dag::worker::run_if_worker(); // a worker process serves here and exits
    cli::exit_with(run());
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().collect();
    let runtime = dag::worker::runtime_from_args(&mut args)?;
    let [rows, cols, blocks] = cli::numbers(
        &args,
        [("--rows", 131_072), ("--cols", 64), ("--blocks", 8)],
    )?;
    if rows.div_ceil(blocks) < cols {
        return Err(format!(
            "blocks of {} rows are not tall enough for {cols} columns: use fewer blocks",
            rows.div_ceil(blocks)
        )
        .into());
    }
    let started = Instant::now();
    let (sigma, rebuild) = graph::tsqr_svd(rows, cols, blocks).compute_on(&runtime)?;
    let elapsed = started.elapsed();
    let block_mb = (rows.div_ceil(blocks) * cols * 8) as f64 / 1e6;
    println!(
        "SVD of a {rows} x {cols} matrix in {blocks} row blocks ({block_mb:.1} MB each): {:.3} s",
        elapsed.as_secs_f64()
    );
    let whole = DMatrix::from_fn(rows as usize, cols as usize, |r, c| {
        graph::entry(r as u64, c as u64)
    });
    let mut direct: Vec<f64> = whole
        .svd(false, false)
        .singular_values
        .iter()
        .copied()
        .collect();
    direct.sort_by(|a, b| b.total_cmp(a));
    let mut ours = sigma.clone();
    ours.sort_by(|a, b| b.total_cmp(a));
    let sigma_error = ours
        .iter()
        .zip(&direct)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0, f64::max);
    let passed = ours.len() == direct.len() && sigma_error < 1e-9 && rebuild < 1e-9;
    println!(
        "largest singular value {:.4}, smallest {:.4}",
        ours.first().unwrap_or(&0.0),
        ours.last().unwrap_or(&0.0)
    );
    println!(
        "check against a direct SVD: {} (singular values within {sigma_error:.1e}, blocks \
         rebuilt within {rebuild:.1e})",
        if passed { "passed" } else { "FAILED" }
    );
    dag::worker::print_run_summary(&runtime);
    Ok(passed)
}
