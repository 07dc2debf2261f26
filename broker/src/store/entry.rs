//! The commit log entry format: a fixed header, then the encoded message.
//!
//! ```text
//! | total_len u32 BE | magic u32 BE | crc32 u32 BE of body | body (bincode) |
//! ```
//! `total_len` counts the header too. The magic word names the body's
//! format version, so a store keeps every entry an earlier build wrote
//! readable after the message gains fields:
//!
//! - [`MAGIC_V1`] (November 2026): [`format::EntryV1`], a message with
//!   reconsume times and nothing the broker adds for retries or delays.
//! - [`MAGIC_V2`]: [`format::EntryV2`], which adds the delay level a
//!   producer asked for, the origin of a broker-made copy (retry, dead
//!   letter) and where a delayed message goes when it is due.
//!
//! New entries are written in the newest version; each older version's
//! layout is frozen in [`format`] and converted on read. The body is encoded
//! with `commit_log_offset` and `store_size` zeroed; both are known from
//! where the entry sits and are filled in on read.

use crate::model::MessageExt;
use bincode::Options;

/// Bytes in an entry's header.
pub const HEADER_LEN: usize = 12;
/// Marks an entry in format version 1 (written until the delay levels came).
pub const MAGIC_V1: u32 = 0xDAA3_20A7;
/// Marks an entry in format version 2, the one written now.
pub const MAGIC_V2: u32 = 0xDAA3_20A8;
/// Largest entry accepted when reading: a 4 MiB body plus generous room for
/// properties. Anything larger is treated as garbage.
pub const ENTRY_LEN_MAX: usize = 5 * 1024 * 1024;

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_limit(ENTRY_LEN_MAX as u64)
}

/// True when `word` (4 bytes, big-endian) starts an entry of any version.
pub fn is_magic(word: &[u8]) -> bool {
    word.try_into().map(u32::from_be_bytes).is_ok_and(|w| w == MAGIC_V1 || w == MAGIC_V2)
}

/// Encodes a message as a complete entry of the newest version, or says
/// why it cannot be one: an entry larger than [`ENTRY_LEN_MAX`] would read
/// back as garbage, so it is never written.
pub fn encode(msg: &MessageExt) -> Result<Vec<u8>, String> {
    let stored = format::EntryV2::from(msg);
    let too_large = || format!("the stored entry would exceed the {ENTRY_LEN_MAX} bytes the store accepts");
    let size = options().serialized_size(&stored).map_err(|_| too_large())? as usize;
    if HEADER_LEN + size > ENTRY_LEN_MAX {
        return Err(too_large());
    }
    let body = options().serialize(&stored).map_err(|e| format!("the entry does not encode: {e}"))?;
    Ok(frame(MAGIC_V2, &body))
}

fn frame(magic: u32, body: &[u8]) -> Vec<u8> {
    let total = HEADER_LEN + body.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&magic.to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// What a header says, once checked for sanity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Length of the whole entry.
    pub total_len: usize,
    /// CRC the body must have.
    pub crc: u32,
    /// The body's format version.
    pub version: u8,
}

/// Parses a header; `Err` says why it is not one.
pub fn parse_header(bytes: &[u8]) -> Result<Header, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!("header cut short at {} bytes", bytes.len()));
    }
    let word = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    let total_len = word(0) as usize;
    let version = match word(4) {
        MAGIC_V1 => 1,
        MAGIC_V2 => 2,
        other => return Err(format!("bad magic {other:08x}")),
    };
    if !(HEADER_LEN..=ENTRY_LEN_MAX).contains(&total_len) {
        return Err(format!("implausible entry length {total_len}"));
    }
    Ok(Header { total_len, crc: word(8), version })
}

