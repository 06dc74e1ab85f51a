//! GPIO lights, buzzer and relay: exact edges and timings through a manual clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concession_agent::clock::{Clock, ManualClock};
use concession_agent::decide::Verdict;
use concession_agent::signal::gpio::{
    GpioPatterns, GpioPins, GpioPlayer, GpioSignal, OutputLine, Pattern, PlayerCommand, Pulse,
    MAX_SLICE,
};
use concession_agent::signal::{AgentStatus, DecisionEvent, Signal, SignalError};
use embedded_hal::digital::{ErrorType, OutputPin};

/// `(pin name, level high?, ms since start)`.
type Log = Arc<Mutex<Vec<(&'static str, bool, u64)>>>;

#[derive(Debug)]
struct FakeError;

impl embedded_hal::digital::Error for FakeError {
    fn kind(&self) -> embedded_hal::digital::ErrorKind {
        embedded_hal::digital::ErrorKind::Other
    }
}

/// A pin that records every level it is set to, stamped with the manual clock.
struct Recorder {
    name: &'static str,
    log: Log,
    clock: ManualClock,
    t0: Instant,
    broken: Arc<AtomicBool>,
}

impl ErrorType for Recorder {
    type Error = FakeError;
}

impl OutputPin for Recorder {
    fn set_low(&mut self) -> Result<(), FakeError> {
        self.record(false)
    }
    fn set_high(&mut self) -> Result<(), FakeError> {
        self.record(true)
    }
}

impl Recorder {
    fn record(&mut self, high: bool) -> Result<(), FakeError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(FakeError);
        }
        let at = (self.clock.now() - self.t0).as_millis() as u64;
        self.log.lock().unwrap().push((self.name, high, at));
        Ok(())
    }
}

struct Bench {
    clock: ManualClock,
    t0: Instant,
    log: Log,
    broken: Arc<AtomicBool>,
}

impl Bench {
    fn new() -> Self {
        let clock = ManualClock::new(0);
        Bench {
            t0: clock.now(),
            clock,
            log: Log::default(),
            broken: Arc::new(AtomicBool::new(false)),
        }
    }

    fn line(&self, name: &'static str, active_low: bool) -> Option<OutputLine<Recorder>> {
        Some(OutputLine::new(
            Recorder {
                name,
                log: Arc::clone(&self.log),
                clock: self.clock.clone(),
                t0: self.t0,
                broken: Arc::clone(&self.broken),
            },
            active_low,
        ))
    }

    /// approve, deny, buzzer active high; ready and relay active low (as on rpi-kiosk).
    fn pins(&self) -> GpioPins<Recorder> {
        GpioPins {
            approve: self.line("approve", false),
            deny: self.line("deny", false),
            ready: self.line("ready", true),
            buzzer: self.line("buzzer", false),
            relay: self.line("relay", true),
        }
    }

    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// Steps `player` edge by edge up to `until_ms`, advancing the clock to each edge.
    fn run_until(&self, player: &mut GpioPlayer<Recorder>, until_ms: u64) {
        let end = self.at(until_ms);
        while let Some(due) = player.next_due() {
            if due > end {
                break;
            }
            self.clock
                .advance(due.saturating_duration_since(self.clock.now()));
            player.run_due(self.clock.now()).unwrap();
        }
        self.clock
            .advance(end.saturating_duration_since(self.clock.now()));
    }

