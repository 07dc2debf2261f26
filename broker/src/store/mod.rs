//! The message store: a synchronous core with no clock and no async.
//!
//! # Layout
//! - [`disk`]: the [`Disk`] trait every byte goes through, and [`FsDisk`].
//! - [`mem_disk`]: [`MemDisk`], in memory with crash and power-loss semantics.
//! - [`entry`]: the commit log entry format (header, CRC, encoded message).
//! - [`commit_log`]: segmented append-only log of every message.
//! - [`consume_queue`]: per (topic, queue) fixed 20-byte entries into the log.
//! - [`index`]: business key and unique id to commit log offsets.
//! - here: [`MessageStore`], tying them together, with the checkpoint and
//!   crash recovery.
//!
//! Durability: the commit log is the truth. Consume queues and the index are
//! derived from it; a checkpoint records a commit log offset below which they
//! are known durable. Recovery keeps them up to the checkpoint, checks every
//! commit log entry after it by CRC, cuts the log at the first torn or
//! corrupt one, and re-dispatches the rest.

pub mod commit_log;
pub mod consume_queue;
pub mod disk;
mod checkpoint;
pub mod entry;
pub mod error;
pub mod index;
pub mod mem_disk;
mod query;

pub use commit_log::FlushPlan;

/// Most bytes of messages one read hands out (a pull, a query), unless a
/// single message is larger: with one entry at most 5 MiB, every answer
/// fits a frame (8 MiB). RocketMQ caps a pull by bytes the same way.
pub const READ_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// The most `body_bytes_max` may be: a commit log entry holds at most
/// [`entry::ENTRY_LEN_MAX`] bytes, properties and the rest included.
pub const BODY_BYTES_LIMIT: usize = 4 * 1024 * 1024;
pub use disk::{Disk, FsDisk};
pub use error::StoreError;
pub use mem_disk::MemDisk;

use self::checkpoint::{begin_truncation, checkpoint_record, finish_truncation, read_checkpoint};
use self::error::Result;
use crate::marks::{self, Mark};
use crate::model::{tag_hash, MessageExt, BORN_HOST_BYTES_MAX};
use commit_log::CommitLog;
use consume_queue::{ConsumeQueue, CqEntry, PageCache};
use index::KeyIndex;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

const CHECKPOINT_PATH: &str = "checkpoint";
/// A truncation begun and not yet finished: the offset to cut back to.
const TRUNCATE_PATH: &str = "truncate";
const CHECKPOINT_MAGIC: u32 = 0xC4EC_4901;

/// Store settings; see `rocketmq-semantics.md` for where the defaults come from.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Commit log segment size in bytes (RocketMQ: 1 GiB; smaller here).
    pub segment_bytes: u64,
    /// How long messages are kept, in ms (72 h).
    pub retention_ms: u64,
    /// Largest body accepted, in bytes (4 MiB, which is also the most it
    /// may be set to: see [`BODY_BYTES_LIMIT`]).
    pub body_bytes_max: usize,
    /// Most entries a filtered read scans before giving up for this call.
    pub scan_entries_max: usize,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            segment_bytes: 64 * 1024 * 1024,
            retention_ms: 72 * 3600 * 1000,
            body_bytes_max: 4 * 1024 * 1024,
            scan_entries_max: 2000,
        }
    }
}

/// What recovery did when the store opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Offset the checkpoint vouched for (0 when there was none or it was bad).
    pub checkpoint: u64,
    /// Commit log end after recovery.
    pub end_offset: u64,
    /// Entries re-dispatched into consume queues and the index.
    pub redispatched: u64,
    /// Torn or corrupt bytes cut off the commit log's end.
    pub truncated_bytes: u64,
}

/// Where a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutResult {
    /// Its commit log offset.
    pub commit_log_offset: u64,
    /// Its position in the consume queue.
    pub queue_offset: u64,
    /// Commit log end after it: it is durable once the flushed offset reaches this.
    pub end_offset: u64,
}

/// Outcome of reading a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GetStatus {
    /// Messages were found.
    Found,
    /// Entries were scanned but none matched the filter; move on to `next_offset`.
    NoMatched,
    /// Nothing past the offset yet.
    NoNew,
    /// The offset is below the queue's minimum (retention deleted it).
    OffsetTooSmall,
    /// The offset is past the queue's end.
    OffsetOverflow,
}

