//! The graph of `examples/svd.rs` (also run by `benches/locality.rs`): tall-and-skinny SVD by
//! blocked QR.

use dag::prelude::*;
use nalgebra::{DMatrix, DVector};

/// Row block `i` of the `rows` x `cols` matrix, `block` rows high, from a deterministic hash.
#[task]
fn load(i: u64, block: u64, rows: u64, cols: u64) -> DMatrix<f64> {
    let first = i * block;
    let height = block.min(rows - first);
    DMatrix::from_fn(height as usize, cols as usize, |r, c| {
        entry(first + r as u64, c as u64)
    })
}

/// The R factor of a block's QR decomposition.
#[task]
fn r_factor(a: DMatrix<f64>) -> DMatrix<f64> {
    a.qr().r()
}

/// The R factor of two stacked R factors: one step up the reduction tree.
#[task]
fn combine(top: DMatrix<f64>, bottom: DMatrix<f64>) -> DMatrix<f64> {
    let mut stacked = DMatrix::zeros(top.nrows() + bottom.nrows(), top.ncols());
    stacked.rows_mut(0, top.nrows()).copy_from(&top);
    stacked
        .rows_mut(top.nrows(), bottom.nrows())
        .copy_from(&bottom);
    stacked.qr().r()
}

/// Σ and V from the SVD of the last R (A's singular values are R's).
#[task]
fn factor(r: DMatrix<f64>) -> (DVector<f64>, DMatrix<f64>) {
    let svd = r.svd(false, true);
    let v_t = svd.v_t.expect("asked for V");
    (svd.singular_values, v_t.transpose())
}

/// Block `i` of U: A_i V Σ⁻¹.
#[task]
fn left(a: DMatrix<f64>, sv: (DVector<f64>, DMatrix<f64>)) -> DMatrix<f64> {
    let (sigma, v) = sv;
    let mut u = a * v;
    for (mut column, s) in u.column_iter_mut().zip(sigma.iter()) {
        column /= *s;
    }
    u
}

/// How far U_i Σ Vᵀ is from A_i (the largest difference of an entry).
#[task]
fn rebuild_error(a: DMatrix<f64>, u: DMatrix<f64>, sv: (DVector<f64>, DMatrix<f64>)) -> f64 {
    let (sigma, v) = sv;
    let rebuilt = u * DMatrix::from_diagonal(&sigma) * v.transpose();
    (a - rebuilt).amax()
}

/// The singular values, and the largest rebuild error of the blocks.
#[task]
fn report(sv: (DVector<f64>, DMatrix<f64>), errors: Vec<f64>) -> (Vec<f64>, f64) {
    (
        sv.0.iter().copied().collect(),
        errors.into_iter().fold(0.0, f64::max),
    )
}

/// Entry (`r`, `c`): a hash of its position in [-1, 1), plus a column scale so that the singular
/// values spread.
pub fn entry(r: u64, c: u64) -> f64 {
    let mut x = r
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(c.wrapping_mul(0xbf58_476d_1ce4_e5b9));
    x ^= x >> 31;
    x = x.wrapping_mul(0xd6e8_feb8_6659_fd93);
    x ^= x >> 32;
    ((x >> 11) as f64 / (1u64 << 52) as f64 - 1.0) * (1.0 + c as f64)
}

/// The graph of the SVD of a `rows` x `cols` matrix in `blocks` row blocks.
pub fn tsqr_svd(rows: u64, cols: u64, blocks: u64) -> Node<(Vec<f64>, f64)> {
    let block = rows.div_ceil(blocks);
    let a: Vec<Node<DMatrix<f64>>> = (0..rows.div_ceil(block))
        .map(|i| load(i, block, rows, cols))
        .collect();
    let mut level: Vec<Node<DMatrix<f64>>> = a.iter().map(r_factor).collect();
    // Up the tree, pairwise, iteratively.
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        let mut pairs = level.into_iter();
        while let Some(top) = pairs.next() {
            next.push(match pairs.next() {
                Some(bottom) => combine(top, bottom),
                None => top,
            });
        }
        level = next;
    }
    let sv = factor(level.pop().expect("at least one block"));
    let errors: Vec<Node<f64>> = a
        .iter()
        .map(|a_i| rebuild_error(a_i, left(a_i, &sv), &sv))
        .collect();
    report(&sv, errors)
}
