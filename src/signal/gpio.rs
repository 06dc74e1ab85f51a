//! Lights, buzzer and relay on GPIO lines.
//!
//! Written against [`embedded_hal::digital::OutputPin`], so the same code drives real
//! gpio character-device lines (built by `crate::board`) and fake pins in tests.
//!
//! - Polarity is data: an [`OutputLine`] knows whether its line is active low, and
//!   [`Polarity::level`] is the one place where "on" becomes a pin level.
//! - Timing never blocks the agent loop: [`GpioSignal`] hands commands to a player
//!   thread over a crossbeam channel. The thread drives a [`GpioPlayer`], a plain state
//!   machine with no thread or clock of its own (`command`, `next_due`, `run_due`), so
//!   tests can step it with a `ManualClock` and assert every edge.
//! - The thread waits with [`crate::clock::Clock::sleep`] in short slices, checking for
//!   new commands between slices: with a manual clock a decision pattern plays out
//!   instantly. (Offline blinking never ends on its own, so tests of blinking step a
//!   [`GpioPlayer`] directly instead of the thread.)
//! - A new decision preempts a running pattern: every decision output (approve, deny,
//!   buzzer, relay) is switched off first, then the new pattern starts.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use embedded_hal::digital::{OutputPin, PinState};
use serde::Deserialize;

use crate::clock::SharedClock;
use crate::decide::Verdict;
use crate::signal::{AgentStatus, DecisionEvent, Signal, SignalError};
use crate::sync::lock;

/// The longest single clock sleep of the player thread: the worst-case delay before a
/// new command preempts a running pattern on the real clock.
pub const MAX_SLICE: Duration = Duration::from_millis(20);

/// How a line maps "on" to a pin level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Polarity {
    /// On is high (the default).
    #[default]
    ActiveHigh,
    /// On is low (LED to 3V3 through the pin, most relay boards).
    ActiveLow,
}

impl Polarity {
    /// From the board profile's `active_low` flag.
    pub fn from_active_low(active_low: bool) -> Self {
        if active_low {
            Polarity::ActiveLow
        } else {
            Polarity::ActiveHigh
        }
    }

    /// The pin level that makes the output `on` (or off). The only polarity logic.
    pub fn level(self, on: bool) -> PinState {
        match (self, on) {
            (Polarity::ActiveHigh, true) | (Polarity::ActiveLow, false) => PinState::High,
            (Polarity::ActiveHigh, false) | (Polarity::ActiveLow, true) => PinState::Low,
        }
    }
}

/// What an output line is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Green light: value approved.
    Approve,
    /// Red light: denied.
    Deny,
    /// Ready light: steady when online, blinking while offline, off when stopping.
    Ready,
    /// Buzzer.
    Buzzer,
    /// Relay (cash drawer, dispenser), pulsed on approve.
    Relay,
}

impl Role {
    /// Every role, in the order edges are scheduled at equal times.
    pub const ALL: [Role; 5] = [
        Role::Approve,
        Role::Deny,
        Role::Ready,
        Role::Buzzer,
        Role::Relay,
    ];

    /// Lower-case name, as in the board profile.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Approve => "approve",
            Role::Deny => "deny",
            Role::Ready => "ready",
            Role::Buzzer => "buzzer",
            Role::Relay => "relay",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One output pin with its polarity.
#[derive(Debug)]
pub struct OutputLine<P> {
    /// The pin.
    pub pin: P,
    /// Which level is "on".
    pub polarity: Polarity,
}

impl<P: OutputPin> OutputLine<P> {
    /// A line; `active_low` straight from the board profile.
    pub fn new(pin: P, active_low: bool) -> Self {
        OutputLine {
            pin,
            polarity: Polarity::from_active_low(active_low),
        }
    }

