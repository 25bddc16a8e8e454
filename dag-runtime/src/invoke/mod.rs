//! Where invocations run. The embedded default is [`LocalPool`]: worker threads in this process.

mod local;

pub use local::LocalPool;
