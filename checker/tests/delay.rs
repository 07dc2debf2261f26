//! delay: timers and delayed messages never early, and delivered.
//! Hand-written histories, one that holds and one that violates; the
//! verdicts are insta snapshots, their validities asserted too.

use checker::history::HistoryBuilder;
use checker::{check_delay, CheckConfig, ConsumeOutcome, Expect, Op, Validity};
use insta::assert_json_snapshot;

const OK: ConsumeOutcome = ConsumeOutcome::Success;

mod common;
use common::{acked, copy_delivered, group, order, timed};

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
