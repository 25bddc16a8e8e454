//! Where invocations run. The embedded default is [`LocalPool`]: worker threads in this process.
//! With a Redis store, invocations can instead go through a Redis Stream
//! ([`InvocationStream`](crate::store::InvocationStream)) to worker processes, which the client
//! may start itself through the [`processes`] seam (implemented by `dag-workers`).

mod local;
pub mod processes;

pub use local::LocalPool;
