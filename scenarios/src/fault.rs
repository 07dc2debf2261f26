//! Every fault the nemesis knows, defined once.
//!
//! [`Fault`] is generic over how it names nodes: a scenario file writes
//! [`Target`]s (`broker-0`, `random-broker`, `all`), a resolved schedule
//! concrete node names. The same variant therefore serves the file, the
//! resolver, the validator, the shrinker's file output, the history (its
//! [`Fault::name`] is what a nemesis event records) and the simulator's
//! injection. Adding a fault means one variant here, its arms in the
//! methods below, and its injection and heal in the simulator's
//! `World::inject`; the compiler points at each.
//!
//! Timing is not part of a fault: a schedule entry ([`NemesisEvent`]) wraps
//! one with its start, how long it lasts and whether it persists.

use std::fmt;

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::target::{Role, Target};

/// Where in the handling of a delivery a consumer crash strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashStep {
    /// After the delivery, before the business effect is applied.
    BeforeEffect,
    /// After the effect committed, before the message is acknowledged: the
    /// message is redelivered, and only deduplication by key saves the
    /// effect from happening twice.
    AfterEffect,
}

impl CrashStep {
    /// The step's name as written in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            CrashStep::BeforeEffect => "before-effect",
            CrashStep::AfterEffect => "after-effect",
        }
    }
}

/// How a partition's two sides are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionKind {
    /// The whole cluster is shuffled by the seed and split into two halves.
    Halves,
    /// `targets` and `from` cannot reach each other in either direction.
    Isolate,
    /// Messages from `targets` to `from` are dropped; the reverse gets through.
    OneWay,
}

/// What a broker's disk does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskFaultKind {
    /// fsync takes far longer (sync-flush sends time out: FLUSH_DISK_TIMEOUT).
    SlowFsync,
    /// Writes fail with an I/O error.
    WriteError,
    /// fsync fails with an I/O error.
    FsyncError,
    /// The disk is full: writes fail with ENOSPC.
    Full,
    /// One stored byte is flipped, once; CRC checks must catch it on read.
    FlipByte,
}

impl DiskFaultKind {
    /// The kind's name as written in scenario files.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFaultKind::SlowFsync => "slow-fsync",
            DiskFaultKind::WriteError => "write-error",
            DiskFaultKind::FsyncError => "fsync-error",
            DiskFaultKind::Full => "full",
            DiskFaultKind::FlipByte => "flip-byte",
        }
    }
}

/// Every role; a fault that may hit any node.
const ANY: &[Role] = &[Role::Namesrv, Role::Broker, Role::Producer, Role::Consumer, Role::Database, Role::Hostile, Role::Controller];
/// The roles with a disk: name servers, brokers, the business database and
/// controllers.
const SERVERS: &[Role] = &[Role::Namesrv, Role::Broker, Role::Database, Role::Controller];

/// One fault. `T` names nodes: [`Target`] in files, `String` once resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault<T> {
    /// The process is killed (SIGKILL): its page cache survives, so written
    /// but unflushed bytes are still on disk when it restarts.
    Kill {
        /// The process to kill: any role, one node.
        target: T,
    },
    /// The machine loses power: bytes not yet fsynced are dropped and the last
    /// write may be torn.
    PowerLoss {
        /// A name server, broker or the database, one node.
        target: T,
    },
    /// The process is frozen (SIGSTOP): peers see it hang, then it resumes
    /// with stale leases and timers.
    Pause {
        /// The process to freeze: any role, one node.
        target: T,
    },
    /// A consumer process crashes and later rejoins its group (rebalance).
    ConsumerCrash {
        /// A consumer, one node.
        target: T,
        /// Crash at this step of the next delivery instead of at once.
        /// Default: at once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<CrashStep>,
    },
    /// Messages between two sets of nodes are dropped.
    Partition {
        /// How the sides are formed (a resolved `halves` is written as
        /// `isolate` with both sides named).
        partition: PartitionKind,
        /// The cut-off side for `isolate` and `one-way`; refused for `halves`.
        #[serde(default = "Vec::new", skip_serializing_if = "Vec::is_empty")]
        targets: Vec<T>,
        /// The other side for `isolate` and `one-way`. Default every node not
        /// in `targets`.
        #[serde(default = "Vec::new", skip_serializing_if = "Vec::is_empty")]
        from: Vec<T>,
    },
    /// Every message to or from the target nodes is delayed.
    Latency {
        /// Nodes whose links are slowed (`all` for the whole network).
        targets: Vec<T>,
        /// Extra one-way delay `[min, max]`, drawn per message.
        latency_ms: [u64; 2],
    },
    /// Messages to or from the target nodes are dropped at random.
    Loss {
        /// Nodes whose links lose messages (`all` for the whole network).
        targets: Vec<T>,
        /// Probability that one message is dropped, 0..=1.
        loss_rate: f64,
    },
    /// Messages between two sets of nodes (one link, with a node on each
    /// side) are delayed, both ways; the rest of the network is not.
    LinkLatency {
        /// One end of the links.
        targets: Vec<T>,
        /// The other end.
        from: Vec<T>,
        /// Extra one-way delay `[min, max]`, drawn per message.
        latency_ms: [u64; 2],
    },
    /// The node's clock runs offset from true time until healed (the offset
    /// is then removed, which the node sees as a jump back).
    ClockSkew {
        /// The node whose clock is skewed, one node.
        target: T,
        /// The offset added to the node's clock; negative is behind.
        skew_ms: i64,
    },
    /// The node's clock steps, and steps back when healed (an operator or
    /// NTP correcting it), unless the event persists. Jumps add to each
    /// other and to a skew.
    ClockJump {
        /// The node whose clock steps, one node.
        target: T,
        /// The step; negative goes back in time.
        jump_ms: i64,
    },
    /// The broker's disk misbehaves.
    DiskFault {
        /// A broker, one node.
        target: T,
        /// What goes wrong.
        disk: DiskFaultKind,
    },
}

