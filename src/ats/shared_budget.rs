//! One budget for the API key across the stands of a venue (issue 13, item 1;
//! docs/venue.md, "One budget for the key").
//!
//! ATS limits a key, not a terminal: dozens of stands on one key must together stay
//! under its per-minute and per-day limits. In venue mode the budget lives in the venue
//! database (`venue/budget.rs`); this part is what the client sees of it, with no
//! database type in sight. [`SharedBudget`] holds the terminal's **allowance**: a few
//! calls claimed in advance from the venue ("a lease"), drawn locally before each send
//! ([`acquire`]), so a scan with calls in hand never waits on the database for a token. The venue worker
//! claims (one short statement) when the allowance runs low, when it nears its expiry,
//! and at once when a draw finds it empty ([`SharedBudget::set_wake`]).
//!
//! - An allowance expires [`LEASE_LIFETIME`] after its claim was sent: a stand that went
//!   quiet does not hoard the key. A renewal reports what was used and keeps what is
//!   left; unused calls go back to the key.
//! - Background calls (prefetch and refresh pages, event listings: a thread marked with
//!   [`mark_thread_background`], or a paced listing) draw only from the `any` pool, which
//!   the venue grants only while more than `cache.budget_reserve_per_minute` calls of the
//!   key's minute are left: the last calls of a minute are kept for scans, venue-wide.
//! - While an event's first pass is being fetched (the venue says so in its grant:
//!   [`Grant::first_pass`]), the scans of the venue get only the reserve and the pass
//!   the rest: this stand's scans leave its `any` pool alone and an idle stand keeps no
//!   scan calls in hand. Claims report which calls were for scans.
//! - A scan's draw that finds nothing asks for a refill (a lookup's two calls, counted
//!   from the refused draws too) and waits for that claim's
//!   answer, at most [`SCAN_WAIT`] (a claim is one short statement: milliseconds). The
//!   draw runs on an ATS lookup worker, never in the scan loop, which waits for the
//!   lookup inside the decision deadline as always. Still nothing: refused
//!   (`RateBudget`), as when the local budget is spent, and the scan is decided from the
//!   cache and the offline rules. (Refusing at once denied a cache miss that came right
//!   after another at a stand with calls to spare: `offline_unknown` while the key had
//!   thousands left.)
//! - When the venue stops answering, the stand keeps to its **static share**: the limits
//!   divided by `venue.stands` (or by the stands the venue last reported, if more). It
//!   first holds off [`HOLD_AFTER_LOSS`] (no ATS call at all), since the other stands
//!   may have spent the key's minute through allowances this stand cannot see. A stand
//!   that has not reached the venue yet in this run uses its share at once.
//! - Every call this stand makes (from an allowance or its share) is reported in its
//!   next claim, so the venue counts the share's calls once it is back.
//!
//! Without `[venue]` no [`SharedBudget`] is attached and the client's own budget
//! (`rate.rs`) is the only one, as before; with it, that budget stays as a second guard.

use std::cell::Cell;
use std::fmt;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::error::{AtsError, RateWindow};
use super::rate::RateBudget;
use crate::clock::SharedClock;

