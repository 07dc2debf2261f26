//! The message a producer sends and the stored form a consumer receives.

use super::topic::validate_name;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Property holding the client-made unique id, kept across resends.
pub const PROPERTY_UNIQ_KEY: &str = "UNIQ_KEY";

/// Request-reply: the id a reply carries back to its request.
pub const PROPERTY_CORRELATION_ID: &str = "CORRELATION_ID";
/// Request-reply: the client id of the requester a reply goes to.
pub const PROPERTY_REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
/// Request-reply: `request` or `reply`.
pub const PROPERTY_MESSAGE_TYPE: &str = "MSG_TYPE";
/// Request-reply: how long the requester waits, in ms.
pub const PROPERTY_MESSAGE_TTL: &str = "TTL";
/// [`PROPERTY_MESSAGE_TYPE`] of a request.
pub const MESSAGE_TYPE_REQUEST: &str = "request";
/// [`PROPERTY_MESSAGE_TYPE`] of a reply.
pub const MESSAGE_TYPE_REPLY: &str = "reply";

/// Most bytes a message's properties may take, its tag and keys included
/// (RocketMQ: `Short.MAX_VALUE`). It also bounds every index key.
pub const PROPERTIES_BYTES_MAX: usize = 32_767;

/// Most bytes of a producer's self-declared address (`born_host`).
pub const BORN_HOST_BYTES_MAX: usize = 255;

/// What a producer sends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Destination topic.
    pub topic: String,
    /// One tag, used for broker-side filtering (`TagA || TagB`).
    pub tags: Option<String>,
    /// Business keys, indexed for query by key.
    pub keys: Vec<String>,
    /// User and system properties; `UNIQ_KEY` holds the unique id.
    pub properties: BTreeMap<String, String>,
    /// The payload.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// Delay level asked for: 1 is the first of the broker's delay levels
    /// (`messageDelayLevel`), 0 none. The broker holds the message back
    /// until its level's delay has passed.
    pub delay_level: u32,
}

impl Message {
    /// A message with a topic and body and nothing else.
    pub fn new(topic: impl Into<String>, body: impl Into<Vec<u8>>) -> Message {
        Message { topic: topic.into(), body: body.into(), ..Message::default() }
    }

    /// Sets the tag.
    pub fn with_tags(mut self, tags: impl Into<String>) -> Message {
        self.tags = Some(tags.into());
        self
    }

    /// Adds a business key.
    pub fn with_key(mut self, key: impl Into<String>) -> Message {
        self.keys.push(key.into());
        self
    }

    /// Asks for a delay level (1-based; 0 for none).
    pub fn with_delay_level(mut self, level: u32) -> Message {
        self.delay_level = level;
        self
    }

    /// Sets a property.
    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Message {
        self.properties.insert(name.into(), value.into());
        self
    }

    /// The unique id, if one was assigned.
    pub fn unique_id(&self) -> Option<&str> {
        self.properties.get(PROPERTY_UNIQ_KEY).map(String::as_str)
    }

    /// Bytes the properties take as RocketMQ writes them (`name\x01value\x02`
    /// each), with the tag (`TAGS`) and the keys (`KEYS`, joined by spaces)
    /// counted as the properties they are there.
    pub fn properties_len(&self) -> usize {
        let pair = |name: &str, value: usize| name.len() + value + 2;
        let keys = self.keys.iter().map(String::len).sum::<usize>() + self.keys.len().saturating_sub(1);
        self.properties.iter().map(|(name, value)| pair(name, value.len())).sum::<usize>()
            + self.tags.as_ref().map_or(0, |tag| pair("TAGS", tag.len()))
            + if self.keys.is_empty() { 0 } else { pair("KEYS", keys) }
    }

    /// Checks the limits every stored message meets, RocketMQ's: a valid
    /// topic name of at most 127 bytes, a body of at most `body_bytes_max`,
    /// properties (tag and keys included) of at most
    /// [`PROPERTIES_BYTES_MAX`], a tag that is not blank and holds no `|`
    /// (which separates tags in a subscription), and keys that are not
    /// empty. The error names the limit.
    pub fn check_limits(&self, body_bytes_max: usize) -> Result<(), String> {
        validate_name("topic", &self.topic)?;
        if self.body.len() > body_bytes_max {
            return Err(format!("body is {} bytes, more than the {body_bytes_max} allowed", self.body.len()));
        }
        let properties = self.properties_len();
        if properties > PROPERTIES_BYTES_MAX && !crate::bugs::active(crate::bugs::Bug::LimitsUnchecked) {
            return Err(format!(
                "properties (tag and keys included) take {properties} bytes, more than the {PROPERTIES_BYTES_MAX} allowed"
            ));
        }
        if let Some(tag) = &self.tags {
            if tag.trim().is_empty() || tag.contains('|') {
                return Err(format!("tag {tag:?} is blank or contains `|`, which separates tags in a subscription"));
            }
        }
        if self.keys.iter().any(String::is_empty) {
            return Err("a business key is empty".to_string());
        }
        Ok(())
    }
}

