//! The agent end to end on the sandbox: the basic paths.

mod support;

use concession_agent::decide::Verdict;
use support::Harness;

#[test]
fn approves_whole_balance_then_denies_the_second_scan() {
    let mut h = Harness::start("events = [\"EVENT01\"]");
    let first = h.scan("100000000001");
    assert_eq!(first.decision, Verdict::Approve);
    assert_eq!(first.approved_cents, 2000);
    assert_eq!(first.source, "live");
    assert_eq!(first.barcode, "********0001");
    let second = h.scan("100000000001");
    assert_eq!(second.decision, Verdict::Deny);
    assert_eq!(second.reason, "already_redeemed");
    assert_ne!(first.id, second.id);
}
