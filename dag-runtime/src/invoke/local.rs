//! [`LocalPool`]: a fixed set of worker threads in this process sharing one invocation queue.

use std::sync::Arc;
use std::thread;

use crossbeam_channel::{Receiver, Sender};

use crate::engine::{run_invocation, Delegate, Invocation, LoadedDag, WorkerContext};
use crate::error::DagError;
use crate::store::ThreadConnections;

enum Job {
    Run(Arc<LoadedDag>, Invocation),
    Stop,
}

/// Worker threads of the embedded runtime.
///
/// Each thread is a decentralized worker: it takes an invocation from the shared queue, runs the
/// worker step, continues with one ready child and puts the others back on the queue, where idle
/// threads pick them up. Task bodies run on these threads, never on the async executor, so a
/// blocking or CPU-heavy body cannot stall I/O.
pub struct LocalPool {
    sender: Sender<Job>,
    threads: usize,
}

struct QueueDelegate(Sender<Job>);

impl Delegate for QueueDelegate {
    fn delegate(&self, dag: &Arc<LoadedDag>, invocation: Invocation) {
        // The pool's receivers live as long as the pool, which outlives every running DAG.
        let _ = self.0.send(Job::Run(Arc::clone(dag), invocation));
    }

    fn in_process(&self) -> bool {
        true
    }

    fn has_waiting_work(&self) -> bool {
        !self.0.is_empty()
    }
}

impl LocalPool {
    /// Starts `threads` workers that share `ctx`'s store and I/O handle.
    pub fn start(threads: usize, ctx: WorkerContext) -> Result<Self, DagError> {
        let threads = threads.max(1);
        let (sender, receiver) = crossbeam_channel::unbounded();
        for i in 0..threads {
            let name = format!("{}/local-{i}", ctx.name);
            let ctx = WorkerContext {
                metrics: ctx.metrics.as_ref().map(|m| m.for_worker(&name)),
                name,
                ..ctx.clone()
            };
            let receiver = receiver.clone();
            let delegate = QueueDelegate(sender.clone());
            thread::Builder::new()
                .name(format!("dag-worker-{i}"))
                .spawn(move || serve(ctx, receiver, delegate))
                .map_err(|e| DagError::Runtime(format!("could not start a worker thread: {e}")))?;
        }
        Ok(LocalPool { sender, threads })
    }

    /// Queues an invocation for the next idle worker.
    pub fn submit(&self, dag: Arc<LoadedDag>, invocation: Invocation) {
        let _ = self.sender.send(Job::Run(dag, invocation));
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }
}

fn serve(ctx: WorkerContext, queue: Receiver<Job>, delegate: QueueDelegate) {
    // This thread only waits on store calls and runs task bodies: a Redis store's round trips
    // go on a connection of its own, without a hand-off to the I/O thread and back.
    let _direct = ThreadConnections::enter();
    while let Ok(Job::Run(dag, invocation)) = queue.recv() {
        // In process: a worker that dies takes the whole runtime with it, nothing to re-run.
        run_invocation(&ctx, &dag, invocation, &delegate, "");
    }
}

impl Drop for LocalPool {
    fn drop(&mut self) {
        // Each thread stops at the first `Stop` it takes. Work queued before is still done.
        for _ in 0..self.threads {
            let _ = self.sender.send(Job::Stop);
        }
    }
}
