//! Consume queues: per (topic, queue id), fixed 20-byte entries pointing
//! into the commit log, so a consumer reads a queue by position.
//!
//! ```text
//! header (20 bytes): magic u32 | version u32 | base queue offset u64 | 0 u32
//! entry  (20 bytes): commit log offset u64 | size u32 | tag hash u64
//! ```
//!
//! The entries stay in the file; a queue in memory is a few numbers. Reads
//! go through the store's [`PageCache`], which holds at most
//! [`CACHE_PAGES`] full pages of [`PAGE_ENTRIES`] entries, so a broker's
//! memory does not grow with the messages it stores (RocketMQ maps its
//! consume queue files in fixed-size pieces for the same end).

use super::Disk;
use super::error::{Result, StoreError};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Bytes per entry, as in RocketMQ.
pub const ENTRY_LEN: usize = 20;
const MAGIC: u32 = 0xC0DE_0C0E;
const VERSION: u32 = 1;
/// Entries per cached page (20 KiB of file).
pub const PAGE_ENTRIES: u64 = 1024;
/// Pages the cache holds at most: 512 pages of 1,024 entries of 24 bytes
/// in memory, 12 MiB.
pub const CACHE_PAGES: usize = 512;

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

/// Full pages of consume queue entries, shared by a store's queues, at
/// most `capacity` of them; the oldest page read goes first. A page is
/// cached only once full, and a queue's full pages never change (a queue
/// rewritten whole gets a new id), so nothing is ever stale.
#[derive(Debug)]
pub struct PageCache {
    pages: BTreeMap<(u64, u64), Arc<[CqEntry]>>,
    order: VecDeque<(u64, u64)>,
    capacity: usize,
    next_queue: u64,
}

impl PageCache {
    /// A cache of at most `capacity` pages.
    pub fn new(capacity: usize) -> PageCache {
        PageCache { pages: BTreeMap::new(), order: VecDeque::new(), capacity: capacity.max(1), next_queue: 0 }
    }

    /// A fresh id for a queue's pages.
    pub fn queue_id(&mut self) -> u64 {
        self.next_queue += 1;
        self.next_queue
    }

    /// Pages held now.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether no page is held.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    fn get(&self, key: (u64, u64)) -> Option<Arc<[CqEntry]>> {
        self.pages.get(&key).cloned()
    }

    fn insert(&mut self, key: (u64, u64), page: Arc<[CqEntry]>) {
        while self.pages.len() >= self.capacity {
            let Some(old) = self.order.pop_front() else { break };
            self.pages.remove(&old);
        }
        if self.pages.insert(key, page).is_none() {
            self.order.push_back(key);
        }
    }
}

/// A consume queue: where its file is and which queue offsets it holds.
#[derive(Debug)]
pub struct ConsumeQueue {
    path: String,
    /// Names this queue's pages in the cache.
    id: u64,
    /// Queue offset of the first entry in the file.
    base: u64,
    /// Entries in the file.
    len: u64,
    /// The first offset whose message the commit log still holds, as the
    /// store last worked it out (see [`ConsumeQueue::set_min`]).
    min: u64,
    /// Whether the file has its header yet.
    has_header: bool,
}

impl ConsumeQueue {
    /// The file path for a queue.
    pub fn path_of(topic: &str, queue_id: u32) -> String {
        format!("consumequeue/{topic}/{queue_id}")
    }

    /// An empty queue whose file does not exist yet.
    pub fn empty(path: String, id: u64) -> ConsumeQueue {
        ConsumeQueue { path, id, base: 0, len: 0, min: 0, has_header: false }
    }

