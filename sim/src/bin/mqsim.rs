//! `mqsim`: run the scenario catalogue under the simulator.
//!
//! Exit codes: 0 every expected invariant held, 2 bad input, and one code
//! per class of failure (safety 1, liveness 3, a determinism mismatch 4, a
//! required mark missed 5, a crash of the harness 6: `sim::failure`).

use anyhow::{anyhow, bail, Context, Result};
use broker::bugs::Bug;
use clap::{Parser, Subcommand};
use reports::{RunReport, SweepEntry};
use scenarios::Scenario;
use sim::failure::{Failure, Failures, NONDETERMINISTIC};
use sim::run::{repro, run_seed, RunOptions, RunOutcome};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

#[derive(Parser)]
#[command(name = "mqsim", version, about = "Deterministic simulation testbed for the mqsim broker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

/// A failure of the input, exit code 2.
#[derive(Debug)]
struct BadInput(String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

fn bad(msg: impl Into<String>) -> anyhow::Error {
    anyhow!(BadInput(msg.into()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli) {
        Ok(failures) => ExitCode::from(failures.exit_code()),
        Err(e) => {
            eprintln!("mqsim: {e:#}");
            if e.downcast_ref::<BadInput>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(Failure::Crash.code())
            }
        }
    }
}

/// How the repro line names a scenario: its catalogue name, or the file it
/// was loaded from.
fn label_of(arg: &str, scenario: &Scenario) -> String {
    if arg.ends_with(".toml") || arg.contains('/') {
        arg.to_string()
    } else {
        scenario.name.clone()
    }
}

fn load(name: &str) -> Result<Scenario> {
    let result = if name.ends_with(".toml") || name.contains('/') {
        Scenario::load(name)
    } else {
        scenarios::find(name)
    };
    let scenario = result.map_err(|e| bad(e.to_string()))?;
    check_supported(&scenario)?;
    Ok(scenario)
}

fn check_supported(scenario: &Scenario) -> Result<()> {
    let known = sim::recorder::known_marks();
    for (i, mark) in scenario.expect.reached.iter().enumerate() {
        if !known.contains(&mark.as_str()) {
            return Err(bad(format!("{}: expect.reached[{i}]: unknown mark {mark:?}; known: {}", scenario.name, known.join(", "))));
        }
    }
    Ok(())
}

fn catalogue() -> Result<Vec<Scenario>> {
    let all = scenarios::catalogue(scenarios::catalogue_dir()).map_err(|e| bad(e.to_string()))?;
    all.iter().try_for_each(check_supported)?;
    Ok(all)
}

fn parse_bugs(names: &[String]) -> Result<Vec<Bug>> {
    let bugs = names
        .iter()
        .map(|n| {
            Bug::from_name(n).ok_or_else(|| {
                let known: Vec<&str> = Bug::ALL.iter().map(|b| b.name()).collect();
                bad(format!("unknown bug {n:?}; known: {}", known.join(", ")))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if !broker::bugs::set_active(&bugs) {
        return Err(bad("this build has no planted bugs: build with the `planted-bugs` feature (`cargo mqsim` does)"));
    }
    broker::bugs::set_active(&[]);
    Ok(bugs)
}

fn parse_seeds(range: &str) -> Result<std::ops::Range<u64>> {
    let (a, b) = range.split_once("..").ok_or_else(|| bad(format!("--seeds {range:?}: expected A..B")))?;
    let a: u64 = a.trim().parse().map_err(|_| bad(format!("--seeds {range:?}: {a:?} is not a number")))?;
    let b: u64 = b.trim().parse().map_err(|_| bad(format!("--seeds {range:?}: {b:?} is not a number")))?;
    if a >= b {
        return Err(bad(format!("--seeds {range:?}: the range is empty")));
    }
    Ok(a..b)
}

fn jobs(requested: Option<usize>) -> usize {
    requested.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1)
}

/// Parses `K/N` (1 <= K <= N).
fn parse_shard(text: &str) -> Result<(usize, usize)> {
    let parsed = text.split_once('/').and_then(|(k, n)| Some((k.trim().parse::<usize>().ok()?, n.trim().parse::<usize>().ok()?)));
    match parsed {
        Some((k, n)) if k >= 1 && k <= n => Ok((k, n)),
        _ => Err(bad(format!("--shard {text:?}: expected K/N with 1 <= K <= N, such as 1/2"))),
    }
}

/// The seeds of `range` in shard `k` of `n`: every n-th seed from the k-th.
fn shard_seeds(range: std::ops::Range<u64>, shard: Option<(usize, usize)>) -> Vec<u64> {
    let (k, n) = shard.unwrap_or((1, 1));
    range.enumerate().filter(|(i, _)| i % n == k - 1).map(|(_, seed)| seed).collect()
}

/// What `sweep --summary` writes and `merge` reads: one entry per seed.
#[derive(serde::Serialize, serde::Deserialize)]
struct SweepSummary {
    /// Format version; a summary of another version is refused by name.
    version: u32,
    /// The seed range as given (`A..B`).
    seeds: String,
    /// The shard (`K/N`), if the sweep ran one.
    shard: Option<String>,
    /// Planted bugs switched on.
    bugs: Vec<String>,
    /// One entry per (scenario, seed) run.
    entries: Vec<SweepEntry>,
}

/// The version of [`SweepSummary`] this binary writes and reads.
const SUMMARY_VERSION: u32 = 1;

fn write_summary(path: &Path, summary: &SweepSummary) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(summary)?).with_context(|| format!("writing {}", path.display()))?;
    println!("summary: {}", path.display());
    Ok(())
}

fn read_summary(path: &Path) -> Result<SweepSummary> {
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let summary: SweepSummary =
        serde_json::from_str(&text).map_err(|e| bad(format!("{}: not a sweep summary: {e}", path.display())))?;
    if summary.version != SUMMARY_VERSION {
        return Err(bad(format!("{}: summary version {}, this mqsim reads {SUMMARY_VERSION}", path.display(), summary.version)));
    }
    Ok(summary)
}

/// The marks a catalogue scenario requires (none for a scenario it lacks).
fn required_marks(list: &[Scenario], name: &str) -> Vec<String> {
    list.iter().find(|s| s.name == name).map(|s| s.expect.reached.clone()).unwrap_or_default()
}

/// The reached-marks table of `entries`, each scenario's requirements
/// taken from `list`.
fn reached_rows(entries: &[SweepEntry], list: &[Scenario]) -> Vec<reports::ReachedRow> {
    reports::reached_rows(entries, &sim::recorder::known_marks(), &|name| required_marks(list, name))
}

/// Prints the reached-marks table and a MISSED line per required mark no
/// seed reached; true when none was missed.
fn report_reached(rows: &[reports::ReachedRow]) -> bool {
    println!("reached marks (share of seeds; * required by the scenario):");
    print!("{}", reports::reached_table_markdown(rows));
    let mut ok = true;
    for row in rows.iter().filter(|r| r.missed()) {
        ok = false;
        println!("MISSED {} mark={}: none of {} seeds reached it (expect.reached)", row.scenario, row.mark, row.seeds);
    }
    ok
}

/// Writes the sweep index pages.
fn write_index(dir: &Path, entries: &[SweepEntry], reached: &[reports::ReachedRow]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("index.html"), reports::sweep_index_html(entries, reached))?;
    std::fs::write(dir.join("index.md"), reports::sweep_index_markdown(entries, reached))?;
    println!("sweep index: {}", dir.join("index.html").display());
    Ok(())
}

fn print_verdict(verdict: &checker::verdict::Verdict) {
    for check in &verdict.checks {
        let counts: Vec<String> = check.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("  {:<13} {:<8} {}", check.name, check.validity.as_str(), counts.join(" "));
        for a in check.anomalies.iter().take(3) {
            println!("      {}: {} (events {:?})", a.kind, a.detail, a.event_ids);
        }
    }
}

fn execute(cli: Cli) -> Result<Failures> {
    let needs_simulator = !matches!(cli.command, Command::List { .. } | Command::Merge { .. } | Command::Check { .. });
    if !cfg!(madsim) && needs_simulator {
        bail!(BadInput("this mqsim was built without the simulator; run it as `cargo mqsim ...`".into()));
    }
    match cli.command {
        Command::List { bugs, marks } => {
            if bugs {
                for bug in Bug::ALL {
                    println!("{}", bug.name());
                }
            } else if marks {
                for mark in sim::recorder::known_marks() {
                    println!("{mark}");
                }
            } else {
                for s in catalogue()? {
                    println!("{}", s.name);
                }
            }
            Ok(Failures::none())
        }
        Command::Run { scenario: arg, seed, report, trace, bugs, check_determinism } => {
            let scenario = load(&arg)?;
            let bugs = parse_bugs(&bugs)?;
            let label = label_of(&arg, &scenario);
            run_one(&scenario, &label, seed, RunOptions { trace, bugs }, report.as_deref(), check_determinism)
        }
        Command::Sweep { scenario: arg, seeds: range_text, jobs: j, bugs, report, check_determinism, shard, summary } => {
            let list = if arg == "all" { catalogue()? } else { vec![load(&arg)?] };
            let seeds = shard_seeds(parse_seeds(&range_text)?, shard.as_deref().map(parse_shard).transpose()?);
            let bug_names = bugs.clone();
            let bugs = parse_bugs(&bugs)?;
            let options = RunOptions { trace: false, bugs };
            let mut failures = Failures::none();
            let mut entries = Vec::new();
            for s in &list {
                let label = if arg == "all" { s.name.clone() } else { label_of(&arg, s) };
                let (failed, mut e) = sweep(s, &label, &seeds, jobs(j), &options, report.as_deref(), check_determinism, false)?;
                failures.merge(&failed);
                entries.append(&mut e);
            }
            // A shard sees only some seeds: its missed marks are reported,
            // and `merge` judges them over the whole range.
            let rows = reached_rows(&entries, &list);
            if !report_reached(&rows) && shard.is_none() {
                failures.add(Failure::MarkMissed);
            }
            if let Some(dir) = &report {
                write_index(dir, &entries, &rows)?;
            }
            if let Some(path) = &summary {
                let summary = SweepSummary { version: SUMMARY_VERSION, seeds: range_text, shard, bugs: bug_names, entries };
                write_summary(path, &summary)?;
                entries = summary.entries;
            }
            let failed = entries.iter().filter(|e| e.validity != checker::verdict::Validity::Valid).count();
            println!("sweep: {} passed, {failed} failed", entries.len() - failed);
            Ok(failures)
        }
        Command::Merge { summaries, summary, report } => {
            let mut merged: Option<SweepSummary> = None;
            for path in &summaries {
                let part = read_summary(path)?;
                match &mut merged {
                    None => merged = Some(part),
                    Some(all) => {
                        if (&all.seeds, &all.bugs) != (&part.seeds, &part.bugs) {
                            return Err(bad(format!(
                                "{}: seeds {} bugs {:?} differ from the first summary's seeds {} bugs {:?}",
                                path.display(), part.seeds, part.bugs, all.seeds, all.bugs
                            )));
                        }
                        all.entries.extend(part.entries);
                    }
                }
            }
            let mut merged = merged.expect("clap requires at least one summary");
            merged.shard = None;
            let list = catalogue().unwrap_or_default();
            let position = |name: &str| list.iter().position(|s| s.name == name).unwrap_or(usize::MAX);
            merged.entries.sort_by(|a, b| (position(&a.scenario), &a.scenario, a.seed).cmp(&(position(&b.scenario), &b.scenario, b.seed)));
            if let Some(pair) = merged.entries.windows(2).find(|w| (&w[0].scenario, w[0].seed) == (&w[1].scenario, w[1].seed)) {
                return Err(bad(format!("{} seed {} is in two summaries: do the shards overlap?", pair[0].scenario, pair[0].seed)));
            }
            let mut failures = Failures::none();
            let mut scenarios: Vec<&str> = merged.entries.iter().map(|e| e.scenario.as_str()).collect();
            scenarios.dedup();
            for name in scenarios {
                let runs: Vec<&SweepEntry> = merged.entries.iter().filter(|e| e.scenario == name).collect();
                let failed: Vec<&&SweepEntry> = runs.iter().filter(|e| e.validity != checker::verdict::Validity::Valid).collect();
                for e in &failed {
                    let classes = entry_failures(e);
                    failures.merge(&classes);
                    println!("FAIL {} seed={} class={} {} digest={} repro: {}", e.scenario, e.seed, classes.names(), e.counts, e.digest, e.repro);
                }
                println!("{} {name} seeds={} failed={}", if failed.is_empty() { "PASS" } else { "FAIL" }, runs.len(), failed.len());
                let owned: Vec<SweepEntry> = runs.iter().map(|e| (*e).clone()).collect();
                if let Some(text) = reports::figures_text(&owned) {
                    println!("{text}");
                }
            }
            let rows = reached_rows(&merged.entries, &list);
            if !report_reached(&rows) {
                failures.add(Failure::MarkMissed);
            }
            if let Some(dir) = &report {
                write_index(dir, &merged.entries, &rows)?;
            }
            if let Some(path) = &summary {
                write_summary(path, &merged)?;
            }
            let failed = merged.entries.iter().filter(|e| e.validity != checker::verdict::Validity::Valid).count();
            println!("merge: {} passed, {failed} failed", merged.entries.len() - failed);
            Ok(failures)
        }
        Command::Check { history, scenario } => {
            let scenario = load(&scenario)?;
            let text = std::fs::read_to_string(&history).map_err(|e| bad(format!("{}: {e}", history.display())))?;
            let events = checker::history::parse_jsonl(&text).map_err(|e| bad(format!("{}: {e}", history.display())))?;
            let verdict = checker::check_all(&events, &sim::run::check_config(&scenario, &events));
            println!("mqsim check {} --scenario {}", history.display(), scenario.name);
            print_verdict(&verdict);
            let digest = checker::history::digest_hex(&events);
            let counts = verdict.summary_counts();
            let failures = Failures::of_checks(verdict.checks.iter().filter(|c| c.validity != checker::Validity::Valid).map(|c| c.name.as_str()));
            let word = if failures.passed() { "PASS".to_string() } else { format!("FAIL class={}", failures.names()) };
            println!("{word} {} history={} events={} {counts} digest={digest}", scenario.name, history.display(), events.len());
            Ok(failures)
        }
        Command::Shrink { scenario: arg, seed, bugs, out } => {
            let scenario = load(&arg)?;
            let bugs = parse_bugs(&bugs)?;
            shrink(&scenario, &label_of(&arg, &scenario), seed, bugs, out.as_deref())
        }
        Command::Bench { scenario, seed, seeds, sweep, report, jobs: j } => {
            let seeds = match &seeds {
                Some(range) => parse_seeds(range)?,
                None => seed..seed + 1,
            };
            Ok(safety_unless(bench(&scenario, seeds, sweep.as_deref(), report.as_deref(), jobs(j))?))
        }
        Command::Calibrate { runs, check, seeds, jobs: j } => {
            Ok(safety_unless(calibrate(&runs, check.as_deref(), parse_seeds(&seeds)?, jobs(j))?))
        }
        Command::Seed { seed, bugs, trace, history } => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
            let scenario = Scenario::from_toml_str(&text, "<stdin>").map_err(|e| bad(e.to_string()))?;
            let bugs = parse_bugs(&bugs)?;
            let outcome = run_seed(&scenario.resolve(seed), &RunOptions { trace, bugs });
            if let Some(path) = history {
                std::fs::write(&path, checker::history::to_jsonl(&outcome.history))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            let result = ChildResult {
                digest: outcome.digest,
                reached: outcome.reached,
                verdict: outcome.verdict,
                panic: outcome.panic,
                sim_ms: outcome.sim_ms,
                wall_ms: outcome.wall_ms,
            };
            println!("{}", serde_json::to_string(&result)?);
            Ok(Failures::none())
        }
        Command::Bugs { seeds, jobs: j } => {
            let range = parse_seeds(&seeds)?;
            let seeds: Vec<u64> = range.clone().collect();
            let list = catalogue()?;
            let mut all_caught = true;
            let mut missed = 0;
            for bug in Bug::ALL {
                parse_bugs(&[bug.name().to_string()])?;
                let options = RunOptions { trace: false, bugs: vec![bug] };
                let mut caught = None;
                let target = target_check(bug);
                let first = hunting_ground(bug);
                let order = list.iter().filter(|s| s.name == first).chain(list.iter().filter(|s| s.name != first));
                for s in order {
                    let replay = target == NONDETERMINISTIC;
                    let (_, entries) = sweep(s, &s.name, &seeds, jobs(j), &options, None, replay, true)?;
                    if let Some(e) = entries.iter().find(|e| e.validity != checker::verdict::Validity::Valid) {
                        caught = Some((e.repro.clone(), e.invalid_checks.clone()));
                        break;
                    }
                }
                match caught {
                    Some((repro, checks)) if checks.iter().any(|c| c == target) => {
                        println!("CAUGHT {} by {target} (invalid: {}) repro: {repro}", bug.name(), checks.join(", "))
                    }
                    Some((repro, checks)) => {
                        all_caught = false;
                        missed += 1;
                        println!("WRONG-CHECK {}: meant for {target}, but only {} failed; repro: {repro}", bug.name(), checks.join(", "));
                    }
                    None => {
                        all_caught = false;
                        missed += 1;
                        println!("MISSED {} in seeds {range:?} of every scenario", bug.name());
                    }
                }
            }
            println!("bugs: {} passed, {missed} failed", Bug::ALL.len() - missed);
            Ok(safety_unless(all_caught))
        }
    }
}

/// No failure when `ok`; else exit 1 (a planted bug missed, a bench run
/// that failed its checks, a model outside its tolerance).
fn safety_unless(ok: bool) -> Failures {
    if ok {
        Failures::none()
    } else {
        Failures::of(Failure::Safety)
    }
}

/// How a sweep entry failed, by class (an entry from a summary that named
/// no check counts as a safety violation).
fn entry_failures(e: &SweepEntry) -> Failures {
    if e.validity == checker::verdict::Validity::Valid {
        Failures::none()
    } else if e.invalid_checks.is_empty() {
        Failures::of(Failure::Safety)
    } else {
        Failures::of_checks(e.invalid_checks.iter().map(String::as_str))
    }
}

/// The check each planted bug exists to prove: the bug must fail it (a
/// bug caught only by another check means the target check cannot fail).
fn target_check(bug: Bug) -> &'static str {
    match bug {
        Bug::AckBeforeFsync
        | Bug::CommitOffsetAhead
        | Bug::DropRebalancedQueue
        | Bug::RetryLaterAcked
        | Bug::FilterSkipsMatch
        | Bug::AckBeforeSlaveAck
        | Bug::ElectOutOfSync
        | Bug::NoFencing
        | Bug::SkipTruncation
        | Bug::SlaveOffsetLies
        | Bug::ResumeAfterRestart
        | Bug::LocalRetryGivesUp => "lost",
        Bug::TagFilterLeak | Bug::PullDropsProperties | Bug::RetryDropsKey => "integrity",
        Bug::LongPollMiss => "liveness",
        Bug::DlqSkipped | Bug::RetryNoBackoff | Bug::DelayStepBackEarly | Bug::RetryKeepsReconsume | Bug::DlqWaitsLevel => {
            "dead-letter"
        }
        Bug::OrderlyRetryRequeued | Bug::LockNotExclusive | Bug::OrderlyReleaseEarly => "order",
        Bug::RollbackDelivered | Bug::CheckRoundAborts | Bug::CommitTwice | Bug::CheckCommitIgnored | Bug::RollbackRechecked => {
            "transaction"
        }
        Bug::NoFailover => "failover",
        // The next message takes the offset of the entry recovery cut, which
        // consumers had often read already: two messages at one offset,
        // seen before (or without) a loss.
        Bug::PullOffsetSkew | Bug::StaleOffsetRead | Bug::RecoveryTruncatesExtra => "offsets",
        Bug::PeriodicCommitStops | Bug::TimerProgressNotPersisted => "duplicated",
        Bug::TimerEarly | Bug::TimersLostOnRestart | Bug::TimerLookAhead => "delay",
        Bug::ProgressStall => "progress",
        Bug::LimitsUnchecked => "hostile",
        // Not an invariant: the sweep replays each seed and compares.
        Bug::HostEntropy => NONDETERMINISTIC,
    }
}

