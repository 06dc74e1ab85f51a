//! Fuzz properties, shared by the fuzz targets (`fuzz/fuzz_targets/*.rs`) and by the
//! regression tests (`tests/fuzz_regressions.rs`, which includes this file with
//! `#[path]`), so a crash found by the fuzzer and its regression test run the very same
//! code. Each `check_*` function takes the raw fuzz input and panics when a property
//! fails; returning normally means the input is fine.
//!
//! Only the public API of `concession_agent` is used.

use std::path::Path;

use concession_agent::ats::wire::{
    check_result, decode_av_chunk, decode_events, decode_verify, is_no_data_for_token,
    parse_envelope, shorten, AvChunk, VerifyAnswer, MAX_BARCODE, MAX_ITEM_UNITS, MAX_MONEY_CENTS,
    MAX_ROWS_PER_ANSWER, MAX_TEXT,
};
use concession_agent::ats::{AtsError, CallJar, RateBudget, ServerRate};
use concession_agent::board::{AckSetting, BoardProfile, MAX_PULSES, MAX_REPEAT};
use concession_agent::config::scanner::MAX_LEN_RANGE;
use concession_agent::config::{Config, RawConfig};
use concession_agent::money::{format_cents, parse_cents, Cents, MoneyError};
use concession_agent::pos::{
    error_line, parse_line, pong_line, PosRequest, RequestError, MAX_AMOUNT_CENTS,
    MAX_BARCODE_FIELD, MAX_DECISION_ID, MAX_REQUEST_ID,
};
use concession_agent::scan::barcode::{classify, Barcode, SafeTix, MAX_DIGITS, MIN_DIGITS};
use concession_agent::scan::frame::{Frame, FrameConfig, Framer, MAX_AFFIX};
use concession_agent::scan::ScanInput;
use concession_agent::ticket::ValueKind;

// ---------------------------------------------------------------------------------------
// scan_framing

/// Read lengths the first input byte chooses from (bits 0..=2).
const MAX_LENS: [usize; 8] = [1, 2, 3, 8, 12, 20, 64, 1000];
/// Prefixes (bits 3..=4) and suffixes (bits 5..=6) the first input byte chooses from.
const AFFIXES: [&[u8]; 4] = [b"", b"\x02", b"]", b"A\x1b "];

/// Builds the framing configuration the first input byte selects.
fn frame_config(sel: u8) -> FrameConfig {
    let max_len = MAX_LENS[usize::from(sel & 0b111)];
    let prefix = AFFIXES[usize::from((sel >> 3) & 0b11)];
    let suffix = AFFIXES[usize::from((sel >> 5) & 0b11)];
    let cfg = FrameConfig::default()
        .with_max_len(max_len)
        .and_then(|c| c.with_prefix(prefix))
        .and_then(|c| c.with_suffix(suffix));
    let mut cfg = match cfg {
        Ok(c) => c,
        Err(e) => panic!("valid framing config refused: {e}"),
    };
    cfg.strip_aim = sel & 0x80 != 0;
    cfg
}

/// A tiny deterministic generator for chunk sizes.
struct XorShift(u32);

impl XorShift {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

/// Frames `data` three ways (one byte at a time, in pseudo-random chunks, all at once)
/// and checks that all three agree and every frame keeps the framer's promises.
fn frame_all_ways<const N: usize>(cfg: FrameConfig, chunk_seed: u8, data: &[u8]) {
    // One byte at a time with push_byte.
    let mut f1 = Framer::<N>::new(cfg.clone());
    let max_len = f1.max_len();
    assert!(
        max_len >= 1 && max_len <= N,
        "max_len {max_len} outside 1..={N}"
    );
    let mut by_byte: Vec<Frame<N>> = data.iter().filter_map(|b| f1.push_byte(*b)).collect();
    by_byte.extend(f1.finish());
    assert_eq!(f1.finish(), None, "finish twice gave a second frame");

    // Pseudo-random chunks with feed.
    let mut f2 = Framer::<N>::new(cfg.clone());
    let mut rng = XorShift(u32::from(chunk_seed).wrapping_mul(2_654_435_761) | 1);
    let mut chunked = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = (1 + rng.next() as usize % 19).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        f2.feed(chunk, |f| chunked.push(f));
        rest = tail;
    }
    chunked.extend(f2.finish());