/// Checks the CRC and decodes the body of an entry at `offset`.
pub fn decode(header: Header, body: &[u8], offset: u64) -> Result<MessageExt, String> {
    if body.len() + HEADER_LEN != header.total_len {
        return Err(format!("body cut short: {} of {} bytes", body.len() + HEADER_LEN, header.total_len));
    }
    if crc32fast::hash(body) != header.crc {
        return Err("crc mismatch".to_string());
    }
    let undecodable = |e: bincode::Error| format!("undecodable body (format version {}): {e}", header.version);
    let mut msg: MessageExt = match header.version {
        1 => options().deserialize::<format::EntryV1>(body).map_err(undecodable)?.into(),
        _ => options().deserialize::<format::EntryV2>(body).map_err(undecodable)?.into(),
    };
    msg.commit_log_offset = offset;
    msg.store_size = header.total_len as u32;
    Ok(msg)
}

/// The frozen layout of each format version. A struct here never changes:
/// a new field means a new version, a new magic word, and a conversion.
pub mod format {
    use crate::model::{Delayed, Message, MessageExt, Origin};
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    /// A message as version 1 stored it.
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct MessageV1 {
        /// Topic.
        pub topic: String,
        /// Tag.
        pub tags: Option<String>,
        /// Business keys.
        pub keys: Vec<String>,
        /// Properties.
        pub properties: BTreeMap<String, String>,
        /// Body.
        #[serde(with = "serde_bytes")]
        pub body: Vec<u8>,
    }

    /// A version 1 entry's body.
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct EntryV1 {
        /// The message.
        pub message: MessageV1,
        /// Broker name.
        pub broker_name: String,
        /// Queue.
        pub queue_id: u32,
        /// Queue offset.
        pub queue_offset: u64,
        /// Always 0 on disk.
        pub commit_log_offset: u64,
        /// Always 0 on disk.
        pub store_size: u32,
        /// Producer's clock.
        pub born_timestamp_ms: u64,
        /// Broker's clock.
        pub store_timestamp_ms: u64,
        /// Producer's address.
        pub born_host: String,
        /// Broker's address.
        pub store_host: String,
        /// Reconsume times.
        pub reconsume_times: u32,
    }

    impl From<EntryV1> for MessageExt {
        fn from(e: EntryV1) -> MessageExt {
            let m = e.message;
            MessageExt {
                message: Message { topic: m.topic, tags: m.tags, keys: m.keys, properties: m.properties, body: m.body, delay_level: 0 },
                broker_name: e.broker_name,
                queue_id: e.queue_id,
                queue_offset: e.queue_offset,
                commit_log_offset: e.commit_log_offset,
                store_size: e.store_size,
                born_timestamp_ms: e.born_timestamp_ms,
                store_timestamp_ms: e.store_timestamp_ms,
                born_host: e.born_host,
                store_host: e.store_host,
                reconsume_times: e.reconsume_times,
                origin: None,
                delayed: None,
            }
        }
    }

    /// Where a broker-made copy came from, as version 2 stores it.
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct OriginV2 {
        /// The first message's id.
        pub msg_id: String,
        /// The topic it was sent to.
        pub topic: String,
    }

    /// Where a delayed message goes, as version 2 stores it.
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct DelayedV2 {
        /// Real topic.
        pub topic: String,
        /// Real queue.
        pub queue_id: u32,
        /// Delay level.
        pub level: u32,
        /// Due time on the broker's clock.
        pub deliver_at_ms: u64,
    }

    /// A version 2 entry's body: version 1's, the delay level a producer
    /// asked for, and what the broker adds to its copies.
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct EntryV2 {
        /// Version 1's fields.
        pub v1: EntryV1,
        /// Delay level asked for (0: none).
        pub delay_level: u32,
        /// Set on retry and dead-letter copies.
        pub origin: Option<OriginV2>,
        /// Set while the message waits in the schedule topic.
        pub delayed: Option<DelayedV2>,
    }

