//! Running one seed of one scenario, and what comes out of it.

use crate::failure::{self, Failures};
use broker::bugs::Bug;
use std::collections::BTreeMap;
use checker::config::{CheckConfig, Expect, GroupSpec};
use checker::history::{Event, Op};
use checker::verdict::{Validity, Verdict};
use scenarios::{Resolved, Scenario};

/// How to run a seed.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Print every history event as it is recorded.
    pub trace: bool,
    /// Planted bugs to switch on.
    pub bugs: Vec<Bug>,
    /// The process ends right after this seed (a sweep's seed process):
    /// leave the simulated world allocated instead of dropping every task,
    /// node and disk of it one by one.
    pub leak_world: bool,
}

pub use scenarios::WORKLOAD_START_MS;

/// Everything a run produced.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// The scenario's name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// The checker's verdict (a panic makes it invalid).
    pub verdict: Verdict,
    /// The history.
    pub history: Vec<Event>,
    /// Stable digest of the history.
    pub digest: String,
    /// The "sometimes" marks the run reached, with how often each is named.
    pub reached: std::collections::BTreeMap<String, u64>,
    /// A panic inside the simulation: a broker assertion, or a hang past the time limit.
    pub panic: Option<String>,
    /// Simulated milliseconds the run covered.
    pub sim_ms: u64,
    /// Wall-clock milliseconds it took.
    pub wall_ms: u64,
    /// Where the wall time went, and how much the simulation did.
    pub timing: Timing,
}

/// Where one seed's wall time went, by phase, and what the simulation did
/// meanwhile: what `sweep --timing` adds up. Phases are stamped on an OS
/// thread outside the simulator, whose clock is the real one.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Timing {
    /// Building the cluster: nodes, stores, topics (wall ms).
    pub setup_ms: f64,
    /// The scenario's workload and faults, and its fault-free tail.
    pub simulation_ms: f64,
    /// The final drain, until the simulation ends.
    pub drain_ms: f64,
    /// The checker's verdict.
    pub check_ms: f64,
    /// The history's digest.
    pub digest_ms: f64,
    /// The seed's process beyond its run (start, passing the scenario and
    /// the result, the history written and read back), as its parent saw
    /// it.
    #[serde(default)]
    pub process_ms: f64,
    /// Packets the simulated network carried (every TCP write, requests
    /// and replies alike).
    pub messages: u64,
    /// History events recorded.
    pub events: u64,
    /// Messages the run moved: acknowledged sends plus deliveries to
    /// consumers (the unit the real broker's CPU per send compares with).
    #[serde(default)]
    pub moved: u64,
    /// Requests the nodes and clients read, by kind (counted across the
    /// process: exact for a sweep's seed, which has a process of its own).
    #[serde(default)]
    pub requests: BTreeMap<String, u64>,
}

thread_local! {
    /// Where the running simulation announces its phases (`simulate` sets
    /// it for its thread).
    static PHASES: std::cell::RefCell<Option<std::sync::mpsc::Sender<Phase>>> = const { std::cell::RefCell::new(None) };
}

/// A boundary between phases of a run, announced from inside the
/// simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The cluster is built; the workload starts.
    Built,
    /// The clients stopped; the drain starts.
    Draining,
    /// The simulation is done, having carried this many packets.
    Done(u64),
}

/// Announces a phase boundary of the running seed (nothing outside one).
pub fn phase(p: Phase) {
    PHASES.with(|tx| {
        if let Some(tx) = tx.borrow().as_ref() {
            let _ = tx.send(p);
        }
    });
}

impl RunOutcome {
    /// Whether every expected invariant held and nothing panicked.
    pub fn passed(&self) -> bool {
        self.panic.is_none() && self.verdict.validity == Validity::Valid
    }

    /// The checks that did not hold, by name, and [`failure::PANIC`] for a
    /// panic ([`failure::TIME_LIMIT`] for a run that hung past the
    /// simulation's time limit).
    pub fn failed_checks(&self) -> Vec<String> {
        let panic = self.panic.as_deref().map(|p| if p.contains(TIME_LIMIT_PANIC) { failure::TIME_LIMIT } else { failure::PANIC });
        self.verdict
            .checks
            .iter()
            .filter(|c| c.validity != Validity::Valid)
            .map(|c| c.name.clone())
            .chain(panic.map(str::to_string))
            .collect()
    }

