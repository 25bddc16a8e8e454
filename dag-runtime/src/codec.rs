//! MessagePack encoding of values: the one byte format between tasks, the store and the client.
//!
//! Every output, constant argument and result is the `rmp-serde` encoding of the value. Because
//! MessagePack is self-delimiting, a `Vec<T>` parameter can be assembled from its elements' bytes
//! behind an array header, without decoding them (see `engine::assemble`).
//!
//! Bytes read back from a store may have been written by anyone with access to it, so decoding
//! trusts no length and no depth they claim: [`split_array`] reserves no more elements than the
//! bytes present can hold, rmp-serde checks string and binary lengths against the input and
//! serde caps what a collection pre-allocates (1 MiB), and [`decode`] limits nesting to
//! [`MAX_DEPTH`] so that a recursive type cannot overflow a worker thread's stack.

use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};

/// Encodes `value` as MessagePack bytes.
///
/// Most outputs and constants are a few bytes: they are encoded on the stack and copied into
/// one allocation of their exact size. (`Bytes::from` a `Vec` that rmp-serde grew, whose
/// capacity exceeds its length, would allocate a second, shared header besides the buffer:
/// two allocations per task output, and more bytes kept per output.) Larger encodings spill
/// into a `Vec` that becomes the `Bytes` without a copy.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, String> {
    let mut buffer = SmallBuffer {
        inline: [0; INLINE],
        len: 0,
        spilled: None,
    };
    rmp_serde::encode::write(&mut buffer, value).map_err(|e| e.to_string())?;
    Ok(match buffer.spilled {
        Some(bytes) => Bytes::from(bytes),
        None => Bytes::copy_from_slice(&buffer.inline[..buffer.len]),
    })
}

/// Bytes of an encoding kept on the stack before it spills into a `Vec`.
const INLINE: usize = 64;

/// A writer that keeps up to [`INLINE`] bytes on the stack, then moves to a `Vec`.
struct SmallBuffer {
    inline: [u8; INLINE],
    len: usize,
    spilled: Option<Vec<u8>>,
}

impl std::io::Write for SmallBuffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Some(vec) = &mut self.spilled {
            vec.extend_from_slice(data);
        } else if self.len + data.len() <= INLINE {
            self.inline[self.len..self.len + data.len()].copy_from_slice(data);
            self.len += data.len();
        } else {
            let mut vec = Vec::with_capacity((self.len + data.len()).max(2 * INLINE));
            vec.extend_from_slice(&self.inline[..self.len]);
            vec.extend_from_slice(data);
            self.spilled = Some(vec);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How deeply the arrays and maps of a value may nest for [`decode`]: 128 levels, like
/// serde_json's default recursion limit.
///
/// Decoding a recursive type (a tree, a linked list of boxes) recurses once per level, and a
/// level can take several KiB of stack in a debug build (measured: 3.5 KiB for a newtype around
/// a `Vec` of itself, 7 KiB for a struct of five fields): rmp-serde's own limit of 1024 levels
/// would overflow the 2 MiB stack of a worker thread on a value a hostile store holds, which
/// aborts the whole worker process. A value that nests deeper fails to decode with an error
/// that says so; store it flatter (for a tree: a `Vec` of nodes that refer to each other by
/// index).
pub const MAX_DEPTH: usize = 128;

/// Decodes MessagePack bytes into a `T`, nesting at most [`MAX_DEPTH`] levels deep.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut decoder = rmp_serde::Deserializer::from_read_ref(bytes);
    // rmp-serde fails when its counter reaches 0: allow exactly MAX_DEPTH levels.
    decoder.set_max_depth(MAX_DEPTH + 1);
    T::deserialize(&mut decoder).map_err(|e| match e {
        rmp_serde::decode::Error::DepthLimitExceeded => format!(
            "the value nests arrays and maps deeper than {MAX_DEPTH} levels, the most this \
             program decodes"
        ),
        other => other.to_string(),
    })
}

/// Decodes MessagePack bytes into a `T`, failing if any bytes are left over: for values that
/// must be exactly one encoding (a DAG's result), where extra bytes mean a different value.
pub fn decode_exact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut rest = bytes;
    let value =
        T::deserialize(&mut rmp_serde::Deserializer::new(&mut rest)).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!(
            "{} bytes follow the value; the bytes are not one value of this type",
            rest.len()
        ));
    }
    Ok(value)
}

/// Splits an encoded list into its elements' encodings, without decoding them.
///
/// This is how a dynamic map hands each element to its subgraph: the slices share the list's
/// buffer, and no element type needs to be known.
///
/// The bytes may come from a store that someone else can write, so nothing here trusts a length
/// they claim: an array header may claim up to 2^32-1 elements, but every MessagePack value takes
/// at least one byte, so no more elements than the bytes left after the header are reserved, and
/// a claim that the bytes cannot hold is an error before anything is allocated for it.
pub fn split_array(bytes: &Bytes) -> Result<Vec<Bytes>, String> {
    let mut cursor: &[u8] = bytes;
    let len = rmp::decode::read_array_len(&mut cursor)
        .map_err(|e| format!("expected a list, found something else ({e})"))?;
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > cursor.len() {
        return Err(format!(
            "the list's header claims {len} elements but only {} bytes follow it; \
             the value is truncated or was not written by this program",
            cursor.len()
        ));
    }
    let mut pos = bytes.len() - cursor.len();
    let mut elements = Vec::with_capacity(len);
    for _ in 0..len {
        let end = skip_value(bytes, pos)?;
        elements.push(bytes.slice(pos..end));
        pos = end;
    }
    Ok(elements)
}