    /// Opens a queue file, keeping only entries that point before
    /// `durable_until` and cutting the file there (later entries are
    /// re-dispatched from the commit log). A torn last entry is dropped.
    /// Entries point into the log in queue order, so the cut is found by
    /// bisection and the file is not read whole.
    pub fn load(disk: &dyn Disk, path: String, id: u64, durable_until: u64) -> Result<ConsumeQueue> {
        let mut queue = ConsumeQueue::empty(path, id);
        let Some(file_len) = disk.len(&queue.path)? else { return Ok(queue) };
        let head = disk.read(&queue.path, 0, ENTRY_LEN)?;
        let header_ok = head.len() == ENTRY_LEN
            && u32::from_be_bytes(head[..4].try_into().expect("4 bytes")) == MAGIC
            && u32::from_be_bytes(head[4..8].try_into().expect("4 bytes")) == VERSION;
        if !header_ok {
            if file_len > 0 {
                disk.truncate(&queue.path, 0)?;
                disk.sync(&queue.path)?;
            }
            return Ok(queue);
        }
        queue.has_header = true;
        queue.base = u64::from_be_bytes(head[8..16].try_into().expect("8 bytes"));
        queue.min = queue.base;
        queue.len = file_len / ENTRY_LEN as u64 - 1;
        // The first entry pointing at or past `durable_until`.
        let (mut lo, mut hi) = (0, queue.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if queue.read_at(disk, mid, 1)?[0].commit_log_offset < durable_until {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        queue.len = lo;
        let keep = ENTRY_LEN as u64 * (1 + queue.len);
        if keep != file_len {
            // Durably: a power loss must not bring back entries that point
            // into a part of the commit log that recovery is about to rewrite.
            disk.truncate(&queue.path, keep)?;
            disk.sync(&queue.path)?;
        }
        Ok(queue)
    }

    /// Replaces the queue's file with `entries` from queue offset `base`,
    /// durably and in one step (a crash leaves the old file or the new).
    /// `id` must be fresh: the old queue's cached pages are not this one's.
    pub fn rewrite(disk: &dyn Disk, path: String, id: u64, base: u64, entries: &[CqEntry]) -> Result<ConsumeQueue> {
        let mut bytes = Vec::with_capacity(ENTRY_LEN * (1 + entries.len()));
        bytes.extend_from_slice(&header(base));
        for entry in entries {
            bytes.extend_from_slice(&entry.to_bytes());
        }
        disk.write_atomic(&path, &bytes)?;
        Ok(ConsumeQueue { path, id, base, len: entries.len() as u64, min: base, has_header: true })
    }

    /// Whether the queue holds no entry (a new queue, or one cut back to
    /// its base).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queue offset of the first entry kept.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The first queue offset still readable, as last set.
    pub fn min_offset(&self) -> u64 {
        self.min
    }

    /// Queue offset the next entry will get.
    pub fn max_offset(&self) -> u64 {
        self.base + self.len
    }

    /// Works out the first offset whose message starts at or after
    /// `log_min`, the commit log's first offset (retention moves it).
    pub fn set_min(&mut self, disk: &dyn Disk, cache: &mut PageCache, log_min: u64) -> Result<()> {
        self.min = self.first_at_or_after(disk, cache, log_min)?;
        Ok(())
    }

    /// `len` entries from file position `from` (0 is the first entry),
    /// straight from the file.
    fn read_at(&self, disk: &dyn Disk, from: u64, len: u64) -> Result<Vec<CqEntry>> {
        let bytes = disk.read(&self.path, ENTRY_LEN as u64 * (1 + from), ENTRY_LEN * len as usize)?;
        if bytes.len() != ENTRY_LEN * len as usize {
            return Err(StoreError::Inconsistent(format!(
                "consume queue {}: entries {from}..{} are past the file's end",
                self.path,
                from + len
            )));
        }
        Ok(bytes.chunks_exact(ENTRY_LEN).map(CqEntry::from_bytes).collect())
    }

    /// Up to `max` entries from queue offset `from`, fewer at the end.
    pub fn read(&self, disk: &dyn Disk, cache: &mut PageCache, from: u64, max: u64) -> Result<Vec<CqEntry>> {
        let Some(start) = from.checked_sub(self.base) else { return Ok(Vec::new()) };
        let end = start.saturating_add(max).min(self.len);
        let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
        let mut pos = start;
        while pos < end {
            let page = pos / PAGE_ENTRIES;
            let page_start = page * PAGE_ENTRIES;
            let page_end = page_start + PAGE_ENTRIES;
            let upto = end.min(page_end);
            if page_end > self.len {
                // The last page is still filling: read what is asked.
                out.extend(self.read_at(disk, pos, upto - pos)?);
            } else {
                let entries = match cache.get((self.id, page)) {
                    Some(entries) => entries,
                    None => {
                        let entries: Arc<[CqEntry]> = self.read_at(disk, page_start, PAGE_ENTRIES)?.into();
                        cache.insert((self.id, page), entries.clone());
                        entries
                    }
                };
                out.extend_from_slice(&entries[(pos - page_start) as usize..(upto - page_start) as usize]);
            }
            pos = upto;
        }
        Ok(out)
    }

    /// The entry at a queue offset.
    pub fn get(&self, disk: &dyn Disk, cache: &mut PageCache, queue_offset: u64) -> Result<Option<CqEntry>> {
        Ok(self.read(disk, cache, queue_offset, 1)?.pop())
    }

    /// Appends the entry for `queue_offset`, which must be the next one
    /// (or any offset when the queue is empty, as after a rebuild that
    /// starts past retention).
    pub fn append(&mut self, disk: &dyn Disk, queue_offset: u64, entry: CqEntry) -> Result<()> {
        if self.len == 0 && (!self.has_header || self.base != queue_offset) {
            if disk.len(&self.path)?.is_some() {
                disk.truncate(&self.path, 0)?;
            }
            disk.append(&self.path, &header(queue_offset))?;
            self.has_header = true;
            self.base = queue_offset;
            self.min = queue_offset;
        }
        if queue_offset != self.max_offset() {
            return Err(StoreError::Inconsistent(format!(
                "consume queue {}: entry for offset {queue_offset} appended where {} is next",
                self.path,
                self.max_offset()
            )));
        }
        disk.append(&self.path, &entry.to_bytes())?;
        self.len += 1;
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
    pub fn first_at_or_after(&self, disk: &dyn Disk, cache: &mut PageCache, commit_log_offset: u64) -> Result<u64> {
        let (mut lo, mut hi) = (self.base, self.max_offset());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let below = self.get(disk, cache, mid)?.is_some_and(|e| e.commit_log_offset < commit_log_offset);
            if below {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemDisk;

    fn entry(i: u64) -> CqEntry {
        CqEntry { commit_log_offset: i * 100, size: 100, tag_hash: i }
    }

    #[test]
    fn append_load_and_cut() {
        let disk = MemDisk::new();
        let mut cache = PageCache::new(4);
        let mut q = ConsumeQueue::empty("cq/t/0".into(), cache.queue_id());
        for i in 0..5u64 {
            q.append(&disk, i, entry(i)).unwrap();
        }
        assert_eq!(q.max_offset(), 5);
        let loaded = ConsumeQueue::load(&disk, "cq/t/0".into(), cache.queue_id(), 250).unwrap();
        assert_eq!(loaded.max_offset(), 3);
        assert_eq!(loaded.get(&disk, &mut cache, 2).unwrap().unwrap().commit_log_offset, 200);
        assert_eq!(disk.len("cq/t/0").unwrap(), Some(80));
        assert_eq!(loaded.first_at_or_after(&disk, &mut cache, 150).unwrap(), 2);
    }

    #[test]
    fn torn_entry_is_dropped() {
        let disk = MemDisk::new();
        let mut cache = PageCache::new(4);
        let mut q = ConsumeQueue::empty("q".into(), cache.queue_id());
        q.append(&disk, 7, CqEntry { commit_log_offset: 1, size: 1, tag_hash: 0 }).unwrap();
        disk.append("q", &[1, 2, 3]).unwrap();
        let loaded = ConsumeQueue::load(&disk, "q".into(), cache.queue_id(), u64::MAX).unwrap();
        assert_eq!((loaded.base(), loaded.max_offset()), (7, 8));
    }

    /// Reads across full pages (cached) and the filling last page (read
    /// from the file) answer what was appended, and the cache never holds
    /// more pages than it may.
    #[test]
    fn reads_span_cached_pages_and_the_filling_one_within_the_bound() {
        let disk = MemDisk::new();
        let mut cache = PageCache::new(2);
        let mut q = ConsumeQueue::empty("q".into(), cache.queue_id());
        let n = 3 * PAGE_ENTRIES + 17;
        for i in 0..n {
            q.append(&disk, 10 + i, entry(i)).unwrap();
        }
        for from in [10, 10 + PAGE_ENTRIES - 3, 10 + 2 * PAGE_ENTRIES + 5, 10 + n - 4] {
            let got = q.read(&disk, &mut cache, from, 40).unwrap();
            let want: Vec<CqEntry> = (from - 10..(from - 10 + 40).min(n)).map(entry).collect();
            assert_eq!(got, want, "from {from}");
            assert!(cache.len() <= 2);
        }
        assert!(q.read(&disk, &mut cache, 5, 3).unwrap().is_empty(), "below the base");
        assert!(q.read(&disk, &mut cache, 10 + n, 3).unwrap().is_empty(), "at the end");
        // Appends after a page was cached do not change it.
        q.append(&disk, 10 + n, entry(n)).unwrap();
        assert_eq!(q.get(&disk, &mut cache, 10 + n).unwrap(), Some(entry(n)));
        assert_eq!(q.get(&disk, &mut cache, 10).unwrap(), Some(entry(0)));
    }

    /// A file shorter than the queue believes is an inconsistency the store
    /// answers by rebuilding the queue, not a panic.
    #[test]
    fn a_file_cut_under_the_queue_is_inconsistent() {
        let disk = MemDisk::new();
        let mut cache = PageCache::new(2);
        let mut q = ConsumeQueue::empty("q".into(), cache.queue_id());
        for i in 0..4 {
            q.append(&disk, i, entry(i)).unwrap();
        }
        disk.truncate("q", 2 * ENTRY_LEN as u64).unwrap();
        assert!(matches!(q.read(&disk, &mut cache, 0, 4), Err(StoreError::Inconsistent(_))));
    }
}
