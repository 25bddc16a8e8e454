//! MessagePack encoding of values: the one byte format between tasks, the store and the client.
//!
//! Every output, constant argument and result is the `rmp-serde` encoding of the value. Because
//! MessagePack is self-delimiting, a `Vec<T>` parameter can be assembled from its elements' bytes
//! behind an array header, without decoding them (see [`crate::engine::assemble`]).

use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};

/// Encodes `value` as MessagePack bytes.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, String> {
    rmp_serde::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// Decodes MessagePack bytes into a `T`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_nested_value() {
        let value = vec![vec![1_i64, -2], vec![]];
        let bytes = encode(&value).unwrap();
        assert_eq!(decode::<Vec<Vec<i64>>>(&bytes).unwrap(), value);
    }

    #[test]
    fn decoding_the_wrong_type_is_an_error() {
        let bytes = encode("text").unwrap();
        assert!(decode::<i64>(&bytes).is_err());
    }
}
