//! **lost**: an acknowledged message that some subscribing group never
//! consumed successfully and did not find in its dead-letter queue.

use super::Invariant;
use crate::config::CheckConfig;
use crate::history::Event;
use crate::index::{dead_letters, is_success, Index};
use crate::verdict::{CheckResult, Validity};
use rustc_hash::FxHashSet;

/// Checks that no acknowledged message is lost (beyond `expect.lost_max`).
///
/// A message is consumed by a group when a deliver event of that group with
/// result success carries its msg_id; for a broadcast group every process
/// that subscribed to the group must consume it. A message in the group's
/// DLQ counts as accounted for, and so does one a disk fault destroyed
/// (`destroyed`: the nemesis flipped a bit of its stored entry), and so
/// does a transactional message that is not to be delivered: rolled back,
/// moved aside after the most check-backs, or orphaned (counted as
/// `transactions-not-due`; the transaction check judges those). Counts: `acknowledged`, `lost` (distinct
/// messages), `dead-lettered` and `unsubscribed` (acknowledged messages no
/// group subscribes to). Without an `end` event the final drain may not have
/// run, so losses beyond the tolerance are `unknown` rather than `invalid`.
pub fn check_lost(history: &[Event], cfg: &CheckConfig) -> CheckResult {
    lost(history, cfg, &Index::build(history, cfg))
}

/// [`check_lost`] over an index built once for every check.
pub(crate) fn lost<'a>(history: &'a [Event], cfg: &CheckConfig, index: &Index<'a>) -> CheckResult {
    let dlq = dead_letters(history);
    // Asked only whether they hold a pair: hashed.
    let consumed: FxHashSet<(&str, &str, &str)> = history
        .iter()
        .filter(|e| is_success(e))
        .filter_map(|e| {
            Some((
                e.group.as_deref()?,
                e.process.as_str(),
                e.msg_id.as_deref()?,
            ))
        })
        .collect();
    let consumed_by_group: FxHashSet<(&str, &str)> =
        consumed.iter().map(|&(g, _, m)| (g, m)).collect();

    let mut result = CheckResult::new(Invariant::Lost.name());
    let (mut acknowledged, mut lost, mut dead_lettered, mut unsubscribed) = (0, 0, 0, 0);
    let (mut destroyed, mut tx_excused) = (0, 0);
    for message in index.acknowledged() {
        acknowledged += 1;
        match index.excuse(message.msg_id) {
            Some("destroyed") => {
                destroyed += 1;
                continue;
            }
            // The transaction check's to judge.
            Some(_) => {
                tx_excused += 1;
                continue;
            }
            None => {}
        }
        let mut subscribed = false;
        let mut is_lost = false;
        for group in index.subscribing_groups(message) {
            subscribed = true;
            let name = group.group.as_str();
            if dlq.contains_key(&(name, message.msg_id)) {
                dead_lettered += 1;
                continue;
            }
            let missing: Vec<String> = match index.required_consumers(group) {
                None if consumed_by_group.contains(&(name, message.msg_id)) => Vec::new(),
                None => vec![format!("group {name}")],
                Some(processes) => processes
                    .into_iter()
                    .filter(|p| !consumed.contains(&(name, p, message.msg_id)))
                    .map(|p| format!("consumer {p} of broadcast group {name}"))
                    .collect(),
            };
            for who in missing {
                is_lost = true;
                result.push_anomaly(
                    "lost",
                    format!(
                        "{} acknowledged at {} ms was never consumed by {who} nor dead-lettered",
                        message.msg_id,
                        message.ack_t_ms().unwrap_or(0)
                    ),
                    message.event_ids(),
                );
            }
        }
        lost += u64::from(is_lost);
        unsubscribed += u64::from(!subscribed);
    }
    result.set("acknowledged", acknowledged);
    result.set("lost", lost);
    result.set("dead-lettered", dead_lettered);
    result.set("unsubscribed", unsubscribed);
    result.set("destroyed", destroyed);
    if tx_excused > 0 {
        result.set("transactions-not-due", tx_excused);
    }

    if lost > cfg.expect.lost_max {
        if index.end.is_some() {
            result.worsen(Validity::Invalid);
        } else {
            result.worsen(Validity::Unknown);
            result.note = Some("history has no end event: the final drain may not have run".into());
        }
    } else if lost > 0 {
        result.note = Some(format!(
            "{lost} lost, within lost_max {}",
            cfg.expect.lost_max
        ));
    }
    result
}
