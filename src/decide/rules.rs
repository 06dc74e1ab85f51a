//! The decision rules themselves (see the module docs of `decide` for the list).

use crate::money::Cents;
use crate::ticket::{merge_lines, ValueKind, ValueLine};

use super::input::{DecideInput, Evidence, ScanKind};
use super::words::{Decision, ItemGrant, Mode, Reason, Source, Verdict};

/// Decides one scan. Pure: the same input always gives the same decision.
pub fn decide(input: &DecideInput<'_>) -> Decision {
    let policy = input.policy;
    let mode_offline = input.mode == Mode::Offline;
    let mode_source = if mode_offline {
        Source::Offline
    } else {
        Source::Live
    };

    let barcode = match input.scan {
        ScanKind::Unreadable => {
            return Decision::deny(Reason::Unreadable, mode_source, mode_offline)
        }
        ScanKind::SafeTix => {
            return Decision::deny(Reason::SafetixUnresolved, mode_source, mode_offline)
        }
        ScanKind::Barcode(b) => b,
    };

    let (record, source, offline) = match input.evidence {
        Evidence::Live(r) => (r, Source::Live, false),
        Evidence::Cached { .. } if !input.clock_trusted => {
            return Decision::deny(Reason::ClockUnsure, Source::Offline, true)
        }
        Evidence::Cached { record, age_ms } => {
            let fresh_enough =
                policy.online_cache_max_age_ms > 0 && age_ms <= policy.online_cache_max_age_ms;
            if !mode_offline && fresh_enough {
                (record, Source::Cache, false)
            } else if age_ms > policy.offline.max_cache_age_ms {
                return Decision::deny(Reason::StaleCache, Source::Offline, true);
            } else {
                (record, Source::Offline, true)
            }
        }
        Evidence::None => return Decision::deny(Reason::OfflineUnknown, Source::Offline, true),
    };
    let deny = |reason| Decision::deny(reason, source, offline);

    let info = match &record.info {
        Some(info) if record.barcode == *barcode => info,
        _ => return deny(Reason::UnknownTicket),
    };
    if !info.status.is_redeemable() {
        return deny(Reason::TicketVoid);
    }
    let right_event = if input.events.is_empty() {
        info.event_date.as_deref().and_then(day) == day(input.today) && day(input.today).is_some()
    } else {
        input.events.contains(&info.event_name)
    };
    if !right_event {
        return deny(Reason::WrongEvent);
    }
    // Builders merge repeated rows; a record cached by an older version may still
    // hold them: count each line once, and trust no line ATS sent two ways.
    let Ok(lines) = merge_lines(&record.value) else {
        return deny(Reason::BadRecord);
    };
    if input.requested == Some(0) {
        return deny(Reason::InvalidRequest);
    }

    // The value lines that count for this request. A line with nothing loaded carries
    // no value, whatever its balance says.
    let money_only = input.requested.is_some();
    let loaded: Vec<&ValueLine> = lines
        .iter()
        .filter(|v| !money_only || v.kind == ValueKind::Money)
        .filter(|v| v.loaded > 0)
        .collect();
    if loaded.is_empty() {
        return deny(Reason::NoValue);
    }
    let valid: Vec<&ValueLine> = loaded
        .into_iter()
        .filter(|v| valid_on(v, input.today))
        .collect();
    if valid.is_empty() {
        return deny(Reason::ValueExpired);
    }
    // The ledger as it stands once this answer is taken into account (the store does
    // the same when the decision is committed).
    let mut ledger = input.ledger.clone();
    ledger.reconcile(record);
    let available: Vec<(&ValueLine, u64)> = valid
        .into_iter()
        // Never more than was loaded on the line: a balance above the amount is a
        // broken answer, not value.
        .map(|v| (v, ledger.available(v).min(v.loaded)))
        .filter(|(_, a)| *a > 0)
        .collect();
    if available.is_empty() {
        return deny(Reason::AlreadyRedeemed);
    }

    let money_available: Cents = available
        .iter()
        .filter(|(v, _)| v.kind == ValueKind::Money)
        .map(|(_, a)| *a)
        .fold(0, Cents::saturating_add);
    let asked = input.requested.unwrap_or(money_available);
    let mut grant = asked.min(money_available).min(policy.max_transaction_cents);
    let items: Vec<ItemGrant> = if money_only {
        Vec::new()
    } else {
        available
            .iter()
            .filter(|(v, _)| v.kind == ValueKind::Item)
            .map(|(v, _)| ItemGrant {
                av_id: v.av_id.clone(),
                description: v.description.clone(),
            })
            .collect()
    };

    if offline {
        let caps = &policy.offline;
        if input.usage.count >= caps.total_count {
            return deny(Reason::OfflineLimit);
        }
        let room = caps
            .per_transaction_cents
            .min(caps.per_ticket_cents.saturating_sub(ledger.offline_cents))
            .min(caps.total_cents.saturating_sub(input.usage.cents));
        if grant > room {
            if !policy.offline_partial {
                return deny(Reason::OfflineLimit);
            }
            grant = room;
        }
        if grant == 0 && items.is_empty() {
            return deny(Reason::OfflineLimit);
        }
    }

    // Spread the money over the money lines, in the record's order.
    let mut money = Vec::new();
    let mut left = grant;
    for (v, a) in &available {
        if left == 0 {
            break;
        }
        if v.kind != ValueKind::Money {
            continue;
        }
        let take = left.min(*a);
        money.push((v.av_id.clone(), take));
        left -= take;
    }

    Decision {
        verdict: Verdict::Approve,
        reason: if grant < asked {
            Reason::Partial
        } else {
            Reason::Approved
        },
        approved_cents: grant,
        money,
        items,
        source,
        offline,
    }
}

/// The `YYYY-MM-DD` part of a date (or date-time) string, if it is well formed.
fn day(s: &str) -> Option<&str> {
    let d = s.trim().get(..10)?;
    let b = d.as_bytes();
    let ok = b.iter().enumerate().all(|(i, c)| match i {
        4 | 7 => *c == b'-',
        _ => c.is_ascii_digit(),
    });
    ok.then_some(d)
}

/// True when `today` lies within the line's validity (inclusive). A malformed date on
/// the line, or a malformed `today`, makes the line invalid: refuse rather than guess.
fn valid_on(v: &ValueLine, today: &str) -> bool {
    let Some(today) = day(today) else {
        return false;
    };
    let after_start = match &v.valid_from {
        None => true,
        Some(f) if f.trim().is_empty() => true,
        Some(f) => day(f).is_some_and(|f| f <= today),
    };
    let before_end = match &v.valid_until {
        None => true,
        Some(u) if u.trim().is_empty() => true,
        Some(u) => day(u).is_some_and(|u| today <= u),
    };
    after_start && before_end
}

#[cfg(test)]
mod tests;
