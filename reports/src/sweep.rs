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
    /// The "sometimes" marks the run reached, sorted.
    #[serde(default)]
    pub reached: Vec<String>,
    /// Simulated milliseconds the run covered.
    #[serde(default)]
    pub sim_ms: u64,
    /// Names of the checks that did not hold (`panic` for a panic).
    #[serde(default)]
    pub invalid_checks: Vec<String>,
    /// Measured figures of the run, as `check.count` (timer lateness,
    /// check-back resolution percentiles, failover times), for [`figures_text`].
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub figures: std::collections::BTreeMap<String, u64>,
}

/// The counts of a verdict a sweep sums up across its seeds.
pub const FIGURES: [(&str, &str); 11] = [
    ("delay", "late-p50-ms"),
    ("delay", "late-p99-ms"),
    ("delay", "late-max-ms"),
    ("transaction", "resolve-p50-ms"),
    ("transaction", "resolve-p99-ms"),
    ("transaction", "resolve-max-ms"),
    ("progress", "unavailable-p50-ms"),
    ("progress", "unavailable-max-ms"),
    ("failover", "failover-max-ms"),
    ("failover", "stops-judged"),
    ("lost", "lost"),
];

/// The [`FIGURES`] a verdict has, keyed `check.count`.
pub fn figures_of(verdict: &checker::Verdict) -> std::collections::BTreeMap<String, u64> {
    FIGURES
        .iter()
        .filter_map(|(check, count)| {
            let c = verdict.check(check)?;
            c.counts.get(*count).map(|v| (format!("{check}.{count}"), *v))
        })
        .collect()
}

/// One line per figure the entries carry: its median, 99th percentile and
/// maximum across the seeds that measured it, or `None` when none did.
pub fn figures_text(entries: &[SweepEntry]) -> Option<String> {
    let mut values: std::collections::BTreeMap<&str, Vec<u64>> = std::collections::BTreeMap::new();
    for e in entries {
        for (name, v) in &e.figures {
            values.entry(name.as_str()).or_default().push(*v);
        }
    }
    if values.is_empty() {
        return None;
    }
    let mut out = String::from("figures (per seed, then across seeds: median, p99, max; -ms in milliseconds, lost.lost in messages):");
    for (name, mut v) in values {
        v.sort_unstable();
        let at = |p: usize| v[((v.len() * p).div_ceil(100)).clamp(1, v.len()) - 1];
        let _ = write!(out, "\n  {name:<28} seeds={:<5} median={:<7} p99={:<7} max={}", v.len(), at(50), at(99), v[v.len() - 1]);
    }
    Some(out)
}

/// One row of the reached-marks table: how many seeds of a scenario reached
/// a mark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReachedRow {
    /// Scenario name.
    pub scenario: String,
    /// Mark name.
    pub mark: String,
    /// Seeds of the scenario that reached it.
    pub seeds_reached: usize,
    /// Seeds of the scenario in the sweep.
    pub seeds: usize,
    /// Whether the scenario requires the mark (`expect.reached`).
    pub required: bool,
}

impl ReachedRow {
    /// A required mark that no seed reached fails the sweep.
    pub fn missed(&self) -> bool {
        self.required && self.seeds_reached == 0
    }
}

/// The reached-marks table: for each scenario (in the order entries first
/// name it), each mark in `marks` plus any other mark some seed reached,
/// with how many seeds reached it. `required` gives each scenario's
/// `expect.reached`.
pub fn reached_rows(
    entries: &[SweepEntry],
    marks: &[&str],
    required: &dyn Fn(&str) -> Vec<String>,
) -> Vec<ReachedRow> {
    let mut scenarios: Vec<&str> = Vec::new();
    for entry in entries {
        if !scenarios.contains(&entry.scenario.as_str()) {
            scenarios.push(&entry.scenario);
        }
    }
    let mut rows = Vec::new();
    for scenario in scenarios {
        let runs: Vec<&SweepEntry> = entries.iter().filter(|e| e.scenario == scenario).collect();
        let needed = required(scenario);
        let mut names: std::collections::BTreeSet<&str> = marks.iter().copied().collect();
        names.extend(runs.iter().flat_map(|e| e.reached.iter().map(String::as_str)));
        names.extend(needed.iter().map(String::as_str));
        for mark in names {
            rows.push(ReachedRow {
                scenario: scenario.to_string(),
                mark: mark.to_string(),
                seeds_reached: runs.iter().filter(|e| e.reached.iter().any(|r| r == mark)).count(),
                seeds: runs.len(),
                required: needed.iter().any(|r| r == mark),
            });
        }
    }
    rows
}

