//! The names of a DAG's keys: every key of one DAG shares the hash tag `{<id>}`, so that its
//! scripts run on one Redis Cluster slot.
//!
//! Per DAG: `plan`, `status`, `errors`, `result`, `events`, `done` (one key each) and one
//! `out:<n>` per node. `done` replaced the per-node sets `done:<n>` of earlier versions: a
//! hash with, per child `c`, a field `c` (its single parent's claim, or how many of its
//! distinct parents finished), a field `c<p` per finished parent `p` (of a child with several),
//! and `c@` (the claim that made such a child ready); see `scripts/complete.lua`. It is created
//! with its expiry at submission, so that a completion creates no key and sets no expiry per
//! child.

use crate::store::DagId;

/// The sorted set of DAG ids by submission time (ms), for `gc` and listings.
pub(crate) const DAGS: &str = "dags";

/// The keys of one DAG: `dag:{<id>}:<name>`.
pub(crate) struct DagKeys(String);

impl DagKeys {
    pub(crate) fn new(dag: &DagId) -> Self {
        DagKeys(format!("dag:{{{dag}}}:"))
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.0)
    }

    /// `running`, `succeeded` or `failed`.
    pub(crate) fn status(&self) -> String {
        self.key("status")
    }

    /// The plan (MessagePack).
    pub(crate) fn plan(&self) -> String {
        self.key("plan")
    }

    /// Hash: node -> JSON error.
    pub(crate) fn errors(&self) -> String {
        self.key("errors")
    }

    /// The list the client blocks on for the outcome.
    pub(crate) fn result(&self) -> String {
        self.key("result")
    }

    /// Stream of task events.
    pub(crate) fn events(&self) -> String {
        self.key("events")
    }

    /// Output of node `node`.
    pub(crate) fn out(&self, node: u32) -> String {
        format!("{}out:{node}", self.0)
    }

    /// Hash of the finished parents of every node (see `scripts/complete.lua`): one key per
    /// DAG, created with its expiry at submission, so that a completion creates no key per
    /// child.
    pub(crate) fn done(&self) -> String {
        self.key("done")
    }

    /// The keys that describe the DAG as a whole (not per node), which the client deletes once
    /// it has the outcome.
    pub(crate) fn outcome_keys(&self) -> [String; 4] {
        [self.status(), self.errors(), self.result(), self.events()]
    }
}

/// The DAG id of a key `dag:{<id>}:...`, if it is one.
pub(crate) fn dag_of_key(key: &str) -> Option<&str> {
    key.strip_prefix("dag:{")
        .and_then(|rest| rest.split_once('}'))
        .map(|(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_hash_tag() {
        let keys = DagKeys::new(&DagId::from("abc"));
        assert_eq!(keys.out(3), "dag:{abc}:out:3");
        assert_eq!(keys.done(), "dag:{abc}:done");
        assert_eq!(keys.status(), "dag:{abc}:status");
        assert_eq!(dag_of_key(&keys.plan()), Some("abc"));
        assert_eq!(dag_of_key("dags"), None);
    }
}
