//! Queue locks of orderly consumers.

use serde::{Deserialize, Serialize};

/// Orderly consumer -> broker: lock (or renew) these queues of the group
/// for this client; the answer lists the queues it holds now, as
/// (topic, queue id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockBatchMq {
    /// Consumer group.
    pub group: String,
    /// The client asking.
    pub client_id: String,
    /// (topic, queue id) pairs on this broker.
    pub queues: Vec<(String, u32)>,
}

/// Orderly consumer -> broker: release these queues (rebalance, shutdown).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlockBatchMq {
    /// Consumer group.
    pub group: String,
    /// The client releasing.
    pub client_id: String,
    /// (topic, queue id) pairs on this broker.
    pub queues: Vec<(String, u32)>,
}
