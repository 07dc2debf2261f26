//! Offsets: one queue offset names one message (Jepsen's
//! inconsistent-offsets), except where a broker's log may have lost a tail.

mod common;

use checker::history::HistoryBuilder;
use checker::{check_offsets, CheckConfig, ConsumeOutcome, Event, Kind, Op, Validity};
use common::{acked, order};
use insta::assert_json_snapshot;

/// A delivery of `msg_id` to billing from `queue` at `offset`.
fn at(h: &mut HistoryBuilder, t: u64, msg_id: &str, queue: &str, offset: u64) -> u64 {
    h.push(
        Event::new(t, "consumer-billing-1", Kind::Ok, Op::Deliver)
            .group("billing")
            .msg_id(msg_id)
            .queue(queue)
            .offset(offset)
            .result(ConsumeOutcome::Success),
    )
}

/// m1 and m2 at offsets 0 and 1 of broker-0, m1 delivered twice (a
/// duplicate, same position); broker-1 lost power and gave offset 0 again,
/// to m4, after m3 had been read there.
fn passing() -> HistoryBuilder {
    let mut h = HistoryBuilder::new();
    for (id, key) in [("m1", "k1"), ("m2", "k2"), ("m3", "k3"), ("m4", "k4")] {
        acked(&mut h, 0, order(id, "TagA", key));
    }
    at(&mut h, 10, "m1", "broker-0/orders/0", 0);
    at(&mut h, 11, "m2", "broker-0/orders/0", 1);
    at(&mut h, 12, "m1", "broker-0/orders/0", 0);
    at(&mut h, 13, "m3", "broker-1/orders/0", 0);
    h.nemesis(20, Op::Fault, "power-loss", Some("broker-1"));
    h.nemesis(25, Op::Heal, "power-loss", Some("broker-1"));
    at(&mut h, 30, "m4", "broker-1/orders/0", 0);
    h
}

#[test]
fn offsets_hold_when_each_position_is_one_message_or_its_log_lost_a_tail() {
    let mut h = passing();
    h.harness(100, Op::End);
    let result = check_offsets(h.events(), &CheckConfig::default());
    assert_eq!(result.validity, Validity::Valid, "{result:?}");
    assert_eq!((result.count("positions"), result.count("inconsistent-offset-excused")), (3, 1));
    assert_json_snapshot!(result);
}

#[test]
fn offsets_fail_when_one_position_is_delivered_as_two_messages() {
    let mut h = passing();
    acked(&mut h, 40, order("m5", "TagA", "k5"));
    at(&mut h, 50, "m5", "broker-0/orders/0", 1);
    h.harness(100, Op::End);
    let result = check_offsets(h.events(), &CheckConfig::default());
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!(result.count("inconsistent-offset"), 1);
    assert!(result.anomalies[0].detail.contains("m2, m5"), "{:?}", result.anomalies);
    assert_json_snapshot!(result);
}

/// consumer-billing-1 commits 10 then 20 on broker-0's queue 0 (the
/// broker takes both); consumer-billing-2 resumes it later.
fn commits(resume_at_ms: u64, resumed: u64) -> HistoryBuilder {
    let mut h = HistoryBuilder::new();
    let event = |t: u64, process: &str, op: Op, offset: u64| {
        Event::new(t, process, Kind::Ok, op).group("billing").queue("broker-0/orders/0").offset(offset)
    };
    h.push(event(1_000, "consumer-billing-1", Op::OffsetResume, 0));
    h.push(event(5_000, "consumer-billing-1", Op::OffsetCommit, 10));
    h.push(event(10_000, "consumer-billing-1", Op::OffsetCommit, 20));
    h.push(event(resume_at_ms, "consumer-billing-2", Op::OffsetResume, resumed));
    h
}

#[test]
fn offsets_hold_when_a_resume_starts_at_the_latest_commit_or_the_commit_may_have_been_lost() {
    // At the latest commit; and just after it, below (the query may have
    // been asked before the commit was taken).
    for (at, resumed) in [(20_000, 20), (11_000, 10)] {
        let mut h = commits(at, resumed);
        h.harness(90_000, Op::End);
        let result = check_offsets(h.events(), &CheckConfig::default());
        assert_eq!(result.validity, Validity::Valid, "{at} {resumed}: {result:?}");
    }
    // broker-0 was killed 2 s after the commit of 20: not yet persisted.
    let mut h = commits(20_000, 10);
    h.nemesis(12_000, Op::Fault, "kill", Some("broker-0"));
    h.nemesis(15_000, Op::Heal, "kill", Some("broker-0"));
    h.harness(90_000, Op::End);
    let result = check_offsets(h.events(), &CheckConfig::default());
    assert_eq!(result.validity, Validity::Valid, "{result:?}");
    assert_eq!((result.count("resumes"), result.count("commit-went-back-excused")), (2, 1));
    assert_json_snapshot!(result);

    // Killed 3 ms before the commit's answer arrived: the broker took it
    // just before it stopped (the answer was on its way) and lost it. A
    // kill that was over 2 s before the answer came does not excuse it.
    for (kill_ms, heal_ms, valid) in [(9_997, 14_000, true), (7_000, 8_000, false)] {
        let mut h = commits(20_000, 10);
        h.nemesis(kill_ms, Op::Fault, "kill", Some("broker-0"));
        h.nemesis(heal_ms, Op::Heal, "kill", Some("broker-0"));
        h.harness(90_000, Op::End);
        let result = check_offsets(h.events(), &CheckConfig::default());
        assert_eq!(result.validity == Validity::Valid, valid, "kill at {kill_ms}: {result:?}");
    }
}

#[test]
fn offsets_fail_when_a_resume_starts_below_a_commit_the_broker_took() {
    let mut h = commits(20_000, 10);
    h.harness(90_000, Op::End);
    let result = check_offsets(h.events(), &CheckConfig::default());
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!(result.count("commit-went-back"), 1);
    assert!(result.anomalies[0].detail.contains("offset 10, though the broker had taken 20"), "{:?}", result.anomalies);
    assert_json_snapshot!(result);
}
