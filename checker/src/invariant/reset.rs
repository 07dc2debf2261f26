//! **reset**: an operator's reset of a group's offsets takes effect. After
//! `resetOffsetByTime` put a group's offset on a queue at R, every message
//! of that queue at or after R that the group had already consumed comes to
//! it again (the point of a rewind: replay after a consumer bug). A reset
//! that a consumer undid, by committing the position it held before it
//! heard of the reset, or that a broker forgot, leaves those messages
//! consumed once, and the group's replay silently partial (RocketMQ takes
//! such a late commit).
//!
//! The other half of "from R and not before" is the offsets check's: a
//! reset is the group's new commit there, and no consumer may resume the
//! queue below it.

use super::Invariant;
use crate::config::CheckConfig;
use crate::history::{Event, Kind, Op};
use crate::index::{is_success, Index};
use crate::verdict::{CheckResult, Validity};
use std::collections::BTreeMap;

/// One queue's reset: asked at `asked_ms`, done (the broker answered) at
/// `done_ms`, to `offset`.
#[derive(Clone, Copy)]
pub(crate) struct QueueReset<'a> {
    pub(crate) asked_ms: u64,
    pub(crate) done_ms: u64,
    pub(crate) offset: u64,
    pub(crate) event: &'a Event,
}

/// Every operator's reset of the history, per (group, queue), in the order
/// they were done: each `ok` event of `offset-reset` with the time its
/// operator asked.
pub(crate) fn queue_resets(history: &[Event]) -> BTreeMap<(&str, &str), Vec<QueueReset<'_>>> {
    // (operator, group) -> when it last asked for a reset.
    let mut asked: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut resets: BTreeMap<(&str, &str), Vec<QueueReset>> = BTreeMap::new();
    for e in history.iter().filter(|e| e.op == Op::OffsetReset) {
        let Some(group) = e.group.as_deref() else { continue };
        match (e.kind, e.queue.as_deref(), e.offset) {
            (Kind::Invoke, _, _) => {
                asked.insert((e.process.as_str(), group), e.t_ms);
            }
            (Kind::Ok, Some(queue), Some(offset)) => {
                let asked_ms = asked.get(&(e.process.as_str(), group)).copied().unwrap_or(e.t_ms);
                resets.entry((group, queue)).or_default().push(QueueReset { asked_ms, done_ms: e.t_ms, offset, event: e });
            }
            _ => {}
        }
    }
    resets
}

/// Checks that each reset brought back every message at or after its
/// offset that the group had consumed before it (see the module).
///
/// A message is owed again by a reset of queue Q to R when the group
/// consumed it successfully before the reset was asked and one delivery
/// from Q named it at an offset at or after R. It is paid by any delivery
/// to the group after the reset was asked (a consumer's, a retry's, the
/// final drain's). Not owed: a position delivered as two different
/// messages (a log that lost a tail gave it again; the offsets check judges
/// that), and a message a later reset of the queue, asked before it came
/// again, skipped past.
///
/// Counts: `resets` (queues reset), `owed` (messages owed again),
/// `not-replayed` (owed and never delivered again: the anomaly).
pub fn check_reset(history: &[Event], cfg: &CheckConfig) -> CheckResult {
    reset(history, cfg, &Index::build(history, cfg))
}

/// [`check_reset`] over an index built once for every check.
pub(crate) fn reset<'a>(history: &'a [Event], _cfg: &CheckConfig, _index: &Index<'a>) -> CheckResult {
    let mut result = CheckResult::new(Invariant::Reset.name());
    let resets = queue_resets(history);
    let count: usize = resets.values().map(Vec::len).sum();
    result.set("resets", count as u64);
    if resets.is_empty() {
        result.set("owed", 0);
        result.set("not-replayed", 0);
        return result;
    }
    // queue -> offset -> the message delivered there (None once two
    // different messages were).
    let mut positions: BTreeMap<&str, BTreeMap<u64, Option<&str>>> = BTreeMap::new();
    // (group, msg_id) -> times of its deliveries (any outcome) and of its
    // successes.
    let mut deliveries: BTreeMap<(&str, &str), Vec<u64>> = BTreeMap::new();
    let mut successes: BTreeMap<(&str, &str), Vec<(u64, u64)>> = BTreeMap::new();
    for e in history.iter().filter(|e| e.op == Op::Deliver && e.kind == Kind::Ok) {
        let (Some(group), Some(msg_id)) = (e.group.as_deref(), e.msg_id.as_deref()) else { continue };
        if let (Some(queue), Some(offset)) = (e.queue.as_deref(), e.offset) {
            let slot = positions.entry(queue).or_default().entry(offset).or_insert(Some(msg_id));
            if slot.is_some_and(|known| known != msg_id) {
                *slot = None;
            }
        }
        deliveries.entry((group, msg_id)).or_default().push(e.started_ms());
        if is_success(e) {
            successes.entry((group, msg_id)).or_default().push((e.started_ms(), e.id));
        }
    }
    let (mut owed, mut not_replayed) = (0u64, 0u64);
    for (&(group, queue), queue_resets) in &resets {
        let Some(at) = positions.get(queue) else { continue };
        for (i, r) in queue_resets.iter().enumerate() {
            for (&offset, msg_id) in at.range(r.offset..) {
                let Some(msg_id) = *msg_id else { continue };
                let Some(consumed) = successes.get(&(group, msg_id)).and_then(|s| s.iter().find(|(t, _)| *t < r.asked_ms)) else {
                    continue;
                };
                let times = deliveries.get(&(group, msg_id)).map(Vec::as_slice).unwrap_or(&[]);
                let again = times.iter().find(|&&t| t >= r.asked_ms).copied();
                // A later reset of the queue past this offset, asked before
                // the message came again, skipped it: no longer owed.
                let skipped = queue_resets[i + 1..].iter().any(|later| later.offset > offset && again.is_none_or(|t| later.asked_ms <= t));
                if skipped {
                    continue;
                }
                owed += 1;
                if again.is_some() {
                    continue;
                }
                not_replayed += 1;
                result.push_anomaly(
                    "not-replayed",
                    format!(
                        "{group}'s offset on {queue} was reset to {} (asked at {} ms, done at {} ms), but {msg_id} at offset {offset}, \
                         consumed at {} ms, never came to {group} again",
                        r.offset, r.asked_ms, r.done_ms, consumed.0
                    ),
                    vec![r.event.id, consumed.1],
                );
            }
        }
    }
    result.set("owed", owed);
    result.set("not-replayed", not_replayed);
    if not_replayed > 0 {
        result.worsen(Validity::Invalid);
    }
    result
}
