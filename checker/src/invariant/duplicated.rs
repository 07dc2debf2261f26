//! **duplicated**: raw duplicate successful deliveries. RocketMQ promises
//! at-least-once, so these are reported; but it bounds them by its
//! progress: a consumer resumes a queue from the offset its group last
//! committed (every few seconds, persisted by the broker every few more),
//! so a copy consumed long before anything made the group resume must not
//! come again (a rebooted master without synced consumer offsets
//! re-delivering days of messages is a known field failure).

use super::Invariant;
use crate::config::CheckConfig;
use crate::history::{ConsumeOutcome, Event, Kind, Op};
use crate::index::{is_success, Index};
use crate::invariant::dead_letter::LOCAL_RETRY;
use crate::verdict::{CheckResult, Validity};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// Counts messages consumed successfully more than once by one group (by one
/// consumer, for a broadcast group, where each consumer gets its own copy).
///
/// Counts: `deliveries` (successful), `duplicated` (messages consumed more
/// than once), `redeliveries` (successful deliveries beyond the first), and,
/// with `expect.redelivery_bound_ms` set (the bound B), `copies-redelivered`,
/// `timed-copies-again` and `redelivered-beyond-progress`:
///
/// - `redelivered-beyond-progress`: a stored copy (queue and offset) that
///   a group consumed at t1 came to it again at t2, and nothing that makes a
///   group resume from its committed offset happened from B before t1 to
///   t2, early enough to find the copy uncommitted: no consumer paused or
///   cut off at any time in it (the brokers expire it), no fault or heal, no
///   replica changing role, no consumer joining (`subscribe`) or crashing,
///   no end of the clients (the
///   final drain resumes too), no operator's reset of the queue to the
///   copy's offset or below it, done after t1 and asked before t2, at a time c from B before t1 (the group may
///   rebalance a while after the cause, and the copy may have been in
///   flight at a consumer that was losing its queue) with c - B no later
///   than t1 and than the last time a copy at or below its offset in the
///   queue was done with (the committed offset cannot pass a copy still in
///   processing). t1 is the latest consumption before t2. B is the
///   consumers' commit interval, the broker's persist interval, a
///   rebalance period and slack; the verdict states it. And a timer or
///   delayed message (sent once) written to its topic a second time by the
///   same broker, as a new stored copy delivered over B after the first
///   (a producer's retry stores copies that come due together), unless its
///   broker restarted (or changed master)
///   between the send and B after the first copy's delivery (B plus the
///   time its disk failed, or it was cut off or paused, in between, when
///   no progress could be persisted or copied to its slave): the broker's
///   delay and timer progress is persisted every few seconds, so a restart
///   may move again only what the last persisted progress did not cover
///   (Apache RocketMQ #3473 moved everything again). The only anomaly of
///   this check.
pub fn check_duplicated(history: &[Event], cfg: &CheckConfig) -> CheckResult {
    duplicated(history, cfg, &Index::build(history, cfg))
}

/// One stored copy's deliveries to one group.
#[derive(Default)]
struct Copy<'a> {
    /// When the group was first done with it: its first success, else its
    /// last failure (sent back, or retried in place to the end).
    done_ms: Option<u64>,
    /// Its successful deliveries, in history order.
    successes: Vec<&'a Event>,
    /// Its deliveries by the broker (not the consumers' own retries).
    deliveries: Vec<&'a Event>,
}

