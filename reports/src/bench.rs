//! Capacity figures of a benchmark run, read from its history, and the
//! table and chart of a sweep of runs over one parameter.

use crate::escape::escape;
use crate::latency::{end_to_end_samples, send_samples, Percentiles};
use crate::svg::{xy_chart, Series};
use checker::history::{ConsumeOutcome, Event, Kind, Op};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// What one run of a benchmark measured. Times are simulated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Send attempts per second the load offered.
    pub offered_per_s: f64,
    /// Sends started within the load window.
    pub attempted: u64,
    /// Of them, acknowledged.
    pub acked: u64,
    /// Of them, failed or with no answer.
    pub failed: u64,
    /// Acknowledged sends per second over the load window.
    pub throughput_per_s: f64,
    /// Send latency of the acknowledged sends, µs (to the ms unless the
    /// run's clock steps finer: see `Event::t_us`).
    pub send_us: Percentiles,
    /// From a send's start to the first successful delivery to a group, µs.
    pub end_to_end_us: Percentiles,
    /// The most messages acknowledged and not yet delivered to a group,
    /// over the groups and the run's seconds.
    pub backlog_max: u64,
    /// Seconds from the load's end until every group had every
    /// acknowledged message delivered; `None` if that never happened.
    pub drain_s: Option<f64>,
}

impl Figures {
    /// An end-to-end latency of these figures as ms ([`ms`]), or "-" when
    /// no group consumed and there is none to show.
    pub fn end_to_end_ms(&self, us: u64) -> String {
        if self.end_to_end_us.count == 0 {
            "-".to_string()
        } else {
            ms(us)
        }
    }

    /// Each figure's median over several runs of one point (seeds): a
    /// typical run's figures, field by field, so one unlucky seed moves
    /// none of them far. With an even number of runs, the mean of the
    /// middle two. The backlog counts as never drained when more than half
    /// the runs never drained it. No runs: no figures (the default).
    pub fn median(runs: &[Figures]) -> Figures {
        if runs.is_empty() {
            return Figures::default();
        }
        let f = |get: &dyn Fn(&Figures) -> f64| median(runs.iter().map(get).collect());
        let u = |get: &dyn Fn(&Figures) -> u64| f(&|r| get(r) as f64).round() as u64;
        let percentiles = |get: &dyn Fn(&Figures) -> &Percentiles| Percentiles {
            count: u(&|r| get(r).count),
            p50: u(&|r| get(r).p50),
            p90: u(&|r| get(r).p90),
            p99: u(&|r| get(r).p99),
            p999: u(&|r| get(r).p999),
            max: u(&|r| get(r).max),
        };
        let drain_s = f(&|r| r.drain_s.unwrap_or(f64::INFINITY));
        Figures {
            offered_per_s: f(&|r| r.offered_per_s),
            attempted: u(&|r| r.attempted),
            acked: u(&|r| r.acked),
            failed: u(&|r| r.failed),
            throughput_per_s: f(&|r| r.throughput_per_s),
            send_us: percentiles(&|r| &r.send_us),
            end_to_end_us: percentiles(&|r| &r.end_to_end_us),
            backlog_max: u(&|r| r.backlog_max),
            drain_s: drain_s.is_finite().then_some(drain_s),
        }
    }
}

