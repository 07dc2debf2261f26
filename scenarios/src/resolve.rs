//! Resolution: from a scenario and a seed to concrete knobs and a concrete
//! fault schedule.
//!
//! Every draw comes from a [`Rng`] stream labelled by its purpose, so the same
//! seed always gives the same result, and filling in one knob by hand does not
//! change what the seed draws for the others.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::rng::Rng;
use crate::fault::{Channel, Fault, NemesisEvent};
use crate::fault::{CrashStep, DiskFaultKind, FaultKind, PartitionKind};
use crate::spec::{Nemesis, NemesisMode, Scenario, SwarmKnobs};
use crate::target::{Node, Selector, Target};

/// Granularity of generated fault arrivals: each tick a fault of a kind starts
/// with probability `rate_per_min / ticks per minute` (a Bernoulli
/// approximation of a Poisson process that needs no logarithm, so it is
/// bit-identical on every platform).
pub const ARRIVAL_TICK_MS: u64 = 100;

/// Shortest time a generated fault lasts (unless the safety phase ends first).
pub const GENERATED_DOWN_MS_MIN: u64 = 500;

/// Longest time a consumer crashed by `crash_rate_per_min` stays away.
pub const CONSUMER_CRASH_DOWN_MS_MAX: u64 = 5_000;

/// Upper end of a swarm rate drawn from the seed, in hundredths per minute
/// (3.00 faults per minute of each kind).
pub const SWARM_DRAWN_RATE_MAX_CENTI_PER_MIN: u64 = 300;

/// Upper end of `max_down_s` drawn from the seed.
pub const SWARM_DRAWN_MAX_DOWN_S_MAX: u64 = 15;

/// A scenario with every knob concrete for one seed, and its fault schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The seed everything was drawn from.
    pub seed: u64,
    /// The scenario with every swarm knob filled in (`Some`).
    pub scenario: Scenario,
    /// Every fault of the run, sorted by start time; each ends by
    /// `duration_s` so the tail is fault-free, and on one node two faults of
    /// the same kind (process down, disk, clock skew) never overlap.
    pub schedule: Vec<ScheduledFault>,
    /// Dotted paths of the knobs that were drawn from the seed rather than
    /// written in the file.
    pub drawn_from_seed: Vec<String>,
}

/// One concrete fault: what, to whom, from when to when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledFault {
    /// When the fault starts, in simulated milliseconds from the run's start.
    pub at_ms: u64,
    /// The fault with its concrete node names.
    pub fault: Fault<String>,
    /// When it is healed, restarted or resumed; `None` for instantaneous
    /// faults (`flip-byte`) and persistent ones. Never after the safety phase.
    pub heal_at_ms: Option<u64>,
}

impl ScheduledFault {
    /// The nodes the fault hits (for a partition, the cut-off side).
    pub fn targets(&self) -> Vec<&str> {
        match self.fault.single_target() {
            Some((node, _)) => vec![node.as_str()],
            None => self.fault.target_lists().first().map_or(Vec::new(), |(_, nodes)| nodes.iter().map(String::as_str).collect()),
        }
    }
}

/// How long before the last liveness deadline producers stop, so that a
/// send acknowledged just before they stop is still judged (its deadline
/// falls before the end of the run).
pub const PRODUCER_STOP_MARGIN_MS: u64 = 5_000;

