//! Committed consumer offsets per (group, topic, queue), persisted as JSON.

use crate::bugs::{self, Bug};
use crate::command::{CommittedOffset, GetQueueOffsets, Outcome, QueryConsumerOffset, QueueReset, QueueStats, Refusal, Refused, ResetOffset, SearchOffsetByTime, UpdateConsumerOffset};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The broker's table of committed offsets.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OffsetTable {
    /// "group@topic" -> queue id -> next offset to consume.
    offsets: BTreeMap<String, BTreeMap<u32, u64>>,
    /// "group@topic" -> queue id -> how many times an operator reset the
    /// group's offset there (absent: never). A consumer pulls and commits
    /// with the generation it took the queue at.
    #[serde(default)]
    generations: BTreeMap<String, BTreeMap<u32, u64>>,
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

    /// The queue's reset generation for the group: 0 until a reset.
    pub fn generation(&self, group: &str, topic: &str, queue_id: u32) -> u64 {
        self.generations.get(&key(group, topic)).and_then(|q| q.get(&queue_id)).copied().unwrap_or(0)
    }

    /// Sets the reset generation as given (a slave copying its master's).
    pub fn set_generation(&mut self, group: &str, topic: &str, queue_id: u32, generation: u64) {
        self.generations.entry(key(group, topic)).or_default().insert(queue_id, generation);
        self.dirty = true;
    }

    /// An operator's reset: sets the offset, back or forward, and starts a
    /// new generation, which it returns; commits and pulls of an earlier
    /// one are refused from now on.
    pub fn reset(&mut self, group: &str, topic: &str, queue_id: u32, offset: u64) -> u64 {
        let generation = self.generation(group, topic, queue_id) + 1;
        self.set_generation(group, topic, queue_id, generation);
        self.commit(group, topic, queue_id, offset);
        generation
    }

    /// Every reset generation: (group, topic, queue id, generation).
    pub fn generations(&self) -> Vec<(String, String, u32, u64)> {
        self.generations
            .iter()
            .filter_map(|(key, queues)| key.split_once('@').map(|(g, t)| (g, t, queues)))
            .flat_map(|(g, t, queues)| queues.iter().map(move |(q, n)| (g.to_string(), t.to_string(), *q, *n)))
            .collect()
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

    /// Makes the next [`Self::take_snapshot`] write, after a failed write.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
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

/// Refuses a pull or commit made at an earlier reset generation than the
/// queue's.
pub(super) fn stale_reset(table: &OffsetTable, group: &str, topic: &str, queue_id: u32, generation: u64) -> Outcome<()> {
    let now = table.generation(group, topic, queue_id);
    if generation < now && !bugs::active(Bug::ResetNotFenced) {
        return Err(Refusal::new(
            Refused::StaleReset,
            format!("the offsets of {group} on {topic} queue {queue_id} were reset (generation {now}, yours {generation}): take the queue again"),
        ));
    }
    Ok(())
}

/// The handlers of [`crate::command::offsets`].
impl super::Broker {
    /// Commits a group's offset on a queue, forward only and never past
    /// the queue's end: a consumer that read entries a power loss took
    /// back may still commit its old position.
    pub fn update_offset(&self, command: UpdateConsumerOffset) -> Outcome<CommittedOffset> {
        let UpdateConsumerOffset { group, topic, queue_id, offset, generation } = command;
        // A slave's offsets are its master's copy, replaced every second:
        // a commit taken here would be silently undone.
        if self.is_slave() {
            return Err(Refusal::new(
                Refused::NotMaster,
                format!("{} is a slave: commit consumer offsets to its master", self.config.broker_name),
            ));
        }
        let end = self.store.lock().expect("store").queue_offsets(&topic, queue_id).1;
        let mut offsets = self.offsets.lock().expect("offsets");
        stale_reset(&offsets, &group, &topic, queue_id, generation)?;
        if bugs::active(Bug::CommitOverwrites) {
            // The planted defect: a lower commit overwrites a higher one.
            offsets.commit(&group, &topic, queue_id, offset.min(end));
        } else {
            offsets.commit_forward(&group, &topic, queue_id, offset.min(end));
        }
        // The answer says what the group's offset is now: a lower commit
        // than one already taken (a previous owner's, late) leaves it, and
        // the committer learns so instead of believing its own stands.
        Ok(CommittedOffset { offset: offsets.get(&group, &topic, queue_id), generation: offsets.generation(&group, &topic, queue_id) })
    }

    /// Resets a group's offsets on every queue of a topic here (see
    /// [`ResetOffset`]), persists them, and tells the group's consumers.
    pub fn reset_offset(&self, command: ResetOffset) -> Outcome<Vec<QueueReset>> {
        let ResetOffset { group, topic, timestamp_ms } = command;
        crate::model::validate_group(&group).map_err(|e| Refusal::new(Refused::Illegal, e))?;
        if self.is_slave() {
            return Err(Refusal::new(
                Refused::NotMaster,
                format!("{} is a slave: reset consumer offsets on its master", self.config.broker_name),
            ));
        }
        let Some(config) = self.topics.lock().expect("topics").get(&topic).cloned() else {
            return Err(Refusal::new(Refused::TopicNotExist, format!("topic {topic} does not exist on {}", self.config.broker_name)));
        };
        let mut resets = Vec::new();
        {
            let store = self.store.lock().expect("store");
            let targets = (0..config.read_queues)
                .map(|queue_id| {
                    let end = store.queue_offsets(&topic, queue_id).1;
                    let offset = match timestamp_ms {
                        Some(t) => store.offset_by_time(&topic, queue_id, t)?.min(end),
                        None => end,
                    };
                    Ok((queue_id, offset))
                })
                .collect::<Result<Vec<_>, crate::store::StoreError>>()?;
            drop(store);
            let mut offsets = self.offsets.lock().expect("offsets");
            for (queue_id, offset) in targets {
                let generation = offsets.reset(&group, &topic, queue_id, offset);
                resets.push(QueueReset { queue_id, offset, generation });
            }
        }
        // Durable before it is answered: a restart must not bring back the
        // offsets, nor the generation, from before.
        if !self.persist_offsets() {
            return Err(Refusal::new(Refused::System, "the reset offsets could not be persisted; the reset holds until a restart"));
        }
        tracing::info!(group, topic, ?timestamp_ms, ?resets, "consumer offsets reset");
        self.notify_offsets_reset(&group, &topic);
        Ok(resets)
    }

    /// A group's committed offset on a queue, if any.
    pub fn query_offset(&self, command: QueryConsumerOffset) -> Outcome<CommittedOffset> {
        let QueryConsumerOffset { group, topic, queue_id } = command;
        let generation = self.offsets.lock().expect("offsets").generation(&group, &topic, queue_id);
        if bugs::active(Bug::StaleOffsetRead) {
            // The planted defect: answered from the last persisted table.
            let persisted = crate::store::disk::read_all(self.disk.as_ref(), super::OFFSETS_PATH).ok().flatten();
            let table = persisted.and_then(|bytes| serde_json::from_slice::<OffsetTable>(&bytes).ok());
            return Ok(CommittedOffset { offset: table.and_then(|t| t.get(&group, &topic, queue_id)), generation });
        }
        Ok(CommittedOffset { offset: self.offsets.lock().expect("offsets").get(&group, &topic, queue_id), generation })
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
