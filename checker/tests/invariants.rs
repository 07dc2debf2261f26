//! Hand-written histories: for each invariant one that holds and one that
//! violates it. The verdicts are insta snapshots; the validities are also
//! asserted here so that a wrongly accepted snapshot still fails.

use checker::history::HistoryBuilder;
use checker::{
    check_all, check_dead_letter, check_delay, check_duplicated, check_exactly_once, check_integrity, check_liveness, check_lost,
    check_hostile, check_order, check_progress, check_recovered, check_transaction, check_unexpected, CheckConfig, ConsumeOutcome,
    Event, Expect, GroupSpec, Kind, Op, TxState, Validity, DEDUPE_UNAVAILABLE, LOCAL_RETRY, NOT_EXPECTED,
};
use insta::assert_json_snapshot;
use std::collections::BTreeMap;

const OK: ConsumeOutcome = ConsumeOutcome::Success;
const RETRY: ConsumeOutcome = ConsumeOutcome::RetryLater;

mod common;
use common::{acked, config, copy_delivered, group, order, tx_end, tx_expect, tx_send};

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

/// Properties as a producer sets them.
fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|&(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// m1 (TagA, k1, shard s-1 seq 0) with a body digest and two properties.
fn m1() -> Event {
    order("m1", "TagA", "k1")
        .shard("s-1")
        .seq(0)
        .body("00000000000000a1")
        .props(props(&[("amount", "10"), ("region", "eu")]))
}

/// m2 (TagB, k2, shard s-1 seq 1) with a body digest and two properties.
fn m2() -> Event {
    order("m2", "TagB", "k2")
        .shard("s-1")
        .seq(1)
        .body("00000000000000b2")
        .props(props(&[("amount", "20"), ("region", "us")]))
}

/// A successful delivery at `t` to `process` of `group`, carrying the
/// message fields of `arrived` as the consumer saw them.
fn arrival(t: u64, process: &str, group: &str, arrived: Event) -> Event {
    let mut event = arrived;
    event.t_ms = t;
    event.process = process.to_owned();
    event.kind = Kind::Ok;
    event.op = Op::Deliver;
    event.group(group).result(OK)
}

#[test]
fn integrity_holds_when_every_delivery_matches_its_send() {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, m1());
    // An older producer sets neither body nor properties: nothing to compare.
    acked(&mut h, 11, order("m2", "TagB", "k2"));
    h.send(12, m1().msg_id("m3").key("k3"), Some((3000, Kind::Info)));
    h.deliver(20, "consumer-billing-1", "billing", "m1", RETRY);
    h.deliver(21, "consumer-billing-1", "billing", "m1", OK);
    h.deliver(22, "consumer-audit-1", "audit", "m1", OK);
    // A body the send did not carry is not compared.
    h.push(arrival(
        23,
        "consumer-billing-1",
        "billing",
        order("m2", "TagB", "k2").body("00000000000000b2"),
    ));
    // Neither a ghost nor a group the config does not know is integrity's business.
    h.push(arrival(
        24,
        "consumer-billing-1",
        "billing",
        order("ghost", "TagA", "kg"),
    ));
    h.push(arrival(
        25,
        "consumer-cache-1",
        "cache",
        order("m2", "TagB", "k2"),
    ));
    h.deliver(90, "drain", "billing", "m3", OK);
    h.harness(100, Op::End);

    let result = check_integrity(h.events(), &config(Expect::default()));
    assert_eq!(result.validity, Validity::Valid);
    assert_eq!(
        (
            result.count("checked"),
            result.count("corrupted"),
            result.count("filter-leak")
        ),
        (6, 0, 0)
    );
    assert_json_snapshot!(result);
}

#[test]
fn integrity_fails_on_corrupted_fields_and_filter_leaks() {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, m1());
    acked(&mut h, 11, m2());
    h.push(arrival(
        20,
        "consumer-billing-1",
        "billing",
        m1().body("00000000000000ff"),
    ));
    // A pull that drops the user properties loses shard and seq with them.
    let mut stripped = m2().props(BTreeMap::new());
    stripped.shard = None;
    stripped.seq = None;
    h.push(arrival(21, "consumer-billing-1", "billing", stripped));
    let mut rekeyed = m1().key("k9");
    rekeyed.body = None;
    h.push(arrival(22, "consumer-billing-2", "billing", rekeyed));
    h.push(arrival(
        23,
        "drain",
        "billing",
        m2().topic("%RETRY%billing"),
    ));
    // Intact, but audit subscribes to TagA only.
    h.push(arrival(24, "consumer-audit-1", "audit", m2()));
    h.harness(100, Op::End);

    let result = check_integrity(h.events(), &config(Expect::default()));
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!(
        (
            result.count("checked"),
            result.count("corrupted"),
            result.count("filter-leak")
        ),
        (5, 4, 1)
    );
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

#[test]
fn recovered_is_empty_when_every_send_outcome_is_known() {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, order("m1", "TagA", "k1"));
    h.deliver(20, "consumer-billing-1", "billing", "m1", OK);

    let result = check_recovered(h.events(), &config(Expect::default()));
    assert_eq!(result.validity, Validity::Valid);
    assert_json_snapshot!(result);
}