/// The catalogue scenario where each planted bug is hunted first (the rest
/// follow in catalogue order), so proving the catalogue catches every bug
/// does not sweep scenarios that cannot reach it.
fn hunting_ground(bug: Bug) -> &'static str {
    match bug {
        Bug::AckBeforeFsync => "power-loss-sync-flush",
        Bug::DropRebalancedQueue | Bug::RetryLaterAcked => "broker-crash-async-flush",
        Bug::CommitOffsetAhead => "orderly-rebalance",
        Bug::RecoveryTruncatesExtra => "fifo-order",
        Bug::FilterSkipsMatch | Bug::TagFilterLeak => "consumer-crash-rebalance",
        Bug::PullDropsProperties | Bug::LongPollMiss | Bug::ProgressStall | Bug::PullOffsetSkew => "broker-crash-sync-flush",
        Bug::PeriodicCommitStops => "fifo-order",
        Bug::StaleOffsetRead => "consumer-crash-rebalance",
        Bug::LocalRetryGivesUp => "replication-slave-reads",
        Bug::LimitsUnchecked => "hostile-clients",
        Bug::DlqSkipped | Bug::RetryNoBackoff | Bug::RetryDropsKey | Bug::RetryKeepsReconsume | Bug::DlqWaitsLevel => {
            "retry-dead-letter"
        }
        Bug::OrderlyRetryRequeued | Bug::LockNotExclusive | Bug::OrderlyReleaseEarly => "orderly-rebalance",
        Bug::DelayStepBackEarly => "retry-clock-skew",
        Bug::RollbackDelivered | Bug::CheckRoundAborts | Bug::CommitTwice | Bug::CheckCommitIgnored | Bug::RollbackRechecked => {
            "transaction-check-back"
        }
        Bug::TimerEarly => "timer-clock-skew",
        Bug::TimerLookAhead => "timer-clock-behind",
        Bug::TimersLostOnRestart | Bug::TimerProgressNotPersisted => "transaction-broker-crash",
        Bug::AckBeforeSlaveAck | Bug::SkipTruncation | Bug::NoFailover => "failover-sync-master-crash",
        Bug::ElectOutOfSync => "failover-lagging-slave",
        Bug::NoFencing => "failover-master-isolated",
        Bug::SlaveOffsetLies => "failover-slave-power-loss",
        Bug::ResumeAfterRestart => "failover-master-power-loss",
        Bug::HostEntropy => "broker-crash-sync-flush",
    }
}

