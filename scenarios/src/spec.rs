//! The scenario file's types, one struct per TOML table.
//!
//! Every table denies unknown fields, so a misspelt knob is an error rather
//! than a silent default. Fields with a default say so in their doc line.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Problem, ScenarioError};
use crate::cost::Cost;
use crate::fault::{FaultKind, NemesisEvent};

/// One scenario: a cluster, a workload, the faults injected into it, and what
/// must still hold afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The scenario's name (`[a-z0-9-]+`), equal to its file stem so that
    /// `mqsim run <name>` finds exactly one file.
    pub name: String,
    /// One sentence saying what the scenario tests, shown by `mqsim list`.
    pub about: String,
    /// Length of the safety phase, in which faults are injected.
    pub duration_s: u64,
    /// Length of the fault-free tail after the safety phase, in which the
    /// cluster is healed and liveness must hold.
    pub tail_s: u64,
    /// The cluster: name servers, broker groups, flush mode.
    pub topology: Topology,
    /// The clients: producers and consumer groups.
    pub workload: Workload,
    /// The faults: none, an explicit schedule, or seeded swarm rates. Defaults
    /// to no faults.
    #[serde(default)]
    pub nemesis: Nemesis,
    /// The invariants the checker must find holding at the end.
    pub expect: Expect,
}

/// The shape of the simulated cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Number of name servers (`namesrv-0..`); brokers register with all of them.
    pub name_servers: u32,
    /// Number of broker groups, each owning its share of every topic's queues.
    pub broker_groups: u32,
    /// Broker processes per group, 1..=3: one master (replica 0 at the
    /// start) and its slaves. Default 1.
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// How a master acknowledges a send relative to its slaves, as
    /// RocketMQ's `brokerRole` (ASYNC_MASTER or SYNC_MASTER); needs
    /// `replicas` > 1 to be `sync`. Default `async`.
    #[serde(default = "default_replication")]
    pub replication: ReplicationMode,
    /// Controller processes (`controller-N`), 0 or an odd number up to 5.
    /// With controllers, brokers run in controller mode: the controllers
    /// elect each group's master and replace it when it fails. Default 0
    /// (replica 0 is master for good).
    #[serde(default)]
    pub controllers: u32,
    /// When a broker acknowledges a write relative to fsync.
    pub flush: FlushMode,
    /// Period of the background flush in async mode, as RocketMQ's
    /// `flushIntervalCommitLog`. Default 500.
    #[serde(default = "default_flush_interval_ms")]
    pub flush_interval_ms: u64,
    /// Queues each broker group creates for every topic. Default 4.
    #[serde(default = "default_queues_per_topic")]
    pub queues_per_topic: u32,
    /// The brokers' delay levels in ms, level 1 first, as RocketMQ's
    /// `messageDelayLevel`: a retry after `n` reconsumptions waits at level
    /// `n + 3`. Default: RocketMQ's 18 levels at a tenth of their delays
    /// (100 ms, 500 ms, 1 s, 3 s, ... 12 min), so retries fit a short run.
    #[serde(default = "default_delay_levels_ms")]
    pub delay_levels_ms: Vec<u64>,
    /// A half message is checked back once this old with no end, as
    /// RocketMQ's `transactionTimeOut`. Default 2000 (RocketMQ: 6000).
    #[serde(default = "default_transaction_timeout_ms")]
    pub transaction_timeout_ms: u64,
    /// How often brokers scan half messages for check-back, as RocketMQ's
    /// `transactionCheckInterval`. Default 1000 (RocketMQ: 60000).
    #[serde(default = "default_transaction_check_interval_ms")]
    pub transaction_check_interval_ms: u64,
    /// Checks of one half before it is moved aside, as RocketMQ's
    /// `transactionCheckMax`. Default 15.
    #[serde(default = "default_transaction_check_max")]
    pub transaction_check_max: u32,
    /// What work costs in simulated time (`[topology.cost]`): the brokers'
    /// request service times, disk bandwidth and fsync latency, link latency
    /// and bandwidth. Absent, work is free, as correctness sweeps want; an
    /// empty `[topology.cost]` takes [`Cost`]'s defaults, calibrated on the
    /// real broker on this project's 2-core machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
}