/// How long an allowance may be drawn from after its claim was sent.
pub const LEASE_LIFETIME: Duration = Duration::from_secs(5);
/// After the venue is lost, how long the stand makes no ATS call before keeping to its
/// share: the allowances of the other stands end within [`LEASE_LIFETIME`], and their
/// calls leave the key's minute window a minute later.
pub const HOLD_AFTER_LOSS: Duration = Duration::from_secs(60 + LEASE_LIFETIME.as_secs());
/// No claim answered for this long while the venue was live: it is lost (a hung
/// database answers no claim and reports no error).
pub const STALE_AFTER: Duration = Duration::from_secs(2 * LEASE_LIFETIME.as_secs());
/// An allowance this close to its expiry is renewed.
const RENEW_AHEAD: Duration = Duration::from_secs(1);
/// How often a stand that is not live with the venue tries a claim.
const RETRY_EVERY: Duration = Duration::from_millis(500);
/// What a refused draw suggests as a retry (a refill is asked for at once).
const REFILL_WAIT: Duration = Duration::from_millis(200);
/// How long a background call waits for a refill of an empty allowance; then it is
/// refused, and its caller waits as for any rate limit.
const BACKGROUND_WAIT: Duration = Duration::from_secs(1);
/// How long a scan's lookup waits for the refill of an empty allowance (on its worker
/// thread, inside the decision deadline); then it is refused.
pub const SCAN_WAIT: Duration = Duration::from_millis(250);
/// The retry a refused background call is told (the reserve is reached: the key's
/// minute has to roll, which a renewal each second notices).
const BACKGROUND_RETRY: Duration = Duration::from_secs(1);
/// The largest chunk one claim asks for, per pool.
const MAX_CHUNK: u32 = 64;

/// Who a call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// A scan waits for it (lookups, probes): may take the key's last calls.
    Scan,
    /// Prefetch, refresh, listings: must leave the reserve to scans.
    Background,
}

thread_local! {
    static BACKGROUND: Cell<u32> = const { Cell::new(0) };
}

/// Marks the calling thread as background for good (the refresher, a fetch thread):
/// every ATS call it makes keeps the scans' reserve.
pub fn mark_thread_background() {
    BACKGROUND.with(|b| b.set(b.get().saturating_add(1)));
}

/// Background for as long as the guard lives (a paced listing on any thread).
pub(super) struct BackgroundScope(());

impl BackgroundScope {
    /// Enters the scope.
    pub(super) fn enter() -> BackgroundScope {
        mark_thread_background();
        BackgroundScope(())
    }
}

impl Drop for BackgroundScope {
    fn drop(&mut self) {
        BACKGROUND.with(|b| b.set(b.get().saturating_sub(1)));
    }
}

/// The kind of the calls the current thread makes now.
pub fn current_kind() -> CallKind {
    if BACKGROUND.with(|b| b.get()) > 0 {
        CallKind::Background
    } else {
        CallKind::Scan
    }
}

/// The key's limits and how they are shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharePlan {
    /// `ats.rate_per_minute`: the key's limit.
    pub per_minute: u32,
    /// `ats.rate_per_day`.
    pub per_day: u32,
    /// `venue.stands`: the stands on this key (the static share's divisor).
    pub stands: u32,
    /// `cache.budget_reserve_per_minute`: calls of the key's minute kept for scans.
    pub reserve_per_minute: u32,
}

impl SharePlan {
    /// The day's reserve for scans: the minute's share of the day, at least the minute's
    /// reserve (the rule of the client's pacing).
    pub fn day_reserve(&self) -> u32 {
        let share = (u64::from(self.reserve_per_minute) * u64::from(self.per_day))
            .div_ceil(u64::from(self.per_minute.max(1)));
        u32::try_from(share)
            .unwrap_or(u32::MAX)
            .max(self.reserve_per_minute)
    }

    /// The static share (per minute, per day) among `stands` stands.
    pub fn share(&self, stands: u32) -> (u32, u32) {
        let n = stands.max(1);
        (self.per_minute / n, self.per_day / n)
    }

    /// Scan calls an idle stand keeps in hand: one lookup (two calls) when the key's
    /// free minute is at least four per stand, else none (half a lookup answers no
    /// scan; the first scan after a quiet spell then asks for its calls).
    pub fn scan_hold(&self) -> u32 {
        let free = self.per_minute.saturating_sub(self.reserve_per_minute);
        if free / self.stands.max(1) >= 4 {
            2
        } else {
            0
        }
    }