/// The reached-marks table as Markdown: one row per scenario, one column
/// per mark in name order, each cell the share of seeds that reached it (`*` marks a
/// required mark, `MISSED` one that no seed reached).
pub fn reached_table_markdown(rows: &[ReachedRow]) -> String {
    let marks: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.mark.as_str()).collect();
    let mut out = String::from("| scenario | seeds |");
    for mark in &marks {
        let _ = write!(out, " {} |", markdown_cell(mark));
    }
    out.push_str("\n|---|---:|");
    out.push_str(&"---:|".repeat(marks.len()));
    out.push('\n');
    let mut scenario: Option<&str> = None;
    for row in rows {
        if scenario != Some(row.scenario.as_str()) {
            if scenario.is_some() {
                out.push('\n');
            }
            scenario = Some(&row.scenario);
            let _ = write!(out, "| {} | {} |", markdown_cell(&row.scenario), row.seeds);
            // Cells follow in `marks` order; a scenario lacking a mark's row
            // gets an empty cell.
            for mark in &marks {
                let cell = rows
                    .iter()
                    .find(|r| r.scenario == row.scenario && r.mark == *mark)
                    .map(reached_cell)
                    .unwrap_or_default();
                let _ = write!(out, " {cell} |");
            }
        }
    }
    if scenario.is_some() {
        out.push('\n');
    }
    out
}

/// The reached-marks table as an HTML table, laid out as the Markdown one.
fn reached_table_html(rows: &[ReachedRow]) -> String {
    let marks: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.mark.as_str()).collect();
    let mut out = String::from("<table>\n<tr><th>scenario</th><th>seeds</th>");
    for mark in &marks {
        let _ = write!(out, "<th>{}</th>", escape(mark));
    }
    out.push_str("</tr>\n");
    let mut scenarios: Vec<&str> = Vec::new();
    for row in rows {
        if !scenarios.contains(&row.scenario.as_str()) {
            scenarios.push(&row.scenario);
        }
    }
    for scenario in scenarios {
        let seeds = rows.iter().find(|r| r.scenario == scenario).map_or(0, |r| r.seeds);
        let _ = write!(out, "<tr><td>{}</td><td class=\"num\">{seeds}</td>", escape(scenario));
        for mark in &marks {
            let row = rows.iter().find(|r| r.scenario == scenario && r.mark == *mark);
            let class = if row.is_some_and(ReachedRow::missed) { " invalid" } else { "" };
            let cell = row.map(reached_cell).unwrap_or_default();
            let _ = write!(out, "<td class=\"num{class}\">{}</td>", escape(&cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

fn reached_cell(row: &ReachedRow) -> String {
    if row.missed() {
        return "MISSED*".to_string();
    }
    let percent = (row.seeds_reached * 100 + row.seeds / 2).checked_div(row.seeds).unwrap_or(0);
    format!("{percent}%{}", if row.required { "*" } else { "" })
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

/// The sweep index as Markdown: totals, the reached-marks table, then one
/// row per entry in the given order.
pub fn sweep_index_markdown(entries: &[SweepEntry], reached: &[ReachedRow]) -> String {
    let (total, pass, fail, unknown) = totals(entries);
    let mut out = format!(
        "# mqsim sweep\n\n**{total} runs: {pass} pass, {fail} fail, {unknown} unknown**\n\n"
    );
    if !reached.is_empty() {
        out.push_str("## Reached marks\n\nShare of seeds that reached each mark (`*` required by the scenario).\n\n");
        out.push_str(&reached_table_markdown(reached));
        out.push_str("\n## Runs\n\n");
    }
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

/// The sweep index as one self-contained HTML page: totals, the
/// reached-marks table, then one row per entry.
pub fn sweep_index_html(entries: &[SweepEntry], reached: &[ReachedRow]) -> String {
    let (total, pass, fail, unknown) = totals(entries);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>mqsim sweep</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>mqsim sweep</h1>\n"
    );
    let _ = writeln!(
        out,
        "<p>{total} runs: <span class=\"valid\">{pass} pass</span>, <span class=\"invalid\">{fail} fail</span>, <span class=\"unknown\">{unknown} unknown</span></p>"
    );
    if !reached.is_empty() {
        out.push_str("<h2>Reached marks</h2>\n<p>Share of seeds that reached each mark (* required by the scenario).</p>\n");
        out.push_str(&reached_table_html(reached));
        out.push_str("<h2>Runs</h2>\n");
    }
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
