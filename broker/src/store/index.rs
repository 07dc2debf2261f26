//! The message index: business key (`topic#key`) and unique id to commit log
//! offsets. Kept in memory, persisted as an append-only record file.
//!
//! ```text
//! record: key_len u16 | key | commit log offset u64 | crc32 u32 of the preceding bytes
//! ```

use super::Disk;
use crate::error::{Error, Result};
use crate::protocol::ResponseCode;
use std::collections::BTreeMap;

const PATH: &str = "index/keys";

/// Longest key a record holds (its length is a u16).
pub const KEY_BYTES_MAX: usize = u16::MAX as usize;

/// Index key for a business key of a topic.
pub fn key_of(topic: &str, key: &str) -> String {
    format!("k:{topic}#{key}")
}

/// Index key for a unique id.
pub fn uniq_of(id: &str) -> String {
    format!("u:{id}")
}

/// In-memory map over the persisted record file.
#[derive(Debug, Default)]
pub struct KeyIndex {
    map: BTreeMap<String, Vec<u64>>,
}

impl KeyIndex {
    /// Loads records pointing before `durable_until`, cutting the file where
    /// the first later (or torn) record starts.
    pub fn load(disk: &dyn Disk, durable_until: u64) -> Result<KeyIndex> {
        let bytes = super::disk::read_all(disk, PATH)?.unwrap_or_default();
        let mut index = KeyIndex::default();
        let mut pos = 0usize;
        while let Some((key, offset, len)) = parse_record(&bytes[pos..]) {
            if offset >= durable_until {
                break;
            }
            // A record whose checksum holds but whose key is not UTF-8
            // (written by an older build that cut long keys) is passed
            // over; the records after it are still good.
            if let Some(key) = key {
                index.map.entry(key).or_default().push(offset);
            }
            pos += len;
        }
        if pos != bytes.len() {
            // Durably, for the same reason as consume queues.
            disk.truncate(PATH, pos as u64)?;
            disk.sync(PATH)?;
        }
        Ok(index)
    }

    /// Records that `key` is found at `offset` (a key too long for a
    /// record is refused whole).
    pub fn add(&mut self, disk: &dyn Disk, key: String, offset: u64) -> Result<()> {
        disk.append(PATH, &record(&key, offset)?)?;
        self.map.entry(key).or_default().push(offset);
        Ok(())
    }

    /// Replaces the record file with `records` (key, offset; in log order),
    /// durably and in one step: a crash leaves the old file or the new,
    /// never a torn rewrite below the checkpoint that vouches for it.
    pub fn rewrite(disk: &dyn Disk, records: Vec<(String, u64)>) -> Result<KeyIndex> {
        let mut index = KeyIndex::default();
        let mut bytes = Vec::new();
        for (key, offset) in records {
            bytes.extend_from_slice(&record(&key, offset)?);
            index.map.entry(key).or_default().push(offset);
        }
        disk.write_atomic(PATH, &bytes)?;
        Ok(index)
    }

