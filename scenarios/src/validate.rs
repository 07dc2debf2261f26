//! The rules a parsed scenario must follow, each reported with its field path.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Problem;
use crate::fault::{Channel, Fault, NemesisEvent};
use crate::resolve::{node_fault_span, secs_to_ms};
use crate::fault::PartitionKind;
use crate::spec::{ConsumerKind, NemesisMode, Scenario, DELAY_LEVELS_MAX, DELAY_MS_MAX};

/// Most times a group may consume a message again before it is dead-lettered.
const MAX_RECONSUME_TIMES_MAX: u32 = 1_000;
use crate::target::{is_valid_resource_name, Node, Role, Target};

/// Largest replica count the design allows (one master and two slaves).
pub const REPLICAS_MAX: u32 = 3;

impl Scenario {
    /// Every rule this scenario breaks, in file order; empty when it is valid.
    /// [`Scenario::from_toml_str`] already calls this; call it again after
    /// editing a scenario by hand.
    pub fn validate(&self) -> Vec<Problem> {
        let mut v = Validator { scenario: self, problems: Vec::new() };
        v.top();
        v.topology();
        v.workload();
        v.nemesis();
        v.expect();
        v.problems
    }
}

/// Collects problems while walking the scenario.
struct Validator<'a> {
    /// The scenario being checked.
    scenario: &'a Scenario,
    /// Problems found so far.
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    fn at_least(&mut self, path: impl Into<String>, value: u64, min: u64) {
        if value < min {
            self.fail(path, format!("must be at least {min}, got {value}"));
        }
    }

    fn probability(&mut self, path: impl Into<String>, value: f64) {
        if !(0.0..=1.0).contains(&value) {
            self.fail(path, format!("must be in 0.0..=1.0, got {value}"));
        }
    }

    fn cost(&mut self, cost: &crate::cost::Cost) {
        self.at_least("topology.cost.broker_workers", cost.broker_workers.into(), 1);
        if !(1..=1_000).contains(&cost.clock_step_us) {
            self.fail("topology.cost.clock_step_us", format!("must be in 1..=1000, got {}", cost.clock_step_us));
        }
        for (path, value) in [
            ("send_us", cost.send_us),
            ("sync_send_us", cost.sync_send_us),
            ("flush_us", cost.flush_us),
            ("pull_us", cost.pull_us),
            ("other_us", cost.other_us),
            ("per_kib_us", cost.per_kib_us),
            ("fsync_ms[0]", cost.fsync_ms[0]),
            ("fsync_ms[1]", cost.fsync_ms[1]),
            ("link_latency_ms[0]", cost.link_latency_ms[0]),
            ("link_latency_ms[1]", cost.link_latency_ms[1]),
            ("worker_stall_every_ms", cost.worker_stall_every_ms),
            ("worker_stall_ms[0]", cost.worker_stall_ms[0]),
            ("worker_stall_ms[1]", cost.worker_stall_ms[1]),
        ] {
            self.rate(format!("topology.cost.{path}"), value);
        }
        for (path, value) in [("disk_mib_s", cost.disk_mib_s), ("link_mib_s", cost.link_mib_s)] {
            if !value.is_finite() || value <= 0.0 {
                self.fail(format!("topology.cost.{path}"), format!("must be a finite number > 0, got {value}"));
            }
        }
        self.probability("topology.cost.worker_late_share", cost.worker_late_share);
        if cost.fsync_ms[1] < cost.fsync_ms[0] {
            self.fail("topology.cost.fsync_ms", format!("the 99th percentile must be at least the median, got {:?}", cost.fsync_ms));
        }
        if cost.worker_stall_ms[1] < cost.worker_stall_ms[0] {
            self.fail("topology.cost.worker_stall_ms", format!("the 99th percentile must be at least the median, got {:?}", cost.worker_stall_ms));
        }
        if cost.link_latency_ms[1] < cost.link_latency_ms[0] {
            self.fail("topology.cost.link_latency_ms", format!("must be [low, high] with low <= high, got {:?}", cost.link_latency_ms));
        }
        if cost.link_latency_ms[1] > 60_000.0 || cost.fsync_ms[1] > 60_000.0 || cost.worker_stall_ms[1] > 60_000.0 {
            self.fail("topology.cost", "latencies above 60 s are not a cost model".to_string());
        }
    }

    fn rate(&mut self, path: impl Into<String>, value: f64) {
        if !value.is_finite() || value < 0.0 {
            self.fail(path, format!("must be a finite number >= 0, got {value}"));
        }
    }

    fn positive_s(&mut self, path: impl Into<String>, value: f64) -> bool {
        let ok = value.is_finite() && value > 0.0;
        if !ok {
            self.fail(path, format!("must be a finite number of seconds > 0, got {value}"));
        }
        ok
    }

    fn top(&mut self) {
        let s = self.scenario;
        let name_ok = !s.name.is_empty()
            && s.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            self.fail("name", format!("must match ^[a-z0-9-]+$, got `{}`", s.name));
        }
        if s.about.trim().is_empty() {
            self.fail("about", "must say in one sentence what the scenario tests");
        }
        self.at_least("duration_s", s.duration_s, 1);
        self.at_least("tail_s", s.tail_s, 1);
        let stop_ms = s.producer_stop_ms();
        if !s.workload.producers.is_empty() && s.duration_s >= 1 && stop_ms <= crate::spec::WORKLOAD_START_MS {
            self.fail(
                "duration_s",
                format!(
                    "the producers would stop at {stop_ms} ms, before the workload starts at {} ms: lengthen duration_s or tail_s",
                    crate::spec::WORKLOAD_START_MS
                ),
            );
        }
    }

    fn topology(&mut self) {
        let t = &self.scenario.topology;
        self.at_least("topology.name_servers", t.name_servers.into(), 1);
        self.at_least("topology.broker_groups", t.broker_groups.into(), 1);
        if !(1..=REPLICAS_MAX).contains(&t.replicas) {
            self.fail("topology.replicas", format!("must be in 1..={REPLICAS_MAX}, got {}", t.replicas));
        }
        if t.controllers > 5 || (t.controllers > 0 && t.controllers % 2 == 0) {
            self.fail("topology.controllers", format!("must be 0, 1, 3 or 5 (a Raft group wants an odd count), got {}", t.controllers));
        }
        if t.replication == crate::ReplicationMode::Sync && t.replicas < 2 {
            self.fail("topology.replication", "sync replication needs a slave: set topology.replicas to 2 or 3".to_string());
        }
        self.at_least("topology.flush_interval_ms", t.flush_interval_ms, 1);
        self.at_least("topology.queues_per_topic", t.queues_per_topic.into(), 1);
        let levels = &t.delay_levels_ms;
        if levels.is_empty() || levels.len() > DELAY_LEVELS_MAX {
            self.fail("topology.delay_levels_ms", format!("must hold 1..={DELAY_LEVELS_MAX} delays, got {}", levels.len()));
        } else if let Some(i) = levels.iter().position(|&ms| !(1..=DELAY_MS_MAX).contains(&ms)) {
            self.fail(format!("topology.delay_levels_ms[{i}]"), format!("must be in 1..={DELAY_MS_MAX} ms, got {}", levels[i]));
        } else if let Some(i) = (1..levels.len()).find(|&i| levels[i] < levels[i - 1]) {
            self.fail(
                format!("topology.delay_levels_ms[{i}]"),
                format!("{} ms is shorter than the level before it ({} ms): retries never wait less than the one before", levels[i], levels[i - 1]),
            );
        }
    }

    fn workload(&mut self) {
        let w = &self.scenario.workload;
        if w.producers.is_empty() {
            self.fail("workload.producers", "needs at least one producer");
        }
        // A topic is ordered or not; mixing would make `expect.order` meaningless.
        let mut fifo_by_topic: BTreeMap<&str, bool> = BTreeMap::new();
        for (i, p) in w.producers.iter().enumerate() {
            let path = format!("workload.producers[{i}]");
            self.at_least(format!("{path}.count"), p.count.into(), 1);
            if !is_valid_resource_name(&p.topic) {
                self.fail(format!("{path}.topic"), format!("must match ^[A-Za-z0-9_-]+$, got `{}`", p.topic));
            }
            self.rate(format!("{path}.rate_per_s"), p.rate_per_s);
            if let Some(share) = p.gray_share {
                self.probability(format!("{path}.gray_share"), share);
            }
            if let Some(n) = p.in_flight_max {
                self.at_least(format!("{path}.in_flight_max"), n.into(), 1);
            }
            if !(1..=32).contains(&p.batch) {
                self.fail(format!("{path}.batch"), format!("must be 1 to 32 messages a request, got {}", p.batch));
            } else if p.batch > 1 && (p.fifo || p.transaction.is_some() || p.timer.is_some()) {
                self.fail(format!("{path}.batch"), "a batch holds plain messages: not with fifo, transaction or timer");
            }
            if let Some(share) = p.request_share {
                self.probability(format!("{path}.request_share"), share);
                if p.batch > 1 || p.fifo || p.transaction.is_some() || p.timer.is_some() {
                    self.fail(format!("{path}.request_share"), "requests are plain single sends: not with batch, fifo, transaction or timer");
                }
                if !w.consumers.iter().any(|c| c.topic == p.topic && c.replies) {
                    self.fail(format!("{path}.request_share"), format!("no consumer group of topic `{}` replies (`replies = true`)", p.topic));
                }
                if !(100..=60_000).contains(&p.request_timeout_ms) {
                    self.fail(format!("{path}.request_timeout_ms"), format!("must be 100 to 60000 ms, got {}", p.request_timeout_ms));
                }
            }
            self.at_least(format!("{path}.sharding_keys"), p.sharding_keys, 1);
            for (j, tag) in p.tags.iter().enumerate() {
                if !is_valid_tag(tag) {
                    self.fail(format!("{path}.tags[{j}]"), format!("must be a non-empty tag without `|`, `*` or spaces, got `{tag}`"));
                }
            }
            self.at_least(format!("{path}.body_bytes"), p.body_bytes.into(), 1);
            if let Some(&other) = fifo_by_topic.get(p.topic.as_str()) {
                if other != p.fifo {
                    self.fail(format!("{path}.fifo"), format!("every producer of topic `{}` must agree on fifo", p.topic));
                }
            }
            fifo_by_topic.insert(&p.topic, p.fifo);
            if let Some(tx) = &p.transaction {
                let path = format!("{path}.transaction");
                if !is_valid_resource_name(&tx.group) {
                    self.fail(format!("{path}.group"), format!("must match ^[A-Za-z0-9_-]+$, got `{}`", tx.group));
                }
                if p.fifo {
                    self.fail(path.clone(), "transactional sends are not ordered sends: drop fifo or the transaction");
                }
                if p.timer.is_some() {
                    self.fail(path.clone(), "a transactional message may not have a timer or a delay level");
                }
                self.probability(format!("{path}.rollback_share"), tx.rollback_share);
                self.probability(format!("{path}.unknown_share"), tx.unknown_share);
                for (name, [lo, hi]) in [("local_ms", tx.local_ms), ("check_ms", tx.check_ms)] {
                    if lo > hi || hi > 600_000 {
                        self.fail(format!("{path}.{name}"), format!("must be [min, max] with min <= max <= 600000, got [{lo}, {hi}]"));
                    }
                }
                if let Some(at) = tx.retire_at_s {
                    if !(at > 0.0 && at < self.scenario.duration_s as f64) {
                        self.fail(format!("{path}.retire_at_s"), format!("must be within the safety phase (0, {}) s, got {at}", self.scenario.duration_s));
                    }
                }
            }
            if let Some(timer) = &p.timer {
                let path = format!("{path}.timer");
                if p.fifo {
                    self.fail(path.clone(), "timers and delays reorder messages: drop fifo or the timer");
                }
                self.probability(format!("{path}.share"), timer.share);
                self.probability(format!("{path}.delay_level_share"), timer.delay_level_share);
                if timer.share + timer.delay_level_share > 1.0 {
                    self.fail(path.clone(), "share and delay_level_share add up to more than 1");
                }
                if timer.max_ms == 0 || timer.max_ms > 24 * 3_600_000 {
                    self.fail(format!("{path}.max_ms"), format!("must be in 1..=86400000 ms, got {}", timer.max_ms));
                }
                let levels = self.scenario.topology.delay_levels_ms.len() as u32;
                if timer.delay_level_max == 0 || timer.delay_level_max > levels {
                    self.fail(format!("{path}.delay_level_max"), format!("must be in 1..={levels} (the topology's levels), got {}", timer.delay_level_max));
                }
            }
        }
        let t = &self.scenario.topology;
        if let Some(cost) = &t.cost {
            self.cost(cost);
        }
        self.at_least("topology.transaction_timeout_ms", t.transaction_timeout_ms, 1);
        self.at_least("topology.transaction_check_interval_ms", t.transaction_check_interval_ms, 1);
        self.at_least("topology.transaction_check_max", t.transaction_check_max.into(), 1);
        let mut groups = BTreeSet::new();
        for (i, c) in w.consumers.iter().enumerate() {
            let path = format!("workload.consumers[{i}]");
            if !is_valid_resource_name(&c.group) {
                self.fail(format!("{path}.group"), format!("must match ^[A-Za-z0-9_-]+$, got `{}`", c.group));
            } else if !groups.insert(c.group.as_str()) {
                self.fail(format!("{path}.group"), format!("group `{}` is declared twice", c.group));
            }
            if !fifo_by_topic.contains_key(c.topic.as_str()) {
                self.fail(format!("{path}.topic"), format!("no producer sends to topic `{}`", c.topic));
            }
            self.at_least(format!("{path}.count"), c.count.into(), 1);
            if !is_valid_tag_expression(&c.tags) {
                self.fail(format!("{path}.tags"), format!("must be `*` or `TagA || TagB`, got `{}`", c.tags));
            }
            if let Some(sql) = &c.sql {
                if sql.trim().is_empty() {
                    self.fail(format!("{path}.sql"), "must be an SQL92 condition, got an empty one");
                }
                if c.tags.trim() != "*" {
                    self.fail(format!("{path}.sql"), format!("selects instead of tags, which must stay `*`, got `{}`", c.tags));
                }
            }
            self.probability(format!("{path}.failure_rate"), c.failure_rate);
            self.rate(format!("{path}.crash_rate_per_min"), c.crash_rate_per_min);
            self.probability(format!("{path}.poison_key_share"), c.poison_key_share);
            if let Some(at_s) = c.dlq_resend_at_s {
                let end_s = self.scenario.duration_s as f64 + self.scenario.tail_s as f64;
                if !(at_s > 0.0 && at_s < end_s) {
                    self.fail(format!("{path}.dlq_resend_at_s"), format!("must be inside the run, 0 < at < {end_s}, got {at_s}"));
                }
            }
            if let Some(at_s) = c.offset_reset_at_s {
                let end_s = self.scenario.duration_s as f64;
                if !(at_s > 0.0 && at_s < end_s) {
                    self.fail(format!("{path}.offset_reset_at_s"), format!("must be while the clients run, 0 < at < {end_s}, got {at_s}"));
                }
            }
            if !(c.offset_reset_rewind_s.is_finite() && c.offset_reset_rewind_s >= 0.0) {
                self.fail(format!("{path}.offset_reset_rewind_s"), format!("must be a number of seconds >= 0, got {}", c.offset_reset_rewind_s));
            }
            let [lo, hi] = c.process_ms;
            if lo > hi || hi > 600_000 {
                self.fail(format!("{path}.process_ms"), format!("must be [min, max] with min <= max <= 600000, got [{lo}, {hi}]"));
            }
            if c.broadcast {
                if c.kind == ConsumerKind::Simple {
                    self.fail(format!("{path}.broadcast"), "is for push consumers; simple consumers share their group's messages");
                }
                if c.failure_rate > 0.0 || c.poison_key_share > 0.0 {
                    self.fail(
                        format!("{path}.broadcast"),
                        "a broadcasting group has no retry topic and drops what fails: failure_rate and poison_key_share must be 0",
                    );
                }
                if c.offset_reset_at_s.is_some() || c.dlq_resend_at_s.is_some() {
                    self.fail(format!("{path}.broadcast"), "a broadcasting group keeps its offsets on its consumers: no offset reset or dead-letter resend");
                }
            }
            if c.replies {
                if c.kind == ConsumerKind::Simple || c.broadcast {
                    self.fail(format!("{path}.replies"), "responders are push consumers in clustering mode: one reply per request");
                }
                if w.consumers[..i].iter().any(|other| other.replies && other.topic == c.topic) {
                    self.fail(format!("{path}.replies"), format!("another group of topic `{}` replies already: one reply per request", c.topic));
                }
            }
            if c.kind == ConsumerKind::Simple {
                if !(c.invisible_s.is_finite() && (1.0..=43_200.0).contains(&c.invisible_s)) {
                    self.fail(format!("{path}.invisible_s"), format!("must be between 1 and 43200 seconds, got {}", c.invisible_s));
                }
                if c.offset_reset_at_s.is_some() {
                    self.fail(format!("{path}.offset_reset_at_s"), "is for push consumers; a simple consumer's group has no offsets to reset here");
                }
            } else if c.invisible_s != 10.0 {
                self.fail(format!("{path}.invisible_s"), "is for simple consumers (kind = \"simple\")");
            }
            if c.max_reconsume_times > MAX_RECONSUME_TIMES_MAX {
                self.fail(format!("{path}.max_reconsume_times"), format!("must be at most {MAX_RECONSUME_TIMES_MAX}, got {}", c.max_reconsume_times));
            }
        }
        for (i, h) in w.hostile.iter().enumerate() {
            let path = format!("workload.hostile[{i}]");
            self.at_least(format!("{path}.count"), h.count.into(), 1);
            self.rate(format!("{path}.rate_per_s"), h.rate_per_s);
            if !is_valid_resource_name(&h.topic) {
                self.fail(format!("{path}.topic"), format!("must match ^[A-Za-z0-9_-]+$, got `{}`", h.topic));
            } else if fifo_by_topic.contains_key(h.topic.as_str()) || w.consumers.iter().any(|c| c.topic == h.topic) {
                self.fail(
                    format!("{path}.topic"),
                    format!("`{}` is a topic of the well-behaved clients; hostile messages need one of their own", h.topic),
                );
            }
        }
    }

    fn nemesis(&mut self) {
        let n = &self.scenario.nemesis;
        match n.mode {
            NemesisMode::None | NemesisMode::Swarm if !n.events.is_empty() => {
                self.fail("nemesis.events", format!("only for mode = \"schedule\", but mode is {:?}", mode_name(n.mode)));
            }
            NemesisMode::Schedule if n.events.is_empty() => {
                self.fail("nemesis.events", "mode = \"schedule\" needs at least one [[nemesis.events]]");
            }
            _ => {}
        }
        if n.mode != NemesisMode::Swarm && n.swarm.is_some() {
            self.fail("nemesis.swarm", format!("only for mode = \"swarm\", but mode is {:?}", mode_name(n.mode)));
        }
        if let Some(knobs) = &n.swarm {
            for (kind, rate) in knobs.rates() {
                if let Some(rate) = rate {
                    self.rate(format!("nemesis.swarm.{}", kind.knob()), rate);
                }
            }
            if let Some(max_down_s) = knobs.max_down_s {
                self.positive_s("nemesis.swarm.max_down_s", max_down_s);
            }
        }
        for (i, event) in n.events.iter().enumerate() {
            self.event(i, event);
        }
        self.overlaps();
    }

    fn event(&mut self, i: usize, event: &NemesisEvent) {
        let path = format!("nemesis.events[{i}]");
        let at_s = event.at_s;
        let duration_s = self.scenario.duration_s;
        if !(at_s.is_finite() && at_s >= 0.0 && secs_to_ms(at_s) < self.scenario.duration_ms()) {
            self.fail(format!("{path}.at_s"), format!("must be in 0..{duration_s} (the safety phase), got {at_s}"));
        }
        let fault = &event.fault;
        if let Some((target, roles)) = fault.single_target() {
            self.single_target(&path, target, roles);
        }
        for (field, targets) in fault.target_lists() {
            self.target_list(&format!("{path}.{field}"), targets);
        }
        let end_field = fault.end_field();
        if fault.instantaneous() && event.after_s.is_some() {
            self.fail(format!("{path}.{end_field}"), format!("`{fault}` is instantaneous; leave {end_field} out"));
        } else if event.persist && event.after_s.is_some() {
            self.fail(format!("{path}.{end_field}"), format!("a `persist` {} never ends; leave {end_field} out", fault.name()));
        } else {
            self.end(&path, end_field, at_s, event.after_s);
        }
        match fault {
            Fault::Partition { partition: PartitionKind::Halves, targets, from } if !targets.is_empty() || !from.is_empty() => {
                self.fail(format!("{path}.targets"), "`halves` splits the whole cluster by the seed; leave targets and from out");
            }
            Fault::Partition { partition: PartitionKind::Halves, .. } => {}
            Fault::Partition { targets, .. } if targets.is_empty() => {
                self.fail(format!("{path}.targets"), "needs at least one target to cut off");
            }
            Fault::Latency { targets, .. } | Fault::Loss { targets, .. } if targets.is_empty() => {
                self.fail(format!("{path}.targets"), "needs at least one target (`all` for the whole network)");
            }
            Fault::LinkLatency { targets, .. } if targets.is_empty() => {
                self.fail(format!("{path}.targets"), "needs one end of the link");
            }
            Fault::LinkLatency { from, .. } if from.is_empty() => {
                self.fail(format!("{path}.from"), "needs the other end of the link");
            }
            _ => {}
        }
        match fault {
            Fault::Latency { latency_ms, .. } | Fault::LinkLatency { latency_ms, .. } if latency_ms[0] > latency_ms[1] => {
                self.fail(format!("{path}.latency_ms"), format!("must be [min, max] with min <= max, got {latency_ms:?}"));
            }
            Fault::Loss { loss_rate, .. } => self.probability(format!("{path}.loss_rate"), *loss_rate),
            _ => {}
        }
    }

    /// A fault that hits exactly one node of an allowed role.
    fn single_target(&mut self, event_path: &str, target: &Target, roles: &[Role]) {
        let path = format!("{event_path}.target");
        if !target.is_single() {
            self.fail(path, format!("must name one node or random-<role>, got `{target}` (all-* is for partition, latency and loss)"));
            return;
        }
        if let Some(role) = target.role() {
            if !roles.contains(&role) {
                let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                self.fail(path, format!("this fault hits a {}, got `{target}`", names.join(" or ")));
                return;
            }
        }
        self.exists(&path, target);
    }

    fn target_list(&mut self, path: &str, targets: &[Target]) {
        for (i, target) in targets.iter().enumerate() {
            self.exists(&format!("{path}[{i}]"), target);
        }
    }

    /// The target names nodes that this scenario's topology and workload have.
    fn exists(&mut self, path: &str, target: &Target) {
        let s = self.scenario;
        match target {
            Target::Node(node) => {
                if !s.has_node(node) {
                    let same_role: Vec<String> = s
                        .nodes()
                        .iter()
                        .filter(|n| n.role() == node.role())
                        .map(|n| n.to_string())
                        .collect();
                    let have = if same_role.is_empty() { "none".to_string() } else { same_role.join(", ") };
                    self.fail(path, format!("`{node}` is not a node of this scenario (its {}s: {have})", node.role().as_str()));
                }
            }
            Target::Random(selector) | Target::All(selector) => {
                if s.select(selector).is_empty() {
                    self.fail(path, format!("`{target}` selects no node of this scenario"));
                }
            }
            Target::Everyone => {}
        }
    }

    /// A fault's optional end: positive and within the safety phase.
    fn end(&mut self, event_path: &str, field: &str, at_s: f64, after_s: Option<f64>) {
        let Some(after_s) = after_s else { return };
        let path = format!("{event_path}.{field}");
        // Compared in whole milliseconds, as the resolver computes them, so a
        // fault ending exactly at duration_s is not refused by a rounding error.
        if self.positive_s(path.clone(), after_s) && at_s.is_finite() {
            let duration_s = self.scenario.duration_s;
            let end_ms = secs_to_ms(at_s).saturating_add(secs_to_ms(after_s));
            if end_ms > self.scenario.duration_ms() {
                let end_s = end_ms as f64 / 1000.0;
                self.fail(path, format!("the fault would end at {end_s} s, after the safety phase (duration_s = {duration_s}); the tail must be fault-free"));
            }
        }
    }

    /// A named node is not hit by a second fault of the same kind (process,
    /// disk, clock skew) while the first still holds, which would make
    /// "restart" or "heal" ambiguous.
    fn overlaps(&mut self) {
        let duration_ms = self.scenario.duration_ms();
        let mut busy: BTreeMap<(Node, Channel), (usize, u64)> = BTreeMap::new();
        let mut order: Vec<(usize, &NemesisEvent)> = self.scenario.nemesis.events.iter().enumerate().collect();
        order.sort_by(|a, b| a.1.at_s.total_cmp(&b.1.at_s).then(a.0.cmp(&b.0)));
        for (i, event) in order {
            let Some((channel, Target::Node(node), at_ms, end_ms)) = node_fault_span(event, duration_ms) else {
                continue;
            };
            let key = (node.clone(), channel);
            if let Some(&(earlier, until_ms)) = busy.get(&key) {
                if at_ms < until_ms {
                    let until_s = until_ms as f64 / 1000.0;
                    let fault = self.scenario.nemesis.events[earlier].fault.name();
                    self.fail(
                        format!("nemesis.events[{i}].target"),
                        format!("`{node}` is still under nemesis.events[{earlier}] ({fault}) until {until_s} s"),
                    );
                    continue;
                }
            }
            busy.insert(key, (i, end_ms));
        }
    }

    fn expect(&mut self) {
        let s = self.scenario;
        let e = &s.expect;
        if e.order && !s.workload.producers.iter().any(|p| p.fifo) {
            self.fail("expect.order", "needs a producer with fifo = true");
        }
        if e.exactly_once && s.workload.consumers.is_empty() {
            self.fail("expect.exactly_once", "needs at least one consumer group");
        }
        if let Some(progress) = &e.progress {
            let share = progress.tail_acked_share;
            if !(share > 0.0 && share <= 1.0) {
                self.fail("expect.progress.tail_acked_share", format!("must be in (0, 1], got {share}"));
            }
            let from_ms = s.duration_ms().saturating_add(progress.grace_s.saturating_mul(1000));
            let stop_ms = s.producer_stop_ms();
            if from_ms >= stop_ms {
                self.fail(
                    "expect.progress.grace_s",
                    format!(
                        "the window would open at {} s, when producers have stopped ({} s: tail_s less the liveness bound and {} s)",
                        from_ms / 1000,
                        stop_ms / 1000,
                        crate::resolve::PRODUCER_STOP_MARGIN_MS / 1000
                    ),
                );
            }
        }
        if let Some(bound) = e.liveness_bound_s {
            if s.workload.consumers.is_empty() {
                self.fail("expect.liveness_bound_s", "needs at least one consumer group");
            }
            if bound == 0 || bound > s.tail_s {
                self.fail("expect.liveness_bound_s", format!("must be in 1..={} (tail_s), got {bound}", s.tail_s));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, mark) in e.reached.iter().enumerate() {
            let path = format!("expect.reached[{i}]");
            if mark.is_empty() || !mark.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
                self.fail(path, format!("a mark name is kebab-case ([a-z0-9-]+), got {mark:?}"));
            } else if !seen.insert(mark.as_str()) {
                self.fail(path, format!("mark {mark:?} is listed twice"));
            }
        }
    }
}

fn mode_name(mode: NemesisMode) -> &'static str {
    match mode {
        NemesisMode::None => "none",
        NemesisMode::Schedule => "schedule",
        NemesisMode::Swarm => "swarm",
    }
}

/// A tag a producer may set: non-empty, no expression syntax, no whitespace.
fn is_valid_tag(tag: &str) -> bool {
    !tag.is_empty() && !tag.contains(['|', '*']) && !tag.chars().any(char::is_whitespace)
}

/// RocketMQ's tag expression: `*`, or tags joined by `||`.
fn is_valid_tag_expression(expression: &str) -> bool {
    expression.trim() == "*" || expression.split("||").all(|tag| is_valid_tag(tag.trim()))
}
