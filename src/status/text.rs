//! The status as lines for a person (`concession-agent status --format text`).

use super::snapshot::{StatusSnapshot, STALE_AFTER_MS};
use crate::store::rfc3339_ms;

/// `$12.34` for cents.
pub fn dollars(c: impl Into<i128>) -> String {
    let c: i128 = c.into();
    let sign = if c < 0 { "-" } else { "" };
    let a = c.unsigned_abs();
    format!("{sign}${}.{:02}", a / 100, a % 100)
}

/// `3.2 MiB` for bytes.
fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// How long ago `then_ms` was, as `4 s`, `12 min`, `3 h 5 min`.
pub fn ago(now_ms: u64, then_ms: u64) -> String {
    let s = now_ms.saturating_sub(then_ms) / 1000;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, s / 60 % 60),
    }
}

/// The snapshot as lines for a person (`status --format text`), judged at `now_ms`.
pub fn render_text(s: &StatusSnapshot, now_ms: u64) -> String {
    let mut out = Vec::new();
    let mut line = |k: &str, v: String| out.push(format!("{k:<16}{v}"));
    let since = s
        .mode_since_ms
        .map(|m| format!(" since {} ({} ago)", rfc3339_ms(m), ago(now_ms, m)))
        .unwrap_or_default();
    let mode = match s.mode.as_str() {
        "stopped" => format!(
            "stopped (no agent holds the store){}",
            s.mode_since_ms
                .map(|m| format!("; last status {} ago", ago(now_ms, m)))
                .unwrap_or_default()
        ),
        m => format!("{m}{since}"),
    };
    line(
        "terminal",
        format!("{} (concession-agent {})", s.terminal, s.version),
    );
    line("mode", mode);
    if s.source == "agent" {
        let age = now_ms.saturating_sub(s.as_of_ms);
        let stale = if age > STALE_AFTER_MS {
            " STALE: the agent holds the store but has not published for this long"
        } else {
            ""
        };
        line(
            "as of",
            format!(
                "{} ({} ago, agent pid {}){stale}",
                s.as_of,
                ago(now_ms, s.as_of_ms),
                s.pid.map_or("?".into(), |p| p.to_string())
            ),
        );
    }
    match &s.last_decision {
        Some(d) if d.kind == "void" => line(
            "last decision",
            format!(
                "{} void, {} given back, {}",
                d.id,
                dollars(d.approved_cents),
                d.time
            ),
        ),
        Some(d) => line(
            "last decision",
            format!(
                "{} {} {} {} {} via {}, {}",
                d.id,
                d.decision.to_uppercase(),
                d.reason,
                dollars(d.approved_cents),
                d.barcode,
                d.source,
                d.time
            ),
        ),
        None => line("last decision", "none".into()),
    }
    let t = &s.today;
    line(
        "today",
        format!(
            "{}: {} decisions, {} approved ({} offline), {} approved, {} voids ({} back), net {}",
            t.date,
            t.decisions,
            t.approvals,
            t.offline_approvals,
            dollars(t.approved_cents),
            t.voids,
            dollars(t.refunded_cents),
            dollars(t.net_cents())
        ),
    );
    let o = &s.offline;
    line(
        "offline used",
        format!(
            "{} of {}, {} of {} approvals (per transaction {}, per ticket {})",
            dollars(o.used_cents),
            dollars(o.cap_cents),
            o.used_count,
            o.cap_count,
            dollars(o.per_transaction_cents),
            dollars(o.per_ticket_cents)
        ),
    );
    line(
        "venue uploads",
        match (s.pending_uploads, s.venue_mode) {
            (Some(n), _) => format!("{n} pending"),
            (None, true) => {
                "venue mode: not counted here (`venue sync` uploads and counts them)".into()
            }
            (None, false) => "venue mode off".into(),
        },
    );
    line(
        "ats budget",
        match s.ats_budget {
            Some(b) => format!("{} calls left this minute, {} today", b.minute, b.day),
            None => "unknown (kept by the running agent)".into(),
        },
    );
    if let Some(c) = s.ats_calls {
        line(
            "ats calls",
            format!(
                "{} answered, {} rate-limited, {} failed since the agent started",
                c.ok, c.rate_limited, c.failed
            ),
        );
    }
    if let (Some(b), Some(c)) = (s.presence_budget, s.presence_calls) {
        line(
            "presence",
            format!(
                "{} calls left this minute, {} today; {} answered, {} rate-limited, {} failed",
                b.minute, b.day, c.ok, c.rate_limited, c.failed
            ),
        );
    }
    line(
        "prefetch",
        match &s.prefetch {
            None => "unknown (kept by the running agent)".into(),
            Some(p) if p.state == "idle" => "idle".into(),
            Some(p) => {
                let mut v = format!(
                    "{} {}: {} pages, {} tickets",
                    p.event, p.state, p.pages, p.tickets
                );
                if p.state == "waiting" {
                    v.push_str(&format!(
                        ", waiting {} s for the budget",
                        p.wait_ms.div_ceil(1000)
                    ));
                }
                if let Some(c) = &p.completed {
                    v.push_str(&format!(", last completed {c}"));
                }
                if let Some(e) = &p.last_error {
                    v.push_str(&format!(", stopped: {e}"));
                }
                v
            }
        },
    );
    line(
        "cache",
        match &s.cache {
            Some(c) => format!(
                "{} tickets, store {} on disk (counted {})",
                c.entries,
                bytes(c.bytes_on_disk),
                c.counted_at
            ),
            None => "not counted yet".into(),
        },
    );
    line("journal", format!("{} entries", s.journal_entries));
    let d = &s.disk;
    line(
        "free disk",
        match d.free_bytes {
            Some(f) => format!(
                "{} under {} (approvals stop below {}){}",
                bytes(f),
                d.store_dir,
                bytes(d.min_free_bytes),
                if d.is_low() {
                    ": LOW, approvals refused"
                } else {
                    ""
                }
            ),
            None => format!("unknown under {}", d.store_dir),
        },
    );
    line(
        "clock",
        if s.clock.trusted {
            s.clock.state.clone()
        } else {
            format!(
                "{}: no approvals from the cache (clock_unsure)",
                s.clock.state
            )
        },
    );
    let mut text = out.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::snapshot::tests::sample;

    #[test]
    fn the_text_view_names_mode_exposure_budget_and_low_disk() {
        let s = sample();
        let text = render_text(&s, s.as_of_ms + 2_000);
        assert!(text.contains("offline since"), "{text}");
        assert!(text.contains("(5 min ago)"), "{text}");
        assert!(
            text.contains("$20.00 of $500.00, 1 of 50 approvals"),
            "{text}"
        );
        assert!(
            text.contains("70 calls left this minute, 4900 today"),
            "{text}"
        );
        assert!(text.contains("net $30.00"), "{text}");
        assert!(text.contains("LOW, approvals refused"), "{text}");
        assert!(text.contains("EV1 done: 2 pages, 900 tickets"), "{text}");
        assert!(!text.contains("STALE"), "{text}");
        assert!(render_text(&s, s.as_of_ms + STALE_AFTER_MS + 1).contains("STALE"));
    }

    #[test]
    fn the_text_view_of_a_stopped_store_says_no_agent_holds_it() {
        let mut s = sample();
        s.source = "store".into();
        s.mode = "stopped".into();
        s.ats_budget = None;
        s.prefetch = None;
        let text = render_text(&s, s.as_of_ms);
        assert!(
            text.contains("stopped (no agent holds the store)"),
            "{text}"
        );
        assert!(
            text.contains("unknown (kept by the running agent)"),
            "{text}"
        );
        assert!(!text.contains("as of"), "{text}");
    }

    #[test]
    fn amounts_and_sizes_read_as_people_write_them() {
        assert_eq!(dollars(0u64), "$0.00");
        assert_eq!(dollars(-1250i64), "-$12.50");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 + 200 * 1024), "3.2 MiB");
        assert_eq!(ago(10_000, 0), "10 s");
        assert_eq!(ago(3_600_000 + 300_000, 0), "65 min");
    }
}
