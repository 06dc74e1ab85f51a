//! Stored values: one format byte, then JSON.
//!
//! The format byte lets a later version change an encoding per value without a
//! whole-database migration; an unknown byte is reported as corrupt, never guessed.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::StoreError;

/// The format byte of values written by this version.
pub(crate) const FORMAT_V1: u8 = 1;

/// Encodes `value` as `[FORMAT_V1] ++ json`.
pub(crate) fn encode<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![FORMAT_V1];
    serde_json::to_writer(&mut out, value).map_err(|e| StoreError::Corrupt {
        what: what.to_string(),
        detail: format!("encode: {e}"),
    })?;
    Ok(out)
}

/// Decodes a value written by [`encode`].
pub(crate) fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, json)) => serde_json::from_slice(json).map_err(|e| StoreError::Corrupt {
            what: what.to_string(),
            detail: e.to_string(),
        }),
        Some((other, _)) => Err(StoreError::Corrupt {
            what: what.to_string(),
            detail: format!("unknown value format {other}"),
        }),
        None => Err(StoreError::Corrupt {
            what: what.to_string(),
            detail: "empty value".into(),
        }),
    }
}

/// A u64 as 8 big-endian bytes (keys that sort numerically).
pub(crate) fn u64_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Reads 8 big-endian bytes.
pub(crate) fn read_u64(what: &str, bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        what: what.to_string(),
        detail: format!("expected 8 bytes, found {}", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_their_format_byte() {
        let bytes = encode("t", &vec![1u64, 2]).unwrap_or_default();
        assert_eq!(bytes[0], FORMAT_V1);
        assert_eq!(decode::<Vec<u64>>("t", &bytes).ok(), Some(vec![1, 2]));
    }

    #[test]
    fn refuses_unknown_formats_and_empty_values() {
        assert!(matches!(
            decode::<u64>("t", b"\x02{}"),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(decode::<u64>("t", b"").is_err());
        assert!(read_u64("t", b"123").is_err());
        assert_eq!(read_u64("t", &u64_key(7)).ok(), Some(7));
    }
}
