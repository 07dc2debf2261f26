//! Store tests: unit cases and the crash-recovery property.

use super::*;
use crate::model::Message;
use proptest::prelude::*;

fn small_config() -> StoreConfig {
    StoreConfig { segment_bytes: 2048, ..StoreConfig::default() }
}

fn message(topic: &str, queue_id: u32, n: u64, body_len: usize) -> MessageExt {
    MessageExt {
        message: Message::new(topic, vec![(n % 251) as u8; body_len])
            .with_key(format!("key-{n}"))
            .with_tags(if n.is_multiple_of(2) { "even" } else { "odd" })
            .with_property(crate::model::PROPERTY_UNIQ_KEY, format!("id-{n}")),
        queue_id,
        ..MessageExt::default()
    }
}

fn open(disk: &MemDisk) -> (MessageStore, RecoveryReport) {
    MessageStore::open(Arc::new(disk.clone()), small_config()).expect("store opens")
}

fn all_in_queue(store: &MessageStore, topic: &str, queue_id: u32) -> Vec<MessageExt> {
    let (min, max) = store.queue_offsets(topic, queue_id);
    let got = store.get(topic, queue_id, min, usize::MAX, u64::MAX, &|_| true).unwrap();
    assert_eq!(got.next_offset, max);
    got.messages
}

#[test]
fn put_get_query_and_reopen() {
    let disk = MemDisk::new();
    let (mut store, report) = open(&disk);
    assert_eq!(report, RecoveryReport::default());
    for n in 0..40 {
        let r = store.put(message("t", (n % 2) as u32, n, 100), 1000 + n).unwrap();
        assert_eq!(r.queue_offset, n / 2);
    }
    assert_eq!(store.queue_offsets("t", 0), (0, 20));
    let evens = store.get("t", 0, 0, 5, u64::MAX, &|h| h == tag_hash("even")).unwrap();
    assert_eq!(evens.status, GetStatus::Found);
    assert_eq!(evens.messages.len(), 5);
    let odds = store.get("t", 0, 0, 5, u64::MAX, &|h| h == tag_hash("odd")).unwrap();
    assert_eq!(odds.status, GetStatus::NoMatched);
    assert_eq!(odds.next_offset, 20);
    assert_eq!(store.get("t", 0, 20, 5, u64::MAX, &|_| true).unwrap().status, GetStatus::NoNew);
    assert_eq!(store.get("t", 0, 21, 5, u64::MAX, &|_| true).unwrap().status, GetStatus::OffsetOverflow);
    let by_key = store.query_by_key("t", "key-7", 32, 0, u64::MAX).unwrap();
    assert_eq!(by_key.len(), 1);
    assert_eq!(by_key[0].msg_id(), "id-7");
    assert_eq!(store.query_by_unique_id("id-8").unwrap()[0].queue_offset, 4);
    assert_eq!(store.offset_by_time("t", 1, 1011).unwrap(), 5);
    store.flush().unwrap();
    drop(store);
    let (store, report) = open(&disk);
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(all_in_queue(&store, "t", 1).len(), 20);
    assert_eq!(store.query_by_key("t", "key-39", 32, 0, u64::MAX).unwrap().len(), 1);
}

#[test]
fn entries_past_the_visible_end_are_not_read_yet() {
    let disk = MemDisk::new();
    let (mut store, _) = open(&disk);
    let first = store.put(message("t", 0, 0, 10), 0).unwrap();
    store.put(message("t", 0, 1, 10), 0).unwrap();
    let got = store.get("t", 0, 0, 10, first.end_offset, &|_| true).unwrap();
    assert_eq!((got.status, got.messages.len(), got.next_offset), (GetStatus::Found, 1, 1));
    let none = store.get("t", 0, 1, 10, first.end_offset, &|_| true).unwrap();
    assert_eq!((none.status, none.next_offset), (GetStatus::NoNew, 1));
}

/// A flush vouches only for what was written before its plan was taken:
/// a put that lands while the fsync runs outside the lock waits for the
/// next flush.
#[test]
fn a_flush_plan_covers_only_what_was_written_before_it() {
    let disk = MemDisk::new();
    let (mut store, _) = open(&disk);
    let first = store.put(message("t", 0, 0, 10), 0).unwrap();
    let plan = store.flush_plan();
    let second = store.put(message("t", 0, 1, 10), 0).unwrap();
    let synced = plan.sync(&disk);
    assert_eq!(store.flush_done(&plan, synced).unwrap(), first.end_offset);
    assert_eq!(store.flushed_offset(), first.end_offset);
    assert!(store.flush_plan().sync(&disk).is_ok());
    assert_eq!(store.flush().unwrap(), second.end_offset);
}

