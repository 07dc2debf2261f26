//! **progress**: once the faults have healed, the cluster acknowledges what
//! it is sent. Every other invariant holds for a broker that acknowledges
//! nothing; this one does not.

use super::{not_expected, Invariant};
use crate::config::CheckConfig;
use crate::history::{Event, Op};
use crate::index::{is_success, Index, SendStatus};
use crate::verdict::{CheckResult, Validity};

/// For each fault on a broker process (a fault event naming it among its
/// targets) and its group: the fault's time and how long until the group
/// next acknowledged a send.
pub fn unavailability(history: &[Event], cfg: &CheckConfig) -> Vec<(u64, u64)> {
    if cfg.expect.broker_groups.is_empty() {
        return Vec::new();
    }
    let end = history.iter().filter(|e| e.op == Op::Send).map(|e| e.t_ms).max().unwrap_or(0);
    let invoked: std::collections::BTreeMap<u64, u64> =
        history.iter().filter(|e| e.op == Op::Send && e.kind == crate::history::Kind::Invoke).map(|e| (e.id, e.t_ms)).collect();
    // Per group, each acknowledgement's time and its send's start: an
    // answer already on its way when the fault struck does not count.
    let mut acks: std::collections::BTreeMap<&str, Vec<(u64, u64)>> = std::collections::BTreeMap::new();
    for e in history.iter().filter(|e| e.op == Op::Send && e.kind == crate::history::Kind::Ok) {
        if let Some(group) = e.queue.as_deref().and_then(|q| q.split('/').next()) {
            let started = e.of.and_then(|id| invoked.get(&id)).copied().unwrap_or(e.t_ms);
            acks.entry(group).or_default().push((e.t_ms, started));
        }
    }
    let mut out = Vec::new();
    for fault in history.iter().filter(|e| e.op == Op::Fault) {
        let Some(targets) = fault.target.as_deref() else { continue };
        let mut groups: Vec<&str> = targets.split(',').filter_map(|t| cfg.expect.broker_groups.get(t).map(String::as_str)).collect();
        groups.sort_unstable();
        groups.dedup();
        for group in groups {
            let times = acks.get(group).map(Vec::as_slice).unwrap_or(&[]);
            let next = times
                .iter()
                .filter(|(acked, started)| *acked > fault.t_ms && *started >= fault.t_ms)
                .map(|(acked, _)| *acked)
                .min()
                .unwrap_or(end.max(fault.t_ms));
            out.push((fault.t_ms, next - fault.t_ms));
        }
    }
    out
}

/// Most unacknowledged sends an anomaly cites.
const CITED_MAX: usize = 5;

/// Checks the share of sends acknowledged after the tail has settled.
///
/// The window opens `expect.progress_grace_ms` after `tail-start` (time for
/// restarted brokers to register and clients to refresh their routes) and
/// runs to the end of the history. Each message id whose first send was
/// invoked in the window counts once as `attempted`, and as `acknowledged`
/// if any send of it ended `ok`; `share-permille` is the ratio. Below
/// `expect.progress_min_permille` the cluster stalled: a `stalled` anomaly
/// citing the first unacknowledged sends, invalid. No send in the window is
/// a stall too, since producers send right up to the end of the tail
/// window. `delivered` counts successful deliveries in the window, outside
/// the final drain, for the record. Without `tail-start` the result is
/// unknown.
///
/// It also measures, for the record, how long each broker group was
/// unavailable after each fault on one of its processes
/// (`expect.broker_groups` maps processes to groups): from the fault to the
/// group's next acknowledged send invoked after the fault (the time a
/// failover takes when the fault took its master; until the producers
/// stopped when none came).
/// Counts: `group-faults`, `unavailable-p50-ms`, `unavailable-p99-ms`,
/// `unavailable-max-ms`.
pub fn check_progress(history: &[Event], cfg: &CheckConfig) -> CheckResult {
    progress(history, cfg, &Index::build(history, cfg))
}

