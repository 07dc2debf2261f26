//! unexpected: nothing is delivered, dead-lettered or applied that was never sent.
//! Hand-written histories, one that holds and one that violates; the
//! verdicts are insta snapshots, their validities asserted too.

use checker::history::HistoryBuilder;
use checker::{check_unexpected, ConsumeOutcome, Event, Expect, Kind, Op, Validity};
use insta::assert_json_snapshot;

const OK: ConsumeOutcome = ConsumeOutcome::Success;
const RETRY: ConsumeOutcome = ConsumeOutcome::RetryLater;

mod common;
use common::{acked, config, order};

#[test]
fn unexpected_holds_when_everything_consumed_was_sent() {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, order("m1", "TagA", "k1"));
    h.send(11, order("m2", "TagA", "k2"), Some((20, Kind::Info)));
    h.deliver(21, "consumer-billing-1", "billing", "m1", OK);
    h.deliver(22, "consumer-billing-1", "billing", "m2", OK);
    h.push(
        Event::new(23, "consumer-billing-1", Kind::Ok, Op::Effect)
            .group("billing")
            .key("k1"),
    );

    let result = check_unexpected(h.events(), &config(Expect::default()));
    assert_eq!(result.validity, Validity::Valid);
    assert_json_snapshot!(result);
}

#[test]
fn unexpected_fails_on_ghost_messages_keys_and_failed_sends() {
    let mut h = HistoryBuilder::new();
    h.send(10, order("m1", "TagA", "k1"), Some((12, Kind::Fail)));
    h.deliver(20, "consumer-billing-1", "billing", "ghost", OK);
    h.deliver(21, "consumer-billing-1", "billing", "ghost", RETRY);
    h.deliver(22, "consumer-billing-1", "billing", "m1", OK);
    h.push(
        Event::new(23, "consumer-billing-1", Kind::Ok, Op::Effect)
            .group("billing")
            .key("k-ghost"),
    );
    h.push(
        Event::new(90, "drain", Kind::Ok, Op::Dlq)
            .group("billing")
            .msg_id("ghost-2"),
    );

    let result = check_unexpected(h.events(), &config(Expect::default()));
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!(result.count("unexpected"), 3);
    assert_eq!(result.count("failed-delivered"), 1);
    assert_json_snapshot!(result);
}
