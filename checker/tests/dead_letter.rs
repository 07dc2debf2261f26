//! Dead letters counted from the consumers' own results: a chain of copies
//! that failed one after another reaches the DLQ after max + 1 failures,
//! whatever reconsume level the broker wrote on its copies.

mod common;

use checker::history::HistoryBuilder;
use checker::{check_dead_letter, CheckConfig, ConsumeOutcome, Event, Expect, Kind, Op, Validity, DEDUPE_UNAVAILABLE, LOCAL_RETRY, NOT_EXPECTED};
use common::{acked, config, order};
use insta::assert_json_snapshot;

const OK: ConsumeOutcome = ConsumeOutcome::Success;
const RETRY: ConsumeOutcome = ConsumeOutcome::RetryLater;

/// Delay levels of 1 s to 18 s, max reconsume times 2 for billing: a retry
/// after reconsumption n waits n + 3 s, and the third failure dead-letters.
fn dead_letter_config() -> CheckConfig {
    let mut cfg = config(Expect {
        dead_letter: true,
        delay_levels_ms: (1..=18).map(|s| s * 1_000).collect(),
        dead_letter_bound_ms: Some(1_000),
        ..Expect::default()
    });
    cfg.groups[0].max_reconsume_times = 2;
    cfg
}

/// A delivery to billing of the copy of `msg_id` stored at `queue` and
/// `offset`, at reconsume `level`, by `process`.
#[allow(clippy::too_many_arguments)]
fn copy(h: &mut HistoryBuilder, t: u64, process: &str, msg_id: &str, queue: &str, offset: u64, level: u32, result: ConsumeOutcome) -> u64 {
    h.push(
        Event::new(t, process, Kind::Ok, Op::Deliver)
            .group("billing")
            .msg_id(msg_id)
            .queue(queue)
            .offset(offset)
            .reconsume(level)
            .result(result),
    )
}

const C1: &str = "consumer-billing-1";
const C2: &str = "consumer-billing-2";
const ORDERS: &str = "broker-0/orders/0";
const RETRIES: &str = "broker-0/%RETRY%billing/0";
const ORDERS_1: &str = "broker-1/orders/0";
const RETRIES_1: &str = "broker-1/%RETRY%billing/0";

/// m1 fails on three copies in line and is dead-lettered. m4's level-1
/// copy is handed out again after broker-1 restarts (a clone, no new
/// failure), and m5's first copy is redelivered after a crash and sent back
/// twice: each has three failed copies, and neither was exhausted.
fn passing() -> HistoryBuilder {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 0, order("m1", "TagB", "k1"));
    copy(&mut h, 1_000, C1, "m1", ORDERS, 1, 0, RETRY);
    copy(&mut h, 4_100, C1, "m1", RETRIES, 1, 1, RETRY);
    copy(&mut h, 8_200, C2, "m1", RETRIES, 2, 2, RETRY);

    acked(&mut h, 0, order("m4", "TagB", "k4"));
    copy(&mut h, 1_000, C1, "m4", ORDERS_1, 4, 0, RETRY);
    copy(&mut h, 4_100, C1, "m4", RETRIES_1, 6, 1, RETRY);
    h.nemesis(5_000, Op::Fault, "kill", Some("broker-1"));
    h.nemesis(6_000, Op::Heal, "kill", Some("broker-1"));
    copy(&mut h, 6_500, C2, "m4", RETRIES_1, 7, 1, RETRY);
    copy(&mut h, 10_000, C2, "m4", RETRIES_1, 8, 2, OK);

    acked(&mut h, 0, order("m5", "TagB", "k5"));
    copy(&mut h, 1_000, C1, "m5", ORDERS, 5, 0, RETRY);
    copy(&mut h, 1_500, C2, "m5", ORDERS, 5, 0, RETRY);
    copy(&mut h, 4_100, C1, "m5", RETRIES, 9, 1, RETRY);
    copy(&mut h, 4_600, C2, "m5", RETRIES, 10, 1, RETRY);
    copy(&mut h, 9_000, C2, "m5", RETRIES, 11, 2, OK);

    h.harness(12_000, Op::TailStart);
    dead_letter(&mut h, "m1", DLQ, 8_230);
    h
}

const DLQ: &str = "broker-0/%DLQ%billing/0";
const DLQ_1: &str = "broker-1/%DLQ%billing/0";

/// The final drain finds `msg_id` in the DLQ `queue`, stored at
/// `stored_ms` by its broker's clock.
fn dead_letter(h: &mut HistoryBuilder, msg_id: &str, queue: &str, stored_ms: u64) -> u64 {
    h.push(Event::new(20_000, "drain", Kind::Ok, Op::Dlq).group("billing").msg_id(msg_id).queue(queue).reconsume(3).stored_ms(stored_ms))
}