/// Finds copies redelivered beyond what the group's progress allows (see
/// [`check_duplicated`]); returns (copies redelivered, beyond progress).
fn beyond_progress(history: &[Event], index: &Index<'_>, bound_ms: u64, result: &mut CheckResult) -> (u64, u64) {
    let broadcast: Vec<&str> = index.groups.iter().filter(|g| g.broadcast).map(|g| g.group.as_str()).collect();
    // What makes a group resume from its committed offset: faults and
    // heals, a replica changing role (routes and the replica read from
    // change), consumers joining or crashing, the clients stopping.
    let mut causes: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut anywhere: Vec<u64> = Vec::new();
    for e in history {
        match e.op {
            Op::Fault | Op::Heal | Op::Crash | Op::ClientsStopped | Op::Role => anywhere.push(e.t_ms),
            Op::Subscribe => causes.entry(e.group.as_deref().unwrap_or("")).or_default().push(e.t_ms),
            _ => {}
        }
    }
    // A consumer paused (or cut off) stops heartbeating, and the brokers
    // expire it and its group rebalances at some time while it lasts: the
    // whole span is a cause, not only its ends.
    let silenced: Vec<(u64, u64)> = crate::faults::fault_spans(history)
        .iter()
        .filter(|s| matches!(s.name(), "pause" | "partition") && s.targets().any(|t| t.starts_with("consumer-")))
        .map(|s| (s.from_ms, s.to_ms))
        .collect();
    // (group, queue) -> offset -> copy.
    let mut queues: BTreeMap<(&str, &str), BTreeMap<u64, Copy>> = BTreeMap::new();
    // A POP group's copy comes again whenever an ack did not reach the
    // broker in time, with no commit to resume from: the pop check judges
    // what may come again.
    let pop: Vec<&str> = index.groups.iter().filter(|g| g.pop).map(|g| g.group.as_str()).collect();
    for e in history.iter().filter(|e| e.op == Op::Deliver && e.kind == Kind::Ok) {
        let (Some(group), Some(queue), Some(offset)) = (e.group.as_deref(), e.queue.as_deref(), e.offset) else { continue };
        if broadcast.contains(&group) || pop.contains(&group) {
            continue;
        }
        let copy = queues.entry((group, queue)).or_default().entry(offset).or_default();
        match e.result {
            Some(ConsumeOutcome::Success) => {
                if copy.successes.is_empty() {
                    copy.done_ms = Some(e.t_ms);
                }
                copy.successes.push(e);
            }
            Some(ConsumeOutcome::RetryLater) if copy.successes.is_empty() => copy.done_ms = Some(e.t_ms),
            _ => {}
        }
        let local = e.detail.as_deref().is_some_and(|d| d.split(' ').any(|w| w == LOCAL_RETRY));
        if !local {
            copy.deliveries.push(e);
        }
    }
    // (group, queue) -> operators' resets: (asked, done, offset). A copy
    // at or past the offset, consumed before the reset was done, comes
    // again because of it.
    let resets = super::reset::queue_resets(history);
    let (mut redelivered, mut beyond) = (0, 0);
    for ((group, queue), copies) in &queues {
        let queue_resets = resets.get(&(*group, *queue)).map(Vec::as_slice).unwrap_or(&[]);
        let mut group_causes: Vec<u64> = causes.get(group).cloned().unwrap_or_default();
        group_causes.extend(&anywhere);
        group_causes.sort_unstable();
        // The latest time a copy at or below each offset was done with.
        let mut frontier_ms = 0;
        for (offset, copy) in copies {
            frontier_ms = frontier_ms.max(copy.done_ms.unwrap_or(0));
            let Some(first) = copy.successes.first() else { continue };
            let mut counted = false;
            // Each delivery after a success, judged against the latest
            // success before it: something must have made the group resume
            // after that one (or just before it, while it was in flight).
            let unexplained = copy.deliveries.iter().filter(|d| d.started_ms() > first.t_ms).find_map(|again| {
                counted = true;
                let last = copy.successes.iter().rev().find(|s| s.t_ms < again.started_ms())?;
                let from = last.t_ms.saturating_sub(bound_ms);
                let to = again.started_ms().min(frontier_ms.max(last.t_ms) + bound_ms);
                let explained = from <= to && group_causes.iter().any(|c| (from..=to).contains(c))
                    || silenced.iter().any(|&(start, end)| start <= to && end >= from)
                    || queue_resets.iter().any(|r| *offset >= r.offset && last.t_ms <= r.done_ms && again.started_ms() >= r.asked_ms);
                (!explained).then_some((*last, *again, from))
            });
            redelivered += u64::from(counted);
            let Some((first, again, from)) = unexplained else { continue };
            beyond += 1;
            result.push_anomaly(
                "redelivered-beyond-progress",
                format!(
                    "{queue} offset {offset} ({}) was consumed by {group} at {} ms and came again at {} ms, with nothing \
                     since {from} ms that makes a group resume from an offset committed that far back (bound {bound_ms} ms)",
                    first.msg_id.as_deref().unwrap_or("?"),
                    first.t_ms,
                    again.started_ms()
                ),
                vec![first.id, again.id],
            );
        }
    }
    (redelivered, beyond)
}

