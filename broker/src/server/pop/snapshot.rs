//! A snapshot of the POP state, so a restart, a take-over or a reopened
//! store replays only the POP log written since, not all of it.
//!
//! Each broker keeps its own (a slave's POP log is its master's, copied
//! byte for byte, so it builds the same state): the records of its log
//! that are durable (flushed) are replayed, in the order of the log, into a
//! second table, and that table is written to [`POP_SNAPSHOT_PATH`] with
//! the place in the log it reached. The live table is never what is
//! written: it holds records a power loss may still take away.
//!
//! A snapshot holds only while the log still holds the last record it
//! applied, at the same place and with the same bytes: a log cut back
//! (a divergent tail, a torn write) below it makes it useless, and a
//! rebuild then replays the whole log as if there were none.

use super::{PopQueue, PopRecord, PopTable, QueueKey, SCAN_BATCH};
use crate::bugs::{self, Bug};
use crate::model::{MessageExt, POP_TOPIC};
use crate::server::{Broker, OffsetTable};
use crate::store::{disk::read_all, Disk, MessageStore};
use serde::{Deserialize, Serialize};

/// Batches of records one persist replays into the snapshot at most.
const PERSIST_BATCHES_MAX: usize = 64;

/// Where a broker keeps its POP snapshot.
pub(in crate::server) const POP_SNAPSHOT_PATH: &str = "config/popSnapshot.json";

/// The POP state of a durable prefix of the POP log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(in crate::server) struct PopSnapshot {
    /// The POP log's records below this queue offset are applied.
    log_offset: u64,
    /// The last record applied: its commit log offset and its bytes.
    last: Option<(u64, String)>,
    /// Each group's state per queue.
    queues: Vec<(QueueKey, PopQueue)>,
}

impl PopSnapshot {
    /// Whether `store`'s POP log still holds the last record applied, where
    /// and as it was.
    fn holds(&self, store: &mut MessageStore) -> bool {
        let (min, max) = store.queue_offsets(POP_TOPIC, 0);
        if self.log_offset > max {
            return false;
        }
        let Some((position, bytes)) = &self.last else { return true };
        if self.log_offset <= min {
            // Retention took the record with the files before it; what is
            // left starts after it.
            return true;
        }
        match store.get_or_rebuild(POP_TOPIC, 0, self.log_offset - 1, 1, u64::MAX, &|_| true) {
            Ok(got) => got.messages.first().is_some_and(|m| {
                m.queue_offset == self.log_offset - 1 && m.commit_log_offset == *position && m.message.body == bytes.as_bytes()
            }),
            Err(_) => false,
        }
    }

    fn table(&self) -> PopTable {
        PopTable { queues: self.queues.iter().cloned().collect(), turn: 0 }
    }
}

/// Reads the snapshot on `disk`; an unreadable one is as none (a rebuild
/// then replays the whole log).
pub(in crate::server) fn load(disk: &dyn Disk) -> Option<PopSnapshot> {
    match read_all(disk, POP_SNAPSHOT_PATH) {
        Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
            Ok(snapshot) => Some(snapshot),
            Err(e) => {
                tracing::warn!(path = POP_SNAPSHOT_PATH, error = %e, "an unreadable POP snapshot was ignored");
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(path = POP_SNAPSHOT_PATH, error = %e, "the POP snapshot could not be read");
            None
        }
    }
}

/// The state a POP log's records build, and how far into the log.
pub(in crate::server) struct Replayed {
    pub(super) table: PopTable,
    log_offset: u64,
    last: Option<(u64, String)>,
    /// Records replayed to get here (beyond the snapshot it started from).
    pub(in crate::server) records: u64,
}

impl Replayed {
    /// Starts from `snapshot` when `store` still holds what it applied,
    /// else from the start of the POP log.
    pub(in crate::server) fn start(store: &mut MessageStore, snapshot: Option<PopSnapshot>) -> Replayed {
        let min = store.queue_offsets(POP_TOPIC, 0).0;
        match snapshot {
            Some(s) if s.holds(store) => Replayed { table: s.table(), log_offset: s.log_offset.max(min), last: s.last, records: 0 },
            _ => Replayed { table: PopTable::default(), log_offset: min, last: None, records: 0 },
        }
    }

    /// Replays the POP log's records from where this is up to `end` (a
    /// commit log offset: a record not wholly below it is left for later).
    pub(in crate::server) fn replay_to(&mut self, store: &mut MessageStore, offsets: &OffsetTable, end: u64) -> crate::error::Result<()> {
        while self.replay_batch(store, offsets, end)? {}
        Ok(())
    }