/// The median of `xs`, at least one: the mean of the middle two for an
/// even count.
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// The figures of a run whose load ran over `[load_start_ms, load_end_ms)`.
pub fn figures(history: &[Event], load_start_ms: u64, load_end_ms: u64, offered_per_s: f64) -> Figures {
    let window = load_start_ms..load_end_ms;
    let invokes: BTreeMap<u64, &Event> =
        history.iter().filter(|e| e.op == Op::Send && e.kind == Kind::Invoke && window.contains(&e.t_ms)).map(|e| (e.id, e)).collect();
    let mut acked_at: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
    let mut failed = 0;
    for e in history.iter().filter(|e| e.op == Op::Send && e.kind != Kind::Invoke) {
        let Some(invoke) = e.of.and_then(|of| invokes.get(&of)) else { continue };
        match (e.kind, invoke.msg_id.as_deref(), invoke.topic.as_deref()) {
            (Kind::Ok, Some(id), Some(topic)) => {
                acked_at.insert(id, (e.t_ms, topic));
            }
            (Kind::Ok, _, _) => {}
            _ => failed += 1,
        }
    }
    let window_s = (load_end_ms.saturating_sub(load_start_ms) as f64 / 1000.0).max(f64::MIN_POSITIVE);
    let in_window = acked_at.values().filter(|(t, _)| *t < load_end_ms).count();
    let sends: Vec<u64> = send_samples(history)
        .into_iter()
        .filter(|s| window.contains(&s.t_ms.saturating_sub(s.latency_ms)))
        .map(|s| s.latency_us)
        .collect();
    let end_to_end: Vec<u64> = end_to_end_samples(history).into_iter().map(|s| s.latency_us).collect();
    let (backlog_max, drained_ms) = backlog(history, &acked_at, load_end_ms);
    Figures {
        offered_per_s,
        attempted: invokes.len() as u64,
        acked: acked_at.len() as u64,
        failed,
        throughput_per_s: in_window as f64 / window_s,
        send_us: Percentiles::of(sends),
        end_to_end_us: Percentiles::of(end_to_end),
        backlog_max,
        drain_s: drained_ms.map(|t| t.saturating_sub(load_end_ms) as f64 / 1000.0),
    }
}

/// Per group, each second: messages of its topics acknowledged by then
/// less those it had delivered by then. Returns the largest, and the end
/// of the first second at or after `load_end_ms` when every group's is 0.
fn backlog(history: &[Event], acked_at: &BTreeMap<&str, (u64, &str)>, load_end_ms: u64) -> (u64, Option<u64>) {
    let mut topics_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in history.iter().filter(|e| e.op == Op::Subscribe) {
        if let (Some(group), Some(topic)) = (e.group.as_deref(), e.topic.as_deref()) {
            topics_of.entry(group).or_default().insert(topic);
        }
    }
    let end_s = history.iter().map(|e| e.t_ms).max().unwrap_or(0) / 1000 + 1;
    // Per group and second: +1 for an ack of its topics, -1 for a first delivery.
    let mut change: BTreeMap<&str, Vec<i64>> = topics_of.keys().map(|g| (*g, vec![0; end_s as usize + 1])).collect();
    for (t, topic) in acked_at.values() {
        for (group, topics) in &topics_of {
            if topics.contains(topic) {
                change.get_mut(group).expect("every group has a series")[(t / 1000) as usize] += 1;
            }
        }
    }
    let mut delivered: BTreeSet<(&str, &str)> = BTreeSet::new();
    for e in history.iter().filter(|e| e.op == Op::Deliver && e.kind == Kind::Ok && e.result == Some(ConsumeOutcome::Success)) {
        let (Some(group), Some(id)) = (e.group.as_deref(), e.msg_id.as_deref()) else { continue };
        if acked_at.contains_key(id) && delivered.insert((group, id)) {
            if let Some(series) = change.get_mut(group) {
                series[(e.t_ms / 1000) as usize] -= 1;
            }
        }
    }
    let mut max = 0u64;
    let mut level: BTreeMap<&str, i64> = BTreeMap::new();
    let mut drained = None;
    for second in 0..=end_s as usize {
        let mut all_zero = true;
        for (group, series) in &change {
            let now = level.entry(group).or_insert(0);
            *now += series[second];
            max = max.max((*now).max(0) as u64);
            all_zero &= *now <= 0;
        }
        let second_end_ms = (second as u64 + 1) * 1000;
        if drained.is_none() && all_zero && second_end_ms > load_end_ms {
            drained = Some(second_end_ms);
        }
    }
    (max, drained)
}

/// One run of a sweep: the parameter's value and what was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The swept parameter's value, as written on the command line.
    pub value: String,
    /// The figures.
    pub figures: Figures,
}