fn default_transaction_timeout_ms() -> u64 {
    2_000
}

fn default_transaction_check_interval_ms() -> u64 {
    1_000
}

fn default_transaction_check_max() -> u32 {
    15
}

/// When producers and consumers start, in ms from a run's start: after the
/// brokers registered and the topics exist. A scenario's producers must
/// stop after it.
pub const WORKLOAD_START_MS: u64 = 3_000;

/// Most delay levels a topology may have (the broker's limit).
pub const DELAY_LEVELS_MAX: usize = 64;

/// Longest delay a level may have: a year (the broker's limit).
pub const DELAY_MS_MAX: u64 = 365 * 24 * 3_600_000;

fn default_delay_levels_ms() -> Vec<u64> {
    [1, 5, 10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600, 7200].iter().map(|s| s * 100).collect()
}

fn default_replicas() -> u32 {
    1
}

fn default_flush_interval_ms() -> u64 {
    500
}

fn default_queues_per_topic() -> u32 {
    4
}

fn default_resend_max() -> u32 {
    2
}

fn default_true() -> bool {
    true
}

fn default_body_bytes() -> u32 {
    64
}

fn default_tag_expression() -> String {
    "*".to_string()
}

/// RocketMQ's `flushDiskType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlushMode {
    /// SYNC_FLUSH: a send is acknowledged only after its bytes are fsynced, so
    /// a power loss cannot lose it.
    Sync,
    /// ASYNC_FLUSH: acknowledged once in the page cache and flushed every
    /// `flush_interval_ms`; a process crash keeps it, a power loss may not.
    Async,
}

/// RocketMQ's master roles: when a master acknowledges a send relative to
/// its slaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicationMode {
    /// SYNC_MASTER: a send is acknowledged once a slave holds it durably
    /// (else FLUSH_SLAVE_TIMEOUT or SLAVE_NOT_AVAILABLE), so losing the
    /// master loses no acknowledged message.
    Sync,
    /// ASYNC_MASTER: acknowledged without waiting for a slave; what a slave
    /// had not copied when its master was lost may be lost.
    Async,
}

fn default_replication() -> ReplicationMode {
    ReplicationMode::Async
}

/// The clients driving the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Producer entries; at least one, since without messages nothing is tested.
    pub producers: Vec<ProducerSpec>,
    /// Consumer groups. Default none (needed by `exactly_once` and liveness).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<ConsumerSpec>,
    /// Hostile clients, sending what a buggy or malicious client would.
    /// Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostile: Vec<HostileSpec>,
}

/// `count` hostile client processes (`hostile-N`). Each sends, at its rate,
/// requests drawn from every hostile kind: frames past the size limit,
/// undecodable payloads, wrong protocol versions, messages at and past every
/// limit (body, properties, key, tag, topic name), pulls from unknown
/// topics and far past a queue's end, offset commits for queues it does not
/// own, floods of connections, and pulls whose answers it never reads. Its
/// messages go to `topic`, which no group consumes, so the invariants of
/// the well-behaved clients are not disturbed by what the broker rightly
/// accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostileSpec {
    /// Number of hostile processes of this kind.
    pub count: u32,
    /// Hostile requests per second, per process.
    pub rate_per_s: f64,
    /// Topic its messages go to; no consumer group may subscribe to it.
    /// Default `hostile`.
    #[serde(default = "default_hostile_topic")]
    pub topic: String,
}

fn default_hostile_topic() -> String {
    "hostile".to_string()
}

