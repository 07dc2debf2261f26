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
//! - `cargo xtask bench-checker ...`: the checker's speed on generated
//!   histories up to 1 M events, in release.
//! - `cargo xtask fuzz --cases N [--seed S]`: the broker's whole request
//!   path fuzzed over TCP against a real store, in release.
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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("usage: cargo xtask <test|mqsim|bench|bench-store|bench-checker|fuzz|ci> [args...]");
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
        "ci" => {
            // One definition of CI: the script CI runs.
            let mut cmd = Command::new("bash");
            cmd.arg(".ci/run");
            run(cmd)
        }
        other => {
            eprintln!("xtask: unknown command {other:?}; expected test, mqsim, bench, bench-store, bench-checker, fuzz or ci");
            Err(ExitCode::from(2))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}
