//! **dead letter**: retries and dead letters follow the group's rules.
//!
//! A delivery chain is every delivery of one message id to one group: the
//! message, its retry copies (which keep the id) and its dead letter. A
//! deliver event's `reconsume` is how many times the chain had been
//! consumed again before it; a `local-retry` detail marks a retry the
//! consumer made itself (the broker could not take the message back, or an
//! orderly queue retries in place), which waits no delay level.

use super::{not_expected, sorted, Invariant};
use crate::clock::Clocks;
use crate::config::CheckConfig;
use crate::faults::fault_spans;
use crate::history::{ConsumeOutcome, Event, Kind, Op};
use crate::index::{dead_letters, Index};
use crate::verdict::{CheckResult, Validity};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// A word of a deliver event's `detail`: the consumer retried it by itself.
pub const LOCAL_RETRY: &str = "local-retry";

/// A word of a failed deliver event's `detail`: the consumer could not look
/// the key up in its deduplication store, so it could not tell a consumed
/// key from a new one and failed the delivery.
pub const DEDUPE_UNAVAILABLE: &str = "dedupe-unavailable";

/// Whether a deliver event's `detail` holds `word` (details are words
/// separated by spaces).
fn flagged(e: &Event, word: &str) -> bool {
    e.detail.as_deref().is_some_and(|d| d.split(' ').any(|w| w == word))
}

/// RocketMQ's retry level: the retry after reconsumption `n` waits at
/// delay level `n + 3` (level 3 is 10 s in the default table).
fn retry_level(reconsumed: u32) -> u32 {
    reconsumed.saturating_add(3)
}

/// One stored copy of a chain's message (the original, a retry copy), as
/// the deliveries name it: its queue and offset.
#[derive(Default)]
struct Copy<'a> {
    /// Deliveries the broker made of it (not the consumer's local retries).
    delivered: u32,
    /// The processes it was delivered to, each once (nearly always one: a
    /// vector, not a tree node per copy).
    processes: Vec<&'a str>,
    /// Its first delivery.
    first: Option<&'a Event>,
    /// Its latest delivery, which says whether it was consumed or failed
    /// (and so sent back).
    last: Option<&'a Event>,
}

#[derive(Default)]
struct Chain<'a> {
    /// Reconsume level -> the first failed delivery at it.
    failed: BTreeMap<u32, &'a Event>,
    /// The latest failed delivery.
    last_failure: Option<&'a Event>,
    /// Every failed delivery.
    failures: Vec<&'a Event>,
    /// Successful deliveries.
    successes: Vec<&'a Event>,
    /// Deliveries of broker-made retries (reconsume >= 1, not local).
    retries: Vec<&'a Event>,
    /// Its stored copies, sorted by (queue, offset) (a few at most: a
    /// sorted vector, not a tree node per chain).
    copies: Vec<((&'a str, u64), Copy<'a>)>,
    /// Some delivery did not name its queue and offset, so its copies
    /// cannot be told apart.
    unnamed: bool,
    /// Some delivery was a retry in place: the send-back before it failed
    /// as the consumer saw it, yet may have stored a copy.
    retried_locally: bool,
    /// The first and the last delivery's time.
    span_ms: Option<(u64, u64)>,
}

