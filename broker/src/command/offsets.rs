//! Offsets: a group's committed progress and a queue's readable range.

use serde::{Deserialize, Serialize};

/// Consumer -> broker: commit an offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateConsumerOffset {
    /// Group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Queue.
    pub queue_id: u32,
    /// Next offset to consume.
    pub offset: u64,
}

/// Consumer -> broker: the committed offset, if any.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryConsumerOffset {
    /// Group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Queue.
    pub queue_id: u32,
}

/// The readable range of a queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetQueueOffsets {
    /// Topic.
    pub topic: String,
    /// Queue.
    pub queue_id: u32,
}

/// The first offset of a queue stored at or after a time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchOffsetByTime {
    /// Topic.
    pub topic: String,
    /// Queue.
    pub queue_id: u32,
    /// Time in ms.
    pub timestamp_ms: u64,
}

/// Readable range of one queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Queue id.
    pub queue_id: u32,
    /// Smallest offset.
    pub min_offset: u64,
    /// Next offset to be written.
    pub max_offset: u64,
}