/// What a seed's child process reports.
#[derive(serde::Serialize, serde::Deserialize)]
struct ChildResult {
    digest: String,
    reached: std::collections::BTreeMap<String, u64>,
    verdict: checker::verdict::Verdict,
    panic: Option<String>,
    sim_ms: u64,
    wall_ms: u64,
}

/// Runs one seed in a child process of this binary. Two simulations in one
/// process do not always replay alike (some state outlives a madsim runtime;
/// a fresh process does replay byte for byte), so every seed gets its own
/// process. The history is read back only when `keep_history`.
fn run_isolated(scenario: &Scenario, seed: u64, options: &RunOptions, keep_history: bool) -> Result<RunOutcome> {
    use std::io::Write;
    use std::process::{Command as Process, Stdio};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let started = std::time::Instant::now();
    let exe = std::env::current_exe().context("locating the mqsim binary")?;
    let history_path = keep_history.then(|| {
        std::env::temp_dir().join(format!("mqsim-{}-{}.jsonl", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)))
    });
    let mut cmd = Process::new(exe);
    cmd.arg("__seed").arg("--seed").arg(seed.to_string());
    for bug in &options.bugs {
        cmd.arg("--bug").arg(bug.name());
    }
    if options.trace {
        cmd.arg("--trace");
    }
    if let Some(path) = &history_path {
        cmd.arg("--history").arg(path);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().context("starting a seed process")?;
    child.stdin.take().expect("piped stdin").write_all(scenario.to_toml_string().as_bytes())?;
    let output = child.wait_with_output().context("waiting for a seed process")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let parsed = stdout.lines().last().and_then(|line| serde_json::from_str::<ChildResult>(line).ok());
    let history = match &history_path {
        Some(path) => {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let _ = std::fs::remove_file(path);
            checker::history::parse_jsonl(&text).map_err(|e| anyhow!("seed {seed}: {e}"))?
        }
        None => Vec::new(),
    };
    let wall_ms = started.elapsed().as_millis() as u64;
    Ok(match parsed {
        Some(r) => RunOutcome {
            scenario: scenario.name.clone(),
            seed,
            verdict: r.verdict,
            history,
            digest: r.digest,
            reached: r.reached,
            panic: r.panic,
            sim_ms: r.sim_ms,
            wall_ms: r.wall_ms.max(1),
        },
        None => RunOutcome {
            scenario: scenario.name.clone(),
            seed,
            verdict: checker::verdict::Verdict { validity: checker::verdict::Validity::Invalid, checks: Vec::new() },
            history,
            digest: "-".into(),
            reached: Default::default(),
            panic: Some(format!("the seed's process died ({}) without a result", output.status)),
            sim_ms: 0,
            wall_ms,
        },
    })
}