    fn set(&mut self, on: bool) -> Result<(), P::Error> {
        self.pin.set_state(self.polarity.level(on))
    }
}

/// The output lines of a board; any may be absent.
#[derive(Debug)]
pub struct GpioPins<P> {
    /// Green light.
    pub approve: Option<OutputLine<P>>,
    /// Red light.
    pub deny: Option<OutputLine<P>>,
    /// Ready/offline light.
    pub ready: Option<OutputLine<P>>,
    /// Buzzer.
    pub buzzer: Option<OutputLine<P>>,
    /// Relay.
    pub relay: Option<OutputLine<P>>,
}

impl<P> Default for GpioPins<P> {
    fn default() -> Self {
        GpioPins {
            approve: None,
            deny: None,
            ready: None,
            buzzer: None,
            relay: None,
        }
    }
}

/// One on/off pulse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pulse {
    /// Time on, milliseconds.
    pub on_ms: u32,
    /// Time off after it, milliseconds (the gap before the next pulse).
    #[serde(default)]
    pub off_ms: u32,
}

impl Pulse {
    /// A pulse.
    pub const fn new(on_ms: u32, off_ms: u32) -> Self {
        Pulse { on_ms, off_ms }
    }
}

/// Pulses played in order, `repeat` times.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pattern {
    /// The pulses.
    pub pulses: Vec<Pulse>,
    /// How many times the pulse list plays (at least 1).
    #[serde(default = "one")]
    pub repeat: u32,
}

fn one() -> u32 {
    1
}

impl Pattern {
    /// A pattern of `pulses` played once.
    pub fn once(pulses: Vec<Pulse>) -> Self {
        Pattern { pulses, repeat: 1 }
    }

    /// No output at all.
    pub fn silent() -> Self {
        Pattern::once(Vec::new())
    }

    /// Total time from the first edge to the end of the last gap, milliseconds.
    pub fn total_ms(&self) -> u64 {
        let once: u64 = self
            .pulses
            .iter()
            .map(|p| u64::from(p.on_ms) + u64::from(p.off_ms))
            .sum();
        once * u64::from(self.repeat.max(1))
    }

    /// `(offset_ms, on)` edges of this pattern, in order.
    fn edges(&self) -> Vec<(u64, bool)> {
        let mut out = Vec::new();
        let mut t = 0u64;
        for _ in 0..self.repeat.max(1) {
            for p in &self.pulses {
                if p.on_ms == 0 {
                    t += u64::from(p.off_ms);
                    continue;
                }
                out.push((t, true));
                t += u64::from(p.on_ms);
                out.push((t, false));
                t += u64::from(p.off_ms);
            }
        }
        out
    }
}

/// Every timing of the GPIO outputs (the `[gpio.patterns]` table of a board profile).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpioPatterns {
    /// Approve light on approve.
    pub approve: Pattern,
    /// Deny light on deny.
    pub deny: Pattern,
    /// Ready light while offline: on for `on_ms`, off for `off_ms`, repeating.
    pub offline_blink: Pulse,
    /// Buzzer on approve.
    pub buzzer_approve: Pattern,
    /// Buzzer on deny.
    pub buzzer_deny: Pattern,
    /// Relay closed this long on approve (0: the relay is not pulsed).
    pub relay_pulse_ms: u32,
}

impl Default for GpioPatterns {
    fn default() -> Self {
        GpioPatterns {
            approve: Pattern::once(vec![Pulse::new(1500, 0)]),
            deny: Pattern {
                pulses: vec![Pulse::new(200, 150)],
                repeat: 3,
            },
            offline_blink: Pulse::new(500, 500),
            buzzer_approve: Pattern::once(vec![Pulse::new(80, 0)]),
            buzzer_deny: Pattern::once(vec![Pulse::new(400, 0)]),
            relay_pulse_ms: 300,
        }
    }
}

/// A command for the player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayerCommand {
    /// Play the approve or deny pattern (preempting a running one).
    Decision(Verdict),
    /// Show a new agent status on the ready light.
    Status(AgentStatus),
    /// Everything off, stop playing.
    AllOff,
}

#[derive(Debug, Clone, Copy)]
struct Edge {
    at: Instant,
    role: Role,
    on: bool,
}

#[derive(Debug, Clone, Copy)]
struct Blink {
    next: Instant,
    on: bool,
}

