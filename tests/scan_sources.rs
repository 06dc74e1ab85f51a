//! Scanner sources end to end: a reader, a pipe, a serial port over a pseudo-terminal and
//! the TCP scanner listener. Waiting is done on channels with timeouts, never sleeps.

use std::ffi::OsStr;
use std::io::{Cursor, Read, Write};
use std::net::TcpStream;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use concession_agent::clock::ManualClock;
use concession_agent::scan::source::{spawn_fd, spawn_reader, spawn_serial, TcpScannerSource};
use concession_agent::scan::{
    AgentRequest, Origin, ScanEvent, ScanInput, SourceEnd, SourceOptions, UnreadableReason,
};
use crossbeam_channel::{unbounded, Receiver};

const WAIT: Duration = Duration::from_secs(5);
const START_MS: u64 = 1_764_266_400_000;

fn opts() -> SourceOptions {
    let mut o = SourceOptions::new(
        ManualClock::new(START_MS).shared(),
        Arc::new(AtomicBool::new(false)),
    );
    o.poll_interval = Duration::from_millis(20);
    o
}

fn next_scan(rx: &Receiver<AgentRequest>) -> ScanEvent {
    match rx.recv_timeout(WAIT).expect("a scan in time") {
        AgentRequest::Scan(s) => s,
        other => panic!("expected a scan, got {other:?}"),
    }
}

/// `B:<digits>`, `S:safetix` or `U:<reason>` for compact assertions.
fn label(input: &ScanInput) -> String {
    match input {
        ScanInput::Barcode(b) => format!("B:{}", b.as_str()),
        ScanInput::SafeTix(_) => "S:safetix".into(),
        ScanInput::Unreadable(u) => format!("U:{}", u.reason.as_str()),
    }
}

fn noisy_input() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(b"]C1100000000001\r\n");
    v.extend_from_slice(b"\r\n\n");
    v.extend_from_slice(b"\x1b[A\r\n");
    v.extend_from_slice(b"12\xff\xfe34\r\n");
    v.extend_from_slice(&[b'7'; 300]);
    v.extend_from_slice(b"\r\n");
    v.extend_from_slice(b"hello\n");
    v.extend_from_slice(b"tok3n::123456::654321::1764266400\n");
    v.extend_from_slice(b"100000000002K\r");
    v
}

const NOISY_LABELS: [&str; 7] = [
    "B:100000000001",
    "U:control_char",
    "U:invalid_utf8",
    "U:too_long",
    "U:not_a_barcode",
    "S:safetix",
    "B:100000000002",
];

#[test]
fn reader_source_frames_noise_and_ends_at_eof() {
    let (tx, rx) = unbounded();
    let h = spawn_reader(
        Cursor::new(noisy_input()),
        Origin::Reader("cursor".into()),
        tx,
        opts(),
    )
    .unwrap();
    let mut got = Vec::new();
    for _ in 0..NOISY_LABELS.len() {
        let s = next_scan(&rx);
        assert_eq!(s.origin, Origin::Reader("cursor".into()));
        assert_eq!(s.received_at_ms, START_MS);
        assert_eq!(s.amount_cents, None);
        assert_eq!(s.request_id, None);
        got.push(label(&s.input));
    }
    assert_eq!(got, NOISY_LABELS);
    assert!(matches!(h.join(), SourceEnd::Eof));
    assert!(rx.try_recv().is_err(), "nothing more after eof");
}

#[test]
fn reader_source_counts_an_unterminated_last_read() {
    let (tx, rx) = unbounded();
    let h = spawn_reader(
        Cursor::new(b"100000000001\n100000000003j".to_vec()),
        Origin::Reader("tail".into()),
        tx,
        opts(),
    )
    .unwrap();
    assert_eq!(label(&next_scan(&rx).input), "B:100000000001");
    let last = next_scan(&rx);
    assert_eq!(label(&last.input), "B:100000000003");
    assert_eq!(last.input.barcode().unwrap().channel(), Some('j'));
    assert!(matches!(h.join(), SourceEnd::Eof));
}