/// The position just past the MessagePack value starting at `pos`. Nested arrays and maps are
/// skipped with a counter of values still to skip, not by recursion.
///
/// Linear in the bytes skipped whatever the headers claim: each step consumes at least one byte,
/// and a counter of values that the rest of the buffer cannot hold (at least one byte each) is
/// an error at once. Arithmetic on claimed lengths is checked, so a 32-bit target cannot
/// overflow either.
fn skip_value(buf: &[u8], mut pos: usize) -> Result<usize, String> {
    let truncated = || "the list's encoding is truncated".to_string();
    let be = |at: usize, n: usize| -> Result<usize, String> {
        let bytes = buf.get(at..at.saturating_add(n)).ok_or_else(truncated)?;
        Ok(bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize))
    };
    let mut remaining: usize = 1;
    while remaining > 0 {
        remaining -= 1;
        let marker = *buf.get(pos).ok_or_else(truncated)?;
        pos += 1;
        // (bytes to skip after the marker, values that follow and must be skipped too)
        let (skip, values) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * (marker & 0x0f) as usize),
            0x90..=0x9f => (0, (marker & 0x0f) as usize),
            0xa0..=0xbf => ((marker & 0x1f) as usize, 0),
            0xc4 | 0xd9 => (1 + be(pos, 1)?, 0),
            0xc5 | 0xda => (2 + be(pos, 2)?, 0),
            0xc6 | 0xdb => (be(pos, 4)?.saturating_add(4), 0),
            0xc7 => (2 + be(pos, 1)?, 0),
            0xc8 => (3 + be(pos, 2)?, 0),
            0xc9 => (be(pos, 4)?.saturating_add(5), 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xca | 0xce | 0xd2 => (4, 0),
            0xcb | 0xcf | 0xd3 => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (2, be(pos, 2)?),
            0xdd => (4, be(pos, 4)?),
            0xde => (2, 2 * be(pos, 2)?),
            0xdf => (4, be(pos, 4)?.saturating_mul(2)),
            0xc1 => return Err("the list's encoding holds an invalid byte (0xc1)".into()),
        };
        pos = pos.saturating_add(skip);
        remaining = remaining.saturating_add(values);
        // Every value still to skip takes at least one byte.
        if pos > buf.len() || remaining > buf.len() - pos {
            return Err(truncated());
        }
    }
    Ok(pos)
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
    #[allow(clippy::type_complexity)]
    fn a_list_splits_into_its_elements() {
        use std::collections::HashMap;
        let value: Vec<(String, Vec<i64>, HashMap<String, f64>, Option<bool>)> = vec![
            (
                "a".repeat(40),
                vec![1, -300, 70_000, i64::MIN],
                HashMap::from([("x".into(), 1.5)]),
                None,
            ),
            (String::new(), (0..20).collect(), HashMap::new(), Some(true)),
        ];
        let bytes = encode(&value).unwrap();
        let parts = split_array(&bytes).unwrap();
        assert_eq!(parts.len(), 2);
        for (part, original) in parts.iter().zip(&value) {
            assert_eq!(
                &decode::<(String, Vec<i64>, HashMap<String, f64>, Option<bool>)>(part).unwrap(),
                original
            );
        }
        assert!(split_array(&encode(&5_i64).unwrap()).is_err());
        assert!(split_array(&bytes.slice(..bytes.len() - 1)).is_err());
    }

    /// Nests exactly as deep as the arrays of its encoding.
    #[derive(Debug, serde::Deserialize)]
    struct Deep(#[allow(dead_code)] Vec<Deep>);

    fn nested_arrays(depth: usize) -> Vec<u8> {
        let mut bytes = vec![0x91; depth - 1];
        bytes.push(0x90);
        bytes
    }

    #[test]
    fn a_value_nests_at_most_max_depth_levels() {
        assert!(decode::<Deep>(&nested_arrays(MAX_DEPTH)).is_ok());
        let error = decode::<Deep>(&nested_arrays(MAX_DEPTH + 1)).unwrap_err();
        assert!(error.contains("deeper than 128 levels"), "{error}");
    }

    #[test]
    fn a_header_claiming_more_elements_than_bytes_follow_is_refused_before_allocating() {
        let five_bytes = Bytes::from_static(&[0xdd, 0x7f, 0xff, 0xff, 0xff]);
        let error = split_array(&five_bytes).unwrap_err();
        assert!(
            error.contains("claims 2147483647 elements but only 0 bytes"),
            "{error}"
        );
        // Inside an element: a map claiming 2^32-1 entries in a one-element list.
        let nested = Bytes::from_static(&[0x91, 0xdf, 0xff, 0xff, 0xff, 0xff]);
        assert!(split_array(&nested).is_err());
    }

    #[test]
    fn decoding_the_wrong_type_is_an_error() {
        let bytes = encode("text").unwrap();
        assert!(decode::<i64>(&bytes).is_err());
    }
}