/// What a fault that holds one node in a bad state changes. Two faults on
/// the same channel of the same node never overlap in a resolved schedule,
/// so healing one never undoes another; faults on different channels (a
/// disk fault during a kill) and network faults may overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Channel {
    /// The process is down or frozen (kill, power loss, pause, consumer crash).
    Process,
    /// The disk misbehaves (every disk fault but the instantaneous flip-byte).
    Disk,
    /// The clock is skewed (a clock jump adds to it and has no channel).
    Clock,
}

/// Every kind of fault, one per [`Fault`] variant: its name in files and
/// histories, and the swarm knob that sets its rate. Adding a fault is a
/// variant here and in [`Fault`], its draw in swarm mode
/// (`resolve::draw`) and its effect in the simulator's world: each an
/// exhaustive match, so the compiler names every place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, strum::EnumIter, strum::IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum FaultKind {
    /// [`Fault::Kill`].
    Kill,
    /// [`Fault::PowerLoss`].
    PowerLoss,
    /// [`Fault::Pause`].
    Pause,
    /// [`Fault::ConsumerCrash`].
    ConsumerCrash,
    /// [`Fault::Partition`].
    Partition,
    /// [`Fault::Latency`].
    Latency,
    /// [`Fault::Loss`].
    Loss,
    /// [`Fault::LinkLatency`].
    LinkLatency,
    /// [`Fault::ClockSkew`].
    ClockSkew,
    /// [`Fault::ClockJump`].
    ClockJump,
    /// [`Fault::DiskFault`].
    DiskFault,
}

impl FaultKind {
    /// Every kind, in declaration order.
    pub fn all() -> impl Iterator<Item = FaultKind> {
        <FaultKind as strum::IntoEnumIterator>::iter()
    }

    /// The name as written in files and histories (`power-loss`).
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// Its rate's field in `[nemesis.swarm]` (`power_loss_per_min`).
    pub fn knob(self) -> String {
        format!("{}_per_min", self.name().replace('-', "_"))
    }

    /// The kind whose swarm knob is `knob`.
    pub fn of_knob(knob: &str) -> Option<FaultKind> {
        FaultKind::all().find(|k| k.knob() == knob)
    }
}