/// `count` identical producer processes sending to one topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerSpec {
    /// Number of producer processes of this kind.
    pub count: u32,
    /// The topic they send to (created on every broker group).
    pub topic: String,
    /// Send attempts per second, per producer process.
    pub rate_per_s: f64,
    /// Business resends of one operation after a failed or unknown send,
    /// as RocketMQ applications do: the same business key again, under a
    /// new message id, so the broker may store the operation twice and the
    /// consumers must apply it once. Default 2.
    #[serde(default = "default_resend_max")]
    pub resend_max: u32,
    /// Size of the sharding key space; FIFO order is per sharding key.
    pub sharding_keys: u64,
    /// Tags to choose from, one per message by the seed. Default none (untagged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Ordered sends: the queue is chosen by hash of the sharding key and a
    /// failed send is not retried on another broker. Default false.
    #[serde(default)]
    pub fifo: bool,
    /// Size of each message body. Default 64.
    #[serde(default = "default_body_bytes")]
    pub body_bytes: u32,
    /// Sends one producer process keeps in flight at most; 1 sends
    /// synchronously, one after another (a closed loop, like the real
    /// `bench`). Default 64, or 65,535 (RocketMQ's bound on asynchronous
    /// sends) above 1,000 sends a second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight_max: Option<u32>,
    /// Messages per send request: above 1, operations go out `batch` at a
    /// time in one batch send (one queue, one request; resent together
    /// under new ids when it fails). Plain sends only. Default 1.
    #[serde(default = "default_batch", skip_serializing_if = "is_single")]
    pub batch: u32,
    /// Share of messages sent with the property `ENV = gray` (the rest
    /// without it): a gray release that SQL92 groups select on. Default
    /// none (no message has it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gray_share: Option<f64>,
    /// Transactional sends: every message is a half, ended by a local
    /// transaction. Default none (plain sends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<TransactionSpec>,
    /// Timer and delayed sends. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer: Option<TimerSpec>,
    /// Request-reply: share of messages sent as requests (RocketMQ's
    /// `request`), each waiting up to `request_timeout_ms` for the reply a
    /// responding group (`replies` on a consumer group of the topic) sends.
    /// Plain single sends only. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_share: Option<f64>,
    /// How long a request waits for its reply. Default 3,000 ms.
    #[serde(default = "default_request_timeout_ms", skip_serializing_if = "is_default_request_timeout")]
    pub request_timeout_ms: u64,
}

fn default_request_timeout_ms() -> u64 {
    3_000
}

fn is_default_request_timeout(ms: &u64) -> bool {
    *ms == default_request_timeout_ms()
}

/// `[workload.producers.transaction]`: how the producers' local
/// transactions behave. What a transaction decides in the end (commit or
/// rollback) is drawn per message; every producer of the group can look it
/// up, as a business database would let them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionSpec {
    /// The producer group; every producer entry of one group shares it.
    pub group: String,
    /// Share of transactions that roll back. Default 0.2.
    #[serde(default = "default_rollback_share")]
    pub rollback_share: f64,
    /// Share of transactions whose executor answers unknown, leaving the
    /// end to a check-back. Default 0.
    #[serde(default)]
    pub unknown_share: f64,
    /// How long after its half a transaction's outcome stays unknown to
    /// check-backs, in ms (as if its local transaction were still running).
    /// Default 0.
    #[serde(default)]
    pub unknown_for_ms: u64,
    /// Range of the local transaction's duration, in ms: a producer killed
    /// within it dies between its half and its end. Default [0, 0].
    #[serde(default)]
    pub local_ms: [u64; 2],
    /// Range of the check listener's duration, in ms (longer than the
    /// broker's check interval makes it slower than the checks). Default [0, 0].
    #[serde(default)]
    pub check_ms: [u64; 2],
    /// When the entry's producers leave for good, in seconds from the
    /// start, with halves still open: nobody answers for those. Default never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at_s: Option<f64>,
}

fn default_rollback_share() -> f64 {
    0.2
}