    /// The largest chunk a claim asks for (per pool).
    pub fn max_chunk(&self) -> u32 {
        let free = self.per_minute.saturating_sub(self.reserve_per_minute);
        (free / (2 * self.stands.max(1))).clamp(2, MAX_CHUNK)
    }
}

/// What one claim asks of the venue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Calls made since the last claim (from allowances and from the share).
    pub used: u32,
    /// Of those, calls for scans (the venue caps scans during a first pass).
    pub used_scan: u32,
    /// Allowance still in hand, kept (the venue keeps counting it until the new expiry).
    pub keep: u32,
    /// Of that, the scan pool.
    pub keep_scan: u32,
    /// New calls wanted for scans.
    pub want_scan: u32,
    /// New calls wanted for anything (background included).
    pub want_any: u32,
    /// When the claim was sent (the client's clock): the allowance ends a lifetime later.
    pub sent: Instant,
    /// This stand's claim number (an answer to an abandoned claim is ignored).
    pub seq: u64,
}

/// What the venue granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// New calls for scans.
    pub scan: u32,
    /// New calls for anything.
    pub any: u32,
    /// The key's calls left this minute, venue-wide, after this grant.
    pub minute_left: u32,
    /// The key's calls left today, venue-wide, after this grant.
    pub day_left: u32,
    /// Stands that held an allowance on this key in the last day.
    pub stands_seen: u32,
    /// An event's first pass is being fetched: the venue caps scans at the reserve,
    /// and this stand's scans leave its `any` pool to the pass.
    pub first_pass: bool,
}

/// Where this stand's calls come from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetMode {
    /// Allowances from the venue database.
    Venue,
    /// The static share (the venue is away, or not reached yet in this run).
    Share,
    /// The venue was just lost: no ATS call until the other stands' allowances are out
    /// of the key's minute.
    Hold,
}

impl fmt::Display for BudgetMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BudgetMode::Venue => "venue",
            BudgetMode::Share => "share",
            BudgetMode::Hold => "hold",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contact {
    /// No claim answered in this run.
    Never,
    /// The last claim was answered at this time.
    Live(Instant),
    /// Lost at this time.
    Lost(Instant),
}

/// Which pool a draw came from (to give it back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drawn {
    /// The scan pool of the allowance.
    Scan,
    /// The `any` pool of the allowance.
    Any,
    /// The static share.
    Share,
}

/// The pure state of the shared budget: time comes in as arguments.
#[derive(Debug, Clone)]
pub struct BudgetState {
    plan: SharePlan,
    scan_left: u32,
    any_left: u32,
    expires: Option<Instant>,
    /// Calls made and not yet reported to the venue.
    unreported: u32,
    /// Of those, calls for scans.
    unreported_scan: u32,
    /// The claim sent and not answered yet: its number, when, and what it reported
    /// (calls, scan calls).
    in_flight: Option<(u64, Instant, u32, u32)>,
    claims: u64,
    last_attempt: Option<Instant>,
    /// Draws since the last claim, to size the next one.
    scans_since_claim: u32,
    /// Scan draws refused since the last claim: each wants a lookup's calls (without
    /// them an idle stand that keeps nothing in hand would ask for nothing).
    refused_scans: u32,
    background_wanted: bool,
    want_refill: bool,
    last_grant_total: u32,
    contact: Contact,
    share: RateBudget,
    stands_seen: u32,
    venue_left: Option<(u32, u32)>,
    /// Claims ended (answered or failed): a waiting background call looks again.
    claims_ended: u64,
    /// The last claim got less than it asked (the key is short): claim again only
    /// after [`RETRY_EVERY`], not after every job.
    short: bool,
    /// The last grant said an event's first pass is under way.
    first_pass: bool,
}

