//! Call statistics, as `GET /__sandbox/stats` and [`super::SandboxHandle::stats`] report them.
//!
//! Only ATS calls are counted; admin calls count nowhere.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counters since start or the last reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// Every ATS request read (answered, dropped or black-holed).
    pub total_requests: u64,
    /// First calls (not polls) that reached a command, by lower-case command name.
    pub calls_by_command: BTreeMap<String, u64>,
    /// Poll requests (those carrying a `QTKN` cookie).
    pub polls: u64,
    /// Answers by HTTP status (429 and 503 included).
    pub by_status: BTreeMap<u16, u64>,
    /// Requests closed without an answer (`drop_connection`).
    pub dropped: u64,
    /// Requests held without an answer (`black_hole`).
    pub black_holed: u64,
}

impl Stats {
    /// Answers sent with this HTTP status.
    pub fn status(&self, code: u16) -> u64 {
        self.by_status.get(&code).copied().unwrap_or(0)
    }

    /// First calls of this command (case-insensitive).
    pub fn calls(&self, cmd: &str) -> u64 {
        self.calls_by_command
            .get(&cmd.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn count_status(&mut self, code: u16) {
        *self.by_status.entry(code).or_insert(0) += 1;
    }

    pub(crate) fn count_call(&mut self, cmd: &str) {
        *self
            .calls_by_command
            .entry(cmd.to_ascii_lowercase())
            .or_insert(0) += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_status_keys_as_strings_and_back() {
        let mut s = Stats::default();
        s.count_status(429);
        s.count_call("PING");
        let text = serde_json::to_string(&s).unwrap_or_default();
        assert!(text.contains("\"429\":1"), "{text}");
        let back: Stats = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back.status(429), 1);
        assert_eq!(back.calls("ping"), 1);
    }
}