impl Scenario {
    /// The safety phase in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.duration_s.saturating_mul(1000)
    }

    /// When producers stop sending, in ms from the start (they start at
    /// [`WORKLOAD_START_MS`]): early enough that
    /// every message they get acknowledged has its liveness deadline inside
    /// the run, those sent in the fault-free tail included; never before
    /// the tail starts. Without a liveness bound, halfway through the tail.
    pub fn producer_stop_ms(&self) -> u64 {
        let (duration_ms, tail_ms) = (self.duration_ms(), self.tail_s.saturating_mul(1000));
        match self.expect.liveness_bound_s {
            Some(bound_s) => (duration_ms + tail_ms)
                .saturating_sub(bound_s.saturating_mul(1000) + PRODUCER_STOP_MARGIN_MS)
                .max(duration_ms),
            None => duration_ms + tail_ms / 2,
        }
    }

    /// Fills every knob left to the seed and builds the concrete fault
    /// schedule. Expects a validated scenario (as loading gives); the same
    /// scenario and seed always give the same result.
    pub fn resolve(&self, seed: u64) -> Resolved {
        let mut scenario = self.clone();
        let mut drawn_from_seed = Vec::new();
        let mut events = match scenario.nemesis.mode {
            NemesisMode::None => Vec::new(),
            NemesisMode::Schedule => scenario.nemesis.events.clone(),
            NemesisMode::Swarm => {
                let knobs = scenario.nemesis.swarm.get_or_insert_with(SwarmKnobs::default);
                draw_swarm_knobs(knobs, seed, &mut drawn_from_seed);
                let knobs = knobs.clone();
                swarm_events(&scenario, &knobs, seed)
            }
        };
        events.extend(workload_crash_events(&scenario, seed));
        // Stable: events starting in the same millisecond keep file order.
        events.sort_by_key(|event| secs_to_ms(event.at_s));
        let mut resolver = Resolver {
            nodes: scenario.nodes(),
            scenario: &scenario,
            rng: Rng::new(seed, "nemesis.targets"),
            busy_ms: BTreeMap::new(),
        };
        // Named nodes are reserved first, so a random pick earlier in time
        // cannot take down a node that a named fault is about to hit.
        for event in &events {
            if let Some((channel, Target::Node(node), at_ms, heal_ms)) = node_fault_span(event, scenario.duration_ms()) {
                resolver.busy_ms.entry((node.clone(), channel)).or_default().push((at_ms, heal_ms));
            }
        }
        let schedule: Vec<ScheduledFault> = events.iter().filter_map(|event| resolver.event(event)).collect();
        for fault in &schedule {
            assert!(fault.at_ms < scenario.duration_ms(), "fault starts after the safety phase: {fault}");
            assert!(
                fault.heal_at_ms.is_none_or(|heal| fault.at_ms < heal && heal <= scenario.duration_ms()),
                "fault does not end inside the safety phase: {fault}"
            );
        }
        Resolved { seed, scenario, schedule, drawn_from_seed }
    }

    /// A copy whose nemesis is exactly `schedule`, written with concrete node
    /// names (mode `schedule`, or `none` when empty). Consumer crash rates are
    /// zeroed because their crashes are already in the schedule. The copy
    /// resolves back to `schedule` for any seed, which is what the shrinker
    /// needs to print a failing run as a file.
    ///
    /// Panics if a node name in `schedule` is not one this crate produces.
    pub fn with_schedule(&self, schedule: &[ScheduledFault]) -> Scenario {
        let mut copy = self.clone();
        for consumer in &mut copy.workload.consumers {
            consumer.crash_rate_per_min = 0.0;
        }
        copy.nemesis = Nemesis {
            mode: if schedule.is_empty() { NemesisMode::None } else { NemesisMode::Schedule },
            events: schedule.iter().map(to_event).collect(),
            swarm: None,
        };
        copy
    }
}

impl Resolved {
    /// Every resolved knob as `(dotted path, value)` pairs, for printing at
    /// the start of a run: the seed, every scenario field (sorted by path),
    /// then each scheduled fault as `schedule[i]`.
    pub fn options(&self) -> Vec<(String, String)> {
        let mut out = vec![("seed".to_string(), self.seed.to_string())];
        let value = toml::Value::try_from(&self.scenario).expect("a Scenario always converts to a TOML value");
        flatten("", &value, &mut out);
        for (i, fault) in self.schedule.iter().enumerate() {
            out.push((format!("schedule[{i}]"), fault.to_string()));
        }
        out
    }
}

fn flatten(path: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
    let join = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    match value {
        toml::Value::Table(table) => {
            // Sorted here so the order does not depend on toml's features.
            let mut keys: Vec<&String> = table.keys().collect();
            keys.sort();
            for key in keys {
                flatten(&join(key), &table[key.as_str()], out);
            }
        }
        toml::Value::Array(items) if items.iter().any(toml::Value::is_table) => {
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{path}[{i}]"), item, out);
            }
        }
        toml::Value::String(text) => out.push((path.to_string(), text.clone())),
        other => out.push((path.to_string(), other.to_string())),
    }
}