impl<'a> Chain<'a> {
    /// The copies that failed and were not consumed after (each was sent
    /// back, to a retry copy or the DLQ), in the order they failed, when
    /// the chain is linear: one original copy, every copy delivered once,
    /// to one process, no retry in place, and no fault on a broker that
    /// held a copy (`disturbed(broker, from_ms, to_ms)`) while the chain
    /// ran. Only then is each failed copy the parent of the next, so that
    /// their number is how often the consumers saw the message fail,
    /// whatever level the broker wrote on its copies. Otherwise (`None`) a
    /// copy may have been sent back twice (redelivered after a crash or a
    /// rebalance, a send-back answered too late) or handed out again by a
    /// restarted broker, and the copies fork.
    fn failed_in_line(&self, disturbed: impl Fn(&str, u64, u64) -> bool) -> Option<Vec<&'a Event>> {
        if self.unnamed || self.retried_locally {
            return None;
        }
        // A broker that restarts may hand out copies again (its schedule
        // progress not yet persisted): a clone is no new failure.
        let (first_ms, last_ms) = self.span_ms?;
        if self.copies.iter().any(|((queue, _), _)| disturbed(queue.split('/').next().unwrap_or(""), first_ms, last_ms)) {
            return None;
        }
        let originals = self.copies.iter().filter(|((queue, _), _)| !queue.contains(RETRY_TOPIC_PREFIX)).count();
        if originals != 1 || self.copies.iter().any(|(_, c)| c.delivered != 1 || c.processes.len() != 1) {
            return None;
        }
        let mut failed: Vec<&Event> = self
            .copies
            .iter()
            .filter_map(|(_, c)| c.last)
            .filter(|last| last.result == Some(ConsumeOutcome::RetryLater))
            .collect();
        failed.sort_by_key(|e| (e.t_ms, e.id));
        Some(failed)
    }
}

/// What a retry topic's name starts with (`%RETRY%<group>`).
const RETRY_TOPIC_PREFIX: &str = "%RETRY%";

/// Checks, per group and message id, with the group's max reconsume times M:
///
/// - `dead-lettered-early`: in the DLQ, but some reconsume level of 0..=M
///   never failed (a message is dead-lettered when its consumption failed
///   M + 1 times, counted across its copies);
/// - `not-dead-lettered`: it is not in the DLQ at the end (excused:
///   messages a disk fault destroyed), yet it failed at level M or later
///   and was not consumed successfully after that; or, counted from the
///   consumers' own results whatever level the broker wrote on its copies,
///   M + 1 of its copies failed one after another (a linear chain: see
///   `failed_in_line`);
/// - `retried-past-max`: it came back after it should have been
///   dead-lettered: a retry at a level past M, or, in a linear chain, a new
///   copy delivered after the (M + 1)-th failed copy (a message sent once
///   only: a dead letter an operator resent starts anew);
/// - `consumed-and-dead-lettered`: in the DLQ, yet, in a group that
///   deduplicates by key, a delivery failed that started after one had
///   succeeded (deliveries that overlap in time may race; `start_ms` says
///   when each started, `t_ms` when it ended), unless it failed because
///   the deduplication store could not be asked (`dedupe-unavailable`);
/// - `dead-lettered-late`: stored in the DLQ later than
///   `expect.dead_letter_bound_ms` after the failure it followed, with no
///   fault to excuse it (see [`late_dead_letters`]);
/// - `retry-early`: a retry at reconsume level n >= 1 delivered sooner after
///   every failure of the chain at level n - 1 before it than delay level
///   n + 2 allows,
///   less how far the clock of the broker that held it ran ahead between
///   that failure and the retry (from `expect.clock_moves_ms`; the largest
///   such allowance is `retry-clock-allowance-max-ms`);
/// - `retried-without-failure`: a retry at level n >= 1 with no failure at
///   level n - 1 before it.
///
/// Counts: `failed-chains`, `failed-chains-in-line` (those whose failures
/// could be counted copy by copy), `retries`, `retries-at-level-N`, `dead-lettered`,
/// `dlq-<group>`, `local-retries`, and `retry-min-margin-ms` (the least
/// time a retry arrived after its level allowed), beside the anomaly counts.
pub fn check_dead_letter(history: &[Event], cfg: &CheckConfig) -> CheckResult {
    dead_letter(history, cfg, &Index::build(history, cfg))
}

