//! Capacity experiments: `bench` over variants and seeds, and `calibrate`.

use crate::input::*;
use crate::sweep::{fail_line, run_isolated};
use anyhow::{Context, Result};
use scenarios::Scenario;
use sim::run::RunOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Splits `path=v1,v2,...`.
pub(crate) fn parse_sweep(arg: &str) -> Result<(String, Vec<String>)> {
    let (path, values) = arg
        .split_once('=')
        .ok_or_else(|| bad(format!("--sweep {arg:?}: expected path=v1,v2,...")))?;
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
    let values: Vec<String> = values_out
        .into_iter()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    if path.trim().is_empty() || values.is_empty() {
        return Err(bad(format!("--sweep {arg:?}: expected path=v1,v2,...")));
    }
    Ok((path.trim().to_string(), values))
}

/// `base` with the field at `path` (dotted, with `[i]` for array items, as
/// `run` prints the resolved options) set to `value`, read as a TOML value
/// (a bare word is a string), and validated again.
pub(crate) fn with_field(base: &Scenario, path: &str, value: &str) -> Result<Scenario> {
    let mut doc: toml::Value =
        toml::from_str(&base.to_toml_string()).context("the scenario as TOML")?;
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
                (
                    name,
                    Some(index.ok_or_else(|| {
                        bad(format!(
                            "--sweep: {segment:?} in {path:?}: expected name[index]"
                        ))
                    })?),
                )
            }
            None => (*segment, None),
        };
        let last = i + 1 == segments.len() && index.is_none();
        let table = at
            .as_table_mut()
            .ok_or_else(|| bad(format!("--sweep: {path:?}: {name:?} is not inside a table")))?;
        if last {
            table.insert(name.to_string(), parsed);
            break;
        }
        at = table
            .get_mut(name)
            .ok_or_else(|| bad(format!("--sweep: {path:?}: the scenario has no {name:?}")))?;
        if let Some(index) = index {
            let items = at
                .as_array_mut()
                .ok_or_else(|| bad(format!("--sweep: {path:?}: {name:?} is not a list")))?;
            let len = items.len();
            at = items
                .get_mut(index)
                .ok_or_else(|| bad(format!("--sweep: {path:?}: {name:?} has {len} items")))?;
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
pub(crate) fn offered_per_s(scenario: &Scenario) -> f64 {
    scenario
        .workload
        .producers
        .iter()
        .map(|p| f64::from(p.count) * p.rate_per_s)
        .sum()
}

/// Runs every variant once per seed, `jobs` at once, printing a line per
/// run; each variant's figures are the median over its seeds. Also whether
/// every run's checks passed.
pub(crate) fn run_points(
    name: &str,
    parameter: &str,
    variants: &[(String, Scenario)],
    seeds: std::ops::Range<u64>,
    jobs: usize,
) -> Result<(Vec<reports::bench::Point>, bool)> {
    // Every point with every seed, run in any order; each point's figures
    // are then its seeds' median.
    let runs: Vec<(usize, u64)> = (0..variants.len())
        .flat_map(|i| seeds.clone().map(move |seed| (i, seed)))
        .collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<(reports::bench::Figures, bool)>>> =
        Mutex::new(vec![None; runs.len()]);
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
    let results: Vec<Option<(reports::bench::Figures, bool)>> =
        results.into_inner().expect("results");
    let all_passed = results
        .iter()
        .all(|r| r.as_ref().is_some_and(|(_, passed)| *passed));
    let per_seed = (seeds.end - seeds.start) as usize;
    let points: Vec<reports::bench::Point> = variants
        .iter()
        .enumerate()
        .map(|(i, (value, _))| {
            let runs: Vec<reports::bench::Figures> = results[i * per_seed..(i + 1) * per_seed]
                .iter()
                .flatten()
                .map(|(f, _)| f.clone())
                .collect();
            reports::bench::Point {
                value: value.clone(),
                figures: reports::bench::Figures::median(&runs),
            }
        })
        .collect();
    Ok((points, all_passed))
}

/// The largest difference from the real benchmark the model may show, in
/// throughput and in p99, for the validation to hold.
pub(crate) const MODEL_TOLERANCE: f64 = 0.25;

pub(crate) fn calibrate(
    files: &[PathBuf],
    check: Option<&str>,
    seeds: std::ops::Range<u64>,
    jobs: usize,
) -> Result<bool> {
    use sim::calibrate;
    let mut text = String::new();
    for file in files {
        let read =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        text.push_str(&read);
        text.push('\n');
    }
    let runs = calibrate::parse(&text).map_err(|e| {
        bad(format!(
            "{}: {e}",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let medians = calibrate::medians(&runs.rows);
    let base = check
        .map(|name| load(name).map(|scenario| (name, scenario)))
        .transpose()?;
    let base_cost = base
        .as_ref()
        .and_then(|(_, b)| b.topology.cost.clone())
        .unwrap_or_default();
    let fit = calibrate::fit(&runs, &base_cost).map_err(bad)?;
    println!(
        "mqsim calibrate: {} rows, {} medians, {} B bodies{}",
        runs.rows.len(),
        medians.len(),
        runs.body(),
        if runs.body_bytes.is_none() {
            " (not stated; assumed)"
        } else {
            ""
        }
    );
    for line in &fit.derivation {
        println!("  {line}");
    }
    println!("\n{}\n", calibrate::cost_block(&fit.cost));
    let Some((name, mut base)) = base else {
        return Ok(true);
    };
    base.topology.cost = Some(fit.cost.clone());
    let variants = medians
        .iter()
        .map(|m| {
            let flush = if m.flush == scenarios::FlushMode::Sync {
                "sync"
            } else {
                "async"
            };
            let scenario = with_field(
                &with_field(&base, "topology.flush", flush)?,
                "workload.producers[0].count",
                &m.producers.to_string(),
            )?;
            Ok((
                format!("{} x{}", calibrate::flush_name(m.flush), m.producers),
                scenario,
            ))
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
        .map(|c| {
            format!(
                "{} x{}",
                calibrate::flush_name(c.real.flush),
                c.real.producers
            )
        })
        .collect();
    let worst = compared
        .iter()
        .map(calibrate::Compared::worst)
        .fold(0.0, f64::max);
    if off.is_empty() {
        println!(
            "model within {:.0}% of the real medians in every row (worst {:.0}%)",
            MODEL_TOLERANCE * 100.0,
            worst * 100.0
        );
    } else {
        println!(
            "model beyond {:.0}% in {} (worst {:.0}%)",
            MODEL_TOLERANCE * 100.0,
            off.join(", "),
            worst * 100.0
        );
    }
    if !passed {
        println!("some model run failed its checks (see its line above)");
    }
    Ok(passed && off.is_empty())
}

pub(crate) fn bench(
    name: &str,
    seeds: std::ops::Range<u64>,
    sweep: Option<&str>,
    report: Option<&Path>,
    jobs: usize,
) -> Result<bool> {
    let mut base = load(name)?;
    if base.topology.cost.is_none() {
        base.topology.cost = Some(scenarios::Cost::default());
    }
    let (parameter, variants) = match sweep {
        None => ("run".to_string(), vec![("base".to_string(), base.clone())]),
        Some(arg) => {
            let (path, values) = parse_sweep(arg)?;
            let variants = values
                .iter()
                .map(|v| Ok((v.clone(), with_field(&base, &path, v)?)))
                .collect::<Result<Vec<_>>>()?;
            (path, variants)
        }
    };
    // The seeds as the command line gave them, for the repro line.
    let seeds_arg = if seeds.end - seeds.start == 1 {
        format!("--seed {}", seeds.start)
    } else {
        format!("--seeds {}..{}", seeds.start, seeds.end)
    };
    println!(
        "mqsim bench {} {seeds_arg}{}",
        base.name,
        sweep.map(|s| format!(" sweep {s}")).unwrap_or_default()
    );
    let resolved = base.resolve(seeds.start);
    for (path, value) in resolved.options() {
        if path.starts_with("topology.") || path.starts_with("workload.producers") {
            println!("  {path} = {value}");
        }
    }
    let (points, all_passed) = run_points(name, &parameter, &variants, seeds.clone(), jobs)?;
    let per_seed = (seeds.end - seeds.start) as usize;
    // Said with the table, and in the report's preamble.
    let medians = if per_seed > 1 {
        format!("each figure: the median of {per_seed} seeds ({seeds_arg})")
    } else {
        String::new()
    };
    if !medians.is_empty() {
        println!("\n{medians}");
    }
    let table = reports::bench::table(&parameter, &points);
    println!("\n{table}");
    if let Some(dir) = report {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let command = format!(
            "cargo mqsim bench {name} {seeds_arg}{}",
            sweep.map(|s| format!(" --sweep {s}")).unwrap_or_default()
        );
        let cost: Vec<String> = resolved
            .options()
            .into_iter()
            .filter(|(p, _)| p.starts_with("topology.cost."))
            .map(|(p, v)| format!("{p} = {v}"))
            .collect();
        let preamble = format!(
            "{command}{}\n\n{}",
            if medians.is_empty() {
                String::new()
            } else {
                format!("\n\n{medians}")
            },
            cost.join("\n")
        );
        let md = format!(
            "# mqsim bench {}\n\n```\n{preamble}\n```\n\n{table}",
            base.name
        );
        std::fs::write(dir.join("bench.md"), md)?;
        std::fs::write(
            dir.join("bench.html"),
            reports::bench::html(
                &format!("mqsim bench {}", base.name),
                &preamble,
                &parameter,
                &points,
            ),
        )?;
        std::fs::write(
            dir.join("bench.json"),
            serde_json::to_string_pretty(&points)?,
        )?;
        println!("report: {}", dir.join("bench.html").display());
    }
    Ok(all_passed)
}
