//! An image pipeline over tiles of several MB: each tile is rendered, smoothed, and run through
//! an edge filter; the edge tiles feed a histogram of edge strengths (a fan-in), and the
//! smoothed tiles a thumbnail (a fan-in of small reductions). Every intermediate is a large
//! tile with one or two consumers: without task clustering each is uploaded and downloaded
//! again, with it the chain of a tile stays in the worker that has it (see the README's
//! "Locality").
//!
//! ```sh
//! cargo run --release --example image_tiles                        # 4096 x 4096 in 1024-tiles
//! cargo run --release --example image_tiles -- --size 2048 --tile 512
//! cargo run --release --example image_tiles -- --redis redis://127.0.0.1:6379 --workers 2
//! ```
//!
//! Checked against the same pipeline run directly on the whole image; exits with status 1 if
//! the histogram or the thumbnail differ.

use std::time::Instant;

use dag::prelude::*;

#[path = "graphs/cli.rs"]
mod cli;
use serde::{Deserialize, Serialize};

/// A square tile of grey levels, row by row.
#[derive(Clone, Serialize, Deserialize)]
struct Tile {
    side: usize,
    pixels: Vec<f32>,
}

impl Tile {
    fn at(&self, x: isize, y: isize) -> f32 {
        let clamp = |v: isize| v.clamp(0, self.side as isize - 1) as usize;
        self.pixels[clamp(y) * self.side + clamp(x)]
    }

    /// Applies `f` to every pixel and its 3 x 3 neighbourhood (edges clamped).
    fn filter(&self, f: impl Fn(&dyn Fn(isize, isize) -> f32) -> f32) -> Tile {
        let side = self.side;
        let mut pixels = Vec::with_capacity(side * side);
        for y in 0..side as isize {
            for x in 0..side as isize {
                pixels.push(f(&|dx, dy| self.at(x + dx, y + dy)));
            }
        }
        Tile { side, pixels }
    }
}

/// Tile (`tx`, `ty`) of the scene, `side` pixels square: rings and stripes, from a formula.
#[task]
fn render(tx: u64, ty: u64, side: u64) -> Tile {
    render_tile(tx, ty, side)
}

/// A 3 x 3 box blur.
#[task]
fn smooth(tile: Tile) -> Tile {
    smooth_tile(&tile)
}

/// Sobel edge strength.
#[task]
fn edges(tile: Tile) -> Tile {
    edge_tile(&tile)
}

const BINS: usize = 32;

/// Counts of edge strengths in [`BINS`] bins over [0, 4).
#[task]
fn histogram(tile: Tile) -> Vec<u64> {
    histogram_of(&tile)
}

#[task]
fn add_histograms(parts: Vec<Vec<u64>>) -> Vec<u64> {
    let mut total = vec![0u64; BINS];
    for part in parts {
        for (t, p) in total.iter_mut().zip(part) {
            *t += p;
        }
    }
    total
}

/// The tile shrunk 16 times in each direction (means of 16 x 16 squares).
#[task]
fn shrink(tile: Tile) -> Tile {
    shrink_tile(&tile)
}

/// The thumbnail: the shrunk tiles, row of tiles by row of tiles.
#[task]
fn thumbnail(rows: Vec<Vec<Tile>>) -> Vec<f32> {
    assemble_thumbnail(&rows)
}

#[task]
fn results(histogram: Vec<u64>, thumbnail: Vec<f32>) -> (Vec<u64>, Vec<f32>) {
    (histogram, thumbnail)
}

const SHRINK: usize = 16;

fn shrink_tile(tile: &Tile) -> Tile {
    let side = tile.side / SHRINK;
    let mut pixels = Vec::with_capacity(side * side);
    for y in 0..side {
        for x in 0..side {
            let mut sum = 0.0;
            for dy in 0..SHRINK {
                for dx in 0..SHRINK {
                    sum += tile.pixels[(y * SHRINK + dy) * tile.side + x * SHRINK + dx];
                }
            }
            pixels.push(sum / (SHRINK * SHRINK) as f32);
        }
    }
    Tile { side, pixels }
}

