//! Reports of simulation runs: a verdict, a history and the metrics drawn
//! from it, rendered as Markdown and as one self-contained HTML page with
//! inline SVG charts (no script, no external resource), plus the index of a
//! sweep over many seeds. Rendering is deterministic: same run, same bytes
//! (only `wall_ms` varies between machines).
//!
//! # Layout
//!
//! - [`run_report`]: [`RunReport`], the input of a run's report, and the
//!   text both renderings share.
//! - [`write`](mod@write): [`write_run`], which writes `report.md`,
//!   `report.html`, `history.jsonl` and `verdict.json`.
//! - [`markdown`](mod@markdown) and [`html`](mod@html): the two renderings of one run.
//! - [`latency`]: end-to-end and send latency samples, hdrhistogram
//!   percentiles, per-second throughput and latency series.
//! - [`svg`]: the fault timeline and line charts.
//! - [`sweep`]: [`SweepEntry`] and the sweep index in both formats.
//! - [`escape`]: HTML and Markdown-cell escaping.

#![warn(missing_docs)]

pub mod bench;
pub mod escape;
pub mod html;
pub mod latency;
pub mod markdown;
pub mod run_report;
pub mod svg;
pub mod sweep;
pub mod write;

pub use html::html;
pub use latency::{Percentiles, Sample, Throughput};
pub use markdown::markdown;
pub use run_report::{LatencySummary, RunReport};
pub use write::write_run;
pub use sweep::{
    figures_of, figures_text, reached_rows, reached_table_markdown, sweep_index_html, sweep_index_markdown, ReachedRow, SweepEntry, FIGURES,
};
