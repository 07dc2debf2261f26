//! Inline SVG charts: the fault timeline and simple line charts. Every text
//! goes through [`escape`]; coordinates are computed, never taken from input.

use crate::escape::escape;
use checker::history::{Event, Op};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Chart width in px, wide enough for a laptop screen.
const WIDTH: f64 = 960.0;
/// Left margin for lane names and y-axis labels.
const LEFT: f64 = 120.0;
/// Right margin.
const RIGHT: f64 = 20.0;
/// Height of one timeline lane.
const LANE: f64 = 24.0;
/// Series with at most this many points get a dot on each.
const DOTS_MAX: usize = 120;

/// One polyline of a line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Stroke colour (a CSS colour written by this crate, not by input).
    pub color: &'static str,
    /// (x, y) points, x in seconds of simulated time.
    pub points: Vec<(f64, f64)>,
}

/// A "nice" step (1, 2 or 5 times a power of ten) giving about `ticks` ticks up to `max`.
fn nice_step(max: f64, ticks: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let raw = max / ticks;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * magnitude);
    step.max(f64::MIN_POSITIVE)
}

/// Formats an axis number without useless decimals.
fn label(value: f64) -> String {
    if (value - value.round()).abs() < 1e-9 {
        format!("{}", value.round() as i64)
    } else {
        format!("{value:.1}")
    }
}

/// Writes x-axis ticks along `y_axis` from `top` to `y_axis`, and the
/// axis' name under them.
fn x_axis(out: &mut String, x_max_s: f64, top: f64, y_axis: f64, x_label: &str) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let step = nice_step(x_max_s, 10.0);
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{y_axis}" x2="{:.1}" y2="{y_axis}" stroke="#333"/>"##,
        WIDTH - RIGHT
    );
    let mut tick = 0.0;
    while tick <= x_max_s + 1e-9 {
        let x = LEFT + tick / x_max_s * plot_w;
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{y_axis}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"##,
            y_axis + 14.0,
            label(tick)
        );
        tick += step;
    }
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="axis">{}</text>"#,
        LEFT + plot_w / 2.0,
        y_axis + 30.0,
        escape(x_label)
    );
}

/// A line chart of `series` over `[0, x_max_s]` seconds, y from 0 up.
pub fn line_chart(title: &str, y_label: &str, x_max_s: f64, series: &[Series]) -> String {
    xy_chart(title, "simulated time (s)", y_label, x_max_s, series)
}

/// A line chart of `series` over `[0, x_max]` of `x_label`, y from 0 up.
pub fn xy_chart(title: &str, x_label: &str, y_label: &str, x_max_s: f64, series: &[Series]) -> String {
    let height = 280.0;
    let (top, bottom) = (30.0, height - 40.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let x_max_s = x_max_s.max(1.0);
    let y_max_data = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let y_step = nice_step(y_max_data, 5.0);
    let y_max = (y_max_data / y_step).ceil().max(1.0) * y_step;
    let x_of = |x: f64| LEFT + x / x_max_s * plot_w;
    let y_of = |y: f64| bottom - y / y_max * (bottom - top);

    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img"><title>{}</title>"#,
        escape(title)
    );
    let _ = write!(
        out,
        r#"<text x="{LEFT}" y="18" class="title">{}</text>"#,
        escape(title)
    );
    let mut tick = 0.0;
    while tick <= y_max + 1e-9 {
        let y = y_of(tick);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            label(tick)
        );
        tick += y_step;
    }
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{bottom}" stroke="#333"/><text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle" class="axis">{}</text>"##,
        (top + bottom) / 2.0,
        escape(y_label)
    );
    x_axis(&mut out, x_max_s, top, bottom, x_label);
    for s in series {
        let points: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", x_of(x), y_of(y)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
            s.color,
            points.join(" ")
        );
        // Dots make sparse series (a single bucket, gaps) visible.
        if s.points.len() <= DOTS_MAX {
            for &(x, y) in &s.points {
                let _ = write!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"/>"#,
                    x_of(x),
                    y_of(y),
                    s.color
                );
            }
        }
    }
    for (i, s) in series.iter().enumerate() {
        // Legend at the top right, clear of the title.
        let x = WIDTH - RIGHT - 190.0 * (series.len() - i) as f64;
        let _ = write!(
            out,
            r#"<line x1="{x}" y1="14" x2="{:.1}" y2="14" stroke="{}" stroke-width="3"/><text x="{:.1}" y="18" class="tick">{}</text>"#,
            x + 18.0,
            s.color,
            x + 22.0,
            escape(&s.label)
        );
    }
    if series.iter().all(|s| s.points.is_empty()) {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="axis">no data</text>"#,
            LEFT + plot_w / 2.0,
            (top + bottom) / 2.0
        );
    }
    out.push_str("</svg>");
    out
}

