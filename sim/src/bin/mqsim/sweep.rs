//! Running seeds: one in its own process, a run with its report, a sweep
//! over many seeds and its summary, shrinking a failing schedule.

use crate::input::*;
use anyhow::{anyhow, Context, Result};
use broker::bugs::Bug;
use reports::{RunReport, SweepEntry};
use scenarios::Scenario;
use sim::failure::{Failure, Failures, NONDETERMINISTIC};
use sim::run::{repro, RunOptions, RunOutcome};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// What `sweep --summary` writes and `merge` reads: one entry per seed.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct SweepSummary {
    /// Format version; a summary of another version is refused by name.
    pub(crate) version: u32,
    /// The seed range as given (`A..B`).
    pub(crate) seeds: String,
    /// The shard (`K/N`), if the sweep ran one.
    pub(crate) shard: Option<String>,
    /// Planted bugs switched on.
    pub(crate) bugs: Vec<String>,
    /// One entry per (scenario, seed) run.
    pub(crate) entries: Vec<SweepEntry>,
}

/// The version of [`SweepSummary`] this binary writes and reads.
pub(crate) const SUMMARY_VERSION: u32 = 1;

pub(crate) fn write_summary(path: &Path, summary: &SweepSummary) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(summary)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("summary: {}", path.display());
    Ok(())
}

pub(crate) fn read_summary(path: &Path) -> Result<SweepSummary> {
    let text =
        std::fs::read_to_string(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let summary: SweepSummary = serde_json::from_str(&text)
        .map_err(|e| bad(format!("{}: not a sweep summary: {e}", path.display())))?;
    if summary.version != SUMMARY_VERSION {
        return Err(bad(format!(
            "{}: summary version {}, this mqsim reads {SUMMARY_VERSION}",
            path.display(),
            summary.version
        )));
    }
    Ok(summary)
}

/// The marks a catalogue scenario requires (none for a scenario it lacks).
pub(crate) fn required_marks(list: &[Scenario], name: &str) -> Vec<String> {
    list.iter()
        .find(|s| s.name == name)
        .map(|s| s.expect.reached.clone())
        .unwrap_or_default()
}

/// The reached-marks table of `entries`, each scenario's requirements
/// taken from `list`.
pub(crate) fn reached_rows(entries: &[SweepEntry], list: &[Scenario]) -> Vec<reports::ReachedRow> {
    reports::reached_rows(entries, &sim::recorder::known_marks(), &|name| {
        required_marks(list, name)
    })
}

/// Prints the reached-marks table and a MISSED line per required mark no
/// seed reached; true when none was missed.
pub(crate) fn report_reached(rows: &[reports::ReachedRow]) -> bool {
    println!("reached marks (share of seeds; * required by the scenario):");
    print!("{}", reports::reached_table_markdown(rows));
    let mut ok = true;
    for row in rows.iter().filter(|r| r.missed()) {
        ok = false;
        println!(
            "MISSED {} mark={}: none of {} seeds reached it (expect.reached)",
            row.scenario, row.mark, row.seeds
        );
    }
    ok
}

/// Writes the sweep index pages.
pub(crate) fn write_index(
    dir: &Path,
    entries: &[SweepEntry],
    reached: &[reports::ReachedRow],
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join("index.html"),
        reports::sweep_index_html(entries, reached),
    )?;
    std::fs::write(
        dir.join("index.md"),
        reports::sweep_index_markdown(entries, reached),
    )?;
    println!("sweep index: {}", dir.join("index.html").display());
    Ok(())
}

pub(crate) fn print_verdict(verdict: &checker::verdict::Verdict) {
    for check in &verdict.checks {
        let counts: Vec<String> = check
            .counts
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!(
            "  {:<13} {:<8} {}",
            check.name,
            check.validity.as_str(),
            counts.join(" ")
        );
        for a in check.anomalies.iter().take(3) {
            println!("      {}: {} (events {:?})", a.kind, a.detail, a.event_ids);
        }
    }
}

/// What a seed's child process reports.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct ChildResult {
    pub(crate) digest: String,
    /// Where the seed's wall time went inside its process.
    #[serde(default)]
    pub(crate) timing: sim::run::Timing,
    pub(crate) reached: std::collections::BTreeMap<String, u64>,
    pub(crate) verdict: checker::verdict::Verdict,
    pub(crate) panic: Option<String>,
    pub(crate) sim_ms: u64,
    pub(crate) wall_ms: u64,
}