#[test]
fn recovered_reports_unknown_sends_that_were_consumed() {
    let mut h = HistoryBuilder::new();
    h.send(10, order("m1", "TagA", "k1"), Some((3000, Kind::Info)));
    h.send(11, order("m2", "TagA", "k2"), Some((3001, Kind::Info)));
    h.send(12, order("m3", "TagA", "k3"), None);
    h.send(13, order("m4", "TagA", "k4"), Some((14, Kind::Fail)));
    h.deliver(20, "consumer-billing-1", "billing", "m1", OK);
    h.push(
        Event::new(90, "drain", Kind::Ok, Op::Dlq)
            .group("billing")
            .msg_id("m3"),
    );

    let result = check_recovered(h.events(), &config(Expect::default()));
    assert_eq!(result.validity, Validity::Valid);
    assert_eq!(
        (result.count("recovered"), result.count("indeterminate")),
        (2, 1)
    );
    assert_json_snapshot!(result);
}

fn effect(h: &mut HistoryBuilder, t: u64, group: &str, key: &str) -> u64 {
    h.push(
        Event::new(t, format!("consumer-{group}-1"), Kind::Ok, Op::Effect)
            .group(group)
            .key(key),
    )
}

#[test]
fn exactly_once_holds_with_one_effect_per_group_and_key() {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, order("m1", "TagA", "k1"));
    acked(&mut h, 11, order("m2", "TagB", "k2"));
    // k1 sent twice: still one effect per group.
    acked(&mut h, 12, order("m3", "TagA", "k1"));
    // A dead-lettered message needs no effect.
    acked(&mut h, 13, order("m4", "TagB", "k4"));
    h.deliver(20, "consumer-billing-1", "billing", "m1", OK);
    effect(&mut h, 21, "billing", "k1");
    h.deliver(22, "consumer-billing-1", "billing", "m1", OK);
    h.deliver(23, "consumer-audit-1", "audit", "m1", OK);
    effect(&mut h, 24, "audit", "k1");
    h.deliver(25, "consumer-billing-1", "billing", "m2", OK);
    effect(&mut h, 26, "billing", "k2");
    h.push(
        Event::new(90, "drain", Kind::Ok, Op::Dlq)
            .group("billing")
            .msg_id("m4"),
    );

    let expect = Expect {
        exactly_once: true,
        ..Expect::default()
    };
    let result = check_exactly_once(h.events(), &config(expect));
    assert_eq!(result.validity, Validity::Valid);
    assert_json_snapshot!(result);
}

#[test]
fn exactly_once_fails_on_double_missing_and_phantom_effects() {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, order("m1", "TagB", "k1"));
    acked(&mut h, 11, order("m2", "TagB", "k2"));
    h.send(12, order("m3", "TagB", "k3"), Some((13, Kind::Fail)));
    h.deliver(20, "consumer-billing-1", "billing", "m1", OK);
    effect(&mut h, 21, "billing", "k1");
    h.deliver(22, "consumer-billing-2", "billing", "m1", OK);
    effect(&mut h, 23, "billing", "k1");
    effect(&mut h, 24, "billing", "k3");

    let history = h.build();
    let expect = Expect {
        exactly_once: true,
        ..Expect::default()
    };
    let result = check_exactly_once(&history, &config(expect));
    assert_eq!(result.validity, Validity::Invalid);
    assert_json_snapshot!(result);

    let off = check_exactly_once(&history, &config(Expect::default()));
    assert_eq!(
        (off.validity, off.note.as_deref()),
        (Validity::Valid, Some(NOT_EXPECTED))
    );
}

/// billing deduplicates by key; ledger, a control group, does not.
fn control_config() -> CheckConfig {
    let mut cfg = config(Expect {
        exactly_once: true,
        ..Expect::default()
    });
    cfg.groups = vec![
        group("billing", "*", false),
        GroupSpec {
            idempotent: false,
            max_reconsume_times: 16,
            ..group("ledger", "*", false)
        },
    ];
    cfg
}

/// k1 and k2 acknowledged and redelivered: billing applies each once,
/// ledger applies k1 twice and k2 three times.
fn control_history() -> HistoryBuilder {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, order("m1", "TagA", "k1"));
    acked(&mut h, 11, order("m2", "TagB", "k2"));
    for (t, msg_id, key) in [(20, "m1", "k1"), (30, "m2", "k2")] {
        h.deliver(t, "consumer-billing-1", "billing", msg_id, OK);
        effect(&mut h, t + 1, "billing", key);
        h.deliver(t + 2, "consumer-billing-2", "billing", msg_id, OK);
        h.deliver(t + 3, "consumer-ledger-1", "ledger", msg_id, OK);
        effect(&mut h, t + 4, "ledger", key);
        h.deliver(t + 5, "consumer-ledger-1", "ledger", msg_id, OK);
        effect(&mut h, t + 6, "ledger", key);
    }
    h.deliver(40, "consumer-ledger-1", "ledger", "m2", OK);
    effect(&mut h, 41, "ledger", "k2");
    h
}

#[test]
fn exactly_once_measures_double_effects_of_a_control_group() {
    let h = control_history();
    let result = check_exactly_once(h.events(), &control_config());
    assert_eq!(result.validity, Validity::Valid);
    assert_eq!(
        (
            result.count("double-effect"),
            result.count("control-double-effect"),
            result.count("control-extra-effects")
        ),
        (0, 2, 3)
    );
    assert!(result.anomalies.is_empty());
    assert_json_snapshot!(result);
}

