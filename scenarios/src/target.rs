//! Node names and fault targets.
//!
//! Every process of a simulated cluster has a stable name that the nemesis,
//! the history and the reports share: `namesrv-N`, `broker-N`, `producer-N`
//! `consumer-<group>-N`, `db-0`, `hostile-N` and `controller-N`, all numbered from 0. A fault's target is one of
//! those names, a node picked by the seed (`random-broker`), or a whole role
//! (`all-brokers`, `all`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};


/// The role a process plays, which decides what a fault may do to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// A name server: holds routes, no message data.
    Namesrv,
    /// A broker process: stores messages on its disk.
    Broker,
    /// A producer client process.
    Producer,
    /// A consumer client process (member of one consumer group).
    Consumer,
    /// The consumers' business database, with a disk of its own.
    Database,
    /// A hostile client: sends what a buggy or malicious client would.
    Hostile,
    /// A controller: decides brokers' masters, with a Raft log on its disk.
    Controller,
}

impl Role {
    /// The word used in node names and `random-<role>` targets.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Namesrv => "namesrv",
            Role::Broker => "broker",
            Role::Producer => "producer",
            Role::Consumer => "consumer",
            Role::Database => "db",
            Role::Hostile => "hostile",
            Role::Controller => "controller",
        }
    }
}

/// One concrete node of the simulated cluster, by role and number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    /// `namesrv-N`: the N-th name server.
    Namesrv(u32),
    /// `broker-N`: the N-th broker process. It serves broker group
    /// `N / replicas` as replica `N % replicas` (with one replica, broker-N is
    /// group N), so a name stays valid when replication is added.
    Broker(u32),
    /// `producer-N`: the N-th producer process, numbered across the
    /// `[[workload.producers]]` entries in file order.
    Producer(u32),
    /// `consumer-<group>-N`: the N-th consumer process of a consumer group.
    Consumer {
        /// The consumer group this process belongs to.
        group: String,
        /// The process's number inside its group, from 0.
        index: u32,
    },
    /// `db-N`: the consumers' business database (there is one, `db-0`,
    /// whenever the workload has consumers).
    Database(u32),
    /// `hostile-N`: the N-th hostile client process, numbered across the
    /// `[[workload.hostile]]` entries in file order.
    Hostile(u32),
    /// `controller-N`: the N-th controller (`topology.controllers`).
    Controller(u32),
}

impl Node {
    /// The role of this node.
    pub fn role(&self) -> Role {
        match self {
            Node::Namesrv(_) => Role::Namesrv,
            Node::Broker(_) => Role::Broker,
            Node::Producer(_) => Role::Producer,
            Node::Consumer { .. } => Role::Consumer,
            Node::Database(_) => Role::Database,
            Node::Hostile(_) => Role::Hostile,
            Node::Controller(_) => Role::Controller,
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Namesrv(i) => write!(f, "namesrv-{i}"),
            Node::Broker(i) => write!(f, "broker-{i}"),
            Node::Producer(i) => write!(f, "producer-{i}"),
            Node::Consumer { group, index } => write!(f, "consumer-{group}-{index}"),
            Node::Database(i) => write!(f, "db-{i}"),
            Node::Hostile(i) => write!(f, "hostile-{i}"),
            Node::Controller(i) => write!(f, "controller-{i}"),
        }
    }
}

impl FromStr for Node {
    type Err = TargetParseError;

    fn from_str(text: &str) -> Result<Node, TargetParseError> {
        let bad = || TargetParseError(text.to_string());
        let (stem, number) = text.rsplit_once('-').ok_or_else(bad)?;
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let index: u32 = number.parse().map_err(|_| bad())?;
        match stem {
            "namesrv" => Ok(Node::Namesrv(index)),
            "broker" => Ok(Node::Broker(index)),
            "producer" => Ok(Node::Producer(index)),
            "db" => Ok(Node::Database(index)),
            "hostile" => Ok(Node::Hostile(index)),
            "controller" => Ok(Node::Controller(index)),
            _ => {
                let group = stem.strip_prefix("consumer-").ok_or_else(bad)?;
                if !is_valid_resource_name(group) {
                    return Err(bad());
                }
                Ok(Node::Consumer { group: group.to_string(), index })
            }
        }
    }
}

/// A set of nodes, used by `random-*` (pick one) and `all-*` (take all).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Selector {
    /// Every name server.
    Namesrvs,
    /// Every broker process.
    Brokers,
    /// Every producer process.
    Producers,
    /// Every consumer process of every group.
    Consumers,
    /// Every consumer process of the named group (`random-consumer-billing`).
    Group(String),
    /// The business database (`random-db`, `all-dbs`).
    Databases,
    /// Every hostile client (`random-hostile`, `all-hostiles`).
    Hostiles,
    /// Every controller (`random-controller`, `all-controllers`).
    Controllers,
}

