//! `mqsim`: run the scenario catalogue under the simulator.
//!
//! Exit codes: 0 every expected invariant held, 2 bad input, and one code
//! per class of failure (safety 1, liveness 3, a determinism mismatch 4, a
//! required mark missed 5, a crash of the harness 6: `sim::failure`).

mod bench;
mod bugs;

/// mimalloc instead of glibc's malloc: the simulation allocates and frees
/// small objects at a high rate (frames, timers, task wakers, history
/// strings), where glibc spent about a sixth of a seed's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;
mod input;
mod sweep;

use anyhow::{bail, Context, Result};
use bench::{bench, calibrate};
use broker::bugs::Bug;
use clap::Parser;
use cli::{Cli, Command};
use input::{
    bad, catalogue, jobs, label_of, load, parse_bugs, parse_seeds, parse_shard, shard_seeds,
    BadInput,
};
use reports::SweepEntry;
use scenarios::Scenario;
use sim::failure::{Failure, Failures};
use sim::run::{run_seed, RunOptions};
use std::process::ExitCode;
use sweep::{
    print_verdict, reached_rows, read_summary, report_reached, run_one, shrink, sweep, write_index,
    write_summary, ChildResult, SweepMode, SweepSummary, SUMMARY_VERSION,
};

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

fn execute(cli: Cli) -> Result<Failures> {
    let needs_simulator = !matches!(
        cli.command,
        Command::List { .. } | Command::Merge { .. } | Command::Check { .. }
    );
    if !cfg!(madsim) && needs_simulator {
        bail!(BadInput(
            "this mqsim was built without the simulator; run it as `cargo mqsim ...`".into()
        ));
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
        Command::Run {
            scenario: arg,
            seed,
            report,
            trace,
            bugs,
            check_determinism,
        } => {
            let scenario = load(&arg)?;
            let bugs = parse_bugs(&bugs)?;
            let label = label_of(&arg, &scenario);
            run_one(
                &scenario,
                &label,
                seed,
                RunOptions { trace, bugs, ..RunOptions::default() },
                report.as_deref(),
                check_determinism,
            )
        }
        Command::Sweep {
            scenario: arg,
            seeds: range_text,
            jobs: j,
            bugs,
            report,
            check_determinism,
            shard,
            summary,
            timing,
        } => {
            let list = if arg == "all" {
                catalogue()?
            } else {
                vec![load(&arg)?]
            };
            let seeds = shard_seeds(
                parse_seeds(&range_text)?,
                shard.as_deref().map(parse_shard).transpose()?,
            );
            let bug_names = bugs.clone();
            let bugs = parse_bugs(&bugs)?;
            let options = RunOptions { trace: false, bugs, ..RunOptions::default() };
            let mut failures = Failures::none();
            let mut entries = Vec::new();
            for s in &list {
                let label = if arg == "all" {
                    s.name.clone()
                } else {
                    label_of(&arg, s)
                };
                let (failed, mut e) = sweep(
                    s,
                    &label,
                    &seeds,
                    jobs(j),
                    &options,
                    report.as_deref(),
                    SweepMode { check_determinism, stop_at_first: false, timing },
                )?;
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
                let summary = SweepSummary {
                    version: SUMMARY_VERSION,
                    seeds: range_text,
                    shard,
                    bugs: bug_names,
                    entries,
                };
                write_summary(path, &summary)?;
                entries = summary.entries;
            }
            let failed = entries
                .iter()
                .filter(|e| e.validity != checker::verdict::Validity::Valid)
                .count();
            println!("sweep: {} passed, {failed} failed", entries.len() - failed);
            Ok(failures)
        }
        Command::Merge {
            summaries,
            summary,
            report,
        } => {
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
            let position = |name: &str| {
                list.iter()
                    .position(|s| s.name == name)
                    .unwrap_or(usize::MAX)
            };
            merged.entries.sort_by(|a, b| {
                (position(&a.scenario), &a.scenario, a.seed).cmp(&(
                    position(&b.scenario),
                    &b.scenario,
                    b.seed,
                ))
            });
            if let Some(pair) = merged
                .entries
                .windows(2)
                .find(|w| (&w[0].scenario, w[0].seed) == (&w[1].scenario, w[1].seed))
            {
                return Err(bad(format!(
                    "{} seed {} is in two summaries: do the shards overlap?",
                    pair[0].scenario, pair[0].seed
                )));
            }
            let mut failures = Failures::none();
            let mut scenarios: Vec<&str> =
                merged.entries.iter().map(|e| e.scenario.as_str()).collect();
            scenarios.dedup();
            for name in scenarios {
                let runs: Vec<&SweepEntry> = merged
                    .entries
                    .iter()
                    .filter(|e| e.scenario == name)
                    .collect();
                let failed: Vec<&&SweepEntry> = runs
                    .iter()
                    .filter(|e| e.validity != checker::verdict::Validity::Valid)
                    .collect();
                for e in &failed {
                    let classes = entry_failures(e);
                    failures.merge(&classes);
                    println!(
                        "FAIL {} seed={} class={} {} digest={} repro: {}",
                        e.scenario,
                        e.seed,
                        classes.names(),
                        e.counts,
                        e.digest,
                        e.repro
                    );
                }
                println!(
                    "{} {name} seeds={} failed={}",
                    if failed.is_empty() { "PASS" } else { "FAIL" },
                    runs.len(),
                    failed.len()
                );
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
            let failed = merged
                .entries
                .iter()
                .filter(|e| e.validity != checker::verdict::Validity::Valid)
                .count();
            println!(
                "merge: {} passed, {failed} failed",
                merged.entries.len() - failed
            );
            Ok(failures)
        }
        Command::Check { history, scenario } => {
            let scenario = load(&scenario)?;
            let text = std::fs::read_to_string(&history)
                .map_err(|e| bad(format!("{}: {e}", history.display())))?;
            let events = checker::history::parse_jsonl(&text)
                .map_err(|e| bad(format!("{}: {e}", history.display())))?;
            let verdict = checker::check_all(&events, &sim::run::check_config(&scenario, &events));
            println!(
                "mqsim check {} --scenario {}",
                history.display(),
                scenario.name
            );
            print_verdict(&verdict);
            let digest = checker::history::digest_hex(&events);
            let counts = verdict.summary_counts();
            let failures = Failures::of_checks(
                verdict
                    .checks
                    .iter()
                    .filter(|c| c.validity != checker::Validity::Valid)
                    .map(|c| c.name.as_str()),
            );
            let word = if failures.passed() {
                "PASS".to_string()
            } else {
                format!("FAIL class={}", failures.names())
            };
            println!(
                "{word} {} history={} events={} {counts} digest={digest}",
                scenario.name,
                history.display(),
                events.len()
            );
            Ok(failures)
        }
        Command::Shrink {
            scenario: arg,
            seed,
            bugs,
            out,
        } => {
            let scenario = load(&arg)?;
            let bugs = parse_bugs(&bugs)?;
            shrink(
                &scenario,
                &label_of(&arg, &scenario),
                seed,
                bugs,
                out.as_deref(),
            )
        }
        Command::Bench {
            scenario,
            seed,
            seeds,
            sweep,
            report,
            jobs: j,
        } => {
            let seeds = match &seeds {
                Some(range) => parse_seeds(range)?,
                None => seed..seed + 1,
            };
            Ok(safety_unless(bench(
                &scenario,
                seeds,
                sweep.as_deref(),
                report.as_deref(),
                jobs(j),
            )?))
        }
        Command::Calibrate {
            runs,
            check,
            seeds,
            jobs: j,
        } => Ok(safety_unless(calibrate(
            &runs,
            check.as_deref(),
            parse_seeds(&seeds)?,
            jobs(j),
        )?)),
        Command::Seed {
            seed,
            bugs,
            trace,
            history,
        } => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
            let scenario =
                Scenario::from_toml_str(&text, "<stdin>").map_err(|e| bad(e.to_string()))?;
            let bugs = parse_bugs(&bugs)?;
            // This process ends with the seed: nothing it built need be freed.
            let options = RunOptions { trace, bugs, leak_world: true };
            let mut outcome = run_seed(&scenario.resolve(seed), &options);
            if let Some(path) = history {
                std::fs::write(&path, checker::history::to_jsonl(&outcome.history))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            std::mem::forget(std::mem::take(&mut outcome.history));
            let result = ChildResult {
                digest: outcome.digest,
                reached: outcome.reached,
                verdict: outcome.verdict,
                panic: outcome.panic,
                sim_ms: outcome.sim_ms,
                wall_ms: outcome.wall_ms,
                timing: outcome.timing,
            };
            println!("{}", serde_json::to_string(&result)?);
            Ok(Failures::none())
        }
        Command::Bugs { seeds, jobs: j } => bugs::prove(&seeds, j),
    }
}

/// No failure when `ok`; else exit 1 (a planted bug missed, a bench run
/// that failed its checks, a model outside its tolerance).
pub(crate) fn safety_unless(ok: bool) -> Failures {
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
