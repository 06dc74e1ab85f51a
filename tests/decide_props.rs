//! Property tests of the money rules: random sequences of scans, POS amounts, decision
//! voids, ticket voids, upstream reflection and outages, applied to a tiny in-memory
//! model that books decisions the way the store does (the same `TicketLedger` /
//! `OfflineUsage` functions), checked against an independent tally of the truth.

mod support;

use std::collections::BTreeMap;

use concession_agent::decide::{
    decide, DecideInput, Decision, Evidence, Mode, OfflineCaps, OfflineUsage, Policy, Reason,
    ScanKind, TicketLedger, Verdict,
};
use concession_agent::ticket::{TicketRecord, TicketStatus, ValueKind, ValueLine};
use proptest::prelude::*;
use support::fixtures::ticket_info;

const TODAY: &str = "2026-11-27";

#[derive(Debug, Clone)]
enum Op {
    Scan {
        ticket: usize,
        requested: Option<u64>,
        from_cache: bool,
    },
    Reflect {
        ticket: usize,
    },
    VoidDecision {
        pick: usize,
    },
    VoidTicket {
        ticket: usize,
    },
    Outage,
    Restore,
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0..2usize, prop::option::of(1..4000u64), any::<bool>()).prop_map(
            |(ticket, requested, from_cache)| Op::Scan { ticket, requested, from_cache }
        ),
        2 => (0..2usize).prop_map(|ticket| Op::Reflect { ticket }),
        2 => any::<usize>().prop_map(|pick| Op::VoidDecision { pick }),
        1 => (0..2usize).prop_map(|ticket| Op::VoidTicket { ticket }),
        2 => Just(Op::Outage),
        1 => Just(Op::Restore),
        1 => (0..1_000_000u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        0..4000u64,
        0..5000u64,
        0..8000u64,
        0..6u64,
        0..8_000_000u64,
        any::<bool>(),
        0..60_000u64,
        prop_oneof![1..3000u64, Just(u64::MAX)],
    )
        .prop_map(
            |(tx, ticket, total, count, age, partial, online_age, max_tx)| Policy {
                offline: OfflineCaps {
                    per_transaction_cents: tx,
                    per_ticket_cents: ticket,
                    total_cents: total,
                    total_count: count,
                    max_cache_age_ms: age,
                },
                offline_partial: partial,
                online_cache_max_age_ms: online_age,
                max_transaction_cents: max_tx,
            },
        )
}

/// Value lines of a ticket: (kind is money?, loaded).
fn lines() -> impl Strategy<Value = Vec<(bool, u64)>> {
    prop::collection::vec(
        prop_oneof![
            (0..6000u64).prop_map(|c| (true, c)),
            (1..2500u64).prop_map(|c| (true, c)),
            (1..3u64).prop_map(|u| (false, u)),
        ],
        0..4,
    )
}

/// The upstream truth and this terminal's books for one ticket.
struct Ticket {
    upstream: TicketRecord,
    /// Redeemed here, not yet applied upstream, per av_id.
    pending: BTreeMap<String, u64>,
    loaded: BTreeMap<String, u64>,
    /// Net approved by this terminal per av_id (voids subtracted).
    approved: BTreeMap<String, u64>,
    cache: Option<TicketRecord>,
    ledger: TicketLedger,
    /// Independent tally of offline money on this ticket in the current window.
    offline_in_window: u64,
}

struct World {
    now: u64,
    mode: Mode,
    window: u64,
    usage: OfflineUsage,
    tally_cents: u64,
    tally_count: u64,
    tickets: Vec<Ticket>,
    /// (ticket, decision, window, voided)
    decisions: Vec<(usize, Decision, u64, bool)>,
}

fn make_ticket(i: usize, spec: &[(bool, u64)]) -> Ticket {
    let barcode = format!("10000000000{i}");
    let value: Vec<ValueLine> = spec
        .iter()
        .enumerate()
        .map(|(j, (is_money, n))| ValueLine {
            av_id: format!("AV{i}{j}"),
            kind: if *is_money {
                ValueKind::Money
            } else {
                ValueKind::Item
            },
            description: format!("line {j}"),
            loaded: *n,
            balance: *n,
            valid_from: None,
            valid_until: None,
        })
        .collect();
    Ticket {
        loaded: value.iter().map(|v| (v.av_id.clone(), v.loaded)).collect(),
        upstream: TicketRecord {
            barcode: barcode.clone(),
            info: Some(ticket_info(&barcode, Some(TODAY))),
            value,
            fetched_at_ms: 0,
        },
        pending: BTreeMap::new(),
        approved: BTreeMap::new(),
        cache: None,
        ledger: TicketLedger::default(),
        offline_in_window: 0,
    }
}

