//! Administration: topics, their figures, a group's progress, the broker's
//! figures.

use crate::model::TopicConfig;
use serde::{Deserialize, Serialize};

/// Admin -> broker: create or update a topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTopic {
    /// The topic.
    pub config: TopicConfig,
}

/// Admin -> broker: delete a topic. Its stored messages stay until
/// retention takes them; it is no longer served, routed or written, and a
/// send re-creates it only where topics are created automatically.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteTopic {
    /// The topic.
    pub topic: String,
}

/// Admin -> broker: create or update a subscription group
/// (`updateSubGroup`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateSubscriptionGroup {
    /// The group's settings.
    pub config: crate::model::SubscriptionGroup,
}

/// Admin -> broker: delete a subscription group (`deleteSubGroup`); the
/// group takes the defaults again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteSubscriptionGroup {
    /// The group.
    pub group: String,
}

/// Admin -> broker: every subscription group it keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetSubscriptionGroups;

/// Admin -> broker: per-queue offsets of a topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetTopicStats {
    /// The topic.
    pub topic: String,
}

/// Group offsets and queue ends for a topic (consumer progress).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetConsumeStats {
    /// Group.
    pub group: String,
    /// Topic.
    pub topic: String,
}

/// A group's progress on one queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumeProgress {
    /// Queue id.
    pub queue_id: u32,
    /// Queue end.
    pub max_offset: u64,
    /// Committed offset, if any.
    pub consumer_offset: Option<u64>,
}

/// Broker figures for `mqadmin`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// Broker name.
    pub broker_name: String,
    /// Commit log end.
    pub write_offset: u64,
    /// Durable commit log end.
    pub flushed_offset: u64,
    /// Messages stored since start.
    pub put_count: u64,
    /// Messages returned by pulls since start.
    pub get_count: u64,
    /// "SYNC_FLUSH" or "ASYNC_FLUSH".
    pub flush_mode: String,
    /// Delayed messages (retries included) not yet moved to their topics.
    pub delayed_pending: u64,
    /// Half messages neither committed, rolled back nor moved aside, with
    /// a live producer to ask.
    pub halves_pending: u64,
    /// Open half messages whose producer group had no live producer when
    /// last checked: they wait for one to come back.
    pub halves_orphaned: u64,
    /// Timer messages not yet delivered.
    pub timers_pending: u64,
    /// Half messages moved aside after too many checks, since start.
    pub halves_moved_aside: u64,
    /// Commit log fsyncs since start: under SYNC_FLUSH, the sends a flush
    /// covers (group commit) is `put_count` over this.
    pub flush_count: u64,
    /// Sends refused busy since start: the send queue was full, or a send
    /// waited in it past `waitTimeMillsInSendQueue`.
    pub send_busy: u64,
    /// Sends waiting for their turn to write now.
    pub send_queue_waiting: u64,
}

/// Admin -> broker: every topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetTopicList;

/// Admin -> broker: store and traffic figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetBrokerRuntimeInfo;

/// Admin -> broker: its settings, as `broker.conf` keys and values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetBrokerConfig;
