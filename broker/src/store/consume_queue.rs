//! Consume queues: per (topic, queue id), fixed 20-byte entries pointing
//! into the commit log, so a consumer reads a queue by position.
//!
//! ```text
//! header (20 bytes): magic u32 | version u32 | base queue offset u64 | 0 u32
//! entry  (20 bytes): commit log offset u64 | size u32 | tag hash u64
//! ```

use super::Disk;
use crate::error::{Error, Result};

/// Bytes per entry, as in RocketMQ.
pub const ENTRY_LEN: usize = 20;
const MAGIC: u32 = 0xC0DE_0C0E;
const VERSION: u32 = 1;

/// One consume queue entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CqEntry {
    /// Where the message starts in the commit log.
    pub commit_log_offset: u64,
    /// Size of its commit log entry.
    pub size: u32,
    /// Hash of its tag (0 when it has none), for broker-side filtering.
    pub tag_hash: u64,
}

impl CqEntry {
    /// A hole: the slot of a message that recovery found corrupt and passed
    /// over. It keeps the queue's offsets dense; `commit_log_offset` is
    /// where the next valid entry starts, so the hole becomes visible with
    /// it. A real entry never has size 0 (every entry has a header).
    pub fn hole(commit_log_offset: u64) -> CqEntry {
        CqEntry { commit_log_offset, size: 0, tag_hash: 0 }
    }

    /// Whether this is a [`CqEntry::hole`].
    pub fn is_hole(&self) -> bool {
        self.size == 0
    }

    fn to_bytes(self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[..8].copy_from_slice(&self.commit_log_offset.to_be_bytes());
        out[8..12].copy_from_slice(&self.size.to_be_bytes());
        out[12..].copy_from_slice(&self.tag_hash.to_be_bytes());
        out
    }

    fn from_bytes(b: &[u8]) -> CqEntry {
        CqEntry {
            commit_log_offset: u64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
            size: u32::from_be_bytes(b[8..12].try_into().expect("4 bytes")),
            tag_hash: u64::from_be_bytes(b[12..20].try_into().expect("8 bytes")),
        }
    }
}

/// A queue file's header, for a queue whose first entry has `base`.
fn header(base: u64) -> [u8; ENTRY_LEN] {
    let mut header = [0u8; ENTRY_LEN];
    header[..4].copy_from_slice(&MAGIC.to_be_bytes());
    header[4..8].copy_from_slice(&VERSION.to_be_bytes());
    header[8..16].copy_from_slice(&base.to_be_bytes());
    header
}

/// A consume queue, kept whole in memory and appended to its file.
#[derive(Debug)]
pub struct ConsumeQueue {
    path: String,
    /// Queue offset of the first entry in the file.
    base: u64,
    entries: Vec<CqEntry>,
    /// Whether the file has its header yet.
    has_header: bool,
}

impl ConsumeQueue {
    /// The file path for a queue.
    pub fn path_of(topic: &str, queue_id: u32) -> String {
        format!("consumequeue/{topic}/{queue_id}")
    }

    /// An empty queue whose file does not exist yet.
    pub fn empty(path: String) -> ConsumeQueue {
        ConsumeQueue { path, base: 0, entries: Vec::new(), has_header: false }
    }

    /// Loads a queue file, keeping only entries that point before
    /// `durable_until` and cutting the file there (later entries are
    /// re-dispatched from the commit log). A torn last entry is dropped.
    pub fn load(disk: &dyn Disk, path: String, durable_until: u64) -> Result<ConsumeQueue> {
        let bytes = super::disk::read_all(disk, &path)?.unwrap_or_default();
        let mut queue = ConsumeQueue::empty(path);
        let header_ok = bytes.len() >= ENTRY_LEN
            && u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes")) == MAGIC
            && u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes")) == VERSION;
        if !header_ok {
            if !bytes.is_empty() {
                disk.truncate(&queue.path, 0)?;
                disk.sync(&queue.path)?;
            }
            return Ok(queue);
        }
        queue.has_header = true;
        queue.base = u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes"));
        for chunk in bytes[ENTRY_LEN..].chunks_exact(ENTRY_LEN) {
            let entry = CqEntry::from_bytes(chunk);
            if entry.commit_log_offset >= durable_until {
                break;
            }
            queue.entries.push(entry);
        }
        let keep = (ENTRY_LEN * (1 + queue.entries.len())) as u64;
        if keep != bytes.len() as u64 {
            // Durably: a power loss must not bring back entries that point
            // into a part of the commit log that recovery is about to rewrite.
            disk.truncate(&queue.path, keep)?;
            disk.sync(&queue.path)?;
        }
        Ok(queue)
    }

