//! lost: every acknowledged message is consumed by each subscribing group or dead-lettered.
//! Hand-written histories, one that holds and one that violates; the
//! verdicts are insta snapshots, their validities asserted too.

use checker::history::HistoryBuilder;
use checker::{check_duplicated, check_lost, CheckConfig, ConsumeOutcome, Event, Expect, Kind, Op, Validity};
use insta::assert_json_snapshot;

const OK: ConsumeOutcome = ConsumeOutcome::Success;
const RETRY: ConsumeOutcome = ConsumeOutcome::RetryLater;

mod common;
use common::{acked, config, group, order};

#[test]
fn lost_holds_when_every_subscribing_group_consumes_or_dead_letters() {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, order("m1", "TagA", "k1"));
    acked(&mut h, 11, order("m2", "TagB", "k2"));
    acked(&mut h, 12, order("m3", "TagB", "k3"));
    h.send(13, order("m4", "TagA", "k4"), Some((14, Kind::Fail)));
    h.deliver(20, "consumer-billing-1", "billing", "m1", OK);
    h.deliver(21, "consumer-audit-1", "audit", "m1", OK);
    // audit does not subscribe to TagB, so m2 needs only billing.
    h.deliver(22, "consumer-billing-1", "billing", "m2", OK);
    h.deliver(23, "consumer-billing-1", "billing", "m3", RETRY);
    h.push(
        Event::new(90, "drain", Kind::Ok, Op::Dlq)
            .group("billing")
            .msg_id("m3"),
    );
    h.harness(100, Op::End);

    let result = check_lost(h.events(), &config(Expect::default()));
    assert_eq!(result.validity, Validity::Valid);
    assert_json_snapshot!(result);
}

#[test]
fn lost_excuses_exactly_the_message_a_flipped_bit_destroyed() {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, order("m1", "TagA", "k1"));
    acked(&mut h, 11, order("m2", "TagB", "k2"));
    acked(&mut h, 12, order("m3", "TagB", "k3"));
    h.push(
        Event::new(15, "nemesis", Kind::Info, Op::Fault)
            .fault("disk-fault")
            .target("broker-0")
            .msg_id("m2")
            .detail("flip-byte"),
    );
    h.deliver(20, "consumer-billing-1", "billing", "m1", OK);
    h.deliver(21, "consumer-audit-1", "audit", "m1", OK);
    h.harness(100, Op::End);

    // m2 was destroyed by the nemesis; m3, its neighbour, was not.
    let result = check_lost(h.events(), &config(Expect::default()));
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!((result.count("lost"), result.count("destroyed")), (1, 1));
    assert!(result.anomalies.iter().all(|a| a.detail.starts_with("m3 ")), "{result:?}");
    assert_json_snapshot!(result);

    h.deliver(30, "consumer-billing-2", "billing", "m3", OK);
    assert_eq!(check_lost(h.events(), &config(Expect::default())).validity, Validity::Valid);
}

#[test]
fn lost_fails_when_a_group_never_consumes_an_acknowledged_message() {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, order("m1", "TagA", "k1"));
    acked(&mut h, 11, order("m2", "TagB", "k2"));
    // Never completed: unknown, so not required.
    h.send(12, order("m3", "TagA", "k3"), None);
    h.deliver(20, "consumer-billing-1", "billing", "m1", OK);
    h.deliver(21, "consumer-billing-1", "billing", "m2", RETRY);
    h.harness(100, Op::End);

    let history = h.build();
    let result = check_lost(&history, &config(Expect::default()));
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!(result.count("lost"), 2);
    assert_json_snapshot!(result);

    // Tolerated loss is reported but valid.
    let tolerant = config(Expect {
        lost_max: 2,
        ..Expect::default()
    });
    let result = check_lost(&history, &tolerant);
    assert_eq!(result.validity, Validity::Valid);
    assert_eq!(result.note.as_deref(), Some("2 lost, within lost_max 2"));

    // Without an end event the drain may not have run: unknown.
    let cut = &history[..history.len() - 1];
    assert_eq!(
        check_lost(cut, &config(Expect::default())).validity,
        Validity::Unknown
    );
}

#[test]
fn lost_in_a_broadcast_group_means_some_subscriber_missed_it() {
    let mut h = HistoryBuilder::new();
    for process in ["consumer-cache-1", "consumer-cache-2"] {
        h.push(
            Event::new(0, process, Kind::Info, Op::Subscribe)
                .group("cache")
                .topic("orders")
                .detail("*"),
        );
    }
    acked(&mut h, 10, order("m1", "TagA", "k1"));
    h.deliver(20, "consumer-cache-1", "cache", "m1", OK);
    h.deliver(21, "consumer-cache-1", "cache", "m1", OK);
    h.harness(100, Op::End);
    let cfg = CheckConfig {
        groups: vec![group("cache", "*", true)],
        ..CheckConfig::default()
    };

    let result = check_lost(h.events(), &cfg);
    assert_eq!(result.validity, Validity::Invalid);
    assert!(
        result.anomalies[0]
            .detail
            .contains("consumer consumer-cache-2"),
        "{result:?}"
    );
    h.deliver(30, "consumer-cache-2", "cache", "m1", OK);
    assert_eq!(check_lost(h.events(), &cfg).validity, Validity::Valid);
    // Two copies to two consumers of a broadcast group are no duplicate;
    // the second copy to consumer-cache-1 is.
    assert_eq!(check_duplicated(h.events(), &cfg).count("duplicated"), 1);
}