/// [`check_dead_letter`] over an index built once for every check.
pub(crate) fn dead_letter<'a>(history: &'a [Event], cfg: &CheckConfig, index: &Index<'a>) -> CheckResult {
    if !cfg.expect.dead_letter {
        return not_expected(Invariant::DeadLetter);
    }
    let mut result = CheckResult::new(Invariant::DeadLetter.name());
    // Hashed while building; judged below in key order.
    let mut chains: FxHashMap<(&str, &str), Chain> = FxHashMap::default();
    let mut local_retries = 0;
    // A POP group's message comes back in place, with no retry topic and
    // no delay level: the pop check judges its attempts.
    let pop_groups: Vec<&str> = index.groups.iter().filter(|g| g.pop).map(|g| g.group.as_str()).collect();
    for e in history.iter().filter(|e| e.op == Op::Deliver && e.kind == Kind::Ok) {
        let (Some(group), Some(msg_id)) = (e.group.as_deref(), e.msg_id.as_deref()) else { continue };
        if pop_groups.contains(&group) {
            continue;
        }
        let chain = chains.entry((group, msg_id)).or_default();
        let level = e.reconsume.unwrap_or(0);
        let local = flagged(e, LOCAL_RETRY);
        local_retries += u64::from(local);
        chain.retried_locally |= local;
        chain.span_ms = Some(chain.span_ms.map_or((e.t_ms, e.t_ms), |(first, _)| (first, e.t_ms)));
        match (e.queue.as_deref(), e.offset) {
            (Some(queue), Some(offset)) => {
                let key = (queue, offset);
                let at = match chain.copies.binary_search_by(|(k, _)| k.cmp(&key)) {
                    Ok(at) => at,
                    Err(at) => {
                        chain.copies.insert(at, (key, Copy::default()));
                        at
                    }
                };
                let copy = &mut chain.copies[at].1;
                copy.delivered += u32::from(!local);
                if !copy.processes.contains(&e.process.as_str()) {
                    copy.processes.push(&e.process);
                }
                copy.first.get_or_insert(e);
                copy.last = Some(e);
            }
            _ => chain.unnamed = true,
        }
        if level >= 1 && !local {
            chain.retries.push(e);
        }
        match e.result {
            Some(ConsumeOutcome::RetryLater) => {
                chain.failed.entry(level).or_insert(e);
                chain.last_failure = Some(e);
                chain.failures.push(e);
            }
            Some(ConsumeOutcome::Success) => chain.successes.push(e),
            None => {}
        }
    }
    let dlq = dead_letters(history);
    let max_of: BTreeMap<&str, u32> = index.groups.iter().map(|g| (g.group.as_str(), g.max_reconsume_times)).collect();
    let idempotent_of: BTreeMap<&str, bool> = index.groups.iter().map(|g| (g.group.as_str(), g.idempotent)).collect();
    // The broker that held a retry is the first part of its queue's name;
    // it held it from the failure to the retry.
    let clocks = Clocks::of(cfg);
    let mut allowance_max = 0;
    let allowance_of = |failure: &Event, retry: &Event| {
        let broker = retry.queue.as_deref().and_then(|q| q.split('/').next()).unwrap_or("");
        clocks.allowance_ms(broker, failure.t_ms, retry.t_ms)
    };
    let (mut failed_chains, mut retries, mut dead, mut early, mut not_dead, mut both, mut orphans) = (0, 0, 0, 0, 0, 0, 0);
    let mut min_margin: Option<i64> = None;
    let mut per_level: BTreeMap<u32, u64> = BTreeMap::new();
    let mut per_group: BTreeMap<&str, u64> = BTreeMap::new();
    // A broker (as queues name it) had a fault of its own, or the network
    // was cut, at some time in [from, to].
    let spans = fault_spans(history);
    let disturbed = |broker: &str, from_ms: u64, to_ms: u64| {
        spans.iter().any(|f| {
            f.overlaps(from_ms, to_ms)
                && (f.name() == "partition"
                    || f.targets().any(|t| t == broker || cfg.expect.broker_groups.get(t).is_some_and(|g| g == broker)))
        })
    };
    let mut bad_retry = 0;
    let (mut chains_in_line, mut past_max) = (0, 0);
    let mut sends: FxHashMap<&str, u64> = FxHashMap::default();
    for e in history.iter().filter(|e| e.op == Op::Send && e.kind == Kind::Invoke) {
        if let Some(id) = e.msg_id.as_deref() {
            *sends.entry(id).or_default() += 1;
        }
    }
    for (&(group, msg_id), chain) in sorted(&chains) {
        let max = max_of.get(group).copied().unwrap_or(16);
        failed_chains += u64::from(!chain.failed.is_empty());
        let in_line = chain.failed_in_line(&disturbed);
        if in_line.as_ref().is_some_and(|failed| !failed.is_empty()) {
            chains_in_line += 1;
        }
        for retry in &chain.retries {
            retries += 1;
            let level = retry.reconsume.unwrap_or(0);
            let delay_level = retry_level(level - 1);
            *per_level.entry(delay_level).or_default() += 1;
            let wait = delay_ms(&cfg.expect.delay_levels_ms, delay_level);
            // Its parent is one of the chain's failures at the level below
            // it, before it (a message stored twice, or redelivered, fails
            // on several copies): the one that explains it best is judged.
            let judged = chain
                .failures
                .iter()
                .filter(|f| f.reconsume.unwrap_or(0) == level - 1 && f.t_ms <= retry.t_ms)
                .map(|failure| {
                    let allowance = allowance_of(failure, retry);
                    let margin = retry.t_ms as i64 - (failure.t_ms + wait) as i64;
                    (margin + allowance as i64, margin, allowance, *failure)
                })
                .max_by_key(|(leeway, ..)| *leeway);
            let Some((_, margin, allowance, failure)) = judged else {
                orphans += 1;
                result.push_anomaly(
                    "retried-without-failure",
                    format!("{msg_id} came back to {group} at reconsume level {level} with no failed delivery at level {} before it", level - 1),
                    vec![retry.id],
                );
                continue;
            };
            allowance_max = allowance_max.max(allowance);
            min_margin = Some(min_margin.map_or(margin, |m| m.min(margin)));
            if margin + (allowance as i64) < 0 {
                bad_retry += 1;
                result.push_anomaly(
                    "retry-early",
                    format!(
                        "{msg_id} came back to {group} at reconsume level {level} {} ms after failing at level {}, \
                         but delay level {delay_level} waits {wait} ms (allowance {allowance} ms)",
                        retry.t_ms.saturating_sub(failure.t_ms),
                        level - 1
                    ),
                    vec![failure.id, retry.id],
                );
            }
        }
        let dead_lettered = dlq.get(&(group, msg_id));
        if let Some(dlq_event) = dead_lettered {
            dead += 1;
            *per_group.entry(group).or_default() += 1;
            let missing: Vec<u32> = (0..=max).filter(|l| !chain.failed.contains_key(l)).collect();
            if !missing.is_empty() {
                early += 1;
                result.push_anomaly(
                    "dead-lettered-early",
                    format!(
                        "{msg_id} is in {group}'s DLQ, but it never failed at reconsume level(s) {missing:?} of 0..={max}: \
                         it failed {} time(s)",
                        chain.failed.len()
                    ),
                    vec![dlq_event.id],
                );
            }
            // An idempotent group looks a key up before its business logic
            // runs: once one delivery succeeded, any delivery started
            // later succeeds too. (Deliveries that overlap may race.)
            let late_failure = chain
                .failures
                .iter()
                .filter(|f| !flagged(f, DEDUPE_UNAVAILABLE))
                .find(|f| chain.successes.iter().any(|s| s.t_ms < f.started_ms()))
                .filter(|_| idempotent_of.get(group).copied().unwrap_or(true));
            if let Some((last, success)) = late_failure.and_then(|f| chain.successes.iter().find(|s| s.t_ms < f.started_ms()).map(|s| (*f, *s))) {
                both += 1;
                result.push_anomaly(
                    "consumed-and-dead-lettered",
                    format!(
                        "{msg_id} was consumed by {group} at {} ms, failed again in a delivery started at {} ms and is in its DLQ",
                        success.t_ms,
                        last.started_ms()
                    ),
                    vec![success.id, last.id, dlq_event.id],
                );
            }
        } else if let Some(last) = chain.last_failure {
            let reached_max = chain.failed.keys().next_back().is_some_and(|&l| l >= max);
            let consumed_after = chain.successes.iter().any(|s| s.t_ms >= last.t_ms);
            let exhausted = in_line.as_ref().filter(|failed| failed.len() > max as usize);
            if !index.destroyed.contains(msg_id) && index.end.is_some() {
                if reached_max && !consumed_after {
                    not_dead += 1;
                    result.push_anomaly(
                        "not-dead-lettered",
                        format!(
                            "{msg_id} failed in {group} at reconsume level {} (max {max}) and was neither consumed after that nor dead-lettered",
                            last.reconsume.unwrap_or(0)
                        ),
                        vec![last.id],
                    );
                } else if let Some(failed) = exhausted {
                    not_dead += 1;
                    result.push_anomaly(
                        "not-dead-lettered",
                        format!(
                            "{msg_id} failed in {group} on {} copies one after another (max reconsume times {max}), yet it is not in the DLQ: \
                             the broker's copies said reconsume level {} at most",
                            failed.len(),
                            chain.failed.keys().next_back().copied().unwrap_or(0)
                        ),
                        failed.iter().map(|e| e.id).collect(),
                    );
                }
            }
        }
        // Retried past the max: once the copy at level max failed, the
        // message belongs in the DLQ at once; another copy means the broker
        // retried it again (or dead-letters it late). A message sent more
        // than once (an operator's resend of a dead letter) starts anew.
        if sends.get(msg_id).copied().unwrap_or(0) <= 1 {
            let by_level = chain.retries.iter().find(|r| r.reconsume.unwrap_or(0) > max).copied();
            let by_count = in_line.as_ref().filter(|failed| failed.len() > max as usize).and_then(|failed| {
                let exhausted = failed[max as usize];
                chain
                    .copies
                    .iter()
                    .filter_map(|(_, c)| c.first)
                    .find(|first| (first.t_ms, first.id) > (exhausted.t_ms, exhausted.id))
                    .map(|again| (exhausted, again))
            });
            if let Some(again) = by_level {
                past_max += 1;
                result.push_anomaly(
                    "retried-past-max",
                    format!(
                        "{msg_id} came back to {group} at reconsume level {}, past its max of {max}: it should have gone to the DLQ",
                        again.reconsume.unwrap_or(0)
                    ),
                    vec![again.id],
                );
            } else if let Some((exhausted, again)) = by_count {
                past_max += 1;
                result.push_anomaly(
                    "retried-past-max",
                    format!(
                        "{msg_id} came back to {group} at {} ms, after failing on {} copies one after another by {} ms \
                         (max reconsume times {max}): it should have gone to the DLQ",
                        again.t_ms,
                        max + 1,
                        exhausted.t_ms
                    ),
                    vec![exhausted.id, again.id],
                );
            }
        }
    }
    let late = match cfg.expect.dead_letter_bound_ms {
        Some(bound_ms) => late_dead_letters(history, &chains, cfg, bound_ms, &clocks, &spans, &mut result),
        None => 0,
    };
    result.set("failed-chains", failed_chains);
    result.set("retries", retries);
    result.set("local-retries", local_retries);
    result.set("dead-lettered", dead);
    for (level, n) in per_level {
        result.set(&format!("retries-at-level-{level}"), n);
    }
    for (group, n) in per_group {
        result.set(&format!("dlq-{group}"), n);
    }
    if let Some(margin) = min_margin {
        result.set("retry-min-margin-ms", margin.max(0) as u64);
    }
    result.set("retry-early", bad_retry);
    result.set("retried-without-failure", orphans);
    result.set("dead-lettered-early", early);
    result.set("not-dead-lettered", not_dead);
    result.set("consumed-and-dead-lettered", both);
    result.set("retried-past-max", past_max);
    result.set("failed-chains-in-line", chains_in_line);
    result.set("dead-lettered-late", late);
    if bad_retry + orphans + early + not_dead + both + past_max + late > 0 {
        result.worsen(Validity::Invalid);
    }
    result.set("retry-clock-allowance-max-ms", allowance_max);
    result.note = Some(if cfg.expect.clock_moves_ms.is_empty() {
        "retries checked against their delay levels; no broker clock moved".to_string()
    } else {
        "retries checked against their delay levels, each less how far the clock of the broker that held it ran ahead \
         between the failure and the retry"
            .to_string()
    });
    result
}

