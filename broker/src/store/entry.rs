//! The commit log entry format: a fixed header, then the encoded message.
//!
//! ```text
//! | total_len u32 BE | magic u32 BE | crc32 u32 BE of body | body (bincode MessageExt) |
//! ```
//! `total_len` counts the header too. The body is encoded with
//! `commit_log_offset` and `store_size` zeroed; both are known from where the
//! entry sits and are filled in on read.

use crate::model::MessageExt;
use bincode::Options;

/// Bytes in an entry's header.
pub const HEADER_LEN: usize = 12;
/// Marks the start of every entry.
pub const MAGIC: u32 = 0xDAA3_20A7;
/// Largest entry accepted when reading: a 4 MiB body plus generous room for
/// properties. Anything larger is treated as garbage.
pub const ENTRY_LEN_MAX: usize = 5 * 1024 * 1024;

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_limit(ENTRY_LEN_MAX as u64)
}

/// Encodes a message as a complete entry, or says why it cannot be one:
/// an entry larger than [`ENTRY_LEN_MAX`] would read back as garbage, so
/// it is never written.
pub fn encode(msg: &MessageExt) -> Result<Vec<u8>, String> {
    let mut stored = msg.clone();
    stored.commit_log_offset = 0;
    stored.store_size = 0;
    let too_large = || format!("the stored entry would exceed the {ENTRY_LEN_MAX} bytes the store accepts");
    let size = options().serialized_size(&stored).map_err(|_| too_large())? as usize;
    if HEADER_LEN + size > ENTRY_LEN_MAX {
        return Err(too_large());
    }
    let body = options().serialize(&stored).map_err(|e| format!("the entry does not encode: {e}"))?;
    let total = HEADER_LEN + body.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// What a header says, once checked for sanity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Length of the whole entry.
    pub total_len: usize,
    /// CRC the body must have.
    pub crc: u32,
}

/// Parses a header; `Err` says why it is not one.
pub fn parse_header(bytes: &[u8]) -> Result<Header, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!("header cut short at {} bytes", bytes.len()));
    }
    let word = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    let total_len = word(0) as usize;
    if word(4) != MAGIC {
        return Err(format!("bad magic {:08x}", word(4)));
    }
    if !(HEADER_LEN..=ENTRY_LEN_MAX).contains(&total_len) {
        return Err(format!("implausible entry length {total_len}"));
    }
    Ok(Header { total_len, crc: word(8) })
}

/// Checks the CRC and decodes the body of an entry at `offset`.
pub fn decode(header: Header, body: &[u8], offset: u64) -> Result<MessageExt, String> {
    if body.len() + HEADER_LEN != header.total_len {
        return Err(format!("body cut short: {} of {} bytes", body.len() + HEADER_LEN, header.total_len));
    }
    if crc32fast::hash(body) != header.crc {
        return Err("crc mismatch".to_string());
    }
    let mut msg: MessageExt = options().deserialize(body).map_err(|e| format!("undecodable body: {e}"))?;
    msg.commit_log_offset = offset;
    msg.store_size = header.total_len as u32;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Message;

    #[test]
    fn round_trip_and_corruption() {
        let msg = MessageExt {
            message: Message::new("t", b"body".to_vec()).with_key("k"),
            queue_id: 3,
            queue_offset: 9,
            ..MessageExt::default()
        };
        let bytes = encode(&msg).unwrap();
        let header = parse_header(&bytes).unwrap();
        assert_eq!(header.total_len, bytes.len());
        let back = decode(header, &bytes[HEADER_LEN..], 100).unwrap();
        assert_eq!(back.message, msg.message);
        assert_eq!(back.commit_log_offset, 100);
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(decode(header, &bad[HEADER_LEN..], 100).is_err());
        assert!(parse_header(&[0u8; 12]).is_err());
        assert!(parse_header(&bytes[..5]).is_err());
    }
}
