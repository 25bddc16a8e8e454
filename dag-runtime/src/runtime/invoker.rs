//! Where a runtime's invocations go: one constructor per place the builder can choose.

use std::sync::Arc;

use crate::engine::{Invocation, LoadedDag, WorkerContext};
use crate::error::DagError;
use crate::invoke::processes::{self, WorkerProcesses};
use crate::invoke::LocalPool;
use crate::store::{DagId, InvocationStream, RedisAddress, RedisStore, DEFAULT_STREAM};

use super::io::IoRuntime;

/// Where a runtime's invocations go.
pub(super) enum Invoker {
    /// Worker threads in this process (the embedded default).
    Local(LocalPool),
    /// A Redis Stream read by worker processes.
    Stream(StreamInvoker),
}

pub(super) struct StreamInvoker {
    pub(super) stream: InvocationStream,
    /// Processes this runtime started, stopped when it is dropped (before the stream goes).
    pub(super) processes: Option<Box<dyn WorkerProcesses>>,
    /// Whether the stream belongs to this runtime alone (deleted when it is dropped).
    private: bool,
    io: tokio::runtime::Handle,
}

/// The Redis server of a runtime whose invocations go through a stream.
pub(super) struct RedisTarget<'a> {
    pub address: &'a RedisAddress,
    pub store: &'a RedisStore,
    /// The stream the builder named, if any.
    pub stream: Option<&'a str>,
    /// Added to the environment of the worker processes the runtime starts.
    pub env: Vec<(String, String)>,
}

impl Invoker {
    /// `threads` worker threads in this process.
    pub(super) fn local(threads: usize, ctx: WorkerContext) -> Result<Self, DagError> {
        Ok(Invoker::Local(LocalPool::start(threads, ctx)?))
    }

    /// Worker processes started by hand, serving the shared stream (`dag:invocations` unless
    /// named).
    pub(super) fn pool(redis: RedisTarget<'_>, io: &IoRuntime) -> Result<Self, DagError> {
        let key = redis.stream.unwrap_or(DEFAULT_STREAM);
        let stream = open_stream(redis.store, key, io)?;
        Ok(Invoker::Stream(StreamInvoker {
            stream,
            processes: None,
            private: false,
            io: io.handle().clone(),
        }))
    }

    /// `processes` worker processes of this executable, with `threads` threads each.
    pub(super) fn spawned(
        processes: usize,
        threads: usize,
        redis: RedisTarget<'_>,
        io: &IoRuntime,
    ) -> Result<Self, DagError> {
        let launcher = processes::launcher()?;
        let mut invoker = StreamInvoker::private(&redis, io)?;
        invoker.processes = Some(launcher.spawn_pool(
            processes,
            threads,
            redis.address,
            &invoker.stream,
            &redis.env,
        )?);
        Ok(Invoker::Stream(invoker))
    }

    /// A fresh process of this executable per invocation, at most `max_alive` at once.
    pub(super) fn per_invocation(
        max_alive: usize,
        redis: RedisTarget<'_>,
        io: &IoRuntime,
    ) -> Result<Self, DagError> {
        let launcher = processes::launcher()?;
        let mut invoker = StreamInvoker::private(&redis, io)?;
        invoker.processes = Some(launcher.per_invocation(
            max_alive,
            redis.address,
            &invoker.stream,
            io.handle(),
            &redis.env,
        )?);
        Ok(Invoker::Stream(invoker))
    }

    /// Starts the roots of `dag`.
    pub(super) async fn start(&self, dag: &Arc<LoadedDag>) -> Result<(), DagError> {
        match self {
            Invoker::Local(pool) => {
                for root in dag.plan.roots() {
                    pool.submit(Arc::clone(dag), Invocation::fetching(root));
                }
                Ok(())
            }
            Invoker::Stream(invoker) => {
                let roots: Vec<(DagId, u32)> =
                    dag.plan.roots().map(|r| (dag.id.clone(), r)).collect();
                invoker.stream.submit(&roots).await
            }
        }
    }
}

impl StreamInvoker {
    /// The stream the builder named, or one of this runtime's own (deleted with it).
    fn private(redis: &RedisTarget<'_>, io: &IoRuntime) -> Result<Self, DagError> {
        let (key, private) = match redis.stream {
            Some(key) => (key.to_owned(), false),
            None => (format!("dag:stream:{}", DagId::new()), true),
        };
        Ok(StreamInvoker {
            stream: open_stream(redis.store, &key, io)?,
            processes: None,
            private,
            io: io.handle().clone(),
        })
    }
}

/// The stream `key` on `store`'s server, with its consumer group created.
fn open_stream(
    store: &RedisStore,
    key: &str,
    io: &IoRuntime,
) -> Result<InvocationStream, DagError> {
    let stream = InvocationStream::new(store.clone(), key);
    let creating = stream.clone();
    io.run(async move { creating.create_group().await })??;
    Ok(stream)
}

impl Drop for StreamInvoker {
    fn drop(&mut self) {
        // Stop the processes first: they finish and acknowledge their current invocations.
        self.processes = None;
        if self.private {
            // On a thread of its own: the runtime may be dropped inside async code.
            let (stream, io) = (self.stream.clone(), self.io.clone());
            let _ = std::thread::spawn(move || io.block_on(stream.destroy())).join();
        }
    }
}
