//! The command line: every subcommand and its flags.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "mqsim",
    version,
    about = "Deterministic simulation testbed for the mqsim broker"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// List scenario names, one a line (or planted bug names with --bugs).
    List {
        /// List the planted bugs instead.
        #[arg(long)]
        bugs: bool,
        /// List the "sometimes" marks a scenario may require instead.
        #[arg(long, conflicts_with = "bugs")]
        marks: bool,
    },
    /// Run one seed of a scenario (a catalogue name or a path to a .toml file).
    Run {
        /// Scenario name or file.
        scenario: String,
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Write report.md, report.html, history.jsonl and verdict.json here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Print every history event as it happens.
        #[arg(long)]
        trace: bool,
        /// Switch on a planted bug (repeatable).
        #[arg(long = "bug")]
        bugs: Vec<String>,
        /// Run the seed twice and compare history digests.
        #[arg(long)]
        check_determinism: bool,
    },
    /// Run many seeds of one scenario or of `all`.
    Sweep {
        /// Scenario name, file, or `all`.
        scenario: String,
        /// Seed range `A..B` (B excluded).
        #[arg(long, default_value = "1..51")]
        seeds: String,
        /// Seeds run at once (default: number of cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Switch on a planted bug.
        #[arg(long = "bug")]
        bugs: Vec<String>,
        /// Write an index page here, and a report for each failing seed.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Also run each seed twice and compare digests.
        #[arg(long)]
        check_determinism: bool,
        /// Run only the K-th of N interleaved slices of the seed range
        /// (`1/2` takes the 1st, 3rd, 5th... seed), so N machines or CI
        /// jobs split one sweep; `mqsim merge` joins their summaries.
        #[arg(long)]
        shard: Option<String>,
        /// Write a machine-readable summary (verdict, digest, counts and
        /// reached marks per seed) here, as JSON.
        #[arg(long)]
        summary: Option<PathBuf>,
        /// Print, per scenario, where the seeds' wall time went (setup,
        /// simulation, drain, check, digest, the seed's process) and what
        /// the simulation did per wall second.
        #[arg(long)]
        timing: bool,
    },
    /// Join the summaries of sharded sweeps into one verdict, reached-marks
    /// table and (with --report) index.
    Merge {
        /// Summary files written by `sweep --summary`.
        #[arg(required = true)]
        summaries: Vec<PathBuf>,
        /// Write the joined summary here.
        #[arg(long)]
        summary: Option<PathBuf>,
        /// Write the joined sweep index here.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Run the checker on a history written earlier (a run's --report
    /// history.jsonl) with a scenario's groups and expectations.
    Check {
        /// The history, JSON lines.
        history: PathBuf,
        /// Scenario name or file whose expectations apply.
        #[arg(long)]
        scenario: String,
    },
    /// Shrink a failing seed's fault schedule and print it as a scenario file.
    Shrink {
        /// Scenario name or file.
        scenario: String,
        /// The failing seed.
        #[arg(long)]
        seed: u64,
        /// Planted bug the failure needs.
        #[arg(long = "bug")]
        bugs: Vec<String>,
        /// Also write the shrunk scenario to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Internal: run one seed in this process and print its result as JSON.
    /// The scenario comes as TOML on standard input. Every other command runs
    /// each seed through this in a child process (see `run_isolated`).
    #[command(name = "__seed", hide = true)]
    Seed {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Planted bugs.
        #[arg(long = "bug")]
        bugs: Vec<String>,
        /// Print every history event to standard error.
        #[arg(long)]
        trace: bool,
        /// Write the history here as JSON lines.
        #[arg(long)]
        history: Option<PathBuf>,
    },
    /// Capacity benchmark: run a scenario under its cost model (the
    /// calibrated defaults when it has none) and report throughput, send and
    /// end-to-end latency percentiles and backlog; with --sweep, once per
    /// value of one parameter, with a table and charts. Every run is also
    /// checked, so a capacity figure never hides a lost message.
    Bench {
        /// Scenario name or file.
        scenario: String,
        /// The seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// `A..B`: run each point once per seed from A to B-1 and report
        /// each figure's median over them (instead of --seed).
        #[arg(long, conflicts_with = "seed")]
        seeds: Option<String>,
        /// `path=v1,v2,...`: a scenario field by the path `run` prints it
        /// under (`topology.broker_groups=1,2,4`,
        /// `workload.producers[0].rate_per_s=2000,4000`,
        /// `topology.flush=async,sync`), one run per value.
        #[arg(long)]
        sweep: Option<String>,
        /// Write bench.md, bench.html (the charts and table) and bench.json here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Runs at once (default: number of cores).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Fit the cost model to this host: read what `cargo xtask bench
    /// --processes` printed here (one or more runs, appended; each figure's
    /// median is taken), print how each value was fitted and the
    /// `[topology.cost]` block; with --check, run the model beside every
    /// real row and fail unless each is within 25% in throughput and p99.
    Calibrate {
        /// Files holding the benchmark's output.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// The scenario that models the benchmark (one broker, its first
        /// producer entry as the benchmark's producers): run at every real
        /// row's flush mode and producer count, with the fitted costs. Its
        /// cost block gives what is not fitted (the tail, per_kib_us).
        #[arg(long)]
        check: Option<String>,
        /// Seeds per model point; each figure is their median.
        #[arg(long, default_value = "1..6")]
        seeds: String,
        /// Runs at once (default: number of cores).
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Prove every planted bug is caught by the check it targets: for each
    /// bug, sweep the catalogue (its likeliest scenario first) until some
    /// seed fails; report the repro line and which checks failed.
    Bugs {
        /// Seed range to try per scenario.
        #[arg(long, default_value = "1..101")]
        seeds: String,
        /// Seeds run at once.
        #[arg(long)]
        jobs: Option<usize>,
    },
}