/// The pattern player: which line goes to which level when. No thread, no clock.
///
/// Feed it commands with [`GpioPlayer::command`], ask when it next needs to act with
/// [`GpioPlayer::next_due`], and let it act with [`GpioPlayer::run_due`]. A pin error
/// does not stop the player: the other edges still run and the first error is returned.
#[derive(Debug)]
pub struct GpioPlayer<P> {
    lines: [Option<OutputLine<P>>; 5],
    /// Last level written per role; `None` when unknown (never written, or a write failed).
    state: [Option<bool>; 5],
    patterns: GpioPatterns,
    edges: Vec<Edge>,
    next_edge: usize,
    blink: Option<Blink>,
}

impl<P: OutputPin> GpioPlayer<P> {
    /// A player over `pins`. Nothing is written until [`GpioPlayer::init`] or a command.
    pub fn new(pins: GpioPins<P>, patterns: GpioPatterns) -> Self {
        GpioPlayer {
            lines: [pins.approve, pins.deny, pins.ready, pins.buzzer, pins.relay],
            state: [None; 5],
            patterns,
            edges: Vec::new(),
            next_edge: 0,
            blink: None,
        }
    }

    /// Switches every line off (a defined start state).
    pub fn init(&mut self) -> Result<(), SignalError> {
        self.all_off()
    }

    /// Applies a command at time `now`; edges due at `now` are written at once.
    pub fn command(&mut self, cmd: PlayerCommand, now: Instant) -> Result<(), SignalError> {
        let mut first = Ok(());
        match cmd {
            PlayerCommand::Decision(verdict) => {
                keep_first(&mut first, self.preempt());
                self.schedule(verdict, now);
            }
            PlayerCommand::Status(status) => {
                self.blink = None;
                let ready_on = match status {
                    AgentStatus::Ready => true,
                    // Low disk blinks like offline: the stand needs someone.
                    AgentStatus::Offline | AgentStatus::LowDisk => {
                        self.blink = Some(Blink {
                            next: now + ms(self.patterns.offline_blink.on_ms),
                            on: false,
                        });
                        true
                    }
                    AgentStatus::Stopping => false,
                };
                keep_first(&mut first, self.write(Role::Ready, ready_on, false));
            }
            PlayerCommand::AllOff => {
                self.edges.clear();
                self.next_edge = 0;
                self.blink = None;
                keep_first(&mut first, self.all_off());
            }
        }
        keep_first(&mut first, self.run_due(now));
        first
    }