impl BudgetState {
    /// A budget not yet in contact with the venue (its share applies).
    pub fn new(plan: SharePlan) -> BudgetState {
        let (m, d) = plan.share(plan.stands);
        BudgetState {
            plan,
            scan_left: 0,
            any_left: 0,
            expires: None,
            unreported: 0,
            unreported_scan: 0,
            in_flight: None,
            claims: 0,
            last_attempt: None,
            scans_since_claim: 0,
            refused_scans: 0,
            background_wanted: false,
            want_refill: false,
            last_grant_total: 0,
            contact: Contact::Never,
            share: RateBudget::new(m, d),
            stands_seen: 0,
            venue_left: None,
            claims_ended: 0,
            short: false,
            first_pass: false,
        }
    }

    fn expire(&mut self, now: Instant) {
        if let Some((_, sent, used, used_scan)) = self.in_flight {
            // A claim stuck on a hung database (the worker left behind): abandoned, so
            // the next worker claims again; its report is made again.
            if now.saturating_duration_since(sent) > STALE_AFTER {
                self.in_flight = None;
                self.unreported = self.unreported.saturating_add(used);
                self.unreported_scan = self.unreported_scan.saturating_add(used_scan);
                self.lose(now);
            }
        }
        if let Contact::Live(at) = self.contact {
            if now.saturating_duration_since(at) > STALE_AFTER {
                self.lose(now);
            }
        }
        if self.expires.is_some_and(|e| now >= e) {
            self.scan_left = 0;
            self.any_left = 0;
            self.expires = None;
        }
    }

    fn lose(&mut self, now: Instant) {
        if matches!(self.contact, Contact::Live(_)) {
            self.contact = Contact::Lost(now);
        }
    }

    /// Where calls come from at `now`.
    pub fn mode(&mut self, now: Instant) -> BudgetMode {
        self.expire(now);
        match self.contact {
            Contact::Live(_) => BudgetMode::Venue,
            Contact::Never => BudgetMode::Share,
            Contact::Lost(since) if now < since + HOLD_AFTER_LOSS => BudgetMode::Hold,
            Contact::Lost(_) => BudgetMode::Share,
        }
    }

    /// Takes one call of `kind`, or says which window refuses and for how long. A
    /// refusal from the allowance asks for a refill ([`wants_refill`](Self::wants_refill)).
    pub fn take(&mut self, kind: CallKind, now: Instant) -> Result<Drawn, (RateWindow, Duration)> {
        if kind == CallKind::Background {
            self.background_wanted = true;
        }
        let drawn = match self.mode(now) {
            BudgetMode::Venue => self.take_allowance(kind).inspect_err(|_| {
                if kind == CallKind::Scan {
                    self.refused_scans = self.refused_scans.saturating_add(1);
                }
            })?,
            BudgetMode::Hold => {
                let end = match self.contact {
                    Contact::Lost(since) => since + HOLD_AFTER_LOSS,
                    _ => now,
                };
                return Err((RateWindow::Minute, end.saturating_duration_since(now)));
            }
            BudgetMode::Share => self.take_share(kind, now)?,
        };
        if drawn != Drawn::Share {
            // Counted in the share's windows too: after a fallback the stand's own
            // calls of the day are already spent from its share.
            let _ = self.share.try_acquire(now);
        }
        self.unreported = self.unreported.saturating_add(1);
        if kind == CallKind::Scan {
            self.unreported_scan = self.unreported_scan.saturating_add(1);
            self.scans_since_claim = self.scans_since_claim.saturating_add(1);
        }
        Ok(drawn)
    }

    fn take_allowance(&mut self, kind: CallKind) -> Result<Drawn, (RateWindow, Duration)> {
        let drawn = match kind {
            CallKind::Scan if self.scan_left > 0 => {
                self.scan_left -= 1;
                Drawn::Scan
            }
            // During a first pass the `any` pool is the pass's: a scan that finds
            // its own pool empty asks for a refill instead.
            CallKind::Scan if self.first_pass => {
                self.want_refill = true;
                return Err((RateWindow::Minute, REFILL_WAIT));
            }
            _ if self.any_left > 0 => {
                self.any_left -= 1;
                Drawn::Any
            }
            _ => {
                self.want_refill = true;
                let window = match self.venue_left {
                    Some((_, 0)) => RateWindow::Day,
                    _ => RateWindow::Minute,
                };
                return Err((window, REFILL_WAIT));
            }
        };
        let left = self.scan_left + self.any_left;
        if left == 0 || left * 2 <= self.last_grant_total {
            self.want_refill = true;
        }
        Ok(drawn)
    }