#[test]
fn exactly_once_fails_on_an_idempotent_double_effect_beside_a_control_group() {
    let mut h = control_history();
    effect(&mut h, 50, "billing", "k1");

    let result = check_exactly_once(h.events(), &control_config());
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!(
        (
            result.count("double-effect"),
            result.count("control-double-effect"),
            result.count("control-extra-effects")
        ),
        (1, 2, 3)
    );
    assert_eq!(result.anomalies.len(), 1);
    assert!(result.anomalies[0].detail.contains("group billing"));
    assert_json_snapshot!(result);

    // A control group still must apply every acknowledged key.
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, order("m1", "TagA", "k1"));
    h.deliver(20, "consumer-billing-1", "billing", "m1", OK);
    effect(&mut h, 21, "billing", "k1");
    h.deliver(22, "consumer-ledger-1", "ledger", "m1", OK);
    let result = check_exactly_once(h.events(), &control_config());
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!(result.count("missing-effect"), 1);
}

/// Sends seq 0..n of shard s-1, all acknowledged.
fn shard_of(h: &mut HistoryBuilder, n: u64) {
    for seq in 0..n {
        acked(
            h,
            10 + seq,
            order(&format!("m{seq}"), "TagB", &format!("k{seq}"))
                .shard("s-1")
                .seq(seq),
        );
    }
}

#[test]
fn order_holds_when_retries_block_the_shard() {
    let mut h = HistoryBuilder::new();
    shard_of(&mut h, 3);
    h.deliver(20, "consumer-billing-1", "billing", "m0", OK);
    h.deliver(21, "consumer-billing-1", "billing", "m1", RETRY);
    h.deliver(22, "consumer-billing-1", "billing", "m1", OK);
    // After a rebalance the new owner redelivers m0: allowed.
    h.deliver(30, "consumer-billing-2", "billing", "m0", OK);
    h.deliver(31, "consumer-billing-2", "billing", "m2", OK);

    let expect = Expect {
        order: true,
        ..Expect::default()
    };
    let result = check_order(h.events(), &config(expect));
    assert_eq!(result.validity, Validity::Valid);
    assert_json_snapshot!(result);
}

#[test]
fn order_fails_when_a_message_overtakes_its_predecessor() {
    let mut h = HistoryBuilder::new();
    shard_of(&mut h, 3);
    h.deliver(20, "consumer-billing-1", "billing", "m0", OK);
    h.deliver(21, "consumer-billing-1", "billing", "m1", RETRY);
    // A planted bug re-enqueues the retry at the tail: m2 overtakes m1.
    h.deliver(22, "consumer-billing-1", "billing", "m2", OK);
    h.deliver(23, "consumer-billing-1", "billing", "m1", OK);

    let expect = Expect {
        order: true,
        ..Expect::default()
    };
    let result = check_order(h.events(), &config(expect));
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!(result.anomalies[0].event_ids, vec![9, 3, 10]);
    assert_json_snapshot!(result);
}

fn liveness_config() -> CheckConfig {
    config(Expect {
        liveness_bound_ms: Some(50),
        ..Expect::default()
    })
}

#[test]
fn liveness_holds_when_the_tail_delivers_within_the_bound() {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 20, order("m1", "TagB", "k1"));
    h.nemesis(30, Op::Fault, "partition", Some("broker-0"));
    h.nemesis(90, Op::Heal, "partition", Some("broker-0"));
    h.harness(100, Op::TailStart);
    h.deliver(150, "consumer-billing-1", "billing", "m1", OK);
    acked(&mut h, 200, order("m2", "TagB", "k2"));
    h.deliver(240, "consumer-billing-1", "billing", "m2", OK);
    // Acknowledged too close to the end to be judged.
    acked(&mut h, 290, order("m3", "TagB", "k3"));
    h.harness(300, Op::End);

    let result = check_liveness(h.events(), &liveness_config());
    assert_eq!(result.validity, Validity::Valid);
    assert_eq!(result.count("pending"), 1);
    assert_json_snapshot!(result);
}

#[test]
fn liveness_fails_on_late_and_never_delivered_messages() {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 20, order("m1", "TagB", "k1"));
    acked(&mut h, 21, order("m2", "TagB", "k2"));
    h.harness(100, Op::TailStart);
    h.deliver(151, "consumer-billing-1", "billing", "m1", OK);
    // Only the final drain finds m2: that is not liveness.
    h.deliver(290, "drain", "billing", "m2", OK);
    h.harness(300, Op::End);

    let history = h.build();
    let result = check_liveness(&history, &liveness_config());
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!((result.count("late"), result.count("never")), (1, 1));
    assert_json_snapshot!(result);

    let cut = &history[..history.len() - 1];
    assert_eq!(
        check_liveness(cut, &liveness_config()).validity,
        Validity::Invalid
    );
    let no_tail: Vec<Event> = history
        .iter()
        .filter(|e| e.op != Op::TailStart)
        .cloned()
        .collect();
    assert_eq!(
        check_liveness(&no_tail, &liveness_config()).validity,
        Validity::Unknown
    );
}

#[test]
fn liveness_is_unknown_without_an_end_event() {
    let mut h = HistoryBuilder::new();
    h.harness(100, Op::TailStart);
    acked(&mut h, 120, order("m1", "TagB", "k1"));
    let result = check_liveness(h.events(), &liveness_config());
    assert_eq!(result.validity, Validity::Unknown);
}