/// Runs one seed in a child process of this binary. Two simulations in one
/// process do not always replay alike (some state outlives a madsim runtime;
/// a fresh process does replay byte for byte), so every seed gets its own
/// process. The history is read back only when `keep_history`.
pub(crate) fn run_isolated(
    scenario: &Scenario,
    seed: u64,
    options: &RunOptions,
    keep_history: bool,
) -> Result<RunOutcome> {
    use std::io::Write;
    use std::process::{Command as Process, Stdio};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let started = std::time::Instant::now();
    let exe = std::env::current_exe().context("locating the mqsim binary")?;
    let history_path = keep_history.then(|| {
        std::env::temp_dir().join(format!(
            "mqsim-{}-{}.jsonl",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
    });
    let mut cmd = Process::new(exe);
    // A seed's process only grows and then exits: mimalloc need not hand
    // freed pages back to the kernel, which then zeroes them again on the
    // next fault (seed 3 of failover-master-power-loss: 3,900 page faults
    // down to 500). Nor ask for transparent huge pages: the kernel zeroes
    // 2 MiB at each first touch, and the seed's memory is written once
    // (5% of that seed's wall time).
    cmd.env("MIMALLOC_PURGE_DELAY", "-1");
    cmd.env("MIMALLOC_ALLOW_THP", "0");
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
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting a seed process")?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(scenario.to_toml_string().as_bytes())?;
    let output = child
        .wait_with_output()
        .context("waiting for a seed process")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let parsed = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str::<ChildResult>(line).ok());
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
            // What the seed's process cost beyond its run: starting, the
            // scenario and result passing, writing and reading the history.
            timing: sim::run::Timing { process_ms: (wall_ms as f64 - r.wall_ms as f64).max(0.0), ..r.timing },
        },
        None => RunOutcome {
            scenario: scenario.name.clone(),
            seed,
            verdict: checker::verdict::Verdict {
                validity: checker::verdict::Validity::Invalid,
                checks: Vec::new(),
            },
            history,
            digest: "-".into(),
            reached: Default::default(),
            panic: Some(format!(
                "the seed's process died ({}) without a result",
                output.status
            )),
            sim_ms: 0,
            wall_ms,
            timing: sim::run::Timing::default(),
        },
    })
}

pub(crate) fn print_resolved(resolved: &scenarios::Resolved) {
    for (path, value) in resolved.options() {
        println!("  {path} = {value}");
    }
}

pub(crate) fn fail_line(o: &RunOutcome, label: &str, bugs: &[Bug], failures: &Failures) -> String {
    let counts = o.verdict.summary_counts();
    let panic = o
        .panic
        .as_deref()
        .map(|p| format!(" panic={:?}", p.lines().next().unwrap_or("")))
        .unwrap_or_default();
    format!(
        "FAIL {} seed={} class={} {counts}{panic} digest={} repro: {}",
        o.scenario,
        o.seed,
        failures.names(),
        o.digest,
        repro(label, o.seed, bugs)
    )
}