    fn take_share(
        &mut self,
        kind: CallKind,
        now: Instant,
    ) -> Result<Drawn, (RateWindow, Duration)> {
        if kind == CallKind::Background {
            let stands = self.stands();
            let (m, d) = self.share.remaining(now);
            let reserve = self.plan.reserve_per_minute.div_ceil(stands);
            let day_reserve = self.plan.day_reserve().div_ceil(stands);
            if d <= day_reserve {
                return Err((RateWindow::Day, Duration::from_secs(60)));
            }
            if m <= reserve {
                return Err((RateWindow::Minute, Duration::from_secs(1)));
            }
        }
        self.share.try_acquire(now)?;
        Ok(Drawn::Share)
    }

    /// Gives back a call of `kind` taken and not sent (the local budget refused it).
    pub fn give_back(&mut self, drawn: Drawn, kind: CallKind) {
        match drawn {
            Drawn::Scan => self.scan_left += 1,
            Drawn::Any => self.any_left += 1,
            // The share's windows cannot forget a call: counted, which errs safe.
            Drawn::Share => return,
        }
        self.unreported = self.unreported.saturating_sub(1);
        if kind == CallKind::Scan {
            self.unreported_scan = self.unreported_scan.saturating_sub(1);
        }
    }

    /// Scan calls an idle stand keeps in hand: [`SharePlan::scan_hold`], none during a
    /// first pass (the reserve is then all the scans of the venue have).
    fn hold(&self) -> u32 {
        if self.first_pass {
            0
        } else {
            self.plan.scan_hold()
        }
    }

    fn stands(&self) -> u32 {
        self.plan.stands.max(self.stands_seen).max(1)
    }

    /// True when a draw found the allowance low or empty since the last claim.
    pub fn wants_refill(&self) -> bool {
        self.want_refill
    }

    /// True when the venue worker should claim now.
    pub fn claim_due(&mut self, now: Instant) -> bool {
        self.expire(now);
        if self.in_flight.is_some() {
            return false;
        }
        let retry_due = self
            .last_attempt
            .is_none_or(|t| now.saturating_duration_since(t) >= RETRY_EVERY);
        match self.contact {
            Contact::Live(_) if self.short && !retry_due => false,
            Contact::Live(_) => {
                self.want_refill
                    || self.scan_left < self.hold()
                    || self.expires.is_none_or(|e| e <= now + RENEW_AHEAD)
            }
            Contact::Never | Contact::Lost(_) => retry_due,
        }
    }

    /// The claim to send now (`None` while one is in flight). Its `used` is taken off
    /// the unreported count; [`claim_failed`](Self::claim_failed) puts it back.
    pub fn begin_claim(&mut self, now: Instant) -> Option<Claim> {
        self.expire(now);
        if self.in_flight.is_some() {
            return None;
        }
        self.claims += 1;
        let max = self.plan.max_chunk();
        // Two calls (a lookup) for every scan drawn or refused since the last claim.
        let scans = self.scans_since_claim.saturating_add(self.refused_scans);
        if self.first_pass && scans == 0 {
            // During a first pass the venue's scans share only the reserve: a stand
            // with no scans gives back what it holds for them.
            self.scan_left = 0;
        }
        let scan_target = scans.saturating_mul(2).clamp(self.hold(), max);
        let any_target = if self.background_wanted { max } else { 0 };
        let claim = Claim {
            used: self.unreported,
            used_scan: self.unreported_scan.min(self.unreported),
            keep: self.scan_left + self.any_left,
            keep_scan: self.scan_left,
            want_scan: scan_target.saturating_sub(self.scan_left),
            want_any: any_target.saturating_sub(self.any_left),
            sent: now,
            seq: self.claims,
        };
        self.unreported = 0;
        self.unreported_scan = 0;
        self.in_flight = Some((claim.seq, now, claim.used, claim.used_scan));
        self.last_attempt = Some(now);
        self.want_refill = false;
        self.scans_since_claim = 0;
        self.refused_scans = 0;
        self.background_wanted = false;
        Some(claim)
    }

