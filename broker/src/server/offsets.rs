//! Committed consumer offsets per (group, topic, queue), persisted as JSON.

use crate::bugs::{self, Bug};
use crate::command::{GetQueueOffsets, Outcome, QueryConsumerOffset, QueueStats, Refusal, Refused, SearchOffsetByTime, UpdateConsumerOffset};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The broker's table of committed offsets.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OffsetTable {
    /// "group@topic" -> queue id -> next offset to consume.
    offsets: BTreeMap<String, BTreeMap<u32, u64>>,
    /// Changed since the last save.
    #[serde(skip)]
    dirty: bool,
}

fn key(group: &str, topic: &str) -> String {
    format!("{group}@{topic}")
}

impl OffsetTable {
    /// Sets a committed offset as given, back or forward (a slave copying
    /// its master's table; an operator's reset).
    pub fn commit(&mut self, group: &str, topic: &str, queue_id: u32, offset: u64) {
        self.offsets.entry(key(group, topic)).or_default().insert(queue_id, offset);
        self.dirty = true;
    }

    /// Records a consumer's commit, which only ever moves the offset
    /// forward: two consumers may both hold a queue for a moment in a
    /// rebalance (each sees the group as it last heard of it), and the
    /// new owner's lower commit must not undo the old owner's (Apache
    /// RocketMQ #10700: concurrent commits of one group overwrote each
    /// other, and the group later resumed below what it had committed).
    /// False when it was behind the offset already committed.
    pub fn commit_forward(&mut self, group: &str, topic: &str, queue_id: u32, offset: u64) -> bool {
        if self.get(group, topic, queue_id).is_some_and(|known| known > offset) {
            return false;
        }
        self.commit(group, topic, queue_id, offset);
        true
    }

    /// The committed offset, if any.
    pub fn get(&self, group: &str, topic: &str, queue_id: u32) -> Option<u64> {
        self.offsets.get(&key(group, topic))?.get(&queue_id).copied()
    }

    /// Moves every committed offset that lies past its queue's end (as
    /// `end_of(topic, queue_id)` says) back to that end; returns how many.
    /// After a power loss the recovered queues can be shorter than what
    /// consumers had already committed; left alone, new messages would get
    /// offsets the group has "consumed" and be skipped.
    pub fn clamp(&mut self, end_of: impl Fn(&str, u32) -> u64) -> usize {
        let mut clamped = 0;
        for (key, queues) in &mut self.offsets {
            let Some((_, topic)) = key.split_once('@') else { continue };
            for (queue_id, offset) in queues.iter_mut() {
                let end = end_of(topic, *queue_id);
                if *offset > end {
                    *offset = end;
                    clamped += 1;
                }
            }
        }
        if clamped > 0 {
            self.dirty = true;
        }
        clamped
    }

    /// Every committed offset: (group, topic, queue id, offset).
    pub fn entries(&self) -> Vec<(String, String, u32, u64)> {
        self.offsets
            .iter()
            .filter_map(|(key, queues)| key.split_once('@').map(|(g, t)| (g, t, queues)))
            .flat_map(|(g, t, queues)| queues.iter().map(move |(q, o)| (g.to_string(), t.to_string(), *q, *o)))
            .collect()
    }

    /// The JSON to persist, when something changed since the last call.
    pub fn take_snapshot(&mut self) -> Option<Vec<u8>> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        Some(serde_json::to_vec_pretty(self).expect("offsets encode"))
    }

    /// Loads a persisted table.
    pub fn from_json(bytes: &[u8]) -> Result<OffsetTable, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("consumer offsets file is corrupt: {e}"))
    }
}

/// The handlers of [`crate::command::offsets`].
impl super::Broker {
    /// Commits a group's offset on a queue, forward only and never past
    /// the queue's end: a consumer that read entries a power loss took
    /// back may still commit its old position.
    pub fn update_offset(&self, command: UpdateConsumerOffset) -> Outcome<()> {
        let UpdateConsumerOffset { group, topic, queue_id, offset } = command;
        // A slave's offsets are its master's copy, replaced every second:
        // a commit taken here would be silently undone.
        if self.is_slave() {
            return Err(Refusal::new(
                Refused::NotMaster,
                format!("{} is a slave: commit consumer offsets to its master", self.config.broker_name),
            ));
        }
        let end = self.store.lock().expect("store").queue_offsets(&topic, queue_id).1;
        self.offsets.lock().expect("offsets").commit_forward(&group, &topic, queue_id, offset.min(end));
        Ok(())
    }

    /// A group's committed offset on a queue, if any.
    pub fn query_offset(&self, command: QueryConsumerOffset) -> Outcome<Option<u64>> {
        let QueryConsumerOffset { group, topic, queue_id } = command;
        if bugs::active(Bug::StaleOffsetRead) {
            // The planted defect: answered from the last persisted table.
            let persisted = crate::store::disk::read_all(self.disk.as_ref(), super::OFFSETS_PATH).ok().flatten();
            let table = persisted.and_then(|bytes| serde_json::from_slice::<OffsetTable>(&bytes).ok());
            return Ok(table.and_then(|t| t.get(&group, &topic, queue_id)));
        }
        Ok(self.offsets.lock().expect("offsets").get(&group, &topic, queue_id))
    }

    /// A queue's readable range.
    pub fn queue_offsets(&self, command: GetQueueOffsets) -> Outcome<QueueStats> {
        let GetQueueOffsets { topic, queue_id } = command;
        let (min_offset, max_offset) = self.store.lock().expect("store").queue_offsets(&topic, queue_id);
        Ok(QueueStats { queue_id, min_offset, max_offset })
    }

    /// A queue's first offset stored at or after a time.
    pub fn search_offset(&self, command: SearchOffsetByTime) -> Outcome<Option<u64>> {
        let SearchOffsetByTime { topic, queue_id, timestamp_ms } = command;
        Ok(Some(self.store.lock().expect("store").offset_by_time(&topic, queue_id, timestamp_ms)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_snapshot_reload() {
        let mut t = OffsetTable::default();
        assert!(t.take_snapshot().is_none());
        t.commit("g", "t", 1, 10);
        let snap = t.take_snapshot().unwrap();
        assert!(t.take_snapshot().is_none());
        let back = OffsetTable::from_json(&snap).unwrap();
        assert_eq!(back.get("g", "t", 1), Some(10));
        assert_eq!(back.get("g", "t", 2), None);
        assert!(OffsetTable::from_json(b"{").is_err());
    }

    #[test]
    fn a_consumer_commit_never_moves_an_offset_back() {
        let mut t = OffsetTable::default();
        assert!(t.commit_forward("g", "t", 0, 55));
        assert!(!t.commit_forward("g", "t", 0, 53), "a lower commit of a queue's new owner is ignored");
        assert_eq!(t.get("g", "t", 0), Some(55));
        assert!(t.commit_forward("g", "t", 0, 57));
        assert_eq!(t.get("g", "t", 0), Some(57));
        // A slave's copy of its master's table is set as it is.
        t.commit("g", "t", 0, 50);
        assert_eq!(t.get("g", "t", 0), Some(50));
    }

    #[test]
    fn clamp_moves_offsets_past_the_end_back() {
        let mut t = OffsetTable::default();
        t.commit("g", "t", 0, 10);
        t.commit("g", "t", 1, 3);
        let _ = t.take_snapshot();
        assert_eq!(t.clamp(|_, q| if q == 0 { 7 } else { 5 }), 1);
        assert_eq!((t.get("g", "t", 0), t.get("g", "t", 1)), (Some(7), Some(3)));
        assert!(t.take_snapshot().is_some());
    }
}
