//! recovered: sends of unknown outcome that were consumed anyway.
//! Hand-written histories, one that holds and one that violates; the
//! verdicts are insta snapshots, their validities asserted too.

use checker::history::HistoryBuilder;
use checker::{check_recovered, ConsumeOutcome, Event, Expect, Kind, Op, Validity};
use insta::assert_json_snapshot;

const OK: ConsumeOutcome = ConsumeOutcome::Success;

mod common;
use common::{acked, config, order};

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