/// The sweep's table in Markdown: one row per value.
pub fn table(parameter: &str, points: &[Point]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| {} | offered/s | acked/s | failed | send p50 ms | send p99 ms | send p99.9 ms | e2e p50 ms | e2e p99 ms | backlog max | drain s |",
        parameter.replace('|', "\\|")
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for p in points {
        let f = &p.figures;
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
            p.value.replace('|', "\\|"),
            f.offered_per_s,
            f.throughput_per_s,
            f.failed,
            ms(f.send_us.p50),
            ms(f.send_us.p99),
            ms(f.send_us.p999),
            f.end_to_end_ms(f.end_to_end_us.p50),
            f.end_to_end_ms(f.end_to_end_us.p99),
            f.backlog_max,
            f.drain_s.map_or("never".to_string(), |s| format!("{s:.0}")),
        );
    }
    out
}

/// A latency in µs as ms, to three significant digits (0.273, 1.13, 17.4,
/// 976), as hdrhistogram keeps them.
pub fn ms(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else if ms >= 1.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.3}")
    }
}

/// Where each point sits on the x axis: its value when every value is a
/// number, else its position (1, 2, ...), as the table lists them.
fn x_positions(points: &[Point]) -> (Vec<f64>, bool) {
    let numbers: Option<Vec<f64>> = points.iter().map(|p| p.value.parse::<f64>().ok().filter(|x| x.is_finite())).collect();
    match numbers {
        Some(xs) => (xs, true),
        None => ((1..=points.len()).map(|i| i as f64).collect(), false),
    }
}

/// Two charts against the parameter: throughput (offered and acknowledged
/// per second), and send and end-to-end p99.
pub fn charts(parameter: &str, points: &[Point]) -> String {
    let (xs, numeric) = x_positions(points);
    let x_label = if numeric { parameter.to_string() } else { format!("{parameter} (row of the table)") };
    let x_max = xs.iter().copied().fold(0.0, f64::max);
    let series = |label: &str, color: &'static str, y: &dyn Fn(&Figures) -> f64| Series {
        label: label.to_string(),
        color,
        points: xs.iter().zip(points).map(|(&x, p)| (x, y(&p.figures))).collect(),
    };
    let throughput = xy_chart(
        "Throughput",
        &x_label,
        "messages / s",
        x_max,
        &[series("offered", "#999", &|f| f.offered_per_s), series("acknowledged", "#1f77b4", &|f| f.throughput_per_s)],
    );
    let latency = xy_chart(
        "99th percentile latency",
        &x_label,
        "ms",
        x_max,
        &[series("send p99", "#d62728", &|f| f.send_us.p99 as f64 / 1000.0), series("end-to-end p99", "#2ca02c", &|f| f.end_to_end_us.p99 as f64 / 1000.0)],
    );
    format!("{throughput}\n{latency}\n")
}

