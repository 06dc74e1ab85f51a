//! Low-level checks shared by the section validators: ranges, durations, addresses.

use std::net::SocketAddr;
use std::time::Duration;

use super::error::{invalid, ConfigError};

/// `v` when it lies in `lo..=hi`.
pub(crate) fn ranged(field: &'static str, v: u64, lo: u64, hi: u64) -> Result<u64, ConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(invalid(field, format!("{v} is outside {lo}..={hi}")))
    }
}

/// Milliseconds, `default` when unset, in `lo..=hi`.
pub(crate) fn ms(
    field: &'static str,
    v: Option<u64>,
    default: u64,
    lo: u64,
    hi: u64,
) -> Result<Duration, ConfigError> {
    Ok(Duration::from_millis(ranged(
        field,
        v.unwrap_or(default),
        lo,
        hi,
    )?))
}

/// A socket address like `127.0.0.1:7070`.
pub(crate) fn addr(field: &'static str, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| {
        invalid(
            field,
            format!("{v:?} is not an address like 127.0.0.1:7070"),
        )
    })
}