/// `[workload.producers.timer]`: messages sent with a delivery time or a
/// delay level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimerSpec {
    /// Share of messages sent as timers, due up to `max_ms` ahead. Default 1.
    #[serde(default = "default_one")]
    pub share: f64,
    /// Latest delivery time of a timer, in ms after its send.
    pub max_ms: u64,
    /// Share of messages sent with a delay level instead (1 to
    /// `delay_level_max`). Default 0.
    #[serde(default)]
    pub delay_level_share: f64,
    /// Highest delay level drawn. Default 3.
    #[serde(default = "default_delay_level_max")]
    pub delay_level_max: u32,
}

fn default_one() -> f64 {
    1.0
}

fn default_delay_level_max() -> u32 {
    3
}

/// One consumer group: `count` processes sharing a subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSpec {
    /// The consumer group's name, unique in the scenario.
    pub group: String,
    /// The subscribed topic; some producer must send to it.
    pub topic: String,
    /// Number of consumer processes in the group (they rebalance queues).
    pub count: u32,
    /// Tag expression: `*` or `TagA || TagB`. Default `*`.
    #[serde(default = "default_tag_expression")]
    pub tags: String,
    /// An SQL92 condition over the messages' properties (`SHARD`, `SEQ`,
    /// `AMOUNT`, `REGION`, `ENV` when producers set `gray_share`) and tag
    /// (`TAGS`), selecting instead of `tags`, which must then stay `*`.
    /// Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// Probability that the business logic answers "retry later" for a
    /// delivery, sending it through the retry topic. Default 0.
    #[serde(default)]
    pub failure_rate: f64,
    /// Whether the group deduplicates by business key: it applies a key's
    /// effect and records the key in one database transaction, so a
    /// redelivery takes no second effect. A non-idempotent group is a
    /// control: it applies every delivery, and the verdict measures its
    /// double effects. Default true.
    #[serde(default = "default_true")]
    pub idempotent: bool,
    /// Crashes per minute of this group's processes, over the whole group;
    /// each rejoins after a short while and forces a rebalance. The resolver
    /// turns these into `consumer-crash` events of the schedule. Default 0.
    #[serde(default)]
    pub crash_rate_per_min: f64,
    /// Times the group consumes a message again before the broker
    /// dead-letters it. Default 16, RocketMQ's.
    #[serde(default = "default_max_reconsume_times")]
    pub max_reconsume_times: u32,
    /// Share of business keys whose consumption always fails in this
    /// group (poison messages): they go through every retry to the DLQ.
    /// Default 0.
    #[serde(default)]
    pub poison_key_share: f64,
    /// When an operator sends every dead letter of the group back to its
    /// original topic (as `mqadmin dlq-resend --all` does), in seconds from
    /// the start; none by default. Exactly-once by key must hold across it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dlq_resend_at_s: Option<f64>,
    /// When an operator resets the group's offsets on its topic (as
    /// `mqadmin resetOffsetByTime` does), in seconds from the start, with
    /// the group's consumers running; none by default. What the group had
    /// consumed from there on must come to it again (the `reset` check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_reset_at_s: Option<f64>,
    /// How far back that reset goes: to the messages stored this many
    /// seconds before it. Default 10.
    #[serde(default = "default_offset_reset_rewind_s", skip_serializing_if = "is_default_rewind")]
    pub offset_reset_rewind_s: f64,
    /// How long the business logic takes on a delivery, drawn from
    /// `[min, max]` ms, before it answers: slow listeners widen the window
    /// in which a rebalance meets a message still being processed.
    /// Default `[0, 0]`.
    #[serde(default, skip_serializing_if = "is_zero_range")]
    pub process_ms: [u64; 2],
    /// How the group consumes: `push` (RocketMQ's push consumer: rebalanced
    /// queues, pulls, committed offsets, retry topic) or `simple` (RocketMQ
    /// 5's SimpleConsumer: POP receives with an invisible time, an ack per
    /// message, failures come back in place). Default `push`.
    #[serde(default, skip_serializing_if = "ConsumerKind::is_push")]
    pub kind: ConsumerKind,
    /// Broadcasting (push consumers): every consumer of the group takes
    /// every message, keeping its own offsets on its own disk, which
    /// survives its crashes; no retry topic, so the group's business logic
    /// must not fail (`failure_rate` and `poison_key_share` 0). Default
    /// false (clustering).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub broadcast: bool,
    /// A simple consumer's invisible time per receive, in seconds: a
    /// message not acknowledged within it comes back. Default 10.
    #[serde(default = "default_invisible_s", skip_serializing_if = "is_default_invisible")]
    pub invisible_s: f64,
    /// Whether the group's retry max times (`max_reconsume_times`) is kept
    /// by the brokers as a subscription group, created on the masters at
    /// the start as `mqadmin updateSubGroup` does, while its consumers ask
    /// for RocketMQ's default 16: only the brokers' copy, which slaves
    /// replicate and a new master must keep, dead-letters at the group's
    /// max. Default false (the consumers ask for it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub group_on_broker: bool,
    /// Whether the group answers every request it consumes (request-reply's
    /// responders): a reply naming the request, sent before the business
    /// logic runs. At most one group of a topic replies. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replies: bool,
}

