//! Queueing delegated children on the invocation stream, one pipeline per step.

use super::*;

/// Hands the ready children a worker does not keep to the stream, through the [`Publisher`].
pub(crate) struct StreamDelegate<'a>(pub(crate) &'a Publisher);

impl Delegate for StreamDelegate<'_> {
    fn delegate(&self, plan: &Arc<LoadedPlan>, invocation: Invocation) {
        // The output it carries is stored already; another process fetches it from Redis.
        self.0.send(Arc::clone(plan), invocation.node);
    }
}

pub(crate) enum Message {
    Add(Arc<LoadedPlan>, u32),
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

    pub(crate) fn send(&self, plan: Arc<LoadedPlan>, node: u32) {
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
                .map(|(plan, node)| (plan.dag.clone(), *node))
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
    adds: &[(Arc<LoadedPlan>, u32)],
    e: &DagError,
) {
    let mut failed: Vec<&DagId> = Vec::new();
    for (plan, node) in adds {
        if failed.contains(&&plan.dag) {
            continue;
        }
        failed.push(&plan.dag);
        let record = TaskErrorRecord {
            kind: FailureKind::Store,
            task: plan.plan.task_name(*node).to_owned(),
            node: *node,
            attempt: 1,
            message: format!("could not hand node {node} to another worker: {e}"),
            worker: worker_id(),
            backtrace: None,
        };
        let _ = stream.store().fail(&plan.dag, record).await;
    }
}
