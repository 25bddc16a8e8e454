//! The stream type: entries by id, and consumer groups with their pending entries lists.

use std::collections::BTreeMap;
use std::fmt;

/// A stream entry id, `<ms>-<seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct StreamId {
    pub(crate) ms: u64,
    pub(crate) seq: u64,
}

impl StreamId {
    /// The smallest id.
    pub(crate) const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// The largest id.
    pub(crate) const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// Parses `ms-seq` or `ms` (the sequence then being `missing_seq`).
    pub(crate) fn parse(text: &[u8], missing_seq: u64) -> Option<StreamId> {
        let text = std::str::from_utf8(text).ok()?;
        match text.split_once('-') {
            Some((ms, seq)) => Some(StreamId {
                ms: ms.parse().ok()?,
                seq: seq.parse().ok()?,
            }),
            None => Some(StreamId {
                ms: text.parse().ok()?,
                seq: missing_seq,
            }),
        }
    }

    /// The next id (for exclusive ranges); `None` past the largest.
    pub(crate) fn next(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId {
                ms: self.ms,
                seq: self.seq + 1,
            })
        } else if self.ms < u64::MAX {
            Some(StreamId {
                ms: self.ms + 1,
                seq: 0,
            })
        } else {
            None
        }
    }

    /// The previous id (for exclusive ranges); `None` before the smallest.
    pub(crate) fn prev(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId {
                ms: self.ms,
                seq: self.seq - 1,
            })
        } else if self.ms > 0 {
            Some(StreamId {
                ms: self.ms - 1,
                seq: u64::MAX,
            })
        } else {
            None
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// An entry delivered to a consumer and not acknowledged yet.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// The consumer that owns it.
    pub(crate) consumer: Vec<u8>,
    /// When it was last delivered (ms since the epoch): its idle time starts there.
    pub(crate) delivered_at: i64,
    /// How many times it was delivered.
    pub(crate) deliveries: u64,
}

/// A consumer of a group.
#[derive(Debug, Clone)]
pub(crate) struct Consumer {
    /// When it was last active (ms since the epoch).
    pub(crate) seen_at: i64,
}

/// A consumer group.
#[derive(Debug, Clone, Default)]
pub(crate) struct Group {
    /// The last id delivered to any consumer (`>` reads after it).
    pub(crate) last_delivered: StreamId,
    /// The pending entries list, by id.
    pub(crate) pending: BTreeMap<StreamId, Pending>,
    /// The consumers, by name.
    pub(crate) consumers: BTreeMap<Vec<u8>, Consumer>,
}

/// A stream: entries (field-value pairs, flattened) by id, and consumer groups by name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stream {
    pub(crate) entries: BTreeMap<StreamId, Vec<Vec<u8>>>,
    /// The id of the last entry ever added (deleted or not).
    pub(crate) last_id: StreamId,
    pub(crate) groups: BTreeMap<Vec<u8>, Group>,
}

/// Number of entries in one node of Redis's stream radix tree (`stream-node-max-entries`):
/// trimming with `~` removes whole nodes only, so it removes entries by this many.
pub(crate) const NODE_ENTRIES: usize = 100;

impl Stream {
    /// Removes the oldest entries until at most `max_len` are left; with `approximate`, only
    /// whole nodes of [`NODE_ENTRIES`] (as Redis's `~`). Returns how many were removed.
    pub(crate) fn trim_to_len(&mut self, max_len: usize, approximate: bool) -> usize {
        let mut removed = 0;
        while self.entries.len() > max_len {
            if approximate && self.entries.len() - max_len < NODE_ENTRIES {
                break;
            }
            let batch = if approximate { NODE_ENTRIES } else { 1 };
            for _ in 0..batch {
                if self.entries.pop_first().is_some() {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Removes entries with ids below `min_id`; with `approximate`, only in whole nodes.
    pub(crate) fn trim_to_min_id(&mut self, min_id: StreamId, approximate: bool) -> usize {
        let below = self.entries.range(..min_id).count();
        let take = if approximate {
            below - below % NODE_ENTRIES
        } else {
            below
        };
        for _ in 0..take {
            self.entries.pop_first();
        }
        take
    }
}
