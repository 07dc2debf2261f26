//! liveness: every acknowledged message delivered by its deadline once the faults heal.
//! Hand-written histories, one that holds and one that violates; the
//! verdicts are insta snapshots, their validities asserted too.

use checker::history::HistoryBuilder;
use checker::{check_liveness, CheckConfig, ConsumeOutcome, Event, Expect, Kind, Op, Validity, NOT_EXPECTED};
use insta::assert_json_snapshot;

const OK: ConsumeOutcome = ConsumeOutcome::Success;

mod common;
use common::{acked, config, copy_delivered, group, order, timed};

fn liveness_config() -> CheckConfig {
    config(Expect {
        liveness_bound_ms: Some(50),
        ..Expect::default()
    })
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
