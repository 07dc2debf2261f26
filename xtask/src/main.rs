//! `cargo xtask <command>`: the project's commands with the right flags, so
//! nobody types RUSTFLAGS or target directories.
//!
//! - `cargo xtask test`: every test of both builds: the real one
//!   (`cargo test --workspace`) and the simulation one (`--cfg madsim`, in
//!   `target/sim`).
//! - `cargo mqsim ...` (= `cargo xtask mqsim ...`): the simulator's command
//!   line, in release, with the planted bugs compiled in (off unless `--bug`).
//! - `cargo xtask bench ...`: the real-mode broker benchmark, in release.
//! - `cargo xtask bench-store ...`: the store with 10 M messages written,
//!   reopened in a fresh process: recovery time and resident memory.
//! - `cargo xtask bench-memory ...`: the broker process's memory under ten
//!   times its capacity of sends and under a 10 M-message backlog.
//! - `cargo xtask bench-checker ...`: the checker's speed on generated
//!   histories up to 1 M events, in release.
//! - `cargo xtask fuzz --cases N [--seed S]`: the broker's whole request
//!   path fuzzed over TCP against a real store, in release.
//! - `cargo xtask profile SCENARIO --seed N`: one seed under `perf`
//!   (DWARF call graphs; release builds carry debug info): the hottest
//!   functions by their own time with their callers, and by the time spent
//!   under them.
//! - `cargo xtask ci`: what `.ci/run` runs: the tests, a sweep of every
//!   scenario in two shards joined by `merge`, and the proof that every
//!   planted bug is caught.

use std::process::{Command, ExitCode};

const SIM_FLAGS: &str = "--cfg madsim";
const SIM_TARGET_DIR: &str = "target/sim";

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn sim_cargo() -> Command {
    let mut cmd = cargo();
    cmd.env("RUSTFLAGS", SIM_FLAGS).env("CARGO_TARGET_DIR", SIM_TARGET_DIR);
    cmd
}

fn run(mut cmd: Command) -> Result<(), ExitCode> {
    eprintln!("xtask: {cmd:?}");
    match cmd.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(ExitCode::from(status.code().unwrap_or(1).clamp(1, 255) as u8)),
        Err(e) => {
            eprintln!("xtask: cannot run cargo: {e}");
            Err(ExitCode::from(2))
        }
    }
}

fn test(extra: &[String]) -> Result<(), ExitCode> {
    let mut real = cargo();
    real.args(["test", "--workspace"]).args(extra);
    run(real)?;
    let mut sim = sim_cargo();
    sim.args(["test", "-p", "sim", "--features", "planted-bugs"]).args(extra);
    run(sim)
}

fn mqsim(args: &[String]) -> Result<(), ExitCode> {
    let mut cmd = sim_cargo();
    cmd.args(["run", "--quiet", "--release", "-p", "sim", "--features", "planted-bugs", "--bin", "mqsim", "--"]).args(args);
    run(cmd)
}

