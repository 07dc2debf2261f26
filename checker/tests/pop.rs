//! Pop: a POP group's attempts have one holder each, nothing comes while
//! invisible, nothing acknowledged comes again, nothing past the most
//! attempts; a power loss on the message's broker excuses what a lost
//! record explains.

mod common;

use checker::history::HistoryBuilder;
use checker::{check_dead_letter, check_duplicated, check_lost, check_pop, CheckConfig, ConsumeOutcome, Event, Expect, Kind, Op, Validity};
use common::{acked, group, order};
use insta::assert_json_snapshot;

const QUEUE: &str = "broker-0/orders/0";

/// billing is a POP group with 2 retries (3 attempts).
fn config() -> CheckConfig {
    let mut billing = group("billing", "*", false);
    billing.pop = true;
    billing.max_reconsume_times = 2;
    CheckConfig {
        groups: vec![billing],
        expect: Expect { dead_letter: true, redelivery_bound_ms: Some(10_000), ..Default::default() },
        ..Default::default()
    }
}

/// A POP delivery of `msg_id`'s `attempt` to `process`, received at `t`
/// with a 10 s invisible time, answered 100 ms later.
fn received(h: &mut HistoryBuilder, t: u64, process: &str, msg_id: &str, attempt: u32, outcome: ConsumeOutcome) -> u64 {
    h.push(
        Event::new(t + 100, process, Kind::Ok, Op::Deliver)
            .group("billing")
            .msg_id(msg_id)
            .topic("orders")
            .queue(QUEUE)
            .offset(0)
            .reconsume(attempt - 1)
            .result(outcome)
            .start_ms(t)
            .visible_ms(t + 10_000),
    )
}

/// `process` acknowledges `attempt` at `t`; `kind` is how it ended.
fn ack(h: &mut HistoryBuilder, t: u64, process: &str, msg_id: &str, attempt: u32, kind: Kind) {
    let draft = |kind| Event::new(t, process, kind, Op::Ack).group("billing").msg_id(msg_id).queue(QUEUE).offset(0).reconsume(attempt - 1);
    let invoke = h.push(draft(Kind::Invoke));
    h.push(draft(kind).of(invoke));
}

/// m0 fails once and is not acked; after its invisible time it comes back
/// to another consumer as attempt 2, which consumes and acks it. The first
/// consumer's late ack of attempt 1 is refused.
fn healthy() -> HistoryBuilder {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 0, order("m0", "TagA", "k0"));
    received(&mut h, 1_000, "consumer-billing-1", "m0", 1, ConsumeOutcome::RetryLater);
    received(&mut h, 11_500, "consumer-billing-2", "m0", 2, ConsumeOutcome::Success);
    ack(&mut h, 11_700, "consumer-billing-2", "m0", 2, Kind::Ok);
    ack(&mut h, 12_000, "consumer-billing-1", "m0", 1, Kind::Fail);
    h
}

#[test]
fn pop_holds_when_an_unacknowledged_message_comes_back_after_its_invisible_time_as_the_next_attempt() {
    let mut h = healthy();
    h.harness(60_000, Op::End);
    let result = check_pop(h.events(), &config());
    assert_eq!(result.validity, Validity::Valid, "{result:?}");
    assert_eq!((result.count("deliveries"), result.count("received-again"), result.count("acks"), result.count("acks-refused")), (2, 1, 1, 1));
    assert_json_snapshot!(result);
    // A POP group's redelivery is no retry-topic chain and no resume.
    for other in [check_dead_letter(h.events(), &config()), check_duplicated(h.events(), &config()), check_lost(h.events(), &config())] {
        assert_eq!(other.validity, Validity::Valid, "{other:?}");
    }
    // A producer's retry stored m0 a second time: that copy is handed out
    // on its own, as its own attempt 1.
    let mut copies = healthy();
    copies.push(
        Event::new(13_100, "consumer-billing-3", Kind::Ok, Op::Deliver)
            .group("billing")
            .msg_id("m0")
            .queue("broker-1/orders/2")
            .offset(7)
            .reconsume(0)
            .result(ConsumeOutcome::Success)
            .start_ms(13_000)
            .visible_ms(23_000),
    );
    let result = check_pop(copies.events(), &config());
    assert_eq!(result.validity, Validity::Valid, "{result:?}");
    // Without a POP group the check is not asked for.
    let push = CheckConfig { groups: vec![group("billing", "*", false)], ..Default::default() };
    assert!(check_pop(h.events(), &push).note.is_some());
}

