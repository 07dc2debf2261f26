//! **delay**: timer messages and messages sent with a delay level are never
//! delivered before their time, and are delivered.

use super::transaction::percentile;
use super::{not_expected, Invariant};
use crate::clock::Clocks;
use crate::config::CheckConfig;
use crate::history::{Event, Kind, Op};
use crate::index::Index;
use crate::verdict::{CheckResult, Validity};
use std::collections::BTreeMap;

/// Checks every acknowledged message whose send carries `deliver_at_ms`
/// (a timer's delivery time, or the send's start plus its delay level):
///
/// - `early`: its first delivery came before that time, less how far the
///   clock of the broker that held it ran ahead between the send and the
///   delivery (from `expect.clock_moves_ms`; the largest such allowance is
///   `clock-allowance-max-ms`);
/// - `not-delivered`: no consumer ever got it (excused: a disk fault
///   destroyed it).
///
/// Counts: `timed`, `delivered`, `early`, `not-delivered`, and the
/// lateness of first deliveries past their time: `late-p50-ms`,
/// `late-p99-ms`, `late-max-ms`.
pub fn check_delay(history: &[Event], cfg: &CheckConfig) -> CheckResult {
    delay(history, cfg, &Index::build(history, cfg))
}

/// [`check_delay`] over an index built once for every check.
pub(crate) fn delay<'a>(history: &'a [Event], cfg: &CheckConfig, index: &Index<'a>) -> CheckResult {
    if !cfg.expect.delay {
        return not_expected(Invariant::Delay);
    }
    let mut result = CheckResult::new(Invariant::Delay.name());
    let mut first: BTreeMap<&str, &Event> = BTreeMap::new();
    for e in history.iter().filter(|e| e.op == Op::Deliver && e.kind == Kind::Ok) {
        if let Some(id) = e.msg_id.as_deref() {
            first.entry(id).and_modify(|f| if e.t_ms < f.t_ms { *f = e }).or_insert(e);
        }
    }
    let (mut timed, mut delivered, mut early, mut missing) = (0, 0, 0, 0);
    let clocks = Clocks::of(cfg);
    let mut allowance_max = 0;
    let mut lateness = Vec::new();
    for message in index.acknowledged() {
        let Some(at) = message.invoke.deliver_at_ms else { continue };
        if index.excuse(message.msg_id).is_some() {
            continue;
        }
        timed += 1;
        let Some(got) = first.get(message.msg_id) else {
            missing += 1;
            result.push_anomaly(
                "not-delivered",
                format!("{} (due at {at} ms) was acknowledged and never delivered", message.msg_id),
                message.event_ids(),
            );
            continue;
        };
        delivered += 1;
        let broker = got.queue.as_deref().and_then(|q| q.split('/').next()).unwrap_or("");
        // Held from its send to its delivery.
        let allowance = clocks.allowance_ms(broker, message.invoke.t_ms, got.t_ms);
        allowance_max = allowance_max.max(allowance);
        if got.t_ms + allowance < at {
            early += 1;
            result.push_anomaly(
                "early",
                format!(
                    "{} was due at {at} ms and reached {} at {} ms, {} ms early (allowance {allowance} ms on {broker})",
                    message.msg_id,
                    got.process,
                    got.t_ms,
                    at - got.t_ms
                ),
                [message.event_ids(), vec![got.id]].concat(),
            );
        } else {
            lateness.push(got.t_ms.saturating_sub(at));
        }
    }
    lateness.sort_unstable();
    result.set("timed", timed);
    result.set("delivered", delivered);
    result.set("early", early);
    result.set("not-delivered", missing);
    result.set("clock-allowance-max-ms", allowance_max);
    if !lateness.is_empty() {
        result.set("late-p50-ms", percentile(&lateness, 50));
        result.set("late-p99-ms", percentile(&lateness, 99));
        result.set("late-max-ms", *lateness.last().unwrap_or(&0));
    }
    if early + missing > 0 {
        if index.end.is_some() || early > 0 {
            result.worsen(Validity::Invalid);
        } else {
            result.worsen(Validity::Unknown);
            result.note = Some("history has no end event: the final drain may not have run".into());
        }
    }
    result
}
