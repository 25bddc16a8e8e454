//! The progress bar of a `compute` (tasks done / total, rate, ETA), driven by the DAG's events
//! through [`Store::progress`]; drawn on stderr when it is a terminal.

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::oneshot;

use crate::store::{DagId, EventCursor, Store};

/// How often the bar reads new events.
const POLL: Duration = Duration::from_millis(100);

/// Shows the bar while it lives; clears it when dropped.
pub(super) struct Progress {
    stop: Option<oneshot::Sender<()>>,
}

impl Progress {
    /// Starts polling the events of `dag` (`total` tasks) on `io`.
    pub(super) fn start(
        store: &Arc<dyn Store>,
        dag: &DagId,
        total: u64,
        io: &tokio::runtime::Handle,
    ) -> Progress {
        let (stop, mut stopped) = oneshot::channel();
        let (store, dag) = (Arc::clone(store), dag.clone());
        io.spawn(async move {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} tasks, {per_sec}, ETA {eta}",
            ) {
                bar.set_style(style);
            }
            let mut cursor = EventCursor::default();
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(POLL) => {}
                }
                // A failed read only leaves the bar behind; the compute reports store errors.
                if store.progress(&dag, &mut cursor).await.is_ok() {
                    bar.set_position(cursor.completed.min(total));
                }
            }
            bar.finish_and_clear();
        });
        Progress { stop: Some(stop) }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
