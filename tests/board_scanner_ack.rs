//! Scanner acknowledgement over a pseudo-terminal: the bytes the scanner would receive.

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;

use concession_agent::decide::Verdict;
use concession_agent::signal::scanner_ack::{AckCodes, ScannerAck};
use concession_agent::signal::{AgentStatus, DecisionEvent, Signal};
use rustix::fs::{Mode, OFlags};
use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use rustix::termios::{tcgetattr, tcsetattr, OptionalActions};

/// A pty pair: the master (the "scanner" side, read by the test) and the slave path (the
/// "serial port" the agent opens).
fn pty() -> (File, PathBuf) {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let path = PathBuf::from(name.to_str().unwrap());
    (File::from(master), path)
}

/// Opens the slave side in raw mode, as a serial port would be.
fn open_raw(path: &PathBuf) -> File {
    let fd = rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    let mut t = tcgetattr(&fd).unwrap();
    t.make_raw();
    tcsetattr(&fd, OptionalActions::Now, &t).unwrap();
    File::from(fd)
}

fn event(decision: Verdict) -> DecisionEvent {
    DecisionEvent {
        id: "d".into(),
        time: "2026-01-01T12:00:00.000Z".into(),
        terminal: "stand-1".into(),
        barcode: "********0001".into(),
        decision,
        reason: if decision == Verdict::Approve {
            concession_agent::decide::Reason::Approved
        } else {
            concession_agent::decide::Reason::UnknownTicket
        },
        approved_cents: 0,
        items: Vec::new(),
        source: concession_agent::decide::Source::Live,
        latency_ms: 3,
        request: None,
        venue: None,
    }
}

#[test]
fn honeywell_good_after_approve_and_bad_after_deny_reach_the_scanner() {
    let (mut master, slave) = pty();
    let port = open_raw(&slave);
    let mut ack = ScannerAck::honeywell(port);
    ack.decision(&event(Verdict::Approve)).unwrap();
    ack.status(AgentStatus::Offline).unwrap(); // nothing sent for status
    ack.decision(&event(Verdict::Deny)).unwrap();
    let mut got = [0u8; 6];
    master.read_exact(&mut got).unwrap();
    assert_eq!(&got, &[0x1b, b'7', b',', 0x1b, b'8', b',']);
}

#[test]
fn custom_codes_are_written_verbatim() {
    let (mut master, slave) = pty();
    let codes = AckCodes {
        good: vec![0x06],
        bad: vec![0x15, b'\r'],
    };
    let mut ack = ScannerAck::new(open_raw(&slave), codes);
    ack.decision(&event(Verdict::Deny)).unwrap();
    ack.decision(&event(Verdict::Approve)).unwrap();
    let mut got = [0u8; 3];
    master.read_exact(&mut got).unwrap();
    assert_eq!(&got, &[0x15, b'\r', 0x06]);
}

#[test]
fn a_closed_port_is_a_signal_error() {
    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut ack = ScannerAck::honeywell(Closed);
    let err = ack.decision(&event(Verdict::Approve)).unwrap_err();
    assert!(matches!(err, concession_agent::signal::SignalError::Io(_)));
}

/// The real serial scanner from `board::devices`, opened on the pty slave.
#[cfg(feature = "board")]
#[test]
fn serial_scanner_reads_scans_and_acknowledges_on_the_same_port() {
    use concession_agent::board::devices::SerialScanner;
    use concession_agent::board::{AckSetting, ScannerKind, ScannerSection};
    use std::sync::atomic::Ordering;

    let (mut master, slave) = pty();
    let profile = ScannerSection {
        kind: ScannerKind::Serial,
        path: Some(slave.clone()),
        listen: None,
        baud: 115200,
        prefix: Default::default(),
        suffix: concession_agent::board::EscapedBytes(b"\r".to_vec()),
        max_len: 64,
        ack: AckSetting::Honeywell,
    };
    let mut scanner = SerialScanner::open(&profile).unwrap();
    assert_eq!(scanner.path(), slave.as_path());
    let mut ack = scanner.ack_signal(&profile.ack).unwrap().expect("ack");

    master.write_all(b"100000000001\r").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while !got.ends_with(b"\r") {
        let n = scanner.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"100000000001\r");

    ack.decision(&event(Verdict::Approve)).unwrap();
    let mut beep = [0u8; 3];
    master.read_exact(&mut beep).unwrap();
    assert_eq!(&beep, b"\x1b7,");

    // Stopping ends the reader with end of input instead of blocking forever.
    scanner.stop_flag().store(true, Ordering::Relaxed);
    assert_eq!(scanner.read(&mut buf).unwrap(), 0);
}
