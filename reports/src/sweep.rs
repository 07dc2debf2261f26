//! The index of a sweep: one row per (scenario, seed), pass or fail, linking
//! to each run's report when one was written.

use crate::escape::{escape, markdown_cell};
use crate::html::CSS;
use checker::Validity;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// One run of a sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepEntry {
    /// Scenario name.
    pub scenario: String,
    /// Seed of the run.
    pub seed: u64,
    /// Verdict of the run.
    pub validity: Validity,
    /// Trace digest (hex).
    pub digest: String,
    /// Headline counts, as [`checker::SummaryCounts`] prints them.
    pub counts: String,
    /// The command that replays the run.
    pub repro: String,
    /// Report directory relative to the index, if a report was written.
    pub report_dir: Option<String>,
}

/// Runs per validity: (total, valid, invalid, unknown).
fn totals(entries: &[SweepEntry]) -> (usize, usize, usize, usize) {
    let count = |v: Validity| entries.iter().filter(|e| e.validity == v).count();
    (
        entries.len(),
        count(Validity::Valid),
        count(Validity::Invalid),
        count(Validity::Unknown),
    )
}

/// PASS, FAIL or UNKNOWN.
fn outcome(validity: Validity) -> &'static str {
    match validity {
        Validity::Valid => "PASS",
        Validity::Invalid => "FAIL",
        Validity::Unknown => "UNKNOWN",
    }
}

/// The sweep index as Markdown: totals, then one row per entry in the given order.
pub fn sweep_index_markdown(entries: &[SweepEntry]) -> String {
    let (total, pass, fail, unknown) = totals(entries);
    let mut out = format!(
        "# mqsim sweep\n\n**{total} runs: {pass} pass, {fail} fail, {unknown} unknown**\n\n"
    );
    out.push_str("| scenario | seed | result | counts | digest | repro | report |\n|---|---|---|---|---|---|---|\n");
    for entry in entries {
        let link = entry
            .report_dir
            .as_deref()
            .map(|dir| {
                format!(
                    "[report]({}/report.md)",
                    markdown_cell(dir).replace(' ', "%20")
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | `{}` | `{}` | {link} |",
            markdown_cell(&entry.scenario),
            entry.seed,
            outcome(entry.validity),
            markdown_cell(&entry.counts),
            markdown_cell(&entry.digest),
            markdown_cell(&entry.repro)
        );
    }
    out
}

/// The sweep index as one self-contained HTML page.
pub fn sweep_index_html(entries: &[SweepEntry]) -> String {
    let (total, pass, fail, unknown) = totals(entries);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>mqsim sweep</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>mqsim sweep</h1>\n"
    );
    let _ = writeln!(
        out,
        "<p>{total} runs: <span class=\"valid\">{pass} pass</span>, <span class=\"invalid\">{fail} fail</span>, <span class=\"unknown\">{unknown} unknown</span></p>"
    );
    out.push_str("<table>\n<tr><th>scenario</th><th>seed</th><th>result</th><th>counts</th><th>digest</th><th>repro</th><th>report</th></tr>\n");
    for entry in entries {
        let link = entry
            .report_dir
            .as_deref()
            .map(|dir| format!("<a href=\"{}/report.html\">report</a>", escape(dir)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{link}</td></tr>",
            escape(&entry.scenario),
            entry.seed,
            format!(r#"<span class="{}">{}</span>"#, entry.validity.as_str(), outcome(entry.validity)),
            escape(&entry.counts),
            escape(&entry.digest),
            escape(&entry.repro)
        );
    }
    out.push_str("</table>\n</body>\n</html>\n");
    out
}
