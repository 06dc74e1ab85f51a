//! Prometheus metrics in node_exporter's textfile-collector format (`[metrics]
//! textfile = "PATH"`).
//!
//! The agent keeps its counters here ([`Metrics`]: decisions by verdict, reason and
//! source, money approved and given back, the decision-time histogram) and takes its
//! gauges (online, offline exposure, ATS budget, free disk, ...) from the
//! [`StatusSnapshot`] it publishes anyway, so `status` and the metrics never disagree.
//! [`Metrics::render`] is pure text; the agent writes it with
//! [`crate::status::write_replacing`] (a temporary file renamed over the target) every
//! `[metrics] interval_s` and at stop (`config::MetricsSettings`), so node_exporter never reads half a file.
//!
//! Every metric has `# HELP` and `# TYPE`. Labels are bounded sets only (verdict,
//! reason, source, call result, budget window): never a barcode, decision id or request
//! id, which would make a series per fan.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::money::Cents;
use crate::status::StatusSnapshot;

/// Upper bounds of the decision-time histogram, seconds: the cache answers in
/// milliseconds, a live lookup in tens to hundreds, and the deadline is 2 s.
pub const DURATION_BUCKETS: [f64; 11] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0,
];

/// The decision-time histogram.
#[derive(Debug, Clone, Default, PartialEq)]
struct Histogram {
    /// Count per bucket of [`DURATION_BUCKETS`] (not cumulative).
    buckets: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = DURATION_BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum_seconds += seconds;
    }
}

/// The agent's counters since it started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// (decision, reason, source) → count. The keys are enum names: at most 2 × 20 × 3.
    decisions: BTreeMap<(String, String, String), u64>,
    approved_cents: u128,
    voids: u64,
    refunded_cents: u128,
    duration: Histogram,
}

impl Metrics {
    /// Counts one decision (`approve`/`deny`, its reason and source) and its
    /// scan-to-decision time.
    pub fn record_decision(
        &mut self,
        decision: &str,
        reason: &str,
        source: &str,
        approved_cents: Cents,
        latency: Duration,
    ) {
        *self
            .decisions
            .entry((decision.into(), reason.into(), source.into()))
            .or_default() += 1;
        self.approved_cents += u128::from(approved_cents);
        self.duration.observe(latency.as_secs_f64());
    }

    /// Counts one void and the money it gave back.
    pub fn record_void(&mut self, refunded_cents: Cents) {
        self.voids += 1;
        self.refunded_cents += u128::from(refunded_cents);
    }

    /// Decisions counted so far.
    pub fn decisions(&self) -> u64 {
        self.decisions.values().sum()
    }

    /// The textfile: these counters, and gauges from `status`.
    pub fn render(&self, status: &StatusSnapshot) -> String {
        let mut out = String::new();
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
        };
        head(
            &mut out,
            "concession_info",
            "gauge",
            "Always 1; the labels name this build and terminal.",
        );
        let _ = writeln!(
            out,
            "concession_info{{version=\"{}\",terminal=\"{}\"}} 1",
            escape(&status.version),
            escape(&status.terminal)
        );

        head(
            &mut out,
            "concession_decisions_total",
            "counter",
            "Scans decided since the agent started, by verdict, reason and evidence source.",
        );
        for ((d, r, s), n) in &self.decisions {
            let _ = writeln!(
                out,
                "concession_decisions_total{{decision=\"{}\",reason=\"{}\",source=\"{}\"}} {n}",
                escape(d),
                escape(r),
                escape(s)
            );
        }
        head(
            &mut out,
            "concession_approved_cents_total",
            "counter",
            "Money approved since the agent started, cents.",
        );
        let _ = writeln!(
            out,
            "concession_approved_cents_total {}",
            self.approved_cents
        );
        head(
            &mut out,
            "concession_voids_total",
            "counter",
            "Approvals voided since the agent started.",
        );
        let _ = writeln!(out, "concession_voids_total {}", self.voids);
        head(
            &mut out,
            "concession_refunded_cents_total",
            "counter",
            "Money given back by voids since the agent started, cents.",
        );
        let _ = writeln!(
            out,
            "concession_refunded_cents_total {}",
            self.refunded_cents
        );

