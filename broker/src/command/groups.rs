//! Clients and groups: heartbeats, membership, and the broker's notice
//! that a group's members changed.

use serde::{Deserialize, Serialize};

/// Where a consumer group with no committed offset starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsumeFrom {
    /// The queue's end at the time of the first pull (RocketMQ's default).
    #[default]
    LastOffset,
    /// The queue's first retained message.
    FirstOffset,
    /// The first message stored at or after this time (ms).
    Timestamp(u64),
}

/// A consumer group as its members describe it in heartbeats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerData {
    /// The group.
    pub group: String,
    /// (topic, tag expression) pairs.
    pub subscriptions: Vec<(String, String)>,
    /// Where the group starts when it has no offset.
    pub consume_from: ConsumeFrom,
}

/// Client -> broker every 30 s (and at start): liveness and subscriptions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The client instance.
    pub client_id: String,
    /// Groups this client consumes in.
    pub consumers: Vec<ConsumerData>,
}

/// Client -> broker at shutdown: leave the group now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnregisterClient {
    /// The client instance.
    pub client_id: String,
    /// The group it leaves.
    pub group: String,
}

/// Consumer -> broker: the live members of a group, sorted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetConsumerList {
    /// The group.
    pub group: String,
}

/// Producer -> broker, every heartbeat period: this client is live in
/// these producer groups, and may be asked to check back on their
/// transactions over this connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatProducer {
    /// The client instance.
    pub client_id: String,
    /// Its producer groups.
    pub groups: Vec<String>,
}

/// Broker -> consumer, oneway: the members of `group` changed (one joined
/// or left), so rebalance now rather than at the next period, as RocketMQ's
/// `NOTIFY_CONSUMER_IDS_CHANGED`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyConsumerIdsChanged {
    /// The consumer group whose members changed.
    pub group: String,
}