fn print_resolved(resolved: &scenarios::Resolved) {
    for (path, value) in resolved.options() {
        println!("  {path} = {value}");
    }
}

fn fail_line(o: &RunOutcome, label: &str, bugs: &[Bug], failures: &Failures) -> String {
    let counts = o.verdict.summary_counts();
    let panic = o.panic.as_deref().map(|p| format!(" panic={:?}", p.lines().next().unwrap_or(""))).unwrap_or_default();
    format!(
        "FAIL {} seed={} class={} {counts}{panic} digest={} repro: {}",
        o.scenario,
        o.seed,
        failures.names(),
        o.digest,
        repro(label, o.seed, bugs)
    )
}

fn report_of(o: &RunOutcome, label: &str, resolved: &scenarios::Resolved, bugs: &[Bug]) -> RunReport {
    RunReport {
        scenario: o.scenario.clone(),
        seed: o.seed,
        verdict: o.verdict.clone(),
        history: o.history.clone(),
        resolved_options: resolved.options(),
        repro: repro(label, o.seed, bugs),
        digest: o.digest.clone(),
        sim_duration_ms: o.sim_ms,
        wall_ms: o.wall_ms,
    }
}

fn run_one(scenario: &Scenario, label: &str, seed: u64, options: RunOptions, report: Option<&Path>, check_determinism: bool) -> Result<Failures> {
    println!("mqsim run {} seed={seed}", scenario.name);
    let resolved = scenario.resolve(seed);
    print_resolved(&resolved);
    let outcome = run_isolated(scenario, seed, &options, true)?;
    print_verdict(&outcome.verdict);
    if !outcome.reached.is_empty() {
        println!("  reached: {}", outcome.reached.keys().cloned().collect::<Vec<_>>().join(" "));
    }
    if let Some(p) = &outcome.panic {
        println!("  panic: {p}");
    }
    let mut failures = outcome.failures();
    if check_determinism {
        let again = run_isolated(scenario, seed, &options, true)?;
        if again.digest == outcome.digest {
            println!("  determinism: same digest {} twice", outcome.digest);
        } else {
            println!("  determinism: DIFFERENT digests {} and {}", outcome.digest, again.digest);
            let first = outcome.history.iter().zip(&again.history).position(|(a, b)| a != b);
            if let Some(i) = first.or(Some(outcome.history.len().min(again.history.len()))) {
                let show = |h: &[checker::history::Event]| h.get(i).map(checker::history::to_json_line).unwrap_or_else(|| "(end of history)".into());
                println!("  first divergence at event {}:\n    run 1: {}\n    run 2: {}", i + 1, show(&outcome.history), show(&again.history));
            }
            failures.add(Failure::Nondeterministic);
        }
    }
    if let Some(dir) = report {
        reports::write_run(dir, &report_of(&outcome, label, &resolved, &options.bugs)).with_context(|| format!("writing report to {}", dir.display()))?;
        println!("  report: {}", dir.join("report.html").display());
    }
    let sim_per_wall = outcome.sim_ms as f64 / outcome.wall_ms.max(1) as f64;
    if failures.passed() {
        println!(
            "PASS {} seed={} events={} digest={} sim={:.0}s wall={:.2}s ({sim_per_wall:.0}x)",
            outcome.scenario,
            seed,
            outcome.history.len(),
            outcome.digest,
            outcome.sim_ms as f64 / 1000.0,
            outcome.wall_ms as f64 / 1000.0
        );
    } else {
        println!("{}", fail_line(&outcome, label, &options.bugs, &failures));
    }
    Ok(failures)
}