/// A stored message, as read back from the broker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageExt {
    /// The message as sent.
    pub message: Message,
    /// The broker that stored it.
    pub broker_name: String,
    /// Queue within the topic.
    pub queue_id: u32,
    /// Position within that queue.
    pub queue_offset: u64,
    /// Position of the entry in the broker's commit log.
    pub commit_log_offset: u64,
    /// Size of the stored entry in bytes.
    pub store_size: u32,
    /// When the producer made it (producer's clock).
    pub born_timestamp_ms: u64,
    /// When the broker stored it (broker's clock).
    pub store_timestamp_ms: u64,
    /// The producer's address.
    pub born_host: String,
    /// The broker's address.
    pub store_host: String,
    /// How many times consumption was retried before this delivery.
    pub reconsume_times: u32,
    /// Set on the copies the broker makes of a message (a retry, a dead
    /// letter): the first message's id and topic.
    pub origin: Option<Origin>,
    /// Set while a delayed message waits in the schedule topic: where it
    /// goes, and when.
    pub delayed: Option<Delayed>,
}

/// Where a broker-made copy of a message came from (RocketMQ's
/// `ORIGIN_MESSAGE_ID` and `RETRY_TOPIC`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The id of the message first sent.
    pub msg_id: String,
    /// The topic it was sent to.
    pub topic: String,
}

/// A message held back in the schedule topic (RocketMQ's `REAL_TOPIC`,
/// `REAL_QID` and `DELAY`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delayed {
    /// The topic it goes to when due.
    pub topic: String,
    /// The queue it goes to.
    pub queue_id: u32,
    /// Its delay level.
    pub level: u32,
    /// When it is due, on the broker's clock.
    pub deliver_at_ms: u64,
}

impl MessageExt {
    /// The client-made unique id; for a broker-made copy of a message
    /// without one, the original's id; else the offset id.
    pub fn msg_id(&self) -> String {
        match (self.message.unique_id(), &self.origin) {
            (Some(id), _) => id.to_string(),
            (None, Some(origin)) => origin.msg_id.clone(),
            (None, None) => self.offset_msg_id(),
        }
    }

    /// The topic the message was sent to: a retry copy's original topic.
    pub fn origin_topic(&self) -> &str {
        self.origin.as_ref().map_or(&self.message.topic, |o| &o.topic)
    }

    /// The id made of store host and commit log offset.
    pub fn offset_msg_id(&self) -> String {
        offset_msg_id(&self.broker_name, self.commit_log_offset)
    }
}

/// An offset id: the broker name and the commit log offset, `name@hex`.
pub fn offset_msg_id(broker_name: &str, commit_log_offset: u64) -> String {
    format!("{broker_name}@{commit_log_offset:016X}")
}

/// Splits an offset id into broker name and commit log offset.
pub fn parse_offset_msg_id(id: &str) -> Option<(&str, u64)> {
    let (name, hex) = id.rsplit_once('@')?;
    let offset = u64::from_str_radix(hex, 16).ok()?;
    Some((name, offset))
}

/// The tag hash kept in consume queue entries (FNV-1a 64, stable forever).
pub fn tag_hash(tag: &str) -> u64 {
    fnv1a(tag.as_bytes())
}

/// FNV-1a 64 of `bytes`: small, stable on every platform and release.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Makes unique ids: a per-client prefix plus a counter, like RocketMQ's
/// `MessageClientIDSetter` (which mixes in the IP, pid and time).
#[derive(Debug)]
pub struct UniqueIdGenerator {
    prefix: String,
    counter: std::sync::atomic::AtomicU64,
}

impl UniqueIdGenerator {
    /// `prefix` must be unique per client instance (client id plus start time).
    pub fn new(prefix: impl Into<String>) -> UniqueIdGenerator {
        UniqueIdGenerator { prefix: prefix.into(), counter: std::sync::atomic::AtomicU64::new(0) }
    }

    /// The next id.
    pub fn next_id(&self) -> String {
        let n = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}-{n:08X}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_id_round_trips() {
        let id = offset_msg_id("broker-a", 0x1234);
        assert_eq!(id, "broker-a@0000000000001234");
        assert_eq!(parse_offset_msg_id(&id), Some(("broker-a", 0x1234)));
        assert_eq!(parse_offset_msg_id("nonsense"), None);
    }

    #[test]
    fn tag_hash_is_stable() {
        assert_eq!(tag_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(tag_hash("TagA"), tag_hash("TagB"));
    }

    #[test]
    fn unique_ids_differ() {
        let g = UniqueIdGenerator::new("c1");
        assert_ne!(g.next_id(), g.next_id());
    }
}
