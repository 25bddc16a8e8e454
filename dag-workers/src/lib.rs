//! Worker processes for `dag`.
//!
//! The embedded runtime's worker threads live in `dag-runtime` (the default must work without
//! this crate). This crate is where a user's binary becomes a worker process serving DAGs from a
//! shared Redis: the Redis-stream worker pool and the one-process-per-invocation mode.

pub use dag_runtime::worker_id;