#[test]
fn liveness_holds_for_a_tail_message_consumed_within_the_bound() {
    let mut h = HistoryBuilder::new();
    h.harness(100, Op::TailStart);
    // Acknowledged at 202 ms: the deadline is 252 ms.
    acked(&mut h, 200, order("m1", "TagB", "k1"));
    h.deliver(252, "consumer-billing-1", "billing", "m1", OK);
    h.harness(400, Op::End);

    let result = check_liveness(h.events(), &liveness_config());
    assert_eq!(result.validity, Validity::Valid);
    assert_eq!(
        (
            result.count("required"),
            result.count("late"),
            result.count("max-delay-ms")
        ),
        (1, 0, 50)
    );
    assert_json_snapshot!(result);
}

#[test]
fn liveness_fails_for_a_tail_message_consumed_after_the_bound() {
    let mut h = HistoryBuilder::new();
    h.harness(100, Op::TailStart);
    acked(&mut h, 200, order("m1", "TagB", "k1"));
    // The drain's earlier delivery does not count; the consumer's is late.
    h.deliver(240, "drain", "billing", "m1", OK);
    h.deliver(253, "consumer-billing-1", "billing", "m1", OK);
    h.harness(400, Op::End);

    let result = check_liveness(h.events(), &liveness_config());
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!((result.count("late"), result.count("never")), (1, 0));
    assert_json_snapshot!(result);
}

/// One acknowledged message consumed in time, then a final drain that gives
/// up on one queue when `gave_up`.
fn drained(gave_up: bool) -> Vec<Event> {
    let mut h = HistoryBuilder::new();
    h.harness(100, Op::TailStart);
    acked(&mut h, 110, order("m1", "TagB", "k1"));
    h.deliver(120, "consumer-billing-1", "billing", "m1", OK);
    if gave_up {
        h.push(
            Event::new(250, "drain", Kind::Info, Op::DrainGaveUp)
                .group("billing")
                .queue("broker-1/orders/3")
                .detail("pull at offset 7 failed 30 times"),
        );
    }
    h.harness(300, Op::End);
    h.build()
}

#[test]
fn liveness_holds_when_the_drain_reads_every_queue() {
    let history = drained(false);
    let result = check_liveness(&history, &liveness_config());
    assert_eq!(result.validity, Validity::Valid);
    assert_eq!(result.count("drain-gave-up"), 0);
    assert_json_snapshot!(result);

    let off = check_liveness(&history, &config(Expect::default()));
    assert_eq!(
        (off.validity, off.note.as_deref()),
        (Validity::Valid, Some(NOT_EXPECTED))
    );
}

#[test]
fn liveness_fails_when_the_drain_gave_up_even_if_not_expected() {
    let history = drained(true);
    let result = check_liveness(&history, &config(Expect::default()));
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!(result.counts.len(), 1);
    assert_eq!(result.count("drain-gave-up"), 1);
    assert_json_snapshot!(result);

    let expected = check_liveness(&history, &liveness_config());
    assert_eq!(expected.validity, Validity::Invalid);
    assert_eq!(
        (
            expected.count("drain-gave-up"),
            expected.count("late"),
            expected.count("never")
        ),
        (1, 0, 0)
    );
    assert_eq!(expected.anomalies[0].kind, "drain-gave-up");
}

#[test]
fn check_all_keeps_the_worst_validity_and_summarizes() {
    let mut h = HistoryBuilder::new();
    shard_of(&mut h, 3);
    h.deliver(20, "consumer-billing-1", "billing", "m1", OK);
    h.deliver(21, "consumer-billing-1", "billing", "m1", OK);
    h.deliver(22, "consumer-billing-1", "billing", "m0", OK);
    h.harness(100, Op::End);
    let expect = Expect {
        order: true,
        ..Expect::default()
    };

    let verdict = check_all(h.events(), &config(expect));
    assert_eq!(verdict.validity, Validity::Invalid);
    let names: Vec<&str> = verdict.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "lost",
            "unexpected",
            "integrity",
            "duplicated",
            "recovered",
            "exactly-once",
            "order",
            "liveness",
            "progress",
            "hostile",
            "dead-letter",
            "transaction",
            "delay",
            "failover",
            "offsets"
        ]
    );
    let summary = verdict.summary_counts();
    assert_eq!(
        summary.to_string(),
        "lost=1 unexpected=0 dup=1 order=2 eo=0 corrupt=0 late=0 stalled=0 hostile=0 dl=0 tx=0 delay=0 failover=0 offsets=0"
    );
    assert_json_snapshot!(verdict);

    let json = serde_json::to_string(&verdict).unwrap();
    assert_eq!(
        serde_json::from_str::<checker::Verdict>(&json).unwrap(),
        verdict
    );
}

fn progress_config() -> CheckConfig {
    config(Expect {
        progress_min_permille: Some(900),
        progress_grace_ms: 10,
        ..Expect::default()
    })
}

/// Sends in the window at 110, 120, ...: the first `acked` acknowledged,
/// the rest refused. Before the window, one refused send that must not count.
fn progress_history(acked_count: u64, total: u64) -> HistoryBuilder {
    let mut h = HistoryBuilder::new();
    h.harness(100, Op::TailStart);
    h.send(105, order("early", "TagB", "k-early"), Some((106, Kind::Fail)));
    for i in 0..total {
        let t = 110 + 10 * i;
        let outcome = if i < acked_count { Kind::Ok } else { Kind::Fail };
        h.send(t, order(&format!("m{i}"), "TagB", &format!("k{i}")), Some((t + 2, outcome)));
    }
    h.deliver(115, "consumer-billing-1", "billing", "m0", OK);
    h.harness(300, Op::End);
    h
}