/// What a sweep keeps of a seed: a run's history is dropped as soon as the
/// seed ends (a failing seed's report is written first), so memory stays
/// flat however many seeds run.
struct SeedSummary {
    seed: u64,
    failures: Failures,
    entry: SweepEntry,
    sim_ms: u64,
}

/// Sweeps `seeds` of one scenario on `jobs` threads. With `stop_at_first`,
/// stops handing out seeds once one fails.
fn sweep(
    scenario: &Scenario,
    label: &str,
    seeds: &[u64],
    jobs: usize,
    options: &RunOptions,
    report: Option<&Path>,
    check_determinism: bool,
    stop_at_first: bool,
) -> Result<(Failures, Vec<SweepEntry>)> {
    let started = std::time::Instant::now();
    let all = seeds;
    let next = AtomicUsize::new(0);
    let progress = Progress::new(&scenario.name, all.len(), !stop_at_first);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let results: Mutex<Vec<Result<SeedSummary>>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(all.len()) {
            scope.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = all.get(i) else { break };
                let summary = sweep_seed(scenario, label, seed, options, report, check_determinism, stop_at_first);
                let failed = summary.as_ref().map_or(true, |s| !s.failures.passed());
                if stop_at_first && failed {
                    stop.store(true, Ordering::Relaxed);
                }
                progress.seed_done(failed);
                results.lock().expect("results").push(summary);
            });
        }
    });
    progress.finish();
    let mut results = results.into_inner().expect("results").into_iter().collect::<Result<Vec<_>>>()?;
    results.sort_by_key(|r| r.seed);
    let wall = started.elapsed().as_secs_f64();
    let failed = results.iter().filter(|r| !r.failures.passed()).count();
    let mut failures = Failures::none();
    for r in &results {
        failures.merge(&r.failures);
    }
    let sim_s: f64 = results.iter().map(|r| r.sim_ms as f64 / 1000.0).sum();
    if !stop_at_first {
        println!(
            "{} {} seeds={} failed={failed} wall={wall:.1}s seeds/s={:.2} sim-s/wall-s={:.0}",
            if failed == 0 { "PASS" } else { "FAIL" },
            scenario.name,
            results.len(),
            results.len() as f64 / wall.max(1e-9),
            sim_s / wall.max(1e-9),
        );
    }
    let entries: Vec<SweepEntry> = results.into_iter().map(|r| r.entry).collect();
    if !stop_at_first {
        if let Some(text) = reports::figures_text(&entries) {
            println!("{text}");
        }
    }
    Ok((failures, entries))
}

