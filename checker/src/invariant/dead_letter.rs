//! **dead letter**: retries and dead letters follow the group's rules.
//!
//! A delivery chain is every delivery of one message id to one group: the
//! message, its retry copies (which keep the id) and its dead letter. A
//! deliver event's `reconsume` is how many times the chain had been
//! consumed again before it; a `local-retry` detail marks a retry the
//! consumer made itself (the broker could not take the message back, or an
//! orderly queue retries in place), which waits no delay level.

use super::{not_expected, Invariant};
use crate::config::CheckConfig;
use crate::history::{ConsumeOutcome, Event, Kind, Op};
use crate::index::{dead_letters, Index};
use crate::verdict::{CheckResult, Validity};
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
}

/// Checks, per group and message id, with the group's max reconsume times M:
///
/// - `dead-lettered-early`: in the DLQ, but some reconsume level of 0..=M
///   never failed (a message is dead-lettered when its consumption failed
///   M + 1 times, counted across its copies);
/// - `not-dead-lettered`: it failed at level M or later, was not consumed
///   successfully after that, and is not in the DLQ at the end (excused:
///   messages a disk fault destroyed);
/// - `consumed-and-dead-lettered`: in the DLQ, yet, in a group that
///   deduplicates by key, a delivery failed that started after one had
///   succeeded (deliveries that overlap in time may race; `start_ms` says
///   when each started, `t_ms` when it ended), unless it failed because
///   the deduplication store could not be asked (`dedupe-unavailable`);
/// - `retry-early`: a retry at reconsume level n >= 1 delivered sooner after
///   the chain's first failure at level n - 1 than delay level n + 2 allows,
///   less the allowance of the broker that held it
///   (`expect.clock_allowance_ms`);
/// - `retried-without-failure`: a retry at level n >= 1 with no failure at
///   level n - 1.
///
/// Counts: `failed-chains`, `retries`, `retries-at-level-N`, `dead-lettered`,
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
    let mut chains: BTreeMap<(&str, &str), Chain> = BTreeMap::new();
    let mut local_retries = 0;
    for e in history.iter().filter(|e| e.op == Op::Deliver && e.kind == Kind::Ok) {
        let (Some(group), Some(msg_id)) = (e.group.as_deref(), e.msg_id.as_deref()) else { continue };
        let chain = chains.entry((group, msg_id)).or_default();
        let level = e.reconsume.unwrap_or(0);
        let local = flagged(e, LOCAL_RETRY);
        local_retries += u64::from(local);
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
    // The broker that held a retry is the first part of its queue's name.
    let allowance_of = |retry: &Event| {
        let broker = retry.queue.as_deref().and_then(|q| q.split('/').next()).unwrap_or("");
        cfg.expect.clock_allowance_ms.get(broker).copied().unwrap_or(0)
    };
    let (mut failed_chains, mut retries, mut dead, mut early, mut not_dead, mut both, mut orphans) = (0, 0, 0, 0, 0, 0, 0);
    let mut min_margin: Option<i64> = None;
    let mut per_level: BTreeMap<u32, u64> = BTreeMap::new();
    let mut per_group: BTreeMap<&str, u64> = BTreeMap::new();
    let mut bad_retry = 0;
    for (&(group, msg_id), chain) in &chains {
        let max = max_of.get(group).copied().unwrap_or(16);
        failed_chains += u64::from(!chain.failed.is_empty());
        for retry in &chain.retries {
            retries += 1;
            let level = retry.reconsume.unwrap_or(0);
            let delay_level = retry_level(level - 1);
            *per_level.entry(delay_level).or_default() += 1;
            let Some(failure) = chain.failed.get(&(level - 1)) else {
                orphans += 1;
                result.push_anomaly(
                    "retried-without-failure",
                    format!("{msg_id} came back to {group} at reconsume level {level} with no failed delivery at level {}", level - 1),
                    vec![retry.id],
                );
                continue;
            };
            let wait = delay_ms(&cfg.expect.delay_levels_ms, delay_level);
            let allowance = allowance_of(retry);
            let margin = retry.t_ms as i64 - (failure.t_ms + wait) as i64;
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
            if reached_max && !consumed_after && !index.destroyed.contains(msg_id) && index.end.is_some() {
                not_dead += 1;
                result.push_anomaly(
                    "not-dead-lettered",
                    format!(
                        "{msg_id} failed in {group} at reconsume level {} (max {max}) and was neither consumed after that nor dead-lettered",
                        last.reconsume.unwrap_or(0)
                    ),
                    vec![last.id],
                );
            }
        }
    }
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
    if bad_retry + orphans + early + not_dead + both > 0 {
        result.worsen(Validity::Invalid);
    }
    let allowances: Vec<String> = cfg.expect.clock_allowance_ms.iter().map(|(b, ms)| format!("{b} {ms} ms")).collect();
    result.note = Some(if allowances.is_empty() {
        "retries checked against their delay levels; no broker clock moved forward".to_string()
    } else {
        format!("retries checked against their delay levels less how far each broker's clock moved forward: {}", allowances.join(", "))
    });
    result
}

/// The delay of `level` (1-based) in `levels`; past the table, the last.
fn delay_ms(levels: &[u64], level: u32) -> u64 {
    match levels.len() {
        0 => 0,
        n => levels[(level as usize).clamp(1, n) - 1],
    }
}
