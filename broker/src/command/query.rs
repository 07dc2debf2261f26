//! Queries: messages by business key, by unique id, by offset id.

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