/// Faults and role changes after which a broker may move a delayed
/// message or timer to its topic again: its progress since the last
/// persisted point is lost.
const RESTARTING: [&str; 2] = ["kill", "power-loss"];

/// Faults of a broker during which its delay and timer progress cannot be
/// persisted (its disk fails) or copied to its slave (cut off, paused).
const STALLING: [&str; 3] = ["disk-fault", "partition", "pause"];

/// Finds timers and delayed messages written to their topic again beyond
/// what a restart of their broker allows (see [`check_duplicated`]);
/// returns (copies again, beyond progress).
fn timed_again(history: &[Event], index: &Index<'_>, cfg: &CheckConfig, bound_ms: u64, result: &mut CheckResult) -> (u64, u64) {
    let broker_of = |process: &str| cfg.expect.broker_groups.get(process).cloned().unwrap_or_else(|| process.to_owned());
    let mut restarts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    // While a broker's disk fails (full, or erroring writes) its progress
    // is not persisted, and while a replica is cut off or paused its slave
    // cannot copy it: the time the first copy takes to be covered on disk
    // and on the replica that may take over grows by as much.
    let mut stalled: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for f in crate::faults::fault_spans(history).iter() {
        for target in f.targets() {
            if RESTARTING.contains(&f.name()) {
                restarts.entry(broker_of(target)).or_default().push(f.from_ms);
            } else if STALLING.contains(&f.name()) {
                stalled.entry(broker_of(target)).or_default().push((f.from_ms, f.to_ms));
            }
        }
    }
    for e in history.iter().filter(|e| e.op == Op::Role) {
        let detail = e.detail.as_deref().unwrap_or("");
        if detail.starts_with("master ") || detail.starts_with("cut ") {
            restarts.entry(e.process.split('/').next().unwrap_or("").to_owned()).or_default().push(e.t_ms);
        }
    }
    let mut sends: FxHashMap<&str, u32> = FxHashMap::default();
    for e in history.iter().filter(|e| e.op == Op::Send && e.kind == Kind::Invoke) {
        *sends.entry(e.msg_id.as_deref().unwrap_or("")).or_default() += 1;
    }
    // (group, msg_id) -> its copies in its topic, each with its first delivery.
    let mut copies: BTreeMap<(&str, &str), BTreeMap<(&str, u64), &Event>> = BTreeMap::new();
    for e in history.iter().filter(|e| e.op == Op::Deliver && e.kind == Kind::Ok) {
        let (Some(group), Some(msg_id), Some(queue), Some(offset)) = (e.group.as_deref(), e.msg_id.as_deref(), e.queue.as_deref(), e.offset) else {
            continue;
        };
        let timed = index.messages.get(msg_id).is_some_and(|m| m.invoke.deliver_at_ms.is_some());
        if !timed || queue.contains("%RETRY%") || sends.get(msg_id).copied().unwrap_or(0) != 1 {
            continue;
        }
        copies.entry((group, msg_id)).or_default().entry((queue, offset)).or_insert(e);
    }
    let (mut again, mut beyond) = (0, 0);
    for ((group, msg_id), held) in &copies {
        let mut firsts: Vec<&Event> = held.values().copied().collect();
        firsts.sort_by_key(|e| (e.t_ms, e.id));
        let Some((first, others)) = firsts.split_first() else { continue };
        let sent_ms = index.messages.get(msg_id).map_or(0, |m| m.invoke.t_ms);
        let broker_of_copy = |e: &Event| e.queue.as_deref().and_then(|q| q.split('/').next()).unwrap_or("").to_owned();
        for copy in others {
            again += 1;
            let broker = broker_of_copy(copy);
            // A producer's retry may store a message twice (on another
            // broker, or on this one at once): both come due together.
            if broker != broker_of_copy(first) || copy.t_ms <= first.t_ms + bound_ms {
                continue;
            }
            let unpersisted: u64 = stalled
                .get(broker.as_str())
                .into_iter()
                .flatten()
                .map(|&(from, to)| to.min(copy.t_ms).saturating_sub(from.max(first.t_ms)))
                .sum();
            let until = copy.t_ms.min(first.t_ms + bound_ms + unpersisted);
            if restarts.get(broker.as_str()).is_some_and(|times| times.iter().any(|&t| t >= sent_ms && t <= until)) {
                continue;
            }
            beyond += 1;
            result.push_anomaly(
                "redelivered-beyond-progress",
                format!(
                    "{msg_id}, due at a set time, reached {group} at {} ms from {} and again at {} ms from another stored copy ({}@{}), \
                     though its broker did not restart within {bound_ms} ms of the first",
                    first.t_ms,
                    first.queue.as_deref().unwrap_or("?"),
                    copy.t_ms,
                    copy.queue.as_deref().unwrap_or("?"),
                    copy.offset.unwrap_or(0)
                ),
                vec![first.id, copy.id],
            );
        }
    }
    (again, beyond)
}