impl Selector {
    /// The role of the selected nodes.
    pub fn role(&self) -> Role {
        match self {
            Selector::Namesrvs => Role::Namesrv,
            Selector::Brokers => Role::Broker,
            Selector::Producers => Role::Producer,
            Selector::Consumers | Selector::Group(_) => Role::Consumer,
            Selector::Databases => Role::Database,
            Selector::Hostiles => Role::Hostile,
            Selector::Controllers => Role::Controller,
        }
    }

    /// Writes the selector after its `random-` or `all-` prefix; `plural`
    /// chooses `brokers` (for `all-`) over `broker` (for `random-`).
    fn write(&self, f: &mut fmt::Formatter<'_>, plural: bool) -> fmt::Result {
        let s = if plural { "s" } else { "" };
        match self {
            Selector::Group(group) => write!(f, "consumer{s}-{group}"),
            other => write!(f, "{}{s}", other.role().as_str()),
        }
    }

    /// Parses what follows `random-` or `all-`.
    fn parse(text: &str, plural: bool) -> Option<Selector> {
        let s = if plural { "s" } else { "" };
        for (word, selector) in [
            ("namesrv", Selector::Namesrvs),
            ("broker", Selector::Brokers),
            ("producer", Selector::Producers),
            ("consumer", Selector::Consumers),
            ("db", Selector::Databases),
            ("hostile", Selector::Hostiles),
            ("controller", Selector::Controllers),
        ] {
            if text == format!("{word}{s}") {
                return Some(selector);
            }
        }
        let group = text.strip_prefix(&format!("consumer{s}-"))?;
        is_valid_resource_name(group).then(|| Selector::Group(group.to_string()))
    }
}

/// Whom a fault hits, as written in a scenario file.
///
/// Written as a string: `broker-0`, `consumer-billing-1`, `random-broker`,
/// `random-consumer-billing`, `all-brokers`, `all-consumers-billing`, `all`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Target {
    /// One named node.
    Node(Node),
    /// One node of the set, chosen by the seed when the scenario is resolved
    /// (among nodes not already down, for process faults).
    Random(Selector),
    /// Every node of the set; only for partitions, latency and loss.
    All(Selector),
    /// Every node of the cluster (`all`); only for partitions, latency and loss.
    Everyone,
}

impl Target {
    /// True when the target names exactly one node once resolved.
    pub fn is_single(&self) -> bool {
        matches!(self, Target::Node(_) | Target::Random(_))
    }

    /// The role of the nodes this target can hit; `None` for `all`.
    pub fn role(&self) -> Option<Role> {
        match self {
            Target::Node(node) => Some(node.role()),
            Target::Random(selector) | Target::All(selector) => Some(selector.role()),
            Target::Everyone => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(node) => node.fmt(f),
            Target::Random(selector) => {
                f.write_str("random-")?;
                selector.write(f, false)
            }
            Target::All(selector) => {
                f.write_str("all-")?;
                selector.write(f, true)
            }
            Target::Everyone => f.write_str("all"),
        }
    }
}

impl FromStr for Target {
    type Err = TargetParseError;

    fn from_str(text: &str) -> Result<Target, TargetParseError> {
        if text == "all" {
            return Ok(Target::Everyone);
        }
        if let Some(rest) = text.strip_prefix("random-") {
            return Selector::parse(rest, false)
                .map(Target::Random)
                .ok_or_else(|| TargetParseError(text.to_string()));
        }
        if let Some(rest) = text.strip_prefix("all-") {
            return Selector::parse(rest, true)
                .map(Target::All)
                .ok_or_else(|| TargetParseError(text.to_string()));
        }
        text.parse().map(Target::Node)
    }
}

impl TryFrom<String> for Target {
    type Error = TargetParseError;

    fn try_from(text: String) -> Result<Target, TargetParseError> {
        text.parse()
    }
}

impl From<Target> for String {
    fn from(target: Target) -> String {
        target.to_string()
    }
}

/// A string that is not a node name nor a target form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a target: expected namesrv-N, broker-N, producer-N, consumer-<group>-N, \
     db-0, hostile-N, controller-N, random-<role>, all-<role>s or all (role: namesrv, broker, producer, consumer, consumer-<group>, db, hostile, controller)"
)]
pub struct TargetParseError(
    /// The text that failed to parse.
    pub String,
);

/// True for names RocketMQ accepts for topics and groups (`[A-Za-z0-9_-]+`,
/// without the `%` it reserves for system resources).
pub(crate) fn is_valid_resource_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip_through_text() {
        for text in [
            "namesrv-0",
            "broker-12",
            "producer-3",
            "consumer-billing-2",
            "consumer-order-audit-0",
            "db-0",
            "random-db",
            "all-dbs",
            "random-broker",
            "random-consumer",
            "random-consumer-billing",
            "all-brokers",
            "all-consumers-billing",
            "all",
        ] {
            let target: Target = text.parse().unwrap();
            assert_eq!(target.to_string(), text);
        }
    }

    #[test]
    fn malformed_targets_are_rejected() {
        for text in ["brokr-0", "broker-", "broker-x", "broker-+1", "random-brokers", "all-broker", "consumer-1", ""] {
            assert!(text.parse::<Target>().is_err(), "{text} parsed");
        }
    }
}