#[test]
fn pipe_source_survives_noise_and_stops_on_the_flag() {
    let (reader, mut writer) = std::io::pipe().unwrap();
    let (tx, rx) = unbounded();
    let o = opts();
    let stop = o.stop.clone();
    let h = spawn_fd(reader, Origin::Stdin, tx, o).unwrap();
    writer.write_all(&noisy_input()).unwrap();
    for want in NOISY_LABELS {
        assert_eq!(label(&next_scan(&rx).input), want);
    }
    // Input byte by byte still frames the same way.
    for b in b"]Q1100000000004\r\n" {
        writer.write_all(&[*b]).unwrap();
    }
    assert_eq!(label(&next_scan(&rx).input), "B:100000000004");
    // Writer still open: only the flag can stop the source.
    stop.store(true, Ordering::Relaxed);
    assert!(matches!(h.join(), SourceEnd::Stopped));
    drop(writer);
}

#[test]
fn pipe_source_ends_at_eof() {
    let (reader, mut writer) = std::io::pipe().unwrap();
    let (tx, rx) = unbounded();
    let h = spawn_fd(reader, Origin::Stdin, tx, opts()).unwrap();
    writer.write_all(b"100000000001\n").unwrap();
    assert_eq!(label(&next_scan(&rx).input), "B:100000000001");
    drop(writer);
    assert!(matches!(h.join(), SourceEnd::Eof));
}

#[test]
fn source_ends_when_the_agent_channel_closes() {
    let (reader, mut writer) = std::io::pipe().unwrap();
    let (tx, rx) = unbounded();
    let h = spawn_fd(reader, Origin::Stdin, tx, opts()).unwrap();
    drop(rx);
    writer.write_all(b"100000000001\n").unwrap();
    assert!(matches!(h.join(), SourceEnd::ChannelClosed));
}

/// A pseudo-terminal pair: the master fd (the "scanner" end) and the slave's path.
fn pty() -> (std::fs::File, std::path::PathBuf) {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let path = Path::new(OsStr::from_bytes(name.as_bytes())).to_path_buf();
    (std::fs::File::from(master), path)
}

#[test]
fn serial_source_reads_a_pty_in_raw_mode_and_ends_on_hangup() {
    let (mut master, path) = pty();
    let (tx, rx) = unbounded();
    let h = spawn_serial(&path, 9600, tx, opts()).unwrap();
    assert_eq!(h.name(), format!("serial:{}", path.display()));

    // Raw mode: CR is not turned into LF, bytes like 0x03 and 0x1a reach us untouched
    // (a cooked tty would send signals or end the input).
    master
        .write_all(b"]C1100000000001\r\n\x03\r\n\x1a\r\n")
        .unwrap();
    assert_eq!(label(&next_scan(&rx).input), "B:100000000001");
    assert_eq!(label(&next_scan(&rx).input), "U:control_char");
    assert_eq!(label(&next_scan(&rx).input), "U:control_char");
    master.write_all(&noisy_input()).unwrap();
    for want in NOISY_LABELS {
        let s = next_scan(&rx);
        assert_eq!(s.origin, Origin::Serial(path.display().to_string()));
        assert_eq!(label(&s.input), want);
    }
    // Nothing was echoed back to the scanner (echo is off in raw mode).
    let master_fd = rustix::fs::fcntl_getfl(&master).unwrap();
    rustix::fs::fcntl_setfl(&master, master_fd | rustix::fs::OFlags::NONBLOCK).unwrap();
    let mut buf = [0u8; 64];
    assert!(master.read(&mut buf).is_err(), "no echo expected");

    drop(master);
    assert!(matches!(h.join(), SourceEnd::Eof));
}

