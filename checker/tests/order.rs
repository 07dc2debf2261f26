//! order: per sharding key, in order, never two consumers at once.
//! Hand-written histories, one that holds and one that violates; the
//! verdicts are insta snapshots, their validities asserted too.

use checker::history::HistoryBuilder;
use checker::{check_order, ConsumeOutcome, Event, Expect, Kind, Op, Validity};
use insta::assert_json_snapshot;

const OK: ConsumeOutcome = ConsumeOutcome::Success;
const RETRY: ConsumeOutcome = ConsumeOutcome::RetryLater;

mod common;
use common::{acked, config, order, shard_of};

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