#[test]
fn progress_holds_when_the_settled_tail_acknowledges_enough() {
    let h = progress_history(9, 10);
    let result = check_progress(h.events(), &progress_config());
    assert_eq!(result.validity, Validity::Valid);
    assert_eq!((result.count("attempted"), result.count("acknowledged")), (10, 9));
    assert_eq!(result.count("share-permille"), 900);
    assert_eq!(result.count("delivered"), 1);
    assert_json_snapshot!(result);
}

#[test]
fn progress_fails_when_the_cluster_stalls_after_the_faults_heal() {
    let h = progress_history(3, 10);
    let result = check_progress(h.events(), &progress_config());
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!(result.count("stalled"), 1);
    assert_eq!(result.anomalies[0].kind, "stalled");
    assert_json_snapshot!(result);

    // No send at all once the window opens is a stall too.
    let silent = progress_history(0, 0);
    assert_eq!(check_progress(silent.events(), &progress_config()).validity, Validity::Invalid);
    // Without a tail-start the window is unknown; without the expectation
    // nothing is judged.
    let no_tail: Vec<Event> = h.events().iter().filter(|e| e.op != Op::TailStart).cloned().collect();
    assert_eq!(check_progress(&no_tail, &progress_config()).validity, Validity::Unknown);
    let unexpected = check_progress(h.events(), &config(Expect::default()));
    assert_eq!(unexpected.note.as_deref(), Some(NOT_EXPECTED));
}

fn hostile(h: &mut HistoryBuilder, t: u64, detail: &str) -> u64 {
    h.push(Event::new(t, "hostile-0", Kind::Info, Op::Hostile).detail(detail))
}

/// Hostile requests during faults and in the tail, each answered as it
/// should be: refused past a limit, accepted at one, or not at all while a
/// fault held (before tail-start).
fn hostile_history() -> HistoryBuilder {
    let mut h = HistoryBuilder::new();
    hostile(&mut h, 10, "oversized-frame -> closed");
    hostile(&mut h, 11, "properties-past-limit -> MessageIllegal");
    hostile(&mut h, 12, "properties-at-limit -> Success");
    hostile(&mut h, 13, "wrong-version -> UnsupportedVersion");
    hostile(&mut h, 14, "unknown-topic-pull -> no-answer");
    h.harness(100, Op::TailStart);
    hostile(&mut h, 110, "properties-past-limit -> MessageIllegal");
    hostile(&mut h, 111, "connection-flood -> opened-16");
    h.harness(300, Op::End);
    h
}

#[test]
fn hostile_holds_when_every_hostile_request_is_answered_as_it_should_be() {
    let h = hostile_history();
    let result = check_hostile(h.events(), &config(Expect::default()));
    assert_eq!(result.validity, Validity::Valid);
    assert_eq!(result.count("properties-past-limit MessageIllegal"), 2);
    assert_json_snapshot!(result);
}

#[test]
fn hostile_fails_on_accepted_refused_and_unanswered_requests() {
    let mut h = hostile_history();
    hostile(&mut h, 120, "key-past-limit -> Success");
    hostile(&mut h, 121, "properties-at-limit -> MessageIllegal");
    hostile(&mut h, 122, "unknown-topic-pull -> no-answer");
    let result = check_hostile(h.events(), &config(Expect::default()));
    assert_eq!(result.validity, Validity::Invalid);
    let kinds: Vec<&str> = result.anomalies.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["accepted-past-limit", "refused-at-limit", "unanswered"]);
    assert_json_snapshot!(result);
}

/// Delay levels of 1 s to 18 s, max reconsume times 2 for billing: a retry
/// after reconsumption n waits n + 3 s.
fn dead_letter_config() -> CheckConfig {
    let mut cfg = config(Expect {
        dead_letter: true,
        delay_levels_ms: (1..=18).map(|s| s * 1_000).collect(),
        // broker-1's clock runs 500 ms ahead for the whole run.
        clock_moves_ms: [("broker-1".to_string(), vec![(0, 500)])].into(),
        ..Expect::default()
    });
    cfg.groups[0].max_reconsume_times = 2;
    cfg
}

/// A delivery of `msg_id` to billing at reconsume level `level`.
fn attempt(h: &mut HistoryBuilder, t: u64, msg_id: &str, level: u32, result: ConsumeOutcome) -> u64 {
    h.push(
        Event::new(t, "consumer-billing-1", Kind::Ok, Op::Deliver)
            .group("billing")
            .msg_id(msg_id)
            .reconsume(level)
            .result(result),
    )
}

/// m1 fails at levels 0, 1 and 2 (the max), each retry waiting its level,
/// and is dead-lettered; m2 fails once, the broker cannot take it back, is
/// retried in place at once and then by the broker, and is consumed.
fn dead_letter_history() -> HistoryBuilder {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 0, order("m1", "TagB", "k1"));
    acked(&mut h, 0, order("m2", "TagB", "k2"));
    attempt(&mut h, 1_000, "m1", 0, RETRY);
    attempt(&mut h, 4_100, "m1", 1, RETRY);
    attempt(&mut h, 8_200, "m1", 2, RETRY);
    attempt(&mut h, 1_000, "m2", 0, RETRY);
    h.push(
        Event::new(2_000, "consumer-billing-1", Kind::Ok, Op::Deliver)
            .group("billing")
            .msg_id("m2")
            .reconsume(1)
            .result(RETRY)
            .detail(LOCAL_RETRY),
    );
    attempt(&mut h, 7_000, "m2", 2, OK);
    // m3 is consumed, then a redelivery meets the dedupe store down three
    // times and is dead-lettered: the consumer could not know it was done.
    acked(&mut h, 0, order("m3", "TagB", "k3"));
    attempt(&mut h, 500, "m3", 0, OK);
    for (t, level) in [(1_000, 0), (4_100, 1), (8_200, 2)] {
        h.push(
            Event::new(t, "consumer-billing-2", Kind::Ok, Op::Deliver)
                .group("billing")
                .msg_id("m3")
                .reconsume(level)
                .result(RETRY)
                .start_ms(t - 10)
                .detail(DEDUPE_UNAVAILABLE),
        );
    }
    h.harness(9_000, Op::TailStart);
    h.push(Event::new(20_000, "drain", Kind::Ok, Op::Dlq).group("billing").msg_id("m1"));
    h.push(Event::new(20_000, "drain", Kind::Ok, Op::Dlq).group("billing").msg_id("m3"));
    h.harness(20_001, Op::End);
    h
}