/// Profiles one seed: `perf record` of `mqsim run SCENARIO --seed N`, then
/// three views of it.
fn profile(args: &[String]) -> Result<(), ExitCode> {
    let (scenario, seed) = match args {
        [scenario, flag, seed] if flag == "--seed" && seed.parse::<u64>().is_ok() => (scenario, seed),
        _ => {
            eprintln!("usage: cargo xtask profile SCENARIO --seed N");
            return Err(ExitCode::from(2));
        }
    };
    if Command::new("perf").arg("--version").output().map_or(true, |o| !o.status.success()) {
        eprintln!("xtask: `perf` is not installed (Debian: apt-get install linux-perf)");
        return Err(ExitCode::from(2));
    }
    let mut build = sim_cargo();
    build.args(["build", "--quiet", "--release", "-p", "sim", "--features", "planted-bugs", "--bin", "mqsim"]);
    run(build)?;
    std::fs::create_dir_all("target/profile").map_err(|e| {
        eprintln!("xtask: target/profile: {e}");
        ExitCode::from(2)
    })?;
    let data = format!("target/profile/{scenario}-{seed}.data");
    let mut record = Command::new("perf");
    record.args(["record", "--quiet", "-F", "999", "--call-graph", "dwarf,16384", "-o", &data, "--"]);
    record.arg(format!("{SIM_TARGET_DIR}/release/mqsim")).args(["run", scenario, "--seed", seed]);
    record.stdout(std::process::Stdio::null());
    run(record)?;
    let report = |options: &[&str]| -> Result<String, ExitCode> {
        let mut cmd = Command::new("perf");
        cmd.args(["report", "--stdio", "--quiet", "-i", &data, "--sort", "dso,symbol"]).args(options);
        let out = cmd.output().map_err(|e| {
            eprintln!("xtask: perf report: {e}");
            ExitCode::from(2)
        })?;
        // perf pads its columns far past the symbol: trim each line.
        Ok(String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim_end().trim_end_matches(['-', ' ']).to_string()).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("\n"))
    };
    // Frames of the runtime's plumbing (threads, panics, closures' shims)
    // say nothing of where the work goes.
    let plumbing = |line: &str| {
        ["std::", "core::", "alloc::", "<core::", "<alloc::", "<std::", "[unknown]", "_start", "main", "__libc_start", "start_thread"]
            .iter()
            .any(|p| line.split("] ").nth(1).is_some_and(|symbol| symbol.trim_start().starts_with(p)))
    };
    println!("== own time: the hottest functions (% of samples)");
    println!("{}", report(&["--no-children", "-g", "none", "--percent-limit", "1"])?);
    println!("== time under each function, itself and its callees (% of samples; runtime plumbing left out)");
    let inclusive = report(&["--children", "-g", "none", "--percent-limit", "3"])?;
    println!("{}", inclusive.lines().filter(|l| !plumbing(l)).take(40).collect::<Vec<_>>().join("\n"));
    println!("== the hottest functions and the chains that call them");
    let graph = report(&["--no-children", "-g", "graph,2,callee", "--max-stack", "10", "--percent-limit", "3"])?;
    println!("{}", graph.lines().take(200).collect::<Vec<_>>().join("\n"));
    println!("perf data: {data} (perf report -i {data})");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("usage: cargo xtask <test|mqsim|bench|bench-memory|bench-store|bench-checker|fuzz|profile|ci> [args...]");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "test" => test(rest),
        "mqsim" => mqsim(rest),
        "bench" => {
            // The name server and broker binaries too: `--processes` runs
            // them beside the benchmark.
            let mut build = cargo();
            build.args(["build", "--quiet", "--release", "-p", "broker", "--bin", "namesrv", "--bin", "broker"]);
            run(build).and_then(|()| {
                let mut cmd = cargo();
                cmd.args(["run", "--quiet", "--release", "-p", "broker", "--bin", "bench", "--"]).args(rest);
                run(cmd)
            })
        }
        "bench-memory" => {
            let mut build = cargo();
            build.args(["build", "--quiet", "--release", "-p", "broker", "--bin", "namesrv", "--bin", "broker"]);
            run(build).and_then(|()| {
                let mut cmd = cargo();
                cmd.args(["run", "--quiet", "--release", "-p", "broker", "--bin", "memory-bench", "--"]).args(rest);
                run(cmd)
            })
        }
        "bench-store" => {
            let mut cmd = cargo();
            cmd.args(["run", "--quiet", "--release", "-p", "broker", "--bin", "store-bench", "--"]).args(rest);
            run(cmd)
        }
        "fuzz" => {
            let mut cmd = cargo();
            cmd.args(["run", "--quiet", "--release", "-p", "broker", "--bin", "fuzz", "--"]).args(rest);
            run(cmd)
        }
        "bench-checker" => {
            let mut cmd = cargo();
            cmd.args(["run", "--quiet", "--release", "-p", "checker", "--bin", "checker-bench", "--"]).args(rest);
            run(cmd)
        }
        "profile" => profile(rest),
        "ci" => {
            // One definition of CI: the script CI runs.
            let mut cmd = Command::new("bash");
            cmd.arg(".ci/run");
            run(cmd)
        }
        other => {
            eprintln!("xtask: unknown command {other:?}; expected test, mqsim, bench, bench-memory, bench-store, bench-checker, fuzz, profile or ci");
            Err(ExitCode::from(2))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}