    /// When the player next needs to write a line, if ever.
    pub fn next_due(&self) -> Option<Instant> {
        let edge = self.edges.get(self.next_edge).map(|e| e.at);
        let blink = self.blink.map(|b| b.next);
        match (edge, blink) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True while a decision pattern still has edges to play.
    pub fn is_playing(&self) -> bool {
        self.next_edge < self.edges.len()
    }

    /// Writes every edge due at or before `now`, in time order.
    pub fn run_due(&mut self, now: Instant) -> Result<(), SignalError> {
        let mut first = Ok(());
        loop {
            let edge = self
                .edges
                .get(self.next_edge)
                .copied()
                .filter(|e| e.at <= now);
            let blink = self.blink.filter(|b| b.next <= now);
            let take_edge = match (edge, blink) {
                (Some(e), Some(b)) => e.at <= b.next,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if let (true, Some(e)) = (take_edge, edge) {
                self.next_edge += 1;
                keep_first(&mut first, self.write(e.role, e.on, false));
            } else if let Some(b) = blink {
                let p = self.patterns.offline_blink;
                let hold = if b.on { p.on_ms } else { p.off_ms };
                self.blink = Some(Blink {
                    next: b.next + ms(hold.max(1)),
                    on: !b.on,
                });
                keep_first(&mut first, self.write(Role::Ready, b.on, false));
            }
        }
        if !self.is_playing() {
            self.edges.clear();
            self.next_edge = 0;
        }
        first
    }

    /// Gives the pins back (after switching nothing).
    pub fn into_pins(self) -> GpioPins<P> {
        let [approve, deny, ready, buzzer, relay] = self.lines;
        GpioPins {
            approve,
            deny,
            ready,
            buzzer,
            relay,
        }
    }

    fn preempt(&mut self) -> Result<(), SignalError> {
        self.edges.clear();
        self.next_edge = 0;
        let mut first = Ok(());
        for role in [Role::Approve, Role::Deny, Role::Buzzer, Role::Relay] {
            keep_first(&mut first, self.write(role, false, false));
        }
        first
    }

    fn all_off(&mut self) -> Result<(), SignalError> {
        let mut first = Ok(());
        for role in Role::ALL {
            keep_first(&mut first, self.write(role, false, true));
        }
        first
    }

    fn schedule(&mut self, verdict: Verdict, now: Instant) {
        let p = &self.patterns;
        let mut plan: Vec<(Role, Vec<(u64, bool)>)> = match verdict {
            Verdict::Approve => vec![
                (Role::Approve, p.approve.edges()),
                (Role::Buzzer, p.buzzer_approve.edges()),
            ],
            Verdict::Deny => vec![
                (Role::Deny, p.deny.edges()),
                (Role::Buzzer, p.buzzer_deny.edges()),
            ],
        };
        if verdict == Verdict::Approve && p.relay_pulse_ms > 0 {
            plan.push((
                Role::Relay,
                Pattern::once(vec![Pulse::new(p.relay_pulse_ms, 0)]).edges(),
            ));
        }
        let mut edges: Vec<Edge> = plan
            .into_iter()
            .filter(|(role, _)| self.lines[role.index()].is_some())
            .flat_map(|(role, es)| {
                es.into_iter().map(move |(off, on)| Edge {
                    at: now + Duration::from_millis(off),
                    role,
                    on,
                })
            })
            .collect();
        // Stable: at equal times, a line's own order and the role order are kept.
        edges.sort_by_key(|e| e.at);
        self.edges = edges;
        self.next_edge = 0;
    }

    /// Writes a line unless it is known to be at that level already (or `force`).
    fn write(&mut self, role: Role, on: bool, force: bool) -> Result<(), SignalError> {
        let i = role.index();
        let Some(line) = self.lines[i].as_mut() else {
            return Ok(());
        };
        if !force && self.state[i] == Some(on) {
            return Ok(());
        }
        match line.set(on) {
            Ok(()) => {
                self.state[i] = Some(on);
                Ok(())
            }
            Err(e) => {
                self.state[i] = None;
                let level = if on { "on" } else { "off" };
                Err(SignalError::Pin(format!(
                    "{role} line, turning {level}: {e:?}"
                )))
            }
        }
    }
}

fn keep_first(first: &mut Result<(), SignalError>, r: Result<(), SignalError>) {
    if first.is_ok() {
        if let Err(e) = r {
            *first = Err(e);
        }
    }
}

fn ms(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

enum Msg {
    Play(PlayerCommand),
    /// Answer once no decision pattern is playing.
    Settle(Sender<()>),
    Stop,
}

/// GPIO outputs as a [`Signal`]: a handle to the player thread.
///
/// Calls never block on timing. A pin error seen by the thread is returned by the next
/// call (`decision`, `status`, [`GpioSignal::settle`]) as [`SignalError::Pin`].
/// Dropping the handle switches every line off and joins the thread. The pins (of type
/// `P`) live on the player thread; the handle itself is `Send` and `Sync`.
pub struct GpioSignal<P> {
    tx: Sender<Msg>,
    error: Arc<Mutex<Option<SignalError>>>,
    thread: Option<JoinHandle<()>>,
    _pins: PhantomData<fn() -> P>,
}

impl<P> fmt::Debug for GpioSignal<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpioSignal").finish_non_exhaustive()
    }
}

impl<P: OutputPin + Send + 'static> GpioSignal<P> {
    /// Switches every line off, then starts the player thread.
    ///
    /// Fails (without starting anything) when the initial write fails.
    pub fn spawn(
        pins: GpioPins<P>,
        patterns: GpioPatterns,
        clock: SharedClock,
    ) -> Result<GpioSignal<P>, SignalError> {
        let mut player = GpioPlayer::new(pins, patterns);
        player.init()?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let error = Arc::new(Mutex::new(None));
        let thread_error = Arc::clone(&error);
        let thread = std::thread::Builder::new()
            .name("gpio-player".into())
            .spawn(move || run_player(player, rx, clock, thread_error))?;
        Ok(GpioSignal {
            tx,
            error,
            thread: Some(thread),
            _pins: PhantomData,
        })
    }
}