impl<T> Fault<T> {
    /// The fault's kind.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Kill { .. } => FaultKind::Kill,
            Fault::PowerLoss { .. } => FaultKind::PowerLoss,
            Fault::Pause { .. } => FaultKind::Pause,
            Fault::ConsumerCrash { .. } => FaultKind::ConsumerCrash,
            Fault::Partition { .. } => FaultKind::Partition,
            Fault::Latency { .. } => FaultKind::Latency,
            Fault::Loss { .. } => FaultKind::Loss,
            Fault::LinkLatency { .. } => FaultKind::LinkLatency,
            Fault::ClockSkew { .. } => FaultKind::ClockSkew,
            Fault::ClockJump { .. } => FaultKind::ClockJump,
            Fault::DiskFault { .. } => FaultKind::DiskFault,
        }
    }

    /// The fault's name as written in files and histories (`power-loss`).
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// The one node the fault hits and the roles it may have, or `None` for
    /// a fault over sets of nodes (partition, latency, loss).
    pub fn single_target(&self) -> Option<(&T, &'static [Role])> {
        match self {
            Fault::Kill { target } | Fault::Pause { target } | Fault::ClockSkew { target, .. } | Fault::ClockJump { target, .. } => {
                Some((target, ANY))
            }
            Fault::PowerLoss { target } => Some((target, SERVERS)),
            Fault::ConsumerCrash { target, .. } => Some((target, &[Role::Consumer])),
            Fault::DiskFault { target, .. } => Some((target, &[Role::Broker])),
            Fault::Partition { .. } | Fault::Latency { .. } | Fault::Loss { .. } | Fault::LinkLatency { .. } => None,
        }
    }

    /// Every node list the fault takes, with its field name.
    pub fn target_lists(&self) -> Vec<(&'static str, &[T])> {
        match self {
            Fault::Partition { targets, from, .. } | Fault::LinkLatency { targets, from, .. } => {
                vec![("targets", targets), ("from", from)]
            }
            Fault::Latency { targets, .. } | Fault::Loss { targets, .. } => vec![("targets", targets)],
            _ => Vec::new(),
        }
    }

    /// The channel the fault holds on its node while it lasts, if any.
    pub fn channel(&self) -> Option<Channel> {
        match self {
            Fault::Kill { .. } | Fault::PowerLoss { .. } | Fault::Pause { .. } | Fault::ConsumerCrash { .. } => {
                Some(Channel::Process)
            }
            Fault::DiskFault { disk, .. } if *disk != DiskFaultKind::FlipByte => Some(Channel::Disk),
            Fault::ClockSkew { .. } => Some(Channel::Clock),
            _ => None,
        }
    }

    /// True for a fault that happens at once and has nothing to heal.
    pub fn instantaneous(&self) -> bool {
        matches!(self, Fault::DiskFault { disk: DiskFaultKind::FlipByte, .. })
    }

    /// True for a fault an event may keep for good (`persist = true`).
    pub fn may_persist(&self) -> bool {
        matches!(self, Fault::ClockJump { .. })
    }

    /// The file's name for how long the fault lasts: a process comes back
    /// (`restart_after_s`), anything else heals (`heal_after_s`).
    pub fn end_field(&self) -> &'static str {
        match self.channel() {
            Some(Channel::Process) => "restart_after_s",
            _ => "heal_after_s",
        }
    }

    /// The same fault with every node named another way; `single` maps a
    /// fault's one node and may refuse it (`None`), `list` maps a node list.
    pub fn try_map<U>(
        &self,
        mut single: impl FnMut(&T) -> Option<U>,
        mut list: impl FnMut(&[T]) -> Vec<U>,
    ) -> Option<Fault<U>> {
        Some(match self {
            Fault::Kill { target } => Fault::Kill { target: single(target)? },
            Fault::PowerLoss { target } => Fault::PowerLoss { target: single(target)? },
            Fault::Pause { target } => Fault::Pause { target: single(target)? },
            Fault::ConsumerCrash { target, step } => Fault::ConsumerCrash { target: single(target)?, step: *step },
            Fault::Partition { partition, targets, from } => {
                Fault::Partition { partition: *partition, targets: list(targets), from: list(from) }
            }
            Fault::Latency { targets, latency_ms } => Fault::Latency { targets: list(targets), latency_ms: *latency_ms },
            Fault::Loss { targets, loss_rate } => Fault::Loss { targets: list(targets), loss_rate: *loss_rate },
            Fault::LinkLatency { targets, from, latency_ms } => {
                Fault::LinkLatency { targets: list(targets), from: list(from), latency_ms: *latency_ms }
            }
            Fault::ClockSkew { target, skew_ms } => Fault::ClockSkew { target: single(target)?, skew_ms: *skew_ms },
            Fault::ClockJump { target, jump_ms } => Fault::ClockJump { target: single(target)?, jump_ms: *jump_ms },
            Fault::DiskFault { target, disk } => Fault::DiskFault { target: single(target)?, disk: *disk },
        })
    }
}