    /// Replays one batch of records below `end`; true when it moved and
    /// the log may hold more.
    fn replay_batch(&mut self, store: &mut MessageStore, offsets: &OffsetTable, end: u64) -> crate::error::Result<bool> {
        if self.log_offset >= store.queue_offsets(POP_TOPIC, 0).1 {
            return Ok(false);
        }
        let got = store.get_or_rebuild(POP_TOPIC, 0, self.log_offset, SCAN_BATCH, end, &|_| true)?;
        for m in &got.messages {
            self.apply(m, offsets);
        }
        if let Some(m) = got.messages.last() {
            self.last = Some((m.commit_log_offset, String::from_utf8_lossy(&m.message.body).into_owned()));
        }
        if got.next_offset <= self.log_offset {
            return Ok(false);
        }
        self.log_offset = got.next_offset;
        Ok(true)
    }

    fn apply(&mut self, m: &MessageExt, offsets: &OffsetTable) {
        self.records += 1;
        match serde_json::from_slice::<PopRecord>(&m.message.body) {
            Ok(record) => {
                if matches!(record, PopRecord::Ack { .. }) && bugs::active(Bug::PopAckForgotten) {
                    // The planted defect: acks are not replayed.
                    return;
                }
                let (group, topic, queue_id) = record.key();
                self.table.replay(&record, offsets.get(&group, &topic, queue_id));
            }
            Err(e) => tracing::warn!(offset = m.queue_offset, error = %e, "an unreadable POP log record was skipped"),
        }
    }

    fn snapshot(&self) -> PopSnapshot {
        PopSnapshot {
            log_offset: self.log_offset,
            last: self.last.clone(),
            queues: self.table.queues.iter().map(|(k, q)| (k.clone(), q.clone())).collect(),
        }
    }
}

