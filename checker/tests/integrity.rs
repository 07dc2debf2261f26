//! integrity: every delivery equals its send, inside its group's filter.
//! Hand-written histories, one that holds and one that violates; the
//! verdicts are insta snapshots, their validities asserted too.

use checker::history::HistoryBuilder;
use checker::{check_integrity, ConsumeOutcome, Event, Expect, Kind, Op, Validity};
use insta::assert_json_snapshot;
use std::collections::BTreeMap;

const OK: ConsumeOutcome = ConsumeOutcome::Success;
const RETRY: ConsumeOutcome = ConsumeOutcome::RetryLater;

mod common;
use common::{acked, config, order};

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

/// billing takes every order; gray selects by an SQL92 condition over the
/// properties: m1 (region eu, amount 10) is gray's, m2 (region us) is not,
/// nor is m4, which lacks the region (unknown is not a match).
fn sql_config() -> checker::CheckConfig {
    let mut gray = common::group("gray", "*", false);
    gray.sql = Some("region = 'eu' OR (amount > 15 AND region IS NULL)".into());
    checker::CheckConfig { groups: vec![common::group("billing", "*", false), gray], fifo_topics: vec![], expect: Expect::default() }
}

fn sql_history(leak: bool) -> HistoryBuilder {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 10, m1());
    acked(&mut h, 11, m2());
    acked(&mut h, 12, order("m4", "TagA", "k4").props(props(&[("amount", "5")])));
    h.push(arrival(20, "consumer-gray-1", "gray", m1()));
    for (t, message) in [(21, m1()), (22, m2())] {
        h.push(arrival(t, "consumer-billing-1", "billing", message));
    }
    if leak {
        h.push(arrival(30, "consumer-gray-1", "gray", m2()));
        h.push(arrival(31, "consumer-gray-1", "gray", order("m4", "TagA", "k4").props(props(&[("amount", "5")]))));
    }
    h
}

#[test]
fn integrity_holds_when_an_sql92_group_gets_only_what_its_condition_selects() {
    let mut h = sql_history(false);
    h.harness(100, Op::End);
    let result = check_integrity(h.events(), &sql_config());
    assert_eq!(result.validity, Validity::Valid, "{result:?}");
    assert_json_snapshot!(result);
}

#[test]
fn integrity_fails_when_an_sql92_group_gets_what_its_condition_does_not_select() {
    let mut h = sql_history(true);
    h.harness(100, Op::End);
    let result = check_integrity(h.events(), &sql_config());
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!(result.count("filter-leak"), 2, "{result:?}");
    assert!(result.anomalies[0].detail.contains("whose SQL92 condition region = 'eu'"), "{:?}", result.anomalies);
    assert_json_snapshot!(result);
}
