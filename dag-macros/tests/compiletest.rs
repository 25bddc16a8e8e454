//! Compile-time behaviour of `#[task]`: every rejected signature gets one clear error at the
//! offending token (`tests/ui`), and the accepted shapes compile (`tests/ui-pass`).
//!
//! Regenerate the `.stderr` snapshots with
//! `TRYBUILD=overwrite cargo test -p dag-macros --test compiletest`, then read every one.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui-pass/*.rs");
}
