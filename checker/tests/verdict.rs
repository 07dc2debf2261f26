//! The verdict: the worst validity wins, and the summary counts.
//! Hand-written histories, one that holds and one that violates; the
//! verdicts are insta snapshots, their validities asserted too.

use checker::history::HistoryBuilder;
use checker::{check_all, ConsumeOutcome, Expect, Op, Validity};
use insta::assert_json_snapshot;

const OK: ConsumeOutcome = ConsumeOutcome::Success;

mod common;
use common::{config, shard_of};

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
            "offsets",
            "reset",
            "pop",
            "reply"
        ]
    );
    let summary = verdict.summary_counts();
    assert_eq!(
        summary.to_string(),
        "lost=1 unexpected=0 dup=1 order=2 eo=0 corrupt=0 late=0 stalled=0 hostile=0 dl=0 tx=0 delay=0 failover=0 offsets=0 reset=0 pop=0 reply=0"
    );
    assert_json_snapshot!(verdict);

    let json = serde_json::to_string(&verdict).unwrap();
    assert_eq!(
        serde_json::from_str::<checker::Verdict>(&json).unwrap(),
        verdict
    );
}