/// [`check_progress`] over an index built once for every check.
pub(crate) fn progress<'a>(history: &'a [Event], cfg: &CheckConfig, index: &Index<'a>) -> CheckResult {
    let Some(min_permille) = cfg.expect.progress_min_permille else {
        return not_expected(Invariant::Progress);
    };
    let mut result = CheckResult::new(Invariant::Progress.name());
    let Some(tail_start) = index.tail_start else {
        result.worsen(Validity::Unknown);
        result.note = Some("history has no tail-start event".into());
        return result;
    };
    let from_ms = tail_start.t_ms.saturating_add(cfg.expect.progress_grace_ms);
    let in_window: Vec<_> = index.messages.values().filter(|m| m.invoke.t_ms >= from_ms).collect();
    let attempted = in_window.len() as u64;
    let acknowledged = in_window.iter().filter(|m| m.status == SendStatus::Acknowledged).count() as u64;
    let delivered = history
        .iter()
        .filter(|e| e.op == Op::Deliver && e.t_ms >= from_ms && is_success(e) && e.process != super::liveness::DRAIN_PROCESS)
        .count() as u64;
    let share_permille = (acknowledged * 1000).checked_div(attempted).unwrap_or(0);
    result.set("attempted", attempted);
    result.set("acknowledged", acknowledged);
    result.set("share-permille", share_permille);
    result.set("delivered", delivered);
    let unavailable = unavailability(history, cfg);
    if !unavailable.is_empty() {
        let mut sorted: Vec<u64> = unavailable.iter().map(|(_, ms)| *ms).collect();
        sorted.sort_unstable();
        result.set("group-faults", sorted.len() as u64);
        result.set("unavailable-p50-ms", super::transaction::percentile(&sorted, 50));
        result.set("unavailable-p99-ms", super::transaction::percentile(&sorted, 99));
        result.set("unavailable-max-ms", sorted[sorted.len() - 1]);
    }
    if share_permille < u64::from(min_permille) {
        let mut unacknowledged: Vec<_> = in_window.iter().filter(|m| m.status != SendStatus::Acknowledged).collect();
        unacknowledged.sort_by_key(|m| m.invoke.id);
        let cited = unacknowledged.iter().take(CITED_MAX).map(|m| m.invoke.id).collect();
        let detail = if attempted == 0 {
            format!("no send was attempted from {from_ms} ms on (tail start + grace)")
        } else {
            format!(
                "{acknowledged} of {attempted} sends invoked from {from_ms} ms on were acknowledged \
                 ({}.{}%), less than the {}.{}% expected",
                share_permille / 10,
                share_permille % 10,
                min_permille / 10,
                min_permille % 10
            )
        };
        result.push_anomaly("stalled", detail, cited);
        result.set("stalled", 1);
        result.worsen(Validity::Invalid);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Expect;
    use crate::history::Kind;

    #[test]
    fn a_group_is_unavailable_from_a_fault_on_its_process_to_its_next_ack() {
        let ack = |t: u64, queue: &str| Event::new(t, "producer-0", Kind::Ok, Op::Send).queue(queue);
        let history = vec![
            ack(500, "group-0/t/0"),
            ack(600, "group-1/t/0"),
            Event::new(990, "producer-0", Kind::Invoke, Op::Send).id(100),
            Event::new(1_000, "nemesis", Kind::Info, Op::Fault).target("broker-0"),
            // An answer already on its way when the fault struck.
            ack(1_005, "group-0/t/1").of(100),
            ack(1_020, "group-1/t/1"),
            ack(3_000, "group-0/t/1"),
            // A partition naming processes of both groups counts for each.
            Event::new(4_000, "nemesis", Kind::Info, Op::Fault).target("broker-1,broker-2,producer-0"),
            ack(4_050, "group-0/t/2"),
            ack(9_000, "group-0/t/2"),
        ];
        let mut cfg = CheckConfig { expect: Expect::default(), ..CheckConfig::default() };
        assert!(unavailability(&history, &cfg).is_empty(), "without the process map nothing is measured");
        cfg.expect.broker_groups =
            [("broker-0", "group-0"), ("broker-1", "group-0"), ("broker-2", "group-1")].map(|(a, b)| (a.to_string(), b.to_string())).into();
        // group-1 acknowledges nothing after 4 s: unavailable until the last send.
        assert_eq!(unavailability(&history, &cfg), vec![(1_000, 2_000), (4_000, 50), (4_000, 5_000)]);
    }
}