        let h = &self.duration;
        head(
            &mut out,
            "concession_decision_duration_seconds",
            "histogram",
            "Scan-to-decision time, seconds.",
        );
        let mut cumulative = 0;
        for (b, n) in DURATION_BUCKETS.iter().zip(h.buckets.iter()) {
            cumulative += n;
            let _ = writeln!(
                out,
                "concession_decision_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "concession_decision_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "concession_decision_duration_seconds_sum {}",
            h.sum_seconds
        );
        let _ = writeln!(
            out,
            "concession_decision_duration_seconds_count {}",
            h.count
        );

        let gauge = |out: &mut String, name: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {value}");
        };
        gauge(
            &mut out,
            "concession_online",
            "1 while ATS answers (online rules), 0 while offline rules apply.",
            u8::from(status.mode == "online" || status.mode == "low_disk").to_string(),
        );
        gauge(
            &mut out,
            "concession_low_disk",
            "1 while approvals are refused for lack of free disk under the store.",
            u8::from(status.mode == "low_disk").to_string(),
        );
        let o = &status.offline;
        gauge(
            &mut out,
            "concession_offline_exposure_cents",
            "Money approved offline in the current offline window, cents.",
            o.used_cents.to_string(),
        );
        gauge(
            &mut out,
            "concession_offline_exposure_cap_cents",
            "The offline cap on that money (offline.total_cents).",
            o.cap_cents.to_string(),
        );
        gauge(
            &mut out,
            "concession_offline_approvals",
            "Approvals made offline in the current offline window.",
            o.used_count.to_string(),
        );
        gauge(
            &mut out,
            "concession_offline_approvals_cap",
            "The offline cap on that count (offline.total_count).",
            o.cap_count.to_string(),
        );
        gauge(
            &mut out,
            "concession_pending_uploads",
            "Journal entries not yet uploaded to the venue database (0 without venue mode).",
            status.pending_uploads.unwrap_or(0).to_string(),
        );

        let calls = status.ats_calls.unwrap_or_default();
        head(
            &mut out,
            "concession_ats_calls_total",
            "counter",
            "ATS calls since the agent started, by result (ok includes API errors such as an unknown barcode).",
        );
        for (result, n) in [
            ("ok", calls.ok),
            ("rate_limited", calls.rate_limited),
            ("failed", calls.failed),
        ] {
            let _ = writeln!(out, "concession_ats_calls_total{{result=\"{result}\"}} {n}");
        }
        if let Some(b) = status.ats_budget {
            head(
                &mut out,
                "concession_ats_budget_remaining",
                "gauge",
                "ATS calls left in the client's rate budget, by window.",
            );
            let _ = writeln!(
                out,
                "concession_ats_budget_remaining{{window=\"minute\"}} {}",
                b.minute
            );
            let _ = writeln!(
                out,
                "concession_ats_budget_remaining{{window=\"day\"}} {}",
                b.day
            );
        }
        if let (Some(b), Some(calls)) = (status.presence_budget, status.presence_calls) {
            head(
                &mut out,
                "concession_presence_calls_total",
                "counter",
                "Presence (phone ticket) calls since the agent started, by result.",
            );
            for (result, n) in [
                ("ok", calls.ok),
                ("rate_limited", calls.rate_limited),
                ("failed", calls.failed),
            ] {
                let _ = writeln!(
                    out,
                    "concession_presence_calls_total{{result=\"{result}\"}} {n}"
                );
            }
            head(
                &mut out,
                "concession_presence_budget_remaining",
                "gauge",
                "Presence calls left in the client's rate budget, by window.",
            );
            for (window, n) in [("minute", b.minute), ("day", b.day)] {
                let _ = writeln!(
                    out,
                    "concession_presence_budget_remaining{{window=\"{window}\"}} {n}"
                );
            }
        }
        if let Some(free) = status.disk.free_bytes {
            gauge(
                &mut out,
                "concession_store_free_bytes",
                "Bytes free to the agent on the store's filesystem.",
                free.to_string(),
            );
        }
        gauge(
            &mut out,
            "concession_store_min_free_bytes",
            "Below this many free bytes approvals stop (store_min_free_mb).",
            status.disk.min_free_bytes.to_string(),
        );
        gauge(
            &mut out,
            "concession_clock_trusted",
            "0 while the wall clock disagrees with ATS's (no approvals from the cache).",
            u8::from(status.clock.trusted).to_string(),
        );
        if let Some(c) = &status.cache {
            gauge(
                &mut out,
                "concession_cache_entries",
                "Tickets in the cache (counted every minute).",
                c.entries.to_string(),
            );
        }
        if let Some(p) = &status.prefetch {
            gauge(
                &mut out,
                "concession_prefetch_tickets",
                "Tickets written by the current or last prefetch pass.",
                p.tickets.to_string(),
            );
        }
        gauge(
            &mut out,
            "concession_journal_entries",
            "Entries in the decision journal.",
            status.journal_entries.to_string(),
        );
        gauge(
            &mut out,
            "concession_status_timestamp_seconds",
            "When these values were taken, Unix seconds (alert when it stops moving).",
            format!("{:.3}", status.as_of_ms as f64 / 1000.0),
        );
        out
    }
}