impl<T: fmt::Display> fmt::Display for Fault<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |nodes: &[T]| nodes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        match self {
            Fault::Kill { target } | Fault::PowerLoss { target } | Fault::Pause { target } => {
                write!(f, "{} {target}", self.name())
            }
            Fault::ConsumerCrash { target, step: None } => write!(f, "consumer-crash {target}"),
            Fault::ConsumerCrash { target, step: Some(step) } => write!(f, "consumer-crash {target} at {}", step.as_str()),
            Fault::Partition { partition, targets, from } => {
                let arrow = if *partition == PartitionKind::OneWay { "-/->" } else { "|" };
                write!(f, "partition [{}] {arrow} [{}]", join(targets), join(from))
            }
            Fault::Latency { targets, latency_ms: [min, max] } => write!(f, "latency {min}..={max}ms on [{}]", join(targets)),
            Fault::Loss { targets, loss_rate } => write!(f, "loss {loss_rate} on [{}]", join(targets)),
            Fault::LinkLatency { targets, from, latency_ms: [min, max] } => {
                write!(f, "link-latency {min}..={max}ms between [{}] and [{}]", join(targets), join(from))
            }
            Fault::ClockSkew { target, skew_ms } => write!(f, "clock-skew {target} by {skew_ms:+}ms"),
            Fault::ClockJump { target, jump_ms } => write!(f, "clock-jump {target} by {jump_ms:+}ms"),
            Fault::DiskFault { target, disk } => write!(f, "disk-fault {target} {}", disk.as_str()),
        }
    }
}

/// One fault of an explicit schedule, as a scenario file writes it: the
/// fault's own fields next to `at_s`, and, as the fault allows,
/// `restart_after_s` or `heal_after_s` and `persist`. Times are seconds from
/// the start of the run and may be fractional. A fault whose end is left
/// out lasts until the end of the safety phase (`duration_s`), so the tail
/// is always healed.
#[derive(Debug, Clone, PartialEq)]
pub struct NemesisEvent {
    /// When the fault starts.
    pub at_s: f64,
    /// The fault.
    pub fault: Fault<Target>,
    /// How long until it is healed (or the process restarted); refused for
    /// an instantaneous fault and with `persist`.
    pub after_s: Option<f64>,
    /// The fault is never healed, into the tail and to the run's end; only
    /// for faults that allow it (a clock jump). Default false.
    pub persist: bool,
}

impl NemesisEvent {
    /// An event that starts at `at_s` and lasts `after_s` (or to the end of
    /// the safety phase).
    pub fn new(at_s: f64, fault: Fault<Target>, after_s: Option<f64>) -> NemesisEvent {
        NemesisEvent { at_s, fault, after_s, persist: false }
    }
}

impl Serialize for NemesisEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = toml::Value::try_from(&self.fault).map_err(serde::ser::Error::custom)?;
        let toml::Value::Table(fields) = fields else {
            return Err(serde::ser::Error::custom("a fault serializes to a table"));
        };
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("fault", self.fault.name())?;
        map.serialize_entry("at_s", &self.at_s)?;
        for (key, value) in fields.iter().filter(|(key, _)| key.as_str() != "fault") {
            map.serialize_entry(key, value)?;
        }
        if let Some(after_s) = self.after_s {
            map.serialize_entry(self.fault.end_field(), &after_s)?;
        }
        if self.persist {
            map.serialize_entry("persist", &true)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for NemesisEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NemesisEvent, D::Error> {
        let mut table = toml::Table::deserialize(deserializer)?;
        let mut take = |key: &str| table.remove(key);
        let at_s = take("at_s").ok_or_else(|| D::Error::missing_field("at_s"))?;
        let at_s = f64::deserialize(at_s).map_err(|e| D::Error::custom(format!("at_s: {e}")))?;
        let restart = take("restart_after_s");
        let heal = take("heal_after_s");
        let persist = take("persist");
        let fault = Fault::<Target>::deserialize(toml::Value::Table(table)).map_err(D::Error::custom)?;
        let wrong = if fault.end_field() == "restart_after_s" { "heal_after_s" } else { "restart_after_s" };
        let (after, other) = if wrong == "heal_after_s" { (restart, heal) } else { (heal, restart) };
        if other.is_some() {
            return Err(D::Error::custom(format!(
                "`{}` takes `{}`, not `{wrong}`",
                fault.name(),
                fault.end_field()
            )));
        }
        let after_s = after
            .map(|value| f64::deserialize(value).map_err(|e| D::Error::custom(format!("{}: {e}", fault.end_field()))))
            .transpose()?;
        let persist = match persist {
            None => false,
            Some(value) if fault.may_persist() => {
                bool::deserialize(value).map_err(|e| D::Error::custom(format!("persist: {e}")))?
            }
            Some(_) => return Err(D::Error::custom(format!("`{}` cannot persist; only clock-jump can", fault.name()))),
        };
        Ok(NemesisEvent { at_s, fault, after_s, persist })
    }
}
