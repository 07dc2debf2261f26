//! The Markdown report of one run.

use crate::escape::markdown_cell;
use crate::latency::Percentiles;
use crate::run_report::{anomaly_text, counts_text, RunReport, TABLE_ANOMALIES_MAX};
use std::fmt::Write as _;

/// Renders the run as Markdown: verdict table, anomalies, latency
/// percentiles, nemesis events, resolved options and the repro command.
pub fn markdown(report: &RunReport) -> String {
    let mut out = String::new();
    let verdict = &report.verdict;
    let _ = writeln!(
        out,
        "# mqsim run: {} seed {}\n",
        markdown_cell(&report.scenario),
        report.seed
    );
    let _ = writeln!(
        out,
        "**Verdict: {}** ({})\n",
        verdict.validity.as_str().to_uppercase(),
        verdict.summary_counts()
    );
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| digest | `{}` |", markdown_cell(&report.digest));
    let _ = writeln!(out, "| simulated | {} ms |", report.sim_duration_ms);
    let _ = writeln!(out, "| wall | {} ms |", report.wall_ms);
    let _ = writeln!(out, "| events | {} |", report.history.len());
    let _ = writeln!(out, "| reached | {} |\n", markdown_cell(&report.reached_text()));

    out.push_str(
        "## Checks\n\n| check | validity | counts | first anomalies |\n|---|---|---|---|\n",
    );
    for check in &verdict.checks {
        let mut validity = check.validity.as_str().to_owned();
        if let Some(note) = &check.note {
            let _ = write!(validity, " ({note})");
        }
        let firsts: Vec<String> = check
            .anomalies
            .iter()
            .take(TABLE_ANOMALIES_MAX)
            .map(|a| markdown_cell(&anomaly_text(a)))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            markdown_cell(&check.name),
            markdown_cell(&validity),
            markdown_cell(&counts_text(check)),
            firsts.join("<br>")
        );
    }
    if verdict.checks.iter().any(|c| !c.anomalies.is_empty()) {
        out.push_str("\n### Anomalies\n\n");
        for check in &verdict.checks {
            for anomaly in &check.anomalies {
                let _ = writeln!(
                    out,
                    "- **{}** {}",
                    markdown_cell(&check.name),
                    markdown_cell(&anomaly_text(anomaly))
                );
            }
        }
    }

    let latency = report.latency();
    out.push_str("\n## Latency (ms)\n\n| latency | count | p50 | p90 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|\n");
    for (name, p) in latency.rows() {
        let _ = writeln!(out, "{}", percentile_row(name, &p));
    }

    let txs = crate::run_report::transactions(&report.history);
    if !txs.is_empty() {
        let _ = writeln!(out, "\n## Transactions\n\n{} transactions; the first {} by id.\n", txs.len(), txs.len().min(crate::run_report::TX_ROWS_MAX));
        out.push_str("| msg id | outcome | producer's end | check-backs | fate |\n|---|---|---|---|---|\n");
        for row in txs.iter().take(crate::run_report::TX_ROWS_MAX) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                markdown_cell(&row.msg_id),
                row.outcome,
                markdown_cell(&row.end),
                markdown_cell(&row.checks.join("; ")),
                markdown_cell(&row.fate)
            );
        }
    }

    out.push_str("\n## Nemesis events\n\n");
    let faults: Vec<_> = report.fault_events().collect();
    if faults.is_empty() {
        out.push_str("None.\n");
    } else {
        out.push_str("| t (ms) | op | target | detail |\n|---|---|---|---|\n");
        for event in faults {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                event.t_ms,
                crate::run_report::fault_label(event),
                markdown_cell(event.target.as_deref().unwrap_or("")),
                markdown_cell(event.detail.as_deref().unwrap_or(""))
            );
        }
    }

    out.push_str("\n## Resolved options\n\n");
    if report.resolved_options.is_empty() {
        out.push_str("None.\n");
    } else {
        out.push_str("| option | value |\n|---|---|\n");
        for (name, value) in &report.resolved_options {
            let _ = writeln!(
                out,
                "| {} | {} |",
                markdown_cell(name),
                markdown_cell(value)
            );
        }
    }

    let _ = writeln!(
        out,
        "\n## Reproduce\n\n```sh\n{}\n```",
        report.repro.replace("```", "` ` `")
    );
    out
}

/// One row of the latency table; dashes when there were no samples.
fn percentile_row(name: &str, p: &Percentiles) -> String {
    if p.count == 0 {
        return format!("| {name} | 0 | – | – | – | – | – |");
    }
    format!(
        "| {name} | {} | {} | {} | {} | {} | {} |",
        p.count, p.p50, p.p90, p.p99, p.p999, p.max
    )
}
