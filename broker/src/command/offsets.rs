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
    /// The queue's reset generation the consumer took it at (see
    /// [`ResetOffset`]): a commit of an earlier one is refused with
    /// [`crate::command::Refused::StaleReset`], so a consumer that has
    /// not heard of a reset cannot undo it.
    pub generation: u64,
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

/// A group's committed offset on a queue and the queue's reset generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    /// Next offset to consume, if the group committed one.
    pub offset: Option<u64>,
    /// How many times the group's offset on this queue was reset by an
    /// operator; pulls and commits carry it.
    pub generation: u64,
}

/// Admin -> broker: move a group's offsets on every queue of a topic this
/// broker holds to the first message stored at or after a time (back or
/// forward: RocketMQ's `resetOffsetByTime`), or to the queues' ends when
/// no time is given (`skipAccumulatedMessage`). Online: the group's
/// consumers are told, and a pull or commit of one that did not hear of it
/// is refused until it takes the queue again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetOffset {
    /// Consumer group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Store time in ms, or `None` for each queue's end.
    pub timestamp_ms: Option<u64>,
}

/// Where a reset put one queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueReset {
    /// Queue id.
    pub queue_id: u32,
    /// The group's committed offset now.
    pub offset: u64,
    /// The queue's new reset generation.
    pub generation: u64,
}

/// Broker -> consumer, oneway: an operator reset `group`'s offsets on
/// `topic` at `broker_name`; take those queues again from the committed
/// offsets (RocketMQ's `RESET_CONSUMER_CLIENT_OFFSET`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetOffsetNotice {
    /// Consumer group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// The broker whose queues were reset.
    pub broker_name: String,
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
