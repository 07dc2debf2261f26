//! Writing a run's report files.

use crate::run_report::RunReport;
use checker::to_jsonl;
use std::path::Path;

/// Writes `report.md`, `report.html`, `history.jsonl` and `verdict.json`
/// into `dir`, creating it if needed.
pub fn write_run(dir: &Path, report: &RunReport) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.md"), crate::markdown::markdown(report))?;
    std::fs::write(dir.join("report.html"), crate::html::html(report))?;
    std::fs::write(dir.join("history.jsonl"), to_jsonl(&report.history))?;
    let mut verdict =
        serde_json::to_string_pretty(&report.verdict).map_err(std::io::Error::other)?;
    verdict.push('\n');
    std::fs::write(dir.join("verdict.json"), verdict)
}
