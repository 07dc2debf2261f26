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
    /// Every member takes every message (RocketMQ's BROADCASTING model).
    pub broadcast: bool,
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

/// Admin -> broker: the live producers of a producer group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetProducerConnections {
    /// The producer group.
    pub group: String,
}

/// A live producer as the broker knows it (RocketMQ's `producerConnection`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerConnection {
    /// Its client instance.
    pub client_id: String,
    /// The address its heartbeats came from.
    pub addr: String,
    /// Its last heartbeat, on the broker's clock (ms).
    pub last_heartbeat_ms: u64,
}

/// Admin -> broker -> each consumer of a group (or one): how it is running
/// (RocketMQ's `GET_CONSUMER_RUNNING_INFO`, `mqadmin consumerStatus`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetConsumerRunningInfo {
    /// The consumer group.
    pub group: String,
    /// Only this member; every member the broker knows when `None`.
    pub client_id: Option<String>,
}

/// A push consumer as it describes itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerRunningInfo {
    /// Its client instance.
    pub client_id: String,
    /// Its group.
    pub group: String,
    /// Every member takes every message (BROADCASTING), or the members
    /// share the queues (CLUSTERING).
    pub broadcast: bool,
    /// One message of a queue at a time, under the queue's lock.
    pub orderly: bool,
    /// (topic, tag or SQL expression) it subscribes to.
    pub subscriptions: Vec<(String, String)>,
    /// Listener calls at once at most.
    pub consume_concurrency: usize,
    /// The queues it holds now.
    pub queues: Vec<QueueRunningInfo>,
}

/// One queue a consumer holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRunningInfo {
    /// Topic.
    pub topic: String,
    /// Broker (group) name.
    pub broker_name: String,
    /// Queue id.
    pub queue_id: u32,
    /// The next offset it pulls.
    pub next_pull: u64,
    /// The offset it last committed, if any.
    pub committed: Option<u64>,
    /// Messages pulled and not yet consumed.
    pub cached_msgs: usize,
    /// Their body bytes.
    pub cached_bytes: usize,
    /// The smallest offset still being consumed.
    pub first_in_flight: Option<u64>,
    /// Orderly: whether it holds the queue's lock now.
    pub locked: bool,
}
