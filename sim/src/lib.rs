//! The deterministic simulation testbed: the real broker on madsim nodes,
//! a seeded nemesis, workloads that record a history, and the checker's
//! verdict.
//!
//! # Layout
//! - [`calibrate`]: fitting the cost model to a host's real benchmark.
//! - [`cost`]: the cost model: brokers' worker pools in virtual time,
//!   charged through each broker's work hook.
//! - [`database`]: the consumers' business database (effects and their
//!   keys, committed together), a node with its own disk.
//! - [`disk`]: [`disk::SimDisk`], a broker's disk with crash semantics and faults.
//! - [`failure`]: the classes of failure and their exit codes.
//! - [`recorder`]: the history recorder (simulated time, sequential ids).
//! - [`run`]: one seed of one scenario: options, outcome, the check config.
//! - [`shrink`]: delta debugging of a failing fault schedule.
//! - [`cluster`]: the [`cluster::Cluster`] a run hurts: the operations
//!   faults are made of, named as real processes can honour them.
//! - [`nemesis`]: each fault of a schedule applied to a cluster, recorded,
//!   and healed; partitions counted and latency and loss layered per link.
//! - [`workload`]: producers, idempotent consumers and the drain, over the
//!   client library: they drive any cluster.
//! - [`hostile`]: clients that send what a buggy or malicious client
//!   would, recording how each request was answered.
//! - `draw`: the random draws clients and world take (seeded under madsim).
//! - `world` (madsim only): the cluster on madsim nodes, the [`cluster::Cluster`]
//!   of a simulated run.
//! - `src/bin/mqsim/`: the command line (`main.rs` dispatches; `cli`, `input`,
//!   `sweep`, `bugs`, `bench`).
//!
//! Everything random comes from madsim's seeded RNG or the scenario's
//! resolution of the seed; every map that is iterated is ordered.

pub mod calibrate;
pub mod cluster;
pub mod cost;
pub mod database;
pub mod disk;
mod draw;
pub mod failure;
pub mod hostile;
pub mod nemesis;
pub mod recorder;
pub mod run;
pub mod shrink;
pub mod workload;
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
    run::phase(run::Phase::Built);
    let nemesis = Arc::new(nemesis::Nemesis::new(recorder.clone()));
    for fault in resolved.schedule.clone() {
        let (world, nemesis, recorder) = (world.clone(), nemesis.clone(), recorder.clone());
        tokio::spawn(async move {
            tokio::time::sleep_until(recorder.at(fault.at_ms)).await;
            let heal = nemesis.inject(world.as_ref(), &fault);
            if let (Some(heal_at), Some(heal)) = (fault.heal_at_ms, heal) {
                tokio::time::sleep_until(recorder.at(heal_at)).await;
                heal(&nemesis, world.as_ref());
            }
        });
    }
    tokio::time::sleep_until(recorder.at(duration_ms)).await;
    recorder.note("harness", Op::TailStart, None, None);
    tokio::time::sleep_until(recorder.at(end_ms)).await;
    world.stop_clients();
    recorder.note("harness", Op::ClientsStopped, None, None);
    run::phase(run::Phase::Draining);
    world.drain().await;
    world.record_effects();
    recorder.note("harness", Op::End, None, None);
    world.shutdown();
    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    run::phase(run::Phase::Done(madsim::net::NetSim::current().stat().msg_count));
}
