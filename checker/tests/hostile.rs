//! hostile: hostile clients' requests refused, legal ones accepted, all answered.
//! Hand-written histories, one that holds and one that violates; the
//! verdicts are insta snapshots, their validities asserted too.

use checker::history::HistoryBuilder;
use checker::{check_hostile, Event, Expect, Kind, Op, Validity};
use insta::assert_json_snapshot;

mod common;
use common::config;

fn hostile(h: &mut HistoryBuilder, t: u64, detail: &str) -> u64 {
    h.push(Event::new(t, "hostile-0", Kind::Info, Op::Hostile).detail(detail))
}

/// Hostile requests during faults and in the tail, each answered as it
/// should be: refused past a limit, accepted at one, or not at all while a
/// fault held (before tail-start).
fn hostile_history() -> HistoryBuilder {
    let mut h = HistoryBuilder::new();
    hostile(&mut h, 10, "oversized-frame -> closed");
    hostile(&mut h, 11, "properties-past-limit -> MessageIllegal");
    hostile(&mut h, 12, "properties-at-limit -> Success");
    hostile(&mut h, 13, "wrong-version -> UnsupportedVersion");
    hostile(&mut h, 14, "unknown-topic-pull -> no-answer");
    h.harness(100, Op::TailStart);
    hostile(&mut h, 110, "properties-past-limit -> MessageIllegal");
    hostile(&mut h, 111, "connection-flood -> opened-16");
    h.harness(300, Op::End);
    h
}

#[test]
fn hostile_holds_when_every_hostile_request_is_answered_as_it_should_be() {
    let h = hostile_history();
    let result = check_hostile(h.events(), &config(Expect::default()));
    assert_eq!(result.validity, Validity::Valid);
    assert_eq!(result.count("properties-past-limit MessageIllegal"), 2);
    assert_json_snapshot!(result);
}

#[test]
fn hostile_fails_on_accepted_refused_and_unanswered_requests() {
    let mut h = hostile_history();
    hostile(&mut h, 120, "key-past-limit -> Success");
    hostile(&mut h, 121, "properties-at-limit -> MessageIllegal");
    hostile(&mut h, 122, "unknown-topic-pull -> no-answer");
    let result = check_hostile(h.events(), &config(Expect::default()));
    assert_eq!(result.validity, Validity::Invalid);
    let kinds: Vec<&str> = result.anomalies.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["accepted-past-limit", "refused-at-limit", "unanswered"]);
    assert_json_snapshot!(result);
}