/// Runs one seed of a sweep (twice with `check_determinism`), prints its
/// failure line, writes its report when it failed and `report` is set.
fn sweep_seed(
    scenario: &Scenario,
    label: &str,
    seed: u64,
    options: &RunOptions,
    report: Option<&Path>,
    check_determinism: bool,
    quiet: bool,
) -> Result<SeedSummary> {
    let resolved = scenario.resolve(seed);
    let outcome = run_isolated(scenario, seed, options, report.is_some())?;
    let deterministic = !check_determinism || run_isolated(scenario, seed, options, false)?.digest == outcome.digest;
    let mut failed_checks = outcome.failed_checks();
    if !deterministic {
        failed_checks.push(NONDETERMINISTIC.to_string());
    }
    let failures = Failures::of_checks(failed_checks.iter().map(String::as_str));
    let failed = !failures.passed();
    if failed && !quiet {
        println!("{}", fail_line(&outcome, label, &options.bugs, &failures));
        if !deterministic {
            println!("NONDETERMINISTIC {} seed={seed}: the same seed gave two digests", scenario.name);
        }
    }
    let report_dir = match report {
        Some(dir) if failed => {
            let sub = format!("{}-{seed}", outcome.scenario);
            reports::write_run(&dir.join(&sub), &report_of(&outcome, label, &resolved, &options.bugs))
                .with_context(|| format!("writing report to {}", dir.join(&sub).display()))?;
            Some(sub)
        }
        _ => None,
    };
    let entry = SweepEntry {
        scenario: outcome.scenario.clone(),
        seed,
        validity: if deterministic { outcome.verdict.validity } else { checker::verdict::Validity::Invalid },
        digest: outcome.digest.clone(),
        counts: outcome.verdict.summary_counts().to_string(),
        repro: repro(label, seed, &options.bugs),
        report_dir,
        reached: outcome.reached.keys().cloned().collect(),
        sim_ms: outcome.sim_ms,
        invalid_checks: failed_checks,
        figures: reports::figures_of(&outcome.verdict),
    };
    Ok(SeedSummary { seed, failures, entry, sim_ms: outcome.sim_ms })
}

fn shrink(scenario: &Scenario, label: &str, seed: u64, bugs: Vec<Bug>, out: Option<&Path>) -> Result<Failures> {
    let options = RunOptions { trace: false, bugs: bugs.clone() };
    let resolved = scenario.resolve(seed);
    let first = run_isolated(scenario, seed, &options, false)?;
    if first.passed() {
        println!("seed {seed} of {} passes: nothing to shrink", scenario.name);
        return Ok(Failures::none());
    }
    eprintln!("shrinking {} faults of {} seed={seed} ({})", resolved.schedule.len(), scenario.name, fail_line(&first, label, &bugs, &first.failures()));
    let (minimal, runs) = sim::shrink::ddmin(&resolved.schedule, |candidate| {
        let reduced = scenario.with_schedule(candidate);
        run_isolated(&reduced, seed, &options, false).map(|o| !o.passed()).unwrap_or(false)
    });
    let mut shrunk = scenario.with_schedule(&minimal);
    // A scenario's name is its file's stem, so the printed file loads back.
    shrunk.name = match out.and_then(|p| p.file_stem()).and_then(|s| s.to_str()) {
        Some(stem) => stem.to_string(),
        None => format!("{}-shrunk", scenario.name),
    };
    let toml = shrunk.to_toml_string();
    eprintln!("{} -> {} faults in {runs} runs", resolved.schedule.len(), minimal.len());
    println!(
        "# shrunk from {} faults to {} by `mqsim shrink {} --seed {seed}`; still fails with seed {seed}.\n# save as {}.toml and run: cargo mqsim run {}.toml --seed {seed}{}",
        resolved.schedule.len(),
        minimal.len(),
        label,
        shrunk.name,
        shrunk.name,
        bugs.iter().map(|b| format!(" --bug {}", b.name())).collect::<String>()
    );
    print!("{toml}");
    if let Some(path) = out {
        std::fs::write(path, &toml).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("written to {}", path.display());
    }
    Ok(first.failures())
}

/// A sweep's progress on a terminal: seeds done, failures so far, seeds per
/// second and time left, redrawn in place on standard error. Silent when
/// standard error is not a terminal (CI logs stay clean).
struct Progress<'a> {
    scenario: &'a str,
    total: usize,
    started: std::time::Instant,
    done: AtomicUsize,
    failed: AtomicUsize,
    shown: bool,
}

impl<'a> Progress<'a> {
    fn new(scenario: &'a str, total: usize, wanted: bool) -> Progress<'a> {
        use std::io::IsTerminal;
        let shown = wanted && std::io::stderr().is_terminal();
        Progress { scenario, total, started: std::time::Instant::now(), done: AtomicUsize::new(0), failed: AtomicUsize::new(0), shown }
    }

    fn seed_done(&self, failed: bool) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let failures = self.failed.fetch_add(usize::from(failed), Ordering::Relaxed) + usize::from(failed);
        if self.shown {
            let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            let left = (self.total - done) as f64 / rate.max(1e-9);
            eprint!("\r\x1b[K{}: {done}/{} seeds, {failures} failed, {rate:.1} seeds/s, {left:.0}s left", self.scenario, self.total);
        }
    }