impl World {
    fn scan(
        &mut self,
        policy: &Policy,
        ti: usize,
        requested: Option<u64>,
        from_cache: bool,
    ) -> Result<(), TestCaseError> {
        let now = self.now;
        let t = &mut self.tickets[ti];
        let mut live = None;
        if self.mode == Mode::Online && !(from_cache && t.cache.is_some()) {
            let mut r = t.upstream.clone();
            r.fetched_at_ms = now;
            // The store keeps the newest record.
            t.cache = Some(r.clone());
            live = Some(r);
        }
        let evidence = match (&live, &t.cache) {
            (Some(r), _) => Evidence::Live(r),
            (None, Some(c)) => Evidence::Cached {
                record: c,
                age_ms: now - c.fetched_at_ms,
            },
            (None, None) => Evidence::None,
        };
        let scan = ScanKind::Barcode(t.upstream.barcode.clone());
        let d = decide(&DecideInput {
            scan: &scan,
            requested,
            evidence,
            mode: self.mode,
            ledger: &t.ledger,
            usage: self.usage,
            policy,
            today: TODAY,
            events: &[],
            clock_trusted: true,
        });

        // Shape.
        let sum: u64 = d.money.iter().map(|(_, c)| *c).sum();
        prop_assert_eq!(sum, d.approved_cents);
        if d.verdict == Verdict::Deny {
            prop_assert!(d.money.is_empty() && d.items.is_empty() && d.approved_cents == 0);
            prop_assert!(!d.reason.is_approval());
        } else {
            prop_assert!(d.reason.is_approval());
            prop_assert!(d.approved_cents > 0 || !d.items.is_empty());
            if let Some(req) = requested {
                prop_assert!(d.approved_cents <= req);
                prop_assert!(d.items.is_empty());
                prop_assert_eq!(d.reason == Reason::Partial, d.approved_cents < req);
            }
        }

        // Never more than truly available: upstream balance minus what is still pending.
        for (av, cents) in &d.money {
            let line = t.upstream.value.iter().find(|v| &v.av_id == av);
            let line = line.ok_or_else(|| TestCaseError::fail("unknown av_id"))?;
            prop_assert_eq!(line.kind, ValueKind::Money);
            let truly = line.balance - t.pending.get(av).copied().unwrap_or(0);
            prop_assert!(*cents > 0 && *cents <= truly, "{cents} > {truly} on {av}");
        }
        let mut seen = std::collections::BTreeSet::new();
        for it in &d.items {
            prop_assert!(seen.insert(it.av_id.clone()), "two units of one item");
            let line = t.upstream.value.iter().find(|v| v.av_id == it.av_id);
            let line = line.ok_or_else(|| TestCaseError::fail("unknown av_id"))?;
            prop_assert_eq!(line.kind, ValueKind::Item);
            let truly = line.balance - t.pending.get(&it.av_id).copied().unwrap_or(0);
            prop_assert!(truly >= 1);
        }
        if let Some(info) = &t.upstream.info {
            if info.status != TicketStatus::Active && live.is_some() {
                prop_assert_eq!(d.verdict, Verdict::Deny);
            }
        }

        // The per-transaction maximum, online and offline.
        prop_assert!(d.approved_cents <= policy.max_transaction_cents);

        // Offline caps.
        if d.offline && d.is_approve() {
            let caps = &policy.offline;
            prop_assert!(d.approved_cents <= caps.per_transaction_cents);
            prop_assert!(t.offline_in_window + d.approved_cents <= caps.per_ticket_cents);
            prop_assert!(self.tally_cents + d.approved_cents <= caps.total_cents);
            prop_assert!(self.tally_count < caps.total_count);
            self.tally_cents += d.approved_cents;
            self.tally_count += 1;
            t.offline_in_window += d.approved_cents;
        }
        if !d.offline {
            prop_assert!(live.is_some() || from_cache);
        }

        // Book it the way the store does.
        let evidence_record = live.as_ref().or(t.cache.as_ref()).cloned();
        t.ledger.record_decision(&d, evidence_record.as_ref());
        self.usage.record(&d);
        if d.is_approve() {
            for (av, cents) in &d.money {
                *t.pending.entry(av.clone()).or_default() += cents;
                *t.approved.entry(av.clone()).or_default() += cents;
            }
            for it in &d.items {
                *t.pending.entry(it.av_id.clone()).or_default() += 1;
                *t.approved.entry(it.av_id.clone()).or_default() += 1;
            }
            for (av, total) in &t.approved {
                prop_assert!(
                    total <= &t.loaded[av],
                    "approved {total} of {av} over loaded"
                );
            }
            self.decisions.push((ti, d, self.window, false));
        }
        Ok(())
    }

