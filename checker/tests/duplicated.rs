//! Duplicates per cause: a copy may come again only if something made its
//! group resume from an offset committed before the copy was consumed.

mod common;

use checker::history::HistoryBuilder;
use checker::{check_duplicated, CheckConfig, ConsumeOutcome, Event, Expect, Kind, Op, Validity};
use common::{acked, config, order};
use insta::assert_json_snapshot;

const OK: ConsumeOutcome = ConsumeOutcome::Success;
const RETRY: ConsumeOutcome = ConsumeOutcome::RetryLater;
const QUEUE: &str = "broker-0/orders/0";

fn bounded() -> CheckConfig {
    config(Expect { redelivery_bound_ms: Some(15_000), ..Expect::default() })
}

/// `msg_id`, stored at `offset` of broker-0's queue 0, consumed by billing.
fn consumed(h: &mut HistoryBuilder, t: u64, process: &str, msg_id: &str, offset: u64) -> u64 {
    h.push(
        Event::new(t, process, Kind::Ok, Op::Deliver)
            .group("billing")
            .msg_id(msg_id)
            .queue(QUEUE)
            .offset(offset)
            .result(ConsumeOutcome::Success),
    )
}

/// m0 to m2 consumed at 1, 2 and 3 s. consumer-billing-1 crashes at 10 s
/// and its queue is read again from m0 by consumer-billing-2.
fn history() -> HistoryBuilder {
    let mut h = HistoryBuilder::new();
    for n in 0..4u64 {
        acked(&mut h, 0, order(&format!("m{n}"), "TagA", &format!("k{n}")));
    }
    for n in 0..3u64 {
        consumed(&mut h, 1_000 * (n + 1), "consumer-billing-1", &format!("m{n}"), n);
    }
    h.push(Event::new(10_000, "consumer-billing-1", Kind::Info, Op::Crash).target("consumer-billing-1"));
    for n in 0..3u64 {
        consumed(&mut h, 12_000 + n, "consumer-billing-2", &format!("m{n}"), n);
    }
    h
}

#[test]
fn duplicated_holds_when_each_redelivery_follows_a_crash_soon_after_the_copy_was_consumed() {
    let mut h = history();
    h.harness(90_000, Op::End);
    let result = check_duplicated(h.events(), &bounded());
    assert_eq!(result.validity, Validity::Valid, "{result:?}");
    assert_eq!((result.count("copies-redelivered"), result.count("redelivered-beyond-progress")), (3, 0));
    assert_json_snapshot!(result);
    // Without a bound, only counted.
    let counted = check_duplicated(h.events(), &config(Expect::default()));
    assert_eq!((counted.validity, counted.count("redelivered-beyond-progress")), (Validity::Valid, 0));
}

#[test]
fn duplicated_fails_on_a_copy_consumed_long_before_anything_made_its_group_resume() {
    let mut h = history();
    // m3 and m4 are consumed at 30 and 31 s; at 60 s, with nothing since
    // the crash at 10 s (over 15 s before), both come again: the group's
    // offset had gone back.
    acked(&mut h, 0, order("m4", "TagA", "k4"));
    consumed(&mut h, 30_000, "consumer-billing-2", "m3", 3);
    consumed(&mut h, 31_000, "consumer-billing-2", "m4", 4);
    consumed(&mut h, 60_000, "consumer-billing-2", "m3", 3);
    consumed(&mut h, 60_001, "consumer-billing-2", "m4", 4);
    h.harness(90_000, Op::End);
    let result = check_duplicated(h.events(), &bounded());
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!(result.count("redelivered-beyond-progress"), 2);
    let kinds: Vec<&str> = result.anomalies.iter().take(2).map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["redelivered-beyond-progress", "redelivered-beyond-progress"]);
    assert_json_snapshot!(result);
}

#[test]
fn a_copy_held_back_by_one_still_in_processing_may_come_again_long_after() {
    let mut h = HistoryBuilder::new();
    for n in 0..2u64 {
        acked(&mut h, 0, order(&format!("m{n}"), "TagA", &format!("k{n}")));
    }
    // m1 is consumed at 1 s while m0, before it, fails until 40 s: the
    // committed offset stays at m0, so a crash at 41 s brings m1 again.
    consumed(&mut h, 1_000, "consumer-billing-1", "m1", 1);
    h.push(
        Event::new(40_000, "consumer-billing-1", Kind::Ok, Op::Deliver)
            .group("billing")
            .msg_id("m0")
            .queue(QUEUE)
            .offset(0)
            .result(ConsumeOutcome::RetryLater),
    );
    h.push(Event::new(41_000, "consumer-billing-1", Kind::Info, Op::Crash).target("consumer-billing-1"));
    consumed(&mut h, 43_000, "consumer-billing-2", "m1", 1);
    h.harness(90_000, Op::End);
    let result = check_duplicated(h.events(), &bounded());
    assert_eq!(result.validity, Validity::Valid, "{result:?}");
}

