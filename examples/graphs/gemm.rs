//! The graph of `examples/gemm.rs` (also run by `benches/locality.rs`): blocked C = A × B.

use dag::prelude::*;
use nalgebra::DMatrix;

/// Block (`i`, `j`) of a `size` x `size` matrix cut into `block` x `block` blocks, filled with
/// deterministic pseudo-random values from `seed`: every worker generates the same block.
#[task]
fn load(seed: u64, i: u64, j: u64, size: u64, block: u64) -> DMatrix<f64> {
    let (rows, cols) = (block.min(size - i * block), block.min(size - j * block));
    DMatrix::from_fn(rows as usize, cols as usize, |r, c| {
        entry(seed, i * block + r as u64, j * block + c as u64)
    })
}

/// One product of blocks, A_ik × B_kj.
#[task]
fn multiply(a: DMatrix<f64>, b: DMatrix<f64>) -> DMatrix<f64> {
    a * b
}

/// Block C_ij: the sum of its row's and column's products.
#[task]
fn sum_blocks(products: Vec<DMatrix<f64>>) -> DMatrix<f64> {
    let mut products = products.into_iter();
    let first = products.next().expect("at least one product");
    products.fold(first, |sum, p| sum + p)
}

/// The largest difference between the blocks of C and the same blocks of `expected`, computed
/// where the blocks are, so that only a number travels back.
#[task]
fn largest_difference(c: DMatrix<f64>, i: u64, j: u64, block: u64, size: u64) -> f64 {
    let expected = direct_block(i, j, block, size);
    (c - expected).amax()
}

#[task]
fn largest(differences: Vec<f64>) -> f64 {
    differences.into_iter().fold(0.0, f64::max)
}

/// Entry (`r`, `c`) of the matrix `seed`: a hash of its position, in [-1, 1).
fn entry(seed: u64, r: u64, c: u64) -> f64 {
    let mut x = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(r.wrapping_mul(0xbf58_476d_1ce4_e5b9))
        .wrapping_add(c.wrapping_mul(0x94d0_49bb_1331_11eb));
    x ^= x >> 31;
    x = x.wrapping_mul(0xd6e8_feb8_6659_fd93);
    x ^= x >> 32;
    (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

const SEED_A: u64 = 1;
const SEED_B: u64 = 2;

/// Block (`i`, `j`) of A × B computed directly from rows of A and columns of B (what the check
/// compares with; the whole product is never formed in one place).
fn direct_block(i: u64, j: u64, block: u64, size: u64) -> DMatrix<f64> {
    let (r0, c0) = (i * block, j * block);
    let (rows, cols) = (block.min(size - r0), block.min(size - c0));
    let a = DMatrix::from_fn(rows as usize, size as usize, |r, k| {
        entry(SEED_A, r0 + r as u64, k as u64)
    });
    let b = DMatrix::from_fn(size as usize, cols as usize, |k, c| {
        entry(SEED_B, k as u64, c0 + c as u64)
    });
    a * b
}

/// The graph: A and B in `n` x `n` blocks, `n`³ products, `n`² sums, one check per block of C.
pub fn gemm(size: u64, block: u64) -> Node<f64> {
    let n = size.div_ceil(block);
    let a: Vec<Vec<Node<DMatrix<f64>>>> = (0..n)
        .map(|i| (0..n).map(|k| load(SEED_A, i, k, size, block)).collect())
        .collect();
    let b: Vec<Vec<Node<DMatrix<f64>>>> = (0..n)
        .map(|k| (0..n).map(|j| load(SEED_B, k, j, size, block)).collect())
        .collect();
    let mut checks = Vec::new();
    for i in 0..n {
        for j in 0..n {
            let products: Vec<_> = (0..n)
                .map(|k| multiply(&a[i as usize][k as usize], &b[k as usize][j as usize]))
                .collect();
            checks.push(largest_difference(sum_blocks(products), i, j, block, size));
        }
    }
    largest(checks)
}
