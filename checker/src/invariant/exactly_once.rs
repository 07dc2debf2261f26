//! **exactly-once**: the idempotent consumer applies the business effect of
//! each acknowledged key exactly once per group. Non-idempotent control
//! groups are measured instead: their double effects show what the
//! idempotent groups' deduplication prevented.

use super::{not_expected, sorted, Invariant};
use crate::config::CheckConfig;
use crate::history::{Event, Kind, Op};
use crate::index::{dead_letters, Index, SendStatus};
use crate::verdict::{CheckResult, Validity};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeSet;

/// Checks effects per (group, business key), when `expect.exactly_once`.
///
/// Effect events of any kind but `invoke` and `fail` count as applied. For
/// every acknowledged message with a key and every clustering group that
/// subscribes to it, the (group, key) must have exactly one effect: more is
/// `double-effect`, none is `missing-effect` (unless every such message was
/// dead-lettered for the group, destroyed by a disk fault, or a transaction
/// rolled back, moved aside or orphaned). An effect of a key that no acknowledged or
/// unknown send carried is `phantom-effect`; more than one effect of a key
/// whose send was unknown is also `double-effect`. Broadcast groups are left
/// out: each consumer applies its own effect. Any anomaly is invalid.
///
/// A group configured with `idempotent = false` is a control group: it
/// applies every delivery, so more than one effect of a key is expected
/// there. Such keys count as `control-double-effect` and their effects
/// beyond the first as `control-extra-effects`, neither an anomaly nor part
/// of `double-effect`; missing and phantom effects still fail a control
/// group. A group the config does not know is held to idempotence.
/// Counts: `required` (group, key) pairs, `effects`, the three kinds and the
/// two control counts.
pub fn check_exactly_once(history: &[Event], cfg: &CheckConfig) -> CheckResult {
    exactly_once(history, cfg, &Index::build(history, cfg))
}

/// [`check_exactly_once`] over an index built once for every check.
pub(crate) fn exactly_once<'a>(history: &'a [Event], cfg: &CheckConfig, index: &Index<'a>) -> CheckResult {
    if !cfg.expect.exactly_once {
        return not_expected(Invariant::ExactlyOnce);
    }
    let dlq = dead_letters(history);

    // Hashed while counting; the anomalies below go out in key order.
    let mut effects: FxHashMap<(&str, &str), Vec<u64>> = FxHashMap::default();
    for event in history.iter().filter(|e| e.op == Op::Effect) {
        if matches!(event.kind, Kind::Invoke | Kind::Fail) {
            continue;
        }
        if let (Some(group), Some(key)) = (event.group.as_deref(), event.key.as_deref()) {
            effects.entry((group, key)).or_default().push(event.id);
        }
    }

    // (group, key) -> whether every acknowledged message of it was dead-lettered
    let mut required: FxHashMap<(&str, &str), bool> = FxHashMap::default();
    let mut live_keys: FxHashSet<&str> = FxHashSet::default();
    for message in index.messages.values() {
        let Some(key) = message.key() else { continue };
        if message.status == SendStatus::Failed {
            continue;
        }
        live_keys.insert(key);
        if message.status != SendStatus::Acknowledged {
            continue;
        }
        for group in index.subscribing_groups(message).filter(|g| !g.broadcast) {
            let group = group.group.as_str();
            let dead = dlq.contains_key(&(group, message.msg_id)) || index.excuse(message.msg_id).is_some();
            *required.entry((group, key)).or_insert(true) &= dead;
        }
    }

    let control: BTreeSet<&str> = index
        .groups
        .iter()
        .filter(|g| !g.idempotent)
        .map(|g| g.group.as_str())
        .collect();

    let mut result = CheckResult::new(Invariant::ExactlyOnce.name());
    let (mut double, mut missing, mut phantom) = (0, 0, 0);
    let (mut control_double, mut control_extra) = (0, 0);
    for (&(group, key), &all_dead) in sorted(&required) {
        if !effects.contains_key(&(group, key)) && !all_dead {
            missing += 1;
            let detail = format!("acknowledged key {key} never took effect in group {group}");
            result.push_anomaly("missing-effect", detail, Vec::new());
        }
    }
    for (&(group, key), ids) in sorted(&effects) {
        if !live_keys.contains(key) {
            phantom += 1;
            let detail =
                format!("key {key} took effect in group {group} but no send of it succeeded");
            result.push_anomaly("phantom-effect", detail, ids.clone());
        } else if ids.len() > 1 && control.contains(group) {
            control_double += 1;
            control_extra += ids.len() as u64 - 1;
        } else if ids.len() > 1 {
            double += 1;
            let detail = format!("key {key} took effect {} times in group {group}", ids.len());
            result.push_anomaly("double-effect", detail, ids.clone());
        }
    }
    result.set("required", required.len() as u64);
    result.set(
        "effects",
        effects.values().map(|ids| ids.len() as u64).sum(),
    );
    result.set("double-effect", double);
    result.set("missing-effect", missing);
    result.set("phantom-effect", phantom);
    result.set("control-double-effect", control_double);
    result.set("control-extra-effects", control_extra);
    if double + missing + phantom > 0 {
        result.worsen(Validity::Invalid);
    }
    result
}
