//! **transaction**: what a transactional producer decides is what consumers
//! get, through crashes and check-backs.
//!
//! A transactional message's send invoke carries `tx`: what its local
//! transaction decides in the end. The producer records its end (`tx-end`)
//! and every check-back it answers (`tx-check`); the drain records halves it
//! found moved aside (`tx-aside`).

use super::{not_expected, Invariant};
use crate::config::CheckConfig;
use crate::faults::{fault_spans, FaultSpan};
use crate::history::{Event, Kind, Op, TxState};
use crate::index::{Index, SendStatus, Tx};
use crate::verdict::{CheckResult, Validity};
use std::collections::{BTreeMap, BTreeSet};

/// Checks, for each transactional message whose half was acknowledged:
///
/// - `rollback-delivered`: its local transaction rolled back, yet a
///   consumer got it;
/// - `committed-not-delivered`: it committed, yet no consumer got it and it
///   was not moved aside (reported) after the most check-backs; excused
///   when every producer of its group left for good before a end reached
///   the broker (`orphaned`: nobody could answer), and so is one a disk
///   fault destroyed (`destroyed`: a flipped bit in its half or its copy);
/// - `committed-twice`: consumers got it from two different stored copies
///   (queue and offset) more than it was sent (an operator may send a dead
///   letter again under its id), which only a second commit of one half
///   writes.
///   Excused on a broker that lost power (its copy may have been lost and
///   written again).
///
/// - `committed-moved-aside`: it was moved aside after the most
///   check-backs, though a producer answered one of them commit and was
///   asked again more than [`CHECK_SLACK_MS`] later with no fault under
///   way nor healed in the 10 s before (so the answer had had time to
///   reach the broker, and the broker to write it): the broker lost
///   a commit. Halves nobody answered stay excused (`moved-aside`);
/// - `checked-after-end`: a producer was asked about it more than
///   [`CHECK_SLACK_MS`] after its end was acknowledged or a check-back was
///   answered commit or rollback, with no fault under way in between nor
///   healed in the 10 s before (checks asked then are
///   `checked-after-end-excused`).
///
/// Counts: `transactions`, `committed`, `rolled-back`, `ended-by-producer`,
/// `resolved-by-check` (no end from the producer reached the broker: a
/// check-back's answer did), `checks`, `checks-<answer>`, `moved-aside`,
/// `orphaned`, and `resolve-p50-ms`, `resolve-p99-ms`, `resolve-max-ms`:
/// from the half's acknowledgement to the first delivery, for committed
/// messages a check-back resolved.
pub fn check_transaction(history: &[Event], cfg: &CheckConfig) -> CheckResult {
    transaction(history, cfg, &Index::build(history, cfg))
}