/// A page with the charts and the table.
pub fn html(title: &str, preamble: &str, parameter: &str, points: &[Point]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><meta charset=\"utf-8\"><title>{t}</title><style>body{{font-family:sans-serif;margin:2em}}.title{{font-weight:bold}}.tick{{font-size:11px}}.axis{{font-size:12px}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}</style><h1>{t}</h1><pre>{p}</pre>",
        t = escape(title),
        p = escape(preamble)
    );
    out.push_str(&charts(parameter, points));
    out.push_str("<table><tr>");
    let rows = table(parameter, points);
    let mut lines = rows.lines();
    if let Some(header) = lines.next() {
        for cell in header.trim_matches('|').split(" | ") {
            let _ = write!(out, "<th>{}</th>", escape(cell.trim()));
        }
    }
    out.push_str("</tr>");
    for line in lines.skip(1) {
        out.push_str("<tr>");
        for cell in line.trim_matches('|').split(" | ") {
            let _ = write!(out, "<td>{}</td>", escape(cell.trim()));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(t_ms: u64, id: u64, kind: Kind, op: Op) -> Event {
        Event { id, ..Event::new(t_ms, "p", kind, op) }
    }

    /// Three sends in a 2 s window, two acknowledged (one late, after the
    /// window), one failed; group g gets both acknowledged ones, the second
    /// only 3 s after the load ended.
    fn history() -> Vec<Event> {
        let send = |t, id, msg: &str| Event { msg_id: Some(msg.into()), topic: Some("t".into()), ..event(t, id, Kind::Invoke, Op::Send) };
        let done = |t, id, of, kind| Event { of: Some(of), ..event(t, id, kind, Op::Send) };
        let deliver = |t, id, msg: &str| Event {
            msg_id: Some(msg.into()),
            group: Some("g".into()),
            result: Some(ConsumeOutcome::Success),
            ..event(t, id, Kind::Ok, Op::Deliver)
        };
        vec![
            Event { group: Some("g".into()), topic: Some("t".into()), ..event(0, 1, Kind::Invoke, Op::Subscribe) },
            send(1000, 2, "a"),
            done(1010, 3, 2, Kind::Ok),
            send(1500, 4, "b"),
            done(2990, 5, 4, Kind::Ok),
            send(2500, 6, "c"),
            done(3200, 7, 6, Kind::Fail),
            send(3500, 8, "late"),
            deliver(1100, 9, "a"),
            deliver(5500, 10, "b"),
        ]
    }

    #[test]
    fn figures_count_the_window_and_follow_the_backlog() {
        let f = figures(&history(), 1000, 3000, 1.5);
        assert_eq!((f.attempted, f.acked, f.failed), (3, 2, 1));
        assert_eq!(f.throughput_per_s, 1.0);
        assert_eq!((f.send_us.count, f.send_us.max), (2, 1_490_000));
        assert_eq!(f.end_to_end_us.max, 4_000_000);
        assert_eq!(f.backlog_max, 1);
        assert_eq!(f.drain_s, Some(3.0), "b reached the group in second 5, which ends at 6 s");
    }

    #[test]
    fn a_sweep_table_and_charts_name_every_point() {
        let f = figures(&history(), 1000, 3000, 1.5);
        let points = vec![Point { value: "1".into(), figures: f.clone() }, Point { value: "2".into(), figures: f }];
        let table = table("topology.broker_groups", &points);
        assert_eq!(table.lines().count(), 4, "{table}");
        assert!(table.contains("| 1 | 2 | 1 | 1 | "), "{table}");
        let charts = charts("topology.broker_groups", &points);
        assert_eq!(charts.matches("<svg").count(), 2);
        assert!(charts.contains("topology.broker_groups"));
        let words = vec![Point { value: "sync".into(), figures: Figures::default() }];
        assert!(self::charts("topology.flush", &words).contains("(row of the table)"));
    }

    /// Each figure is its own median: the middle run's for an odd count,
    /// the mean of the middle two for an even one; a backlog that more
    /// than half the runs never drained never drained.
    #[test]
    fn the_median_of_runs_is_taken_figure_by_figure() {
        let run = |throughput: f64, p99: u64, drain_s: Option<f64>| Figures {
            throughput_per_s: throughput,
            send_us: Percentiles { p99, ..Percentiles::default() },
            drain_s,
            ..Figures::default()
        };
        let odd = Figures::median(&[run(3.0, 900, None), run(1.0, 100, Some(2.0)), run(2.0, 500, Some(4.0))]);
        assert_eq!((odd.throughput_per_s, odd.send_us.p99, odd.drain_s), (2.0, 500, Some(4.0)));
        let even = Figures::median(&[run(3.0, 900, None), run(1.0, 100, Some(2.0)), run(2.0, 500, None), run(4.0, 200, Some(1.0))]);
        assert_eq!((even.throughput_per_s, even.send_us.p99, even.drain_s), (2.5, 350, None));
        let drained = Figures::median(&[run(1.0, 1, Some(2.0)), run(1.0, 1, None), run(1.0, 1, Some(6.0))]);
        assert_eq!(drained.drain_s, Some(6.0));
        assert_eq!(Figures::median(&[]), Figures::default());
    }
}