    impl From<&MessageExt> for EntryV2 {
        fn from(msg: &MessageExt) -> EntryV2 {
            let m = &msg.message;
            EntryV2 {
                v1: EntryV1 {
                    message: MessageV1 {
                        topic: m.topic.clone(),
                        tags: m.tags.clone(),
                        keys: m.keys.clone(),
                        properties: m.properties.clone(),
                        body: m.body.clone(),
                    },
                    broker_name: msg.broker_name.clone(),
                    queue_id: msg.queue_id,
                    queue_offset: msg.queue_offset,
                    commit_log_offset: 0,
                    store_size: 0,
                    born_timestamp_ms: msg.born_timestamp_ms,
                    store_timestamp_ms: msg.store_timestamp_ms,
                    born_host: msg.born_host.clone(),
                    store_host: msg.store_host.clone(),
                    reconsume_times: msg.reconsume_times,
                },
                delay_level: m.delay_level,
                origin: msg.origin.as_ref().map(|o| OriginV2 { msg_id: o.msg_id.clone(), topic: o.topic.clone() }),
                delayed: msg.delayed.as_ref().map(|d| DelayedV2 {
                    topic: d.topic.clone(),
                    queue_id: d.queue_id,
                    level: d.level,
                    deliver_at_ms: d.deliver_at_ms,
                }),
            }
        }
    }

    impl From<EntryV2> for MessageExt {
        fn from(e: EntryV2) -> MessageExt {
            let mut msg = MessageExt::from(e.v1);
            msg.message.delay_level = e.delay_level;
            msg.origin = e.origin.map(|o| Origin { msg_id: o.msg_id, topic: o.topic });
            msg.delayed = e.delayed.map(|d| Delayed { topic: d.topic, queue_id: d.queue_id, level: d.level, deliver_at_ms: d.deliver_at_ms });
            msg
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Delayed, Message, Origin};

    #[test]
    fn round_trip_and_corruption() {
        let msg = MessageExt {
            message: Message::new("t", b"body".to_vec()).with_key("k").with_delay_level(3),
            queue_id: 3,
            queue_offset: 9,
            origin: Some(Origin { msg_id: "m1".into(), topic: "orders".into() }),
            delayed: Some(Delayed { topic: "%RETRY%g".into(), queue_id: 0, level: 3, deliver_at_ms: 10_000 }),
            ..MessageExt::default()
        };
        let bytes = encode(&msg).unwrap();
        let header = parse_header(&bytes).unwrap();
        assert_eq!((header.total_len, header.version), (bytes.len(), 2));
        let back = decode(header, &bytes[HEADER_LEN..], 100).unwrap();
        assert_eq!(back.message, msg.message);
        assert_eq!((back.origin, back.delayed), (msg.origin, msg.delayed));
        assert_eq!(back.commit_log_offset, 100);
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(decode(header, &bad[HEADER_LEN..], 100).is_err());
        assert!(parse_header(&[0u8; 12]).is_err());
        assert!(parse_header(&bytes[..5]).is_err());
    }

    #[test]
    fn a_version_1_entry_decodes_with_the_new_fields_empty() {
        let v1 = format::EntryV1 {
            message: format::MessageV1 { topic: "orders".into(), keys: vec!["k".into()], body: b"b".to_vec(), ..Default::default() },
            queue_id: 2,
            queue_offset: 5,
            reconsume_times: 1,
            ..Default::default()
        };
        let bytes = frame(MAGIC_V1, &options().serialize(&v1).unwrap());
        let header = parse_header(&bytes).unwrap();
        assert_eq!(header.version, 1);
        let back = decode(header, &bytes[HEADER_LEN..], 7).unwrap();
        assert_eq!((back.message.topic.as_str(), back.queue_id, back.queue_offset, back.reconsume_times), ("orders", 2, 5, 1));
        assert_eq!((back.message.delay_level, back.origin, back.delayed), (0, None, None));
        // A version 1 body read as version 2 does not pass for one.
        let mut as_v2 = bytes.clone();
        as_v2[4..8].copy_from_slice(&MAGIC_V2.to_be_bytes());
        assert!(decode(parse_header(&as_v2).unwrap(), &as_v2[HEADER_LEN..], 7).is_err());
    }
}