pub(crate) fn report_of(
    o: &RunOutcome,
    label: &str,
    resolved: &scenarios::Resolved,
    bugs: &[Bug],
) -> RunReport {
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

pub(crate) fn run_one(
    scenario: &Scenario,
    label: &str,
    seed: u64,
    options: RunOptions,
    report: Option<&Path>,
    check_determinism: bool,
) -> Result<Failures> {
    println!("mqsim run {} seed={seed}", scenario.name);
    let resolved = scenario.resolve(seed);
    print_resolved(&resolved);
    let outcome = run_isolated(scenario, seed, &options, true)?;
    print_verdict(&outcome.verdict);
    if !outcome.reached.is_empty() {
        println!(
            "  reached: {}",
            outcome
                .reached
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(" ")
        );
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
            println!(
                "  determinism: DIFFERENT digests {} and {}",
                outcome.digest, again.digest
            );
            let first = outcome
                .history
                .iter()
                .zip(&again.history)
                .position(|(a, b)| a != b);
            if let Some(i) = first.or(Some(outcome.history.len().min(again.history.len()))) {
                let show = |h: &[checker::history::Event]| {
                    h.get(i)
                        .map(checker::history::to_json_line)
                        .unwrap_or_else(|| "(end of history)".into())
                };
                println!(
                    "  first divergence at event {}:\n    run 1: {}\n    run 2: {}",
                    i + 1,
                    show(&outcome.history),
                    show(&again.history)
                );
            }
            failures.add(Failure::Nondeterministic);
        }
    }
    if let Some(dir) = report {
        reports::write_run(dir, &report_of(&outcome, label, &resolved, &options.bugs))
            .with_context(|| format!("writing report to {}", dir.display()))?;
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
pub(crate) struct SeedSummary {
    pub(crate) seed: u64,
    pub(crate) failures: Failures,
    pub(crate) entry: SweepEntry,
    pub(crate) sim_ms: u64,
    pub(crate) timing: sim::run::Timing,
}

/// How a sweep runs its seeds and what it prints.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SweepMode {
    /// Run each seed twice and compare digests.
    pub(crate) check_determinism: bool,
    /// Stop handing out seeds once one fails, and print no summary line.
    pub(crate) stop_at_first: bool,
    /// Print where the seeds' wall time went.
    pub(crate) timing: bool,
}

/// Sweeps `seeds` of one scenario on `jobs` threads. With `stop_at_first`,
/// stops handing out seeds once one fails.
pub(crate) fn sweep(
    scenario: &Scenario,
    label: &str,
    seeds: &[u64],
    jobs: usize,
    options: &RunOptions,
    report: Option<&Path>,
    mode: SweepMode,
) -> Result<(Failures, Vec<SweepEntry>)> {
    let SweepMode { check_determinism, stop_at_first, timing } = mode;
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
                let summary = sweep_seed(
                    scenario,
                    label,
                    seed,
                    options,
                    report,
                    check_determinism,
                    stop_at_first,
                );
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
    let mut results = results
        .into_inner()
        .expect("results")
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
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
    if timing {
        println!("{}", timing_line(&scenario.name, &results));
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
pub(crate) fn sweep_seed(
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
    let deterministic = !check_determinism
        || run_isolated(scenario, seed, options, false)?.digest == outcome.digest;
    let mut failed_checks = outcome.failed_checks();
    if !deterministic {
        failed_checks.push(NONDETERMINISTIC.to_string());
    }
    let failures = Failures::of_checks(failed_checks.iter().map(String::as_str));
    let failed = !failures.passed();
    if failed && !quiet {
        println!("{}", fail_line(&outcome, label, &options.bugs, &failures));
        if !deterministic {
            println!(
                "NONDETERMINISTIC {} seed={seed}: the same seed gave two digests",
                scenario.name
            );
        }
    }
    let report_dir = match report {
        Some(dir) if failed => {
            let sub = format!("{}-{seed}", outcome.scenario);
            reports::write_run(
                &dir.join(&sub),
                &report_of(&outcome, label, &resolved, &options.bugs),
            )
            .with_context(|| format!("writing report to {}", dir.join(&sub).display()))?;
            Some(sub)
        }
        _ => None,
    };
    let entry = SweepEntry {
        scenario: outcome.scenario.clone(),
        seed,
        validity: if deterministic {
            outcome.verdict.validity
        } else {
            checker::verdict::Validity::Invalid
        },
        digest: outcome.digest.clone(),
        counts: outcome.verdict.summary_counts().to_string(),
        repro: repro(label, seed, &options.bugs),
        report_dir,
        reached: outcome.reached.keys().cloned().collect(),
        sim_ms: outcome.sim_ms,
        invalid_checks: failed_checks,
        figures: reports::figures_of(&outcome.verdict),
    };
    Ok(SeedSummary {
        seed,
        failures,
        entry,
        sim_ms: outcome.sim_ms,
        timing: outcome.timing,
    })
}

/// Where a scenario's seeds spent their wall time, per seed on average,
/// and what the simulation did per wall second.
fn timing_line(name: &str, results: &[SeedSummary]) -> String {
    let n = results.len().max(1) as f64;
    let sum = |f: fn(&sim::run::Timing) -> f64| results.iter().map(|r| f(&r.timing)).sum::<f64>();
    let (setup, simulation, drain) = (sum(|t| t.setup_ms), sum(|t| t.simulation_ms), sum(|t| t.drain_ms));
    let (check, digest, process) = (sum(|t| t.check_ms), sum(|t| t.digest_ms), sum(|t| t.process_ms));
    let (events, packets, moved) = (sum(|t| t.events as f64), sum(|t| t.messages as f64), sum(|t| t.moved as f64));
    let simulated_s = (setup + simulation + drain) / 1000.0;
    let sim_s: f64 = results.iter().map(|r| r.sim_ms as f64 / 1000.0).sum();
    let mut requests: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for r in results {
        for (kind, count) in &r.timing.requests {
            *requests.entry(kind).or_default() += count;
        }
    }
    let total: u64 = requests.values().sum();
    let mut by_count: Vec<(&str, u64)> = requests.into_iter().collect();
    by_count.sort_by_key(|(kind, count)| (std::cmp::Reverse(*count), *kind));
    let kinds: Vec<String> = by_count.iter().take(8).map(|(kind, count)| format!("{kind} {:.0}", *count as f64 / n)).collect();
    format!(
        "timing {name}: per seed, wall ms: setup {:.0} | simulation {:.0} | drain {:.0} | check {:.0} | digest {:.0} | process {:.0}; \
         while simulating: {:.0} simulated s per wall s, {:.0} events/s, {:.0} packets/s, {:.1} µs of wall time per packet, \
         {:.1} µs per message moved (acknowledged sends plus deliveries); \
         requests per seed {:.0} ({:.1} µs of wall time each), the most: {}",
        setup / n,
        simulation / n,
        drain / n,
        check / n,
        digest / n,
        process / n,
        sim_s / simulated_s.max(1e-9),
        events / simulated_s.max(1e-9),
        packets / simulated_s.max(1e-9),
        simulated_s * 1e6 / packets.max(1.0),
        simulated_s * 1e6 / moved.max(1.0),
        total as f64 / n,
        simulated_s * 1e6 / (total as f64).max(1.0),
        kinds.join(", "),
    )
}

pub(crate) fn shrink(
    scenario: &Scenario,
    label: &str,
    seed: u64,
    bugs: Vec<Bug>,
    out: Option<&Path>,
) -> Result<Failures> {
    let options = RunOptions {
        trace: false,
        bugs: bugs.clone(),
        ..RunOptions::default()
    };
    let resolved = scenario.resolve(seed);
    let first = run_isolated(scenario, seed, &options, false)?;
    if first.passed() {
        println!("seed {seed} of {} passes: nothing to shrink", scenario.name);
        return Ok(Failures::none());
    }
    eprintln!(
        "shrinking {} faults of {} seed={seed} ({})",
        resolved.schedule.len(),
        scenario.name,
        fail_line(&first, label, &bugs, &first.failures())
    );
    let (minimal, runs) = sim::shrink::ddmin(&resolved.schedule, |candidate| {
        let reduced = scenario.with_schedule(candidate);
        run_isolated(&reduced, seed, &options, false)
            .map(|o| !o.passed())
            .unwrap_or(false)
    });
    let mut shrunk = scenario.with_schedule(&minimal);
    // A scenario's name is its file's stem, so the printed file loads back.
    shrunk.name = match out.and_then(|p| p.file_stem()).and_then(|s| s.to_str()) {
        Some(stem) => stem.to_string(),
        None => format!("{}-shrunk", scenario.name),
    };
    let toml = shrunk.to_toml_string();
    eprintln!(
        "{} -> {} faults in {runs} runs",
        resolved.schedule.len(),
        minimal.len()
    );
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
pub(crate) struct Progress<'a> {
    pub(crate) scenario: &'a str,
    pub(crate) total: usize,
    pub(crate) started: std::time::Instant,
    pub(crate) done: AtomicUsize,
    pub(crate) failed: AtomicUsize,
    pub(crate) shown: bool,
}

impl<'a> Progress<'a> {
    fn new(scenario: &'a str, total: usize, wanted: bool) -> Progress<'a> {
        use std::io::IsTerminal;
        let shown = wanted && std::io::stderr().is_terminal();
        Progress {
            scenario,
            total,
            started: std::time::Instant::now(),
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            shown,
        }
    }

    fn seed_done(&self, failed: bool) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let failures = self
            .failed
            .fetch_add(usize::from(failed), Ordering::Relaxed)
            + usize::from(failed);
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