impl Broker {
    /// Brings the POP snapshot up to the durable end of the log and writes
    /// it when it moved (with the other progress, every offset persist
    /// period).
    pub(in crate::server) fn persist_pops(&self) {
        let _order = self.persisting.lock().expect("persisting");
        let mut durable = self.pop_durable.lock().expect("pop snapshot");
        let mut replayed = match durable.take() {
            Some(replayed) => replayed,
            None => Replayed::start(&mut self.store.lock().expect("store"), load(self.disk.as_ref())),
        };
        let before = (replayed.log_offset, replayed.records);
        let flushed = self.store.lock().expect("store").flushed_offset();
        // A batch at a time, the store let go in between, so sends do not
        // wait on a long catch-up (the first after a start without a
        // snapshot replays the whole log); the rest waits for the next
        // period.
        for _ in 0..PERSIST_BATCHES_MAX {
            let mut store = self.store.lock().expect("store");
            match replayed.replay_batch(&mut store, &self.offsets.lock().expect("offsets"), flushed) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    // Tried again from the snapshot on disk next time.
                    tracing::warn!(error = %e, "the POP log could not be read for its snapshot");
                    return;
                }
            }
        }
        if (replayed.log_offset, replayed.records) != before {
            let bytes = serde_json::to_vec(&replayed.snapshot()).expect("a POP snapshot serialises");
            if let Err(e) = self.disk.write_atomic(POP_SNAPSHOT_PATH, &bytes) {
                tracing::warn!(error = %e, "writing the POP snapshot failed");
                return;
            }
        }
        *durable = Some(replayed);
    }

    /// The log changed under the snapshot (reopened): the next persist
    /// starts again from the file, checked against the log.
    pub(in crate::server) fn forget_pop_progress(&self) {
        *self.pop_durable.lock().expect("pop snapshot") = None;
    }

    /// The log was cut back to `offset`: a snapshot that applied a record
    /// at or past it is gone, whatever the log holds there later.
    pub(in crate::server) fn forget_pop_progress_past(&self, offset: u64) {
        let _order = self.persisting.lock().expect("persisting");
        *self.pop_durable.lock().expect("pop snapshot") = None;
        if load(self.disk.as_ref()).is_some_and(|s| s.last.is_some_and(|(position, _)| position >= offset)) {
            if let Err(e) = self.disk.remove(POP_SNAPSHOT_PATH) {
                tracing::warn!(error = %e, "removing a POP snapshot past the cut failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::command::{AckMessage, ConsumeFrom, CreateTopic, PopMessage, Popped, SendMessage};
    use crate::model::{ExpressionType, Message, TopicConfig};
    use crate::server::BrokerConfig;
    use crate::store::MemDisk;
    use std::sync::Arc;

    const PEER: &str = "127.0.0.1:9";

    async fn broker_with(disk: &MemDisk, messages: u32) -> Arc<Broker> {
        let broker = Broker::open(BrokerConfig::new("broker-p", "127.0.0.1:10911"), Arc::new(disk.clone()), Clock::new()).expect("open");
        broker.create_topic(CreateTopic { config: TopicConfig::new("orders", 2) }).await.expect("topic");
        for n in 0..messages {
            let message = Message::new("orders", format!("m{n}").into_bytes());
            let send = SendMessage { producer_group: "p".into(), queue_id: n % 2, message, born_timestamp_ms: 0, born_host: PEER.into(), default_topic_queues: 2 };
            broker.send(send, PEER.parse().unwrap()).await.expect("send");
        }
        broker
    }

    async fn receive(broker: &Broker, max: u32) -> Vec<Popped> {
        let pop = PopMessage {
            group: "billing".into(),
            topic: "orders".into(),
            max_msgs: max,
            invisible_ms: 60_000,
            poll_ms: 0,
            expression: "*".into(),
            expression_type: ExpressionType::Tag,
            fifo: false,
            max_attempts: 3,
            consume_from: ConsumeFrom::FirstOffset,
        };
        broker.pop(pop).await.expect("pop").messages
    }

    async fn ack(broker: &Broker, popped: &[Popped]) {
        for p in popped {
            broker.ack_popped(AckMessage { group: "billing".into(), handle: p.handle.clone() }).await.expect("ack");
        }
    }

    /// What a rebuild from `snapshot` gives, and how many records it read.
    fn rebuilt(broker: &Broker, snapshot: Option<PopSnapshot>) -> (Vec<(QueueKey, u64, u64, Vec<u64>)>, u64) {
        let mut store = broker.store.lock().unwrap();
        let mut replayed = Replayed::start(&mut store, snapshot);
        replayed.replay_to(&mut store, &broker.offsets.lock().unwrap(), u64::MAX).unwrap();
        let queues = replayed.table.queues.iter().map(|(k, q)| (k.clone(), q.start, q.next, q.leases.keys().copied().collect())).collect();
        (queues, replayed.records)
    }

    /// A rebuild from the snapshot replays only the records written after
    /// it and comes to the state a replay of the whole log comes to; the
    /// snapshot covers only what was flushed; a restart uses it.
    #[tokio::test]
    async fn a_rebuild_from_the_snapshot_reads_only_the_log_after_it_and_agrees_with_a_full_replay() {
        let disk = MemDisk::new();
        let broker = broker_with(&disk, 12).await;
        let first = receive(&broker, 8).await;
        ack(&broker, &first[..5]).await;
        broker.persist_pops();
        assert!(load(&disk).is_none_or(|s| s.log_offset == 0), "nothing flushed, nothing in the snapshot");
        broker.flush_now().await;
        broker.persist_pops();
        let snapshot = load(&disk).expect("a snapshot");
        let pop_log_end = || broker.store.lock().unwrap().queue_offsets(POP_TOPIC, 0).1;
        let at_snapshot = pop_log_end();
        assert_eq!(snapshot.log_offset, at_snapshot, "every record, all flushed");
        assert!(at_snapshot >= 6, "a receive record per queue and five acks");
        // More after it: a receive and two acks.
        let second = receive(&broker, 8).await;
        assert_eq!(second.len(), 4);
        ack(&broker, &second[..2]).await;
        let (full, all) = rebuilt(&broker, None);
        let (from_snapshot, since) = rebuilt(&broker, Some(snapshot));
        assert_eq!((all, since), (pop_log_end(), pop_log_end() - at_snapshot));
        assert!(since >= 3);
        assert_eq!(from_snapshot, full);
        // A restart takes the leases from it: what was acked stays done, the
        // rest stays invisible, and an old lease can still be acked.
        broker.flush_now().await;
        broker.persist_pops();
        drop(broker);
        let broker = Broker::open(BrokerConfig::new("broker-p", "127.0.0.1:10911"), Arc::new(disk.clone()), Clock::new()).expect("reopen");
        assert!(receive(&broker, 32).await.is_empty());
        ack(&broker, &first[5..]).await;
    }

    /// A snapshot whose last record the log no longer holds as it was is
    /// not used; one past a cut of the log is removed.
    #[tokio::test]
    async fn a_snapshot_the_log_no_longer_agrees_with_is_not_used() {
        let disk = MemDisk::new();
        let broker = broker_with(&disk, 4).await;
        ack(&broker, &receive(&broker, 4).await[..2]).await;
        broker.flush_now().await;
        broker.persist_pops();
        let snapshot = load(&disk).expect("a snapshot");
        let all = snapshot.log_offset;
        let mut changed = snapshot.clone();
        changed.last.as_mut().unwrap().1.push(' ');
        assert_eq!(rebuilt(&broker, Some(changed)).1, all, "the whole log read again");
        let mut moved = snapshot.clone();
        moved.last.as_mut().unwrap().0 += 1;
        assert_eq!(rebuilt(&broker, Some(moved)).1, all, "the whole log read again");
        let ahead = PopSnapshot { log_offset: all + 1, ..snapshot.clone() };
        assert_eq!(rebuilt(&broker, Some(ahead)).1, all, "the whole log read again");
        assert_eq!(rebuilt(&broker, Some(snapshot.clone())).1, 0);
        let position = snapshot.last.as_ref().unwrap().0;
        broker.forget_pop_progress_past(position + 1);
        assert!(load(&disk).is_some(), "a cut past its last record leaves it");
        broker.forget_pop_progress_past(position);
        assert!(load(&disk).is_none(), "a cut at its last record removes it");
    }
}
