//! progress: sends are acknowledged once the faults have healed.
//! Hand-written histories, one that holds and one that violates; the
//! verdicts are insta snapshots, their validities asserted too.

use checker::history::HistoryBuilder;
use checker::{check_progress, CheckConfig, ConsumeOutcome, Event, Expect, Kind, Op, Validity, NOT_EXPECTED};
use insta::assert_json_snapshot;

const OK: ConsumeOutcome = ConsumeOutcome::Success;

mod common;
use common::{config, order};

fn progress_config() -> CheckConfig {
    config(Expect {
        progress_min_permille: Some(900),
        progress_grace_ms: 10,
        ..Expect::default()
    })
}

/// Sends in the window at 110, 120, ...: the first `acked` acknowledged,
/// the rest refused. Before the window, one refused send that must not count.
fn progress_history(acked_count: u64, total: u64) -> HistoryBuilder {
    let mut h = HistoryBuilder::new();
    h.harness(100, Op::TailStart);
    h.send(105, order("early", "TagB", "k-early"), Some((106, Kind::Fail)));
    for i in 0..total {
        let t = 110 + 10 * i;
        let outcome = if i < acked_count { Kind::Ok } else { Kind::Fail };
        h.send(t, order(&format!("m{i}"), "TagB", &format!("k{i}")), Some((t + 2, outcome)));
    }
    h.deliver(115, "consumer-billing-1", "billing", "m0", OK);
    h.harness(300, Op::End);
    h
}

#[test]
fn progress_holds_when_the_settled_tail_acknowledges_enough() {
    let h = progress_history(9, 10);
    let result = check_progress(h.events(), &progress_config());
    assert_eq!(result.validity, Validity::Valid);
    assert_eq!((result.count("attempted"), result.count("acknowledged")), (10, 9));
    assert_eq!(result.count("share-permille"), 900);
    assert_eq!(result.count("delivered"), 1);
    assert_json_snapshot!(result);
}

#[test]
fn progress_fails_when_the_cluster_stalls_after_the_faults_heal() {
    let h = progress_history(3, 10);
    let result = check_progress(h.events(), &progress_config());
    assert_eq!(result.validity, Validity::Invalid);
    assert_eq!(result.count("stalled"), 1);
    assert_eq!(result.anomalies[0].kind, "stalled");
    assert_json_snapshot!(result);

    // No send at all once the window opens is a stall too.
    let silent = progress_history(0, 0);
    assert_eq!(check_progress(silent.events(), &progress_config()).validity, Validity::Invalid);
    // Without a tail-start the window is unknown; without the expectation
    // nothing is judged.
    let no_tail: Vec<Event> = h.events().iter().filter(|e| e.op != Op::TailStart).cloned().collect();
    assert_eq!(check_progress(&no_tail, &progress_config()).validity, Validity::Unknown);
    let unexpected = check_progress(h.events(), &config(Expect::default()));
    assert_eq!(unexpected.note.as_deref(), Some(NOT_EXPECTED));
}
