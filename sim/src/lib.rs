//! The deterministic simulation testbed: the real broker on madsim nodes,
//! a seeded nemesis, workloads that record a history, and the checker's
//! verdict.
//!
//! # Layout
//! - [`calibrate`]: fitting the cost model to a host's real benchmark.
//! - [`database`]: the consumers' business database (effects and their
//!   keys, committed together), a node with its own disk.
//! - [`disk`]: [`disk::SimDisk`], a broker's disk with crash semantics and faults.
//! - [`failure`]: the classes of failure and their exit codes.
//! - [`recorder`]: the history recorder (simulated time, sequential ids).
//! - [`run`]: one seed of one scenario: options, outcome, the check config.
//! - [`shrink`]: delta debugging of a failing fault schedule.
//! - `draw` (madsim only): the seeded random draws clients and world take.
//! - `world` (madsim only): the cluster and the drain; `world/nemesis.rs`
//!   applies each fault and its heal, latency and loss per link.
//! - `workload` (madsim only): producers, idempotent consumers, the drain.
//! - `hostile` (madsim only): clients that send what a buggy or malicious
//!   client would, recording how each request was answered.
//! - `src/bin/mqsim/`: the command line (`main.rs` dispatches; `cli`, `input`,
//!   `sweep`, `bugs`, `bench`).
//!
//! Everything random comes from madsim's seeded RNG or the scenario's
//! resolution of the seed; every map that is iterated is ordered.

pub mod calibrate;
pub mod database;
pub mod disk;
#[cfg(madsim)]
mod draw;
pub mod failure;
#[cfg(madsim)]
mod hostile;
pub mod recorder;
pub mod run;
pub mod shrink;
#[cfg(madsim)]
mod workload;
#[cfg(madsim)]
mod world;

/// The supervisor of one run: builds the world, drives the schedule, marks
/// the fault-free tail, stops the clients, drains, and marks the end.
#[cfg(madsim)]
pub async fn scenario_main(resolved: scenarios::Resolved, recorder: recorder::Recorder) {
    use checker::history::Op;
    use std::sync::Arc;
    recorder.start();
    let duration_ms = resolved.scenario.duration_ms();
    let end_ms = duration_ms + resolved.scenario.tail_s * 1000;
    let world = Arc::new(world::World::build(resolved.clone(), recorder.clone()).await);
    for fault in resolved.schedule.clone() {
        let (world, recorder) = (world.clone(), recorder.clone());
        tokio::spawn(async move {
            tokio::time::sleep_until(recorder.at(fault.at_ms)).await;
            let heal = world.inject(&fault);
            if let (Some(heal_at), Some(heal)) = (fault.heal_at_ms, heal) {
                tokio::time::sleep_until(recorder.at(heal_at)).await;
                heal(&world);
            }
        });
    }
    tokio::time::sleep_until(recorder.at(duration_ms)).await;
    recorder.note("harness", Op::TailStart, None, None);
    tokio::time::sleep_until(recorder.at(end_ms)).await;
    world.stop_clients();
    recorder.note("harness", Op::ClientsStopped, None, None);
    world.drain().await;
    world.record_effects();
    recorder.note("harness", Op::End, None, None);
    world.shutdown();
    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
}
