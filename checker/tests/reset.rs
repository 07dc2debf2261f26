//! Reset: an operator's rewind of a group's offsets brings back what the
//! group consumed from the reset point on.

mod common;

use checker::history::HistoryBuilder;
use checker::{check_duplicated, check_offsets, check_reset, CheckConfig, ConsumeOutcome, Event, Kind, Op, Validity};
use common::{acked, order};
use insta::assert_json_snapshot;

const QUEUE: &str = "broker-0/orders/0";

/// A delivery of `msg_id` to billing from broker-0's queue 0 at `offset`.
fn at(h: &mut HistoryBuilder, t: u64, process: &str, msg_id: &str, offset: u64) -> u64 {
    h.push(
        Event::new(t, process, Kind::Ok, Op::Deliver)
            .group("billing")
            .msg_id(msg_id)
            .queue(QUEUE)
            .offset(offset)
            .result(ConsumeOutcome::Success),
    )
}

/// m0..m3 at offsets 0..3, consumed by 10 s; the operator rewinds billing
/// to offset 1 at 20 s (done at 20.05 s). Then the replay: `replayed` of
/// m1..m3 come again, from consumer-billing-2, which took the queue anew
/// at offset 1.
fn rewound(replayed: &[u64]) -> HistoryBuilder {
    let mut h = HistoryBuilder::new();
    for n in 0..4 {
        acked(&mut h, 0, order(&format!("m{n}"), "TagA", &format!("k{n}")));
    }
    for n in 0..4 {
        at(&mut h, 1_000 + n * 1_000, "consumer-billing-1", &format!("m{n}"), n);
    }
    let commit = |t: u64, op: Op, offset: u64| Event::new(t, "consumer-billing-1", Kind::Ok, op).group("billing").queue(QUEUE).offset(offset);
    h.push(commit(9_000, Op::OffsetCommit, 4));
    h.push(Event::new(20_000, "resetter-billing", Kind::Invoke, Op::OffsetReset).group("billing").detail("to 1000 ms on orders"));
    h.push(Event::new(20_050, "resetter-billing", Kind::Ok, Op::OffsetReset).group("billing").queue(QUEUE).offset(1));
    h.push(Event::new(21_000, "consumer-billing-2", Kind::Ok, Op::OffsetResume).group("billing").queue(QUEUE).offset(1));
    for &n in replayed {
        at(&mut h, 21_000 + n * 100, "consumer-billing-2", &format!("m{n}"), n);
    }
    h
}

#[test]
fn reset_holds_when_everything_from_the_reset_point_comes_again() {
    let mut h = rewound(&[1, 2, 3]);
    h.harness(90_000, Op::End);
    let result = check_reset(h.events(), &CheckConfig::default());
    assert_eq!(result.validity, Validity::Valid, "{result:?}");
    assert_eq!((result.count("resets"), result.count("owed"), result.count("not-replayed")), (1, 3, 0));
    assert_json_snapshot!(result);
    // The replay is a redelivery the reset explains, and a resume below
    // the commit before it is no step back.
    let config = CheckConfig { expect: checker::Expect { redelivery_bound_ms: Some(10_000), ..Default::default() }, ..Default::default() };
    let duplicated = check_duplicated(h.events(), &config);
    assert_eq!((duplicated.validity, duplicated.count("redelivered-beyond-progress")), (Validity::Valid, 0), "{duplicated:?}");
    let offsets = check_offsets(h.events(), &CheckConfig::default());
    assert_eq!((offsets.validity, offsets.count("commit-went-back")), (Validity::Valid, 0), "{offsets:?}");
}

#[test]
fn reset_fails_when_a_consumer_undid_the_rewind() {
    // m2 and m3 never came again: a consumer that missed the reset
    // committed its old position over it.
    let mut h = rewound(&[1]);
    h.harness(90_000, Op::End);
    let result = check_reset(h.events(), &CheckConfig::default());
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!((result.count("owed"), result.count("not-replayed")), (3, 2));
    assert!(result.anomalies[0].detail.contains("reset to 1") && result.anomalies[0].detail.contains("m2 at offset 2"), "{:?}", result.anomalies);
    assert_json_snapshot!(result);
}

#[test]
fn offsets_fail_when_a_group_resumes_below_its_reset() {
    // After the reset to 1, a resume at 0 starts below it.
    let mut h = rewound(&[1, 2, 3]);
    h.push(Event::new(30_000, "consumer-billing-3", Kind::Ok, Op::OffsetResume).group("billing").queue(QUEUE).offset(0));
    h.harness(90_000, Op::End);
    let offsets = check_offsets(h.events(), &CheckConfig::default());
    assert_eq!((offsets.validity, offsets.count("commit-went-back")), (Validity::Invalid, 1), "{offsets:?}");
    assert!(offsets.anomalies[0].detail.contains("at offset 0, though the broker had taken 1"), "{:?}", offsets.anomalies);
}