/// [`check_transaction`] over an index built once for every check.
pub(crate) fn transaction<'a>(history: &'a [Event], cfg: &CheckConfig, index: &Index<'a>) -> CheckResult {
    if !cfg.expect.transaction {
        return not_expected(Invariant::Transaction);
    }
    let mut result = CheckResult::new(Invariant::Transaction.name());
    let mut deliveries: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in history.iter().filter(|e| e.op == Op::Deliver && e.kind == Kind::Ok) {
        if let Some(id) = e.msg_id.as_deref().filter(|id| index.tx.contains_key(id)) {
            deliveries.entry(id).or_default().push(e);
        }
    }
    // Brokers that lost power: their copies may be written twice.
    let powerless: BTreeSet<&str> = history
        .iter()
        .filter(|e| e.op == Op::Fault && e.fault.as_deref() == Some("power-loss"))
        .flat_map(|e| e.target.as_deref().unwrap_or("").split(','))
        .collect();
    // A message sent again under its id (an operator's resend of a dead
    // letter) may be stored once per send.
    let mut sends: BTreeMap<&str, usize> = BTreeMap::new();
    for e in history.iter().filter(|e| e.op == Op::Send && e.kind == Kind::Invoke) {
        if let Some(id) = e.msg_id.as_deref().filter(|id| index.tx.contains_key(id)) {
            *sends.entry(id).or_default() += 1;
        }
    }
    // Where no fault was under way, a check-back can be told from one the
    // broker had no reason to send.
    let quiet = Quiet::of(history);
    let mut checks_by_answer: BTreeMap<&str, u64> = BTreeMap::new();
    for e in history.iter().filter(|e| e.op == Op::TxCheck) {
        *checks_by_answer.entry(e.tx.map_or("none", TxState::as_str)).or_default() += 1;
    }
    let (mut transactions, mut committed, mut rolled_back, mut by_producer, mut by_check) = (0, 0, 0, 0, 0);
    let (mut aside, mut orphaned, mut twice_excused, mut destroyed) = (0, 0, 0, 0);
    let mut resolve_ms = Vec::new();
    let (mut bad, mut rollback_delivered, mut not_delivered, mut twice) = (0, 0, 0, 0);
    let (mut aside_committed, mut after_end, mut after_end_excused) = (0, 0, 0);
    for (&id, tx) in &index.tx {
        let Some(message) = index.messages.get(id).filter(|m| m.status == SendStatus::Acknowledged) else { continue };
        transactions += 1;
        // Asked again about a transaction that had ended (Apache RocketMQ
        // #8158, #9640): counted for every half, an anomaly past the slack.
        let (late, excused) = checks_after_end(tx, &quiet);
        after_end_excused += excused;
        if let Some(&(ended, again)) = late.first() {
            after_end += late.len() as u64;
            bad += 1;
            result.push_anomaly(
                "checked-after-end",
                format!(
                    "{id} was checked back {} time(s) after its end: {} {} at {} ms, then {} was asked at {} ms",
                    late.len(),
                    ended.process,
                    if ended.op == Op::TxEnd { "ended it (acknowledged)" } else { "answered the check-back" },
                    ended.t_ms,
                    again.process,
                    again.started_ms()
                ),
                vec![ended.id, again.id],
            );
        }
        if index.destroyed.contains(id) {
            // A flipped bit in its half (or its copy): no broker with one
            // copy of the data can bring it back, as `lost` excuses too.
            destroyed += 1;
            continue;
        }
        let got = deliveries.get(id).map(Vec::as_slice).unwrap_or_default();
        match tx.end {
            Some(_) => by_producer += 1,
            None => by_check += 1,
        }
        if tx.aside.is_some() {
            aside += 1;
        }
        match tx.truth {
            TxState::Rollback => {
                rolled_back += 1;
                if let Some(first) = got.first() {
                    bad += 1;
                    rollback_delivered += 1;
                    result.push_anomaly(
                        "rollback-delivered",
                        format!("{id} was rolled back by its local transaction, yet {} got it at {} ms", first.process, first.t_ms),
                        [message.event_ids(), vec![first.id]].concat(),
                    );
                }
            }
            TxState::Commit | TxState::Unknown => {
                committed += 1;
                if got.is_empty() {
                    if let Some(aside_event) = tx.aside {
                        // Moved aside after the most checks is what a half
                        // nobody answered deserves, not one whose producer
                        // said commit and was asked again after.
                        if let Some((answer, again)) = asked_after(tx, &quiet).filter(|(a, _)| a.tx == Some(TxState::Commit)) {
                            bad += 1;
                            aside_committed += 1;
                            result.push_anomaly(
                                "committed-moved-aside",
                                format!(
                                    "{id} was moved aside after the most check-backs, though {} answered commit at {} ms and was asked again at {} ms",
                                    answer.process,
                                    answer.t_ms,
                                    again.started_ms()
                                ),
                                vec![answer.id, again.id, aside_event.id],
                            );
                        }
                        continue;
                    }
                    if tx.orphaned && tx.end.is_none() {
                        orphaned += 1;
                        continue;
                    }
                    bad += 1;
                    not_delivered += 1;
                    let how = if tx.end.is_some() { "its producer's commit reached the broker" } else { "check-back never resolved it" };
                    result.push_anomaly(
                        "committed-not-delivered",
                        format!("{id} committed, yet no consumer got it and it was not moved aside: {how}"),
                        message.event_ids(),
                    );
                    continue;
                }
                if tx.end.is_none() {
                    let first = got.iter().map(|e| e.t_ms).min().unwrap_or(0);
                    resolve_ms.push(first.saturating_sub(message.ack_t_ms().unwrap_or(0)));
                }
                let copies: BTreeSet<(&str, u64)> =
                    got.iter().filter_map(|e| Some((e.queue.as_deref()?, e.offset?))).filter(|(q, _)| !q.contains("%RETRY%")).collect();
                if copies.len() > sends.get(id).copied().unwrap_or(1).max(1) {
                    let broker = copies.iter().next().map_or("", |(q, _)| q.split('/').next().unwrap_or(""));
                    if powerless.contains(broker) {
                        twice_excused += 1;
                        continue;
                    }
                    bad += 1;
                    twice += 1;
                    let list: Vec<String> = copies.iter().map(|(q, o)| format!("{q}@{o}")).collect();
                    result.push_anomaly(
                        "committed-twice",
                        format!("{id} was delivered from {} stored copies ({}): one half, committed twice", copies.len(), list.join(", ")),
                        got.iter().map(|e| e.id).collect(),
                    );
                }
            }
        }
    }
    resolve_ms.sort_unstable();
    result.set("transactions", transactions);
    result.set("committed", committed);
    result.set("rolled-back", rolled_back);
    result.set("ended-by-producer", by_producer);
    result.set("resolved-by-check", by_check);
    result.set("checks", checks_by_answer.values().sum());
    for (answer, n) in checks_by_answer {
        result.set(&format!("checks-{answer}"), n);
    }
    result.set("rollback-delivered", rollback_delivered);
    result.set("committed-not-delivered", not_delivered);
    result.set("committed-twice", twice);
    result.set("moved-aside", aside);
    result.set("orphaned", orphaned);
    result.set("destroyed", destroyed);
    result.set("committed-twice-excused", twice_excused);
    result.set("committed-moved-aside", aside_committed);
    result.set("checked-after-end", after_end);
    result.set("checked-after-end-excused", after_end_excused);
    if !resolve_ms.is_empty() {
        result.set("resolve-p50-ms", percentile(&resolve_ms, 50));
        result.set("resolve-p99-ms", percentile(&resolve_ms, 99));
        result.set("resolve-max-ms", *resolve_ms.last().unwrap_or(&0));
    }
    if bad > 0 {
        if index.end.is_some() {
            result.worsen(Validity::Invalid);
        } else {
            result.worsen(Validity::Unknown);
            result.note = Some("history has no end event: the final drain may not have run".into());
        }
    }
    result
}

