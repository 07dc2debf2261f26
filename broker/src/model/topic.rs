//! Topic configuration and name rules.

use serde::{Deserialize, Serialize};

/// Consumers may read the topic.
pub const PERM_READ: u8 = 4;
/// Producers may write the topic.
pub const PERM_WRITE: u8 = 2;

/// A topic as one broker holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    /// The name, `^[%|a-zA-Z0-9_-]+$`.
    pub name: String,
    /// Queues producers may write to.
    pub write_queues: u32,
    /// Queues consumers read from.
    pub read_queues: u32,
    /// `PERM_READ | PERM_WRITE` bits.
    pub perm: u8,
    /// Whether the topic is FIFO (ordered); routing uses a selector.
    pub order: bool,
}

impl TopicConfig {
    /// A read-write topic with `queues` queues.
    pub fn new(name: impl Into<String>, queues: u32) -> TopicConfig {
        TopicConfig {
            name: name.into(),
            write_queues: queues,
            read_queues: queues,
            perm: PERM_READ | PERM_WRITE,
            order: false,
        }
    }

    /// Whether producers may write.
    pub fn writable(&self) -> bool {
        self.perm & PERM_WRITE != 0
    }

    /// Whether consumers may read.
    pub fn readable(&self) -> bool {
        self.perm & PERM_READ != 0
    }
}

/// Longest topic or group name accepted (RocketMQ: 127).
pub const NAME_LEN_MAX: usize = 127;

/// Most queues a topic may have, for reading or for writing.
pub const TOPIC_QUEUES_MAX: u32 = 1024;

/// Checks a topic or group name: `^[%|a-zA-Z0-9_-]+$`, at most 127 bytes.
pub fn validate_name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{kind} name is empty"));
    }
    if name.len() > NAME_LEN_MAX {
        return Err(format!("{kind} name is longer than {NAME_LEN_MAX} bytes"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-')))
    {
        return Err(format!("{kind} name {name:?} contains {bad:?}; allowed: letters, digits, %|_-"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_rocketmq_rules() {
        assert!(validate_name("topic", "orders_v2-%RETRY%g|x").is_ok());
        assert!(validate_name("topic", "").is_err());
        assert!(validate_name("topic", "bad name").is_err());
        assert!(validate_name("topic", "a/b").is_err());
        assert!(validate_name("topic", &"x".repeat(128)).is_err());
    }
}

/// A consumer group as the broker keeps it (RocketMQ's
/// `SubscriptionGroupConfig`, `updateSubGroup`): durable broker state,
/// copied to slaves. A group without one takes the defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SubscriptionGroup {
    /// The group.
    pub group_name: String,
    /// Whether the group may consume at all: off, its pulls and receives
    /// are refused (an operator stopping a misbehaving consumer).
    pub consume_enable: bool,
    /// Whether the group may consume by broadcasting.
    pub consume_broadcast_enable: bool,
    /// Times a message is consumed again before it is dead-lettered; the
    /// broker's word wins over what a consumer asks (RocketMQ's default 16).
    pub retry_max_times: u32,
    /// Whether the group consumes orderly.
    pub consume_message_orderly: bool,
}

impl Default for SubscriptionGroup {
    fn default() -> SubscriptionGroup {
        SubscriptionGroup {
            group_name: String::new(),
            consume_enable: true,
            consume_broadcast_enable: true,
            retry_max_times: crate::model::MAX_RECONSUME_TIMES_DEFAULT,
            consume_message_orderly: false,
        }
    }
}