    /// How the run failed, by class.
    pub fn failures(&self) -> Failures {
        Failures::of_checks(self.failed_checks().iter().map(String::as_str))
    }
}

/// What madsim's panic says when a run passes its time limit.
const TIME_LIMIT_PANIC: &str = "time limit exceeded";

/// Every move the run made to each broker process's clock, as (time, ms
/// forward or back) in history order: a skew's start and its taking back,
/// a jump and its stepping back, from the nemesis events' `clock_ms`, so a
/// saved history is checked as the run was.
pub fn clock_moves_ms(events: &[Event]) -> BTreeMap<String, Vec<(u64, i64)>> {
    let mut moves: BTreeMap<String, Vec<(u64, i64)>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.op.is_nemesis()) {
        if let (Some(target), Some(ms)) = (broker_target(e), e.clock_ms) {
            moves.entry(target.to_string()).or_default().push((e.t_ms, ms));
        }
    }
    moves
}

/// How far the run moved each broker's clock back, at most: every skew and
/// every jump counted whole (start and heal are one move each way). A timer
/// a broker held may come due that much later in true time.
pub fn clock_setback_ms(events: &[Event]) -> BTreeMap<String, u64> {
    let mut setback: BTreeMap<String, u64> = BTreeMap::new();
    for e in events.iter().filter(|e| e.op == Op::Fault) {
        if let (Some(target), Some(ms)) = (broker_target(e), e.clock_ms) {
            *setback.entry(target.to_string()).or_default() += ms.unsigned_abs();
        }
    }
    setback
}

/// The broker process a nemesis event targets, if it targets one.
fn broker_target(e: &Event) -> Option<&str> {
    e.target.as_deref().filter(|t| t.starts_with("broker-"))
}

/// Per-process clock setbacks keyed by the broker name the checker sees in
/// queue names. With one broker per group the two are the same. With
/// replicas, a group's message may be stored under one replica's clock and
/// delivered under another's after a failover, so the group gets the sum
/// over its replicas.
fn by_broker_name(scenario: &Scenario, per_node: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    if scenario.topology.replicas <= 1 {
        return per_node;
    }
    let mut per_group: BTreeMap<String, u64> = BTreeMap::new();
    for (node, ms) in per_node {
        let Some(n) = node.strip_prefix("broker-").and_then(|n| n.parse::<u32>().ok()) else { continue };
        let name = scenario.broker_group_name(scenario.broker_replica(n).0);
        *per_group.entry(name).or_default() += ms;
    }
    per_group
}

/// Each broker process's group name, for scenarios whose groups have
/// replicas (where a group outlives a fault on one of its processes).
fn broker_groups(scenario: &Scenario) -> BTreeMap<String, String> {
    if scenario.topology.replicas <= 1 {
        return BTreeMap::new();
    }
    (0..scenario.broker_count())
        .map(|n| (format!("broker-{n}"), scenario.broker_group_name(scenario.broker_replica(n).0)))
        .collect()
}

/// How long a group in controller mode may go without a master after its
/// master stops: the controllers' broker timeout (5 s), a scan (1 s), the
/// new master's take-over, and as much again for the replicas' heartbeats
/// and a slow round; measured take-overs come 5.1 to 6.2 s after the stop.
pub const FAILOVER_BOUND_MS: u64 = 10_000;

/// How long after a copy was consumed a restart, failover or rebalance
/// may still deliver it again: the consumers commit their offsets every
/// 5 s, the brokers persist them every 5 s, and 5 s of slack for requests
/// in flight and a commit that failed once.
pub const REDELIVERY_BOUND_MS: u64 = 15_000;

/// How long after a chain's last failure its dead letter may be stored
/// when nothing disturbed the send-back: the consumer sends a failed
/// message back as soon as its listener answers, and the broker stores a
/// dead letter at once; a second is a send-back round trip with slack for
/// a busy broker's fsync.
pub const DEAD_LETTER_BOUND_MS: u64 = 1_000;

/// Each broker process's replica as role events name it (`group-0/1`), in
/// controller mode.
fn broker_replicas(scenario: &Scenario) -> BTreeMap<String, String> {
    if scenario.topology.controllers == 0 {
        return BTreeMap::new();
    }
    (0..scenario.broker_count())
        .map(|n| {
            let (group, id) = scenario.broker_replica(n);
            (format!("broker-{n}"), format!("{}/{id}", scenario.broker_group_name(group)))
        })
        .collect()
}