/// `dead-lettered-late`: each dead letter whose store time (by its broker's
/// clock, read back in either direction as far as that clock stood off true
/// time) comes more than `bound_ms` after the chain's latest failure before
/// it, when no fault touched its broker, the consumer that failed it or the
/// whole network in between: the consumer sent it back as it failed, and a
/// dead letter is stored at once, never held at a delay level. Sets
/// `dead-letter-lateness-max-ms` (over the dead letters judged) and
/// returns the anomalies.
fn late_dead_letters(
    history: &[Event],
    chains: &FxHashMap<(&str, &str), Chain>,
    cfg: &CheckConfig,
    bound_ms: u64,
    clocks: &Clocks,
    spans: &[crate::faults::FaultSpan],
    result: &mut CheckResult,
) -> u64 {
    let (mut late, mut worst) = (0, None::<u64>);
    for d in history.iter().filter(|e| e.op == Op::Dlq && e.kind != Kind::Fail) {
        let (Some(group), Some(msg_id), Some(stored_ms)) = (d.group.as_deref(), d.msg_id.as_deref(), d.stored_ms) else { continue };
        let Some(chain) = chains.get(&(group, msg_id)) else { continue };
        let broker = d.queue.as_deref().and_then(|q| q.split('/').next()).unwrap_or("");
        let (first_ms, _) = chain.span_ms.unwrap_or((stored_ms, stored_ms));
        let (behind, ahead) = clocks.spread_ms(broker, first_ms.min(stored_ms), stored_ms.saturating_add(bound_ms));
        // The latest true time it may have been stored at, and the failure
        // it followed: the latest that may have come before it.
        let latest_true_ms = stored_ms + behind;
        let Some(failure) = chain.failures.iter().filter(|f| f.t_ms <= latest_true_ms).max_by_key(|f| (f.t_ms, f.id)) else {
            continue;
        };
        let disturbed = spans.iter().any(|f| {
            f.overlaps(failure.t_ms, latest_true_ms)
                && !f.name().starts_with("clock")
                && (matches!(f.name(), "partition" | "latency" | "loss")
                    || f.targets().any(|t| t == broker || t == failure.process || cfg.expect.broker_groups.get(t).is_some_and(|g| g == broker)))
        });
        if disturbed {
            continue;
        }
        let lateness = stored_ms.saturating_sub(ahead).saturating_sub(failure.t_ms);
        worst = worst.max(Some(lateness));
        if lateness > bound_ms {
            late += 1;
            result.push_anomaly(
                "dead-lettered-late",
                format!(
                    "{msg_id} failed in {group} at {} ms (reconsume level {}) and its dead letter was stored at {stored_ms} ms by \
                     {broker}'s clock ({ahead} ms ahead at most): {lateness} ms later, past the bound of {bound_ms} ms",
                    failure.t_ms,
                    failure.reconsume.unwrap_or(0)
                ),
                vec![failure.id, d.id],
            );
        }
    }
    if let Some(worst) = worst {
        result.set("dead-letter-lateness-max-ms", worst);
    }
    late
}

/// The delay of `level` (1-based) in `levels`; past the table, the last.
fn delay_ms(levels: &[u64], level: u32) -> u64 {
    match levels.len() {
        0 => 0,
        n => levels[(level as usize).clamp(1, n) - 1],
    }
}
