//! The schedule service's progress: per delay level, how far the schedule
//! topic's queue has been delivered to the real topics.
//!
//! Delivery copies a due message into its real topic; the level's progress
//! then moves past it. What is persisted (`config/delayOffset.json`, as
//! RocketMQ names it) is only progress whose copies are durable: after a
//! power loss the copies the disk lost are delivered again, never skipped.
//! Progress not yet persisted at a crash is delivered again too, so a delay
//! is at-least-once like everything else.

use super::Broker;
use crate::bugs::{self, Bug};
use crate::marks::{self, Mark};
use crate::model::{MessageExt, SCHEDULE_TOPIC};
use crate::store::GetStatus;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// How often the schedule topic is checked for due messages (RocketMQ: 100 ms).
pub const SCHEDULE_INTERVAL_MS: u64 = 100;

/// Entries read from one level's queue per look.
const SCHEDULE_BATCH: usize = 32;

/// One level's progress.
#[derive(Clone, Debug, Default)]
struct Level {
    /// Next schedule queue offset to deliver.
    next: u64,
    /// Deliveries whose copies may not be durable yet: (the offset after
    /// the delivered entry, commit log end after its copy), oldest first.
    pending: VecDeque<(u64, u64)>,
    /// Next offset whose delivery and everything before it is durable.
    durable: u64,
}

/// Progress of every level, keyed by level (1-based).
#[derive(Debug, Default)]
pub struct ScheduleProgress {
    levels: BTreeMap<u32, Level>,
    dirty: bool,
}

#[derive(Serialize, Deserialize)]
struct Persisted {
    /// Level -> next schedule queue offset to deliver.
    levels: BTreeMap<u32, u64>,
}

impl ScheduleProgress {
    /// Reads persisted progress; every offset is clamped to its queue's end
    /// as `end_of(level)` says (a power loss may have cut the queue).
    pub fn from_json(bytes: &[u8], end_of: impl Fn(u32) -> u64) -> Result<ScheduleProgress, String> {
        let persisted: Persisted = serde_json::from_slice(bytes).map_err(|e| format!("delay progress: {e}"))?;
        let levels = persisted
            .levels
            .into_iter()
            .map(|(level, next)| {
                let next = next.min(end_of(level));
                (level, Level { next, pending: VecDeque::new(), durable: next })
            })
            .collect();
        Ok(ScheduleProgress { levels, dirty: false })
    }

    /// Next schedule queue offset to deliver at `level`.
    pub fn next(&self, level: u32) -> u64 {
        self.levels.get(&level).map_or(0, |l| l.next)
    }

    /// Moves `level` on to `next` without a copy (an entry with nothing to
    /// deliver, or offsets retention deleted).
    pub fn skip_to(&mut self, level: u32, next: u64) {
        self.delivered(level, next, 0);
    }

    /// Records that the entry before `next` at `level` was delivered by a
    /// copy the commit log holds up to `end_offset`.
    pub fn delivered(&mut self, level: u32, next: u64, end_offset: u64) {
        let l = self.levels.entry(level).or_default();
        if next > l.next {
            l.next = next;
            l.pending.push_back((next, end_offset));
        }
    }

    /// The commit log is durable up to `flushed`: every delivery whose copy
    /// lies below it may be persisted.
    pub fn flushed(&mut self, flushed: u64) {
        for l in self.levels.values_mut() {
            while let Some(&(next, end)) = l.pending.front() {
                if end > flushed {
                    break;
                }
                l.pending.pop_front();
                if next > l.durable {
                    l.durable = next;
                    self.dirty = true;
                }
            }
        }
    }

    /// The JSON to persist when durable progress moved since the last call.
    pub fn take_snapshot(&mut self) -> Option<Vec<u8>> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        let levels = self.levels.iter().map(|(&level, l)| (level, l.durable)).collect();
        Some(serde_json::to_vec_pretty(&Persisted { levels }).expect("progress encodes"))
    }

    /// Durable progress per level, for reports and tests.
    pub fn durable(&self) -> BTreeMap<u32, u64> {
        self.levels.iter().map(|(&level, l)| (level, l.durable)).collect()
    }

    /// Forgets deliveries not yet durable: after the store is reopened,
    /// their copies may be gone, so they are delivered again.
    pub fn rewind_to_durable(&mut self) {
        for l in self.levels.values_mut() {
            l.next = l.durable;
            l.pending.clear();
        }
    }
}

