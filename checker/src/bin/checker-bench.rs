//! Measures how long [`checker::check_all`] takes on synthetic histories of
//! growing size, so that a reader sees whether checking stays linear.
//!
//! Usage: `checker-bench [--events N] [--seed S]`. Without `--events` it
//! runs 125k, 250k, 500k and 1M events and prints the ratio of ns/event at
//! the largest size over the smallest (about 1 when linear; n log n makes it
//! a little more). It exits 1 if a verdict is not valid, since a benchmark of
//! a failing check measures the wrong thing, and 2 on bad arguments.

use checker::{synth, Invariant};
use std::process::ExitCode;
use std::time::Instant;

/// Sizes measured when `--events` is not given.
const SIZES: [usize; 4] = [125_000, 250_000, 500_000, 1_000_000];

/// What one size measured.
struct Measurement {
    events: usize,
    seconds: f64,
    /// Per invariant, in verdict order: its name and seconds, each check
    /// timed again alone so that a superlinear one stands out.
    per_check: Vec<(&'static str, f64)>,
}

impl Measurement {
    /// `seconds` spread over this size's events.
    fn ns_per_event(&self, seconds: f64) -> f64 {
        seconds * 1e9 / self.events.max(1) as f64
    }
}

fn main() -> ExitCode {
    let (sizes, seed) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("checker-bench: {message}\nusage: checker-bench [--events N] [--seed S]");
            return ExitCode::from(2);
        }
    };
    println!("checker-bench seed={seed} sizes={sizes:?}");

    let mut measurements = Vec::new();
    println!(
        "{:>10}  {:>9}  {:>12}  {:>9}",
        "events", "seconds", "events/s", "ns/event"
    );
    for &target in &sizes {
        let (history, cfg) = synth::history(target, seed);
        let started = Instant::now();
        let verdict = checker::check_all(&history, &cfg);
        let seconds = started.elapsed().as_secs_f64();
        if !verdict.is_valid() {
            eprintln!(
                "checker-bench: the synthetic history of {} events is {} ({}); seed {seed}",
                history.len(),
                verdict.validity,
                verdict.summary_counts()
            );
            for check in verdict.checks.iter().filter(|c| !c.anomalies.is_empty()) {
                eprintln!("  {}: {}", check.name, check.anomalies[0].detail);
            }
            return ExitCode::from(1);
        }
        let per_check = Invariant::ALL
            .iter()
            .map(|invariant| {
                let started = Instant::now();
                let result = invariant.check(&history, &cfg);
                std::hint::black_box(result);
                (invariant.name(), started.elapsed().as_secs_f64())
            })
            .collect();
        let measurement = Measurement {
            events: history.len(),
            seconds,
            per_check,
        };
        println!(
            "{:>10}  {:>9.3}  {:>12.0}  {:>9.0}",
            measurement.events,
            seconds,
            measurement.events as f64 / seconds.max(1e-9),
            measurement.ns_per_event(seconds)
        );
        measurements.push(measurement);
    }

    if let (Some(first), Some(last)) = (measurements.first(), measurements.last()) {
        if measurements.len() > 1 {
            println!(
                "ns/event at {} over {}: {:.2}",
                last.events,
                first.events,
                last.ns_per_event(last.seconds) / first.ns_per_event(first.seconds)
            );
        }
        println!("\nper check, ns/event:");
        print!("{:>10}", "events");
        for (name, _) in &first.per_check {
            print!("  {name:>12}");
        }
        println!();
        for measurement in &measurements {
            print!("{:>10}", measurement.events);
            for (_, seconds) in &measurement.per_check {
                print!("  {:>12.0}", measurement.ns_per_event(*seconds));
            }
            println!();
        }
    }
    ExitCode::SUCCESS
}

/// The sizes to measure and the seed, from the command line.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(Vec<usize>, u64), String> {
    let mut sizes = SIZES.to_vec();
    let mut seed = 1;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value"))
                .and_then(|v| v.parse::<u64>().map_err(|e| format!("{name} {v}: {e}")))
        };
        match arg.as_str() {
            "--events" => {
                let events = value("--events")?;
                if events == 0 {
                    return Err("--events must be positive".into());
                }
                sizes = vec![events as usize];
            }
            "--seed" => seed = value("--seed")?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok((sizes, seed))
}