/// What a replicated append did: the log's new end, and the (topic, queue)
/// pairs that got messages.
pub type Replicated = (u64, Vec<(String, u32)>);

/// Messages read from a queue and where to continue.
#[derive(Clone, Debug)]
pub struct GetResult {
    /// What happened.
    pub status: GetStatus,
    /// The messages, in queue order.
    pub messages: Vec<MessageExt>,
    /// Offset to read from next time.
    pub next_offset: u64,
    /// The queue's smallest readable offset.
    pub min_offset: u64,
    /// The queue's next offset to be written.
    pub max_offset: u64,
}

/// The broker's store: commit log, consume queues, index.
pub struct MessageStore {
    disk: Arc<dyn Disk>,
    config: StoreConfig,
    commit_log: CommitLog,
    queues: BTreeMap<(String, u32), ConsumeQueue>,
    /// Queues appended to since the last checkpoint.
    dirty: BTreeSet<(String, u32)>,
    /// Full pages of consume queue entries recently read.
    cache: Mutex<PageCache>,
    index: KeyIndex,
    /// Set after a failed write; the store refuses writes until reopened,
    /// since the log's tail may be half written.
    broken: Option<String>,
    /// A slave's store: its log is a copy of its master's, appended only by
    /// replication; a put of its own would part the two logs.
    follower: bool,
}

impl MessageStore {
    /// Opens the store on `disk`, recovering from whatever state a crash left.
    pub fn open(disk: Arc<dyn Disk>, config: StoreConfig) -> Result<(MessageStore, RecoveryReport)> {
        finish_truncation(&disk, config.segment_bytes)?;
        let mut commit_log = CommitLog::open(disk.clone(), config.segment_bytes)?;
        let mut checkpoint = read_checkpoint(disk.as_ref())?.unwrap_or(0);
        if checkpoint > commit_log.write_offset() {
            checkpoint = 0;
        }
        let mut store = MessageStore {
            disk: disk.clone(),
            config,
            commit_log: CommitLog::open(disk.clone(), 1)?,
            queues: BTreeMap::new(),
            dirty: BTreeSet::new(),
            cache: Mutex::new(PageCache::new(consume_queue::CACHE_PAGES)),
            index: KeyIndex::default(),
            broken: None,
            follower: false,
        };
        let mut rebuild_index = store.load_derived(checkpoint)?;
        let stats = match commit_log.recover(checkpoint, |msg| store.dispatch(msg))? {
            Some(stats) => stats,
            None => {
                checkpoint = 0;
                rebuild_index = store.load_derived(0)?;
                commit_log.recover(0, |msg| store.dispatch(msg))?.expect("offset 0 is inside any log")
            }
        };
        store.commit_log = commit_log;
        store.commit_log.flush()?;
        if rebuild_index {
            store.rebuild_index()?;
        }
        store.set_queue_mins()?;
        store.checkpoint()?;
        let report = RecoveryReport {
            checkpoint,
            end_offset: store.commit_log.write_offset(),
            redispatched: stats.entries,
            truncated_bytes: stats.truncated_bytes,
        };
        Ok((store, report))
    }

    /// Loads consume queues and the index, trusting them below
    /// `durable_until`; true when the index is to be rebuilt from the log.
    fn load_derived(&mut self, durable_until: u64) -> Result<bool> {
        self.queues.clear();
        for topic in self.disk.list("consumequeue")? {
            for queue in self.disk.list(&format!("consumequeue/{topic}"))? {
                let Ok(queue_id) = queue.parse::<u32>() else { continue };
                let path = ConsumeQueue::path_of(&topic, queue_id);
                let id = self.cache().queue_id();
                let cq = ConsumeQueue::load(self.disk.as_ref(), path, id, durable_until)?;
                self.queues.insert((topic.clone(), queue_id), cq);
            }
        }
        let (index, rebuild) = KeyIndex::load(self.disk.as_ref(), durable_until)?;
        self.index = index;
        Ok(rebuild)
    }