#[test]
fn serial_source_stops_on_the_flag() {
    let (master, path) = pty();
    let (tx, _rx) = unbounded();
    let o = opts();
    let stop = o.stop.clone();
    let h = spawn_serial(&path, 115_200, tx, o).unwrap();
    stop.store(true, Ordering::Relaxed);
    assert!(matches!(h.join(), SourceEnd::Stopped));
    drop(master);
}

#[test]
fn serial_open_errors_come_back_at_start() {
    let (tx, _rx) = unbounded();
    let err = spawn_serial(Path::new("/nonexistent/ttyX"), 9600, tx, opts()).unwrap_err();
    assert!(err.to_string().starts_with("open scanner device"), "{err}");
}

#[test]
fn tcp_scanners_each_get_their_own_origin_and_noise_never_stops_them() {
    let (tx, rx) = unbounded();
    let o = opts();
    let stop = o.stop.clone();
    let src = TcpScannerSource::bind("127.0.0.1:0", tx, o).unwrap();
    let mut a = TcpStream::connect(src.local_addr()).unwrap();
    let mut b = TcpStream::connect(src.local_addr()).unwrap();

    a.write_all(b"100000000001\r\n").unwrap();
    let sa = next_scan(&rx);
    b.write_all(b"100000000002\n").unwrap();
    let sb = next_scan(&rx);
    assert_eq!(label(&sa.input), "B:100000000001");
    assert_eq!(label(&sb.input), "B:100000000002");
    let (ca, cb) = match (&sa.origin, &sb.origin) {
        (Origin::Scanner { conn: ca, .. }, Origin::Scanner { conn: cb, .. }) => (*ca, *cb),
        other => panic!("{other:?}"),
    };
    assert_ne!(ca, cb);

    a.write_all(&noisy_input()).unwrap();
    for want in NOISY_LABELS {
        let s = next_scan(&rx);
        assert_eq!(label(&s.input), want);
        assert!(matches!(s.origin, Origin::Scanner { conn, .. } if conn == ca));
    }

    // One scanner leaving does not end the listener or the other scanner.
    drop(a);
    b.write_all(b"]E0100000000003\n").unwrap();
    assert_eq!(label(&next_scan(&rx).input), "B:100000000003");
    let mut c = TcpStream::connect(src.local_addr()).unwrap();
    c.write_all(b"100000000004\n").unwrap();
    assert_eq!(label(&next_scan(&rx).input), "B:100000000004");

    stop.store(true, Ordering::Relaxed);
    assert!(matches!(src.join(), SourceEnd::Stopped));
    // The listener closed its connections on the way out.
    c.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
}

#[test]
fn tcp_scanner_listener_refuses_connections_over_the_limit() {
    let (tx, rx) = unbounded();
    let mut o = opts();
    o.max_connections = 1;
    let stop = o.stop.clone();
    let src = TcpScannerSource::bind("127.0.0.1:0", tx, o).unwrap();
    let mut a = TcpStream::connect(src.local_addr()).unwrap();
    a.write_all(b"100000000001\n").unwrap();
    assert_eq!(label(&next_scan(&rx).input), "B:100000000001");

    let mut b = TcpStream::connect(src.local_addr()).unwrap();
    b.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(
        b.read(&mut buf).unwrap_or(0),
        0,
        "refused connection is closed"
    );

    a.write_all(b"100000000002\n").unwrap();
    assert_eq!(label(&next_scan(&rx).input), "B:100000000002");
    stop.store(true, Ordering::Relaxed);
    assert!(matches!(src.join(), SourceEnd::Stopped));
}

#[test]
fn unreadable_details_never_contain_the_read() {
    let (tx, rx) = unbounded();
    let h = spawn_reader(
        Cursor::new(b"1234567890\x07999\n".to_vec()),
        Origin::Reader("x".into()),
        tx,
        opts(),
    )
    .unwrap();
    match next_scan(&rx).input {
        ScanInput::Unreadable(u) => {
            assert_eq!(u.reason, UnreadableReason::ControlChar);
            assert!(!u.detail.contains("1234567890"));
        }
        other => panic!("{other:?}"),
    }
    h.join();
}
