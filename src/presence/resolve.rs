//! From a Presence answer to a seat, or to the deny reason of its status: pure rules.
//!
//! 1. `result.status` other than `OKAY` → the deny of that status, one per status
//!    ([`status_deny`]); a status this version does not know → `safetix_unknown_status`.
//!    `ALREADY_ENTERED` is the exception a stand behind the gates needs: there every
//!    fan's ticket has been scanned in, so with `presence.already_entered = "accept"`
//!    (the default) an answer naming a seat is judged as `OKAY`; one naming none is
//!    still denied `safetix_already_entered`.
//! 2. `OKAY` with no readable ticket → `safetix_no_seat`; tickets naming different
//!    seats → `safetix_ambiguous` (a token is one ticket; never pick one of several).
//! 3. Otherwise the seat and the Archtics event (`eventId` mapped through
//!    `presence.event_ids`, else taken as the name) form the [`SeatKey`] the store's
//!    seat index is read with (`store::seats`: the record found must still be at that
//!    seat), else `safetix_seat_unknown`.
//!
//! Offline (Presence out, a cached token mapping) the offline caps apply, with per
//! transaction and per ticket lowered to `presence.offline_cap_cents` ([`offline_policy`]).

use std::fmt;

use crate::decide::{Policy, Reason};
use crate::money::Cents;

use super::config::{EnteredRule, PresenceConfig};
use super::wire::{Place, Status, Validation};

/// Why a SafeTix scan is denied before `decide` sees a barcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SafetixDeny {
    /// `NOT_FOUND`: Presence knows no such ticket.
    NotFound,
    /// `INVALID_TICKET`: void, replaced or forged.
    Invalid,
    /// `ALREADY_ENTERED`.
    AlreadyEntered,
    /// `EXIT`: scanned out.
    Exited,
    /// `INTERNAL_SCAN`.
    InternalScan,
    /// `BAD_REQUEST`: Presence refused the request (a device or venue setting).
    BadRequest,
    /// `START_RESTRICTION`.
    StartRestriction,
    /// `END_RESTRICTION`.
    EndRestriction,
    /// `SECTION_RESTRICTION`.
    SectionRestriction,
    /// `EVENT_RESTRICTION`.
    EventRestriction,
    /// `TOO_EARLY`.
    TooEarly,
    /// `TOO_LATE`.
    TooLate,
    /// A status not in the wire page.
    UnknownStatus,
    /// `OKAY` without a readable `place`.
    NoSeat,
    /// `OKAY` naming more than one seat.
    Ambiguous,
    /// The seat is not in the seat index (its barcode was never verified here).
    SeatUnknown,
}

impl SafetixDeny {
    /// Every deny, for tables and tests.
    pub const ALL: [SafetixDeny; 16] = [
        SafetixDeny::NotFound,
        SafetixDeny::Invalid,
        SafetixDeny::AlreadyEntered,
        SafetixDeny::Exited,
        SafetixDeny::InternalScan,
        SafetixDeny::BadRequest,
        SafetixDeny::StartRestriction,
        SafetixDeny::EndRestriction,
        SafetixDeny::SectionRestriction,
        SafetixDeny::EventRestriction,
        SafetixDeny::TooEarly,
        SafetixDeny::TooLate,
        SafetixDeny::UnknownStatus,
        SafetixDeny::NoSeat,
        SafetixDeny::Ambiguous,
        SafetixDeny::SeatUnknown,
    ];

    /// The reason's name on the wire and in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            SafetixDeny::NotFound => "safetix_not_found",
            SafetixDeny::Invalid => "safetix_invalid",
            SafetixDeny::AlreadyEntered => "safetix_already_entered",
            SafetixDeny::Exited => "safetix_exited",
            SafetixDeny::InternalScan => "safetix_internal_scan",
            SafetixDeny::BadRequest => "safetix_bad_request",
            SafetixDeny::StartRestriction => "safetix_start_restriction",
            SafetixDeny::EndRestriction => "safetix_end_restriction",
            SafetixDeny::SectionRestriction => "safetix_section_restriction",
            SafetixDeny::EventRestriction => "safetix_event_restriction",
            SafetixDeny::TooEarly => "safetix_too_early",
            SafetixDeny::TooLate => "safetix_too_late",
            SafetixDeny::UnknownStatus => "safetix_unknown_status",
            SafetixDeny::NoSeat => "safetix_no_seat",
            SafetixDeny::Ambiguous => "safetix_ambiguous",
            SafetixDeny::SeatUnknown => "safetix_seat_unknown",
        }
    }
}

