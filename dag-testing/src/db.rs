//! The keyspace: values of every type, their expiry, and the databases `SELECT` chooses from.
//!
//! Expiry is lazy, as Redis's is seen by clients: a key past its deadline is removed when it is
//! next touched, and `SCAN`, `KEYS` and `DBSIZE` remove every expired key first.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::resp::Reply;
use crate::stream::Stream;

/// Number of databases (`SELECT 0` .. `SELECT 15`), as Redis's default `databases 16`.
pub(crate) const DATABASES: usize = 16;

/// `WRONGTYPE`, Redis's reply to a command on a key of another type.
pub(crate) const WRONGTYPE: &str =
    "WRONGTYPE Operation against a key holding the wrong kind of value";

/// Milliseconds since the Unix epoch (expiry deadlines are absolute, like Redis's).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A value of one of Redis's types.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// A string (also integers, which Redis stores as strings).
    Str(Vec<u8>),
    /// A list.
    List(VecDeque<Vec<u8>>),
    /// A hash.
    Hash(HashMap<Vec<u8>, Vec<u8>>),
    /// A set.
    Set(HashSet<Vec<u8>>),
    /// A sorted set.
    ZSet(ZSet),
    /// A stream with its consumer groups.
    Stream(Box<Stream>),
}

impl Value {
    /// The name `TYPE` answers.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    /// Whether an aggregate is empty (Redis deletes empty lists, sets, hashes and sorted sets).
    fn is_empty_aggregate(&self) -> bool {
        match self {
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.len() == 0,
            Value::Str(_) | Value::Stream(_) => false,
        }
    }
}

/// A sorted set: members by score (ties by member), and each member's score.
#[derive(Debug, Clone, Default)]
pub(crate) struct ZSet {
    scores: HashMap<Vec<u8>, f64>,
    order: BTreeSet<(Score, Vec<u8>)>,
}

/// A score ordered like Redis orders them (total order; NaN never gets in).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Score(pub(crate) f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // -0.0 and 0.0 are equal scores in Redis.
        let a = if self.0 == 0.0 { 0.0 } else { self.0 };
        let b = if other.0 == 0.0 { 0.0 } else { other.0 };
        a.total_cmp(&b)
    }
}

impl ZSet {
    /// Number of members.
    pub(crate) fn len(&self) -> usize {
        self.scores.len()
    }

    /// A member's score.
    pub(crate) fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Sets a member's score; returns whether the member is new.
    pub(crate) fn insert(&mut self, member: Vec<u8>, score: f64) -> bool {
        match self.scores.insert(member.clone(), score) {
            Some(old) => {
                self.order.remove(&(Score(old), member.clone()));
                self.order.insert((Score(score), member));
                false
            }
            None => {
                self.order.insert((Score(score), member));
                true
            }
        }
    }

    /// Removes a member; returns whether it was there.
    pub(crate) fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.remove(member) {
            Some(old) => {
                self.order.remove(&(Score(old), member.to_vec()));
                true
            }
            None => false,
        }
    }

    /// Members with scores, lowest first.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], f64)> {
        self.order.iter().map(|(s, m)| (m.as_slice(), s.0))
    }

    /// A member's rank (0 = lowest score).
    pub(crate) fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        Some(self.order.range(..(Score(score), member.to_vec())).count())
    }
}

/// A key's value and its deadline.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) value: Value,
    /// Milliseconds since the epoch after which the key is gone; `None` for no TTL.
    pub(crate) expires_at: Option<i64>,
}

/// One database: the keys and their values.
#[derive(Debug, Default)]
pub(crate) struct Db {
    keys: HashMap<Vec<u8>, Entry>,
}

/// A typed view of a key, for commands of one type.
pub(crate) type Typed<'a, T> = Result<Option<&'a mut T>, Reply>;

impl Db {
    /// Removes `key` if it has expired.
    fn expire_if_due(&mut self, key: &[u8]) {
        let due = self
            .keys
            .get(key)
            .and_then(|e| e.expires_at)
            .is_some_and(|at| at <= now_ms());
        if due {
            self.keys.remove(key);
        }
    }

    /// Removes every expired key.
    pub(crate) fn expire_all(&mut self) {
        let now = now_ms();
        self.keys
            .retain(|_, e| e.expires_at.is_none_or(|at| at > now));
    }