    /// Commit log offsets recorded for a key, oldest first.
    pub fn lookup(&self, key: &str) -> &[u64] {
        self.map.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Makes the record file durable.
    pub fn sync(&self, disk: &dyn Disk) -> Result<()> {
        if disk.len(PATH)?.is_some() {
            disk.sync(PATH)?;
        }
        Ok(())
    }
}

/// The bytes of one record. A key longer than a record holds is refused
/// whole, never cut: a cut inside a multi-byte character would not read
/// back. (The store's message limits keep every key well below it.)
fn record(key: &str, offset: u64) -> Result<Vec<u8>> {
    if key.len() > KEY_BYTES_MAX {
        return Err(Error::rejected(
            ResponseCode::MessageIllegal,
            format!("index key is {} bytes, more than the {KEY_BYTES_MAX} an index record holds", key.len()),
        ));
    }
    let key_bytes = key.as_bytes();
    let mut rec = Vec::with_capacity(key_bytes.len() + 14);
    rec.extend_from_slice(&(key_bytes.len() as u16).to_be_bytes());
    rec.extend_from_slice(key_bytes);
    rec.extend_from_slice(&offset.to_be_bytes());
    let crc = crc32fast::hash(&rec);
    rec.extend_from_slice(&crc.to_be_bytes());
    Ok(rec)
}

/// One record: its key (`None` when not UTF-8), offset and length; `None`
/// for a torn or corrupt record.
fn parse_record(b: &[u8]) -> Option<(Option<String>, u64, usize)> {
    let key_len = u16::from_be_bytes(b.get(..2)?.try_into().ok()?) as usize;
    let len = 2 + key_len + 8 + 4;
    let rec = b.get(..len)?;
    let crc = u32::from_be_bytes(rec[len - 4..].try_into().ok()?);
    if crc32fast::hash(&rec[..len - 4]) != crc {
        return None;
    }
    let key = String::from_utf8(rec[2..2 + key_len].to_vec()).ok();
    let offset = u64::from_be_bytes(rec[2 + key_len..len - 4].try_into().ok()?);
    Some((key, offset, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemDisk;

    #[test]
    fn records_survive_reload_and_torn_tail_is_cut() {
        let disk = MemDisk::new();
        let mut idx = KeyIndex::default();
        idx.add(&disk, key_of("t", "a"), 10).unwrap();
        idx.add(&disk, key_of("t", "a"), 20).unwrap();
        idx.add(&disk, uniq_of("x"), 30).unwrap();
        disk.append(PATH, &[0, 9, 1]).unwrap();
        let loaded = KeyIndex::load(&disk, 25).unwrap();
        assert_eq!(loaded.lookup(&key_of("t", "a")), &[10, 20]);
        assert!(loaded.lookup(&uniq_of("x")).is_empty());
        let again = KeyIndex::load(&disk, u64::MAX).unwrap();
        assert_eq!(again.lookup(&key_of("t", "a")), &[10, 20]);
    }

    /// Regression: a key longer than a record holds was cut at 65,535
    /// bytes; when the cut fell inside a multi-byte character the next load
    /// stopped at that record and truncated the file, losing every later
    /// record. Now the key is refused whole and later records survive.
    #[test]
    fn a_key_too_long_for_a_record_is_refused_and_later_records_survive() {
        let disk = MemDisk::new();
        let mut idx = KeyIndex::default();
        idx.add(&disk, key_of("t", "before"), 10).unwrap();
        let long = key_of("t", &"é".repeat(40_000));
        assert!(long.len() > KEY_BYTES_MAX);
        let err = idx.add(&disk, long.clone(), 20).unwrap_err();
        assert!(err.to_string().contains("65535"), "{err}");
        assert!(idx.lookup(&long).is_empty(), "a refused key stays out of memory too");
        idx.add(&disk, key_of("t", "after"), 30).unwrap();
        let loaded = KeyIndex::load(&disk, u64::MAX).unwrap();
        assert_eq!(loaded.lookup(&key_of("t", "before")), &[10]);
        assert_eq!(loaded.lookup(&key_of("t", "after")), &[30]);
    }

    /// A record an older build cut inside a character is passed over on
    /// load; the records after it are kept.
    #[test]
    fn a_record_with_a_key_that_is_not_utf8_is_passed_over() {
        let disk = MemDisk::new();
        let mut rec = Vec::new();
        rec.extend_from_slice(&1u16.to_be_bytes());
        rec.push(0xC3);
        rec.extend_from_slice(&5u64.to_be_bytes());
        let crc = crc32fast::hash(&rec);
        rec.extend_from_slice(&crc.to_be_bytes());
        disk.append(PATH, &rec).unwrap();
        KeyIndex::default().add(&disk, key_of("t", "after"), 30).unwrap();
        let loaded = KeyIndex::load(&disk, u64::MAX).unwrap();
        assert_eq!(loaded.lookup(&key_of("t", "after")), &[30]);
    }
}
