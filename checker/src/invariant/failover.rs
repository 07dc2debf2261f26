//! **failover**: in controller mode, a group whose master stopped gets a new
//! master within a bound while a member of its sync-state set is up
//! (RocketMQ 5's automatic master switch). Every other check holds for a
//! controller that never elects: reads fall back to the slave, producers
//! send to the other groups, and the old master's return heals the rest.
//!
//! The history says who is master: a broker replica's `role` event
//! (`process` `<broker name>/<broker id>`) whose detail starts `master`
//! when it takes over, and `sync-state-set [ids] ...` when the controller
//! confirms its master's set. The nemesis says which processes are down:
//! `kill`, `power-loss` and `pause` faults until their heal.

use super::{not_expected, Invariant};
use crate::config::CheckConfig;
use crate::faults::{fault_spans, FaultSpan};
use crate::history::{Event, Op};
use crate::index::Index;
use crate::verdict::{CheckResult, Validity};
use std::collections::{BTreeMap, BTreeSet};

/// Faults that stop a process until their heal.
const STOPPING: [&str; 3] = ["kill", "power-loss", "pause"];

/// Faults that may slow an election anywhere: the controllers and the
/// replicas talk over the network and by the clock.
const DISTURBING: [&str; 5] = ["partition", "latency", "loss", "clock-skew", "clock-jump"];

/// True when a fault acts on `process` alone: it targets only that
/// process, or it is a partition one of whose sides is that process alone
/// (`from`).
fn only_about(span: &FaultSpan<'_>, process: &str) -> bool {
    let targets: Vec<&str> = span.targets().collect();
    if targets == [process] {
        return true;
    }
    span.name() == "partition" && span.fault.from.as_ref().is_some_and(|from| from.len() == 1 && from[0] == process)
}

/// The controller epoch a role detail names (`master epoch=2 ...`, `slave
/// of ... epoch=2`; not a set's `set-epoch`).
fn epoch_of(detail: &str) -> Option<u64> {
    detail.split_whitespace().find_map(|w| w.strip_prefix("epoch=")?.parse().ok())
}

/// The ids of a `sync-state-set [0, 1] set-epoch=N` role detail.
fn sync_state_set(detail: &str) -> Option<BTreeSet<u64>> {
    let list = detail.strip_prefix("sync-state-set [")?.split(']').next()?;
    list.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().ok()).collect()
}

/// Checks, for each stop of a group's master (a `kill`, `power-loss` or
/// `pause` of the process that last took over as its master), that a
/// replica of the group takes over within `expect.failover_bound_ms`:
///
/// - `no-failover`: no replica took over by the bound, though the master
///   stayed down that long, a member of its sync-state set (as the
///   history last showed it) stayed up, no other fault touched the
///   group's processes or the controllers, and nothing disturbed the
///   network or the clocks. A stop outside those conditions is counted
///   (`stops-excused`), not judged: the controller may rightly wait.
///
/// Counts: `master-stops`, `failovers` (a new master before the old one
/// returned), `stops-judged`, `stops-excused`, `failover-max-ms` (the
/// longest time from a stop to a new master among the failovers), and per
/// group `no-master-ms-<group>`: how long, in all, its master was down
/// before a replica took over.
pub fn check_failover(history: &[Event], cfg: &CheckConfig) -> CheckResult {
    failover(history, cfg, &Index::build(history, cfg))
}