    fn finish(&self) {
        if self.shown {
            eprint!("\r\x1b[K");
        }
    }
}

/// Splits `path=v1,v2,...`.
fn parse_sweep(arg: &str) -> Result<(String, Vec<String>)> {
    let (path, values) = arg.split_once('=').ok_or_else(|| bad(format!("--sweep {arg:?}: expected path=v1,v2,...")))?;
    // Commas inside brackets belong to a value (`fsync_ms=[1,4],[5,20]`).
    let (mut values_out, mut current, mut depth) = (Vec::new(), String::new(), 0i32);
    for c in values.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                values_out.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    values_out.push(current);
    let values: Vec<String> = values_out.into_iter().map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
    if path.trim().is_empty() || values.is_empty() {
        return Err(bad(format!("--sweep {arg:?}: expected path=v1,v2,...")));
    }
    Ok((path.trim().to_string(), values))
}

/// `base` with the field at `path` (dotted, with `[i]` for array items, as
/// `run` prints the resolved options) set to `value`, read as a TOML value
/// (a bare word is a string), and validated again.
fn with_field(base: &Scenario, path: &str, value: &str) -> Result<Scenario> {
    let mut doc: toml::Value = toml::from_str(&base.to_toml_string()).context("the scenario as TOML")?;
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let mut at = &mut doc;
    let segments: Vec<&str> = path.split('.').collect();
    for (i, segment) in segments.iter().enumerate() {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => {
                let index = rest.strip_suffix(']').and_then(|n| n.parse::<usize>().ok());
                (name, Some(index.ok_or_else(|| bad(format!("--sweep: {segment:?} in {path:?}: expected name[index]")))?))
            }
            None => (*segment, None),
        };
        let last = i + 1 == segments.len() && index.is_none();
        let table = at.as_table_mut().ok_or_else(|| bad(format!("--sweep: {path:?}: {name:?} is not inside a table")))?;
        if last {
            table.insert(name.to_string(), parsed);
            break;
        }
        at = table.get_mut(name).ok_or_else(|| bad(format!("--sweep: {path:?}: the scenario has no {name:?}")))?;
        if let Some(index) = index {
            let items = at.as_array_mut().ok_or_else(|| bad(format!("--sweep: {path:?}: {name:?} is not a list")))?;
            let len = items.len();
            at = items.get_mut(index).ok_or_else(|| bad(format!("--sweep: {path:?}: {name:?} has {len} items")))?;
            if i + 1 == segments.len() {
                *at = parsed;
                break;
            }
        }
    }
    let text = toml::to_string(&doc).context("the changed scenario as TOML")?;
    let origin = format!("{} with {path} = {value}", base.name);
    Scenario::from_toml_str(&text, &origin).map_err(|e| bad(e.to_string()))
}

/// Send attempts per second the scenario's producers offer.
fn offered_per_s(scenario: &Scenario) -> f64 {
    scenario.workload.producers.iter().map(|p| f64::from(p.count) * p.rate_per_s).sum()
}