impl fmt::Display for SafetixDeny {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<SafetixDeny> for Reason {
    fn from(d: SafetixDeny) -> Reason {
        match d {
            SafetixDeny::NotFound => Reason::SafetixNotFound,
            SafetixDeny::Invalid => Reason::SafetixInvalid,
            SafetixDeny::AlreadyEntered => Reason::SafetixAlreadyEntered,
            SafetixDeny::Exited => Reason::SafetixExited,
            SafetixDeny::InternalScan => Reason::SafetixInternalScan,
            SafetixDeny::BadRequest => Reason::SafetixBadRequest,
            SafetixDeny::StartRestriction => Reason::SafetixStartRestriction,
            SafetixDeny::EndRestriction => Reason::SafetixEndRestriction,
            SafetixDeny::SectionRestriction => Reason::SafetixSectionRestriction,
            SafetixDeny::EventRestriction => Reason::SafetixEventRestriction,
            SafetixDeny::TooEarly => Reason::SafetixTooEarly,
            SafetixDeny::TooLate => Reason::SafetixTooLate,
            SafetixDeny::UnknownStatus => Reason::SafetixUnknownStatus,
            SafetixDeny::NoSeat => Reason::SafetixNoSeat,
            SafetixDeny::Ambiguous => Reason::SafetixAmbiguous,
            SafetixDeny::SeatUnknown => Reason::SafetixSeatUnknown,
        }
    }
}

/// The deny of a status; `None` for `OKAY`.
pub fn status_deny(status: &Status) -> Option<SafetixDeny> {
    Some(match status {
        Status::Okay => return None,
        Status::Exit => SafetixDeny::Exited,
        Status::InternalScan => SafetixDeny::InternalScan,
        Status::NotFound => SafetixDeny::NotFound,
        Status::BadRequest => SafetixDeny::BadRequest,
        Status::AlreadyEntered => SafetixDeny::AlreadyEntered,
        Status::InvalidTicket => SafetixDeny::Invalid,
        Status::StartRestriction => SafetixDeny::StartRestriction,
        Status::EndRestriction => SafetixDeny::EndRestriction,
        Status::SectionRestriction => SafetixDeny::SectionRestriction,
        Status::EventRestriction => SafetixDeny::EventRestriction,
        Status::TooEarly => SafetixDeny::TooEarly,
        Status::TooLate => SafetixDeny::TooLate,
        Status::Other(_) => SafetixDeny::UnknownStatus,
    })
}

/// A seat of an event: what the seat index is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeatKey {
    /// The Archtics event name.
    pub event: String,
    /// Section, row, seat.
    pub place: Place,
}

impl SeatKey {
    /// True when both name the same seat (names compared without case, as ATS
    /// compares event names; sections like `101` and `101 ` are one).
    pub fn same(&self, other: &SeatKey) -> bool {
        let eq = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b.trim());
        eq(&self.event, &other.event)
            && eq(&self.place.section, &other.place.section)
            && eq(&self.place.row, &other.place.row)
            && eq(&self.place.seat, &other.place.seat)
    }
}

/// Judges a Presence answer: the seat to look up, or the deny.
pub fn judge(v: &Validation, cfg: &PresenceConfig) -> Result<SeatKey, SafetixDeny> {
    // Behind the gates `ALREADY_ENTERED` is every fan's state: resolve its seat. An
    // answer naming no seat cannot be resolved and keeps its own reason.
    let entered_ok = v.status == Status::AlreadyEntered
        && cfg.already_entered == EnteredRule::Accept
        && v.tickets.iter().any(|t| t.place.is_some());
    if let Some(deny) = status_deny(&v.status).filter(|_| !entered_ok) {
        return Err(deny);
    }
    let mut seats = v.tickets.iter().filter_map(|t| {
        Some(SeatKey {
            event: cfg.archtics_event(&t.event_id),
            place: t.place.clone()?,
        })
    });
    let Some(first) = seats.next() else {
        return Err(SafetixDeny::NoSeat);
    };
    if seats.any(|s| !s.same(&first)) {
        return Err(SafetixDeny::Ambiguous);
    }
    Ok(first)
}

