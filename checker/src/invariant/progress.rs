//! **progress**: once the faults have healed, the cluster acknowledges what
//! it is sent. Every other invariant holds for a broker that acknowledges
//! nothing; this one does not.

use super::{not_expected, Invariant};
use crate::config::CheckConfig;
use crate::history::{Event, Op};
use crate::index::{is_success, Index, SendStatus};
use crate::verdict::{CheckResult, Validity};

/// Most unacknowledged sends an anomaly cites.
const CITED_MAX: usize = 5;

/// Checks the share of sends acknowledged after the tail has settled.
///
/// The window opens `expect.progress_grace_ms` after `tail-start` (time for
/// restarted brokers to register and clients to refresh their routes) and
/// runs to the end of the history. Each message id whose first send was
/// invoked in the window counts once as `attempted`, and as `acknowledged`
/// if any send of it ended `ok`; `share-permille` is the ratio. Below
/// `expect.progress_min_permille` the cluster stalled: a `stalled` anomaly
/// citing the first unacknowledged sends, invalid. No send in the window is
/// a stall too, since producers send right up to the end of the tail
/// window. `delivered` counts successful deliveries in the window, outside
/// the final drain, for the record. Without `tail-start` the result is
/// unknown.
pub fn check_progress(history: &[Event], cfg: &CheckConfig) -> CheckResult {
    progress(history, cfg, &Index::build(history, cfg))
}

/// [`check_progress`] over an index built once for every check.
pub(crate) fn progress<'a>(history: &'a [Event], cfg: &CheckConfig, index: &Index<'a>) -> CheckResult {
    let Some(min_permille) = cfg.expect.progress_min_permille else {
        return not_expected(Invariant::Progress);
    };
    let mut result = CheckResult::new(Invariant::Progress.name());
    let Some(tail_start) = index.tail_start else {
        result.worsen(Validity::Unknown);
        result.note = Some("history has no tail-start event".into());
        return result;
    };
    let from_ms = tail_start.t_ms.saturating_add(cfg.expect.progress_grace_ms);
    let in_window: Vec<_> = index.messages.values().filter(|m| m.invoke.t_ms >= from_ms).collect();
    let attempted = in_window.len() as u64;
    let acknowledged = in_window.iter().filter(|m| m.status == SendStatus::Acknowledged).count() as u64;
    let delivered = history
        .iter()
        .filter(|e| e.op == Op::Deliver && e.t_ms >= from_ms && is_success(e) && e.process != super::liveness::DRAIN_PROCESS)
        .count() as u64;
    let share_permille = (acknowledged * 1000).checked_div(attempted).unwrap_or(0);
    result.set("attempted", attempted);
    result.set("acknowledged", acknowledged);
    result.set("share-permille", share_permille);
    result.set("delivered", delivered);
    if share_permille < u64::from(min_permille) {
        let mut unacknowledged: Vec<_> = in_window.iter().filter(|m| m.status != SendStatus::Acknowledged).collect();
        unacknowledged.sort_by_key(|m| m.invoke.id);
        let cited = unacknowledged.iter().take(CITED_MAX).map(|m| m.invoke.id).collect();
        let detail = if attempted == 0 {
            format!("no send was attempted from {from_ms} ms on (tail start + grace)")
        } else {
            format!(
                "{acknowledged} of {attempted} sends invoked from {from_ms} ms on were acknowledged \
                 ({}.{}%), less than the {}.{}% expected",
                share_permille / 10,
                share_permille % 10,
                min_permille / 10,
                min_permille % 10
            )
        };
        result.push_anomaly("stalled", detail, cited);
        result.set("stalled", 1);
        result.worsen(Validity::Invalid);
    }
    result
}