    /// The live entry of `key`.
    pub(crate) fn get(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.expire_if_due(key);
        self.keys.get_mut(key)
    }

    /// Whether `key` exists (and has not expired).
    pub(crate) fn contains(&mut self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Stores `value` under `key`, without a TTL (what `SET` without options does).
    pub(crate) fn set(&mut self, key: Vec<u8>, value: Value) {
        self.keys.insert(
            key,
            Entry {
                value,
                expires_at: None,
            },
        );
    }

    /// Stores an entry as it is.
    pub(crate) fn put(&mut self, key: Vec<u8>, entry: Entry) {
        self.keys.insert(key, entry);
    }

    /// Removes `key`; returns its entry if it existed.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        self.expire_if_due(key);
        self.keys.remove(key)
    }

    /// Deletes `key` if it is an empty aggregate (after a command removed its last element).
    pub(crate) fn drop_if_empty(&mut self, key: &[u8]) {
        if self
            .keys
            .get(key)
            .is_some_and(|e| e.value.is_empty_aggregate())
        {
            self.keys.remove(key);
        }
    }

    /// Number of live keys.
    pub(crate) fn len(&mut self) -> usize {
        self.expire_all();
        self.keys.len()
    }

    /// Every live key, in a stable order (so that `SCAN` cursors can index into it).
    pub(crate) fn sorted_keys(&mut self) -> Vec<Vec<u8>> {
        self.expire_all();
        let ordered: BTreeMap<&Vec<u8>, ()> = self.keys.keys().map(|k| (k, ())).collect();
        ordered.into_keys().cloned().collect()
    }

    /// Removes every key.
    pub(crate) fn clear(&mut self) {
        self.keys.clear();
    }

    /// The value of `key` as one type: `Ok(None)` if missing, `WRONGTYPE` if another type.
    fn typed<T>(
        &mut self,
        key: &[u8],
        view: impl FnOnce(&mut Value) -> Option<&mut T>,
    ) -> Typed<'_, T> {
        match self.get(key) {
            None => Ok(None),
            Some(entry) => match view(&mut entry.value) {
                Some(v) => Ok(Some(v)),
                None => Err(Reply::err(WRONGTYPE)),
            },
        }
    }

    /// The string at `key`.
    pub(crate) fn string(&mut self, key: &[u8]) -> Typed<'_, Vec<u8>> {
        self.typed(key, |v| match v {
            Value::Str(s) => Some(s),
            _ => None,
        })
    }

    /// The list at `key`.
    pub(crate) fn list(&mut self, key: &[u8]) -> Typed<'_, VecDeque<Vec<u8>>> {
        self.typed(key, |v| match v {
            Value::List(l) => Some(l),
            _ => None,
        })
    }

    /// The hash at `key`.
    pub(crate) fn hash(&mut self, key: &[u8]) -> Typed<'_, HashMap<Vec<u8>, Vec<u8>>> {
        self.typed(key, |v| match v {
            Value::Hash(h) => Some(h),
            _ => None,
        })
    }

    /// The set at `key`.
    pub(crate) fn set_value(&mut self, key: &[u8]) -> Typed<'_, HashSet<Vec<u8>>> {
        self.typed(key, |v| match v {
            Value::Set(s) => Some(s),
            _ => None,
        })
    }

    /// The sorted set at `key`.
    pub(crate) fn zset(&mut self, key: &[u8]) -> Typed<'_, ZSet> {
        self.typed(key, |v| match v {
            Value::ZSet(z) => Some(z),
            _ => None,
        })
    }

    /// The stream at `key`.
    pub(crate) fn stream(&mut self, key: &[u8]) -> Typed<'_, Stream> {
        self.typed(key, |v| match v {
            Value::Stream(s) => Some(&mut **s),
            _ => None,
        })
    }

    /// The aggregate at `key`, created empty (with `make`) if missing; `WRONGTYPE` if another
    /// type.
    pub(crate) fn get_or_create<T>(
        &mut self,
        key: &[u8],
        make: fn() -> Value,
        view: fn(&mut Value) -> Option<&mut T>,
    ) -> Result<&mut T, Reply> {
        if !self.contains(key) {
            self.set(key.to_vec(), make());
        }
        let entry = self.keys.get_mut(key).expect("just ensured");
        view(&mut entry.value).ok_or_else(|| Reply::err(WRONGTYPE))
    }
}