    /// The venue answered `claim` with `grant` at `now`.
    pub fn granted(&mut self, claim: &Claim, grant: Grant, now: Instant) {
        self.claims_ended += 1;
        if !self.is_current(claim) {
            return; // abandoned: its calls were reported again, its grant goes unused
        }
        self.in_flight = None;
        self.expire(now);
        self.contact = Contact::Live(now);
        self.short = grant.scan < claim.want_scan || grant.any < claim.want_any;
        self.scan_left += grant.scan;
        self.any_left += grant.any;
        self.last_grant_total = self.scan_left + self.any_left;
        // What was kept counts in the venue until the new expiry, as the new calls do.
        self.expires = Some(claim.sent + LEASE_LIFETIME);
        self.stands_seen = grant.stands_seen;
        self.first_pass = grant.first_pass;
        self.venue_left = Some((grant.minute_left, grant.day_left));
        let (m, d) = self.plan.share(self.stands());
        self.share.set_limits(m, d);
    }

    /// The claim got no answer (the venue is away, or the answer was lost). What it
    /// reported is reported again next time: counted twice at worst, which errs safe.
    pub fn claim_failed(&mut self, claim: &Claim, now: Instant) {
        self.claims_ended += 1;
        if !self.is_current(claim) {
            return;
        }
        self.in_flight = None;
        self.unreported = self.unreported.saturating_add(claim.used);
        self.unreported_scan = self.unreported_scan.saturating_add(claim.used_scan);
        self.lose(now);
    }

    fn is_current(&self, claim: &Claim) -> bool {
        self.in_flight.is_some_and(|(seq, ..)| seq == claim.seq)
    }

    /// The key's calls left venue-wide (minute, day) as of the last answered claim.
    pub fn venue_left(&self) -> Option<(u32, u32)> {
        self.venue_left
    }

    /// The allowance in hand (scan pool, any pool).
    pub fn allowance(&mut self, now: Instant) -> (u32, u32) {
        self.expire(now);
        (self.scan_left, self.any_left)
    }
}

type Wake = Box<dyn Fn() + Send + Sync>;

/// The shared budget as the client and the venue worker hold it (see the module docs).
pub struct SharedBudget {
    state: Mutex<BudgetState>,
    /// Signalled when a claim ends.
    claimed: Condvar,
    clock: SharedClock,
    wake: Mutex<Option<Wake>>,
}

impl fmt::Debug for SharedBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBudget")
            .field("state", &*self.state())
            .finish_non_exhaustive()
    }
}

impl SharedBudget {
    /// A budget for `plan` on `clock` (the client's clock).
    pub fn new(plan: SharePlan, clock: SharedClock) -> SharedBudget {
        SharedBudget {
            state: Mutex::new(BudgetState::new(plan)),
            claimed: Condvar::new(),
            clock,
            wake: Mutex::new(None),
        }
    }

