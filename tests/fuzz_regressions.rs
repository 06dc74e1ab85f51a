//! Fuzz regressions, and the fuzz seeds replayed on every target's entry function so CI
//! exercises the fuzz properties without running a fuzzer.
//!
//! The properties live in `fuzz/src/checks.rs`, shared with the fuzz targets in `fuzz/`
//! (its own cargo workspace; see `fuzz/README.md`). Every crash a fuzzer finds gets a
//! test here named after what went wrong, with the input inline, and its input is also
//! kept in `fuzz/seeds/<target>/`.

#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

use concession_agent::scan::frame::{Frame, Framer};
use concession_agent::scan::UnreadableReason;

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            (path, data)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

fn replay(target: &str, check: fn(&[u8])) {
    let mut failed = Vec::new();
    for (path, data) in seeds(target) {
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "{target}: seeds failed: {failed:?}");
}

#[test]
fn scan_framing_seeds_hold() {
    replay("scan_framing", checks::check_scan_framing);
}

#[test]
fn pos_request_seeds_hold() {
    replay("pos_request", checks::check_pos_request);
}

#[test]
fn config_parse_seeds_hold() {
    replay("config_parse", checks::check_config_parse);
}

#[test]
fn money_seeds_hold() {
    replay("money", checks::check_money);
}

#[test]
fn ats_decode_seeds_hold() {
    replay("ats_decode", checks::check_ats_decode);
}

#[test]
fn short_and_empty_inputs_hold_on_every_target() {
    for data in [
        &b""[..],
        b"\0",
        b"\r",
        b"\n\n",
        b"\xff\xfe",
        b"{",
        b"[",
        b"\"",
    ] {
        checks::check_scan_framing(data);
        checks::check_pos_request(data);
        checks::check_config_parse(data);
        checks::check_money(data);
        checks::check_ats_decode(data);
    }
}

// ---------------------------------------------------------------------------------------
// Regressions (one per crash found by fuzzing)

/// scan_framing, seed `utf8`: a read holding a C1 control character (U+0085 NEL, valid
/// UTF-8 `c2 85`) came out as `Frame::Text`, although text frames promise no control
/// characters. Fixed in `Framer::process`: C1 controls are `control_char` noise.
#[test]
fn text_frames_never_carry_c1_control_characters() {
    let mut f = Framer::<64>::default();
    let mut frames = Vec::new();
    f.feed(
        b"100000000001\xc2\x85\n\xc2\x9b31m100000000001\n100000000001\n",
        |fr| frames.push(fr),
    );
    assert_eq!(frames.len(), 3);
    for fr in &frames[..2] {
        assert!(
            matches!(fr, Frame::Noise(u) if u.reason == UnreadableReason::ControlChar),
            "{fr:?}"
        );
    }
    assert!(matches!(&frames[0], Frame::Noise(u) if u.detail == "U+0085 at 12"));
    assert!(matches!(&frames[2], Frame::Text(t) if t.as_str() == "100000000001"));
    // The fuzz input as found (config byte 0x86, chunking byte 0x03).
    checks::check_scan_framing(b"\x86\x03caf\xc3\xa9\n\xc2\xa0100000000001\xc2\x85\n");
}
