//! Lookups through the key index: by business key, by unique id, and the
//! index's rebuild from the commit log when it disagrees with it.

use super::error::{Result, StoreError};
use super::*;

impl MessageStore {
    /// Messages of `topic` carrying business key `key`, stored within
    /// `[begin_ms, end_ms]`, newest last, at most `max`.
    pub fn query_by_key(&self, topic: &str, key: &str, max: usize, begin_ms: u64, end_ms: u64) -> Result<Vec<MessageExt>> {
        let mut found = Vec::new();
        let mut bytes = 0u64;
        self.index.walk(self.disk.as_ref(), &index::key_of(topic, key), |offset| {
            if found.len() >= max || offset < self.commit_log.min_offset() {
                return Ok(false);
            }
            let msg = self.read_indexed(offset)?;
            if msg.message.topic != topic || !msg.message.keys.iter().any(|k| k == key) {
                return Err(StoreError::Inconsistent(format!("index: key {topic}#{key} points at offset {offset}, a message without it")));
            }
            if (begin_ms..=end_ms).contains(&msg.store_timestamp_ms) {
                bytes += u64::from(msg.store_size);
                if !found.is_empty() && bytes > READ_BYTES_MAX {
                    return Ok(false);
                }
                found.push(msg);
            }
            Ok(true)
        })?;
        found.reverse();
        Ok(found)
    }

    /// Every stored copy of the message with this unique id (a resend stores
    /// it twice), oldest first, up to [`READ_BYTES_MAX`] bytes.
    pub fn query_by_unique_id(&self, id: &str) -> Result<Vec<MessageExt>> {
        let mut found = Vec::new();
        let mut bytes = 0u64;
        let offsets = self.index.lookup(self.disk.as_ref(), &index::uniq_of(id))?;
        for &offset in offsets.iter().filter(|&&o| o >= self.commit_log.min_offset()) {
            let msg = self.read_indexed(offset)?;
            if msg.message.unique_id() != Some(id) {
                return Err(StoreError::Inconsistent(format!("index: id {id} points at offset {offset}, another message")));
            }
            bytes += u64::from(msg.store_size);
            if !found.is_empty() && bytes > READ_BYTES_MAX {
                break;
            }
            found.push(msg);
        }
        Ok(found)
    }

    /// A message the index points at; bad bytes there mean the index is
    /// not to be trusted (a flipped bit in the log is found the same way,
    /// and a rebuilt index no longer points at it).
    fn read_indexed(&self, offset: u64) -> Result<MessageExt> {
        self.commit_log.read(offset).map_err(|e| match e {
            StoreError::Corrupt { offset, reason } => StoreError::Inconsistent(format!("index: offset {offset} holds bad bytes: {reason}")),
            other => other,
        })
    }

    /// Runs a read of the index; when the index proves inconsistent,
    /// rebuilds it from the commit log and runs the read again.
    pub fn with_index_rebuild<T>(&mut self, read: impl Fn(&MessageStore) -> Result<T>) -> Result<T> {
        match read(self) {
            Err(StoreError::Inconsistent(why)) => {
                tracing::warn!(why = %why, "rebuilding the index from the commit log");
                self.rebuild_index()?;
                read(self)
            }
            other => other,
        }
    }

    /// Rebuilds the key and unique id index from a walk of the commit log.
    /// Crash-safe: a rebuild cut short is done again at the next open.
    pub fn rebuild_index(&mut self) -> Result<()> {
        let disk = self.disk.as_ref();
        let mut rebuilt = KeyIndex::begin_rebuild(disk)?;
        self.commit_log.walk(0, |msg| {
            for k in &msg.message.keys {
                rebuilt.add(disk, &index::key_of(&msg.message.topic, k), msg.commit_log_offset)?;
            }
            if let Some(id) = msg.message.unique_id() {
                rebuilt.add(disk, &index::uniq_of(id), msg.commit_log_offset)?;
            }
            Ok(())
        })?;
        rebuilt.finish_rebuild(disk)?;
        self.index = rebuilt;
        marks::reach(Mark::IndexRebuilt);
        Ok(())
    }
}
