//! The broker's commands, free of any protocol: one module per family, each
//! with its requests and their replies. A front (the house bincode protocol
//! in [`crate::protocol`] today, RocketMQ's own protocols tomorrow) turns
//! what arrives on its wire into these, calls the handler of the same
//! family (`server/<family>.rs` for a broker, [`crate::namesrv`] and
//! [`crate::controller`] for theirs), and turns the reply or the
//! [`Refusal`] back into its own frames and codes.
//!
//! The types live here rather than beside their handlers because clients,
//! fronts and servers all use them, and a handler needs the broker's
//! private state: the broker's handler for `command/send.rs` is
//! `server/send.rs`, and so on.

pub mod admin;
pub mod controller;
pub mod groups;
pub mod locks;
pub mod offsets;
pub mod pop;
pub mod pull;
pub mod query;
pub mod replication;
pub mod route;
pub mod send;
pub mod send_back;
pub mod transaction;

pub use admin::{
    ConsumeProgress, CreateTopic, DeleteSubscriptionGroup, DeleteTopic, GetBrokerConfig, GetBrokerRuntimeInfo, GetConsumeStats, GetSubscriptionGroups, GetTopicList,
    GetTopicStats, RuntimeInfo, UpdateSubscriptionGroup,
};
pub use controller::{AlterSyncStateSet, ControllerHeartbeat, ControllerView, GetControllerState, GetReplicaInfo, Raft, RaftRpc, ReplicaInfo};
pub use groups::{
    ConsumeFrom, ConsumerData, ConsumerRunningInfo, GetConsumerList, GetConsumerRunningInfo, GetProducerConnections, QueueRunningInfo, Heartbeat, HeartbeatProducer, NotifyConsumerIdsChanged, ProducerConnection, UnregisterClient,
};
pub use locks::{LockBatchMq, UnlockBatchMq};
pub use offsets::{CommittedOffset, GetQueueOffsets, QueryConsumerOffset, QueueReset, QueueStats, ResetOffset, ResetOffsetNotice, SearchOffsetByTime, UpdateConsumerOffset};
pub use pop::{AckMessage, ChangeInvisibleTime, PopMessage, PopResult, Popped, ReceiptHandle, POP_BATCH_MAX};
pub use pull::{PullMessage, PullResult};
pub use query::{QueryMessageByKey, QueryMessageByQueueOffset, QueryMessageByUniqueId, ViewMessage};
pub use replication::{EpochList, GetEpochs, GetReplicaConfig, ReplicaChunk, ReplicaConfig, ReplicaPull};
pub use route::{master_replica, read_replica, BrokerInfo, BrokerRole, GetClusterInfo, GetRoute, QueueRoute, RegisterBroker, ReplicaRoute, TopicRoute, UnregisterBroker};
pub use send::{PushReplyMessage, SendBatch, SendMessage, SendResult, SendStatus, BATCH_BODY_BYTES_MAX};
pub use send_back::ConsumerSendMsgBack;
pub use transaction::{CheckTransactionState, EndTransaction};

/// Why a server did not carry out a command: a kind each front maps to its
/// own code, and a sentence for the caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {reason}")]
pub struct Refusal {
    /// What kind of refusal.
    pub kind: Refused,
    /// Why, for a person.
    pub reason: String,
}

impl Refusal {
    /// A refusal of a kind, with its reason.
    pub fn new(kind: Refused, reason: impl Into<String>) -> Refusal {
        Refusal { kind, reason: reason.into() }
    }
}

/// The kinds of refusal, after RocketMQ's response codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refused {
    /// The server failed (disk error, corrupt data).
    System,
    /// Too many requests queued; try later or elsewhere.
    Busy,
    /// This server does not carry out this command (wrong kind of server).
    NotSupported,
    /// The request could not be decoded or speaks another version.
    BadRequest,
    /// No such topic and auto-creation is off.
    TopicNotExist,
    /// Bad message or name: too large, bad characters.
    Illegal,
    /// The topic's permissions, or the server's role, forbid this.
    NoPermission,
    /// Stored, but not durable as configured in time.
    NotDurable,
    /// A query found nothing.
    NotFound,
    /// The subscription expression is malformed.
    SubscriptionIllegal,
    /// This controller does not lead; the reason names the leader's
    /// address when it knows one.
    ControllerNotLeader,
    /// A deposed master, or a stale sync-state set, was refused.
    ControllerFenced,
    /// This replica is not its group's master now: a write goes to the
    /// master the name servers report.
    NotMaster,
    /// The group's offsets on the queue were reset since the caller took
    /// it: take it again from the committed offset.
    StaleReset,
    /// A POP receipt handle that no longer names its message's current
    /// attempt: the message was received again since, or is done.
    HandleExpired,
}

/// What a handler answers: its reply, or why not.
pub type Outcome<T> = Result<T, Refusal>;

/// What the store's errors mean to a caller.
impl From<crate::store::StoreError> for Refusal {
    fn from(e: crate::store::StoreError) -> Refusal {
        use crate::store::StoreError;
        let kind = match &e {
            StoreError::NotMaster => Refused::NotMaster,
            StoreError::Illegal(_) => Refused::Illegal,
            StoreError::Io(_) | StoreError::Corrupt { .. } | StoreError::CorruptFile { .. } | StoreError::Inconsistent(_) | StoreError::NotWritable(_) => Refused::System,
        };
        Refusal::new(kind, e.to_string())
    }
}