/// A fault shown on the timeline, named as the history names it (`kill`,
/// `partition`; `fault` for older histories that did not name faults).
#[derive(Debug, Clone, PartialEq)]
enum Mark {
    /// A fault that lasted from its start to the heal that ended it.
    Band {
        fault: String,
        start_ms: u64,
        end_ms: u64,
    },
    /// A fault with no heal (a flipped byte, a clock jump that stays) or a
    /// heal with no fault before it.
    Tick {
        fault: String,
        t_ms: u64,
        detail: Option<String>,
    },
}

/// Fill or stroke colour of a fault.
fn color(fault: &str) -> &'static str {
    match fault {
        "kill" => "#d62728",
        "power-loss" => "#8c1d1d",
        "pause" => "#ff7f0e",
        "consumer-crash" => "#e377c2",
        "partition" => "#9467bd",
        "clock-skew" | "clock-jump" => "#17becf",
        "disk-fault" => "#8c564b",
        "latency" | "loss" => "#7f7f7f",
        "lock-handover" => "#1f77b4",
        "check-commit" => "#2ca02c",
        "check-rollback" => "#d62728",
        "check-unknown" => "#bcbd22",
        "role-master" => "#2ca02c",
        "role-slave" => "#7f7f7f",
        "role-cut" => "#d62728",
        "role-sync-state-set" => "#1f77b4",
        _ => "#555555",
    }
}

/// Lane name of an untargeted nemesis event.
const CLUSTER_LANE: &str = "cluster";

/// Groups the nemesis events into lanes (one per target) of bands and
/// ticks: a heal closes the earliest open fault of its name on its lane.
fn marks(history: &[Event], end_ms: u64) -> BTreeMap<String, Vec<Mark>> {
    let mut lanes: BTreeMap<String, Vec<Mark>> = BTreeMap::new();
    // (lane, fault) -> starts of the faults not healed yet, with their detail
    type Starts = Vec<(u64, Option<String>)>;
    let mut open: BTreeMap<(String, String), Starts> = BTreeMap::new();
    for event in history.iter().filter(|e| e.op.is_nemesis()) {
        let lane = event.target.clone().unwrap_or_else(|| CLUSTER_LANE.to_owned());
        let fault = event.fault.clone().unwrap_or_else(|| "fault".to_owned());
        let key = (lane.clone(), fault.clone());
        let marks = lanes.entry(lane).or_default();
        match event.op {
            Op::Fault => open.entry(key).or_default().push((event.t_ms, event.detail.clone())),
            _ => match open.get_mut(&key).filter(|starts| !starts.is_empty()) {
                Some(starts) => {
                    let (start_ms, _) = starts.remove(0);
                    marks.push(Mark::Band { fault, start_ms, end_ms: event.t_ms });
                }
                None => marks.push(Mark::Tick { fault, t_ms: event.t_ms, detail: event.detail.clone() }),
            },
        }
    }
    for ((lane, fault), starts) in open {
        for (t_ms, detail) in starts {
            let t_ms = t_ms.min(end_ms);
            lanes.entry(lane.clone()).or_default().push(Mark::Tick { fault: fault.clone(), t_ms, detail });
        }
    }
    let handovers = lock_handovers(history);
    if !handovers.is_empty() {
        lanes.insert(LOCK_LANE.to_owned(), handovers);
    }
    let checks = check_backs(history);
    if !checks.is_empty() {
        lanes.insert(CHECK_LANE.to_owned(), checks);
    }
    let roles = roles(history);
    if !roles.is_empty() {
        lanes.insert(ROLE_LANE.to_owned(), roles);
    }
    lanes
}

/// Lane of the replicas' role changes (controller mode).
const ROLE_LANE: &str = "failovers";

/// A tick per role change (`role` events): a take-over in a new term, a
/// replica following a master, a log cut back, a sync-state set confirmed.
fn roles(history: &[Event]) -> Vec<Mark> {
    history
        .iter()
        .filter(|e| e.op == Op::Role)
        .map(|e| {
            let what = e.detail.as_deref().unwrap_or("");
            let kind = what.split(' ').next().unwrap_or("role");
            Mark::Tick { fault: format!("role-{kind}"), t_ms: e.t_ms, detail: Some(format!("{}: {what}", e.process)) }
        })
        .collect()
}