/// Seconds (as written in files) to whole milliseconds, rounded.
pub(crate) fn secs_to_ms(seconds: f64) -> u64 {
    // `as` saturates: negative and NaN become 0, which validation refuses.
    (seconds * 1000.0).round() as u64
}

/// Milliseconds back to seconds; exact enough that `secs_to_ms` inverts it.
fn ms_to_secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Fills every `None` swarm knob: each rate is off half of the time and
/// otherwise 0.01..=3.00 per minute; `max_down_s` is 1..=15.
fn draw_swarm_knobs(knobs: &mut SwarmKnobs, seed: u64, drawn: &mut Vec<String>) {
    for kind in FaultKind::all() {
        if !knobs.rates.contains_key(&kind) {
            let path = format!("nemesis.swarm.{}", kind.knob());
            let mut rng = Rng::new(seed, &path);
            let centi = if rng.chance(0.5) { 0 } else { rng.between(1, SWARM_DRAWN_RATE_MAX_CENTI_PER_MIN) };
            knobs.rates.insert(kind, centi as f64 / 100.0);
            drawn.push(path);
        }
    }
    if knobs.max_down_s.is_none() {
        let path = "nemesis.swarm.max_down_s".to_string();
        let mut rng = Rng::new(seed, &path);
        knobs.max_down_s = Some(rng.between(1, SWARM_DRAWN_MAX_DOWN_S_MAX) as f64);
        drawn.push(path);
    }
}

/// Start times of a fault kind arriving at `rate_per_min` over the safety
/// phase.
fn arrivals(rng: &mut Rng, rate_per_min: f64, duration_ms: u64) -> Vec<u64> {
    let p = rate_per_min / (60_000 / ARRIVAL_TICK_MS) as f64;
    let mut times = Vec::new();
    if p <= 0.0 {
        return times;
    }
    for tick in 0..duration_ms / ARRIVAL_TICK_MS {
        if rng.chance(p) {
            times.push(tick * ARRIVAL_TICK_MS + rng.below(ARRIVAL_TICK_MS));
        }
    }
    times
}

/// One of the server roles, weighted by how many nodes each has, so every
/// name server, broker, controller and the business database is equally
/// likely to be hit.
fn random_server(scenario: &Scenario, rng: &mut Rng) -> Target {
    let name_servers = u64::from(scenario.topology.name_servers);
    let brokers = u64::from(scenario.broker_count());
    let databases = u64::from(!scenario.workload.consumers.is_empty());
    let controllers = u64::from(scenario.topology.controllers);
    let pick = rng.below((name_servers + brokers + databases + controllers).max(1));
    if pick < name_servers {
        Target::Random(Selector::Namesrvs)
    } else if pick < name_servers + brokers {
        Target::Random(Selector::Brokers)
    } else if pick < name_servers + brokers + databases {
        Target::Random(Selector::Databases)
    } else {
        Target::Random(Selector::Controllers)
    }
}

/// Swarm mode: events of every kind at its rate, targets still `random-*`
/// (chosen later in time order, so a down node is not hit again).
fn swarm_events(scenario: &Scenario, knobs: &SwarmKnobs, seed: u64) -> Vec<NemesisEvent> {
    let duration_ms = scenario.duration_ms();
    let max_down_ms = secs_to_ms(knobs.max_down_s.unwrap_or(1.0)).max(1);
    let has_consumers = !scenario.workload.consumers.is_empty();
    let mut events = Vec::new();
    for (kind, rate) in knobs.rates() {
        // Each kind draws from its own stream, named as before kinds were
        // typed (`swarm.power_loss`), so adding a kind moves no other draw.
        let mut rng = Rng::new(seed, &format!("swarm.{}", kind.name().replace('-', "_")));
        for at_ms in arrivals(&mut rng, rate.unwrap_or(0.0), duration_ms) {
            let at_s = ms_to_secs(at_ms);
            let down_ms = rng.between(GENERATED_DOWN_MS_MIN.min(max_down_ms), max_down_ms).min(duration_ms - at_ms);
            let after = Some(ms_to_secs(down_ms));
            if let Some(event) = draw(kind, scenario, &mut rng, at_s, after, down_ms, has_consumers) {
                events.push(event);
            }
        }
    }
    events
}

