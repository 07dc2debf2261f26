//! A consumer's failed message goes back for a retry or to the dead letters.

use serde::{Deserialize, Serialize};

/// Consumer -> broker: consumption of the message at this commit log
/// offset failed; store a copy in the group's retry topic, delayed, or in
/// its dead-letter topic once it was consumed again `max_reconsume_times`
/// times (RocketMQ's `CONSUMER_SEND_MSG_BACK`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerSendMsgBack {
    /// Consumer group.
    pub group: String,
    /// Where the failed message is in this broker's commit log.
    pub commit_log_offset: u64,
    /// Delay level of the retry: 0 lets the broker choose
    /// (`3 + reconsume times`), a negative level dead-letters it now.
    pub delay_level: i32,
    /// The group's max reconsume times.
    pub max_reconsume_times: u32,
}
