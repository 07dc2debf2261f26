//! **offsets**: a queue offset names one message. Jepsen's
//! `inconsistent-offsets` for Kafka-like logs: two different messages
//! delivered from one queue at one offset mean the broker handed out, or
//! wrote, two messages under one position (Apache RocketMQ #7689: a master
//! that recovered short reused consume-queue offsets). Consumers commit
//! and resume by offset, so such a broker can skip messages or deliver the
//! wrong one; the other checks see it only if a message ends up lost.

use super::Invariant;
use crate::config::CheckConfig;
use crate::faults::fault_spans;
use crate::history::{Event, Kind, Op};
use crate::index::Index;
use crate::verdict::{CheckResult, Validity};
use std::collections::{BTreeMap, BTreeSet};

/// Faults after which a broker may rightly give an offset to a second
/// message: a power loss or a damaged disk can take the tail of its log
/// (messages consumers had already read), and new writes take their
/// offsets again.
const LOG_LOSING: [&str; 2] = ["power-loss", "disk-fault"];

/// Checks every delivery that names its queue and offset:
///
/// - `inconsistent-offset`: one queue and offset delivered as two
///   different messages. Excused (`inconsistent-offset-excused`) on a
///   broker whose log may have lost a tail: one that lost power or had a
///   disk fault, or a group that changed master (a second `role` event
///   `master ...`) or whose replica cut its log back to a new master's
///   (`cut ...`), since the offsets of a lost tail are given again.
///
/// Counts: `positions` (queue offsets delivered), `inconsistent-offset`,
/// `inconsistent-offset-excused`.
pub fn check_offsets(history: &[Event], cfg: &CheckConfig) -> CheckResult {
    offsets(history, cfg, &Index::build(history, cfg))
}

/// [`check_offsets`] over an index built once for every check.
pub(crate) fn offsets<'a>(history: &'a [Event], cfg: &CheckConfig, _index: &Index<'a>) -> CheckResult {
    let mut result = CheckResult::new(Invariant::Offsets.name());
    // (queue, offset) -> msg_id -> its first delivery there.
    let mut positions: BTreeMap<(&str, u64), BTreeMap<&str, &Event>> = BTreeMap::new();
    for e in history.iter().filter(|e| e.op == Op::Deliver && e.kind == Kind::Ok) {
        let (Some(queue), Some(offset), Some(msg_id)) = (e.queue.as_deref(), e.offset, e.msg_id.as_deref()) else { continue };
        positions.entry((queue, offset)).or_default().entry(msg_id).or_insert(e);
    }
    // Broker names (as queues name them) whose log may have lost a tail.
    let broker_of = |process: &str| cfg.expect.broker_groups.get(process).cloned().unwrap_or_else(|| process.to_owned());
    let mut losing: BTreeSet<String> = fault_spans(history)
        .iter()
        .filter(|f| LOG_LOSING.contains(&f.name()))
        .flat_map(|f| f.targets().map(broker_of).collect::<Vec<_>>())
        .collect();
    // A group that changed master: the new one's log may lack the old
    // one's unreplicated tail (the old one cuts it back when it returns).
    let mut terms: BTreeMap<&str, u32> = BTreeMap::new();
    for e in history.iter().filter(|e| e.op == Op::Role) {
        let group = e.process.split('/').next().unwrap_or("");
        let detail = e.detail.as_deref().unwrap_or("");
        if detail.starts_with("cut ") {
            losing.insert(group.to_owned());
        } else if detail.starts_with("master ") {
            *terms.entry(group).or_default() += 1;
        }
    }
    losing.extend(terms.into_iter().filter(|(_, n)| *n > 1).map(|(group, _)| group.to_owned()));
    let (mut inconsistent, mut excused) = (0u64, 0u64);
    for (&(queue, offset), messages) in &positions {
        if messages.len() < 2 {
            continue;
        }
        let broker = queue.split('/').next().unwrap_or("");
        if losing.contains(broker) {
            excused += 1;
            continue;
        }
        inconsistent += 1;
        let ids: Vec<&str> = messages.keys().copied().collect();
        result.push_anomaly(
            "inconsistent-offset",
            format!("{queue} offset {offset} was delivered as {} different messages: {}", ids.len(), ids.join(", ")),
            messages.values().map(|e| e.id).collect(),
        );
    }
    result.set("positions", positions.len() as u64);
    result.set("inconsistent-offset", inconsistent);
    result.set("inconsistent-offset-excused", excused);
    if inconsistent > 0 {
        result.worsen(Validity::Invalid);
    }
    if !losing.is_empty() {
        result.note = Some(format!(
            "offsets given twice are excused on brokers whose log may have lost a tail: {}",
            losing.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    result
}
