//! **liveness**: once the fault-free tail starts, every acknowledged message
//! reaches every subscribing group within a bound.

use super::{not_expected, Invariant};
use crate::config::CheckConfig;
use crate::history::{Event, Kind, Op};
use crate::index::{dead_letters, Index};
use crate::verdict::{CheckResult, Validity};
use rustc_hash::FxHashMap;

/// Process name of the harness's final drain, whose deliveries do not count.
pub const DRAIN_PROCESS: &str = "drain";

/// Checks delivery within `expect.liveness_bound_ms` after `tail-start`.
///
/// With the tail starting at T and bound b, each acknowledged message must be
/// delivered to each subscribing group (each subscriber of a broadcast
/// group), not by the drain, by max(ack time, T) + b (a timer's or delayed
/// message's delivery time, or a transaction's commit, stands for its ack
/// time when later; transactions rolled back, moved aside, orphaned or
/// resolved by a check-back are the transaction check's). A delivery the
/// business logic failed counts: the broker delivered it, and what follows
/// (retries at their delay levels, the DLQ) is the dead-letter check's. Dead-lettered
/// messages and messages a disk fault destroyed are excused. A timed
/// message, and any message to a POP group (its broker's clock times the
/// leases), gets as much more as the scenario set a broker's clock back. A
/// message whose deadline falls after the clients
/// stopped (`clients-stopped`, else the `end` event) is `pending`, not a
/// violation. Counts: `required`, `late`, `never`,
/// `pending`, `max-delay-ms` (worst delivery time past max(ack, T)). Late or
/// never is invalid; a history without `tail-start` or `end` is unknown.
///
/// Every `drain-gave-up` event is a `drain-gave-up` anomaly and invalid, even
/// when the scenario does not expect liveness: a drain that could not read a
/// queue to its end means the run never converged, and lost could not see
/// what the queue still held. Those anomalies come first. Without a bound,
/// the result holds only that count; with one, `drain-gave-up` is counted
/// beside the others.
pub fn check_liveness(history: &[Event], cfg: &CheckConfig) -> CheckResult {
    liveness(history, cfg, &Index::build(history, cfg))
}

