//! Queueing delegated children on the invocation stream, one pipeline per step.

use std::sync::Arc;

use dag_runtime::engine::{Delegate, Invocation, LoadedDag};
use dag_runtime::store::{DagId, FailureKind, InvocationStream, Store, TaskErrorRecord};
use dag_runtime::{process_name, DagError};

/// Hands the ready children a worker does not keep to the stream, through the [`Publisher`].
pub(crate) struct StreamDelegate<'a>(pub(crate) &'a Publisher);

impl Delegate for StreamDelegate<'_> {
    fn delegate(&self, dag: &Arc<LoadedDag>, invocation: Invocation) {
        // The output it carries is stored already; another process fetches it from Redis.
        self.0.send(Arc::clone(dag), invocation.node);
    }
}

pub(crate) enum Message {
    Add(Arc<LoadedDag>, u32),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Queues delegated invocations on the stream: a task that sends whatever has accumulated in
/// one pipeline, so the children one step delegates cost one round trip together.
pub(crate) struct Publisher {
    sender: tokio::sync::mpsc::UnboundedSender<Message>,
    handle: tokio::runtime::Handle,
}

impl Publisher {
    pub(crate) fn start(handle: &tokio::runtime::Handle, stream: InvocationStream) -> Self {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        handle.spawn(publish(receiver, stream));
        Publisher {
            sender,
            handle: handle.clone(),
        }
    }

    pub(crate) fn send(&self, plan: Arc<LoadedDag>, node: u32) {
        let _ = self.sender.send(Message::Add(plan, node));
    }

    /// Waits until everything sent before is in the stream (or its DAG was failed).
    pub(crate) fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.sender.send(Message::Flush(done)).is_ok() {
            let _ = self.handle.block_on(wait);
        }
    }
}

pub(crate) async fn publish(
    mut receiver: tokio::sync::mpsc::UnboundedReceiver<Message>,
    stream: InvocationStream,
) {
    while let Some(first) = receiver.recv().await {
        let mut adds = Vec::new();
        let mut flushes = Vec::new();
        let mut take = |message| match message {
            Message::Add(plan, node) => adds.push((plan, node)),
            Message::Flush(done) => flushes.push(done),
        };
        take(first);
        while let Ok(message) = receiver.try_recv() {
            take(message);
        }
        if !adds.is_empty() {
            let invocations: Vec<(DagId, u32)> = adds
                .iter()
                .map(|(dag, node)| (dag.id.clone(), *node))
                .collect();
            if let Err(e) = stream.submit(&invocations).await {
                fail_unqueued(&stream, &adds, &e).await;
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// The children could not be queued: their DAGs cannot finish, so they fail now (a lost
/// invocation must not leave a client waiting forever).
pub(crate) async fn fail_unqueued(
    stream: &InvocationStream,
    adds: &[(Arc<LoadedDag>, u32)],
    e: &DagError,
) {
    let mut failed: Vec<&DagId> = Vec::new();
    for (dag, node) in adds {
        if failed.contains(&&dag.id) {
            continue;
        }
        failed.push(&dag.id);
        let record = TaskErrorRecord::new(
            FailureKind::Store,
            dag.task_name(*node),
            *node,
            format!("could not hand node {node} to another worker: {e}"),
            &process_name(),
        );
        let _ = stream.store().fail(&dag.id, record).await;
    }
}