/// Counts raw duplicates, see [`check_duplicated`].
fn raw_duplicates(history: &[Event], index: &Index<'_>, result: &mut CheckResult) {
    let broadcast: Vec<&str> = index
        .groups
        .iter()
        .filter(|g| g.broadcast)
        .map(|g| g.group.as_str())
        .collect();

    // (group, consumer or "" for clustering groups, msg_id) -> deliveries
    // Hashed: the anomalies are sorted below, so no order is needed here.
    let mut seen: FxHashMap<(&str, &str, &str), Vec<&Event>> = FxHashMap::default();
    let mut deliveries = 0;
    for event in history.iter().filter(|e| is_success(e)) {
        let (Some(group), Some(msg_id)) = (event.group.as_deref(), event.msg_id.as_deref()) else {
            continue;
        };
        deliveries += 1;
        let consumer = if broadcast.contains(&group) {
            event.process.as_str()
        } else {
            ""
        };
        seen.entry((group, consumer, msg_id))
            .or_default()
            .push(event);
    }

    let (mut duplicated, mut redeliveries) = (0, 0);
    let mut firsts: Vec<(u64, String, Vec<u64>)> = Vec::new();
    for ((group, _, msg_id), events) in &seen {
        if events.len() > 1 {
            duplicated += 1;
            redeliveries += events.len() as u64 - 1;
            let detail = format!("{msg_id} consumed {} times by group {group}", events.len());
            firsts.push((events[1].id, detail, events.iter().map(|e| e.id).collect()));
        }
    }
    // Anomalies in history order of the first redelivery.
    firsts.sort();
    for (_, detail, ids) in firsts {
        result.push_anomaly("duplicate", detail, ids);
    }
    result.set("deliveries", deliveries);
    result.set("duplicated", duplicated);
    result.set("redeliveries", redeliveries);
}

/// [`check_duplicated`] over an index built once for every check.
pub(crate) fn duplicated<'a>(history: &'a [Event], cfg: &CheckConfig, index: &Index<'a>) -> CheckResult {
    let mut result = CheckResult::new(Invariant::Duplicated.name());
    // The anomalies that fail the check come first in the kept few.
    if let Some(bound_ms) = cfg.expect.redelivery_bound_ms {
        let (redelivered, beyond) = beyond_progress(history, index, bound_ms, &mut result);
        let (timed, timed_beyond) = timed_again(history, index, cfg, bound_ms, &mut result);
        result.set("copies-redelivered", redelivered);
        result.set("timed-copies-again", timed);
        result.set("redelivered-beyond-progress", beyond + timed_beyond);
        if beyond + timed_beyond > 0 {
            result.worsen(Validity::Invalid);
        }
        result.note = Some(format!(
            "a copy may come again only if something made its group resume no more than {bound_ms} ms after it was consumed"
        ));
    }
    raw_duplicates(history, index, &mut result);
    result
}