#[test]
fn dead_letter_holds_when_retries_wait_their_levels_and_the_dlq_has_exactly_the_exhausted() {
    let h = dead_letter_history();
    let result = check_dead_letter(h.events(), &dead_letter_config());
    assert_eq!(result.validity, Validity::Valid, "{result:?}");
    assert_eq!((result.count("retries"), result.count("local-retries"), result.count("dead-lettered")), (5, 1, 2));
    assert_eq!(result.count("dlq-billing"), 2);
    assert_json_snapshot!(result);
    let unexpected = check_dead_letter(h.events(), &config(Expect::default()));
    assert_eq!(unexpected.note.as_deref(), Some(NOT_EXPECTED));
}

#[test]
fn dead_letter_fails_on_an_early_retry() {
    let mut h = dead_letter_history();
    // m7 comes back 1 s after failing: level 3 waits 3 s.
    acked(&mut h, 0, order("m7", "TagB", "k7"));
    attempt(&mut h, 1_000, "m7", 0, RETRY);
    attempt(&mut h, 2_000, "m7", 1, OK);
    // m8 comes back 400 ms early from broker-1, whose clock the run moved
    // forward by 500 ms: within its allowance.
    acked(&mut h, 0, order("m8", "TagB", "k8"));
    attempt(&mut h, 1_000, "m8", 0, RETRY);
    h.push(
        Event::new(3_600, "consumer-billing-1", Kind::Ok, Op::Deliver)
            .group("billing")
            .msg_id("m8")
            .queue("broker-1/%RETRY%billing/0")
            .reconsume(1)
            .result(OK),
    );
    let result = check_dead_letter(h.events(), &dead_letter_config());
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!(result.count("retry-early"), 1);
    assert_json_snapshot!(result);
}

#[test]
fn dead_letter_fails_on_a_dead_letter_early_missing_or_after_a_success() {
    let mut h = dead_letter_history();
    // m7: dead-lettered after one failure of the three it needs.
    acked(&mut h, 0, order("m7", "TagB", "k7"));
    attempt(&mut h, 1_000, "m7", 0, RETRY);
    // m4: failed at the max, then nowhere.
    acked(&mut h, 0, order("m4", "TagB", "k4"));
    attempt(&mut h, 1_000, "m4", 0, RETRY);
    attempt(&mut h, 5_000, "m4", 1, RETRY);
    attempt(&mut h, 10_000, "m4", 2, RETRY);
    // m5: consumed, then failed through the max and dead-lettered.
    acked(&mut h, 0, order("m5", "TagB", "k5"));
    attempt(&mut h, 500, "m5", 0, OK);
    attempt(&mut h, 1_000, "m5", 0, RETRY);
    attempt(&mut h, 5_000, "m5", 1, RETRY);
    attempt(&mut h, 10_000, "m5", 2, RETRY);
    // m6: a retry at level 1 with no failure before it.
    acked(&mut h, 0, order("m6", "TagB", "k6"));
    attempt(&mut h, 9_000, "m6", 1, OK);
    for m in ["m7", "m5"] {
        h.push(Event::new(20_000, "drain", Kind::Ok, Op::Dlq).group("billing").msg_id(m));
    }
    let result = check_dead_letter(h.events(), &dead_letter_config());
    assert_eq!(result.validity, Validity::Invalid);
    let mut kinds: Vec<&str> = result.anomalies.iter().map(|a| a.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["consumed-and-dead-lettered", "dead-lettered-early", "not-dead-lettered", "retried-without-failure"]);
    assert_json_snapshot!(result);
}

/// A delivery of shard s1 of the FIFO topic orders to billing, processed by
/// `process` from `start` to `end`.
fn processed(h: &mut HistoryBuilder, process: &str, msg_id: &str, start: u64, end: u64) -> u64 {
    h.push(
        Event::new(end, process, Kind::Ok, Op::Deliver)
            .group("billing")
            .msg_id(msg_id)
            .topic("orders")
            .shard("s1")
            .result(OK)
            .start_ms(start),
    )
}

/// Two consumers take turns on shard s1, a queue passing from one to the
/// other: each starts after the other has finished.
fn handover_history() -> HistoryBuilder {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 0, order("m1", "TagA", "k1").shard("s1").seq(1));
    acked(&mut h, 0, order("m2", "TagA", "k2").shard("s1").seq(2));
    acked(&mut h, 0, order("m3", "TagA", "k3").shard("s1").seq(3));
    processed(&mut h, "consumer-billing-1", "m1", 10, 30);
    processed(&mut h, "consumer-billing-2", "m2", 30, 50);
    processed(&mut h, "consumer-billing-1", "m3", 60, 70);
    h.harness(100, Op::End);
    h
}