#[test]
fn pop_fails_on_a_shared_attempt_an_early_return_an_acknowledged_return_and_an_attempt_past_the_most() {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 0, order("m0", "TagA", "k0"));
    acked(&mut h, 0, order("m1", "TagA", "k1"));
    // m0: attempt 1 goes to two consumers at once, and comes back 3 s
    // into its 10 s invisible time.
    received(&mut h, 1_000, "consumer-billing-1", "m0", 1, ConsumeOutcome::Success);
    received(&mut h, 1_200, "consumer-billing-2", "m0", 1, ConsumeOutcome::Success);
    ack(&mut h, 1_400, "consumer-billing-1", "m0", 1, Kind::Ok);
    received(&mut h, 4_200, "consumer-billing-2", "m0", 2, ConsumeOutcome::Success);
    // m1 fails three times and is received a fourth time.
    for attempt in 1..=4 {
        received(&mut h, u64::from(attempt) * 11_000, "consumer-billing-1", "m1", attempt, ConsumeOutcome::RetryLater);
    }
    h.harness(90_000, Op::End);
    let result = check_pop(h.events(), &config());
    assert_eq!(result.validity, Validity::Invalid, "{result:?}");
    let kinds = ["attempt-received-twice", "received-while-invisible", "acknowledged-received-again", "received-past-max-attempts"];
    assert_eq!(kinds.map(|k| result.count(k)), [1, 1, 1, 1], "{result:?}");
    assert_json_snapshot!(result);
}

#[test]
fn a_power_loss_on_the_messages_broker_excuses_an_acknowledged_return_and_a_fault_elsewhere_does_not() {
    let returned = |target: &str| {
        let mut h = HistoryBuilder::new();
        acked(&mut h, 0, order("m0", "TagA", "k0"));
        received(&mut h, 1_000, "consumer-billing-1", "m0", 1, ConsumeOutcome::Success);
        ack(&mut h, 1_200, "consumer-billing-1", "m0", 1, Kind::Ok);
        h.nemesis(5_000, Op::Fault, "power-loss", Some(target));
        h.nemesis(7_000, Op::Heal, "power-loss", Some(target));
        received(&mut h, 12_000, "consumer-billing-2", "m0", 2, ConsumeOutcome::Success);
        h.harness(60_000, Op::End);
        h
    };
    let mut mapped = config();
    mapped.expect.broker_groups = [("broker-0".to_string(), "broker-0".to_string()), ("broker-1".to_string(), "broker-1".to_string())].into();
    let here = check_pop(returned("broker-0").events(), &mapped);
    assert_eq!((here.validity, here.count("excused")), (Validity::Valid, 1), "{here:?}");
    let elsewhere = check_pop(returned("broker-1").events(), &mapped);
    assert_eq!(elsewhere.count("acknowledged-received-again"), 1, "{elsewhere:?}");
    // A consumer's crash explains nothing about the broker's records.
    let crash = check_pop(returned("consumer-billing-1").events(), &mapped);
    assert_eq!(crash.validity, Validity::Invalid, "{crash:?}");
}

#[test]
fn a_broker_clock_set_back_while_it_held_the_lease_excuses_an_early_return_by_as_much_and_no_more() {
    // m0 comes back 2 s before its invisible time ends.
    let early = |clock_back_ms: i64| {
        let mut h = HistoryBuilder::new();
        acked(&mut h, 0, order("m0", "TagA", "k0"));
        received(&mut h, 1_000, "consumer-billing-1", "m0", 1, ConsumeOutcome::RetryLater);
        received(&mut h, 9_000, "consumer-billing-2", "m0", 2, ConsumeOutcome::Success);
        h.harness(60_000, Op::End);
        let mut cfg = config();
        // broker-0's clock stood back while it took the lease, then caught up.
        cfg.expect.clock_moves_ms = [("broker-0".to_string(), vec![(500, -clock_back_ms), (3_000, clock_back_ms)])].into();
        check_pop(h.events(), &cfg)
    };
    assert_eq!(early(5_000).validity, Validity::Valid, "{:?}", early(5_000));
    assert_eq!(early(1_000).count("received-while-invisible"), 1, "{:?}", early(1_000));
}

#[test]
fn an_attempt_begun_late_after_the_next_one_is_no_early_return() {
    // consumer-1 received attempt 2 at 11.5 s but began it only at 30 s
    // (its workers were busy); attempt 3 had come to consumer-2 at 22 s.
    let mut h = HistoryBuilder::new();
    acked(&mut h, 0, order("m0", "TagA", "k0"));
    received(&mut h, 1_000, "consumer-billing-1", "m0", 1, ConsumeOutcome::RetryLater);
    h.push(
        Event::new(30_100, "consumer-billing-1", Kind::Ok, Op::Deliver)
            .group("billing")
            .msg_id("m0")
            .queue(QUEUE)
            .offset(0)
            .reconsume(1)
            .result(ConsumeOutcome::Success)
            .start_ms(30_000)
            .visible_ms(21_500),
    );
    received(&mut h, 22_000, "consumer-billing-2", "m0", 3, ConsumeOutcome::Success);
    h.harness(60_000, Op::End);
    let result = check_pop(h.events(), &config());
    assert_eq!(result.validity, Validity::Valid, "{result:?}");
}