    fn take(&self) -> Vec<(&'static str, bool, u64)> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

fn patterns() -> GpioPatterns {
    GpioPatterns {
        approve: Pattern::once(vec![Pulse::new(1000, 0)]),
        deny: Pattern {
            pulses: vec![Pulse::new(200, 100)],
            repeat: 2,
        },
        offline_blink: Pulse::new(500, 250),
        buzzer_approve: Pattern::once(vec![Pulse::new(80, 0)]),
        buzzer_deny: Pattern::once(vec![Pulse::new(300, 0)]),
        relay_pulse_ms: 250,
    }
}

fn event(decision: Verdict) -> DecisionEvent {
    DecisionEvent {
        id: "01J0000000000000000000000".into(),
        time: "2026-01-01T12:00:00.000Z".into(),
        terminal: "stand-1".into(),
        barcode: "********0001".into(),
        decision,
        reason: concession_agent::decide::Reason::Approved,
        approved_cents: 2000,
        items: Vec::new(),
        source: concession_agent::decide::Source::Live,
        latency_ms: 12,
        request: None,
        venue: None,
    }
}

#[test]
fn init_switches_every_line_off_honouring_polarity() {
    let b = Bench::new();
    let mut p = GpioPlayer::new(b.pins(), patterns());
    p.init().unwrap();
    assert_eq!(
        b.take(),
        vec![
            ("approve", false, 0),
            ("deny", false, 0),
            ("ready", true, 0), // active low: off is high
            ("buzzer", false, 0),
            ("relay", true, 0), // active low: off is high
        ]
    );
}

#[test]
fn approve_plays_light_buzzer_and_relay_with_exact_timings() {
    let b = Bench::new();
    let mut p = GpioPlayer::new(b.pins(), patterns());
    p.init().unwrap();
    b.take();
    p.command(PlayerCommand::Decision(Verdict::Approve), b.now())
        .unwrap();
    b.run_until(&mut p, 5_000);
    assert_eq!(
        b.take(),
        vec![
            ("approve", true, 0),
            ("buzzer", true, 0),
            ("relay", false, 0), // active low: relay closed
            ("buzzer", false, 80),
            ("relay", true, 250), // released
            ("approve", false, 1000),
        ]
    );
    assert_eq!(p.next_due(), None);
    assert!(!p.is_playing());
}

#[test]
fn deny_plays_repeated_flashes_and_long_beep() {
    let b = Bench::new();
    let mut p = GpioPlayer::new(b.pins(), patterns());
    p.init().unwrap();
    b.take();
    p.command(PlayerCommand::Decision(Verdict::Deny), b.now())
        .unwrap();
    b.run_until(&mut p, 5_000);
    assert_eq!(
        b.take(),
        vec![
            ("deny", true, 0),
            ("buzzer", true, 0),
            ("deny", false, 200),
            ("deny", true, 300),
            ("buzzer", false, 300),
            ("deny", false, 500),
        ]
    );
}

#[test]
fn new_decision_preempts_running_pattern_and_switches_outputs_off_first() {
    let b = Bench::new();
    let mut p = GpioPlayer::new(b.pins(), patterns());
    p.init().unwrap();
    b.take();
    p.command(PlayerCommand::Decision(Verdict::Approve), b.now())
        .unwrap();
    b.run_until(&mut p, 100);
    b.take();
    // Mid-approve: green on, relay still closed. A deny arrives.
    p.command(PlayerCommand::Decision(Verdict::Deny), b.now())
        .unwrap();
    b.run_until(&mut p, 5_000);
    assert_eq!(
        b.take(),
        vec![
            ("approve", false, 100),
            ("relay", true, 100), // opened at once, not at 250
            ("deny", true, 100),
            ("buzzer", true, 100),
            ("deny", false, 300),
            ("deny", true, 400),
            ("buzzer", false, 400),
            ("deny", false, 600),
        ]
    );
    assert_eq!(p.next_due(), None, "the old approve edges are gone");
}

#[test]
fn ready_light_is_steady_when_ready_blinks_offline_and_goes_off_when_stopping() {
    let b = Bench::new();
    let mut p = GpioPlayer::new(b.pins(), patterns());
    p.init().unwrap();
    b.take();
    p.command(PlayerCommand::Status(AgentStatus::Ready), b.now())
        .unwrap();
    assert_eq!(p.next_due(), None, "steady: nothing scheduled");
    b.run_until(&mut p, 1_000);
    p.command(PlayerCommand::Status(AgentStatus::Offline), b.now())
        .unwrap();
    b.run_until(&mut p, 2_600);
    p.command(PlayerCommand::Status(AgentStatus::Ready), b.now())
        .unwrap();
    b.run_until(&mut p, 3_000);
    p.command(PlayerCommand::Status(AgentStatus::Stopping), b.now())
        .unwrap();
    assert_eq!(p.next_due(), None);
    // ready is active low: on = low (false).
    assert_eq!(
        b.take(),
        vec![
            ("ready", false, 0),    // ready: on
            ("ready", true, 1_500), // offline since 1000: off after 500 ms on
            ("ready", false, 1_750),
            ("ready", true, 2_250),
            ("ready", false, 2_500),
            // 2600: ready again; already on, so no write
            ("ready", true, 3_000), // stopping: off
        ]
    );
}

#[test]
fn offline_blink_interleaves_with_a_decision_in_time_order() {
    let b = Bench::new();
    let mut p = GpioPlayer::new(b.pins(), patterns());
    p.init().unwrap();
    b.take();
    p.command(PlayerCommand::Status(AgentStatus::Offline), b.now())
        .unwrap();
    b.run_until(&mut p, 400);
    p.command(PlayerCommand::Decision(Verdict::Deny), b.now())
        .unwrap();
    b.run_until(&mut p, 1_100);
    assert_eq!(
        b.take(),
        vec![
            ("ready", false, 0),
            ("deny", true, 400),
            ("buzzer", true, 400),
            ("ready", true, 500),
            ("deny", false, 600),
            ("deny", true, 700),
            ("buzzer", false, 700),
            ("ready", false, 750),
            ("deny", false, 900),
        ]
    );
    assert!(p.next_due().is_some(), "still blinking");
}

#[test]
fn run_due_catches_up_every_missed_edge_in_order() {
    let b = Bench::new();
    let mut p = GpioPlayer::new(b.pins(), patterns());
    p.init().unwrap();
    b.take();
    p.command(PlayerCommand::Decision(Verdict::Deny), b.now())
        .unwrap();
    b.clock.advance(Duration::from_millis(10_000));
    p.run_due(b.now()).unwrap();
    let names: Vec<_> = b.take().into_iter().map(|(n, h, _)| (n, h)).collect();
    assert_eq!(
        names,
        vec![
            ("deny", true),
            ("buzzer", true),
            ("deny", false),
            ("deny", true),
            ("buzzer", false),
            ("deny", false),
        ]
    );
}

#[test]
fn missing_lines_are_skipped() {
    let b = Bench::new();
    let pins = GpioPins {
        approve: b.line("approve", false),
        ..GpioPins::default()
    };
    let mut p = GpioPlayer::new(pins, patterns());
    p.command(PlayerCommand::Decision(Verdict::Approve), b.now())
        .unwrap();
    p.command(PlayerCommand::Status(AgentStatus::Offline), b.now())
        .unwrap();
    b.run_until(&mut p, 2_000);
    // Without `init` the line's level is unknown, so the preempt writes "off" first.
    assert_eq!(
        b.take(),
        vec![
            ("approve", false, 0),
            ("approve", true, 0),
            ("approve", false, 1000)
        ]
    );
}

#[test]
fn pin_error_surfaces_as_signal_error_pin_and_player_keeps_going() {
    let b = Bench::new();
    let mut p = GpioPlayer::new(b.pins(), patterns());
    p.init().unwrap();
    b.take();
    b.broken.store(true, Ordering::SeqCst);
    let err = p
        .command(PlayerCommand::Decision(Verdict::Approve), b.now())
        .unwrap_err();
    match err {
        SignalError::Pin(msg) => assert!(msg.contains("approve"), "{msg}"),
        other => panic!("expected a pin error, got {other:?}"),
    }
    b.broken.store(false, Ordering::SeqCst);
    b.run_until(&mut p, 5_000);
    // The failed "on" writes left the state unknown, so every "off" edge is written.
    assert_eq!(
        b.take(),
        vec![
            ("buzzer", false, 80),
            ("relay", true, 250),
            ("approve", false, 1000)
        ]
    );
}

#[test]
fn mock_pin_sees_the_exact_level_sequence_of_a_deny() {
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction as T};
    let deny = Mock::new(&[
        T::set(State::Low), // init: off
        T::set(State::High),
        T::set(State::Low),
        T::set(State::High),
        T::set(State::Low),
    ]);
    let relay = Mock::new(&[T::set(State::High)]); // active low, init only
    let pins = GpioPins {
        deny: Some(OutputLine::new(deny.clone(), false)),
        relay: Some(OutputLine::new(relay.clone(), true)),
        ..GpioPins::default()
    };
    let clock = ManualClock::new(0);
    let mut p = GpioPlayer::new(pins, patterns());
    p.init().unwrap();
    p.command(PlayerCommand::Decision(Verdict::Deny), clock.now())
        .unwrap();
    let mut at = Vec::new();
    let t0 = clock.now();
    while let Some(due) = p.next_due() {
        clock.advance(due - clock.now());
        at.push((clock.now() - t0).as_millis() as u64);
        p.run_due(clock.now()).unwrap();
    }
    assert_eq!(at, vec![200, 300, 500]);
    let (mut deny, mut relay) = (deny, relay);
    deny.done();
    relay.done();
}

#[test]
fn mock_pin_error_is_a_signal_error_not_a_panic() {
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction as T};
    use embedded_hal_mock::eh1::MockError;
    let err = MockError::Io(std::io::ErrorKind::NotConnected);
    let mut approve = Mock::new(&[T::set(State::Low).with_error(err)]);
    let pins = GpioPins {
        approve: Some(OutputLine::new(approve.clone(), false)),
        ..GpioPins::default()
    };
    let mut p = GpioPlayer::new(pins, patterns());
    assert!(matches!(p.init(), Err(SignalError::Pin(_))));
    approve.done();
}