    fn cache(&self) -> MutexGuard<'_, PageCache> {
        self.cache.lock().expect("consume queue cache")
    }

    /// Works out each queue's first readable offset from the commit log's
    /// first offset (at open, and after retention moved it).
    fn set_queue_mins(&mut self) -> Result<()> {
        let log_min = self.commit_log.min_offset();
        let cache = self.cache.get_mut().expect("consume queue cache");
        for cq in self.queues.values_mut() {
            cq.set_min(self.disk.as_ref(), cache, log_min)?;
        }
        Ok(())
    }

    /// Adds a stored message to its consume queue and the index.
    fn dispatch(&mut self, msg: &MessageExt) -> Result<()> {
        let topic = &msg.message.topic;
        let key = (topic.clone(), msg.queue_id);
        let cache = self.cache.get_mut().expect("consume queue cache");
        let cq = self
            .queues
            .entry(key.clone())
            .or_insert_with(|| ConsumeQueue::empty(ConsumeQueue::path_of(topic, msg.queue_id), cache.queue_id()));
        let entry = CqEntry {
            commit_log_offset: msg.commit_log_offset,
            size: msg.store_size,
            tag_hash: msg.message.tags.as_deref().map(tag_hash).unwrap_or(0),
        };
        // Recovery passed over a corrupt entry of this queue: its slot stays
        // as a hole, so later messages keep their offsets.
        while !cq.is_empty() && cq.max_offset() < msg.queue_offset {
            cq.append(self.disk.as_ref(), cq.max_offset(), CqEntry::hole(msg.commit_log_offset))?;
        }
        cq.append(self.disk.as_ref(), msg.queue_offset, entry)?;
        self.dirty.insert(key);
        for k in &msg.message.keys {
            self.index.add(self.disk.as_ref(), &index::key_of(topic, k), msg.commit_log_offset)?;
        }
        if let Some(id) = msg.message.unique_id() {
            self.index.add(self.disk.as_ref(), &index::uniq_of(id), msg.commit_log_offset)?;
        }
        Ok(())
    }

    /// Stores a batch of messages one after another. Every one is checked
    /// before the first is written, so an illegal one leaves the store as
    /// it was; a write that fails part way leaves the batch's first
    /// messages, as a crash part way through one append would.
    pub fn put_all(&mut self, msgs: Vec<MessageExt>, now_ms: u64) -> Result<Vec<PutResult>> {
        for msg in &msgs {
            msg.message.check_limits(self.config.body_bytes_max).map_err(StoreError::Illegal)?;
            if msg.born_host.len() > BORN_HOST_BYTES_MAX {
                return Err(StoreError::Illegal(format!("born host is {} bytes, more than the {BORN_HOST_BYTES_MAX} allowed", msg.born_host.len())));
            }
        }
        msgs.into_iter().map(|msg| self.put(msg, now_ms)).collect()
    }

    /// Stores a message in `msg.message.topic` / `msg.queue_id`. The store
    /// assigns the queue offset, commit log offset and store time.
    pub fn put(&mut self, mut msg: MessageExt, now_ms: u64) -> Result<PutResult> {
        if let Some(why) = &self.broken {
            return Err(StoreError::NotWritable(why.to_string()));
        }
        if self.follower {
            return Err(StoreError::NotMaster);
        }
        // Everything a client sent is checked before a byte is written: a
        // refused message leaves the store as it was and writable.
        let illegal = StoreError::Illegal;
        msg.message.check_limits(self.config.body_bytes_max).map_err(illegal)?;
        if msg.born_host.len() > BORN_HOST_BYTES_MAX {
            return Err(illegal(format!("born host is {} bytes, more than the {BORN_HOST_BYTES_MAX} allowed", msg.born_host.len())));
        }
        let queue_offset = self
            .queues
            .get(&(msg.message.topic.clone(), msg.queue_id))
            .map(ConsumeQueue::max_offset)
            .unwrap_or(0);
        msg.queue_offset = queue_offset;
        msg.store_timestamp_ms = now_ms;
        let bytes = entry::encode(&msg).map_err(illegal)?;
        let written = self.commit_log.append(&bytes).and_then(|(offset, size)| {
            msg.commit_log_offset = offset;
            msg.store_size = size;
            self.dispatch(&msg)
        });
        if let Err(e) = written {
            self.broken = Some(e.to_string());
            return Err(e);
        }
        Ok(PutResult {
            commit_log_offset: msg.commit_log_offset,
            queue_offset,
            end_offset: self.commit_log.write_offset(),
        })
    }

    /// About `max` bytes of the commit log from `from` (an entry's start,
    /// as a replica's end is), whole entries, for a replica to append with
    /// [`Self::append_replicated`]; empty when `from` is the end.
    pub fn replica_chunk(&self, from: u64, max: usize) -> Result<Vec<u8>> {
        self.commit_log.read_raw(from, max)
    }

    /// Appends what a master's commit log holds from `offset`, which must be
    /// this store's end, keeping the master's offsets: each valid entry is
    /// dispatched to its consume queue and the index as a local put would
    /// be; a corrupt run the master passed over is kept as it is and passed
    /// over here too. Returns the new end and the queues that got messages.
    /// Nothing is written when the chunk is not at the end or does not parse.
    pub fn append_replicated(&mut self, offset: u64, bytes: &[u8]) -> Result<Replicated> {
        if let Some(why) = &self.broken {
            return Err(StoreError::NotWritable(why.to_string()));
        }
        let end = self.commit_log.write_offset();
        if offset != end {
            return Err(StoreError::Inconsistent(format!("a replica chunk at {offset} does not continue this log, which ends at {end}")));
        }
        // Split into entries and corrupt runs first, so a bad chunk writes nothing.
        let mut pieces: Vec<(usize, usize, Option<MessageExt>)> = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let header = entry::parse_header(&bytes[pos..]);
            if let Ok(h) = header {
                if pos + h.total_len > bytes.len() && pos > 0 {
                    // A master sends whole entries, or a corrupt run alone.
                    return Err(StoreError::Inconsistent(format!("a replica chunk at {offset} ends inside an entry")));
                }
            }
            let parsed = header.ok().filter(|h| pos + h.total_len <= bytes.len()).and_then(|h| {
                entry::decode(h, &bytes[pos + entry::HEADER_LEN..pos + h.total_len], offset + pos as u64).ok().map(|m| (m, h.total_len))
            });
            match parsed {
                Some((msg, len)) => {
                    pieces.push((pos, pos + len, Some(msg)));
                    pos += len;
                }
                None => {
                    let next = commit_log::next_valid_entry(bytes, pos + 1, offset).unwrap_or(bytes.len());
                    pieces.push((pos, next, None));
                    pos = next;
                }
            }
        }
        let mut touched: BTreeSet<(String, u32)> = BTreeSet::new();
        for (from, to, msg) in pieces {
            if let Some(m) = &msg {
                touched.insert((m.message.topic.clone(), m.queue_id));
            }
            let written = self.commit_log.append_raw(&bytes[from..to]).and_then(|at| match &msg {
                Some(m) if at == m.commit_log_offset => self.dispatch(m),
                Some(m) => Err(StoreError::Inconsistent(format!("entry of offset {} landed at {at}", m.commit_log_offset))),
                None => {
                    tracing::warn!(offset = at, bytes = to - from, "a corrupt run copied from the master is passed over");
                    Ok(())
                }
            });
            if let Err(e) = written {
                self.broken = Some(e.to_string());
                return Err(e);
            }
        }
        Ok((self.commit_log.write_offset(), touched.into_iter().collect()))
    }

    /// Cuts the store back so that `offset` (an entry's start, at or below
    /// the end) becomes the end of its commit log, as a replica must before
    /// it follows a new master whose log parted from its own there: the
    /// entries after it leave the commit log, their consume queues and the
    /// index (a queue's later offsets are given out again). Crash-safe: the
    /// cut is recorded durably first, and a store opened after a crash
    /// during it finishes it, and so does a store that fails to reopen
    /// here (it is left broken, and reopening is the way back). The store
    /// is reopened on the cut log.
    pub fn truncate_to(&mut self, offset: u64) -> Result<RecoveryReport> {
        let end = self.commit_log.write_offset();
        if offset > end {
            return Err(StoreError::Inconsistent(format!("cannot cut the log back to {offset}: it ends at {end}")));
        }
        if offset < self.commit_log.min_offset() {
            return Err(StoreError::Inconsistent(format!("cannot cut the log back to {offset}: it starts at {}", self.commit_log.min_offset())));
        }
        if offset < end && self.commit_log.read(offset).is_err() {
            return Err(StoreError::Inconsistent(format!("cannot cut the log back to {offset}: no entry starts there")));
        }
        begin_truncation(self.disk.as_ref(), offset)?;
        match MessageStore::open(self.disk.clone(), self.config.clone()) {
            Ok((reopened, report)) => {
                let follower = self.follower;
                *self = reopened;
                self.follower = follower;
                Ok(report)
            }
            Err(e) => {
                self.broken = Some(format!("a cut back to {offset} is unfinished: {e}"));
                Err(e)
            }
        }
    }

    /// Makes this a slave's store (`true`: only replicated appends) or a
    /// master's.
    pub fn set_follower(&mut self, follower: bool) {
        self.follower = follower;
    }

    /// Why the store refuses writes, after a write or fsync failed: the
    /// log's tail may be half written and, after a failed fsync, the page
    /// cache is not to be trusted. Reopening the store (recovery from what
    /// the disk holds, as at a restart) is the way back.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Makes every stored message durable (fsync); returns the flushed offset.
    pub fn flush(&mut self) -> Result<u64> {
        let plan = self.flush_plan();
        let synced = plan.sync(self.disk.as_ref());
        self.flush_done(&plan, synced)
    }

    /// What a flush must sync now. The caller runs [`FlushPlan::sync`]
    /// without holding the store, then reports with [`Self::flush_done`].
    pub fn flush_plan(&self) -> FlushPlan {
        self.commit_log.flush_plan()
    }

    /// Records the outcome of a plan's fsync; returns the flushed offset. A
    /// failed fsync breaks the store: what it should have made durable may
    /// not be, so no later write is acknowledged.
    pub fn flush_done(&mut self, plan: &FlushPlan, synced: std::io::Result<()>) -> Result<u64> {
        match synced {
            Ok(()) => Ok(self.commit_log.flush_done(plan)),
            Err(e) => {
                self.broken = Some(e.to_string());
                Err(e.into())
            }
        }
    }

    /// Commit log offset below which everything is durable.
    pub fn flushed_offset(&self) -> u64 {
        self.commit_log.flushed_offset()
    }

    /// Commit log end.
    pub fn write_offset(&self) -> u64 {
        self.commit_log.write_offset()
    }

    /// Syncs consume queues and the index, then records the flushed offset
    /// as the new checkpoint.
    pub fn checkpoint(&mut self) -> Result<()> {
        // A broken store vouches for nothing: an attempt to reopen it may
        // already have cut its consume queue files back to the last
        // checkpoint, and a newer checkpoint would hide the cut entries
        // from the recovery that is to dispatch them again.
        if let Some(why) = &self.broken {
            return Err(StoreError::NotWritable(format!("no checkpoint of a broken store: {why}")));
        }
        let flushed = self.commit_log.flushed_offset();
        // A queue stays dirty until its sync succeeds: after a failed fsync
        // the next checkpoint must not vouch for entries never made durable.
        while let Some(key) = self.dirty.first().cloned() {
            if let Some(cq) = self.queues.get(&key) {
                cq.sync(self.disk.as_ref())?;
            }
            self.dirty.remove(&key);
        }
        self.index.sync(self.disk.as_ref())?;
        self.disk.write_atomic(CHECKPOINT_PATH, &checkpoint_record(flushed))?;
        Ok(())
    }

    /// The readable range of a queue: (min, max) where max is the next offset.
    pub fn queue_offsets(&self, topic: &str, queue_id: u32) -> (u64, u64) {
        match self.queues.get(&(topic.to_string(), queue_id)) {
            None => (0, 0),
            Some(cq) => (cq.min_offset(), cq.max_offset()),
        }
    }

    /// Every (topic, queue id) with at least one message, sorted.
    pub fn queues(&self) -> Vec<(String, u32)> {
        self.queues.keys().cloned().collect()
    }

    /// Reads up to `max_msgs` messages from a queue starting at `offset`,
    /// keeping those whose tag hash `filter` accepts. Entries that end past
    /// `visible_end` (a commit log offset: the flushed offset under
    /// SYNC_FLUSH) are not returned yet, so a consumer never reads what a
    /// power loss could take back. A message whose stored bytes fail their
    /// CRC is passed over (a flipped bit: no copy can bring it back). A
    /// consume queue entry that does not point at its message is an
    /// [`StoreError::Inconsistent`] for this read only; [`Self::get_or_rebuild`]
    /// rebuilds the queue then.
    pub fn get(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max_msgs: usize,
        visible_end: u64,
        filter: &dyn Fn(u64) -> bool,
    ) -> Result<GetResult> {
        self.read_queue(topic, queue_id, offset, max_msgs, visible_end, filter, true)
    }

    /// [`Self::get`] that does not take the queue's word for anything: an
    /// entry that does not lead to its message, or to a message that fails
    /// its CRC, makes the store rebuild the queue from the commit log before
    /// it reads again (a consume queue entry has no checksum of its own, so
    /// a bad pointer and a corrupt message look alike until the log is
    /// scanned). After the rebuild a corrupt message is a hole, passed over.
    #[allow(clippy::too_many_arguments)]
    pub fn get_or_rebuild(
        &mut self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max_msgs: usize,
        visible_end: u64,
        filter: &dyn Fn(u64) -> bool,
    ) -> Result<GetResult> {
        match self.read_queue(topic, queue_id, offset, max_msgs, visible_end, filter, false) {
            Err(StoreError::Inconsistent(why)) => {
                tracing::warn!(topic, queue_id, why = %why, "rebuilding a consume queue from the commit log");
                self.rebuild_queue(topic, queue_id)?;
                self.read_queue(topic, queue_id, offset, max_msgs, visible_end, filter, true)
            }
            other => other,
        }
    }

    /// Rebuilds one consume queue from the commit log: its file is
    /// rewritten with an entry for every valid message of the queue found
    /// in the log, a hole for every slot whose message is gone (corrupt),
    /// and holes up to the old end, so no queue offset is ever given out
    /// twice.
    pub fn rebuild_queue(&mut self, topic: &str, queue_id: u32) -> Result<()> {
        let key = (topic.to_string(), queue_id);
        let old_max = self.queues.get(&key).map_or(0, ConsumeQueue::max_offset);
        let log_min = self.commit_log.min_offset();
        // Built in memory and written in one durable step: the checkpoint
        // already vouches for the old file's entries, so a power loss in
        // the middle of a rewrite in place would leave holes where
        // messages are (a send-back stored just before a flipped bit and a
        // power loss was lost that way).
        let mut base: Option<u64> = None;
        let mut entries: Vec<CqEntry> = Vec::new();
        self.commit_log.walk(0, |msg| {
            if msg.message.topic != topic || msg.queue_id != queue_id {
                return Ok(());
            }
            let next = *base.get_or_insert(msg.queue_offset) + entries.len() as u64;
            if msg.queue_offset < next {
                // The log holds the offset twice; the first copy stands.
                return Ok(());
            }
            entries.extend((next..msg.queue_offset).map(|_| CqEntry::hole(msg.commit_log_offset)));
            let tag_hash = msg.message.tags.as_deref().map(tag_hash).unwrap_or(0);
            entries.push(CqEntry { commit_log_offset: msg.commit_log_offset, size: msg.store_size, tag_hash });
            Ok(())
        })?;
        let base = base.unwrap_or(0);
        let end = self.commit_log.write_offset();
        let rebuilt_max = base + entries.len() as u64;
        entries.extend((rebuilt_max..old_max).map(|_| CqEntry::hole(end)));
        let cache = self.cache.get_mut().expect("consume queue cache");
        let path = ConsumeQueue::path_of(topic, queue_id);
        let mut rebuilt = ConsumeQueue::rewrite(self.disk.as_ref(), path, cache.queue_id(), base, &entries)?;
        rebuilt.set_min(self.disk.as_ref(), cache, log_min)?;
        marks::reach(Mark::QueueRebuilt);
        self.queues.insert(key, rebuilt);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn read_queue(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max_msgs: usize,
        visible_end: u64,
        filter: &dyn Fn(u64) -> bool,
        skip_corrupt: bool,
    ) -> Result<GetResult> {
        let (min_offset, max_offset) = self.queue_offsets(topic, queue_id);
        let mut result = GetResult { status: GetStatus::NoNew, messages: Vec::new(), next_offset: offset, min_offset, max_offset };
        if offset < min_offset {
            result.status = GetStatus::OffsetTooSmall;
            result.next_offset = min_offset;
            return Ok(result);
        }
        if offset > max_offset {
            result.status = GetStatus::OffsetOverflow;
            result.next_offset = max_offset;
            return Ok(result);
        }
        if offset == max_offset {
            return Ok(result);
        }
        let inconsistent = |why: String| StoreError::Inconsistent(format!("consume queue {topic}/{queue_id}: {why}"));
        let cq = self.queues.get(&(topic.to_string(), queue_id)).ok_or_else(|| inconsistent("missing".into()))?;
        let mut next = offset;
        let mut scanned = 0;
        let mut bytes = 0u64;
        let mut batch = std::collections::VecDeque::new();
        while next < max_offset && result.messages.len() < max_msgs && scanned < self.config.scan_entries_max {
            if batch.is_empty() {
                // Entries come a batch at a time: a pull usually wants few.
                let want = (max_msgs - result.messages.len()).clamp(32, 256) as u64;
                batch.extend(cq.read(self.disk.as_ref(), &mut self.cache(), next, want)?);
            }
            let entry = batch.pop_front().ok_or_else(|| inconsistent(format!("no entry at offset {next} inside its range")))?;
            if entry.commit_log_offset + u64::from(entry.size) > visible_end {
                break;
            }
            if !result.messages.is_empty() && bytes + u64::from(entry.size) > READ_BYTES_MAX {
                break;
            }
            scanned += 1;
            next += 1;
            if entry.is_hole() {
                marks::reach(Mark::CorruptEntrySkipped);
                continue;
            }
            if filter(entry.tag_hash) {
                match self.commit_log.read(entry.commit_log_offset) {
                    Ok(msg) if msg.queue_offset == next - 1 && msg.queue_id == queue_id && msg.message.topic == topic => {
                        bytes += u64::from(entry.size);
                        result.messages.push(msg);
                    }
                    Ok(msg) => {
                        return Err(inconsistent(format!(
                            "the entry at offset {} points at {}/{} offset {}",
                            next - 1,
                            msg.message.topic,
                            msg.queue_id,
                            msg.queue_offset
                        )))
                    }
                    // A flipped bit: the message is gone (no single copy can
                    // bring it back); the queue goes on past it rather than
                    // failing every pull at this offset.
                    Err(StoreError::Corrupt { offset, reason }) if skip_corrupt => {
                        marks::reach(Mark::CorruptEntrySkipped);
                        tracing::warn!(topic, queue_id, queue_offset = next - 1, offset, reason = %reason, "corrupt message skipped");
                    }
                    Err(StoreError::Corrupt { offset, reason }) => {
                        return Err(inconsistent(format!("the entry at offset {} leads to bad bytes at {offset}: {reason}", next - 1)))
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        result.next_offset = next;
        result.status = if !result.messages.is_empty() {
            GetStatus::Found
        } else if next == offset {
            GetStatus::NoNew
        } else {
            GetStatus::NoMatched
        };
        Ok(result)
    }

    /// Reads the message at a commit log offset, CRC checked.
    pub fn read_at(&self, commit_log_offset: u64) -> Result<MessageExt> {
        self.commit_log.read(commit_log_offset)
    }

    /// The first queue offset whose message was stored at or after `timestamp_ms`.
    pub fn offset_by_time(&self, topic: &str, queue_id: u32, timestamp_ms: u64) -> Result<u64> {
        let (mut lo, mut hi) = self.queue_offsets(topic, queue_id);
        let Some(cq) = self.queues.get(&(topic.to_string(), queue_id)) else { return Ok(0) };
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let entry = cq
                .get(self.disk.as_ref(), &mut self.cache(), mid)?
                .ok_or_else(|| StoreError::Inconsistent(format!("consume queue {topic}/{queue_id}: no entry at offset {mid} inside its range")))?;
            if self.commit_log.read(entry.commit_log_offset)?.store_timestamp_ms < timestamp_ms {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Deletes commit log segments older than the retention; returns how many.
    pub fn delete_expired(&mut self, now_ms: u64) -> Result<usize> {
        let deleted = self.commit_log.delete_before(now_ms.saturating_sub(self.config.retention_ms))?;
        if deleted > 0 {
            self.set_queue_mins()?;
            self.index.delete_before(self.disk.as_ref(), self.commit_log.min_offset())?;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests;