#[test]
fn order_holds_when_consumers_of_a_shard_take_turns() {
    let h = handover_history();
    let result = check_order(h.events(), &config(Expect { order: true, ..Expect::default() }));
    assert_eq!(result.validity, Validity::Valid, "{result:?}");
    assert_eq!(result.count("concurrent"), 0);
    assert_json_snapshot!(result);
}

#[test]
fn order_fails_when_two_consumers_process_one_shard_at_once() {
    let mut h = handover_history();
    // m3 again, on another consumer, while consumer-billing-1 still works
    // on it: a queue lock granted twice. Its own later redelivery is fine.
    processed(&mut h, "consumer-billing-2", "m3", 65, 80);
    processed(&mut h, "consumer-billing-1", "m3", 90, 95);
    let result = check_order(h.events(), &config(Expect { order: true, ..Expect::default() }));
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!((result.count("concurrent"), result.count("out-of-order")), (1, 0));
    assert_json_snapshot!(result);
}

#[test]
fn transaction_holds_when_each_message_follows_its_local_transaction() {
    let mut h = HistoryBuilder::new();
    // Committed by its producer.
    acked(&mut h, 10, tx_send("t1", "producer-0", "pay", TxState::Commit));
    tx_end(&mut h, 20, "producer-0", "t1", TxState::Commit, Kind::Ok);
    copy_delivered(&mut h, 30, "t1", "broker-0/orders/1", 0);
    // Rolled back by its producer: never delivered.
    acked(&mut h, 40, tx_send("t2", "producer-0", "pay", TxState::Rollback));
    tx_end(&mut h, 45, "producer-0", "t2", TxState::Rollback, Kind::Ok);
    // Unknown at first; another producer of the group commits on check-back.
    acked(&mut h, 50, tx_send("t3", "producer-0", "pay", TxState::Commit));
    tx_end(&mut h, 55, "producer-0", "t3", TxState::Unknown, Kind::Info);
    h.push(Event::new(2_000, "producer-1", Kind::Ok, Op::TxCheck).msg_id("t3").tx(TxState::Unknown));
    h.push(Event::new(3_000, "producer-1", Kind::Ok, Op::TxCheck).msg_id("t3").tx(TxState::Commit));
    copy_delivered(&mut h, 3_010, "t3", "broker-0/orders/2", 0);
    // Nobody ever answered: moved aside and reported.
    acked(&mut h, 60, tx_send("t4", "producer-0", "pay", TxState::Commit));
    h.push(Event::new(9_000, "drain", Kind::Info, Op::TxAside).msg_id("t4"));
    // Its only producer left for good before ending it.
    acked(&mut h, 70, tx_send("t5", "producer-2", "legacy", TxState::Commit));
    h.push(Event::new(80, "producer-2", Kind::Info, Op::Retire).group("legacy"));
    // Committed, dead-lettered, and sent again under its id by an operator:
    // two stored copies for two sends.
    acked(&mut h, 75, tx_send("t8", "producer-1", "pay", TxState::Commit));
    tx_end(&mut h, 76, "producer-1", "t8", TxState::Commit, Kind::Ok);
    copy_delivered(&mut h, 77, "t8", "broker-0/orders/2", 5);
    acked(&mut h, 300, Event::new(0, "operator-billing", Kind::Invoke, Op::Send).msg_id("t8").topic("orders").key("k-t8"));
    copy_delivered(&mut h, 310, "t8", "broker-0/orders/2", 9);
    // A flipped bit destroyed its half before anyone ended it.
    acked(&mut h, 80, tx_send("t7", "producer-1", "pay", TxState::Commit));
    h.push(Event::new(85, "nemesis", Kind::Info, Op::Fault).fault("disk-fault").target("broker-0").msg_id("t7"));
    // Redelivered from the same stored copy: a duplicate, not a second commit.
    acked(&mut h, 90, tx_send("t6", "producer-1", "pay", TxState::Commit));
    tx_end(&mut h, 95, "producer-1", "t6", TxState::Commit, Kind::Ok);
    copy_delivered(&mut h, 100, "t6", "broker-0/orders/3", 4);
    copy_delivered(&mut h, 200, "t6", "broker-0/orders/3", 4);
    h.harness(10_000, Op::End);

    let verdict = check_all(h.events(), &tx_expect());
    let tx = verdict.check("transaction").unwrap();
    assert_eq!(tx.validity, Validity::Valid, "{tx:?}");
    assert_eq!(
        (tx.count("committed"), tx.count("rolled-back"), tx.count("resolved-by-check"), tx.count("moved-aside"), tx.count("orphaned")),
        (6, 1, 3, 1, 1)
    );
    assert_eq!(tx.count("resolve-max-ms"), 2_958);
    assert_eq!(tx.count("destroyed"), 1);
    assert_eq!(verdict.check("lost").unwrap().validity, Validity::Valid, "rolled back, moved aside and orphaned are not lost");
    assert_json_snapshot!(tx);
}