impl Broker {
    /// When a delayed message is due, on the broker's clock. A message
    /// stored before the clock was set back carries a due time more than a
    /// whole delay from now; left alone it would wait for the step on top of
    /// its delay. RocketMQ (`correctDeliverTimestamp`) delivers it at once,
    /// which is early, by up to its whole delay, after any step back however
    /// small (the swarm found this: retries a full level early). Here it is
    /// due one whole delay after the step was first noticed, remembered per
    /// entry: never sooner than its delay after it was stored, in true time.
    fn due_ms(&self, level: u32, offset: u64, deliver_at_ms: u64, now: u64, delay: u64) -> u64 {
        if deliver_at_ms <= now.saturating_add(delay) {
            return deliver_at_ms;
        }
        *self.corrected.lock().expect("corrected").entry((level, offset)).or_insert_with(|| {
            marks::reach(Mark::DelayClockCorrected);
            if bugs::active(Bug::DelayStepBackEarly) {
                // The planted defect, RocketMQ's rule: due at once.
                return now;
            }
            now.saturating_add(delay)
        })
    }

    /// Delivers every due message of every level to its real topic and
    /// queue; a level stops at its first message not yet due. Under
    /// SYNC_FLUSH only durable schedule entries are read, and held pulls on
    /// the real queues are woken once the copies are durable.
    pub(super) async fn deliver_due(&self) {
        let mut woken: Vec<(String, u32)> = Vec::new();
        let mut end = 0;
        let levels: Vec<u32> =
            self.store.lock().expect("store").queues().into_iter().filter(|(t, _)| t == SCHEDULE_TOPIC).map(|(_, q)| q + 1).collect();
        for level in levels {
            loop {
                let now = self.clock.now_ms();
                let delay = self.config.delay_levels.delay_ms(level);
                let next = self.schedule.lock().expect("schedule").next(level);
                let mut store = self.store.lock().expect("store");
                let visible_end = self.visible_end(&store);
                let got = match store.get_or_rebuild(SCHEDULE_TOPIC, level - 1, next, SCHEDULE_BATCH, visible_end, &|_| true) {
                    Ok(got) => got,
                    Err(e) => {
                        tracing::warn!(level, error = %e, "schedule queue unreadable");
                        break;
                    }
                };
                if matches!(got.status, GetStatus::OffsetTooSmall | GetStatus::OffsetOverflow) {
                    self.schedule.lock().expect("schedule").skip_to(level, got.next_offset);
                    continue;
                }
                let mut progress = next;
                let mut blocked = false;
                for msg in got.messages {
                    let Some(delayed) = msg.delayed.clone() else {
                        if !blocked {
                            tracing::warn!(level, offset = msg.queue_offset, "a schedule entry without a destination is passed over");
                            progress = msg.queue_offset + 1;
                        }
                        continue;
                    };
                    let offset = msg.queue_offset;
                    let due = self.due_ms(level, offset, delayed.deliver_at_ms, now, delay);
                    if blocked || due > now {
                        // Later entries are only looked at, so that a clock
                        // set back is corrected for all of them at once.
                        blocked = true;
                        continue;
                    }
                    let copy = MessageExt {
                        message: crate::model::Message { topic: delayed.topic.clone(), ..msg.message },
                        queue_id: delayed.queue_id,
                        delayed: None,
                        store_size: 0,
                        commit_log_offset: 0,
                        ..msg
                    };
                    match store.put(copy, now) {
                        Ok(put) => {
                            self.corrected.lock().expect("corrected").remove(&(level, offset));
                            end = end.max(put.end_offset);
                            self.schedule.lock().expect("schedule").delivered(level, offset + 1, put.end_offset);
                            woken.push((delayed.topic, delayed.queue_id));
                            marks::reach(Mark::DelayDelivered);
                            progress = offset + 1;
                        }
                        Err(e) => {
                            tracing::warn!(level, error = %e, "a due message could not be delivered; trying again");
                            blocked = true;
                            break;
                        }
                    }
                }
                if progress > next {
                    self.schedule.lock().expect("schedule").skip_to(level, progress);
                }
                drop(store);
                if blocked || progress == next || got.next_offset >= got.max_offset {
                    break;
                }
            }
        }
        self.wake_after_copies(woken, end).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_deliveries_whose_copies_are_durable_are_persisted() {
        let mut p = ScheduleProgress::default();
        p.delivered(3, 1, 100);
        p.delivered(3, 2, 200);
        p.delivered(1, 5, 150);
        assert_eq!(p.next(3), 2);
        assert!(p.take_snapshot().is_none(), "nothing is durable yet");
        p.flushed(160);
        assert_eq!(p.durable(), BTreeMap::from([(1, 5), (3, 1)]));
        let snapshot = p.take_snapshot().unwrap();
        assert!(p.take_snapshot().is_none());
        let back = ScheduleProgress::from_json(&snapshot, |_| u64::MAX).unwrap();
        assert_eq!((back.next(1), back.next(3)), (5, 1), "the delivery past 160 is delivered again");
        let clamped = ScheduleProgress::from_json(&snapshot, |level| if level == 1 { 2 } else { 9 }).unwrap();
        assert_eq!(clamped.next(1), 2);
        p.rewind_to_durable();
        assert_eq!(p.next(3), 1);
        assert!(ScheduleProgress::from_json(b"{", |_| 0).unwrap_err().contains("delay progress"));
    }
}
