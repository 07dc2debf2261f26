//! The self-contained HTML report of one run: inline CSS and SVG, no script,
//! no external resource.

use crate::escape::escape;
use crate::latency::{bucket_count, end_to_end_samples, per_second, throughput, timer_lateness_samples, Percentiles};
use crate::run_report::{anomaly_text, counts_text, RunReport, TABLE_ANOMALIES_MAX};
use crate::svg::{line_chart, timeline, Series};
use checker::Validity;
use std::fmt::Write as _;

/// The page's stylesheet, inlined.
pub(crate) const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f4f4f4}td.num{text-align:right}\
.valid{color:#1a7f37;font-weight:bold}.invalid{color:#cf222e;font-weight:bold}.unknown{color:#9a6700;font-weight:bold}\
.note{color:#666;font-size:.9em}pre{background:#f6f8fa;padding:.6em;overflow-x:auto}\
svg text{font-family:system-ui,sans-serif}svg .tick{font-size:11px}svg .axis{font-size:12px}svg .title{font-size:13px;font-weight:bold}";

/// A validity as a coloured span.
pub(crate) fn validity_span(validity: Validity) -> String {
    format!(r#"<span class="{0}">{0}</span>"#, validity.as_str())
}

/// The p50 and max series of `samples`, per second of `[0, end_ms]`.
fn p50_and_max(samples: &[crate::latency::Sample], end_ms: u64) -> [Series; 2] {
    let buckets = per_second(samples, end_ms);
    let at = |pick: fn(&Percentiles) -> u64| -> Vec<(f64, f64)> {
        buckets.iter().map(|(&s, p)| (s as f64 + 0.5, pick(p) as f64)).collect()
    };
    [
        Series { label: "p50".into(), color: "#1f77b4", points: at(|p| p.p50) },
        Series { label: "max".into(), color: "#d62728", points: at(|p| p.max) },
    ]
}

/// Renders the run as one HTML page: verdict table, fault timeline,
/// throughput and latency charts, percentiles, nemesis events, resolved
/// options and the repro command.
pub fn html(report: &RunReport) -> String {
    let title = format!("mqsim run: {} seed {}", report.scenario, report.seed);
    let verdict = &report.verdict;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        escape(&title)
    );
    let _ = writeln!(out, "<h1>{}</h1>", escape(&title));
    let _ = writeln!(
        out,
        "<p>Verdict: {} ({})<br>digest <code>{}</code> · simulated {} ms · wall {} ms · {} events</p>",
        validity_span(verdict.validity),
        escape(&verdict.summary_counts().to_string()),
        escape(&report.digest),
        report.sim_duration_ms,
        report.wall_ms,
        report.history.len()
    );
    let _ = writeln!(out, "<p>Reached marks: {}</p>", escape(&report.reached_text()));

    out.push_str("<h2>Checks</h2>\n<table>\n<tr><th>check</th><th>validity</th><th>counts</th><th>first anomalies</th></tr>\n");
    for check in &verdict.checks {
        let note = check
            .note
            .as_deref()
            .map(|n| format!(r#" <span class="note">({})</span>"#, escape(n)))
            .unwrap_or_default();
        let firsts: Vec<String> = check
            .anomalies
            .iter()
            .take(TABLE_ANOMALIES_MAX)
            .map(|a| escape(&anomaly_text(a)))
            .collect();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}{note}</td><td>{}</td><td>{}</td></tr>",
            escape(&check.name),
            validity_span(check.validity),
            escape(&counts_text(check)),
            firsts.join("<br>")
        );
    }
    out.push_str("</table>\n");
    if verdict.checks.iter().any(|c| !c.anomalies.is_empty()) {
        out.push_str("<h3>Anomalies</h3>\n<ul>\n");
        for check in &verdict.checks {
            for anomaly in &check.anomalies {
                let _ = writeln!(
                    out,
                    "<li><b>{}</b> {}</li>",
                    escape(&check.name),
                    escape(&anomaly_text(anomaly))
                );
            }
        }
        out.push_str("</ul>\n");
    }

    // Charts span whole seconds so that the per-second buckets fit; the
    // timeline uses the same axis so the three line up.
    let end_ms = bucket_count(report.end_ms()) * 1000;
    let x_max_s = end_ms as f64 / 1000.0;
    out.push_str("<h2>Timeline</h2>\n");
    out.push_str(&timeline(&report.history, end_ms));

    let tp = throughput(&report.history, end_ms);
    let per_s = |counts: &[u64]| -> Vec<(f64, f64)> {
        counts
            .iter()
            .enumerate()
            .map(|(s, &n)| (s as f64 + 0.5, n as f64))
            .collect()
    };
    let series = [
        Series {
            label: "acknowledged sends/s".into(),
            color: "#1f77b4",
            points: per_s(&tp.acked_per_s),
        },
        Series {
            label: "successful deliveries/s".into(),
            color: "#2ca02c",
            points: per_s(&tp.delivered_per_s),
        },
    ];
    out.push_str("\n<h2>Throughput</h2>\n");
    out.push_str(&line_chart(
        "throughput per second",
        "messages / s",
        x_max_s,
        &series,
    ));

    out.push_str("\n<h2>End-to-end latency</h2>\n");
    out.push_str(&line_chart(
        "end-to-end latency per second of delivery",
        "ms",
        x_max_s,
        &p50_and_max(&end_to_end_samples(&report.history), end_ms),
    ));
    let lateness = timer_lateness_samples(&report.history);
    if !lateness.is_empty() {
        out.push_str("\n<h2>Timer lateness</h2>\n");
        out.push_str(&line_chart(
            "timer and delayed message lateness per second of delivery (first delivery past its time)",
            "ms",
            x_max_s,
            &p50_and_max(&lateness, end_ms),
        ));
    }

    let latency = report.latency();
    out.push_str("\n<h2>Latency percentiles (ms)</h2>\n<table>\n<tr><th>latency</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>\n");
    for (name, p) in latency.rows() {
        let cells: Vec<String> = if p.count == 0 {
            vec!["–".to_owned(); 5]
        } else {
            [p.p50, p.p90, p.p99, p.p999, p.max]
                .iter()
                .map(u64::to_string)
                .collect()
        };
        let _ = writeln!(
            out,
            "<tr><td>{name}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            p.count,
            cells.join("</td><td class=\"num\">")
        );
    }
    out.push_str("</table>\n");

    let txs = crate::run_report::transactions(&report.history);
    if !txs.is_empty() {
        let _ = writeln!(
            out,
            "<h2>Transactions</h2>\n<p>{} transactions; the first {} by id.</p>\n<table>\n<tr><th>msg id</th><th>outcome</th><th>producer's end</th><th>check-backs</th><th>fate</th></tr>",
            txs.len(),
            txs.len().min(crate::run_report::TX_ROWS_MAX)
        );
        for row in txs.iter().take(crate::run_report::TX_ROWS_MAX) {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&row.msg_id),
                escape(&row.outcome),
                escape(&row.end),
                escape(&row.checks.join("; ")),
                escape(&row.fate)
            );
        }
        out.push_str("</table>\n");
    }

    out.push_str("<h2>Nemesis events</h2>\n");
    let faults: Vec<_> = report.fault_events().collect();
    if faults.is_empty() {
        out.push_str("<p>None.</p>\n");
    } else {
        out.push_str(
            "<table>\n<tr><th>t (ms)</th><th>op</th><th>target</th><th>detail</th></tr>\n",
        );
        for event in faults {
            let _ = writeln!(
                out,
                "<tr><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                event.t_ms,
                crate::run_report::fault_label(event),
                escape(event.target.as_deref().unwrap_or("")),
                escape(event.detail.as_deref().unwrap_or(""))
            );
        }
        out.push_str("</table>\n");
    }

    out.push_str("<h2>Resolved options</h2>\n");
    if report.resolved_options.is_empty() {
        out.push_str("<p>None.</p>\n");
    } else {
        out.push_str("<table>\n<tr><th>option</th><th>value</th></tr>\n");
        for (name, value) in &report.resolved_options {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td></tr>",
                escape(name),
                escape(value)
            );
        }
        out.push_str("</table>\n");
    }

    let _ = write!(
        out,
        "<h2>Reproduce</h2>\n<pre>{}</pre>\n</body>\n</html>\n",
        escape(&report.repro)
    );
    out
}