/// [`check_failover`] over an index built once for every check.
pub(crate) fn failover<'a>(history: &'a [Event], cfg: &CheckConfig, index: &Index<'a>) -> CheckResult {
    let Some(bound_ms) = cfg.expect.failover_bound_ms else {
        return not_expected(Invariant::Failover);
    };
    let mut result = CheckResult::new(Invariant::Failover.name());
    let end_ms = index.end.map_or_else(|| history.last().map_or(0, |e| e.t_ms), |e| e.t_ms);
    let spans = fault_spans(history);
    // Replica name ("group-0/1") -> broker process ("broker-1").
    let process_of: BTreeMap<&str, &str> =
        cfg.expect.broker_replicas.iter().map(|(process, replica)| (replica.as_str(), process.as_str())).collect();
    let group_of = |replica: &str| replica.split('/').next().unwrap_or("").to_owned();
    // Per group: (time, replica) of each take-over, and (time, set) of each
    // confirmed sync-state set, in history order.
    let mut masters: BTreeMap<String, Vec<(u64, &str, &Event)>> = BTreeMap::new();
    let mut sets: BTreeMap<String, Vec<(u64, &str, BTreeSet<u64>)>> = BTreeMap::new();
    // Per group: (time, epoch) of every role event that names one.
    let mut epochs: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for e in history.iter().filter(|e| e.op == Op::Role) {
        let detail = e.detail.as_deref().unwrap_or("");
        let group = group_of(&e.process);
        if let Some(epoch) = epoch_of(detail) {
            epochs.entry(group.clone()).or_default().push((e.t_ms, epoch));
        }
        if detail.starts_with("master ") {
            masters.entry(group).or_default().push((e.t_ms, e.process.as_str(), e));
        } else if let Some(set) = sync_state_set(detail) {
            sets.entry(group).or_default().push((e.t_ms, e.process.as_str(), set));
        }
    }
    let is_down = |process: &str, from_ms: u64, to_ms: u64| {
        spans.iter().any(|s| STOPPING.contains(&s.name()) && s.overlaps(from_ms, to_ms) && s.targets().any(|t| t == process))
    };
    let (mut stops, mut failovers, mut judged, mut excused, mut missing) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut longest: Option<u64> = None;
    let mut without: BTreeMap<String, u64> = BTreeMap::new();
    for stop in spans.iter().filter(|s| STOPPING.contains(&s.name())) {
        for process in stop.targets() {
            let Some(replica) = cfg.expect.broker_replicas.get(process) else { continue };
            let group = group_of(replica);
            let taken = masters.get(&group).map(Vec::as_slice).unwrap_or_default();
            // Only a stop of the replica that was master then.
            let Some(&(took_over_ms, _, took_over)) =
                taken.iter().rev().find(|(t, _, _)| *t <= stop.from_ms).filter(|(_, r, _)| *r == replica.as_str())
            else {
                continue;
            };
            // A later term the master never announced (it was elected
            // again and stopped before saying so; a slave followed the new
            // epoch): the controller starts a term's set with its master
            // alone, so only a set confirmed since then counts.
            let master_epoch = took_over.detail.as_deref().and_then(epoch_of).unwrap_or(0);
            let term_from_ms = epochs
                .get(&group)
                .and_then(|e| e.iter().filter(|(t, epoch)| *t > took_over_ms && *t <= stop.from_ms && *epoch > master_epoch).map(|(t, _)| *t).max())
                .unwrap_or(took_over_ms);
            stops += 1;
            let next = taken.iter().find(|(t, r, _)| *t > stop.from_ms && *r != replica.as_str());
            let took_ms = next.filter(|(t, _, _)| *t <= stop.to_ms).map(|(t, _, _)| t - stop.from_ms);
            if let Some(took) = took_ms {
                failovers += 1;
                longest = Some(longest.map_or(took, |l| l.max(took)));
            }
            *without.entry(group.clone()).or_default() += took_ms.unwrap_or(stop.to_ms.min(end_ms).saturating_sub(stop.from_ms));
            let deadline = stop.from_ms + bound_ms;
            if stop.to_ms < deadline || end_ms < deadline {
                // Back (or the run over) before the bound: nothing owed.
                continue;
            }
            let me: u64 = replica.split('/').nth(1).and_then(|id| id.parse().ok()).unwrap_or(u64::MAX);
            // The set this master's term last confirmed (a set of an
            // earlier term says nothing of this one's).
            let set = sets
                .get(&group)
                .and_then(|s| s.iter().rev().find(|(t, by, _)| *t <= stop.from_ms && *t >= term_from_ms && *by == replica.as_str()))
                .map(|(_, _, set)| set.clone())
                .unwrap_or_default();
            let standby_up = set
                .iter()
                .filter(|id| **id != me)
                .filter_map(|id| process_of.get(format!("{group}/{id}").as_str()))
                .any(|p| !is_down(p, stop.from_ms, deadline));
            let group_processes: BTreeSet<&str> =
                cfg.expect.broker_replicas.iter().filter(|(_, r)| group_of(r) == group).map(|(p, _)| p.as_str()).collect();
            // A fault on the group's other processes or a controller (from
            // a bound before the stop: a new controller leader waits a
            // whole timeout), or one on the network or clocks while the
            // election is owed, may rightly delay it; one that only cuts
            // the stopped master off changes nothing.
            let disturbed = spans.iter().filter(|s| !std::ptr::eq(*s, stop) && !only_about(s, process)).any(|s| {
                let near = s.overlaps(stop.from_ms.saturating_sub(bound_ms), deadline)
                    && s.targets().any(|t| (t != process && group_processes.contains(t)) || t.starts_with("controller-"));
                near || (DISTURBING.contains(&s.name()) && s.overlaps(stop.from_ms, deadline))
            });
            if !standby_up || disturbed {
                excused += 1;
                continue;
            }
            judged += 1;
            if next.is_none_or(|(t, _, _)| *t > deadline) {
                missing += 1;
                let mut ids = vec![stop.fault.id];
                ids.extend(next.map(|(_, _, e)| e.id));
                result.push_anomaly(
                    "no-failover",
                    format!(
                        "{group}'s master {replica} ({process}) stopped at {} ms with {} of its sync-state set up, and no replica \
                         took over within {bound_ms} ms{}",
                        stop.from_ms,
                        set.iter().filter(|id| **id != me).map(|id| format!("{group}/{id}")).collect::<Vec<_>>().join(", "),
                        next.map_or(String::new(), |(t, r, _)| format!(": {r} did at {t} ms"))
                    ),
                    ids,
                );
            }
        }
    }
    result.set("master-stops", stops);
    result.set("failovers", failovers);
    result.set("stops-judged", judged);
    result.set("stops-excused", excused);
    result.set("no-failover", missing);
    if let Some(longest) = longest {
        result.set("failover-max-ms", longest);
    }
    for (group, ms) in without {
        result.set(&format!("no-master-ms-{group}"), ms);
    }
    if missing > 0 {
        result.worsen(Validity::Invalid);
    }
    result.note = Some(format!("a stopped master must be replaced within {bound_ms} ms while a member of its sync-state set is up"));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_state_set_is_read_from_its_role_detail() {
        assert_eq!(sync_state_set("sync-state-set [0, 1] set-epoch=2"), Some([0, 1].into()));
        assert_eq!(sync_state_set("sync-state-set [2] set-epoch=5"), Some([2].into()));
        assert_eq!(sync_state_set("sync-state-set [] set-epoch=5"), Some(BTreeSet::new()));
        assert_eq!(sync_state_set("master epoch=2 start=0"), None);
        assert_eq!(sync_state_set("sync-state-set [x] set-epoch=5"), None);
        assert_eq!(epoch_of("master epoch=2 start=0"), Some(2));
        assert_eq!(epoch_of("slave of 10.1.0.3:10911 epoch=3"), Some(3));
        assert_eq!(epoch_of("sync-state-set [0, 1] set-epoch=4"), None);
    }
}
