//! Scenario specs for the mqsim testbed: the TOML catalogue's types, the
//! loader with validation, and resolution of a scenario plus a seed into
//! concrete knobs and a concrete fault schedule.
//!
//! A scenario is data: a cluster (`[topology]`), clients (`[workload]`),
//! faults (`[nemesis]`: none, an explicit schedule, or swarm rates with knobs
//! drawn from the seed), a safety phase of `duration_s` and a fault-free tail
//! of `tail_s`, and the invariants to check (`[expect]`). Adding one needs no
//! recompiling: drop a `<name>.toml` next to this crate's `Cargo.toml`.
//!
//! ```text
//! let scenario = scenarios::find("broker-crash-sync-flush")?;
//! let resolved = scenario.resolve(seed);
//! for (path, value) in resolved.options() { println!("{path} = {value}"); }
//! for fault in &resolved.schedule { /* inject fault.fault at fault.at_ms */ }
//! ```
//!
//! # Layout
//!
//! - `lib.rs`: the catalogue: [`catalogue_dir`], [`catalogue`], [`find`].
//! - `spec.rs`: [`Scenario`] and its tables ([`Topology`], [`Workload`],
//!   [`Nemesis`], [`NemesisEvent`], [`SwarmKnobs`], [`Expect`]); parsing,
//!   loading and writing back as TOML.
//! - `target.rs`: node names ([`Node`]) and fault targets ([`Target`]).
//! - `cluster.rs`: a scenario's nodes, selection, and broker groups.
//! - `validate.rs`: [`Scenario::validate`], every rule with its field path.
//! - `resolve.rs`: [`Scenario::resolve`] into [`Resolved`] with its
//!   [`ScheduledFault`]s, and [`Scenario::with_schedule`] for the shrinker.
//! - `rng.rs`: the small deterministic generator behind every draw.
//! - `error.rs`: [`ScenarioError`] and [`Problem`].

#![warn(missing_docs)]

mod cluster;
mod error;
mod fault;
mod resolve;
mod rng;
pub use rng::{LogNormal, Rng};
mod cost;
mod spec;
mod target;
mod validate;

use std::path::{Path, PathBuf};

pub use cost::Cost;
pub use error::{Problem, ScenarioError};
pub use fault::{Channel, CrashStep, DiskFaultKind, Fault, FaultKind, NemesisEvent, PartitionKind};
pub use resolve::{
    Resolved, ScheduledFault, ARRIVAL_TICK_MS, PRODUCER_STOP_MARGIN_MS, CONSUMER_CRASH_DOWN_MS_MAX, GENERATED_DOWN_MS_MIN,
    SWARM_DRAWN_MAX_DOWN_S_MAX, SWARM_DRAWN_RATE_MAX_CENTI_PER_MIN,
};
pub use spec::{
    ConsumerKind, ConsumerSpec, HostileSpec, Expect, FlushMode, Nemesis, NemesisMode, ProducerSpec, Progress, ReplicationMode,
    Scenario, SwarmKnobs, TimerSpec, Topology, TransactionSpec, Workload, WORKLOAD_START_MS,
};
pub use target::{Node, Role, Selector, Target, TargetParseError};
pub use validate::REPLICAS_MAX;

/// The directory holding the catalogue (this crate's own folder), so the
/// `mqsim` binary finds the scenarios without configuration.
pub fn catalogue_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Loads and validates every `*.toml` scenario in `dir`, sorted by file name.
/// The first broken file stops the load with its error.
pub fn catalogue(dir: impl AsRef<Path>) -> Result<Vec<Scenario>, ScenarioError> {
    scenario_files(dir.as_ref())?.iter().map(Scenario::load).collect()
}

/// The catalogue scenario called `name`.
pub fn find(name: &str) -> Result<Scenario, ScenarioError> {
    find_in(catalogue_dir(), name)
}

/// The scenario called `name` in `dir`. Since a scenario's name must equal its
/// file stem, this loads `<dir>/<name>.toml`; only listed files are considered,
/// so a name like `../x` cannot escape the directory.
pub fn find_in(dir: impl AsRef<Path>, name: &str) -> Result<Scenario, ScenarioError> {
    let dir = dir.as_ref();
    let files = scenario_files(dir)?;
    match files.iter().find(|path| path.file_stem().is_some_and(|stem| stem == name)) {
        Some(path) => Scenario::load(path),
        None => Err(ScenarioError::NotFound {
            name: name.to_string(),
            dir: dir.display().to_string(),
            available: files
                .iter()
                .filter_map(|path| path.file_stem().map(|stem| stem.to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The scenario files of `dir`, sorted by file name.
fn scenario_files(dir: &Path) -> Result<Vec<PathBuf>, ScenarioError> {
    let read_error = |source| ScenarioError::Read { origin: dir.display().to_string(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        // The catalogue shares its folder with this crate's manifest.
        let is_manifest = path.file_name().is_some_and(|name| name == "Cargo.toml");
        if path.is_file() && path.extension().is_some_and(|ext| ext == "toml") && !is_manifest {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

#[cfg(test)]
mod tests;