/// One fault of `kind` starting at `at_s`, drawn from `rng` in swarm mode,
/// lasting `after` (`down_ms`); `None` for a kind the scenario cannot take.
fn draw(kind: FaultKind, scenario: &Scenario, rng: &mut Rng, at_s: f64, after: Option<f64>, down_ms: u64, has_consumers: bool) -> Option<NemesisEvent> {
    let network_targets = |rng: &mut Rng| {
        if rng.chance(0.5) {
            vec![Target::Everyone]
        } else {
            vec![Target::Random(Selector::Brokers)]
        }
    };
    Some(match kind {
        FaultKind::Kill => NemesisEvent::new(at_s, Fault::Kill { target: random_server(scenario, rng) }, after),
        FaultKind::PowerLoss => NemesisEvent::new(at_s, Fault::PowerLoss { target: random_server(scenario, rng) }, after),
        FaultKind::Pause => NemesisEvent::new(at_s, Fault::Pause { target: random_server(scenario, rng) }, after),
        FaultKind::ConsumerCrash if has_consumers => NemesisEvent::new(
            at_s,
            Fault::ConsumerCrash { target: Target::Random(Selector::Consumers), step: crash_step(rng) },
            after,
        ),
        FaultKind::ConsumerCrash => return None,
        FaultKind::Partition => {
            let partition = [PartitionKind::Halves, PartitionKind::Isolate, PartitionKind::OneWay][rng.below(3) as usize];
            let targets = match partition {
                PartitionKind::Halves => Vec::new(),
                _ => vec![random_server(scenario, rng)],
            };
            NemesisEvent::new(at_s, Fault::Partition { partition, targets, from: Vec::new() }, after)
        }
        FaultKind::Latency => {
            let min_ms = rng.below(50);
            let max_ms = min_ms + rng.between(10, 500);
            let targets = network_targets(rng);
            NemesisEvent::new(at_s, Fault::Latency { targets, latency_ms: [min_ms, max_ms] }, after)
        }
        FaultKind::Loss => {
            let loss_rate = rng.between(1, 50) as f64 / 100.0;
            let targets = network_targets(rng);
            NemesisEvent::new(at_s, Fault::Loss { targets, loss_rate }, after)
        }
        FaultKind::LinkLatency => {
            // One broker's link to one other server: a slow cable, a
            // congested switch port, one bad route.
            let min_ms = rng.below(100);
            let max_ms = min_ms + rng.between(10, 1_000);
            let targets = vec![Target::Random(Selector::Brokers)];
            let from = vec![random_server(scenario, rng)];
            NemesisEvent::new(at_s, Fault::LinkLatency { targets, from, latency_ms: [min_ms, max_ms] }, after)
        }
        FaultKind::ClockSkew => {
            let skew_ms = signed(rng, 10_000);
            NemesisEvent::new(at_s, Fault::ClockSkew { target: random_server(scenario, rng), skew_ms }, after)
        }
        FaultKind::ClockJump => {
            let jump_ms = signed(rng, 30_000);
            // Most jumps are corrected within the outage; a few stay.
            let persist = rng.chance(0.2);
            let heal_after_s = (!persist).then_some(ms_to_secs(down_ms));
            let fault = Fault::ClockJump { target: random_server(scenario, rng), jump_ms };
            NemesisEvent { at_s, fault, after_s: heal_after_s, persist }
        }
        FaultKind::DiskFault => {
            // A flipped byte destroys the one message whose entry it hits
            // (the history names it and the checker excuses exactly that
            // one); the broker must lose nothing else.
            let disk = [
                DiskFaultKind::SlowFsync,
                DiskFaultKind::WriteError,
                DiskFaultKind::FsyncError,
                DiskFaultKind::Full,
                DiskFaultKind::FlipByte,
            ][rng.below(5) as usize];
            let heal_after_s = if disk == DiskFaultKind::FlipByte { None } else { after };
            NemesisEvent::new(at_s, Fault::DiskFault { target: Target::Random(Selector::Brokers), disk }, heal_after_s)
        }
    })
}

