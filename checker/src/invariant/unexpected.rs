//! **unexpected**: a delivery, dead letter or effect of a message that no
//! send invoked, or of one whose send definitely failed.

use super::Invariant;
use crate::config::CheckConfig;
use crate::history::{Event, Kind, Op};
use crate::index::{Index, SendStatus};
use crate::verdict::{CheckResult, Validity};
use std::collections::BTreeSet;

/// Checks that nothing is consumed that was not sent.
///
/// Deliver and dlq events are matched by msg_id; effect events by msg_id
/// when they carry one, else by business key. Counts (distinct messages or
/// keys): `unexpected` (never sent) and `failed-delivered` (the send
/// completed with `fail`, which promises the message was not stored). Both
/// count against `expect.unexpected_max`.
pub fn check_unexpected(history: &[Event], cfg: &CheckConfig) -> CheckResult {
    unexpected(history, cfg, &Index::build(history, cfg))
}

/// [`check_unexpected`] over an index built once for every check.
pub(crate) fn unexpected<'a>(history: &'a [Event], cfg: &CheckConfig, index: &Index<'a>) -> CheckResult {
    let sent_keys: BTreeSet<&str> = index.messages.values().filter_map(|m| m.key()).collect();

    let mut result = CheckResult::new(Invariant::Unexpected.name());
    let mut never_sent: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut failed: BTreeSet<&str> = BTreeSet::new();
    for event in history
        .iter()
        .filter(|e| matches!(e.op, Op::Deliver | Op::Dlq | Op::Effect))
    {
        if matches!(event.kind, Kind::Invoke | Kind::Fail) {
            continue;
        }
        let op = event.op.as_str();
        match (event.msg_id.as_deref(), event.key.as_deref()) {
            (Some(msg_id), _) => match index.messages.get(msg_id) {
                None => {
                    if never_sent.insert(("msg_id", msg_id)) {
                        let detail = format!("{op} of {msg_id}, which no send invoked");
                        result.push_anomaly("never-sent", detail, vec![event.id]);
                    }
                }
                Some(message) if message.status == SendStatus::Failed => {
                    if failed.insert(msg_id) {
                        let detail = format!("{op} of {msg_id}, whose send failed");
                        let mut ids = message.event_ids();
                        ids.push(event.id);
                        result.push_anomaly("failed-send-delivered", detail, ids);
                    }
                }
                Some(_) => {}
            },
            (None, Some(key)) if event.op == Op::Effect => {
                let first_sight = !sent_keys.contains(key) && never_sent.insert(("key", key));
                if first_sight {
                    let detail = format!("effect of key {key}, which no send carried");
                    result.push_anomaly("never-sent", detail, vec![event.id]);
                }
            }
            _ => {}
        }
    }
    let unexpected = never_sent.len() as u64;
    let failed_delivered = failed.len() as u64;
    result.set("unexpected", unexpected);
    result.set("failed-delivered", failed_delivered);
    if unexpected + failed_delivered > cfg.expect.unexpected_max {
        result.worsen(Validity::Invalid);
    }
    result
}