/// A label value in the exposition format: backslash, double quote and line feed
/// escaped.
pub fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// One sample of a parsed textfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (with `_bucket`, `_sum`, `_count` for histograms).
    pub name: String,
    /// Label pairs in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

/// A parsed textfile: `# TYPE` and `# HELP` per metric family, and the samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// Family → type (`counter`, `gauge`, `histogram`).
    pub types: BTreeMap<String, String>,
    /// Family → help text.
    pub help: BTreeMap<String, String>,
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

impl Parsed {
    /// The value of `name` with exactly these labels.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|s| s.value)
    }

    /// The sum of every sample of `name`.
    pub fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    }
}

/// Parses the text exposition format strictly enough to check what [`Metrics::render`]
/// writes (tests, and anyone checking a stand's file): every sample belongs to a family
/// with `# TYPE` and `# HELP` before it, names and labels are well formed, values are
/// numbers. Errors name the line.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            // Other comments are allowed and ignored.
            let mut words = rest.trim_start().splitn(3, ' ');
            let kw = words.next().unwrap_or("");
            if kw != "HELP" && kw != "TYPE" {
                continue;
            }
            let name = words.next().unwrap_or("");
            let value = words.next().ok_or(format!("line {n}: {kw} without text"))?;
            if !valid_name(name) {
                return Err(format!("line {n}: bad metric name {name:?}"));
            }
            let known = ["counter", "gauge", "histogram", "summary", "untyped"];
            if kw == "TYPE" && !known.contains(&value) {
                return Err(format!("line {n}: unknown type {value:?}"));
            }
            let map = if kw == "HELP" {
                &mut p.help
            } else {
                &mut p.types
            };
            if map.insert(name.into(), value.into()).is_some() {
                return Err(format!("line {n}: second {kw} for {name}"));
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or(format!("line {n}: no value"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .map_err(|_| format!("line {n}: bad value {v:?}"))?,
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .ok_or(format!("line {n}: unclosed labels"))?;
                (
                    name,
                    parse_labels(body).map_err(|e| format!("line {n}: {e}"))?,
                )
            }
        };
        if !valid_name(name) {
            return Err(format!("line {n}: bad metric name {name:?}"));
        }
        let family = family_of(name, &p.types);
        if !p.types.contains_key(&family) || !p.help.contains_key(&family) {
            return Err(format!("line {n}: {name} has no TYPE and HELP before it"));
        }
        p.samples.push(Sample {
            name: name.into(),
            labels,
            value,
        });
    }
    Ok(p)
}