#[test]
fn signal_thread_plays_approve_through_the_injected_clock() {
    let b = Bench::new();
    let mut s = GpioSignal::spawn(b.pins(), patterns(), b.clock.shared()).unwrap();
    s.status(AgentStatus::Ready).unwrap();
    s.settle(Duration::from_secs(10)).unwrap();
    s.decision(&event(Verdict::Approve)).unwrap();
    s.settle(Duration::from_secs(10)).unwrap();
    assert_eq!(
        b.take(),
        vec![
            ("approve", false, 0),
            ("deny", false, 0),
            ("ready", true, 0),
            ("buzzer", false, 0),
            ("relay", true, 0),
            ("ready", false, 0),
            ("approve", true, 0),
            ("buzzer", true, 0),
            ("relay", false, 0),
            ("buzzer", false, 80),
            ("relay", true, 250),
            ("approve", false, 1000),
        ]
    );
    assert!(
        b.clock.sleeps().iter().all(|d| *d <= MAX_SLICE),
        "the thread sleeps in short slices so a new command can preempt"
    );
    s.shutdown().unwrap();
    assert_eq!(
        b.take(),
        vec![
            ("approve", false, 1000),
            ("deny", false, 1000),
            ("ready", true, 1000),
            ("buzzer", false, 1000),
            ("relay", true, 1000),
        ],
        "shutdown leaves every output off"
    );
}