/// How a consumer group consumes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsumerKind {
    /// RocketMQ's push consumer.
    #[default]
    Push,
    /// RocketMQ 5's SimpleConsumer (POP).
    Simple,
}

impl ConsumerKind {
    fn is_push(&self) -> bool {
        *self == ConsumerKind::Push
    }
}

fn default_invisible_s() -> f64 {
    10.0
}

fn is_default_invisible(invisible_s: &f64) -> bool {
    *invisible_s == default_invisible_s()
}

fn default_batch() -> u32 {
    1
}

fn is_single(batch: &u32) -> bool {
    *batch == 1
}

fn default_offset_reset_rewind_s() -> f64 {
    10.0
}

fn is_default_rewind(rewind_s: &f64) -> bool {
    *rewind_s == default_offset_reset_rewind_s()
}

fn is_zero_range(range: &[u64; 2]) -> bool {
    *range == [0, 0]
}

fn default_max_reconsume_times() -> u32 {
    16
}

/// How faults are chosen.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nemesis {
    /// Which of the three ways below is used.
    pub mode: NemesisMode,
    /// The explicit fault schedule; required in `schedule` mode, refused otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<NemesisEvent>,
    /// Swarm rates; only in `swarm` mode, where any knob left out is drawn
    /// from the seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<SwarmKnobs>,
}

/// The nemesis's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NemesisMode {
    /// No faults (apart from consumer crashes asked for by the workload).
    #[default]
    None,
    /// Exactly the faults listed in `[[nemesis.events]]`.
    Schedule,
    /// Faults generated from per-minute rates (`[nemesis.swarm]`) and the seed.
    Swarm,
}


/// Swarm-mode rates, per minute of simulated time, one knob per fault
/// kind (`kill_per_min`, `link_latency_per_min`: [`FaultKind::knob`]).
/// Every knob left out is drawn from the seed (swarm testing: each seed
/// tries a different mix of faults, some switched off) and printed resolved
/// at start.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SwarmKnobs {
    /// Each fault kind's rate; a kind left out is drawn from the seed.
    pub rates: BTreeMap<FaultKind, f64>,
    /// Longest time a generated fault lasts before it is healed or restarted.
    pub max_down_s: Option<f64>,
}

/// The one swarm knob that is not a rate.
const MAX_DOWN_S: &str = "max_down_s";

impl SwarmKnobs {
    /// Every fault kind with its rate, if set, in kind order.
    pub fn rates(&self) -> impl Iterator<Item = (FaultKind, Option<f64>)> + '_ {
        FaultKind::all().map(|kind| (kind, self.rates.get(&kind).copied()))
    }
}