/// What the checker must know about a scenario, and about its history (the
/// clock faults it applied).
pub fn check_config(scenario: &Scenario, events: &[Event]) -> CheckConfig {
    let groups = scenario
        .workload
        .consumers
        .iter()
        .map(|c| GroupSpec {
            group: c.group.clone(),
            topic: c.topic.clone(),
            tags: c.tags.clone(),
            sql: c.sql.clone(),
            broadcast: c.broadcast,
            pop: c.kind == scenarios::ConsumerKind::Simple,
            idempotent: c.idempotent,
            max_reconsume_times: c.max_reconsume_times,
            replies: c.replies,
        })
        .collect();
    let mut fifo_topics: Vec<String> =
        scenario.workload.producers.iter().filter(|p| p.fifo).map(|p| p.topic.clone()).collect();
    fifo_topics.sort();
    fifo_topics.dedup();
    CheckConfig {
        groups,
        fifo_topics,
        expect: Expect {
            lost_max: scenario.expect.lost,
            order: scenario.expect.order,
            exactly_once: scenario.expect.exactly_once,
            liveness_bound_ms: scenario.expect.liveness_bound_s.map(|s| s * 1000),
            unexpected_max: 0,
            progress_min_permille: scenario.expect.progress.as_ref().map(|p| (p.tail_acked_share * 1000.0).round() as u32),
            progress_grace_ms: scenario.expect.progress.as_ref().map_or(0, |p| p.grace_s * 1000),
            dead_letter: true,
            delay_levels_ms: scenario.topology.delay_levels_ms.clone(),
            clock_moves_ms: clock_moves_ms(events),
            clock_setback_ms: by_broker_name(scenario, clock_setback_ms(events)),
            transaction: scenario.workload.producers.iter().any(|p| p.transaction.is_some()),
            delay: scenario.workload.producers.iter().any(|p| p.timer.is_some()),
            broker_groups: broker_groups(scenario),
            failover_bound_ms: (scenario.topology.controllers > 0).then_some(FAILOVER_BOUND_MS),
            broker_replicas: broker_replicas(scenario),
            redelivery_bound_ms: Some(REDELIVERY_BOUND_MS),
            dead_letter_bound_ms: Some(DEAD_LETTER_BOUND_MS),
        },
    }
}

/// The command that reproduces a seed.
pub fn repro(scenario: &str, seed: u64, bugs: &[Bug]) -> String {
    let mut cmd = format!("cargo mqsim run {scenario} --seed {seed}");
    for bug in bugs {
        cmd.push_str(&format!(" --bug {}", bug.name()));
    }
    cmd
}

