//! [`RunReport`], everything known about one run, and [`write_run`], which
//! writes its report directory.

use crate::latency::{check_back_samples, end_to_end_samples, send_samples, timer_lateness_samples, Percentiles};
use checker::history::{Event, Kind, Op, TxState};
use checker::{Anomaly, CheckResult, Verdict};
use serde::{Deserialize, Serialize};

/// One run of one scenario with one seed: the input of every report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Scenario name.
    pub scenario: String,
    /// The seed every random choice came from.
    pub seed: u64,
    /// What the checker decided.
    pub verdict: Verdict,
    /// The recorded history.
    pub history: Vec<Event>,
    /// Every option after drawing unspecified knobs from the seed, in print order.
    pub resolved_options: Vec<(String, String)>,
    /// The command that replays this run.
    pub repro: String,
    /// Trace digest (hex), see [`checker::digest_hex`].
    pub digest: String,
    /// Simulated duration of the run.
    pub sim_duration_ms: u64,
    /// Wall-clock duration of the run (not deterministic).
    pub wall_ms: u64,
}

/// Latency percentiles of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// First successful delivery minus send invoke, per message.
    pub end_to_end: Percentiles,
    /// Send `ok` minus send invoke.
    pub send: Percentiles,
    /// First delivery of a timer or delayed message minus its delivery time.
    #[serde(default)]
    pub timer_lateness: Percentiles,
    /// Half acknowledged to the check-back that resolved it, for
    /// transactions whose producer's end did not reach the broker.
    #[serde(default)]
    pub check_back: Percentiles,
}

impl LatencySummary {
    /// The rows of a latency table: name and percentiles; the timer and
    /// check-back rows only when the run had any.
    pub fn rows(&self) -> Vec<(&'static str, Percentiles)> {
        let mut rows = vec![("end-to-end", self.end_to_end), ("send", self.send)];
        if self.timer_lateness.count > 0 {
            rows.push(("timer lateness", self.timer_lateness));
        }
        if self.check_back.count > 0 {
            rows.push(("check-back resolution", self.check_back));
        }
        rows
    }
}

impl RunReport {
    /// The "sometimes" marks the run reached, by name, or "none".
    pub fn reached_text(&self) -> String {
        let marks = checker::reached_marks(&self.history);
        if marks.is_empty() {
            return "none".to_owned();
        }
        marks.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    /// End of the charts' time axis: the simulated duration or the last
    /// event, whichever is later.
    pub fn end_ms(&self) -> u64 {
        self.history
            .iter()
            .map(|e| e.t_ms)
            .max()
            .unwrap_or(0)
            .max(self.sim_duration_ms)
    }

    /// Latency percentiles computed from the history.
    pub fn latency(&self) -> LatencySummary {
        LatencySummary {
            end_to_end: Percentiles::of_samples(&end_to_end_samples(&self.history)),
            send: Percentiles::of_samples(&send_samples(&self.history)),
            timer_lateness: Percentiles::of_samples(&timer_lateness_samples(&self.history)),
            check_back: Percentiles::of_samples(&check_back_samples(&self.history)),
        }
    }

    /// Nemesis events and the `tail-start` mark, in history order.
    pub fn fault_events(&self) -> impl Iterator<Item = &Event> {
        self.history
            .iter()
            .filter(|e| e.op.is_nemesis() || e.op == Op::TailStart)
    }
}

/// One transactional message as the report lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxRow {
    pub msg_id: String,
    /// What its local transaction decided.
    pub outcome: String,
    /// What its executor answered, and whether the broker took that end.
    pub end: String,
    /// Each check-back answer, in order, with who answered.
    pub checks: Vec<String>,
    /// First delivery, moved aside, or nothing.
    pub fate: String,
}

/// Every transactional message whose half was acknowledged, in msg_id order.
pub(crate) fn transactions(history: &[Event]) -> Vec<TxRow> {
    let mut rows: std::collections::BTreeMap<&str, TxRow> = std::collections::BTreeMap::new();
    let invokes: std::collections::BTreeMap<u64, &Event> =
        history.iter().filter(|e| e.op == Op::Send && e.kind == Kind::Invoke && e.tx.is_some()).map(|e| (e.id, e)).collect();
    for e in history {
        if e.op == Op::Send && e.kind == Kind::Ok {
            let Some(invoke) = e.of.and_then(|of| invokes.get(&of)) else { continue };
            let Some(id) = invoke.msg_id.as_deref() else { continue };
            rows.entry(id).or_insert_with(|| TxRow {
                msg_id: id.to_owned(),
                outcome: invoke.tx.map_or("-", TxState::as_str).to_owned(),
                end: "-".to_owned(),
                checks: Vec::new(),
                fate: "not delivered".to_owned(),
            });
            continue;
        }
        let Some(row) = e.msg_id.as_deref().and_then(|id| rows.get_mut(id)) else { continue };
        match e.op {
            Op::TxEnd => {
                let took = if e.kind == Kind::Ok { "taken" } else { "not taken" };
                row.end = format!("{} ({took})", e.tx.map_or("-", TxState::as_str));
            }
            Op::TxCheck => row.checks.push(format!("{} by {} at {} ms", e.tx.map_or("-", TxState::as_str), e.process, e.t_ms)),
            Op::TxAside => row.fate = "moved aside".to_owned(),
            Op::Deliver if e.kind == Kind::Ok && row.fate == "not delivered" => {
                row.fate = format!("delivered at {} ms to {}", e.t_ms, e.group.as_deref().unwrap_or("?"));
            }
            _ => {}
        }
    }
    rows.into_values().collect()
}

/// How many transactions a report lists; the rest are counted.
pub(crate) const TX_ROWS_MAX: usize = 40;

/// What a row of the fault table calls a nemesis or harness event: the
/// fault's name when it starts (`kill`), `heal kill` when it ends.
pub(crate) fn fault_label(event: &Event) -> String {
    match (event.op, event.fault.as_deref()) {
        (Op::Fault, Some(fault)) => fault.to_owned(),
        (Op::Heal, Some(fault)) => format!("heal {fault}"),
        (op, _) => op.as_str().to_owned(),
    }
}

/// The counts of a check as "a=1 b=2".
pub(crate) fn counts_text(check: &CheckResult) -> String {
    let counts: Vec<String> = check
        .counts
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    counts.join(" ")
}

/// One anomaly as "kind: detail (events 1, 2)".
pub(crate) fn anomaly_text(anomaly: &Anomaly) -> String {
    if anomaly.event_ids.is_empty() {
        return format!("{}: {}", anomaly.kind, anomaly.detail);
    }
    let ids: Vec<String> = anomaly.event_ids.iter().map(u64::to_string).collect();
    format!(
        "{}: {} (events {})",
        anomaly.kind,
        anomaly.detail,
        ids.join(", ")
    )
}

/// How many anomalies the verdict table shows per check; the rest are listed below it.
pub(crate) const TABLE_ANOMALIES_MAX: usize = 2;