/// [`check_liveness`] over an index built once for every check.
pub(crate) fn liveness<'a>(history: &'a [Event], cfg: &CheckConfig, index: &Index<'a>) -> CheckResult {
    let gave_up: Vec<&Event> = history.iter().filter(|e| e.op == Op::DrainGaveUp).collect();
    let Some(bound_ms) = cfg.expect.liveness_bound_ms else {
        if gave_up.is_empty() {
            return not_expected(Invariant::Liveness);
        }
        let mut result = CheckResult::new(Invariant::Liveness.name());
        report_gave_up(&mut result, &gave_up);
        return result;
    };
    let mut result = CheckResult::new(Invariant::Liveness.name());
    report_gave_up(&mut result, &gave_up);
    let Some(tail_start) = index.tail_start else {
        result.worsen(Validity::Unknown);
        result.note = Some("history has no tail-start event".into());
        return result;
    };
    let dlq = dead_letters(history);
    // Deliveries can only happen while the clients run.
    let end_t_ms = match (history.iter().find(|e| e.op == Op::ClientsStopped), index.end) {
        (Some(stop), _) => stop.t_ms,
        (None, Some(end)) => end.t_ms,
        (None, None) => history.iter().map(|e| e.t_ms).max().unwrap_or(0),
    };

    // (group, msg_id) -> each process's first delivery outside the drain
    // (hashed: only looked up).
    let mut first: FxHashMap<(&str, &str), Vec<&Event>> = FxHashMap::default();
    for event in history
        .iter()
        .filter(|e| e.op == Op::Deliver && e.kind == Kind::Ok && e.process != DRAIN_PROCESS)
    {
        if let (Some(group), Some(msg_id)) = (event.group.as_deref(), event.msg_id.as_deref()) {
            let firsts = first.entry((group, msg_id)).or_default();
            match firsts.iter_mut().find(|e| e.process == event.process) {
                Some(earliest) if event.t_ms < earliest.t_ms => *earliest = event,
                Some(_) => {}
                None => firsts.push(event),
            }
        }
    }

    let (mut required, mut late, mut never, mut pending, mut max_delay_ms) = (0, 0, 0, 0, 0);
    for message in index.acknowledged() {
        if index.tx.get(message.msg_id).is_some_and(|t| t.excuse().is_some()) {
            continue;
        }
        // A timer counts from its delivery time, a transaction from the end
        // that committed it (one a check-back resolves is the transaction
        // check's).
        let Some(ready_ms) = index.deliverable_from_ms(message) else { continue };
        let from_ms = ready_ms.max(tail_start.t_ms);
        // A timer's broker whose clock was set back lets it out that much
        // later in true time; so does a POP group's broker a lease it took
        // (and a FIFO queue behind that lease).
        let setback_max = cfg.expect.clock_setback_ms.values().copied().max().unwrap_or(0);
        let timed = message.invoke.deliver_at_ms.is_some();
        for group in index.subscribing_groups(message) {
            let setback = if timed || group.pop { setback_max } else { 0 };
            let deadline_ms = from_ms.saturating_add(bound_ms).saturating_add(setback);
            let name = group.group.as_str();
            if dlq.contains_key(&(name, message.msg_id)) || index.destroyed.contains(message.msg_id) {
                continue;
            }
            let consumers: Vec<Option<&str>> = match index.required_consumers(group) {
                None => vec![None],
                Some(processes) => processes.into_iter().map(Some).collect(),
            };
            for consumer in consumers {
                required += 1;
                // The earliest, the first process by name among equals.
                let delivered = first
                    .get(&(name, message.msg_id))
                    .into_iter()
                    .flatten()
                    .filter(|e| consumer.is_none_or(|c| c == e.process))
                    .min_by_key(|e| (e.t_ms, e.process.as_str()))
                    .copied();
                let who = consumer.map_or(format!("group {name}"), |c| {
                    format!("consumer {c} of group {name}")
                });
                match delivered {
                    Some(event) => {
                        max_delay_ms = max_delay_ms.max(event.t_ms.saturating_sub(from_ms));
                        if event.t_ms > deadline_ms {
                            late += 1;
                            let detail = format!(
                                "{} reached {who} at {} ms, {} ms after its deadline {deadline_ms} ms",
                                message.msg_id,
                                event.t_ms,
                                event.t_ms - deadline_ms
                            );
                            let mut ids = message.event_ids();
                            ids.push(event.id);
                            result.push_anomaly("late", detail, ids);
                        }
                    }
                    None if deadline_ms <= end_t_ms => {
                        never += 1;
                        let detail = format!(
                            "{} never reached {who} by its deadline {deadline_ms} ms",
                            message.msg_id
                        );
                        result.push_anomaly("never", detail, message.event_ids());
                    }
                    None => pending += 1,
                }
            }
        }
    }
    result.set("required", required);
    result.set("late", late);
    result.set("never", never);
    result.set("pending", pending);
    result.set("max-delay-ms", max_delay_ms);
    if late + never > 0 {
        result.worsen(Validity::Invalid);
    } else if index.end.is_none() {
        result.worsen(Validity::Unknown);
        result.note = Some("history has no end event".into());
    }
    result
}

/// Sets the `drain-gave-up` count, keeps one anomaly per event and, when
/// there is any, makes `result` invalid.
fn report_gave_up(result: &mut CheckResult, gave_up: &[&Event]) {
    result.set("drain-gave-up", gave_up.len() as u64);
    for event in gave_up {
        let detail = format!(
            "the final drain of group {} gave up on queue {}: {}",
            event.group.as_deref().unwrap_or("(none)"),
            event.queue.as_deref().unwrap_or("(none)"),
            event.detail.as_deref().unwrap_or("no reason given")
        );
        result.push_anomaly("drain-gave-up", detail, vec![event.id]);
    }
    if !gave_up.is_empty() {
        result.worsen(Validity::Invalid);
    }
}
