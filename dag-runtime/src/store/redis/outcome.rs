//! What the result list `dag:{id}:result` holds: a DAG's outcome, tagged with the DAG's id.
//!
//! `S<id>\n<result bytes>` for a success, `F<id>\n<error JSON>` for a failure. The client takes
//! from the list only values that parse and name its own DAG, so a stray value pushed there by
//! something else is skipped rather than taken for the result.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::DagError;
use crate::store::{DagId, Outcome, TaskErrorRecord};

const SUCCESS: u8 = b'S';
const FAILURE: u8 = b'F';

/// What `dag:{id}:errors` holds per node: the record plus when it was written.
#[derive(Serialize, Deserialize)]
pub(crate) struct ErrorJson {
    #[serde(flatten)]
    pub record: TaskErrorRecord,
    /// Milliseconds since the Unix epoch.
    pub time: u64,
}

impl ErrorJson {
    /// `record` as JSON, stamped with the time now.
    pub(crate) fn encode(record: TaskErrorRecord) -> Result<Vec<u8>, DagError> {
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        serde_json::to_vec(&ErrorJson { record, time })
            .map_err(|e| DagError::Store(format!("could not encode a task error as JSON: {e}")))
    }
}

/// The list value for the outcome of `dag`: `tag`, the id, a newline, `payload`.
fn tagged(tag: u8, dag: &DagId, payload: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(2 + dag.as_str().len() + payload.len());
    value.push(tag);
    value.extend_from_slice(dag.as_str().as_bytes());
    value.push(b'\n');
    value.extend_from_slice(payload);
    value
}

/// The list value for a success with `result`.
pub(crate) fn success(dag: &DagId, result: &[u8]) -> Vec<u8> {
    tagged(SUCCESS, dag, result)
}

/// The length of [`success`]'s value, without building it.
pub(crate) fn success_len(dag: &DagId, result: &[u8]) -> usize {
    1 + dag.as_str().len() + 1 + result.len()
}

/// The list value for a failure recorded as `error_json`.
pub(crate) fn failure(dag: &DagId, error_json: &[u8]) -> Vec<u8> {
    tagged(FAILURE, dag, error_json)
}

/// The outcome of `dag` in a list value, or `None` if the value is not a well-formed outcome
/// of this DAG.
pub(crate) fn parse(dag: &DagId, value: &Bytes) -> Option<Outcome> {
    let (&tag, rest) = value.split_first()?;
    let payload = rest
        .strip_prefix(dag.as_str().as_bytes())?
        .strip_prefix(b"\n")?;
    let at = value.len() - payload.len();
    match tag {
        SUCCESS => Some(Outcome::Success(value.slice(at..))),
        FAILURE => serde_json::from_slice::<ErrorJson>(payload)
            .ok()
            .map(|e| Outcome::Failed(e.record)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_round_trips_and_names_its_dag() {
        let dag = DagId::from("abc");
        let value = Bytes::from(success(&dag, b"\x2a"));
        assert_eq!(
            parse(&dag, &value),
            Some(Outcome::Success(Bytes::from_static(b"\x2a")))
        );
        assert_eq!(parse(&DagId::from("abd"), &value), None);
        assert_eq!(parse(&DagId::from("ab"), &value), None);
        assert_eq!(success_len(&dag, b"\x2a"), value.len());
    }

    #[test]
    fn stray_values_are_not_outcomes() {
        let dag = DagId::from("abc");
        for stray in [
            &b""[..],
            b"S",
            b"Sabc",
            b"X",
            b"Fabc\n{not json",
            b"\xff\xff",
        ] {
            assert_eq!(
                parse(&dag, &Bytes::copy_from_slice(stray)),
                None,
                "{stray:?}"
            );
        }
    }

    proptest::proptest! {
        /// Whatever bytes sit on a result list, parsing them never panics, and what parses as
        /// this DAG's success is exactly the bytes after its tag.
        #[test]
        fn any_list_value_parses_or_is_skipped(value in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let dag = DagId::from("d");
            let value = Bytes::from(value);
            if let Some(Outcome::Success(result)) = parse(&dag, &value) {
                proptest::prop_assert!(value.starts_with(b"Sd\n"));
                proptest::prop_assert_eq!(&result[..], &value[3..]);
            }
        }
    }
}