    // All at once.
    let mut f3 = Framer::<N>::new(cfg);
    let mut whole = Vec::new();
    f3.feed(data, |f| whole.push(f));
    whole.extend(f3.finish());

    assert_eq!(by_byte, chunked, "chunking changed the frames");
    assert_eq!(by_byte, whole, "feeding at once changed the frames");

    // At most one frame per line end, plus one for the last unterminated read.
    let line_ends = data.iter().filter(|b| **b == b'\r' || **b == b'\n').count();
    assert!(
        by_byte.len() <= line_ends + 1,
        "{} frames from {line_ends} line ends",
        by_byte.len()
    );

    for frame in by_byte {
        match &frame {
            Frame::Text(t) => {
                let s = t.as_str();
                assert!(!s.is_empty(), "empty text frame");
                assert!(
                    s.len() <= max_len,
                    "text of {} bytes > max_len {max_len}",
                    s.len()
                );
                assert!(
                    !s.chars().any(char::is_control),
                    "control character in text frame {s:?}"
                );
                assert!(
                    !s.starts_with(' ') && !s.ends_with(' '),
                    "untrimmed text frame {s:?}"
                );
            }
            Frame::Noise(u) => {
                assert!(u.detail.len() <= 64, "long noise detail {:?}", u.detail);
            }
        }
        check_scan_input(&frame.into_input());
    }
}

/// Promises of a classified read.
fn check_scan_input(input: &ScanInput) {
    match input {
        ScanInput::Barcode(b) => check_barcode(b),
        ScanInput::SafeTix(s) => check_safetix(s),
        ScanInput::Unreadable(u) => {
            assert!(
                u.detail.len() <= 64,
                "long unreadable detail {:?}",
                u.detail
            );
            let _ = u.to_string();
        }
    }
    let masked = input.masked();
    if let Some(b) = input.barcode() {
        assert!(
            !masked.contains(b.as_str()),
            "masked barcode shows the digits"
        );
    }
    let _ = format!("{input:?}");
}

fn check_barcode(b: &Barcode) {
    let digits = b.as_str();
    assert!(
        (MIN_DIGITS..=MAX_DIGITS).contains(&digits.len()),
        "barcode of {} digits",
        digits.len()
    );
    assert!(
        digits.bytes().all(|c| c.is_ascii_digit()),
        "non-digit in barcode"
    );
    if let Some(c) = b.channel() {
        assert!(
            c.is_ascii_lowercase(),
            "channel {c:?} not a lowercase letter"
        );
    }
    let back = Barcode::parse(&b.full());
    assert_eq!(back.as_ref(), Ok(b), "barcode full() does not parse back");
    assert!(
        !format!("{b:?}").contains(digits),
        "Debug shows the barcode"
    );
}

fn check_safetix(s: &SafeTix) {
    assert_eq!(s.event_totp().len(), 6);
    assert_eq!(s.customer_totp().len(), 6);
    assert!(s.token_len() >= 1);
    assert!(
        s.timestamp() < 10_000_000_000_000,
        "timestamp of more than 13 digits"
    );
}

/// Target `scan_framing`: byte 0 chooses the framing configuration, byte 1 the framer
/// capacity (bit 0) and the chunking; the rest is the scanner's byte stream. Also
/// classifies the whole input as text.
pub fn check_scan_framing(data: &[u8]) {
    let (sel, chunk_sel, stream) = match data {
        [a, b, rest @ ..] => (*a, *b, rest),
        _ => (0x80, 0, data),
    };
    let cfg = frame_config(sel);
    if chunk_sel & 1 == 0 {
        frame_all_ways::<64>(cfg, chunk_sel, stream);
    } else {
        frame_all_ways::<256>(cfg, chunk_sel, stream);
    }
    let text = String::from_utf8_lossy(data);
    check_scan_input(&classify(&text));
    if let Ok(s) = std::str::from_utf8(stream) {
        check_scan_input(&classify(s));
    }
}

// ---------------------------------------------------------------------------------------
// pos_request

