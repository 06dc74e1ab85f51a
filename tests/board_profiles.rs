//! Board profiles: the shipped files load, and bad values are refused naming the field.

use std::path::{Path, PathBuf};

use concession_agent::board::{
    AckSetting, BoardError, BoardProfile, EscapedBytes, JsonlTarget, ScannerKind,
};
use concession_agent::config::scanner::{ScannerSection, DEFAULT_MAX_LEN};
use concession_agent::config::{Config, ConfigError, RawConfig};
use concession_agent::signal::gpio::{Pattern, Pulse};
use concession_agent::signal::scanner_ack::AckCodes;

fn board(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("boards")
        .join(name)
}

const MINIMAL_GPIO: &str = r#"
name = "t"
[scanner]
kind = "stdin"
[gpio]
chip = "/dev/gpiochip0"
[gpio.lines]
approve = { line = 17 }
deny = { line = 27 }
"#;

/// The field named by a validation error (panics on other errors).
fn invalid_field(text: &str) -> String {
    match BoardProfile::from_toml_str(text) {
        Err(BoardError::Invalid { field, .. }) => field,
        other => panic!("expected an invalid-field error, got {other:?}"),
    }
}

fn parse_error(text: &str) -> String {
    match BoardProfile::from_toml_str(text) {
        Err(e @ BoardError::Parse { .. }) => e.to_string(),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn every_shipped_profile_loads() {
    let mut n = 0;
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("boards")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            BoardProfile::load(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 3, "desktop, rpi-kiosk and x86-pos at least");
}

#[test]
fn desktop_reads_stdin_and_writes_the_console() {
    let p = BoardProfile::load(&board("desktop.toml")).unwrap();
    assert_eq!(p.scanner.kind, ScannerKind::Stdin);
    assert!(p.outputs.console);
    assert_eq!(p.outputs.jsonl, JsonlTarget::None);
    assert!(p.gpio.is_none());
    assert_eq!(p.scanner.ack.codes(), None);
}

#[test]
fn rpi_kiosk_has_serial_scanner_honeywell_ack_and_five_gpio_lines() {
    let p = BoardProfile::load(&board("rpi-kiosk.toml")).unwrap();
    assert_eq!(p.scanner.kind, ScannerKind::Serial);
    assert_eq!(p.scanner.path.as_deref(), Some(Path::new("/dev/ttyACM0")));
    assert_eq!(p.scanner.baud, 115200);
    assert_eq!(p.scanner.suffix, EscapedBytes(b"\r".to_vec()));
    assert_eq!(p.scanner.ack, AckSetting::Honeywell);
    assert_eq!(p.scanner.ack.codes(), Some(AckCodes::honeywell()));
    let g = p.gpio.expect("gpio");
    assert_eq!(g.chip, Path::new("/dev/gpiochip0"));
    let lines: Vec<_> = g
        .lines
        .iter()
        .map(|(n, l)| (n, l.line, l.active_low))
        .collect();
    assert_eq!(
        lines,
        vec![
            ("approve", 17, false),
            ("deny", 27, false),
            ("ready", 22, true),
            ("buzzer", 23, false),
            ("relay", 24, true),
        ]
    );
    assert_eq!(
        g.patterns.deny,
        Pattern {
            pulses: vec![Pulse::new(200, 150)],
            repeat: 3
        }
    );
    assert_eq!(g.patterns.offline_blink, Pulse::new(500, 500));
    assert_eq!(g.patterns.relay_pulse_ms, 300);
}

#[test]
fn x86_pos_sends_json_lines_over_tcp() {
    let p = BoardProfile::load(&board("x86-pos.toml")).unwrap();
    assert_eq!(p.scanner.path.as_deref(), Some(Path::new("/dev/ttyUSB0")));
    assert_eq!(p.scanner.baud, 9600);
    assert_eq!(p.scanner.suffix.as_bytes(), b"\r\n");
    assert_eq!(p.outputs.jsonl, JsonlTarget::Tcp);
    assert_eq!(
        p.outputs.pos_listen,
        Some("127.0.0.1:7070".parse().unwrap())
    );
}

#[test]
fn custom_ack_takes_escaped_strings() {
    let text = r#"
name = "t"
[scanner]
kind = "serial"
path = "/dev/ttyACM0"
ack = { good = '\x06', bad = "\u0015" }
"#;
    let p = BoardProfile::from_toml_str(text).unwrap();
    assert_eq!(
        p.scanner.ack.codes(),
        Some(AckCodes {
            good: vec![0x06],
            bad: vec![0x15]
        })
    );
    let table = r#"
name = "t"
[scanner]
kind = "serial"
path = "/dev/ttyACM0"
[scanner.ack]
kind = "custom"
good = '\e7,'
bad = '\e8,'
"#;
    let p = BoardProfile::from_toml_str(table).unwrap();
    assert_eq!(p.scanner.ack.codes(), Some(AckCodes::honeywell()));
}

#[test]
fn minimal_gpio_profile_gets_default_patterns() {
    let p = BoardProfile::from_toml_str(MINIMAL_GPIO).unwrap();
    let g = p.gpio.unwrap();
    assert_eq!(g.consumer, "concession-agent");
    assert!(!g.patterns.approve.pulses.is_empty());
    assert_eq!(g.lines.ready, None);
}

#[test]
fn unknown_fields_are_refused_with_their_name() {
    let e = parse_error("name = \"t\"\ncolour = 1\n[scanner]\nkind = \"stdin\"\n");
    assert!(e.contains("colour"), "{e}");
    let e = parse_error(&MINIMAL_GPIO.replace("{ line = 17 }", "{ line = 17, pull_up = true }"));
    assert!(e.contains("pull_up"), "{e}");
    let e = parse_error("name = \"t\"\n[scanner]\nkind = \"usb\"\n");
    assert!(e.contains("usb"), "{e}");
    let e = parse_error(
        "name = \"t\"\n[scanner]\nkind = \"serial\"\npath = \"/dev/x\"\nack = \"zebra\"\n",
    );
    assert!(e.contains("zebra"), "{e}");
    let e = parse_error("name = \"t\"\n[scanner]\nkind = \"stdin\"\nsuffix = '\\q'\n");
    assert!(e.contains("unknown escape"), "{e}");
}

#[test]
fn duplicate_gpio_line_is_refused_naming_both_uses() {
    let text = MINIMAL_GPIO.replace("deny = { line = 27 }", "deny = { line = 17 }");
    let err = BoardProfile::from_toml_str(&text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "board profile: gpio.lines.deny.line: line 17 is already used by gpio.lines.approve"
    );
}

#[test]
fn pulse_lengths_and_counts_are_bounded() {
    let with = |patterns: &str| format!("{MINIMAL_GPIO}\n[gpio.patterns]\n{patterns}\n");
    assert_eq!(
        invalid_field(&with("approve = { pulses = [{ on_ms = 0 }] }")),
        "gpio.patterns.approve.pulses[0].on_ms"
    );
    assert_eq!(
        invalid_field(&with(
            "deny = { pulses = [{ on_ms = 100 }, { on_ms = 100, off_ms = 60000 }] }"
        )),
        "gpio.patterns.deny.pulses[1].off_ms"
    );
    assert_eq!(
        invalid_field(&with("deny = { pulses = [{ on_ms = 100 }], repeat = 0 }")),
        "gpio.patterns.deny.repeat"
    );
    assert_eq!(
        invalid_field(&with(
            "buzzer_deny = { pulses = [{ on_ms = 5000, off_ms = 5000 }], repeat = 2 }"
        )),
        "gpio.patterns.buzzer_deny"
    );
    assert_eq!(
        invalid_field(&with("offline_blink = { on_ms = 5, off_ms = 500 }")),
        "gpio.patterns.offline_blink.on_ms"
    );
    assert_eq!(
        invalid_field(&with("relay_pulse_ms = 60000")),
        "gpio.patterns.relay_pulse_ms"
    );
    let many = vec!["{ on_ms = 20 }"; 17].join(", ");
    assert_eq!(
        invalid_field(&with(&format!("approve = {{ pulses = [{many}] }}"))),
        "gpio.patterns.approve.pulses"
    );
    // Off is allowed: no relay pulse.
    BoardProfile::from_toml_str(&with("relay_pulse_ms = 0")).unwrap();
}

#[test]
fn line_numbers_and_chip_path_are_checked() {
    assert_eq!(
        invalid_field(&MINIMAL_GPIO.replace("line = 27", "line = 5000")),
        "gpio.lines.deny.line"
    );
    assert_eq!(
        invalid_field(&MINIMAL_GPIO.replace("/dev/gpiochip0", "gpiochip0")),
        "gpio.chip"
    );
    assert_eq!(
        invalid_field(
            "name = \"t\"\n[scanner]\nkind = \"stdin\"\n[gpio]\nchip = \"/dev/gpiochip0\"\n"
        ),
        "gpio.lines"
    );
}

#[test]
fn scanner_fields_must_match_the_kind() {
    let s = |body: &str| format!("name = \"t\"\n[scanner]\n{body}\n");
    assert_eq!(invalid_field(&s("kind = \"serial\"")), "scanner.path");
    assert_eq!(
        invalid_field(&s("kind = \"stdin\"\npath = \"/dev/ttyACM0\"")),
        "scanner.path"
    );
    assert_eq!(invalid_field(&s("kind = \"tcp\"")), "scanner.listen");
    assert_eq!(
        invalid_field(&s(
            "kind = \"serial\"\npath = \"/dev/ttyACM0\"\nbaud = 12345"
        )),
        "scanner.baud"
    );
    assert_eq!(
        invalid_field(&s("kind = \"stdin\"\nmax_len = 100000")),
        "scanner.max_len"
    );
    assert_eq!(
        invalid_field(&s("kind = \"stdin\"\nack = \"honeywell\"")),
        "scanner.ack"
    );
    BoardProfile::from_toml_str(&s("kind = \"tcp\"\nlisten = \"127.0.0.1:7071\"")).unwrap();
}

#[test]
fn outputs_need_their_address_or_port() {
    let o = |body: &str| format!("name = \"t\"\n[scanner]\nkind = \"stdin\"\n[outputs]\n{body}\n");
    assert_eq!(invalid_field(&o("jsonl = \"tcp\"")), "outputs.pos_listen");
    assert_eq!(invalid_field(&o("jsonl = \"serial\"")), "outputs.pos_path");
    assert_eq!(
        invalid_field(&o("jsonl = \"stdout\"\npos_listen = \"127.0.0.1:7070\"")),
        "outputs.pos_listen"
    );
    assert_eq!(
        invalid_field(&o(
            "jsonl = \"serial\"\npos_path = \"/dev/ttyS0\"\npos_baud = 7"
        )),
        "outputs.pos_baud"
    );
    assert_eq!(invalid_field(&o("console = false")), "outputs");
    BoardProfile::from_toml_str(&o(
        "jsonl = \"serial\"\npos_path = \"/dev/ttyS0\"\npos_baud = 19200",
    ))
    .unwrap();
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let e = BoardProfile::load(&missing).unwrap_err();
    assert!(matches!(e, BoardError::Read { .. }));
    assert!(e.to_string().contains("nope.toml"), "{e}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, MINIMAL_GPIO.replace("line = 27", "line = 17")).unwrap();
    let e = BoardProfile::load(&bad).unwrap_err().to_string();
    assert!(
        e.contains("bad.toml") && e.contains("gpio.lines.deny.line"),
        "{e}"
    );

    let syntax = dir.path().join("syntax.toml");
    std::fs::write(&syntax, "name = \"t\"\n[scanner\n").unwrap();
    let e = BoardProfile::load(&syntax).unwrap_err().to_string();
    assert!(e.contains("syntax.toml") && e.contains("line 2"), "{e}");

    let big = dir.path().join("big.toml");
    std::fs::write(&big, format!("# {}\n", "x".repeat(70_000))).unwrap();
    let e = BoardProfile::load(&big).unwrap_err().to_string();
    assert!(e.contains("larger than"), "{e}");
}

// The [scanner] schema is one type (config::scanner): the agent config and a board
// profile must agree on every section.

/// The field a `[scanner]` body is refused for, or `None` when accepted.
fn scanner_config_verdict(body: &str) -> Option<String> {
    let text = format!("[scanner]\n{body}\n");
    match RawConfig::parse(&text, Path::new("t.toml")).and_then(Config::from_raw) {
        Ok(_) => None,
        Err(ConfigError::Invalid { field, .. }) => Some(field.to_string()),
        Err(e) => Some(format!("parse: {e}")),
    }
}

fn scanner_board_verdict(body: &str) -> Option<String> {
    let text = format!("name = \"t\"\n[scanner]\n{body}\n");
    match BoardProfile::from_toml_str(&text) {
        Ok(_) => None,
        Err(BoardError::Invalid { field, .. }) => Some(field),
        Err(e) => Some(format!("parse: {e}")),
    }
}

#[test]
fn the_config_and_a_board_profile_accept_and_refuse_the_same_scanner_sections() {
    for (body, refused) in [
        ("kind = \"stdin\"", None),
        ("kind = \"none\"", None),
        ("", None),
        ("max_len = 4", None),
        ("max_len = 512", None),
        ("max_len = 3", Some("scanner.max_len")),
        ("max_len = 513", Some("scanner.max_len")),
        ("prefix = '\\x02'\nsuffix = '\\r\\n'", None),
        ("prefix = '123456789'", Some("scanner.prefix")),
        ("kind = \"serial\"", Some("scanner.path")),
        (
            "kind = \"serial\"\npath = \"dev/ttyACM0\"",
            Some("scanner.path"),
        ),
        (
            "kind = \"serial\"\npath = \"/dev/ttyACM0\"\nbaud = 12345",
            Some("scanner.baud"),
        ),
        (
            "kind = \"serial\"\npath = \"/dev/ttyACM0\"\nbaud = 115200\nack = \"honeywell\"",
            None,
        ),
        ("kind = \"tcp\"", Some("scanner.listen")),
        ("kind = \"tcp\"\nlisten = \"127.0.0.1:7071\"", None),
        (
            "kind = \"stdin\"\nlisten = \"127.0.0.1:7071\"",
            Some("scanner.listen"),
        ),
        ("ack = \"honeywell\"", Some("scanner.ack")),
    ] {
        let (c, b) = (scanner_config_verdict(body), scanner_board_verdict(body));
        assert_eq!(c.as_deref(), refused, "config, {body:?}");
        assert_eq!(b.as_deref(), refused, "board, {body:?}");
    }
}

#[test]
fn an_unknown_scanner_kind_is_refused_by_name_in_both() {
    let c = scanner_config_verdict("kind = \"usb\"").unwrap();
    let b = scanner_board_verdict("kind = \"usb\"").unwrap();
    for e in [c, b] {
        assert!(e.contains("scanner.kind") && e.contains("usb"), "{e}");
    }
}

#[test]
fn a_section_left_out_is_stdin_with_the_default_limits() {
    let c = Config::from_raw(RawConfig::parse("", Path::new("t")).unwrap()).unwrap();
    assert_eq!(c.scanner, ScannerSection::default());
    assert_eq!(c.scanner.max_len, DEFAULT_MAX_LEN);
    assert_eq!(c.scanner.baud, 9600);
}
