//! `ping` and `ats_ext_test_polling`, and the server's clock (`ping` answers
//! `server_date` and `server_time`).

use serde_json::{Map, Value};

use super::fields::get_ci;

/// `ping`.
pub const CMD_PING: &str = "ping";
/// `ats_ext_test_polling`: answers through a 202 cycle.
pub const CMD_TEST_POLLING: &str = "ats_ext_test_polling";

/// The server's wall time in Unix ms from `server_date` (`YYYY-MM-DD`) and
/// `server_time` (`HH:MM:SS`) of an answer, read as UTC (the sandbox's form; an
/// integrator whose ATS answers in venue time adjusts it here). `None` when the answer
/// does not carry both or they are malformed: no guess is ever a clock reading.
pub fn server_clock_ms(c1: &Map<String, Value>) -> Option<u64> {
    let date = get_ci(c1, "server_date")?.as_str()?.trim();
    let time = get_ci(c1, "server_time")?.as_str()?.trim();
    let num = |s: &str| -> Option<u32> {
        (!s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let mut d = date.get(..10)?.split('-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let mut t = time.split(':');
    let (hh, mm) = (num(t.next()?)?, num(t.next()?)?);
    let ss = t
        .next()
        .and_then(|s| num(s.get(..2).unwrap_or(s)))
        .unwrap_or(0);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = crate::date::days_from_civil(i64::from(y), m, day);
    let secs = days * 86_400 + i64::from(hh * 3600 + mm * 60 + ss);
    u64::try_from(secs).ok().map(|s| s * 1000)
}