/// The policy for an offline decision from a cached token mapping: the offline caps
/// with per transaction and per ticket at most `cap`. A cap of 0 allows no offline
/// approval at all, items included (`total_count` 0: `offline_limit`).
pub fn offline_policy(policy: &Policy, cap: Cents) -> Policy {
    let mut p = *policy;
    p.offline.per_transaction_cents = p.offline.per_transaction_cents.min(cap);
    p.offline.per_ticket_cents = p.offline.per_ticket_cents.min(cap);
    if cap == 0 {
        p.offline.total_count = 0;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::wire::TicketRef;

    fn okay(tickets: &[(&str, &str)]) -> Validation {
        Validation {
            status: Status::Okay,
            tickets: tickets
                .iter()
                .map(|(p, e)| TicketRef {
                    place: Place::parse(p),
                    event_id: e.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn every_status_but_okay_has_a_deny_of_its_own() {
        let mut seen = std::collections::HashSet::new();
        for s in Status::KNOWN {
            match status_deny(&s) {
                None => assert_eq!(s, Status::Okay),
                Some(d) => assert!(seen.insert(d), "{s} shares {d}"),
            }
        }
        assert_eq!(seen.len(), Status::KNOWN.len() - 1);
        assert_eq!(
            status_deny(&Status::Other("NEW".into())),
            Some(SafetixDeny::UnknownStatus)
        );
        let names: std::collections::HashSet<_> =
            SafetixDeny::ALL.iter().map(|d| d.as_str()).collect();
        assert_eq!(names.len(), SafetixDeny::ALL.len());
        assert!(names.iter().all(|n| n.starts_with("safetix_")));
        // Each is a journal reason of the same name.
        for d in SafetixDeny::ALL {
            assert_eq!(Reason::from(d).as_str(), d.as_str());
            assert_eq!(d.as_str().parse::<Reason>(), Ok(Reason::from(d)));
        }
    }

    #[test]
    fn already_entered_resolves_its_seat_behind_the_gates_and_is_denied_when_told() {
        let mut v = okay(&[("101:A:1", "EVENT01")]);
        v.status = Status::AlreadyEntered;
        let mut cfg = PresenceConfig::default();
        assert_eq!(cfg.already_entered, EnteredRule::Accept);
        assert_eq!(judge(&v, &cfg).unwrap().place.to_string(), "101:A:1");
        // Accepted but naming no seat: nothing to resolve, and the status says why.
        let seatless = Validation {
            status: Status::AlreadyEntered,
            tickets: vec![],
        };
        assert_eq!(judge(&seatless, &cfg), Err(SafetixDeny::AlreadyEntered));
        cfg.already_entered = EnteredRule::Deny;
        assert_eq!(judge(&v, &cfg), Err(SafetixDeny::AlreadyEntered));
        assert_eq!(judge(&seatless, &cfg), Err(SafetixDeny::AlreadyEntered));
        // The other statuses are denied whatever the rule.
        let mut exit = okay(&[("101:A:1", "EVENT01")]);
        exit.status = Status::Exit;
        cfg.already_entered = EnteredRule::Accept;
        assert_eq!(judge(&exit, &cfg), Err(SafetixDeny::Exited));
    }

    #[test]
    fn okay_gives_the_seat_with_the_mapped_event() {
        let mut cfg = PresenceConfig::default();
        cfg.event_ids.insert("3F00".into(), "EVENT01".into());
        let k = judge(&okay(&[("101:A:1", "3F00")]), &cfg).unwrap();
        assert_eq!(k.event, "EVENT01");
        assert_eq!(k.place.to_string(), "101:A:1");
        // The same seat twice is one seat.
        assert!(judge(&okay(&[("101:A:1", "3F00"), ("101:a:1", "3f00")]), &cfg).is_ok());
    }

    #[test]
    fn okay_without_one_clear_seat_is_denied() {
        let cfg = PresenceConfig::default();
        assert_eq!(judge(&okay(&[]), &cfg), Err(SafetixDeny::NoSeat));
        assert_eq!(
            judge(&okay(&[("101-A-1", "E")]), &cfg),
            Err(SafetixDeny::NoSeat)
        );
        assert_eq!(
            judge(&okay(&[("101:A:1", "E"), ("101:A:2", "E")]), &cfg),
            Err(SafetixDeny::Ambiguous)
        );
    }

    #[test]
    fn the_offline_policy_only_lowers_the_caps() {
        let p = Policy::default();
        let low = offline_policy(&p, 1000);
        assert_eq!(low.offline.per_transaction_cents, 1000);
        assert_eq!(low.offline.per_ticket_cents, 1000);
        assert_eq!(low.offline.total_cents, p.offline.total_cents);
        let high = offline_policy(&p, 1_000_000);
        assert_eq!(high, p);
        assert_eq!(offline_policy(&p, 0).offline.total_count, 0);
    }
}