fn family_of(name: &str, types: &BTreeMap<String, String>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).is_some_and(|t| t == "histogram") {
                return base.into();
            }
        }
    }
    name.into()
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_labels(body: &str) -> Result<Vec<(String, String)>, String> {
    let mut labels = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").ok_or("label without =\"")?;
        if !valid_name(key) || key.contains(':') {
            return Err(format!("bad label name {key:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    _ => return Err("bad escape in label value".into()),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((key.to_string(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::*;

    fn status() -> StatusSnapshot {
        StatusSnapshot {
            version: VERSION.into(),
            terminal: "stand \"7\"".into(),
            source: "agent".into(),
            as_of_ms: 1_764_600_000_123,
            as_of: String::new(),
            pid: Some(1),
            mode: "offline".into(),
            mode_since_ms: None,
            mode_since: None,
            last_decision: None,
            today: DayTotals::default(),
            offline: OfflineExposure {
                used_cents: 2000,
                cap_cents: 50_000,
                used_count: 1,
                cap_count: 50,
                ..OfflineExposure::default()
            },
            pending_uploads: None,
            venue_mode: false,
            ats_budget: Some(AtsBudget {
                minute: 78,
                day: 4990,
            }),
            presence_budget: None,
            presence_calls: None,
            ats_calls: Some(crate::ats::CallCounts {
                ok: 10,
                rate_limited: 1,
                failed: 2,
            }),
            prefetch: None,
            cache: None,
            journal_entries: 3,
            disk: DiskStatus {
                store_dir: "/s".into(),
                free_bytes: Some(1 << 30),
                min_free_bytes: 8 << 20,
            },
            clock: ClockStatus {
                state: "ok".into(),
                trusted: true,
                skew_ms: None,
            },
        }
    }

    #[test]
    fn the_rendered_file_parses_with_help_and_type_on_every_family() {
        let mut m = Metrics::default();
        m.record_decision(
            "approve",
            "approved",
            "live",
            2000,
            Duration::from_millis(30),
        );
        m.record_decision(
            "deny",
            "unknown_ticket",
            "live",
            0,
            Duration::from_millis(3),
        );
        m.record_decision("approve", "approved", "live", 500, Duration::from_secs(3));
        m.record_void(500);
        let text = m.render(&status());
        let p = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        for family in p.types.keys() {
            assert!(p.help.contains_key(family), "{family} has no HELP");
        }
        assert_eq!(p.types["concession_decisions_total"], "counter");
        assert_eq!(p.types["concession_decision_duration_seconds"], "histogram");
        assert_eq!(p.types["concession_online"], "gauge");
        let approved = [
            ("decision", "approve"),
            ("reason", "approved"),
            ("source", "live"),
        ];
        assert_eq!(p.value("concession_decisions_total", &approved), Some(2.0));
        assert_eq!(
            p.value("concession_approved_cents_total", &[]),
            Some(2500.0)
        );
        assert_eq!(p.value("concession_refunded_cents_total", &[]), Some(500.0));
        assert_eq!(p.value("concession_online", &[]), Some(0.0));
        assert_eq!(
            p.value("concession_ats_budget_remaining", &[("window", "minute")]),
            Some(78.0)
        );
        assert_eq!(
            p.value("concession_ats_calls_total", &[("result", "failed")]),
            Some(2.0)
        );
        // Buckets are cumulative and end with +Inf = count.
        let b = |le: &str| {
            p.value("concession_decision_duration_seconds_bucket", &[("le", le)])
                .unwrap()
        };
        assert_eq!(b("0.005"), 1.0);
        assert_eq!(b("0.05"), 2.0);
        assert_eq!(b("2"), 2.0);
        assert_eq!(b("5"), 3.0);
        assert_eq!(b("+Inf"), 3.0);
        assert_eq!(
            p.value("concession_decision_duration_seconds_count", &[]),
            Some(3.0)
        );
        // The terminal id is escaped, not a broken line.
        assert_eq!(
            p.value(
                "concession_info",
                &[("version", VERSION), ("terminal", "stand \"7\"")]
            ),
            Some(1.0)
        );
    }

    #[test]
    fn presence_calls_and_budget_are_families_of_their_own_when_presence_is_on() {
        let m = Metrics::default();
        let p = parse(&m.render(&status())).unwrap();
        assert!(!p.types.contains_key("concession_presence_calls_total"));
        let mut s = status();
        s.presence_budget = Some(AtsBudget { minute: 5, day: 90 });
        s.presence_calls = Some(crate::ats::CallCounts {
            ok: 3,
            rate_limited: 1,
            failed: 0,
        });
        s.pending_uploads = Some(4);
        let text = m.render(&s);
        let p = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(p.types["concession_presence_calls_total"], "counter");
        assert_eq!(
            p.value("concession_presence_calls_total", &[("result", "ok")]),
            Some(3.0)
        );
        assert_eq!(
            p.value("concession_presence_budget_remaining", &[("window", "day")]),
            Some(90.0)
        );
        assert_eq!(p.value("concession_pending_uploads", &[]), Some(4.0));
    }

    #[test]
    fn no_label_carries_a_barcode_or_an_id() {
        let mut m = Metrics::default();
        m.record_decision("approve", "approved", "cache", 100, Duration::ZERO);
        let p = parse(&m.render(&status())).unwrap();
        let names: std::collections::BTreeSet<&str> = p
            .samples
            .iter()
            .flat_map(|s| s.labels.iter().map(|(k, _)| k.as_str()))
            .collect();
        let allowed = [
            "decision", "reason", "source", "result", "window", "le", "version", "terminal",
        ];
        assert!(names.iter().all(|n| allowed.contains(n)), "{names:?}");
    }

    #[test]
    fn the_parser_refuses_a_sample_without_type_or_help() {
        assert!(parse("x_total 1\n").is_err());
        assert!(parse("# TYPE x gauge\nx 1\n").is_err());
        assert!(parse("# HELP x h\n# TYPE x gauge\nx{a=\"b} 1\n").is_err());
        assert!(parse("# HELP x h\n# TYPE x gauge\nx{a=\"b\"} 1\n").is_ok());
    }
}