    fn state(&self) -> MutexGuard<'_, BudgetState> {
        // Plain counters: a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What to call when a draw wants a refill now (the venue worker's job queue).
    pub fn set_wake(&self, wake: impl Fn() + Send + Sync + 'static) {
        *self.wake.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(wake));
    }

    /// Takes one call for the current thread's kind (see [`current_kind`]); asks for a
    /// refill when the allowance runs low. A call that finds the allowance empty waits
    /// for the refill it asked for: a scan's up to [`SCAN_WAIT`], a background call's up
    /// to a second.
    pub fn take(&self) -> Result<Drawn, (RateWindow, Duration)> {
        let kind = current_kind();
        let (r, ended) = self.take_once(kind);
        if r.is_ok() || self.mode() != BudgetMode::Venue {
            return r;
        }
        let wait = match kind {
            CallKind::Scan => SCAN_WAIT,
            CallKind::Background => BACKGROUND_WAIT,
        };
        let until = std::time::Instant::now() + wait;
        let mut s = self.state();
        while s.claims_ended == ended {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            s = self
                .claimed
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(s);
        let again = self.take_once(kind).0;
        match kind {
            CallKind::Scan => again,
            CallKind::Background => again.map_err(|(w, _)| (w, BACKGROUND_RETRY)),
        }
    }

    /// One try; also the count of claims ended before it (to wait for the next).
    fn take_once(&self, kind: CallKind) -> (Result<Drawn, (RateWindow, Duration)>, u64) {
        let now = self.clock.now();
        let (r, refill, ended) = {
            let mut s = self.state();
            let r = s.take(kind, now);
            (r, s.wants_refill() && s.claim_due(now), s.claims_ended)
        };
        if refill {
            if let Some(wake) = &*self.wake.lock().unwrap_or_else(|e| e.into_inner()) {
                wake();
            }
        }
        (r, ended)
    }

    /// Gives back a draw of the current thread that was not sent.
    pub fn give_back(&self, drawn: Drawn) {
        self.state().give_back(drawn, current_kind());
    }

    /// True when the venue worker should claim now.
    pub fn claim_due(&self) -> bool {
        self.state().claim_due(self.clock.now())
    }

    /// The claim to send now, if none is in flight.
    pub fn begin_claim(&self) -> Option<Claim> {
        self.state().begin_claim(self.clock.now())
    }

    /// The venue answered `claim`.
    pub fn granted(&self, claim: &Claim, grant: Grant) {
        self.state().granted(claim, grant, self.clock.now());
        self.claimed.notify_all();
    }

    /// The claim got no answer.
    pub fn claim_failed(&self, claim: &Claim) {
        self.state().claim_failed(claim, self.clock.now());
        self.claimed.notify_all();
    }

    /// Where calls come from now.
    pub fn mode(&self) -> BudgetMode {
        self.state().mode(self.clock.now())
    }

    /// The key's calls left venue-wide (minute, day) as of the last answered claim.
    pub fn venue_left(&self) -> Option<(u32, u32)> {
        self.state().venue_left()
    }

    /// The allowance in hand now (scan pool, any pool).
    pub fn allowance(&self) -> (u32, u32) {
        self.state().allowance(self.clock.now())
    }
}

/// One call's tokens, before the send: the venue's (or the static share's) first, then
/// the client's own budget; a call the second refuses gives the first back.
///
/// `local` is locked only after the shared draw: a background draw may wait for a refill,
/// and scans must not queue behind it on the client's own budget.
pub(super) fn acquire(
    shared: Option<&std::sync::Arc<SharedBudget>>,
    local: &Mutex<RateBudget>,
    now: Instant,
) -> Result<(), AtsError> {
    let refused = |(window, retry_after): (RateWindow, Duration)| {
        log::debug!("ats call refused locally: {window} budget, retry in {retry_after:?}");
        AtsError::RateBudget {
            window,
            retry_after,
        }
    };
    let drawn = shared.map(|s| s.take()).transpose().map_err(refused)?;
    // Plain counters: a poisoned lock is still usable.
    let mut local = local.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = local.try_acquire(now) {
        if let (Some(s), Some(d)) = (shared, drawn) {
            s.give_back(d);
        }
        return Err(refused(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