#[test]
fn dead_letter_holds_when_the_exhausted_chain_is_in_the_dlq_and_clones_and_forks_are_not_counted() {
    let mut h = passing();
    h.harness(20_001, Op::End);
    let result = check_dead_letter(h.events(), &dead_letter_config());
    assert_eq!(result.validity, Validity::Valid, "{result:?}");
    // m1 alone could be counted copy by copy.
    assert_eq!(result.count("failed-chains-in-line"), 1);
    assert_eq!((result.count("not-dead-lettered"), result.count("retried-past-max")), (0, 0));
    assert_json_snapshot!(result);
}

#[test]
fn dead_letter_fails_on_a_chain_retried_at_the_first_level_for_ever_and_one_past_its_max() {
    let mut h = passing();
    // m2: the broker's retry copies keep reconsume level 0, so the message
    // goes round for ever; the final drain consumes the last copy.
    acked(&mut h, 0, order("m2", "TagB", "k2"));
    copy(&mut h, 1_000, C1, "m2", ORDERS, 2, 0, RETRY);
    copy(&mut h, 4_100, C1, "m2", RETRIES, 20, 0, RETRY);
    copy(&mut h, 7_200, C2, "m2", RETRIES, 21, 0, RETRY);
    copy(&mut h, 10_300, C2, "m2", RETRIES, 22, 0, RETRY);
    copy(&mut h, 19_000, "drain", "m2", RETRIES, 23, 0, OK);
    // m3: the copy at the max failed, yet a copy came back at level 3
    // (and was consumed) instead of going to the DLQ.
    acked(&mut h, 0, order("m3", "TagB", "k3"));
    copy(&mut h, 1_000, C1, "m3", ORDERS, 3, 0, RETRY);
    copy(&mut h, 4_100, C1, "m3", RETRIES, 30, 1, RETRY);
    copy(&mut h, 8_200, C1, "m3", RETRIES, 31, 2, RETRY);
    copy(&mut h, 13_300, C1, "m3", RETRIES, 32, 3, OK);
    h.harness(20_001, Op::End);
    let result = check_dead_letter(h.events(), &dead_letter_config());
    assert_eq!(result.validity, Validity::Invalid);
    let found: Vec<(&str, bool)> = result.anomalies.iter().map(|a| (a.kind.as_str(), a.detail.starts_with("m2"))).collect();
    // m3 is both: retried past its max, and so never dead-lettered.
    assert_eq!(found, [("not-dead-lettered", true), ("retried-past-max", true), ("not-dead-lettered", false), ("retried-past-max", false)]);
    assert_json_snapshot!(result);
}

/// m6's dead letter is stored 5 s after its last failure (held at a delay
/// level); m7's as late, but broker-1 was killed in between; m8's 2.4 s
/// late by broker-1's clock, which ran 2 s ahead then.
#[test]
fn dead_letter_fails_on_a_dead_letter_stored_late_with_no_fault_to_excuse_it() {
    let mut h = passing();
    for (msg_id, queue, retries) in [("m6", ORDERS, RETRIES), ("m7", ORDERS_1, RETRIES_1), ("m8", ORDERS_1, RETRIES_1)] {
        acked(&mut h, 0, order(msg_id, "TagB", msg_id));
        let base = if msg_id == "m8" { 40_000 } else { 0 };
        copy(&mut h, base + 1_000, C1, msg_id, queue, 60, 0, RETRY);
        copy(&mut h, base + 4_100, C1, msg_id, retries, 61, 1, RETRY);
        copy(&mut h, base + 8_200, C2, msg_id, retries, 62, 2, RETRY);
    }
    h.nemesis(9_000, Op::Fault, "kill", Some("broker-1"));
    h.nemesis(12_000, Op::Heal, "kill", Some("broker-1"));
    dead_letter(&mut h, "m6", DLQ, 13_200);
    dead_letter(&mut h, "m7", DLQ_1, 13_200);
    dead_letter(&mut h, "m8", DLQ_1, 50_600);
    h.harness(60_001, Op::End);
    let mut cfg = dead_letter_config();
    cfg.expect.clock_moves_ms = [("broker-1".to_string(), vec![(30_000, 2_000)])].into();
    let result = check_dead_letter(h.events(), &cfg);
    assert_eq!(result.validity, Validity::Invalid);
    let found: Vec<(&str, &str)> = result.anomalies.iter().map(|a| (a.kind.as_str(), &a.detail[..2])).collect();
    assert_eq!(found, [("dead-lettered-late", "m6")]);
    assert_eq!(result.count("dead-letter-lateness-max-ms"), 5_000);
    assert_json_snapshot!(result);
}

/// Delay levels of 1 s to 18 s, max reconsume times 2 for billing: a retry
/// after reconsumption n waits n + 3 s.
fn level_table_config() -> CheckConfig {
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
    let result = check_dead_letter(h.events(), &level_table_config());
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
    let result = check_dead_letter(h.events(), &level_table_config());
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
    let result = check_dead_letter(h.events(), &level_table_config());
    assert_eq!(result.validity, Validity::Invalid);
    let mut kinds: Vec<&str> = result.anomalies.iter().map(|a| a.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["consumed-and-dead-lettered", "dead-lettered-early", "not-dead-lettered", "retried-without-failure"]);
    assert_json_snapshot!(result);
}
