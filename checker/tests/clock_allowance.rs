//! Early deliveries are forgiven by how far the clock of the broker that
//! held the message ran ahead while it held it, not by the largest move the
//! run ever made to that broker's clock.

mod common;

use checker::history::HistoryBuilder;
use checker::{check_dead_letter, check_delay, CheckConfig, ConsumeOutcome, Event, Expect, Kind, Op, Validity};
use common::{acked, config, copy_delivered, order, timed};
use insta::assert_json_snapshot;

/// broker-0's clock runs 700 ms ahead from 5 s to 25 s; delay levels of
/// 1 s to 18 s; billing retries twice.
fn skewed(expect: Expect) -> CheckConfig {
    let mut cfg = config(Expect {
        clock_moves_ms: [("broker-0".to_string(), vec![(5_000, 700), (25_000, -700)])].into(),
        delay_levels_ms: (1..=18).map(|s| s * 1_000).collect(),
        ..expect
    });
    cfg.groups[0].max_reconsume_times = 2;
    cfg
}

/// d1 is held while the skew lasts and comes 600 ms early: forgiven. d2 is
/// held after the skew was taken back and comes 300 ms early.
fn timers(d2_at_ms: u64) -> HistoryBuilder {
    let mut h = HistoryBuilder::new();
    acked(&mut h, 6_000, timed("d1", 10_000));
    copy_delivered(&mut h, 9_400, "d1", "broker-0/orders/0", 0);
    acked(&mut h, 30_000, timed("d2", 35_000));
    copy_delivered(&mut h, d2_at_ms, "d2", "broker-0/orders/0", 1);
    h.harness(60_000, Op::End);
    h
}

#[test]
fn delay_forgives_a_skew_only_while_it_lasted() {
    let on_time = check_delay(timers(35_010).events(), &skewed(Expect { delay: true, ..Expect::default() }));
    assert_eq!(on_time.validity, Validity::Valid, "{on_time:?}");
    assert_eq!(on_time.count("clock-allowance-max-ms"), 700);
    assert_json_snapshot!("delay_on_time", on_time);

    // With the run-wide allowance of 700 ms this passed.
    let early = check_delay(timers(34_700).events(), &skewed(Expect { delay: true, ..Expect::default() }));
    assert_eq!(early.validity, Validity::Invalid);
    assert_eq!(early.count("early"), 1);
    assert!(early.anomalies[0].detail.starts_with("d2"), "{:?}", early.anomalies);
    assert_json_snapshot!("delay_early", early);
}

#[test]
fn a_retry_is_forgiven_only_the_skew_between_its_failure_and_its_return() {
    let attempt = |h: &mut HistoryBuilder, t: u64, msg_id: &str, level: u32, result: ConsumeOutcome| {
        h.push(
            Event::new(t, "consumer-billing-1", Kind::Ok, Op::Deliver)
                .group("billing")
                .msg_id(msg_id)
                .queue(if level == 0 { "broker-0/orders/0" } else { "broker-0/%RETRY%billing/0" })
                .reconsume(level)
                .result(result),
        )
    };
    let mut h = HistoryBuilder::new();
    // r1 fails at 6 s and returns 2.5 s later, during the skew: level 3
    // waits 3 s, 500 ms early is within the 700 ms.
    acked(&mut h, 0, order("r1", "TagB", "k1"));
    attempt(&mut h, 6_000, "r1", 0, ConsumeOutcome::RetryLater);
    attempt(&mut h, 8_500, "r1", 1, ConsumeOutcome::Success);
    // r2 fails at 30 s, after the skew, and returns 2.5 s later.
    acked(&mut h, 0, order("r2", "TagB", "k2"));
    attempt(&mut h, 30_000, "r2", 0, ConsumeOutcome::RetryLater);
    attempt(&mut h, 32_500, "r2", 1, ConsumeOutcome::Success);
    h.harness(60_000, Op::End);
    let result = check_dead_letter(h.events(), &skewed(Expect { dead_letter: true, ..Expect::default() }));
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!((result.count("retry-early"), result.count("retry-clock-allowance-max-ms")), (1, 700));
    assert!(result.anomalies[0].detail.starts_with("r2"), "{:?}", result.anomalies);
    assert_json_snapshot!(result);
}
