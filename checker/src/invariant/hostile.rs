//! **hostile**: what a buggy or malicious client sends is refused, what is
//! legal is not, and every request is answered once the faults have healed.

use super::Invariant;
use crate::config::CheckConfig;
use crate::history::{Event, Op};
use crate::index::Index;
use crate::verdict::{CheckResult, Validity};

/// Kinds of hostile request the broker must never accept.
const MUST_REFUSE: [&str; 8] = [
    "oversized-frame",
    "malformed-frame",
    "wrong-version",
    "body-past-limit",
    "properties-past-limit",
    "key-past-limit",
    "tag-illegal",
    "topic-past-limit",
];

/// Kinds at a limit: legal, so the broker must not call them illegal.
const MUST_ACCEPT: [&str; 1] = ["properties-at-limit"];

/// Answers that mean the request got none.
const UNANSWERED: [&str; 2] = ["no-answer", "unreachable"];

/// Judges the `hostile` events: counts every `<kind> <answer>` pair, and
/// reports `accepted-past-limit` (a request past a limit answered Success),
/// `refused-at-limit` (a legal request at a limit answered MessageIllegal)
/// and `unanswered` (no answer nor closed connection for a request made in
/// the fault-free tail; during faults the network may eat it). Any of them
/// is invalid. A history without hostile events is valid with a note.
pub fn check_hostile(history: &[Event], cfg: &CheckConfig) -> CheckResult {
    hostile(history, cfg, &Index::build(history, cfg))
}

/// [`check_hostile`] over an index built once for every check.
pub(crate) fn hostile<'a>(history: &'a [Event], _cfg: &CheckConfig, index: &Index<'a>) -> CheckResult {
    let mut result = CheckResult::new(Invariant::Hostile.name());
    let events: Vec<&Event> = history.iter().filter(|e| e.op == Op::Hostile).collect();
    if events.is_empty() {
        result.note = Some("no hostile client in this run".into());
        return result;
    }
    let tail_ms = index.tail_start.map(|e| e.t_ms);
    for event in events {
        let detail = event.detail.as_deref().unwrap_or("");
        let (kind, answer) = detail.split_once(" -> ").unwrap_or((detail, "?"));
        let key = format!("{kind} {answer}");
        result.set(&key, result.count(&key) + 1);
        let anomaly = if MUST_REFUSE.contains(&kind) && answer == "Success" {
            Some(("accepted-past-limit", format!("{} sent {kind} and the broker accepted it", event.process)))
        } else if MUST_ACCEPT.contains(&kind) && answer == "MessageIllegal" {
            Some(("refused-at-limit", format!("{} sent {kind}, which is legal, and the broker refused it", event.process)))
        } else if UNANSWERED.contains(&answer) && tail_ms.is_some_and(|tail| event.t_ms >= tail) {
            Some(("unanswered", format!("{} sent {kind} in the fault-free tail and got {answer}", event.process)))
        } else {
            None
        };
        if let Some((anomaly, text)) = anomaly {
            result.set(anomaly, result.count(anomaly) + 1);
            result.push_anomaly(anomaly, text, vec![event.id]);
            result.worsen(Validity::Invalid);
        }
    }
    result
}