fn printable(s: &str, max: usize) -> bool {
    !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

/// Target `pos_request`: one POS request line.
pub fn check_pos_request(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let json = {
        let t = line.trim();
        t.starts_with('{') || t.starts_with('[') || t.starts_with('"')
    };
    let (request_id, answer) = match parse_line(line) {
        Ok(PosRequest::Scan {
            barcode,
            amount_cents,
            request_id,
        }) => {
            if json {
                assert!(barcode.len() <= MAX_BARCODE_FIELD, "barcode field too long");
            } else {
                assert_eq!(barcode, line.trim(), "bare line not taken as is");
                assert!(amount_cents.is_none() && request_id.is_none());
            }
            if let Some(c) = amount_cents {
                assert!((1..=MAX_AMOUNT_CENTS).contains(&c), "amount {c} accepted");
            }
            check_scan_input(&classify(&barcode));
            (request_id, None)
        }
        Ok(PosRequest::Void {
            decision_id,
            request_id,
        }) => {
            assert!(json);
            assert!(
                printable(&decision_id, MAX_DECISION_ID),
                "bad decision id accepted"
            );
            (request_id, None)
        }
        Ok(PosRequest::Ping { request_id }) => {
            assert!(json);
            (request_id.clone(), Some(pong_line(request_id.as_deref())))
        }
        Ok(other) => (None, Some(format!("{other:?}"))),
        Err(rej) => {
            assert!(json, "bare line refused: {:?}", rej.error);
            let line = error_line(rej.request_id.as_deref(), &rej.error);
            (rej.request_id, Some(line))
        }
    };
    if let Some(id) = &request_id {
        assert!(printable(id, MAX_REQUEST_ID), "bad request id accepted");
    }
    if let Some(answer) = answer.filter(|a| a.starts_with('{')) {
        assert!(!answer.contains('\n'), "answer line contains a newline");
        let v: serde_json::Value = match serde_json::from_str(&answer) {
            Ok(v) => v,
            Err(e) => panic!("answer is not json: {e}: {answer}"),
        };
        assert_eq!(
            v.get("request_id").and_then(|r| r.as_str()),
            request_id.as_deref(),
            "answer carries another request id"
        );
    }
    let _ = RequestError::TooLong.to_string();
}

// ---------------------------------------------------------------------------------------
// config_parse

/// Target `config_parse`: the agent configuration and a board profile from the same
/// text. Key and CA files are dropped before validation so no input reads the disk.
pub fn check_config_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_agent_config(text);
    check_board_profile(text);
}