/// The nearest-rank `p`-th percentile of sorted values.
pub(crate) fn percentile(sorted: &[u64], p: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() as u64 * p).div_ceil(100).max(1) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// How long after a producer's end (or its answer to a check-back) the
/// broker may still ask about the half: a check already on its way, a
/// round that scanned before the end was written. Check rounds run every
/// second or more, so a check later than this was sent after the broker
/// could know.
pub const CHECK_SLACK_MS: u64 = 2_000;

/// How long a fault's effects may outlast its heal: a broker that had a
/// slow disk or was cut off works through its backlog of writes, ends and
/// checks for a while after.
const AFTERMATH_MS: u64 = 10_000;

/// The stretches of a history with no fault under way.
struct Quiet<'a> {
    faults: Vec<FaultSpan<'a>>,
}

impl<'a> Quiet<'a> {
    fn of(history: &'a [Event]) -> Quiet<'a> {
        Quiet { faults: fault_spans(history) }
    }

    /// True when no fault was under way at any time in `[from, to]`, nor
    /// healed less than [`AFTERMATH_MS`] before it.
    fn between(&self, from_ms: u64, to_ms: u64) -> bool {
        !self.faults.iter().any(|f| f.overlaps(from_ms.saturating_sub(AFTERMATH_MS), to_ms))
    }
}

/// The first acknowledged end or decisive check-back answer of a half.
fn first_end<'a>(tx: &Tx<'a>) -> Option<&'a Event> {
    let answered = tx.checks.iter().copied().filter(|c| matches!(c.tx, Some(TxState::Commit | TxState::Rollback)));
    let end = tx.end.filter(|e| matches!(e.tx, Some(TxState::Commit | TxState::Rollback)));
    end.into_iter().chain(answered).min_by_key(|e| (e.t_ms, e.id))
}

/// The checks of a half that began more than [`CHECK_SLACK_MS`] after its
/// first end, each with that end, and how many such checks a fault excused.
fn checks_after_end<'a>(tx: &Tx<'a>, quiet: &Quiet) -> (Vec<(&'a Event, &'a Event)>, u64) {
    let Some(ended) = first_end(tx) else { return (Vec::new(), 0) };
    let mut late = Vec::new();
    let mut excused = 0;
    for check in tx.checks.iter().copied().filter(|c| c.started_ms() > ended.t_ms + CHECK_SLACK_MS) {
        if quiet.between(ended.t_ms, check.started_ms()) {
            late.push((ended, check));
        } else {
            excused += 1;
        }
    }
    (late, excused)
}

/// A decisive answer (or acknowledged end) after which the half was asked
/// again, past the slack and with no fault under way: the broker had it.
fn asked_after<'a>(tx: &Tx<'a>, quiet: &Quiet) -> Option<(&'a Event, &'a Event)> {
    checks_after_end(tx, quiet).0.into_iter().next()
}
