//! The client's wait for a DAG's outcome: `BLPOP` on the DAG's result list, on a dedicated
//! connection, checking between two polls that the DAG still exists.

use bytes::Bytes;

use super::connection::Dedicated;
use super::keys::DagKeys;
use super::outcome;
use super::scripts::RUNNING;
use super::store::RedisStore;
use crate::error::DagError;
use crate::store::{DagId, Outcome};

/// What one look at a DAG's keys found.
enum Looked {
    /// The outcome, taken off the list.
    Outcome(Outcome),
    /// Still running: wait on.
    Running,
    /// The DAG's keys are gone.
    Gone,
    /// The DAG ended, but its outcome is not on the list.
    Taken,
}

impl RedisStore {
    /// Waits for the outcome of `dag` and takes it off the result list.
    ///
    /// If the connection drops (the server stopped, restarted or the network failed), the next
    /// request opens a new one (see [`Dedicated::send`]) and the DAG is looked at again: a
    /// server that restarted without persistence has lost it, which is an error saying so; a
    /// DAG still there is waited for on the new connection. A server that stays away is an
    /// error once reconnecting has failed.
    pub(super) async fn wait_outcome(&self, dag: &DagId) -> Result<Outcome, DagError> {
        let keys = DagKeys::new(dag);
        let mut conn = self.connection().dedicated().await?;
        let poll = self.connection().config().wait_poll.as_secs_f64();
        let mut look_first = false;
        // Whether the last request lost the connection: one more try reconnects; a second
        // loss in a row means the server is away.
        let mut lost_last = false;
        // Failovers seen during this wait (see `changing_over`).
        let mut changes = 0;
        loop {
            let looked = if look_first {
                self.look(dag, &keys, &mut conn).await
            } else {
                let popped: Result<Option<(String, Bytes)>, _> = conn
                    .send(redis::cmd("BLPOP").arg(keys.result()).arg(poll))
                    .await;
                popped.map(|popped| match popped {
                    Some((_, value)) => match outcome::parse(dag, &value) {
                        Some(outcome) => Looked::Outcome(outcome),
                        None => {
                            stray_value(dag, &value);
                            Looked::Running
                        }
                    },
                    None => Looked::Running,
                })
            };
            match looked {
                Ok(Looked::Outcome(outcome)) => return Ok(outcome),
                Ok(Looked::Gone) => return Err(self.dag_gone(dag)),
                Ok(Looked::Taken) => return Err(self.outcome_taken(dag)),
                Ok(Looked::Running) => {
                    // After a timed-out BLPOP, check that the DAG still exists.
                    look_first = !look_first;
                    lost_last = false;
                }
                Err(e) if changing_over(&e) && changes < MAX_CHANGE_OVERS => {
                    // A failover or resharding under the wait (a Redis Cluster): the master
                    // that held the list unblocked us, or the cluster is electing a new one.
                    // Look at the DAG again (on the new master) after a pause.
                    changes += 1;
                    look_first = true;
                    tokio::time::sleep(CHANGE_OVER_PAUSE).await;
                }
                Err(e) if e.clone().into_server_errors().is_some() => {
                    return Err(self
                        .connection()
                        .error(&format!("could not wait for DAG {dag}"), e));
                }
                Err(e) if lost_last => {
                    return Err(DagError::Redis {
                        addr: self.addr().to_owned(),
                        message: format!(
                            "lost the connection while waiting for DAG {dag} and could not \
                             reconnect ({e}); is the server down? If it restarts without \
                             persistence, the DAG is lost with it: compute it again"
                        ),
                    });
                }
                Err(_) => {
                    // The next request reconnects; look at the DAG first, since its outcome
                    // may have come (or the DAG been lost) meanwhile.
                    lost_last = true;
                    look_first = true;
                }
            }
        }
    }

    /// Looks at the DAG's status, and takes its outcome if it has ended.
    async fn look(
        &self,
        dag: &DagId,
        keys: &DagKeys,
        conn: &mut Dedicated,
    ) -> redis::RedisResult<Looked> {
        let status: Option<Bytes> = conn.send(redis::cmd("GET").arg(keys.status())).await?;
        match status.as_deref() {
            None => Ok(Looked::Gone),
            Some(s) if s == RUNNING.as_bytes() => Ok(Looked::Running),
            // Ended: the outcome is on the list (the scripts set both atomically), unless
            // someone else took it; values that are not this DAG's outcome are skipped.
            Some(_) => loop {
                let popped: Option<Bytes> =
                    conn.send(redis::cmd("LPOP").arg(keys.result())).await?;
                let Some(value) = popped else {
                    return Ok(Looked::Taken);
                };
                match outcome::parse(dag, &value) {
                    Some(outcome) => return Ok(Looked::Outcome(outcome)),
                    None => stray_value(dag, &value),
                }
            },
        }
    }

    /// The error for a DAG whose keys are gone while a client waits for it.
    fn dag_gone(&self, dag: &DagId) -> DagError {
        DagError::Store(format!(
            "DAG {dag} is unknown to Redis at {}: its keys are gone. Either the server \
             restarted and lost them (no persistence), or they were deleted (the DAG was \
             cancelled, expired after `key_ttl`, or was already collected); compute it again",
            self.addr()
        ))
    }

    /// The error for a DAG that ended but whose outcome someone else took off the list.
    fn outcome_taken(&self, dag: &DagId) -> DagError {
        DagError::Store(format!(
            "DAG {dag} has ended, but its outcome is no longer on its result list in Redis at {}: \
             another client collected it, or the reply was lost with a dropped connection; \
             compute it again",
            self.addr()
        ))
    }
}

/// How many times one wait rides through a change of masters before it gives up.
const MAX_CHANGE_OVERS: u32 = 600;

/// The pause before looking again after a change of masters (600 of them: a minute).
const CHANGE_OVER_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Whether the server's answer says its role or the cluster's state is changing (a failover,
/// a resharding): `UNBLOCKED` (a blocked `BLPOP` on a master that became a replica),
/// `CLUSTERDOWN`, `TRYAGAIN`, `MASTERDOWN`, `LOADING`, `READONLY`. What the cluster client did
/// not ride through itself: the wait looks again rather than failing the DAG.
fn changing_over(e: &redis::RedisError) -> bool {
    matches!(
        e.code(),
        Some("UNBLOCKED" | "CLUSTERDOWN" | "TRYAGAIN" | "MASTERDOWN" | "LOADING" | "READONLY")
    )
}

/// Reports a value on a DAG's result list that is not its outcome (written by something else).
fn stray_value(dag: &DagId, value: &Bytes) {
    let shown = &value[..value.len().min(40)];
    eprintln!(
        "dag: skipping a value on the result list of DAG {dag} that is not its outcome \
         ({} bytes, starting {shown:?})",
        value.len()
    );
}