    /// Replaces the queue's file with `entries` from queue offset `base`,
    /// durably and in one step (a crash leaves the old file or the new).
    pub fn rewrite(disk: &dyn Disk, path: String, base: u64, entries: Vec<CqEntry>) -> Result<ConsumeQueue> {
        let mut bytes = Vec::with_capacity(ENTRY_LEN * (1 + entries.len()));
        bytes.extend_from_slice(&header(base));
        for entry in &entries {
            bytes.extend_from_slice(&entry.to_bytes());
        }
        disk.write_atomic(&path, &bytes)?;
        Ok(ConsumeQueue { path, base, entries, has_header: true })
    }

    /// Whether the queue holds no entry (a new queue, or one cut back to
    /// its base).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Queue offset of the first entry kept.
    pub fn min_offset(&self) -> u64 {
        self.base
    }

    /// Queue offset the next entry will get.
    pub fn max_offset(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    /// The entry at a queue offset.
    pub fn get(&self, queue_offset: u64) -> Option<CqEntry> {
        let i = queue_offset.checked_sub(self.base)?;
        self.entries.get(usize::try_from(i).ok()?).copied()
    }

    /// Appends the entry for `queue_offset`, which must be the next one
    /// (or any offset when the queue is empty, as after a rebuild that
    /// starts past retention).
    pub fn append(&mut self, disk: &dyn Disk, queue_offset: u64, entry: CqEntry) -> Result<()> {
        if self.entries.is_empty() && (!self.has_header || self.base != queue_offset) {
            if disk.len(&self.path)?.is_some() {
                disk.truncate(&self.path, 0)?;
            }
            disk.append(&self.path, &header(queue_offset))?;
            self.has_header = true;
            self.base = queue_offset;
        }
        if queue_offset != self.max_offset() {
            return Err(Error::Inconsistent(format!(
                "consume queue {}: entry for offset {queue_offset} appended where {} is next",
                self.path,
                self.max_offset()
            )));
        }
        disk.append(&self.path, &entry.to_bytes())?;
        self.entries.push(entry);
        Ok(())
    }

    /// The queue's file.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Makes the file durable.
    pub fn sync(&self, disk: &dyn Disk) -> Result<()> {
        if self.has_header {
            disk.sync(&self.path)?;
        }
        Ok(())
    }

    /// The first queue offset whose entry points at or after `commit_log_offset`.
    pub fn first_at_or_after(&self, commit_log_offset: u64) -> u64 {
        self.base + self.entries.partition_point(|e| e.commit_log_offset < commit_log_offset) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemDisk;

    #[test]
    fn append_load_and_cut() {
        let disk = MemDisk::new();
        let mut q = ConsumeQueue::empty("cq/t/0".into());
        for i in 0..5u64 {
            q.append(&disk, i, CqEntry { commit_log_offset: i * 100, size: 100, tag_hash: i }).unwrap();
        }
        assert_eq!(q.max_offset(), 5);
        let loaded = ConsumeQueue::load(&disk, "cq/t/0".into(), 250).unwrap();
        assert_eq!(loaded.max_offset(), 3);
        assert_eq!(loaded.get(2).unwrap().commit_log_offset, 200);
        assert_eq!(disk.len("cq/t/0").unwrap(), Some(80));
        assert_eq!(loaded.first_at_or_after(150), 2);
    }

    #[test]
    fn torn_entry_is_dropped() {
        let disk = MemDisk::new();
        let mut q = ConsumeQueue::empty("q".into());
        q.append(&disk, 7, CqEntry { commit_log_offset: 1, size: 1, tag_hash: 0 }).unwrap();
        disk.append("q", &[1, 2, 3]).unwrap();
        let loaded = ConsumeQueue::load(&disk, "q".into(), u64::MAX).unwrap();
        assert_eq!((loaded.min_offset(), loaded.max_offset()), (7, 8));
    }
}
