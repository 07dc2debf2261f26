//! **recovered**: sends whose outcome the client did not learn (timeout,
//! crash) but which were consumed or dead-lettered anyway.

use super::Invariant;
use crate::config::CheckConfig;
use crate::history::Event;
use crate::index::{dead_letters, is_success, Index, SendStatus};
use crate::verdict::CheckResult;
use rustc_hash::FxHashSet;

/// Reports what became of sends of unknown outcome. Always valid.
///
/// Counts: `unknown` (sends completed with `info` or never completed),
/// `recovered` (of those, consumed successfully or dead-lettered by some
/// group), `indeterminate` (never seen again), `failed` (sends that failed).
pub fn check_recovered(history: &[Event], cfg: &CheckConfig) -> CheckResult {
    recovered(history, cfg, &Index::build(history, cfg))
}

/// [`check_recovered`] over an index built once for every check.
pub(crate) fn recovered<'a>(history: &'a [Event], _cfg: &CheckConfig, index: &Index<'a>) -> CheckResult {
    let seen: FxHashSet<&str> = history
        .iter()
        .filter(|e| is_success(e) && e.group.is_some())
        .filter_map(|e| e.msg_id.as_deref())
        .chain(dead_letters(history).keys().map(|&(_, msg_id)| msg_id))
        .collect();

    let mut result = CheckResult::new(Invariant::Recovered.name());
    let (mut unknown, mut recovered, mut failed) = (0, 0, 0);
    for message in index.messages.values() {
        match message.status {
            SendStatus::Failed => failed += 1,
            SendStatus::Acknowledged => {}
            SendStatus::Unknown => {
                unknown += 1;
                if seen.contains(message.msg_id) {
                    recovered += 1;
                    let detail = format!(
                        "{} had an unknown send outcome but was consumed",
                        message.msg_id
                    );
                    result.push_anomaly("recovered", detail, message.event_ids());
                }
            }
        }
    }
    result.set("unknown", unknown);
    result.set("recovered", recovered);
    result.set("indeterminate", unknown - recovered);
    result.set("failed", failed);
    result
}
