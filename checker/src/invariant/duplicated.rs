//! **duplicated**: raw duplicate successful deliveries. RocketMQ promises
//! at-least-once, so these are reported, never a failure.

use super::Invariant;
use crate::config::CheckConfig;
use crate::history::Event;
use crate::index::{is_success, Index};
use crate::verdict::CheckResult;
use std::collections::BTreeMap;

/// Counts messages consumed successfully more than once by one group (by one
/// consumer, for a broadcast group, where each consumer gets its own copy).
///
/// Always valid. Counts: `deliveries` (successful), `duplicated` (messages
/// consumed more than once), `redeliveries` (successful deliveries beyond
/// the first).
pub fn check_duplicated(history: &[Event], cfg: &CheckConfig) -> CheckResult {
    duplicated(history, cfg, &Index::build(history, cfg))
}

/// [`check_duplicated`] over an index built once for every check.
pub(crate) fn duplicated<'a>(history: &'a [Event], _cfg: &CheckConfig, index: &Index<'a>) -> CheckResult {
    let broadcast: Vec<&str> = index
        .groups
        .iter()
        .filter(|g| g.broadcast)
        .map(|g| g.group.as_str())
        .collect();

    // (group, consumer or "" for clustering groups, msg_id) -> deliveries
    let mut seen: BTreeMap<(&str, &str, &str), Vec<&Event>> = BTreeMap::new();
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

    let mut result = CheckResult::new(Invariant::Duplicated.name());
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
    result
}