/// Runs every variant once per seed, `jobs` at once, printing a line per
/// run; each variant's figures are the median over its seeds. Also whether
/// every run's checks passed.
fn run_points(
    name: &str,
    parameter: &str,
    variants: &[(String, Scenario)],
    seeds: std::ops::Range<u64>,
    jobs: usize,
) -> Result<(Vec<reports::bench::Point>, bool)> {
    // Every point with every seed, run in any order; each point's figures
    // are then its seeds' median.
    let runs: Vec<(usize, u64)> = (0..variants.len()).flat_map(|i| seeds.clone().map(move |seed| (i, seed))).collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<(reports::bench::Figures, bool)>>> = Mutex::new(vec![None; runs.len()]);
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(runs.len()).max(1) {
            scope.spawn(|| loop {
                let r = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(i, seed)) = runs.get(r) else { break };
                let (value, scenario) = &variants[i];
                match run_isolated(scenario, seed, &RunOptions::default(), true) {
                    Ok(outcome) => {
                        let figures =
                            reports::bench::figures(&outcome.history, sim::run::WORKLOAD_START_MS, scenario.producer_stop_ms(), offered_per_s(scenario));
                        let line = format!(
                            "  {parameter} = {value}, seed {seed}: offered {:.0}/s, acknowledged {:.0}/s, failed {}, send p50/p99 {}/{} ms, end-to-end p50/p99 {}/{} ms, backlog max {}, checks {} (digest {}, wall {:.1} s)",
                            figures.offered_per_s,
                            figures.throughput_per_s,
                            figures.failed,
                            reports::bench::ms(figures.send_us.p50),
                            reports::bench::ms(figures.send_us.p99),
                            figures.end_to_end_ms(figures.end_to_end_us.p50),
                            figures.end_to_end_ms(figures.end_to_end_us.p99),
                            figures.backlog_max,
                            if outcome.passed() { "pass" } else { "FAIL" },
                            outcome.digest,
                            outcome.wall_ms as f64 / 1000.0,
                        );
                        println!("{line}");
                        let passed = outcome.passed();
                        if !passed {
                            println!("    {}", fail_line(&outcome, &label_of(name, scenario), &[], &outcome.failures()));
                        }
                        results.lock().expect("results")[r] = Some((figures, passed));
                    }
                    Err(e) => {
                        failure.lock().expect("failure").get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().expect("failure") {
        return Err(e);
    }
    let results: Vec<Option<(reports::bench::Figures, bool)>> = results.into_inner().expect("results");
    let all_passed = results.iter().all(|r| r.as_ref().is_some_and(|(_, passed)| *passed));
    let per_seed = (seeds.end - seeds.start) as usize;
    let points: Vec<reports::bench::Point> = variants
        .iter()
        .enumerate()
        .map(|(i, (value, _))| {
            let runs: Vec<reports::bench::Figures> = results[i * per_seed..(i + 1) * per_seed].iter().flatten().map(|(f, _)| f.clone()).collect();
            reports::bench::Point { value: value.clone(), figures: reports::bench::Figures::median(&runs) }
        })
        .collect();
    Ok((points, all_passed))
}

/// The largest difference from the real benchmark the model may show, in
/// throughput and in p99, for the validation to hold.
const MODEL_TOLERANCE: f64 = 0.25;

fn calibrate(files: &[PathBuf], check: Option<&str>, seeds: std::ops::Range<u64>, jobs: usize) -> Result<bool> {
    use sim::calibrate;
    let mut text = String::new();
    for file in files {
        let read = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        text.push_str(&read);
        text.push('\n');
    }
    let runs = calibrate::parse(&text).map_err(|e| bad(format!("{}: {e}", files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "))))?;
    let medians = calibrate::medians(&runs.rows);
    let base = check.map(|name| load(name).map(|scenario| (name, scenario))).transpose()?;
    let base_cost = base.as_ref().and_then(|(_, b)| b.topology.cost.clone()).unwrap_or_default();
    let fit = calibrate::fit(&runs, &base_cost).map_err(bad)?;
    println!(
        "mqsim calibrate: {} rows, {} medians, {} B bodies{}",
        runs.rows.len(),
        medians.len(),
        runs.body(),
        if runs.body_bytes.is_none() { " (not stated; assumed)" } else { "" }
    );
    for line in &fit.derivation {
        println!("  {line}");
    }
    println!("\n{}\n", calibrate::cost_block(&fit.cost));
    let Some((name, mut base)) = base else { return Ok(true) };
    base.topology.cost = Some(fit.cost.clone());
    let variants = medians
        .iter()
        .map(|m| {
            let flush = if m.flush == scenarios::FlushMode::Sync { "sync" } else { "async" };
            let scenario = with_field(&with_field(&base, "topology.flush", flush)?, "workload.producers[0].count", &m.producers.to_string())?;
            Ok((format!("{} x{}", calibrate::flush_name(m.flush), m.producers), scenario))
        })
        .collect::<Result<Vec<_>>>()?;
    let seeds_arg = format!("--seeds {}..{}", seeds.start, seeds.end);
    println!("the model ({name}, the fitted costs, {seeds_arg}; each figure the median):");
    let (points, passed) = run_points(name, "row", &variants, seeds, jobs)?;
    let compared: Vec<calibrate::Compared> = medians
        .iter()
        .zip(&points)
        .map(|(real, point)| calibrate::Compared {
            real: real.clone(),
            msgs_per_s: point.figures.throughput_per_s,
            p50_ms: point.figures.send_us.p50 as f64 / 1000.0,
            p99_ms: point.figures.send_us.p99 as f64 / 1000.0,
        })
        .collect();
    println!("\n{}", calibrate::table(&compared));
    let off: Vec<String> = compared
        .iter()
        .filter(|c| c.worst() > MODEL_TOLERANCE)
        .map(|c| format!("{} x{}", calibrate::flush_name(c.real.flush), c.real.producers))
        .collect();
    let worst = compared.iter().map(calibrate::Compared::worst).fold(0.0, f64::max);
    if off.is_empty() {
        println!("model within {:.0}% of the real medians in every row (worst {:.0}%)", MODEL_TOLERANCE * 100.0, worst * 100.0);
    } else {
        println!("model beyond {:.0}% in {} (worst {:.0}%)", MODEL_TOLERANCE * 100.0, off.join(", "), worst * 100.0);
    }
    if !passed {
        println!("some model run failed its checks (see its line above)");
    }
    Ok(passed && off.is_empty())
}

fn bench(name: &str, seeds: std::ops::Range<u64>, sweep: Option<&str>, report: Option<&Path>, jobs: usize) -> Result<bool> {
    let mut base = load(name)?;
    if base.topology.cost.is_none() {
        base.topology.cost = Some(scenarios::Cost::default());
    }
    let (parameter, variants) = match sweep {
        None => ("run".to_string(), vec![("base".to_string(), base.clone())]),
        Some(arg) => {
            let (path, values) = parse_sweep(arg)?;
            let variants = values.iter().map(|v| Ok((v.clone(), with_field(&base, &path, v)?))).collect::<Result<Vec<_>>>()?;
            (path, variants)
        }
    };
    // The seeds as the command line gave them, for the repro line.
    let seeds_arg = if seeds.end - seeds.start == 1 { format!("--seed {}", seeds.start) } else { format!("--seeds {}..{}", seeds.start, seeds.end) };
    println!("mqsim bench {} {seeds_arg}{}", base.name, sweep.map(|s| format!(" sweep {s}")).unwrap_or_default());
    let resolved = base.resolve(seeds.start);
    for (path, value) in resolved.options() {
        if path.starts_with("topology.") || path.starts_with("workload.producers") {
            println!("  {path} = {value}");
        }
    }
    let (points, all_passed) = run_points(name, &parameter, &variants, seeds.clone(), jobs)?;
    let per_seed = (seeds.end - seeds.start) as usize;
    // Said with the table, and in the report's preamble.
    let medians = if per_seed > 1 { format!("each figure: the median of {per_seed} seeds ({seeds_arg})") } else { String::new() };
    if !medians.is_empty() {
        println!("\n{medians}");
    }
    let table = reports::bench::table(&parameter, &points);
    println!("\n{table}");
    if let Some(dir) = report {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let command = format!("cargo mqsim bench {name} {seeds_arg}{}", sweep.map(|s| format!(" --sweep {s}")).unwrap_or_default());
        let cost: Vec<String> =
            resolved.options().into_iter().filter(|(p, _)| p.starts_with("topology.cost.")).map(|(p, v)| format!("{p} = {v}")).collect();
        let preamble = format!("{command}{}\n\n{}", if medians.is_empty() { String::new() } else { format!("\n\n{medians}") }, cost.join("\n"));
        let md = format!("# mqsim bench {}\n\n```\n{preamble}\n```\n\n{table}", base.name);
        std::fs::write(dir.join("bench.md"), md)?;
        std::fs::write(dir.join("bench.html"), reports::bench::html(&format!("mqsim bench {}", base.name), &preamble, &parameter, &points))?;
        std::fs::write(dir.join("bench.json"), serde_json::to_string_pretty(&points)?)?;
        println!("report: {}", dir.join("bench.html").display());
    }
    Ok(all_passed)
}