    fn reflect(&mut self, ti: usize) -> Result<(), TestCaseError> {
        let t = &mut self.tickets[ti];
        for v in &mut t.upstream.value {
            if let Some(p) = t.pending.remove(&v.av_id) {
                prop_assert!(p <= v.balance, "balance would go negative on {}", v.av_id);
                v.balance -= p;
            }
        }
        Ok(())
    }

    fn void_decision(&mut self, pick: usize) {
        let open: Vec<usize> = (0..self.decisions.len())
            .filter(|i| !self.decisions[*i].3)
            .collect();
        if open.is_empty() {
            return;
        }
        let i = open[pick % open.len()];
        let (ti, d, window, _) = self.decisions[i].clone();
        self.decisions[i].3 = true;
        let same = window == self.window;
        let t = &mut self.tickets[ti];
        let back = t.ledger.restore(&d, same);
        if same {
            self.usage.unrecord(&d);
            if d.offline {
                self.tally_cents -= d.approved_cents;
                self.tally_count -= 1;
                t.offline_in_window -= d.approved_cents;
            }
        }
        // What was still pending is simply never uploaded; what upstream already
        // applied is refunded upstream when the void entry is exported.
        let _ = back;
        let mut give_back = |av: &str, n: u64| {
            let p = t.pending.entry(av.to_string()).or_default();
            let cancel = (*p).min(n);
            *p -= cancel;
            if let Some(v) = t.upstream.value.iter_mut().find(|v| v.av_id == av) {
                v.balance += n - cancel;
            }
            if let Some(a) = t.approved.get_mut(av) {
                *a -= n;
            }
        };
        for (av, c) in &d.money {
            give_back(av, *c);
        }
        for it in &d.items {
            give_back(&it.av_id, 1);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn money_rules_hold_over_random_histories(
        policy in policy(),
        specs in prop::collection::vec(lines(), 2),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut w = World {
            now: 1_000_000,
            mode: Mode::Online,
            window: 0,
            usage: OfflineUsage::default(),
            tally_cents: 0,
            tally_count: 0,
            tickets: specs.iter().enumerate().map(|(i, s)| make_ticket(i, s)).collect(),
            decisions: Vec::new(),
        };
        for op in ops {
            match op {
                Op::Scan { ticket, requested, from_cache } => {
                    w.scan(&policy, ticket, requested, from_cache)?
                }
                Op::Reflect { ticket } => w.reflect(ticket)?,
                Op::VoidDecision { pick } => w.void_decision(pick),
                Op::VoidTicket { ticket } => {
                    if let Some(info) = w.tickets[ticket].upstream.info.as_mut() {
                        info.status = TicketStatus::Void;
                    }
                }
                Op::Outage => w.mode = Mode::Offline,
                Op::Restore => {
                    if w.mode == Mode::Offline {
                        // Back online: the store starts a new offline window.
                        w.mode = Mode::Online;
                        w.window += 1;
                        w.usage = OfflineUsage::default();
                        w.tally_cents = 0;
                        w.tally_count = 0;
                        for t in &mut w.tickets {
                            t.ledger.offline_cents = 0;
                            t.offline_in_window = 0;
                        }
                    }
                }
                Op::Advance { ms } => w.now += ms,
            }
        }
        // Flush everything upstream at the end: still never negative.
        for i in 0..w.tickets.len() {
            w.reflect(i)?;
        }
        for t in &w.tickets {
            for v in &t.upstream.value {
                let spent = v.loaded - v.balance;
                let net = t.approved.get(&v.av_id).copied().unwrap_or(0);
                prop_assert!(spent <= v.loaded && net <= v.loaded);
            }
        }
    }
}
