//! **order**: on FIFO topics, a message is never consumed successfully before
//! every acknowledged predecessor of its sharding key was.

use super::{not_expected, Invariant};
use crate::config::{CheckConfig, GroupSpec};
use crate::history::{Event, Kind, Op};
use super::liveness::DRAIN_PROCESS;
use crate::index::{dead_letters, is_success, successes, Index, Message, SendStatus};
use crate::verdict::{CheckResult, Validity};
use std::collections::BTreeMap;

/// Messages of one sharding key, ordered by (seq, msg_id).
type BySeq<'i, 'a> = BTreeMap<(u64, &'a str), &'i Message<'a>>;

/// Checks per-sharding-key order, when `expect.order`, on `cfg.fifo_topics`.
///
/// Walking successful deliveries in history order, per (group, topic,
/// shard) (and per consumer for a broadcast group): when the message with
/// seq n is consumed, every acknowledged message of that shard with a lower
/// seq that the group subscribes to must have been consumed successfully
/// already. Redeliveries of earlier messages are fine; predecessors found in
/// the group's DLQ or destroyed by a disk fault are excused (an orderly
/// consumer skips a dead letter, and the broker one it cannot read).
/// Sequence numbers must be unique per shard across producers.
///
/// Besides, two consumers of a group must never process messages of one
/// sharding key at overlapping times (`concurrent`, see
/// [`concurrent_processing`]), except in a FIFO POP group whose broker's
/// clock gained enough to end the first holder's lease early. Counts: `checked` deliveries, `out-of-order`
/// deliveries and `concurrent` ones; any of the last two is invalid.
pub fn check_order(history: &[Event], cfg: &CheckConfig) -> CheckResult {
    order(history, cfg, &Index::build(history, cfg))
}

/// [`check_order`] over an index built once for every check.
pub(crate) fn order<'a>(history: &'a [Event], cfg: &CheckConfig, index: &Index<'a>) -> CheckResult {
    if !cfg.expect.order {
        return not_expected(Invariant::Order);
    }
    let dlq = dead_letters(history);
    let first_success = successes(history);

    // (topic, shard) -> acknowledged messages ordered by (seq, msg_id)
    let mut acked: BTreeMap<(&str, &str), BySeq> = BTreeMap::new();
    for message in index.acknowledged() {
        if let (Some(topic), Some(shard), Some(seq)) =
            (message.topic(), message.shard(), message.seq())
        {
            if cfg.is_fifo(topic) {
                acked
                    .entry((topic, shard))
                    .or_default()
                    .insert((seq, message.msg_id), message);
            }
        }
    }

    let any_tag = GroupSpec {
        group: String::new(),
        topic: String::new(),
        tags: "*".into(),
        sql: None,
        broadcast: false,
        pop: false,
        idempotent: true,
        max_reconsume_times: 16,
        replies: false,
    };
    // (group, consumer or "", topic, shard) -> predecessors the group must
    // consume and has not yet
    let mut pending: BTreeMap<(&str, &str, &str, &str), BySeq> = BTreeMap::new();
    let mut result = CheckResult::new(Invariant::Order.name());
    let (mut checked, mut out_of_order) = (0, 0);
    for event in history.iter().filter(|e| is_success(e)) {
        let (Some(group), Some(msg_id)) = (event.group.as_deref(), event.msg_id.as_deref()) else {
            continue;
        };
        let Some(message) = index.messages.get(msg_id) else {
            continue;
        };
        let (Some(topic), Some(shard), Some(seq)) =
            (message.topic(), message.shard(), message.seq())
        else {
            continue;
        };
        if !cfg.is_fifo(topic) || message.status == SendStatus::Failed {
            continue;
        }
        checked += 1;
        let spec = index
            .groups
            .iter()
            .find(|g| g.group == group)
            .unwrap_or(&any_tag);
        let consumer = if spec.broadcast {
            event.process.as_str()
        } else {
            ""
        };
        // Only what this group must consume waits: a predecessor it does not
        // subscribe to, or found in its DLQ, never leaves the map, so keeping
        // it there would make every later delivery of the shard walk past
        // it (quadratic in the shard's length).
        let waiting = pending
            .entry((group, consumer, topic, shard))
            .or_insert_with(|| {
                acked
                    .get(&(topic, shard))
                    .into_iter()
                    .flatten()
                    .filter(|(_, m)| {
                        tag_subscribed(spec, m) && !dlq.contains_key(&(group, m.msg_id)) && !index.destroyed.contains(m.msg_id)
                    })
                    .map(|(&order, &m)| (order, m))
                    .collect()
            });
        let skipped = waiting.range(..(seq, "")).next().map(|(_, m)| *m);
        if let Some(before) = skipped {
            out_of_order += 1;
            let mut ids = vec![event.id, before.invoke.id];
            if let Some(later) = first_success.get(&(group, before.msg_id)) {
                ids.push(later[0].id);
            }
            let detail = format!(
                "group {group} consumed {msg_id} (shard {shard} seq {seq}) before {} (seq {})",
                before.msg_id,
                before.seq().unwrap_or(0)
            );
            result.push_anomaly("out-of-order", detail, ids);
        }
        waiting.remove(&(seq, msg_id));
    }
    let concurrent = concurrent_processing(history, cfg, index, &mut result);
    result.set("checked", checked);
    result.set("out-of-order", out_of_order);
    result.set("concurrent", concurrent);
    if out_of_order + concurrent > 0 {
        result.worsen(Validity::Invalid);
    }
    if cfg.fifo_topics.is_empty() {
        result.note = Some("no FIFO topic configured".into());
    }
    result
}