/// Runs one seed on a fresh OS thread (madsim keeps one runtime per thread),
/// catching panics as findings.
pub fn run_seed(resolved: &Resolved, options: &RunOptions) -> RunOutcome {
    let resolved = resolved.clone();
    let options = options.clone();
    let name = resolved.scenario.name.clone();
    let seed = resolved.seed;
    let started = std::time::Instant::now();
    let scenario = resolved.scenario.clone();
    let sim_ms = resolved.scenario.duration_ms() + resolved.scenario.tail_s * 1000;
    let read_before: BTreeMap<&str, u64> = broker::net::requests_read().into_iter().collect();
    let thread = std::thread::Builder::new()
        .name(format!("{name}-{seed}"))
        .stack_size(64 * 1024 * 1024)
        .spawn(move || timed_simulation(resolved, options))
        .expect("spawn seed thread");
    let (result, mut timing) = match thread.join() {
        Ok((result, timing)) => (result, timing),
        Err(payload) => (Err((Vec::new(), panic_message(payload.as_ref()))), Timing::default()),
    };
    let (history, panic) = match result {
        Ok(history) => (history, None),
        Err((history, message)) => (history, Some(message)),
    };
    timing.requests = broker::net::requests_read()
        .into_iter()
        .map(|(kind, n)| (kind.to_string(), n - read_before.get(kind).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let checking = std::time::Instant::now();
    let mut verdict = checker::check_all(&history, &check_config(&scenario, &history));
    if panic.is_some() {
        verdict.validity = Validity::Invalid;
    }
    timing.check_ms = ms_since(checking);
    let digesting = std::time::Instant::now();
    let digest = checker::history::digest_hex(&history);
    timing.digest_ms = ms_since(digesting);
    timing.events = history.len() as u64;
    timing.moved = history
        .iter()
        .filter(|e| e.kind == checker::history::Kind::Ok && matches!(e.op, Op::Send | Op::Deliver))
        .count() as u64;
    RunOutcome {
        digest,
        reached: checker::reached_marks(&history),
        scenario: name,
        seed,
        verdict,
        history,
        panic,
        sim_ms,
        wall_ms: started.elapsed().as_millis() as u64,
        timing,
    }
}

fn ms_since(start: std::time::Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

/// Runs `simulate` with its phases stamped on a thread of their own, and
/// splits its wall time by them.
fn timed_simulation(resolved: Resolved, options: RunOptions) -> (Simulated, Timing) {
    let (tx, rx) = std::sync::mpsc::channel::<Phase>();
    let stamper = std::thread::spawn(move || {
        let mut stamps = vec![(None, std::time::Instant::now())];
        while let Ok(p) = rx.recv() {
            stamps.push((Some(p), std::time::Instant::now()));
        }
        stamps.push((None, std::time::Instant::now()));
        stamps
    });
    PHASES.with(|phases| *phases.borrow_mut() = Some(tx));
    let result = simulate(resolved, options);
    PHASES.with(|phases| *phases.borrow_mut() = None);
    let stamps = stamper.join().unwrap_or_default();
    let at = |wanted: fn(&Phase) -> bool| stamps.iter().find(|(p, _)| p.as_ref().is_some_and(wanted)).map(|(_, t)| *t);
    let (start, end) = (stamps.first().map(|s| s.1), stamps.last().map(|s| s.1));
    let (built, draining, done) = (at(|p| *p == Phase::Built), at(|p| *p == Phase::Draining), at(|p| matches!(p, Phase::Done(_))));
    let span = |a: Option<std::time::Instant>, b: Option<std::time::Instant>| match (a, b) {
        (Some(a), Some(b)) if b >= a => (b - a).as_secs_f64() * 1000.0,
        _ => 0.0,
    };
    let messages = stamps.iter().find_map(|(p, _)| match p {
        Some(Phase::Done(n)) => Some(*n),
        _ => None,
    });
    let timing = Timing {
        setup_ms: span(start, built),
        simulation_ms: span(built, draining),
        drain_ms: span(draining, done.or(end)),
        messages: messages.unwrap_or(0),
        ..Timing::default()
    };
    (result, timing)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic with a non-string payload".to_string())
}

type Simulated = Result<Vec<Event>, (Vec<Event>, String)>;

#[cfg(madsim)]
fn simulate(resolved: Resolved, options: RunOptions) -> Simulated {
    use std::panic::AssertUnwindSafe;
    use std::time::Duration;
    broker::bugs::set_active(&options.bugs);
    let seed = resolved.seed;
    let mut runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    let limit_s = resolved.scenario.duration_s + resolved.scenario.tail_s + 600;
    runtime.set_time_limit(Duration::from_secs(limit_s));
    let recorder = crate::recorder::Recorder::new_unstarted(options.trace);
    let rec = recorder.clone();
    let marks = recorder.clone();
    broker::marks::set_sink(Some(Box::new(move |mark| marks.reach(mark.name(), "cluster"))));
    let notes = recorder.clone();
    broker::marks::set_note_sink(Some(Box::new(move |who, what| {
        notes.record(checker::history::Event::new(0, who, checker::history::Kind::Info, checker::history::Op::Role).detail(what));
    })));
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| runtime.block_on(crate::scenario_main(resolved, rec))));
    if options.leak_world {
        std::mem::forget(runtime);
    } else {
        drop(runtime);
    }
    broker::marks::set_sink(None);
    broker::marks::set_note_sink(None);
    match result {
        Ok(()) => Ok(recorder.take_events()),
        Err(payload) => Err((recorder.take_events(), panic_message(payload.as_ref()))),
    }
}

#[cfg(not(madsim))]
fn simulate(_resolved: Resolved, _options: RunOptions) -> Simulated {
    Err((Vec::new(), "this build has no simulator: build with --cfg madsim (use `cargo mqsim`)".to_string()))
}