fn check_agent_config(text: &str) {
    let mut raw = match RawConfig::parse(text, Path::new("fuzz.toml")) {
        Ok(r) => r,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    raw.ats.apikey_file = None;
    raw.ats.ca_file = None;
    let key = raw.ats.apikey.clone().map(|k| k.trim().to_string());
    let result = Config::from_raw(raw);
    let shown = match &result {
        Ok(c) => {
            assert!(c.health.failures_to_offline >= 1);
            assert!(c.health.failures_to_offline <= c.health.window);
            assert!(c.cache.budget_reserve_per_minute < c.ats.rate_per_minute);
            assert!(MAX_LEN_RANGE.contains(&c.scanner.max_len));
            assert!(!c.terminal_id.is_empty() && c.terminal_id.len() <= 64);
            format!("{c:?}")
        }
        Err(e) => format!("{e} {e:?}"),
    };
    // Messages and Debug never show the API key. Only checked for a key long enough to
    // be unmistakable and written once in the text (so no other field can echo it).
    if let Some(k) = key.filter(|k| k.len() >= 12 && text.matches(k.as_str()).count() == 1) {
        assert!(!shown.contains(&k), "api key shown: {shown}");
    }
}

fn check_board_profile(text: &str) {
    let profile = match BoardProfile::from_toml_str(text) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let s = &profile.scanner;
    assert!(MAX_LEN_RANGE.contains(&s.max_len));
    assert!(s.prefix.as_bytes().len() <= MAX_AFFIX && s.suffix.as_bytes().len() <= MAX_AFFIX);
    if let AckSetting::Custom { good, bad } = &s.ack {
        assert!(good.as_bytes().len() <= 32 && bad.as_bytes().len() <= 32);
    }
    let _ = s.ack.codes();
    if let Some(g) = &profile.gpio {
        let p = &g.patterns;
        for pat in [&p.approve, &p.deny, &p.buzzer_approve, &p.buzzer_deny] {
            assert!(pat.pulses.len() <= MAX_PULSES);
            assert!((1..=MAX_REPEAT).contains(&pat.repeat));
            let _ = pat.total_ms();
        }
    }
    // The profile validates again (validation is a pure function of the data).
    assert!(profile.validate().is_ok());
}

// ---------------------------------------------------------------------------------------
// money

/// A slow, obviously correct model of `parse_cents` for the accepted inputs.
fn model_cents(text: &str) -> Option<u128> {
    let t = text.trim();
    let t = t.strip_prefix('+').unwrap_or(t);
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if whole.is_empty() && frac.is_empty() || frac.len() > 2 {
        return None;
    }
    if !whole
        .bytes()
        .chain(frac.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut cents: u128 = 0;
    for b in whole.bytes() {
        cents = cents.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
    }
    let mut f = 0u128;
    for i in 0..2 {
        f = f * 10 + frac.as_bytes().get(i).map_or(0, |b| u128::from(b - b'0'));
    }
    cents.checked_mul(100)?.checked_add(f)
}

/// Target `money`: `parse_cents` on arbitrary text, compared with a model; accepted
/// amounts format and parse back; any 8 bytes as cents format and parse back.
pub fn check_money(data: &[u8]) {
    if data.len() >= 8 {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&data[..8]);
        let c = Cents::from_le_bytes(raw);
        let s = format_cents(c);
        assert_eq!(
            parse_cents(&s),
            Ok(c),
            "format_cents({c}) = {s:?} does not parse back"
        );
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let got = parse_cents(text);
    match &got {
        Ok(c) => {
            let s = format_cents(*c);
            assert_eq!(parse_cents(&s), Ok(*c), "{text:?} -> {c} -> {s:?}");
            assert_eq!(model_cents(text), Some(u128::from(*c)), "{text:?} -> {c}");
        }
        Err(MoneyError::Overflow) => {
            let m = model_cents(text);
            assert!(
                m.is_none_or(|m| m > u128::from(u64::MAX)),
                "{text:?} overflowed but is {m:?}"
            );
        }
        Err(MoneyError::Negative) => assert!(text.trim().starts_with('-')),
        Err(e) => {
            assert!(
                model_cents(text).is_none(),
                "{text:?} refused ({e}) but is money"
            );
            let _ = e.to_string();
        }
    }
}

// ---------------------------------------------------------------------------------------
// ats_decode

/// The `ref` the fuzzed answers are checked against.
const OUR_REF: &str = "r1";
/// The barcode the fuzzed `verify_barcode` asked about.
const ASKED: &str = "100000000001";

fn check_ats_error(e: &AtsError) {
    let shown = e.to_string();
    assert!(
        shown.chars().count() <= 1024,
        "error text of {} chars",
        shown.chars().count()
    );
    let _ = format!("{e:?}");
    let _ = e.is_retryable();
    let _ = e.phase();
    if let AtsError::Api { code, .. } = e {
        assert_ne!(*code, 0, "api error with result 0");
    }
}

/// A decoded text field keeps the decoder's promises: trimmed, not empty, bounded, no
/// control characters.
fn check_text(field: &str, v: &str, max: usize) {
    assert!(!v.is_empty(), "{field}: empty text decoded");
    assert!(
        v.chars().count() <= max,
        "{field}: {} chars > {max}",
        v.chars().count()
    );
    assert!(
        !v.chars().any(char::is_control),
        "{field}: control character"
    );
}

fn check_opt_text(field: &str, v: &Option<String>, max: usize) {
    if let Some(v) = v {
        check_text(field, v, max);
    }
}

fn check_verify(answer: &VerifyAnswer) {
    let t = &answer.info;
    if t.barcode != ASKED {
        check_text("barcode", &t.barcode, MAX_BARCODE);
    }
    check_text("event_name", &t.event_name, MAX_TEXT);
    for (name, v) in [
        ("event_date", &t.event_date),
        ("event_time", &t.event_time),
        ("section_name", &t.section_name),
        ("row_name", &t.row_name),
        ("seat_num", &t.seat_num),
        ("price_code", &t.price_code),
    ] {
        check_opt_text(name, v, MAX_TEXT);
    }
}

fn check_av_chunk(chunk: &AvChunk) {
    assert!(chunk.rows.len() <= MAX_ROWS_PER_ANSWER);
    for row in &chunk.rows {
        check_opt_text("barcode", &row.barcode, MAX_BARCODE);
        check_opt_text("event_name", &row.event_name, MAX_TEXT);
        let l = &row.line;
        check_text("av_id", &l.av_id, MAX_TEXT);
        check_opt_text("valid_from", &l.valid_from, MAX_TEXT);
        check_opt_text("valid_until", &l.valid_until, MAX_TEXT);
        assert!(l.description.chars().count() <= MAX_TEXT);
        let max = match l.kind {
            ValueKind::Money => MAX_MONEY_CENTS,
            ValueKind::Item => MAX_ITEM_UNITS,
        };
        assert!(
            l.loaded <= max && l.balance <= max,
            "implausible amount decoded"
        );
    }
}

/// Every command decoder on one `command1` object.
fn decode_command1(c1: &serde_json::Map<String, serde_json::Value>) {
    match decode_verify(c1, ASKED) {
        Ok(a) => check_verify(&a),
        Err(e) => check_ats_error(&e),
    }
    match decode_av_chunk(c1) {
        Ok(c) => check_av_chunk(&c),
        Err(e) => check_ats_error(&e),
    }
    match decode_events(c1) {
        Ok(events) => {
            assert!(events.len() <= MAX_ROWS_PER_ANSWER);
            for ev in &events {
                check_text("event_name", &ev.event_name, MAX_TEXT);
                check_opt_text("event_date", &ev.event_date, MAX_TEXT);
                check_opt_text("event_time", &ev.event_time, MAX_TEXT);
            }
        }
        Err(e) => check_ats_error(&e),
    }
}

/// Response headers, one `name: value` per line: the 202 cycle's cookie jar and the
/// gateway's rate-limit headers.
fn check_ats_headers(text: &str) {
    let headers: Vec<(String, &str)> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim()))
        .collect();
    let mut jar = CallJar::new();
    for line in text.lines() {
        jar.absorb(line);
        assert!(jar.len() <= 32, "cookie jar grew to {}", jar.len());
        let _ = is_no_data_for_token(line);
        let _ = shorten(line, line.len() % 40);
    }
    if let Some(h) = jar.header() {
        assert!(
            !h.chars().any(|c| c.is_control() || !c.is_ascii()),
            "cookie header would inject: {h:?}"
        );
        assert!(h.len() <= 32 * (4096 + 2));
    }
    for wall_ms in [0, 1_700_000_000_000, u64::MAX] {
        let server = ServerRate::from_headers(
            |name| headers.iter().find(|(n, _)| n == name).map(|(_, v)| *v),
            wall_ms,
        );
        let now = std::time::Instant::now();
        let mut budget = RateBudget::new(80, 5000);
        budget.observe(now, &server);
        let _ = budget.remaining(now);
        let _ = budget.try_acquire(now);
        if let Some(d) = server.reset_in {
            let _ = budget.remaining(now.checked_add(d).unwrap_or(now));
        }
    }
}

/// Target `ats_decode`: the bytes as a response body (envelope, result codes, then
/// every command decoder on `command1`), as a bare `command1` object, and as response
/// headers.
pub fn check_ats_decode(data: &[u8]) {
    match parse_envelope(data, OUR_REF) {
        Ok(env) => {
            let body = env.body.as_object();
            assert!(
                body.is_some(),
                "envelope accepted a body that is not an object"
            );
            if let Some(serde_json::Value::String(r)) = env.command1().get("ref") {
                assert!(r.is_empty() || r == OUR_REF, "envelope accepted ref {r:?}");
            }
            let _ = env.header();
            match check_result(&env) {
                Ok(()) => {}
                Err(e) => check_ats_error(&e),
            }
            decode_command1(env.command1());
        }
        Err(e) => check_ats_error(&e),
    }
    if let Ok(c1) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(data) {
        decode_command1(&c1);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        check_ats_headers(text);
    }
}