/// Finds two consumers of one group processing messages of one sharding
/// key at overlapping times (from each delivery's `start_ms` to its `t_ms`),
/// whatever the outcome: what queue locks exist to prevent. Broadcast
/// groups and the drain are left out. Returns how many deliveries began
/// while another consumer's was still running.
fn concurrent_processing<'a>(history: &'a [Event], cfg: &CheckConfig, index: &Index<'a>, result: &mut CheckResult) -> u64 {
    let broadcast: Vec<&str> = index.groups.iter().filter(|g| g.broadcast).map(|g| g.group.as_str()).collect();
    // (group, topic, shard) -> deliveries
    let mut by_shard: BTreeMap<(&str, &str, &str), Vec<&Event>> = BTreeMap::new();
    for e in history.iter().filter(|e| e.op == Op::Deliver && e.kind == Kind::Ok && e.process != DRAIN_PROCESS) {
        let (Some(group), Some(topic), Some(shard)) = (e.group.as_deref(), e.topic.as_deref(), e.shard.as_deref()) else { continue };
        if cfg.is_fifo(topic) && !broadcast.contains(&group) {
            by_shard.entry((group, topic, shard)).or_default().push(e);
        }
    }
    let pop: Vec<&str> = index.groups.iter().filter(|g| g.pop).map(|g| g.group.as_str()).collect();
    let clocks = crate::clock::Clocks::of(cfg);
    // A FIFO POP group's queue is one holder's while its lease lasts, on
    // its broker's clock: a clock that gained ends a lease early in true
    // time, and the next holder may begin while the first still works.
    let lease_cut_short = |r: &Event, e: &Event| {
        let (Some(visible), Some(queue)) = (r.visible_ms, e.queue.as_deref()) else { return false };
        let broker = queue.split('/').next().unwrap_or("");
        let gained = clocks.allowance_ms(broker, r.started_ms().saturating_sub(30_000), e.t_ms);
        e.started_ms().saturating_add(gained) >= visible && gained > 0
    };
    let mut concurrent = 0;
    for ((group, _, shard), mut deliveries) in by_shard {
        deliveries.sort_by_key(|e| (e.started_ms(), e.t_ms, e.id));
        // The running delivery that ends last so far.
        let mut running: Option<&Event> = None;
        for e in deliveries {
            if let Some(r) = running {
                if e.started_ms() < r.t_ms && e.process != r.process && !(pop.contains(&group) && lease_cut_short(r, e)) {
                    concurrent += 1;
                    result.push_anomaly(
                        "concurrent",
                        format!(
                            "group {group}: {} processed {} (shard {shard}) from {} to {} ms while {} processed {} from {} to {} ms",
                            e.process,
                            e.msg_id.as_deref().unwrap_or("?"),
                            e.started_ms(),
                            e.t_ms,
                            r.process,
                            r.msg_id.as_deref().unwrap_or("?"),
                            r.started_ms(),
                            r.t_ms
                        ),
                        vec![r.id, e.id],
                    );
                }
            }
            if running.is_none_or(|r| e.t_ms > r.t_ms) {
                running = Some(e);
            }
        }
    }
    concurrent
}

/// True when `spec`'s tag expression selects `message` (topic already matched).
fn tag_subscribed(spec: &GroupSpec, message: &Message) -> bool {
    spec.selects(message.tag(), message.props())
}