/// Lane of the transaction check-backs.
const CHECK_LANE: &str = "check-backs";

/// A tick per check-back a producer answered (`tx-check` events), coloured
/// by its answer.
fn check_backs(history: &[Event]) -> Vec<Mark> {
    history
        .iter()
        .filter(|e| e.op == Op::TxCheck)
        .map(|e| {
            let answer = e.tx.map_or("unknown", |t| t.as_str());
            Mark::Tick {
                fault: format!("check-{answer}"),
                t_ms: e.t_ms,
                detail: Some(format!("{} answered {answer} by {}", e.msg_id.as_deref().unwrap_or("?"), e.process)),
            }
        })
        .collect()
}

/// Lane of the orderly consumers' lock handovers.
const LOCK_LANE: &str = "queue locks";

/// A tick each time an orderly queue is taken by another consumer than the
/// one that held it last (`queue-lock` events).
fn lock_handovers(history: &[Event]) -> Vec<Mark> {
    let mut holder: BTreeMap<&str, &str> = BTreeMap::new();
    let mut ticks = Vec::new();
    for e in history.iter().filter(|e| e.op == Op::QueueLock && e.detail.as_deref() == Some("taken")) {
        let Some(queue) = e.queue.as_deref() else { continue };
        if let Some(before) = holder.insert(queue, e.process.as_str()).filter(|before| *before != e.process) {
            ticks.push(Mark::Tick {
                fault: "lock-handover".to_owned(),
                t_ms: e.t_ms,
                detail: Some(format!("{queue}: {before} to {}", e.process)),
            });
        }
    }
    ticks
}