/// A non-zero number in `-max..=max`.
fn signed(rng: &mut Rng, max: u64) -> i64 {
    let magnitude = rng.between(1, max) as i64;
    if rng.chance(0.5) {
        -magnitude
    } else {
        magnitude
    }
}

/// Where a generated consumer crash strikes: at once, before the effect or
/// between the effect and the acknowledgement, a third of the time each.
fn crash_step(rng: &mut Rng) -> Option<CrashStep> {
    [None, Some(CrashStep::BeforeEffect), Some(CrashStep::AfterEffect)][rng.below(3) as usize]
}

/// Consumer crashes asked for by the workload (`crash_rate_per_min`), in every
/// nemesis mode, so the nemesis is the only thing that crashes processes.
fn workload_crash_events(scenario: &Scenario, seed: u64) -> Vec<NemesisEvent> {
    let duration_ms = scenario.duration_ms();
    let mut events = Vec::new();
    for (i, consumer) in scenario.workload.consumers.iter().enumerate() {
        let mut rng = Rng::new(seed, &format!("workload.consumers[{i}].crash"));
        for at_ms in arrivals(&mut rng, consumer.crash_rate_per_min, duration_ms) {
            let down_ms = rng.between(GENERATED_DOWN_MS_MIN, CONSUMER_CRASH_DOWN_MS_MAX).min(duration_ms - at_ms);
            let target = Target::Random(Selector::Group(consumer.group.clone()));
            let fault = Fault::ConsumerCrash { target, step: crash_step(&mut rng) };
            events.push(NemesisEvent::new(ms_to_secs(at_ms), fault, Some(ms_to_secs(down_ms))));
        }
    }
    events
}

/// Turns events, in time order, into concrete faults.
struct Resolver<'a> {
    /// The scenario whose cluster the targets name.
    scenario: &'a Scenario,
    /// Every node, in canonical order.
    nodes: Vec<Node>,
    /// Draws for `random-*` targets and `halves` splits.
    rng: Rng,
    /// For each node and channel, the `[start, end)` spans a fault holds it.
    busy_ms: BTreeMap<(Node, Channel), Vec<(u64, u64)>>,
}

impl Resolver<'_> {
    fn event(&mut self, event: &NemesisEvent) -> Option<ScheduledFault> {
        let duration_ms = self.scenario.duration_ms();
        let at_ms = secs_to_ms(event.at_s);
        if at_ms >= duration_ms {
            return None;
        }
        let heal_at_ms = if event.persist || event.fault.instantaneous() {
            None
        } else {
            Some(end_ms(at_ms, event.after_s, duration_ms))
        };
        let fault = match &event.fault {
            Fault::Partition { partition: PartitionKind::Halves, .. } => {
                let mut shuffled = self.nodes.clone();
                self.rng.shuffle(&mut shuffled);
                let second = shuffled.split_off(shuffled.len() / 2);
                Fault::Partition {
                    partition: PartitionKind::Isolate,
                    targets: self.names(&shuffled.into_iter().collect()),
                    from: self.names(&second.into_iter().collect()),
                }
            }
            Fault::Partition { partition, targets, from } => {
                let side = self.expand(targets);
                let mut other = if from.is_empty() { self.nodes.iter().cloned().collect() } else { self.expand(from) };
                other.retain(|node| !side.contains(node));
                Fault::Partition { partition: *partition, targets: self.names(&side), from: self.names(&other) }
            }
            fault => {
                // A fault hits one node or lists of them, never both.
                let node = match fault.single_target() {
                    Some((target, _)) => Some(self.take(target, fault.channel(), at_ms, heal_at_ms)?),
                    None => None,
                };
                let mut lists: Vec<Vec<String>> = Vec::new();
                for (_, targets) in fault.target_lists() {
                    let set = self.expand(targets);
                    lists.push(self.names(&set));
                }
                let mut lists = lists.into_iter();
                fault.try_map(|_| node.clone(), |_| lists.next().unwrap_or_default())?
            }
        };
        Some(ScheduledFault { at_ms, fault, heal_at_ms })
    }

    /// The node a fault on `channel` hits over `[at_ms, heal_ms)`. A named
    /// node is taken as written (it was reserved before resolution started).
    /// A `random-*` target picks among nodes whose channel is free for the
    /// whole span and reserves it; if no node is free, the fault is dropped.
    /// Faults that hold no channel, or hold it for no span, take any node.
    fn take(&mut self, target: &Target, channel: Option<Channel>, at_ms: u64, heal_ms: Option<u64>) -> Option<String> {
        match target {
            Target::Node(node) => Some(node.to_string()),
            Target::Random(selector) => {
                let (Some(channel), Some(heal_ms)) = (channel, heal_ms) else {
                    return self.rng.pick(&self.scenario.select(selector)).map(Node::to_string);
                };
                let free: Vec<Node> = self
                    .scenario
                    .select(selector)
                    .into_iter()
                    .filter(|node| {
                        let spans = self.busy_ms.get(&(node.clone(), channel)).map_or(&[][..], Vec::as_slice);
                        spans.iter().all(|&(start, end)| end <= at_ms || heal_ms <= start)
                    })
                    .collect();
                let node = self.rng.pick(&free)?.clone();
                self.busy_ms.entry((node.clone(), channel)).or_default().push((at_ms, heal_ms));
                Some(node.to_string())
            }
            Target::All(_) | Target::Everyone => None,
        }
    }

    /// Every node a list of targets stands for.
    fn expand(&mut self, targets: &[Target]) -> BTreeSet<Node> {
        let mut nodes = BTreeSet::new();
        for target in targets {
            match target {
                Target::Node(node) => {
                    nodes.insert(node.clone());
                }
                Target::Random(selector) => {
                    if let Some(node) = self.rng.pick(&self.scenario.select(selector)) {
                        nodes.insert(node.clone());
                    }
                }
                Target::All(selector) => nodes.extend(self.scenario.select(selector)),
                Target::Everyone => nodes.extend(self.nodes.iter().cloned()),
            }
        }
        nodes
    }

    /// Node names in canonical order (name servers, brokers, producers,
    /// consumers), whatever order the set was built in.
    fn names(&self, set: &BTreeSet<Node>) -> Vec<String> {
        self.nodes.iter().filter(|node| set.contains(node)).map(Node::to_string).collect()
    }
}

