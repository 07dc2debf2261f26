//! Queries: messages by business key, by unique id, by offset id, by
//! queue offset.

use serde::{Deserialize, Serialize};

/// Messages of a topic carrying a business key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryMessageByKey {
    /// Topic.
    pub topic: String,
    /// Business key.
    pub key: String,
    /// Most results (32 by default).
    pub max: u32,
    /// Earliest store time.
    pub begin_ms: u64,
    /// Latest store time.
    pub end_ms: u64,
}

/// Every stored copy of a unique id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryMessageByUniqueId {
    /// The id.
    pub id: String,
}

/// The message at a commit log offset (from an offset id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewMessage {
    /// The offset.
    pub commit_log_offset: u64,
}

/// Messages of one queue from a queue offset on, as stored (RocketMQ's
/// `queryMsgByOffset`, and `printMsg` read queue by queue): no group, no
/// filter, nothing committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryMessageByQueueOffset {
    /// Topic.
    pub topic: String,
    /// Queue.
    pub queue_id: u32,
    /// The first queue offset.
    pub offset: u64,
    /// Most messages (at most 32).
    pub max: u32,
}