/// The pipeline over `n` x `n` tiles of `side` pixels.
fn pipeline(n: u64, side: u64) -> Node<(Vec<u64>, Vec<f32>)> {
    let mut histograms = Vec::new();
    let mut rows = Vec::new();
    for ty in 0..n {
        let mut row = Vec::new();
        for tx in 0..n {
            let smoothed = smooth(render(tx, ty, side));
            histograms.push(histogram(edges(&smoothed)));
            row.push(shrink(&smoothed));
        }
        rows.push(row);
    }
    results(add_histograms(histograms), thumbnail(rows))
}

fn main() {
    dag::worker::run_if_worker(); // a worker process serves here and exits
    cli::exit_with(run());
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().collect();
    let runtime = dag::worker::runtime_from_args(&mut args)?;
    let [size, side] = cli::numbers(&args, [("--size", 4096), ("--tile", 1024)])?;
    if side % SHRINK as u64 != 0 || size % side != 0 {
        return Err(format!(
            "the tile side must divide the image side and be a multiple of {SHRINK}"
        )
        .into());
    }
    let n = size / side;
    let started = Instant::now();
    let (histogram, thumb) = pipeline(n, side).compute_on(&runtime)?;
    let elapsed = started.elapsed();
    println!(
        "{size} x {size} image in {n} x {n} tiles of {side} x {side} ({:.1} MB each): {:.3} s",
        (side * side * 4) as f64 / 1e6,
        elapsed.as_secs_f64()
    );
    // The same pipeline, tile by tile in this process (the filters clamp at tile edges, as the
    // graph's tasks do).
    let (mut want_histogram, mut rows) = (vec![0u64; BINS], Vec::new());
    for ty in 0..n {
        let mut row = Vec::new();
        for tx in 0..n {
            let smoothed = smooth_tile(&render_tile(tx, ty, side));
            for (t, p) in want_histogram
                .iter_mut()
                .zip(histogram_of(&edge_tile(&smoothed)))
            {
                *t += p;
            }
            row.push(shrink_tile(&smoothed));
        }
        rows.push(row);
    }
    let want_thumb = assemble_thumbnail(&rows);
    let passed = histogram == want_histogram && thumb == want_thumb;
    println!(
        "check against the pipeline run directly: {} ({} edge pixels counted, thumbnail {} \
         pixels)",
        if passed { "passed" } else { "FAILED" },
        histogram.iter().sum::<u64>(),
        thumb.len()
    );
    dag::worker::print_run_summary(&runtime);
    Ok(passed)
}

// The tasks' bodies as plain functions: the graph's tasks and the direct check share them.

fn render_tile(tx: u64, ty: u64, side: u64) -> Tile {
    let side = side as usize;
    let mut pixels = Vec::with_capacity(side * side);
    for y in 0..side {
        for x in 0..side {
            let (gx, gy) = (
                (tx as usize * side + x) as f32,
                (ty as usize * side + y) as f32,
            );
            let ring = ((gx * gx + gy * gy).sqrt() / 37.0).sin();
            let stripe = ((gx * 0.013 + gy * 0.007).cos() * 3.0).floor();
            pixels.push(0.5 + 0.3 * ring + 0.05 * stripe);
        }
    }
    Tile { side, pixels }
}

fn smooth_tile(tile: &Tile) -> Tile {
    tile.filter(|p| {
        let mut sum = 0.0;
        for dy in -1..=1 {
            for dx in -1..=1 {
                sum += p(dx, dy);
            }
        }
        sum / 9.0
    })
}

fn edge_tile(tile: &Tile) -> Tile {
    tile.filter(|p| {
        let gx = p(1, -1) + 2.0 * p(1, 0) + p(1, 1) - p(-1, -1) - 2.0 * p(-1, 0) - p(-1, 1);
        let gy = p(-1, 1) + 2.0 * p(0, 1) + p(1, 1) - p(-1, -1) - 2.0 * p(0, -1) - p(1, -1);
        (gx * gx + gy * gy).sqrt()
    })
}

fn histogram_of(tile: &Tile) -> Vec<u64> {
    let mut counts = vec![0u64; BINS];
    for &p in &tile.pixels {
        counts[((p / 4.0 * BINS as f32) as usize).min(BINS - 1)] += 1;
    }
    counts
}

fn assemble_thumbnail(rows: &[Vec<Tile>]) -> Vec<f32> {
    let mut out = Vec::new();
    for row in rows {
        let side = row[0].side;
        for y in 0..side {
            for tile in row {
                out.extend_from_slice(&tile.pixels[y * side..(y + 1) * side]);
            }
        }
    }
    out
}