/// For a fault that holds one node in a bad state: its channel, its target
/// and the `[start, end)` span, as the resolver computes it.
pub(crate) fn node_fault_span(event: &NemesisEvent, duration_ms: u64) -> Option<(Channel, &Target, u64, u64)> {
    let channel = event.fault.channel()?;
    let (target, _) = event.fault.single_target()?;
    let at_ms = secs_to_ms(event.at_s);
    if at_ms >= duration_ms {
        return None;
    }
    Some((channel, target, at_ms, end_ms(at_ms, event.after_s, duration_ms)))
}

/// When a fault starting at `at_ms` ends: `after_s` later, or at the end of
/// the safety phase when left out; at least 1 ms long and never later than
/// `duration_ms`.
fn end_ms(at_ms: u64, after_s: Option<f64>, duration_ms: u64) -> u64 {
    let end_ms = after_s.map_or(duration_ms, |after| at_ms.saturating_add(secs_to_ms(after)));
    end_ms.clamp(at_ms + 1, duration_ms)
}

/// A concrete fault written back as a schedule event with named targets.
fn to_event(fault: &ScheduledFault) -> NemesisEvent {
    let node = |name: &String| -> Target {
        Target::Node(name.parse().unwrap_or_else(|error| panic!("schedule names a node this crate cannot parse: {error}")))
    };
    let written = fault.fault.try_map(|name| Some(node(name)), |names| names.iter().map(node).collect());
    NemesisEvent {
        at_s: ms_to_secs(fault.at_ms),
        fault: written.expect("every node maps"),
        after_s: fault.heal_at_ms.map(|heal| ms_to_secs(heal.saturating_sub(fault.at_ms))),
        persist: fault.heal_at_ms.is_none() && fault.fault.may_persist(),
    }
}

/// Milliseconds as seconds with three decimals, e.g. `20.000s`.
struct Secs(u64);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

impl fmt::Display for ScheduledFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", Secs(self.at_ms), self.fault)?;
        if let Some(heal) = self.heal_at_ms {
            write!(f, " until {}", Secs(heal))?;
        }
        Ok(())
    }
}