/// A failed fsync breaks the store, as it did when the fsync ran under the
/// lock: nothing later is acknowledged as durable.
#[test]
fn a_failed_flush_outside_the_lock_breaks_the_store() {
    let disk = MemDisk::new();
    let (mut store, _) = open(&disk);
    store.put(message("t", 0, 0, 10), 0).unwrap();
    let plan = store.flush_plan();
    assert!(store.flush_done(&plan, Err(std::io::Error::other("boom"))).is_err());
    assert_eq!(store.flushed_offset(), 0);
    assert!(store.put(message("t", 0, 1, 10), 0).is_err());
}

/// A disk whose fsyncs of paths starting with a prefix fail while switched on.
#[derive(Clone, Default)]
struct FailingSync(MemDisk, std::sync::Arc<std::sync::atomic::AtomicBool>, &'static str);

impl Disk for FailingSync {
    fn read(&self, p: &str, o: u64, l: usize) -> std::io::Result<Vec<u8>> { self.0.read(p, o, l) }
    fn len(&self, p: &str) -> std::io::Result<Option<u64>> { self.0.len(p) }
    fn append(&self, p: &str, d: &[u8]) -> std::io::Result<()> { self.0.append(p, d) }
    fn truncate(&self, p: &str, l: u64) -> std::io::Result<()> { self.0.truncate(p, l) }
    fn sync(&self, p: &str) -> std::io::Result<()> {
        if self.1.load(std::sync::atomic::Ordering::Relaxed) && p.starts_with(self.2) {
            return Err(std::io::Error::other("injected fsync error"));
        }
        self.0.sync(p)
    }
    fn remove(&self, p: &str) -> std::io::Result<()> { self.0.remove(p) }
    fn list(&self, d: &str) -> std::io::Result<Vec<String>> { self.0.list(d) }
    fn write_atomic(&self, p: &str, d: &[u8]) -> std::io::Result<()> { self.0.write_atomic(p, d) }
}

/// Regression (found by swarm seed 5 once brokers reopen broken stores): an
/// attempt to reopen a store while fsync still failed cut the consume queue
/// files back to the last checkpoint and then failed; the broken store went
/// on, wrote a newer checkpoint once fsync worked, and the reopen that
/// followed trusted the cut queues below it: queue offsets went back and
/// were given out twice, and two acknowledged messages were never consumed.
/// A broken store writes no checkpoint.
#[test]
fn a_failed_reopen_and_a_broken_store_cannot_make_queue_offsets_go_back() {
    let disk = FailingSync(MemDisk::new(), Default::default(), "");
    let (mut store, _) = MessageStore::open(Arc::new(disk.clone()), small_config()).unwrap();
    store.put(message("t", 0, 0, 10), 0).unwrap();
    store.flush().unwrap();
    store.checkpoint().unwrap();
    for n in 1..4 {
        store.put(message("t", 0, n, 10), 0).unwrap();
    }
    store.flush().unwrap();
    disk.1.store(true, std::sync::atomic::Ordering::Relaxed);
    store.put(message("t", 0, 4, 10), 0).unwrap();
    assert!(store.flush().is_err(), "the fsync fails");
    assert!(store.broken().is_some());
    assert!(MessageStore::open(Arc::new(disk.clone()), small_config()).is_err(), "reopening fails while fsync does");
    disk.1.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = store.flush();
    assert!(store.checkpoint().is_err(), "a broken store vouches for nothing");
    let (reopened, _) = MessageStore::open(Arc::new(disk.clone()), small_config()).unwrap();
    assert_eq!(reopened.queue_offsets("t", 0), (0, 5));
    assert_eq!(all_in_queue(&reopened, "t", 0).len(), 5);
}

/// A failed fsync during a checkpoint must leave the queues dirty, so the
/// next checkpoint syncs them before vouching for their entries.
#[test]
fn checkpoint_after_a_failed_sync_still_syncs_the_queues() {
    let disk = FailingSync(MemDisk::new(), Default::default(), "consumequeue");
    let (mut store, _) = MessageStore::open(Arc::new(disk.clone()), small_config()).unwrap();
    for n in 0..5 {
        store.put(message("t", 0, n, 10), n).unwrap();
    }
    store.flush().unwrap();
    disk.1.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(store.checkpoint().is_err());
    disk.1.store(false, std::sync::atomic::Ordering::Relaxed);
    store.checkpoint().unwrap();
    drop(store);
    disk.0.power_loss(|_| 0);
    let (store, _) = MessageStore::open(Arc::new(disk.0.clone()), small_config()).unwrap();
    assert_eq!(store.queue_offsets("t", 0), (0, 5));
    assert_eq!(all_in_queue(&store, "t", 0).len(), 5);
}

#[test]
fn oversized_body_is_rejected_and_nothing_stored() {
    let disk = MemDisk::new();
    let config = StoreConfig { body_bytes_max: 10, ..small_config() };
    let (mut store, _) = MessageStore::open(Arc::new(disk.clone()), config).unwrap();
    let err = store.put(message("t", 0, 1, 11), 0).unwrap_err();
    assert!(err.to_string().contains("more than the 10 allowed"), "{err}");
    assert_eq!(store.write_offset(), 0);
    store.put(message("t", 0, 1, 10), 0).unwrap();
}

/// Regression: a 4 MiB body with 1.2 MiB of properties used to pass the
/// body check, then panic while encoding inside `put` (under the broker's
/// store lock, poisoning it). Every limit is now checked before anything is
/// written, the error names the limit, and the store stays writable.
#[test]
fn a_message_past_any_limit_is_refused_before_anything_is_written() {
    let disk = MemDisk::new();
    let (mut store, _) = MessageStore::open(Arc::new(disk.clone()), StoreConfig::default()).unwrap();
    store.put(message("t", 0, 0, 10), 0).unwrap();
    let end = store.write_offset();
    let mut huge = message("t", 0, 1, 4 * 1024 * 1024);
    huge.message.properties.insert("blob".into(), "x".repeat(1_200_000));
    let mut long_tag = message("t", 0, 2, 10);
    long_tag.message.tags = Some("t".repeat(40_000));
    let mut long_key = message("t", 0, 3, 10);
    long_key.message.keys = vec!["é".repeat(40_000)];
    let mut bad_tag = message("t", 0, 4, 10);
    bad_tag.message.tags = Some("A||B".into());
    let mut long_topic = message(&"t".repeat(128), 0, 5, 10);
    long_topic.message.keys.clear();
    let mut long_host = message("t", 0, 6, 10);
    long_host.born_host = "h".repeat(10_000);
    let cases = [
        (huge, "more than the 32767 allowed"),
        (long_tag, "more than the 32767 allowed"),
        (long_key, "more than the 32767 allowed"),
        (bad_tag, "contains `|`"),
        (long_topic, "longer than 127"),
        (long_host, "more than the 255 allowed"),
    ];
    for (msg, limit) in cases {
        let err = store.put(msg, 0).unwrap_err();
        let StoreError::Illegal(message) = &err else { panic!("not a refusal of the message: {err}") };
        assert!(message.contains(limit), "{message:?} does not name {limit:?}");
        assert_eq!(store.write_offset(), end, "a refused message wrote bytes");
    }
    store.put(message("t", 0, 7, 10), 0).unwrap();
    assert_eq!(all_in_queue(&store, "t", 0).len(), 2);
}

/// An entry the store could not read back is never encoded.
#[test]
fn an_entry_past_the_largest_readable_is_not_encoded() {
    let msg = message("t", 0, 1, entry::ENTRY_LEN_MAX);
    let err = entry::encode(&msg).unwrap_err();
    assert!(err.contains(&entry::ENTRY_LEN_MAX.to_string()), "{err}");
    assert!(entry::encode(&message("t", 0, 1, 10)).is_ok());
}

/// Overwrites the commit log offset of entry `i` of a consume queue file.
fn point_queue_entry(disk: &MemDisk, path: &str, i: usize, commit_log_offset: u64) {
    let mut bytes = disk::read_all(disk, path).unwrap().unwrap();
    let at = consume_queue::ENTRY_LEN * (1 + i);
    bytes[at..at + 8].copy_from_slice(&commit_log_offset.to_be_bytes());
    disk.truncate(path, 0).unwrap();
    disk.append(path, &bytes).unwrap();
    disk.sync(path).unwrap();
}

/// Regression: a consume queue entry that did not lead to its message
/// tripped an `assert_eq!` in `get`, under the broker's store lock, and
/// stopped the whole broker; one that led into the middle of an entry made
/// the pull pass over a message that was intact. Now the read fails alone
/// (`get`), or the queue is rebuilt from the commit log and every message
/// comes back (`get_or_rebuild`, what pulls use).
#[test]
fn a_consume_queue_entry_that_misleads_fails_one_read_and_the_queue_is_rebuilt() {
    let disk = MemDisk::new();
    let (mut store, _) = open(&disk);
    let mut offsets = Vec::new();
    for n in 0..10 {
        offsets.push(store.put(message("t", (n % 2) as u32, n, 50), 0).unwrap().commit_log_offset);
    }
    store.flush().unwrap();
    store.checkpoint().unwrap();
    drop(store);
    let path = ConsumeQueue::path_of("t", 0);
    // Entry 1 of queue 0 points at a message of queue 1, entry 3 into the
    // middle of an entry.
    point_queue_entry(&disk, &path, 1, offsets[1]);
    point_queue_entry(&disk, &path, 3, offsets[6] + 5);
    let (mut store, _) = open(&disk);
    let err = store.get("t", 0, 0, 32, u64::MAX, &|_| true).unwrap_err();
    assert!(matches!(err, StoreError::Inconsistent(_)), "{err}");
    let got = store.get_or_rebuild("t", 0, 0, 32, u64::MAX, &|_| true).unwrap();
    let seen: Vec<u64> = got.messages.iter().map(|m| m.queue_offset).collect();
    assert_eq!(seen, [0, 1, 2, 3, 4]);
    assert!(got.messages.iter().all(|m| m.queue_id == 0));
    // The rebuilt queue is on disk: it survives a reopen, and new messages
    // take the next offsets.
    assert_eq!(store.put(message("t", 0, 10, 50), 0).unwrap().queue_offset, 5);
    store.flush().unwrap();
    store.checkpoint().unwrap();
    drop(store);
    let (store, _) = open(&disk);
    assert_eq!(all_in_queue(&store, "t", 0).len(), 6);
}

/// A rebuilt queue never hands out an offset twice: a message lost to a
/// flipped bit at the end of its queue stays a hole.
#[test]
fn a_rebuilt_queue_keeps_its_end() {
    let disk = MemDisk::new();
    let (mut store, _) = open(&disk);
    for n in 0..4 {
        store.put(message("t", 0, n, 50), 0).unwrap();
    }
    let last = store.put(message("t", 0, 4, 50), 0).unwrap();
    store.put(message("u", 0, 5, 50), 0).unwrap();
    store.flush().unwrap();
    assert!(disk.flip_bit("commitlog/00000000000000000000", last.commit_log_offset + 30, 3));
    store.rebuild_queue("t", 0).unwrap();
    assert_eq!(store.queue_offsets("t", 0), (0, 5));
    assert_eq!(all_in_queue(&store, "t", 0).len(), 4);
    assert_eq!(store.put(message("t", 0, 6, 50), 0).unwrap().queue_offset, 5);
}

/// Regression (disk-corruption seed 389): a queue rebuilt after a flipped
/// bit, then a power loss before the next checkpoint. The rebuild used to
/// remove the queue's file and append the new one unsynced while the
/// checkpoint still vouched for the old entries, so recovery found a torn
/// file, filled the gap with holes, and the durable messages after the
/// flipped one were gone from their queue.
#[test]
fn a_rebuilt_queue_survives_a_power_loss_before_the_next_checkpoint() {
    let disk = MemDisk::new();
    let (mut store, _) = open(&disk);
    let mut puts = Vec::new();
    for n in 0..8 {
        puts.push(store.put(message("t", 0, n, 50), 0).unwrap());
    }
    store.flush().unwrap();
    store.checkpoint().unwrap();
    assert!(disk.flip_bit("commitlog/00000000000000000000", puts[5].commit_log_offset + 30, 3));
    let got = store.get_or_rebuild("t", 0, 0, 32, u64::MAX, &|_| true).unwrap();
    assert_eq!(got.messages.len(), 7, "the rebuilt queue passes over the flipped message only");
    // Power fails with the rebuilt file's bytes torn half way (the old,
    // unsafe rewrite left them unsynced).
    disk.power_loss(|n| n / 2);
    let (store, _) = open(&disk);
    let offsets: Vec<u64> = all_in_queue(&store, "t", 0).iter().map(|m| m.queue_offset).collect();
    assert_eq!(offsets, [0, 1, 2, 3, 4, 6, 7]);
}

/// Regression (found by the request-path fuzz): a pull or a query over
/// several large messages built an answer past the 8 MiB frame limit, and
/// encoding it panicked in the server. Reads now stop at READ_BYTES_MAX
/// (always handing out at least one message).
#[test]
fn reads_of_large_messages_stop_at_a_byte_budget() {
    let disk = MemDisk::new();
    let (mut store, _) = MessageStore::open(Arc::new(disk.clone()), StoreConfig::default()).unwrap();
    for n in 0..4 {
        let mut msg = message("t", 0, n, 3 * 1024 * 1024);
        msg.message.keys = vec!["same".into()];
        msg.message.properties.insert(crate::model::PROPERTY_UNIQ_KEY.into(), "same-id".into());
        store.put(msg, 0).unwrap();
    }
    let size = |msgs: &[MessageExt]| msgs.iter().map(|m| u64::from(m.store_size)).sum::<u64>();
    let mut offset = 0;
    while offset < 4 {
        let got = store.get("t", 0, offset, 32, u64::MAX, &|_| true).unwrap();
        assert!(!got.messages.is_empty());
        assert!(got.messages.len() == 1 || size(&got.messages) <= READ_BYTES_MAX, "a pull of {} bytes", size(&got.messages));
        offset = got.next_offset;
    }
    let by_key = store.query_by_key("t", "same", 32, 0, u64::MAX).unwrap();
    assert!(!by_key.is_empty() && (by_key.len() == 1 || size(&by_key) <= READ_BYTES_MAX));
    let by_id = store.query_by_unique_id("same-id").unwrap();
    assert!(!by_id.is_empty() && (by_id.len() == 1 || size(&by_id) <= READ_BYTES_MAX));
}

/// Regression: the index was trusted: a record pointing a key at the wrong
/// message made a query by key answer that message as if it had the key.
/// A query now checks what it reads, and an inconsistent index is rebuilt
/// from the commit log.
#[test]
fn an_index_that_points_wrong_is_rebuilt_and_queries_answer_right() {
    let disk = MemDisk::new();
    let (mut store, _) = open(&disk);
    let mut offsets = Vec::new();
    for n in 0..6 {
        offsets.push(store.put(message("t", 0, n, 20), 0).unwrap().commit_log_offset);
    }
    store.index.add(&disk, &index::key_of("t", "key-3"), offsets[5]).unwrap();
    store.index.add(&disk, &index::uniq_of("id-2"), offsets[4]).unwrap();
    assert!(matches!(store.query_by_key("t", "key-3", 32, 0, u64::MAX), Err(StoreError::Inconsistent(_))));
    let by_key = store.with_index_rebuild(|s| s.query_by_key("t", "key-3", 32, 0, u64::MAX)).unwrap();
    assert_eq!(by_key.len(), 1);
    assert_eq!(by_key[0].message.keys, ["key-3"]);
    let by_id = store.with_index_rebuild(|s| s.query_by_unique_id("id-2")).unwrap();
    assert_eq!(by_id.iter().map(|m| m.msg_id()).collect::<Vec<_>>(), ["id-2"]);
    // The rebuilt index is on disk too.
    store.flush().unwrap();
    store.checkpoint().unwrap();
    drop(store);
    let (store, _) = open(&disk);
    assert_eq!(store.query_by_key("t", "key-3", 32, 0, u64::MAX).unwrap().len(), 1);
}

/// A rebuilt index is durable at once: the checkpoint already vouches for
/// the records it replaces, so a power loss before the next checkpoint
/// must not leave a torn index below it.
#[test]
fn a_rebuilt_index_survives_a_power_loss_before_the_next_checkpoint() {
    let disk = MemDisk::new();
    let (mut store, _) = open(&disk);
    for n in 0..6 {
        store.put(message("t", 0, n, 20), 0).unwrap();
    }
    store.flush().unwrap();
    store.checkpoint().unwrap();
    store.rebuild_index().unwrap();
    disk.power_loss(|n| n / 3);
    let (store, _) = open(&disk);
    for n in 0..6 {
        assert_eq!(store.query_by_key("t", &format!("key-{n}"), 32, 0, u64::MAX).unwrap().len(), 1, "key-{n}");
        assert_eq!(store.query_by_unique_id(&format!("id-{n}")).unwrap().len(), 1, "id-{n}");
    }
}

#[test]
fn retention_deletes_old_segments_and_moves_min_offset() {
    let disk = MemDisk::new();
    let (mut store, _) = open(&disk);
    for n in 0..60 {
        store.put(message("t", 0, n, 200), n * 1000).unwrap();
    }
    let before = store.queue_offsets("t", 0);
    let deleted = store.delete_expired(30_000 + 72 * 3600 * 1000).unwrap();
    assert!(deleted > 0);
    let after = store.queue_offsets("t", 0);
    assert!(after.0 > before.0 && after.1 == before.1, "{before:?} -> {after:?}");
    assert_eq!(store.get("t", 0, 0, 1, u64::MAX, &|_| true).unwrap().status, GetStatus::OffsetTooSmall);
    store.flush().unwrap();
    drop(store);
    // A lost checkpoint forces a full rebuild that must keep queue offsets.
    disk.remove("checkpoint").unwrap();
    let (store, _) = open(&disk);
    assert_eq!(store.queue_offsets("t", 0), after);
    let first = store.get("t", 0, after.0, 1, u64::MAX, &|_| true).unwrap();
    assert_eq!(first.messages[0].queue_offset, after.0);
}

#[test]
fn a_flipped_bit_loses_its_message_and_the_queue_goes_on() {
    let disk = MemDisk::new();
    let (mut store, _) = open(&disk);
    for n in 0..5 {
        store.put(message("t", 0, n, 50), n).unwrap();
    }
    store.flush().unwrap();
    store.checkpoint().unwrap();
    let path = "commitlog/00000000000000000000";
    assert!(disk.flip_bit(path, 40, 3));
    // The first message is corrupt: a pull passes over it, not fails on it.
    let got = store.get("t", 0, 0, 10, u64::MAX, &|_| true).unwrap();
    let offsets: Vec<u64> = got.messages.iter().map(|m| m.queue_offset).collect();
    assert_eq!(offsets, [1, 2, 3, 4]);
    assert_eq!(got.next_offset, 5);
}

/// Regression (swarm-ha seed 8): a power loss tore unsynced bytes off the
/// ends of two segments at once. Recovery passed over the first segment's
/// torn entry to the next segment and then cut the log in the gap, at an
/// offset inside an entry: harmless for a lone broker, but a slave's log
/// then ended where no entry of its master's starts, and its master could
/// never cut back to it after a failover. The cut is now at the torn
/// entry's start.
#[test]
fn a_power_loss_tearing_two_segments_cuts_at_an_entry_start() {
    let disk = MemDisk::new();
    let (mut store, _) = open(&disk);
    let mut starts = Vec::new();
    for n in 0..6 {
        starts.push(store.put(message("t", 0, n, 200), n).unwrap().commit_log_offset);
    }
    store.flush().unwrap();
    store.checkpoint().unwrap();
    // Unsynced writes that fill the active segment and start the next.
    for n in 6..20 {
        starts.push(store.put(message("t", 0, n, 200), n).unwrap().commit_log_offset);
    }
    let segments = disk.list("commitlog").unwrap();
    assert!(segments.len() >= 2, "the unsynced writes span two segments");
    drop(store);
    // Each file keeps a third of its unsynced bytes: both tails torn.
    disk.power_loss(|n| n / 3);
    let (store, _) = open(&disk);
    let end = store.write_offset();
    assert!(starts.contains(&end), "the log ends at {end}, where no entry started ({starts:?})");
    assert!(end >= starts[6], "synced entries are kept");
    let read = all_in_queue(&store, "t", 0).len() as u64;
    assert_eq!(read, store.queue_offsets("t", 0).1);
}

#[test]
fn recovery_passes_over_a_corrupt_entry_that_valid_entries_follow() {
    let disk = MemDisk::new();
    let (mut store, _) = open(&disk);
    let mut sizes = Vec::new();
    for n in 0..6 {
        let put = store.put(message("t", (n % 2) as u32, n, 50), n).unwrap();
        sizes.push(put.commit_log_offset);
    }
    store.flush().unwrap();
    drop(store);
    // No checkpoint: recovery scans the whole log. Corrupt the length field
    // of the third entry (queue 0, offset 1), so only a resync finds the
    // fourth.
    assert!(disk.flip_bit("commitlog/00000000000000000000", sizes[2] + 2, 5));
    let (store, report) = open(&disk);
    assert_eq!(report.truncated_bytes, 0, "valid entries after the corrupt one were cut");
    let queue0: Vec<u64> = all_in_queue(&store, "t", 0).iter().map(|m| m.queue_offset).collect();
    assert_eq!(queue0, [0, 2], "queue 0 keeps its offsets around the hole");
    assert_eq!(all_in_queue(&store, "t", 1).len(), 3);
    drop(store);
    // The hole is durable: a second recovery sees the same queues.
    let (store, _) = open(&disk);
    assert_eq!(store.queue_offsets("t", 0), (0, 3));
    assert_eq!(all_in_queue(&store, "t", 0).len(), 2);
}

#[derive(Clone, Debug)]
enum Op {
    Put { queue_id: u32, body_len: usize },
    Flush,
    Checkpoint,
    /// Process crash: unsynced bytes survive in the page cache.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u32..3, 0usize..400).prop_map(|(queue_id, body_len)| Op::Put { queue_id, body_len }),
        2 => Just(Op::Flush),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Random appends, flushes and restarts, then a power loss that drops
    /// unsynced bytes and tears the last write at a random byte: recovery
    /// yields a prefix of what was put that holds every synced entry, and
    /// every entry read back is exactly what was put.
    #[test]
    fn power_loss_recovers_a_prefix_holding_every_synced_entry(
        ops in proptest::collection::vec(op(), 1..80),
        tear in 0.0f64..1.0,
    ) {
        let disk = MemDisk::new();
        let (mut store, _) = open(&disk);
        let mut put: Vec<MessageExt> = Vec::new();
        let mut synced = 0usize;
        for op in ops {
            match op {
                Op::Put { queue_id, body_len } => {
                    let n = put.len() as u64;
                    let mut msg = message("t", queue_id, n, body_len);
                    let r = store.put(msg.clone(), n).unwrap();
                    msg.queue_offset = r.queue_offset;
                    put.push(msg);
                }
                Op::Flush => { store.flush().unwrap(); synced = put.len(); }
                Op::Checkpoint => { store.flush().unwrap(); store.checkpoint().unwrap(); synced = put.len(); }
                Op::Restart => { drop(store); store = open(&disk).0; synced = put.len(); }
            }
        }
        drop(store);
        disk.power_loss(|n| (n as f64 * tear) as usize);
        let (store, _) = open(&disk);
        let mut recovered: Vec<MessageExt> = (0..3).flat_map(|q| all_in_queue(&store, "t", q)).collect();
        recovered.sort_by_key(|m| m.commit_log_offset);
        prop_assert!(recovered.len() >= synced, "lost synced entries: {} < {}", recovered.len(), synced);
        prop_assert!(recovered.len() <= put.len());
        for (got, want) in recovered.iter().zip(&put) {
            prop_assert_eq!(&got.message, &want.message);
            prop_assert_eq!(got.queue_id, want.queue_id);
            prop_assert_eq!(got.queue_offset, want.queue_offset);
        }
        // The store keeps working: the next put continues each queue densely.
        drop(store);
        let (mut store, _) = open(&disk);
        let (_, max) = store.queue_offsets("t", 0);
        prop_assert_eq!(store.put(message("t", 0, 999, 10), 0).unwrap().queue_offset, max);
    }

    /// A flipped bit anywhere in the commit log is never returned as data,
    /// and costs at most the one message whose entry it hit: every other
    /// message is still read back, at its own queue offset.
    #[test]
    fn flipped_bit_never_returns_corrupt_data(count in 1u64..30, at in 0.0f64..1.0, bit in 0u8..8, checkpoint in any::<bool>()) {
        let disk = MemDisk::new();
        let (mut store, _) = open(&disk);
        let mut put = Vec::new();
        for n in 0..count {
            let mut msg = message("t", 0, n, 100);
            msg.queue_offset = store.put(msg.clone(), n).unwrap().queue_offset;
            put.push(msg);
        }
        store.flush().unwrap();
        if checkpoint { store.checkpoint().unwrap(); }
        drop(store);
        let segments = disk.list("commitlog").unwrap();
        let seg = &segments[(at * segments.len() as f64) as usize % segments.len()];
        let path = format!("commitlog/{seg}");
        let len = disk.len(&path).unwrap().unwrap();
        disk.flip_bit(&path, (at * len as f64) as u64 % len.max(1), bit);
        let (store, _) = MessageStore::open(Arc::new(disk.clone()), small_config()).expect("a flipped bit never stops the store");
        let (min, max) = store.queue_offsets("t", 0);
        let (mut read, mut offset) = (0, min);
        while offset < max {
            let got = store.get("t", 0, offset, 1, u64::MAX, &|_| true).expect("a pull passes over a corrupt message");
            prop_assert!(got.next_offset > offset, "the queue is stuck at {}", offset);
            for m in got.messages {
                prop_assert!(m.queue_offset >= offset && m.queue_offset < got.next_offset);
                prop_assert_eq!(&m.message, &put[m.queue_offset as usize].message);
                read += 1;
            }
            offset = got.next_offset;
        }
        prop_assert!(read + 1 >= count, "{} of {} messages read back after one flipped bit", read, count);
    }
}

/// Copies `master` into `replica` chunk by chunk, as a slave does.
fn replicate(master: &MessageStore, replica: &mut MessageStore, max: usize) -> usize {
    let mut chunks = 0;
    loop {
        let from = replica.write_offset();
        let chunk = master.replica_chunk(from, max).unwrap();
        if chunk.is_empty() {
            return chunks;
        }
        replica.append_replicated(from, &chunk).unwrap();
        chunks += 1;
    }
}

#[test]
fn a_replica_copies_the_log_at_the_masters_offsets_with_its_queues_and_index() {
    let (master_disk, replica_disk) = (MemDisk::new(), MemDisk::new());
    let (mut master, _) = open(&master_disk);
    for n in 0..60 {
        master.put(message("t", (n % 3) as u32, n, 90 + (n as usize % 7) * 40), 1000 + n).unwrap();
    }
    let (mut replica, _) = open(&replica_disk);
    let chunks = replicate(&master, &mut replica, 700);
    assert!(chunks > 5, "small chunks, across segments: {chunks}");
    assert_eq!(replica.write_offset(), master.write_offset());
    for q in 0..3 {
        assert_eq!(replica.queue_offsets("t", q), master.queue_offsets("t", q));
        let (a, b) = (all_in_queue(&master, "t", q), all_in_queue(&replica, "t", q));
        assert_eq!(a.len(), b.len());
        for (m, r) in a.iter().zip(&b) {
            assert_eq!((m.commit_log_offset, m.queue_offset, &m.message), (r.commit_log_offset, r.queue_offset, &r.message));
        }
    }
    assert_eq!(replica.query_by_unique_id("id-17").unwrap().len(), 1);
    // A chunk that does not continue the log is refused and changes nothing.
    let end = replica.write_offset();
    let stale = master.replica_chunk(0, 700).unwrap();
    assert!(matches!(replica.append_replicated(0, &stale), Err(StoreError::Inconsistent(_))));
    assert!(matches!(replica.append_replicated(end, &stale[..stale.len() - 1]), Err(StoreError::Inconsistent(_))));
    assert_eq!(replica.write_offset(), end);
    // More on the master, then a restart of the replica: it goes on from
    // where it is.
    for n in 60..70 {
        master.put(message("t", 0, n, 100), 2000 + n).unwrap();
    }
    replica.flush().unwrap();
    drop(replica);
    let (mut replica, _) = open(&replica_disk);
    replicate(&master, &mut replica, 4096);
    assert_eq!(replica.write_offset(), master.write_offset());
    assert_eq!(all_in_queue(&replica, "t", 0).len(), all_in_queue(&master, "t", 0).len());
}

#[test]
fn a_corrupt_entry_of_the_master_is_copied_as_is_and_passed_over() {
    let (master_disk, replica_disk) = (MemDisk::new(), MemDisk::new());
    let (mut master, _) = open(&master_disk);
    let mut offsets = Vec::new();
    for n in 0..6 {
        offsets.push(master.put(message("t", 0, n, 100), 1000 + n).unwrap().commit_log_offset);
    }
    master.flush().unwrap();
    // Flip a byte in the body of the third entry.
    let path = "commitlog/00000000000000000000";
    let mut bytes = master_disk.read(path, 0, master.write_offset() as usize).unwrap();
    bytes[offsets[2] as usize + 40] ^= 0xff;
    master_disk.truncate(path, 0).unwrap();
    master_disk.append(path, &bytes).unwrap();
    let (replica_store, _) = open(&replica_disk);
    let mut replica = replica_store;
    replicate(&master, &mut replica, 150);
    assert_eq!(replica.write_offset(), master.write_offset(), "the offsets stay the master's");
    let got: Vec<u64> = all_in_queue(&replica, "t", 0).iter().map(|m| m.queue_offset).collect();
    assert_eq!(got, [0, 1, 3, 4, 5], "the destroyed message is a hole, the rest arrive");
}

#[test]
fn truncation_cuts_the_log_its_queues_and_index_and_a_crash_during_it_is_finished() {
    let disk = MemDisk::new();
    let (mut store, _) = open(&disk);
    let mut puts = Vec::new();
    for n in 0..40 {
        puts.push(store.put(message("t", (n % 2) as u32, n, 100), 1000 + n).unwrap());
    }
    store.flush().unwrap();
    store.checkpoint().unwrap();
    let cut = puts[30].commit_log_offset;
    store.truncate_to(cut).unwrap();
    assert_eq!(store.write_offset(), cut);
    assert_eq!((store.queue_offsets("t", 0), store.queue_offsets("t", 1)), ((0, 15), (0, 15)));
    assert!(store.query_by_unique_id("id-30").unwrap().is_empty(), "the index forgot what was cut");
    assert_eq!(store.query_by_unique_id("id-29").unwrap().len(), 1);
    assert!(store.with_index_rebuild(|s| s.query_by_key("t", "key-35", 32, 0, u64::MAX)).unwrap().is_empty());
    // The cut offsets are given out again.
    let next = store.put(message("t", 0, 100, 100), 5000).unwrap();
    assert_eq!((next.commit_log_offset, next.queue_offset), (cut, 15));
    // Cutting past the end, before the start or inside an entry is refused.
    let end = store.write_offset();
    let Err(StoreError::Inconsistent(why)) = store.truncate_to(end + 1) else { panic!("a cut past the end was taken") };
    assert!(why.contains("ends at"), "{why}");
    let Err(StoreError::Inconsistent(why)) = store.truncate_to(cut + 1) else { panic!("a cut inside an entry was taken") };
    assert!(why.contains("no entry starts there"), "{why}");

    // A crash right after the cut was recorded: the next open finishes it.
    let (mut store, _) = open(&disk);
    store.flush().unwrap();
    store.checkpoint().unwrap();
    let cut = puts[10].commit_log_offset;
    begin_truncation(&disk, cut).unwrap();
    drop(store);
    let (store, _) = open(&disk);
    assert_eq!(store.write_offset(), cut);
    assert_eq!(all_in_queue(&store, "t", 0).len() + all_in_queue(&store, "t", 1).len(), 10);
    assert!(disk::read_all(&disk, TRUNCATE_PATH).unwrap().is_none(), "the finished truncation is forgotten");
    // Opening again changes nothing.
    drop(store);
    let (store, _) = open(&disk);
    assert_eq!(store.write_offset(), cut);
}
