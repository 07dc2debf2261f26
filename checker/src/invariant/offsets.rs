//! **offsets**: a queue offset names one message. Jepsen's
//! `inconsistent-offsets` for Kafka-like logs: two different messages
//! delivered from one queue at one offset mean the broker handed out, or
//! wrote, two messages under one position (Apache RocketMQ #7689: a master
//! that recovered short reused consume-queue offsets). Consumers commit
//! and resume by offset, so such a broker can skip messages or deliver the
//! wrong one; the other checks see it only if a message ends up lost.
//! And a group's committed offset never goes back: a consumer resuming a
//! queue starts no lower than what the broker had taken as committed.

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
/// - `commit-went-back`: a consumer (or the final drain) resumed a queue
///   at an offset below one the broker had taken as the group's commit at
///   least [`RESUME_SLACK_MS`] before (Jepsen's nonmonotonic commits;
///   Apache RocketMQ #10700). Excused (`commit-went-back-excused`) when the
///   queue's broker could have lost the commit before persisting or copying
///   it: it stopped (kill, power loss), had a disk fault, changed master or
///   cut its log within [`LOSS_WINDOW_MS`] after the commit (or up to
///   [`ANSWER_FLIGHT_MS`] before its answer arrived) and before the
///   resume; or when its replicas were slowed, cut off or paused between
///   the two (the resume may have read a slave's lagging copy). An
///   operator's reset (`offset-reset`) replaces the group's commits on the
///   queue with the offset it reset to: from then on a resume must start
///   there or above, even below what was committed before.
///
/// Counts: `positions` (queue offsets delivered), `inconsistent-offset`,
/// `inconsistent-offset-excused`, `resumes`, `commit-went-back`,
/// `commit-went-back-excused`.
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
    let (resumes, back, back_excused) = went_back(history, cfg, &mut result);
    result.set("positions", positions.len() as u64);
    result.set("inconsistent-offset", inconsistent);
    result.set("inconsistent-offset-excused", excused);
    result.set("resumes", resumes);
    result.set("commit-went-back", back);
    result.set("commit-went-back-excused", back_excused);
    if inconsistent + back > 0 {
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

/// How long before a resume a commit must have been taken to bind it: the
/// resuming consumer asked for the offset up to a request timeout earlier.
pub const RESUME_SLACK_MS: u64 = 3_000;

/// How long after a commit a broker may still lose it: it persists offsets
/// every 5 s, a slave copies them every second; with slack.
pub const LOSS_WINDOW_MS: u64 = 10_000;

/// How long before its answer reached the consumer a broker may have taken
/// a commit: a broker killed just after taking one answers it all the same
/// (the answer was on its way), and loses it.
pub const ANSWER_FLIGHT_MS: u64 = 1_000;

/// Faults that take what a broker held in memory, or its disk.
const LOSING: [&str; 3] = ["kill", "power-loss", "disk-fault"];

/// Faults that slow a broker's replicas or cut them off.
const SLOWING: [&str; 4] = ["latency", "loss", "partition", "pause"];

/// Finds resumes below a commit already taken (see [`check_offsets`]);
/// returns (resumes, went back, went back but excused).
fn went_back(history: &[Event], cfg: &CheckConfig, result: &mut CheckResult) -> (u64, u64, u64) {
    let broker_of = |process: &str| cfg.expect.broker_groups.get(process).cloned().unwrap_or_else(|| process.to_owned());
    // Broker name -> times it may have lost commits: stops, disk faults,
    // take-overs and cuts.
    let mut losses: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let spans = fault_spans(history);
    for f in spans.iter().filter(|f| LOSING.contains(&f.name())) {
        for target in f.targets() {
            losses.entry(broker_of(target)).or_default().push(f.from_ms);
        }
    }
    // Broker name -> spans in which its replicas were slow, cut off or
    // paused: a consumer may then read a slave's copy of the offsets, a
    // copy that lags by as much as the replication does.
    let mut slowed: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for f in spans.iter().filter(|f| SLOWING.contains(&f.name())) {
        for target in f.targets() {
            slowed.entry(broker_of(target)).or_default().push((f.from_ms, f.to_ms));
        }
    }
    for e in history.iter().filter(|e| e.op == Op::Role) {
        let detail = e.detail.as_deref().unwrap_or("");
        if detail.starts_with("master ") || detail.starts_with("cut ") {
            losses.entry(e.process.split('/').next().unwrap_or("").to_owned()).or_default().push(e.t_ms);
        }
    }
    // (group, queue) -> commits taken so far, as (time, offset, event).
    let mut commits: BTreeMap<(&str, &str), Vec<(u64, u64, &Event)>> = BTreeMap::new();
    let (mut resumes, mut back, mut excused) = (0, 0, 0);
    for e in history.iter().filter(|e| matches!(e.op, Op::OffsetCommit | Op::OffsetResume | Op::OffsetReset)) {
        if e.op == Op::OffsetReset && e.kind == Kind::Invoke {
            // An operator's reset is on its way: commits taken before it no
            // longer bind (the broker may move the offset back any time
            // until it answers).
            let group = e.group.as_deref().unwrap_or("");
            for ((g, _), taken) in commits.iter_mut() {
                if *g == group {
                    taken.clear();
                }
            }
            continue;
        }
        if e.kind != Kind::Ok {
            continue;
        }
        let (Some(group), Some(queue), Some(offset)) = (e.group.as_deref(), e.queue.as_deref(), e.offset) else { continue };
        if e.op == Op::OffsetReset {
            // Done: the reset is the queue's commit now, and a commit the
            // broker took before it answered may have come before the reset.
            let taken = commits.entry((group, queue)).or_default();
            taken.clear();
            taken.push((e.t_ms, offset, e));
            continue;
        }
        if e.op == Op::OffsetCommit {
            commits.entry((group, queue)).or_default().push((e.t_ms, offset, e));
            continue;
        }
        resumes += 1;
        let broker = queue.split('/').next().unwrap_or("");
        let lost = |taken_ms: u64| {
            losses.get(broker).is_some_and(|times| {
                times.iter().any(|&t| t + ANSWER_FLIGHT_MS >= taken_ms && t <= e.t_ms && t.saturating_sub(taken_ms) <= LOSS_WINDOW_MS)
            })
                || slowed.get(broker).is_some_and(|spans| spans.iter().any(|&(from, to)| from <= e.t_ms && to >= taken_ms))
        };
        let binding = commits
            .get(&(group, queue))
            .into_iter()
            .flatten()
            .filter(|(taken_ms, committed, _)| taken_ms + RESUME_SLACK_MS <= e.t_ms && *committed > offset);
        let (mut bound, mut forgiven) = (None::<&(u64, u64, &Event)>, false);
        for commit in binding {
            if lost(commit.0) {
                forgiven = true;
            } else if bound.is_none_or(|b| commit.1 > b.1) {
                bound = Some(commit);
            }
        }
        match bound {
            Some(&(taken_ms, committed, commit)) => {
                back += 1;
                result.push_anomaly(
                    "commit-went-back",
                    format!(
                        "{} resumed {queue} for {group} at offset {offset}, though the broker had taken {committed} as committed at {taken_ms} ms",
                        e.process
                    ),
                    vec![commit.id, e.id],
                );
            }
            None => excused += u64::from(forgiven),
        }
    }
    (resumes, back, excused)
}
