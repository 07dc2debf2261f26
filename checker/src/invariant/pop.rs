//! **pop**: what a POP group (simple consumers) is promised about each
//! message it receives. The broker hands a message out as one attempt,
//! invisible to the group for the time the receive asked; acknowledged by
//! that attempt's handle it is done; otherwise it comes back once the
//! invisible time is over, as the next attempt, and after the group's most
//! attempts it goes to the dead-letter queue instead (the dead letters
//! themselves are the lost check's: a message is consumed or
//! dead-lettered).
//!
//! Attempts are counted per stored copy (its queue and offset): a
//! producer's retry may store a message twice, and each copy is handed out
//! on its own. Four anomalies, each from what the consumers saw:
//!
//! - `attempt-received-twice`: two deliveries of one message to the group
//!   as the same attempt. A lease is one consumer's: two holders can both
//!   have their acks taken (what Apache RocketMQ's revive lets happen when
//!   it re-puts a message it had not finished with).
//! - `received-while-invisible`: a delivery began before the previous
//!   attempt's invisible time was over (its receive was asked plus the
//!   invisible time it asked for; the broker started the lease no earlier).
//! - `acknowledged-received-again`: an attempt whose ack the broker took,
//!   and a later attempt of the message delivered anyway (Apache RocketMQ
//!   #7724, #8835: acknowledged messages redelivered after revive or a
//!   partial ack).
//! - `received-past-max-attempts`: an attempt beyond `max_reconsume_times
//!   + 1`, where the message should have been dead-lettered.
//!
//! Excused: a broker of the message's group lost its power or its disk
//! failed between the two events (the record of a lease or an ack may not
//! have been durable), any fault on one when the scenario expects losses
//! (asynchronous replication); and a message back early by no more than
//! its broker's clock gained while it held the lease (a clock moved back
//! and forward again shortens a lease in true time). A broker process not mapped to a group (single-replica
//! scenarios) is taken to be of every group.
//!
//! Counts: `deliveries`, `received-again` (attempts after the first),
//! `acks`, `acks-refused`, `acks-unknown`, `excused`, and one per anomaly.

use super::{not_expected, Invariant};
use crate::clock::Clocks;
use crate::config::CheckConfig;
use crate::faults::{fault_spans, FaultSpan};
use crate::history::{Event, Kind, Op};
use crate::index::Index;
use crate::verdict::{CheckResult, Validity};
use std::collections::BTreeMap;

/// Faults that may lose a durable-looking record of the POP log.
const LOSES_RECORDS: [&str; 2] = ["power-loss", "disk-fault"];
/// How long before a delivery began its receive may have been asked (and
/// the broker may have started its lease): a receive's long poll and its
/// timeout, with room to spare.
const RECEIVE_SLACK_MS: u64 = 30_000;

/// The anomalies, in the order the counts are listed.
const ANOMALIES: [&str; 4] = ["attempt-received-twice", "received-while-invisible", "acknowledged-received-again", "received-past-max-attempts"];

/// Checks the POP groups' deliveries and acks (see the module).
pub fn check_pop(history: &[Event], cfg: &CheckConfig) -> CheckResult {
    pop(history, cfg, &Index::build(history, cfg))
}

fn attempt(e: &Event) -> u32 {
    e.reconsume.unwrap_or(0).saturating_add(1)
}

/// The broker group a queue name (`broker-a/orders/3`) belongs to.
fn broker_group(queue: &str) -> &str {
    queue.split('/').next().unwrap_or(queue)
}

struct Excuses<'a> {
    spans: Vec<FaultSpan<'a>>,
    cfg: &'a CheckConfig,
}

impl Excuses<'_> {
    /// Whether a fault that may explain an anomaly hit a broker of
    /// `queue`'s group between `from_ms` and `to_ms`.
    fn excuse(&self, queue: Option<&str>, from_ms: u64, to_ms: u64) -> bool {
        let group = queue.map(broker_group);
        self.spans.iter().filter(|s| s.overlaps(from_ms, to_ms)).any(|s| {
            let counts = LOSES_RECORDS.contains(&s.name()) || self.cfg.expect.lost_max > 0;
            counts
                && s.targets().any(|t| {
                    t.starts_with("broker-")
                        && match (self.cfg.expect.broker_groups.get(t), group) {
                            (Some(g), Some(q)) => g == q,
                            _ => true,
                        }
                })
        })
    }
}