#[test]
fn signal_thread_offline_then_ready_ends_steady_on() {
    let b = Bench::new();
    let mut s = GpioSignal::spawn(b.pins(), patterns(), b.clock.shared()).unwrap();
    s.status(AgentStatus::Offline).unwrap();
    s.status(AgentStatus::Ready).unwrap();
    s.settle(Duration::from_secs(10)).unwrap();
    let log = b.take();
    let last_ready = log.iter().rev().find(|(n, _, _)| *n == "ready").unwrap();
    assert!(!last_ready.1, "ready is active low: steady on is low");
    drop(s);
    assert!(b
        .take()
        .contains(&("ready", true, b.clock.elapsed().as_millis() as u64)));
}

#[test]
fn signal_thread_reports_pin_errors_on_the_next_call() {
    let b = Bench::new();
    let mut s = GpioSignal::spawn(b.pins(), patterns(), b.clock.shared()).unwrap();
    b.broken.store(true, Ordering::SeqCst);
    // The first call only queues the work; the error shows up on a later call.
    let _ = s.decision(&event(Verdict::Deny));
    let err = s.settle(Duration::from_secs(10)).unwrap_err();
    assert!(matches!(err, SignalError::Pin(_)), "{err:?}");
    b.broken.store(false, Ordering::SeqCst);
    s.decision(&event(Verdict::Approve)).unwrap();
    s.settle(Duration::from_secs(10)).unwrap();
}

#[test]
fn spawn_fails_cleanly_when_a_pin_is_broken_from_the_start() {
    let b = Bench::new();
    b.broken.store(true, Ordering::SeqCst);
    let err = GpioSignal::spawn(b.pins(), patterns(), b.clock.shared()).unwrap_err();
    assert!(matches!(err, SignalError::Pin(_)));
}

#[test]
fn decision_does_not_block_on_the_real_clock() {
    let b = Bench::new();
    let mut slow = patterns();
    slow.approve = Pattern::once(vec![Pulse::new(10_000, 0)]);
    let mut s = GpioSignal::spawn(b.pins(), slow, concession_agent::clock::system()).unwrap();
    let started = Instant::now();
    s.decision(&event(Verdict::Approve)).unwrap();
    s.decision(&event(Verdict::Deny)).unwrap();
    s.shutdown().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a 10 s pattern must not hold up the caller or shutdown"
    );
}