impl<P> GpioSignal<P> {
    /// Sends a raw command to the player.
    pub fn send(&mut self, cmd: PlayerCommand) -> Result<(), SignalError> {
        self.tx
            .send(Msg::Play(cmd))
            .map_err(|_| SignalError::Pin("gpio player thread stopped".into()))?;
        self.take_error()
    }

    /// Waits (up to `timeout` of real time) until no decision pattern is playing, then
    /// returns any pin error seen. For shutdown and tests.
    pub fn settle(&mut self, timeout: Duration) -> Result<(), SignalError> {
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        self.tx
            .send(Msg::Settle(done_tx))
            .map_err(|_| SignalError::Pin("gpio player thread stopped".into()))?;
        if done_rx.recv_timeout(timeout).is_err() {
            return Err(SignalError::Pin(
                "gpio player did not settle in time".into(),
            ));
        }
        self.take_error()
    }

    /// Switches every line off and stops the thread.
    pub fn shutdown(mut self) -> Result<(), SignalError> {
        self.stop();
        self.take_error()
    }

    fn stop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn take_error(&self) -> Result<(), SignalError> {
        match lock(&self.error).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl<P> Drop for GpioSignal<P> {
    fn drop(&mut self) {
        self.stop();
    }
}

impl<P: OutputPin + Send + 'static> Signal for GpioSignal<P> {
    fn decision(&mut self, event: &DecisionEvent) -> Result<(), SignalError> {
        self.send(PlayerCommand::Decision(event.decision))
    }

    fn status(&mut self, status: AgentStatus) -> Result<(), SignalError> {
        self.send(PlayerCommand::Status(status))
    }
}

fn run_player<P: OutputPin>(
    mut player: GpioPlayer<P>,
    rx: Receiver<Msg>,
    clock: SharedClock,
    error: Arc<Mutex<Option<SignalError>>>,
) {
    let report = |r: Result<(), SignalError>| {
        if let Err(e) = r {
            log::warn!("{e}");
            let mut slot = lock(&error);
            if slot.is_none() {
                *slot = Some(e);
            }
        }
    };
    let mut settles: Vec<Sender<()>> = Vec::new();
    loop {
        // Commands first: a new decision preempts whatever is playing.
        let msg = match player.next_due() {
            None => {
                for s in settles.drain(..) {
                    let _ = s.send(());
                }
                rx.recv().ok()
            }
            Some(_) => match rx.try_recv() {
                Ok(m) => Some(m),
                Err(crossbeam_channel::TryRecvError::Empty) => None,
                Err(crossbeam_channel::TryRecvError::Disconnected) => break,
            },
        };
        match msg {
            Some(Msg::Play(cmd)) => {
                report(player.command(cmd, clock.now()));
                continue;
            }
            Some(Msg::Settle(s)) => {
                if player.is_playing() {
                    settles.push(s);
                } else {
                    let _ = s.send(());
                }
                continue;
            }
            Some(Msg::Stop) => break,
            None if player.next_due().is_none() => break, // channel closed while idle
            None => {}
        }
        if !player.is_playing() {
            for s in settles.drain(..) {
                let _ = s.send(());
            }
        }
        if let Some(due) = player.next_due() {
            let now = clock.now();
            if due <= now {
                report(player.run_due(now));
            } else {
                clock.sleep((due - now).min(MAX_SLICE));
            }
        }
    }
    report(player.command(PlayerCommand::AllOff, clock.now()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polarity_maps_on_to_levels() {
        assert_eq!(Polarity::ActiveHigh.level(true), PinState::High);
        assert_eq!(Polarity::ActiveHigh.level(false), PinState::Low);
        assert_eq!(Polarity::ActiveLow.level(true), PinState::Low);
        assert_eq!(Polarity::ActiveLow.level(false), PinState::High);
    }

    #[test]
    fn pattern_edges_skip_zero_pulses_and_repeat() {
        let p = Pattern {
            pulses: vec![Pulse::new(100, 50), Pulse::new(0, 25)],
            repeat: 2,
        };
        assert_eq!(
            p.edges(),
            vec![(0, true), (100, false), (175, true), (275, false)]
        );
        assert_eq!(p.total_ms(), 350);
    }
}