impl Serialize for SwarmKnobs {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (kind, rate) in self.rates() {
            if let Some(rate) = rate {
                map.serialize_entry(&kind.knob(), &rate)?;
            }
        }
        if let Some(max_down_s) = self.max_down_s {
            map.serialize_entry(MAX_DOWN_S, &max_down_s)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for SwarmKnobs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fields: BTreeMap<String, f64> = BTreeMap::deserialize(deserializer)?;
        let mut knobs = SwarmKnobs::default();
        for (field, value) in fields {
            if field == MAX_DOWN_S {
                knobs.max_down_s = Some(value);
            } else if let Some(kind) = FaultKind::of_knob(&field) {
                knobs.rates.insert(kind, value);
            } else {
                let known: Vec<String> = FaultKind::all().map(FaultKind::knob).chain([MAX_DOWN_S.to_string()]).collect();
                return Err(serde::de::Error::custom(format!("unknown field `{field}`, expected one of {}", known.join(", "))));
            }
        }
        Ok(knobs)
    }
}

/// The invariants the checker enforces on the run's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Most acknowledged-then-lost messages tolerated (0 for no loss).
    pub lost: u64,
    /// Per-sharding-key order must hold on FIFO topics. Default false.
    #[serde(default)]
    pub order: bool,
    /// The business effect is applied once per acknowledged business key,
    /// despite redelivery. Default false.
    #[serde(default)]
    pub exactly_once: bool,
    /// After the tail starts, every acknowledged message must be consumed
    /// within this bound. Default: liveness not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_bound_s: Option<u64>,
    /// "Sometimes" marks (such as `torn-write-cut`) that at least one seed
    /// of a sweep must reach, or the sweep fails: a scenario whose faults
    /// never reach the state it was written for proves nothing. `mqsim list
    /// --marks` names them. Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reached: Vec<String>,
    /// The least progress the cluster must make once the faults have
    /// healed; a cluster that stalls fails the run even though nothing it
    /// acknowledged was lost. Default: progress not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

/// `[expect.progress]`: what share of the sends made after the tail has
/// settled must be acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    /// Least share, in (0, 1], of the send attempts invoked from
    /// `tail_start + grace_s` on that end acknowledged.
    pub tail_acked_share: f64,
    /// Seconds after the tail starts before sends count: time for restarted
    /// brokers to register and clients to refresh routes. Default 5.
    #[serde(default = "default_progress_grace_s")]
    pub grace_s: u64,
}

fn default_progress_grace_s() -> u64 {
    5
}

impl Scenario {
    /// Parses and validates a scenario; `origin` (usually the file path)
    /// prefixes every error message.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|source| ScenarioError::Parse {
            origin: origin.to_string(),
            source,
        })?;
        let problems = scenario.validate();
        if problems.is_empty() {
            Ok(scenario)
        } else {
            Err(ScenarioError::Invalid { origin: origin.to_string(), problems })
        }
    }

    /// Reads, parses and validates a scenario file, and checks that its name
    /// is its file stem.
    pub fn load(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScenarioError::Read { origin: origin.clone(), source })?;
        let scenario = Scenario::from_toml_str(&text, &origin)?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if scenario.name != stem {
            return Err(ScenarioError::Invalid {
                origin,
                problems: vec![Problem::new(
                    "name",
                    format!(
                        "must equal the file stem `{stem}` so `mqsim run <name>` finds one file, got `{}`",
                        scenario.name
                    ),
                )],
            });
        }
        Ok(scenario)
    }

    /// The scenario as a TOML file that [`Scenario::from_toml_str`] reads back
    /// to an equal value (used to print a shrunk failing scenario).
    pub fn to_toml_string(&self) -> String {
        // Every field is a TOML-representable type (no maps with non-string
        // keys, no bare None), so a failure here is a bug in this crate.
        toml::to_string(self).expect("a Scenario always serializes to TOML")
    }
}
