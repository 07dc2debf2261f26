//! Sending: a producer stores a message on a broker.

use crate::model::Message;
use serde::{Deserialize, Serialize};

/// Producer -> broker: store a message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendMessage {
    /// Producer group.
    pub producer_group: String,
    /// Target queue.
    pub queue_id: u32,
    /// The message, with `UNIQ_KEY` set.
    pub message: Message,
    /// Producer's clock at creation.
    pub born_timestamp_ms: u64,
    /// Producer's address or id.
    pub born_host: String,
    /// Queues for an auto-created topic.
    pub default_topic_queues: u32,
}

/// Producer -> broker: store a batch of messages in one queue, in one
/// request (RocketMQ's `SEND_BATCH_MESSAGE`): all of one topic, none
/// delayed, timed or transactional, at most 4 MiB of bodies together.
/// Answered with one result per message, in order, all of one status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendBatch {
    /// Producer group.
    pub producer_group: String,
    /// Target queue.
    pub queue_id: u32,
    /// The messages, each with `UNIQ_KEY` set.
    pub messages: Vec<Message>,
    /// Producer's clock at creation.
    pub born_timestamp_ms: u64,
    /// Producer's address or id.
    pub born_host: String,
    /// Queues for an auto-created topic.
    pub default_topic_queues: u32,
}

/// Broker -> requesting client: a reply to its request (RocketMQ's
/// `PUSH_REPLY_MESSAGE_TO_CLIENT`), pushed over the connection the client
/// heartbeats on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushReplyMessage {
    /// The reply, with the request's correlation id.
    pub message: crate::model::MessageExt,
}

/// Most body bytes one batch carries, together (RocketMQ's 4 MiB).
pub const BATCH_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;

/// How a send ended, after RocketMQ's `SendStatus`. Only `SendOk` means
/// stored as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendStatus {
    /// Stored and, as configured, flushed and replicated.
    SendOk,
    /// Stored; the fsync did not finish within the timeout.
    FlushDiskTimeout,
    /// Stored; the slave did not confirm within the timeout.
    FlushSlaveTimeout,
    /// Stored; no slave to replicate to.
    SlaveNotAvailable,
}

/// Result of a stored message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResult {
    /// Durability reached.
    pub status: SendStatus,
    /// The unique id.
    pub msg_id: String,
    /// The offset id (broker + commit log offset).
    pub offset_msg_id: String,
    /// Broker that stored it.
    pub broker_name: String,
    /// Queue.
    pub queue_id: u32,
    /// Position in the queue.
    pub queue_offset: u64,
}
