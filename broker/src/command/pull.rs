//! Pulling: a consumer reads a queue.

use crate::model::MessageExt;
use crate::store::GetStatus;
use serde::{Deserialize, Serialize};

/// Consumer -> broker: read a queue, waiting up to `suspend_ms` for new messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullMessage {
    /// Consumer group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Queue.
    pub queue_id: u32,
    /// First offset wanted.
    pub offset: u64,
    /// Most messages to return.
    pub max_msgs: u32,
    /// The selector: a tag expression (`*`, `TagA || TagB`) or, with
    /// `expression_type` SQL92, a condition over the message's properties.
    pub expression: String,
    /// How `expression` is written.
    pub expression_type: crate::model::ExpressionType,
    /// Long-polling wait when nothing is new.
    pub suspend_ms: u64,
    /// The queue's reset generation the consumer took it at; a pull of an
    /// earlier one is refused (see [`crate::command::ResetOffset`]).
    pub generation: u64,
}

/// Messages returned by a pull.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullResult {
    /// What the read found.
    pub status: GetStatus,
    /// Offset to pull from next.
    pub next_offset: u64,
    /// Queue's smallest offset.
    pub min_offset: u64,
    /// Queue's next offset to be written.
    pub max_offset: u64,
    /// The messages.
    pub messages: Vec<MessageExt>,
}