#[test]
fn transaction_fails_on_a_delivered_rollback_a_missing_commit_and_a_second_copy() {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, tx_send("t1", "producer-0", "pay", TxState::Rollback));
    tx_end(&mut h, 20, "producer-0", "t1", TxState::Rollback, Kind::Ok);
    copy_delivered(&mut h, 30, "t1", "broker-0/orders/1", 0);
    acked(&mut h, 40, tx_send("t2", "producer-0", "pay", TxState::Commit));
    tx_end(&mut h, 50, "producer-0", "t2", TxState::Commit, Kind::Ok);
    acked(&mut h, 60, tx_send("t3", "producer-0", "pay", TxState::Commit));
    h.push(Event::new(3_000, "producer-1", Kind::Ok, Op::TxCheck).msg_id("t3").tx(TxState::Commit));
    tx_end(&mut h, 3_100, "producer-0", "t3", TxState::Commit, Kind::Ok);
    copy_delivered(&mut h, 3_010, "t3", "broker-0/orders/2", 0);
    copy_delivered(&mut h, 3_200, "t3", "broker-0/orders/2", 1);
    // The same on a broker that lost power is excused.
    h.nemesis(4_000, Op::Fault, "power-loss", Some("broker-1"));
    acked(&mut h, 4_100, tx_send("t4", "producer-0", "pay", TxState::Commit));
    tx_end(&mut h, 4_110, "producer-0", "t4", TxState::Commit, Kind::Ok);
    copy_delivered(&mut h, 4_120, "t4", "broker-1/orders/0", 7);
    copy_delivered(&mut h, 9_000, "t4", "broker-1/orders/0", 8);
    h.harness(10_000, Op::End);

    let tx = check_transaction(h.events(), &tx_expect());
    assert_eq!(tx.validity, Validity::Invalid);
    let kinds: Vec<&str> = tx.anomalies.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["rollback-delivered", "committed-not-delivered", "committed-twice"]);
    assert_eq!(tx.count("committed-twice-excused"), 1);
    assert_json_snapshot!(tx);
}

fn timed(msg_id: &str, at: u64) -> Event {
    order(msg_id, "TagA", &format!("k-{msg_id}")).deliver_at_ms(at)
}

fn delay_expect(allowance: &[(&str, u64)]) -> CheckConfig {
    CheckConfig {
        groups: vec![group("billing", "*", false)],
        expect: Expect {
            delay: true,
            // Each named broker's clock runs that far ahead from the start.
            clock_moves_ms: allowance.iter().map(|(b, ms)| (b.to_string(), vec![(0, *ms as i64)])).collect(),
            ..Expect::default()
        },
        ..CheckConfig::default()
    }
}

#[test]
fn delay_holds_when_nothing_arrives_before_its_time() {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, timed("d1", 1_000));
    copy_delivered(&mut h, 1_020, "d1", "broker-0/orders/0", 0);
    acked(&mut h, 20, timed("d2", 5_000));
    // Its broker's clock was set forward by 600 ms: 500 ms early is allowed.
    copy_delivered(&mut h, 4_500, "d2", "broker-1/orders/0", 0);
    acked(&mut h, 30, order("plain", "TagA", "k"));
    h.deliver(40, "consumer-billing-1", "billing", "plain", OK);
    h.harness(10_000, Op::End);
    let delay = check_delay(h.events(), &delay_expect(&[("broker-1", 600)]));
    assert_eq!(delay.validity, Validity::Valid, "{delay:?}");
    assert_eq!((delay.count("timed"), delay.count("late-max-ms")), (2, 20));
    assert_json_snapshot!(delay);
}

#[test]
fn delay_fails_on_an_early_timer_and_one_never_delivered() {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, timed("d1", 1_000));
    copy_delivered(&mut h, 999, "d1", "broker-0/orders/0", 0);
    acked(&mut h, 20, timed("d2", 5_000));
    copy_delivered(&mut h, 4_000, "d2", "broker-1/orders/0", 0);
    acked(&mut h, 30, timed("d3", 6_000));
    h.harness(10_000, Op::End);
    let delay = check_delay(h.events(), &delay_expect(&[("broker-1", 600)]));
    assert_eq!(delay.validity, Validity::Invalid);
    let kinds: Vec<&str> = delay.anomalies.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["early", "early", "not-delivered"]);
    assert_json_snapshot!(delay);
}

#[test]
fn liveness_gives_timers_their_brokers_setback_and_stops_counting_when_the_clients_stop() {
    let mut h = HistoryBuilder::new();
    h.harness(60_000, Op::TailStart);
    // Due at 70 s on a broker whose clock went back 15 s: arrives at 84 s,
    // within 70 + 10 + 15 s.
    acked(&mut h, 61_000, timed("d1", 70_000));
    copy_delivered(&mut h, 84_000, "d1", "broker-1/orders/0", 0);
    // Due at 95 s: its deadline (120 s) falls after the clients stopped.
    acked(&mut h, 62_000, timed("d2", 95_000));
    h.harness(100_000, Op::ClientsStopped);
    h.harness(200_000, Op::End);
    let mut cfg = CheckConfig {
        groups: vec![group("billing", "*", false)],
        expect: Expect { liveness_bound_ms: Some(10_000), ..Expect::default() },
        ..CheckConfig::default()
    };
    cfg.expect.clock_setback_ms.insert("broker-1".into(), 15_000);
    let live = check_liveness(h.events(), &cfg);
    assert_eq!(live.validity, Validity::Valid, "{live:?}");
    assert_eq!((live.count("pending"), live.count("late"), live.count("never")), (1, 0, 0));
    cfg.expect.clock_setback_ms.clear();
    let late = check_liveness(h.events(), &cfg);
    assert_eq!(late.count("late"), 1, "without the setback the timer is late");
}