/// [`check_pop`] over an index built once for every check.
pub(crate) fn pop<'a>(history: &'a [Event], cfg: &CheckConfig, index: &Index<'a>) -> CheckResult {
    let max_attempts: BTreeMap<&str, u32> = index.groups.iter().filter(|g| g.pop).map(|g| (g.group.as_str(), g.max_reconsume_times + 1)).collect();
    if max_attempts.is_empty() {
        return not_expected(Invariant::Pop);
    }
    let mut result = CheckResult::new(Invariant::Pop.name());
    // Per stored copy (a producer's retry may store a message twice, and
    // each copy has attempts of its own): (group, msg_id, queue, offset)
    // -> deliveries in history order; -> acks taken.
    type CopyKey<'k> = (&'k str, &'k str, &'k str, u64);
    let mut deliveries: BTreeMap<CopyKey, Vec<&Event>> = BTreeMap::new();
    let mut acked: BTreeMap<CopyKey, Vec<&Event>> = BTreeMap::new();
    let (mut acks, mut refused, mut unknown) = (0u64, 0u64, 0u64);
    for e in history {
        let (Some(group), Some(msg_id)) = (e.group.as_deref(), e.msg_id.as_deref()) else { continue };
        if !max_attempts.contains_key(group) {
            continue;
        }
        let key = (group, msg_id, e.queue.as_deref().unwrap_or(""), e.offset.unwrap_or(u64::MAX));
        match (e.op, e.kind) {
            (Op::Deliver, Kind::Ok) => deliveries.entry(key).or_default().push(e),
            (Op::Ack, Kind::Ok) => {
                acks += 1;
                acked.entry(key).or_default().push(e);
            }
            (Op::Ack, Kind::Fail) => refused += 1,
            (Op::Ack, Kind::Info) => unknown += 1,
            _ => {}
        }
    }
    let excuses = Excuses { spans: fault_spans(history), cfg };
    let clocks = Clocks::of(cfg);
    let mut counts: BTreeMap<&str, u64> = ANOMALIES.iter().map(|a| (*a, 0)).collect();
    let (mut total, mut again, mut excused) = (0u64, 0u64, 0u64);
    let mut flag = |result: &mut CheckResult, kind: &'static str, excused_now: bool, detail: String, ids: Vec<u64>| {
        if excused_now {
            excused += 1;
        } else {
            *counts.get_mut(kind).expect("listed") += 1;
            result.push_anomaly(kind, detail, ids);
        }
    };
    for (&key, list) in &deliveries {
        let (group, msg_id, _, _) = key;
        total += list.len() as u64;
        again += list.iter().filter(|e| attempt(e) > 1).count() as u64;
        let max = max_attempts[group];
        let mut by_start: Vec<&Event> = list.clone();
        by_start.sort_by_key(|e| (e.started_ms(), e.id));
        for (i, d) in by_start.iter().enumerate() {
            let queue = d.queue.as_deref();
            if attempt(d) > max {
                let excused_now = excuses.excuse(queue, 0, d.t_ms);
                let detail = format!("{msg_id} came to {group} as attempt {} at {} ms, past its {max} attempts", attempt(d), d.started_ms());
                flag(&mut result, "received-past-max-attempts", excused_now, detail, vec![d.id]);
            }
            if let Some(twin) = by_start[..i].iter().find(|p| attempt(p) == attempt(d)) {
                let excused_now = excuses.excuse(queue, twin.started_ms(), d.t_ms);
                let detail = format!(
                    "{msg_id} came to {group} as attempt {} twice: to {} at {} ms and to {} at {} ms",
                    attempt(d),
                    twin.process,
                    twin.started_ms(),
                    d.process,
                    d.started_ms()
                );
                flag(&mut result, "attempt-received-twice", excused_now, detail, vec![twin.id, d.id]);
            }
            // Every earlier attempt's invisible time must be over before
            // this one was received (which was before it began). Processing
            // may begin long after a receive, so attempts are compared, not
            // the order deliveries began in.
            let earlier = by_start.iter().filter(|p| attempt(p) < attempt(d)).filter_map(|p| p.visible_ms.map(|v| (v, *p)));
            if let Some((visible, prev)) = earlier.filter(|&(v, _)| d.started_ms() < v).max_by_key(|&(v, p)| (v, p.id)) {
                // Early by no more than the broker's clock gained while it
                // held the lease (from before the receive began).
                let from = prev.started_ms().saturating_sub(RECEIVE_SLACK_MS);
                let early = visible - d.started_ms();
                let allowance = clocks.allowance_ms(queue.map_or("", broker_group), from, d.t_ms);
                let excused_now = early <= allowance || excuses.excuse(queue, prev.started_ms(), d.t_ms);
                let detail = format!(
                    "{msg_id} came to {group} (attempt {}) at {} ms, while attempt {} received by {} was invisible until {visible} ms",
                    attempt(d),
                    d.started_ms(),
                    attempt(prev),
                    prev.process
                );
                flag(&mut result, "received-while-invisible", excused_now, detail, vec![prev.id, d.id]);
            }
        }
        for ack in acked.get(&key).into_iter().flatten() {
            let acked_attempt = attempt(ack);
            for d in list.iter().filter(|d| attempt(d) > acked_attempt) {
                let (from, to) = (ack.t_ms.min(d.started_ms()), ack.t_ms.max(d.t_ms));
                let excused_now = excuses.excuse(d.queue.as_deref(), from, to);
                let detail = format!(
                    "{}'s ack of {msg_id} attempt {acked_attempt} for {group} was taken at {} ms, yet attempt {} came to {} at {} ms",
                    ack.process,
                    ack.t_ms,
                    attempt(d),
                    d.process,
                    d.started_ms()
                );
                flag(&mut result, "acknowledged-received-again", excused_now, detail, vec![ack.id, d.id]);
            }
        }
    }
    result.set("deliveries", total);
    result.set("received-again", again);
    result.set("acks", acks);
    result.set("acks-refused", refused);
    result.set("acks-unknown", unknown);
    result.set("excused", excused);
    for (kind, n) in &counts {
        result.set(kind, *n);
    }
    if counts.values().any(|&n| n > 0) {
        result.worsen(Validity::Invalid);
    }
    result
}
