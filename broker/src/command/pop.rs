//! POP consumption (RocketMQ 5's SimpleConsumer): the broker, not the
//! consumer, decides which messages each receive gets. A received message
//! is invisible to the group for a while; acknowledged by its receipt
//! handle it is done, otherwise it becomes visible again with its attempt
//! raised, and past the group's most attempts it goes to the group's
//! dead-letter queue.

use super::ConsumeFrom;
use crate::model::{ExpressionType, MessageExt};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Consumer -> broker: receive up to `max_msgs` visible messages of `topic`
/// from any of this broker's queues (RocketMQ's `POP_MESSAGE` with queue
/// id -1), waiting up to `poll_ms` for one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PopMessage {
    /// Consumer group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Most messages to return (1 to 32).
    pub max_msgs: u32,
    /// How long each received message stays invisible to the group.
    pub invisible_ms: u64,
    /// Long-polling wait when nothing is visible.
    pub poll_ms: u64,
    /// The selector: a tag expression or an SQL92 condition.
    pub expression: String,
    /// How `expression` is written.
    pub expression_type: ExpressionType,
    /// FIFO: a queue gives out its next messages only once none of its
    /// earlier ones is in flight, so one message group's messages are
    /// received in order, one batch at a time.
    pub fifo: bool,
    /// Attempts after which an unacknowledged message goes to the group's
    /// dead-letter queue instead of being received again.
    pub max_attempts: u32,
    /// Where a group that never received from a queue starts.
    pub consume_from: ConsumeFrom,
}

/// Most messages one receive returns (RocketMQ's limit).
pub const POP_BATCH_MAX: u32 = 32;

/// Which received message an ack or a change of invisible time is about:
/// the broker group, the queue and offset, and the attempt it was received
/// as. An attempt that was received again since (its invisible time ran
/// out) has a newer handle, and the old one is refused.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReceiptHandle {
    /// The broker group that holds the message.
    pub broker_name: String,
    /// Topic.
    pub topic: String,
    /// Queue.
    pub queue_id: u32,
    /// Queue offset.
    pub offset: u64,
    /// 1 on the first receive, raised by every receive after.
    pub attempt: u32,
    /// When the message becomes visible again unless acknowledged, on the
    /// broker's clock (ms).
    pub visible_at_ms: u64,
}

impl fmt::Display for ReceiptHandle {
    /// `broker topic queue offset attempt visible`, space-separated (names
    /// hold no spaces).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} {} {} {}", self.broker_name, self.topic, self.queue_id, self.offset, self.attempt, self.visible_at_ms)
    }
}

impl FromStr for ReceiptHandle {
    type Err = String;

    fn from_str(s: &str) -> Result<ReceiptHandle, String> {
        let parts: Vec<&str> = s.split(' ').collect();
        let [broker_name, topic, queue_id, offset, attempt, visible] = parts[..] else {
            return Err(format!("a receipt handle has 6 space-separated fields, not {}: {s:?}", parts.len()));
        };
        let number = |what: &str, v: &str| v.parse::<u64>().map_err(|e| format!("receipt handle {what} {v:?}: {e}"));
        Ok(ReceiptHandle {
            broker_name: broker_name.to_string(),
            topic: topic.to_string(),
            queue_id: u32::try_from(number("queue", queue_id)?).map_err(|e| e.to_string())?,
            offset: number("offset", offset)?,
            attempt: u32::try_from(number("attempt", attempt)?).map_err(|e| e.to_string())?,
            visible_at_ms: number("visible time", visible)?,
        })
    }
}

/// One received message and its handle; its `reconsume_times` is the
/// attempt less one, as RocketMQ reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Popped {
    /// The message.
    pub message: MessageExt,
    /// How to acknowledge it.
    pub handle: ReceiptHandle,
}

/// Messages a receive returned (none when nothing was visible in time).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PopResult {
    /// The messages.
    pub messages: Vec<Popped>,
}

/// Consumer -> broker: a received message is done (RocketMQ's
/// `ACK_MESSAGE`). Refused when the handle's attempt is no longer the
/// message's current one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckMessage {
    /// Consumer group.
    pub group: String,
    /// The receipt handle.
    pub handle: ReceiptHandle,
}

/// Consumer -> broker: keep a received message invisible for
/// `invisible_ms` from now (RocketMQ's `CHANGE_MESSAGE_INVISIBLETIME`);
/// answered with its new handle (the old one stays valid for an ack).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeInvisibleTime {
    /// Consumer group.
    pub group: String,
    /// The receipt handle.
    pub handle: ReceiptHandle,
    /// How long from now the message stays invisible.
    pub invisible_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_handle_reads_back_what_it_writes_and_refuses_garbage() {
        let handle = ReceiptHandle { broker_name: "broker-a".into(), topic: "orders".into(), queue_id: 3, offset: 77, attempt: 2, visible_at_ms: 1_700_000_000_123 };
        assert_eq!(handle.to_string().parse::<ReceiptHandle>(), Ok(handle));
        for bad in ["", "a b c", "broker-a orders x 77 2 5", "broker-a orders 3 77 2 5 extra", "broker-a orders 3 -1 2 5"] {
            assert!(bad.parse::<ReceiptHandle>().is_err(), "{bad:?}");
        }
    }
}