/// The fault timeline over `[0, end_ms]`: one lane per nemesis target with
/// bands for lasting faults and ticks for instant ones, and a dashed line at
/// `tail-start`.
pub fn timeline(history: &[Event], end_ms: u64) -> String {
    let end_ms = end_ms
        .max(history.iter().map(|e| e.t_ms).max().unwrap_or(0))
        .max(1);
    let lanes = marks(history, end_ms);
    let top = 10.0;
    let lane_count = lanes.len().max(1) as f64;
    let bottom = top + lane_count * LANE;
    let height = bottom + 40.0;
    let plot_w = WIDTH - LEFT - RIGHT;
    let x_max_s = end_ms as f64 / 1000.0;
    let x_of = |t_ms: u64| LEFT + t_ms as f64 / end_ms as f64 * plot_w;
    let secs = |t_ms: u64| t_ms as f64 / 1000.0;

    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img"><title>fault timeline</title>"#
    );
    x_axis(&mut out, x_max_s, top, bottom, "simulated time (s)");
    if lanes.is_empty() {
        let _ = write!(
            out,
            r#"<text x="{LEFT}" y="{:.1}" class="tick">no faults injected</text>"#,
            top + 16.0
        );
    }
    for (i, (lane, lane_marks)) in lanes.iter().enumerate() {
        let y = top + i as f64 * LANE;
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text>"#,
            LEFT - 6.0,
            y + 16.0,
            escape(lane)
        );
        // Bands first so that ticks stay visible on top of them.
        let (bands, ticks): (Vec<&Mark>, Vec<&Mark>) = lane_marks
            .iter()
            .partition(|m| matches!(m, Mark::Band { .. }));
        for mark in bands.into_iter().chain(ticks) {
            match mark {
                Mark::Band { fault, start_ms, end_ms } => {
                    let (x1, x2) = (x_of(*start_ms), x_of(*end_ms));
                    let _ = write!(
                        out,
                        r#"<rect x="{x1:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}" fill-opacity="0.45"><title>{} {}: {:.3} s to {:.3} s</title></rect>"#,
                        y + 3.0,
                        (x2 - x1).max(1.5),
                        LANE - 6.0,
                        color(fault),
                        escape(fault),
                        escape(lane),
                        secs(*start_ms),
                        secs(*end_ms)
                    );
                }
                Mark::Tick { fault, t_ms, detail } => {
                    let x = x_of(*t_ms);
                    let detail = detail
                        .as_deref()
                        .map(|d| format!(" ({})", escape(d)))
                        .unwrap_or_default();
                    let _ = write!(
                        out,
                        r#"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="{}" stroke-width="2"><title>{} {} at {:.3} s{detail}</title></line>"#,
                        y + 2.0,
                        y + LANE - 2.0,
                        color(fault),
                        escape(fault),
                        escape(lane),
                        secs(*t_ms)
                    );
                }
            }
        }
    }
    if let Some(tail) = history.iter().find(|e| e.op == Op::TailStart) {
        let x = x_of(tail.t_ms);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom:.1}" stroke="#2ca02c" stroke-width="2" stroke-dasharray="6 3"><title>tail-start at {:.3} s</title></line><text x="{:.1}" y="{:.1}" class="tick" fill="#2ca02c">tail-start</text>"##,
            secs(tail.t_ms),
            x + 3.0,
            top + 10.0
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::history::HistoryBuilder;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(100.0, 10.0), 10.0);
        assert_eq!(nice_step(120.0, 10.0), 20.0);
        assert_eq!(nice_step(3.0, 5.0), 1.0);
        assert_eq!(nice_step(0.0, 5.0), 1.0);
    }

    #[test]
    fn bands_pair_faults_with_their_heal() {
        let mut h = HistoryBuilder::new();
        h.nemesis(1000, Op::Fault, "kill", Some("broker-0"));
        h.nemesis(2000, Op::Fault, "partition", Some("broker-1"));
        h.nemesis(2500, Op::Fault, "clock-jump", Some("broker-1"));
        h.nemesis(2600, Op::Fault, "clock-skew", Some("broker-1"));
        h.nemesis(3000, Op::Heal, "kill", Some("broker-0"));
        h.nemesis(3500, Op::Heal, "clock-skew", Some("broker-1"));
        h.nemesis(4000, Op::Heal, "partition", Some("broker-1"));
        h.nemesis(5000, Op::Fault, "pause", Some("broker-2"));
        let lanes = marks(h.events(), 9000);
        let band = |fault: &str, start_ms, end_ms| Mark::Band { fault: fault.into(), start_ms, end_ms };
        let tick = |fault: &str, t_ms| Mark::Tick { fault: fault.into(), t_ms, detail: None };
        assert_eq!(lanes["broker-0"], vec![band("kill", 1000, 3000)]);
        // A fault never healed (the jump stays) is a tick at its start.
        assert_eq!(
            lanes["broker-1"],
            vec![band("clock-skew", 2600, 3500), band("partition", 2000, 4000), tick("clock-jump", 2500)]
        );
        assert_eq!(lanes["broker-2"], vec![tick("pause", 5000)]);
        assert!(!lanes.contains_key(CLUSTER_LANE));
    }

    #[test]
    fn a_queue_taken_by_another_consumer_is_a_lock_handover() {
        let mut h = HistoryBuilder::new();
        let lock = |t: u64, process: &str, queue: &str, detail: &str| {
            Event::new(t, process, checker::history::Kind::Info, Op::QueueLock).queue(queue).detail(detail)
        };
        h.push(lock(1000, "consumer-a", "broker-0/ledger/0", "taken"));
        h.push(lock(1500, "consumer-b", "broker-0/ledger/1", "taken"));
        h.push(lock(2000, "consumer-a", "broker-0/ledger/0", "released"));
        h.push(lock(2500, "consumer-b", "broker-0/ledger/0", "taken"));
        // The same consumer taking its queue back is no handover.
        h.push(lock(3000, "consumer-b", "broker-0/ledger/1", "taken"));
        let lanes = marks(h.events(), 9000);
        let detail = Some("broker-0/ledger/0: consumer-a to consumer-b".to_string());
        assert_eq!(lanes[LOCK_LANE], vec![Mark::Tick { fault: "lock-handover".into(), t_ms: 2500, detail }]);
        assert!(timeline(h.events(), 9000).contains("lock-handover queue locks at 2.500 s (broker-0/ledger/0: consumer-a to consumer-b)"));
    }

    #[test]
    fn older_histories_pair_their_unnamed_faults() {
        let text = r#"{"t_ms":1000,"id":1,"process":"nemesis","type":"info","op":"kill","target":"broker-0"}
{"t_ms":3000,"id":2,"process":"nemesis","type":"info","op":"restart","target":"broker-0"}
"#;
        let history = checker::history::parse_jsonl(text).unwrap();
        let lanes = marks(&history, 9000);
        assert_eq!(lanes["broker-0"], vec![Mark::Band { fault: "fault".into(), start_ms: 1000, end_ms: 3000 }]);
    }
}