/// A timer due at 10 s, delivered from broker-0's queue at `first_ms`, and
/// again from a second stored copy at 40 s.
fn timer_twice(first_ms: u64) -> HistoryBuilder {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 1_000, order("t1", "TagA", "k1").deliver_at_ms(10_000));
    consumed(&mut h, first_ms, "consumer-billing-1", "t1", 7);
    h
}

#[test]
fn a_timer_written_twice_is_excused_only_by_a_restart_of_its_broker_soon_after() {
    // broker-0 restarted 3 s after the first delivery: its timer progress
    // since the last persisted point was lost, the timer fired again.
    let mut h = timer_twice(10_100);
    h.nemesis(13_000, Op::Fault, "kill", Some("broker-0"));
    h.nemesis(16_000, Op::Heal, "kill", Some("broker-0"));
    consumed(&mut h, 40_000, "consumer-billing-2", "t1", 9);
    h.harness(90_000, Op::End);
    let result = check_duplicated(h.events(), &bounded());
    assert_eq!(result.validity, Validity::Valid, "{result:?}");
    assert_eq!(result.count("timed-copies-again"), 1);

    // A failover 20 s after the first delivery is too late to excuse it,
    // unless the broker's disk was full, or the broker was cut off or
    // paused, for long enough in between that its progress could not be
    // persisted or copied to its slave (ha-swarm seed 83: disk full 5 s,
    // then cut off from its slave 6 s before the failover).
    for (fault, stalled_ms, valid) in [("disk-fault", 0, false), ("disk-fault", 6_000, true), ("partition", 6_000, true), ("pause", 6_000, true), ("latency", 6_000, false)] {
        let mut h = timer_twice(10_100);
        if stalled_ms > 0 {
            h.nemesis(12_000, Op::Fault, fault, Some("broker-0"));
            h.nemesis(12_000 + stalled_ms, Op::Heal, fault, Some("broker-0"));
        }
        h.nemesis(30_000, Op::Fault, "kill", Some("broker-0"));
        consumed(&mut h, 40_000, "consumer-billing-2", "t1", 9);
        h.harness(90_000, Op::End);
        let result = check_duplicated(h.events(), &bounded());
        assert_eq!(result.validity == Validity::Valid, valid, "{fault} {stalled_ms} ms: {result:?}");
    }

    // No restart: a broker that moves a timer twice lost its progress.
    let mut h = timer_twice(10_100);
    consumed(&mut h, 40_000, "consumer-billing-2", "t1", 9);
    h.harness(90_000, Op::End);
    let result = check_duplicated(h.events(), &bounded());
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!(result.count("redelivered-beyond-progress"), 1);
    assert!(result.anomalies[0].detail.starts_with("t1, due at a set time"), "{:?}", result.anomalies);
    assert_json_snapshot!(result);
}

#[test]
fn duplicated_is_zero_without_redeliveries() {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, order("m1", "TagA", "k1"));
    h.deliver(20, "consumer-billing-1", "billing", "m1", RETRY);
    h.deliver(30, "consumer-billing-1", "billing", "m1", OK);
    h.deliver(31, "consumer-audit-1", "audit", "m1", OK);

    let result = check_duplicated(h.events(), &config(Expect::default()));
    assert_eq!(result.validity, Validity::Valid);
    assert_eq!(result.count("duplicated"), 0);
    assert_json_snapshot!(result);
}

#[test]
fn duplicated_counts_redeliveries_but_stays_valid() {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, order("m1", "TagA", "k1"));
    acked(&mut h, 11, order("m2", "TagA", "k2"));
    h.deliver(20, "consumer-billing-1", "billing", "m1", OK);
    h.nemesis(25, Op::Fault, "consumer-crash", Some("consumer-billing-1"));
    h.deliver(30, "consumer-billing-2", "billing", "m1", OK);
    h.deliver(31, "consumer-billing-2", "billing", "m1", OK);
    h.deliver(32, "consumer-billing-2", "billing", "m2", OK);

    let result = check_duplicated(h.events(), &config(Expect::default()));
    assert_eq!(result.validity, Validity::Valid);
    assert_eq!(
        (result.count("duplicated"), result.count("redeliveries")),
        (1, 2)
    );
    assert_json_snapshot!(result);
}
