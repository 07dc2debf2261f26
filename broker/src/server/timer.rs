//! Timer messages (RocketMQ 5): delivered at any millisecond up to
//! `timerMaxDelaySec` ahead, never before their time on the broker's clock.
//!
//! The timer log is the timer topic's queue: each timer message is stored
//! there with its destination and delivery time. The wheel is an in-memory
//! index of the pending ones by delivery time, rebuilt from the log at open.
//! Which log entries were delivered is persisted
//! (`config/timerProgress.json`) only as far as the delivered copies are
//! durable: after a power loss the timers whose copies the disk lost fire
//! again, never vanish. Delivery is at-least-once like everything else.

use super::Broker;
use crate::bugs::{self, Bug};
use crate::marks::{self, Mark};
use crate::model::{Delayed, MessageExt, TIMER_TOPIC};
use crate::store::{GetStatus, MessageStore};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Where the delivered timer log entries are persisted.
pub(super) const TIMER_PATH: &str = "config/timerProgress.json";

/// The longest the timer service sleeps: a clock set forward is noticed
/// within this.
const TIMER_IDLE_MS: u64 = 1_000;

/// Entries read per batch while rebuilding the wheel.
const SCAN_BATCH: usize = 64;

/// Delivered offsets of the timer log, as disjoint ranges `start..end`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Ranges(BTreeMap<u64, u64>);

impl Ranges {
    fn contains(&self, offset: u64) -> bool {
        self.0
            .range(..=offset)
            .next_back()
            .is_some_and(|(_, &end)| offset < end)
    }

    fn insert(&mut self, offset: u64) {
        if self.contains(offset) {
            return;
        }
        let mut start = offset;
        let mut end = offset + 1;
        if let Some((&s, &e)) = self.0.range(..offset).next_back() {
            if e == offset {
                start = s;
                self.0.remove(&s);
            }
        }
        if let Some(e) = self.0.remove(&end) {
            end = e;
        }
        self.0.insert(start, end);
    }

    /// Forgets ranges below `min` (offsets retention deleted).
    fn trim(&mut self, min: u64) {
        let below: Vec<u64> = self
            .0
            .range(..min)
            .filter(|(_, &e)| e <= min)
            .map(|(&s, _)| s)
            .collect();
        for s in below {
            self.0.remove(&s);
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Persisted {
    /// Durably delivered timer log offsets, as `[start, end)` pairs.
    delivered: Vec<(u64, u64)>,
}

/// The wheel and the delivery progress.
#[derive(Debug, Default)]
pub struct TimerWheel {
    /// Pending timers: (delivery time on the broker's clock, timer log offset).
    pending: BTreeSet<(u64, u64)>,
    /// Offsets whose copies are durable.
    durable: Ranges,
    /// Deliveries whose copies may not be durable yet: (offset, commit log
    /// end after the copy), in the order written.
    unflushed: VecDeque<(u64, u64)>,
    /// Delivered offsets not yet durable, to skip them while rebuilding.
    delivered: BTreeSet<u64>,
    dirty: bool,
}

impl TimerWheel {
    /// Reads persisted progress.
    fn from_json(bytes: &[u8]) -> Result<TimerWheel, String> {
        let persisted: Persisted =
            serde_json::from_slice(bytes).map_err(|e| format!("{TIMER_PATH}: {e}"))?;
        let mut durable = Ranges::default();
        for (start, end) in persisted.delivered {
            if start >= end {
                return Err(format!("{TIMER_PATH}: empty range {start}..{end}"));
            }
            durable.0.insert(start, end);
        }
        Ok(TimerWheel {
            durable,
            ..TimerWheel::default()
        })
    }

    /// Puts a timer on the wheel.
    pub fn add(&mut self, deliver_at_ms: u64, offset: u64) {
        if !self.durable.contains(offset) && !self.delivered.contains(&offset) {
            self.pending.insert((deliver_at_ms, offset));
        }
    }

    /// Timers due at `now_ms`, taken off the wheel.
    fn take_due(&mut self, now_ms: u64) -> Vec<(u64, u64)> {
        let rest = self.pending.split_off(&(now_ms.saturating_add(1), 0));
        std::mem::replace(&mut self.pending, rest)
            .into_iter()
            .collect()
    }

    /// The earliest pending delivery time.
    fn next_due(&self) -> Option<u64> {
        self.pending.first().map(|&(at, _)| at)
    }

    /// The timer at `offset` was delivered by a copy the commit log holds
    /// up to `end_offset`.
    fn delivered(&mut self, offset: u64, end_offset: u64) {
        self.delivered.insert(offset);
        self.unflushed.push_back((offset, end_offset));
    }

    /// The commit log is durable up to `flushed`.
    pub fn flushed(&mut self, flushed: u64) {
        while let Some(&(offset, end)) = self.unflushed.front() {
            if end > flushed {
                break;
            }
            self.unflushed.pop_front();
            self.delivered.remove(&offset);
            self.durable.insert(offset);
            self.dirty = true;
        }
    }

    /// The JSON to persist when durable progress moved since the last call.
    pub fn take_snapshot(&mut self) -> Option<Vec<u8>> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        let delivered = self.durable.0.iter().map(|(&s, &e)| (s, e)).collect();
        Some(serde_json::to_vec(&Persisted { delivered }).expect("timer progress encodes"))
    }

    /// Timers waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no timer waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Rebuilds the wheel from the timer log in `store`: every entry not
    /// durably delivered goes back on it. Deliveries not yet durable are
    /// forgotten first (after a reopen their copies may be gone).
    fn rebuild(&mut self, store: &mut MessageStore) -> crate::error::Result<usize> {
        self.pending.clear();
        self.unflushed.clear();
        self.delivered.clear();
        let (mut offset, end) = store.queue_offsets(TIMER_TOPIC, 0);
        self.durable.trim(offset);
        while offset < end {
            let got =
                store.get_or_rebuild(TIMER_TOPIC, 0, offset, SCAN_BATCH, u64::MAX, &|_| true)?;
            for msg in &got.messages {
                if let Some(delayed) = &msg.delayed {
                    self.add(delayed.deliver_at_ms, msg.queue_offset);
                }
            }
            if got.next_offset <= offset {
                break;
            }
            offset = got.next_offset;
        }
        Ok(self.pending.len())
    }
}

/// Opens the wheel: persisted progress, then every pending timer of the log.
pub(super) fn open_wheel(
    store: &mut MessageStore,
    persisted: Option<&[u8]>,
) -> crate::error::Result<TimerWheel> {
    let corrupt = |reason: String| crate::error::Error::corrupt_file(TIMER_PATH, reason);
    let mut wheel = match persisted {
        None => TimerWheel::default(),
        Some(bytes) => TimerWheel::from_json(bytes).map_err(corrupt)?,
    };
    if bugs::active(Bug::TimersLostOnRestart) {
        // The planted defect: the log is not read back, so timers stored
        // before the restart never fire.
        return Ok(wheel);
    }
    if wheel.rebuild(store)? > 0 {
        marks::reach(Mark::TimersRecovered);
    }
    Ok(wheel)
}

impl Broker {
    /// Turns a message into its timer log entry, bound for the topic and
    /// queue it names now at `deliver_at_ms`.
    pub(super) fn make_timer(&self, msg: &mut MessageExt, deliver_at_ms: u64) {
        let delayed = Delayed {
            topic: std::mem::replace(&mut msg.message.topic, TIMER_TOPIC.to_string()),
            queue_id: std::mem::replace(&mut msg.queue_id, 0),
            level: 0,
            deliver_at_ms,
        };
        msg.delayed = Some(delayed);
    }

    /// A timer log entry was stored at `offset`: on the wheel it goes.
    pub(super) fn timer_added(&self, deliver_at_ms: u64, offset: u64) {
        self.timers
            .lock()
            .expect("timers")
            .add(deliver_at_ms, offset);
        self.timer_wake.notify_one();
    }

    /// After the store was reopened: the wheel is read again from the log.
    pub(super) fn rebuild_timers(&self) {
        let mut store = self.store.lock().expect("store");
        if let Err(e) = self.timers.lock().expect("timers").rebuild(&mut store) {
            tracing::warn!(error = %e, "the timer log could not be read back; timers wait for the next reopen");
        }
    }

    /// The timer service: delivers what is due, then sleeps until the next
    /// timer is due (at most a second, so a clock set forward is noticed),
    /// or a new timer arrives.
    pub(super) async fn run_timers(&self) {
        loop {
            // A slave delivers nothing: its log is a copy of its master's,
            // and a write of its own would part it from the master's
            // (the HA swarm caught a deposed master still delivering).
            if !self.is_slave() {
                self.deliver_timers().await;
            }
            let now = self.clock.now_ms();
            let next = self.timers.lock().expect("timers").next_due();
            let sleep = next.map_or(TIMER_IDLE_MS, |at| {
                at.saturating_sub(now).clamp(1, TIMER_IDLE_MS)
            });
            let _ = tokio::time::timeout(
                std::time::Duration::from_millis(sleep),
                self.timer_wake.notified(),
            )
            .await;
        }
    }

    /// Moves every due timer message to its real topic and queue.
    async fn deliver_timers(&self) {
        let mut now = self.clock.now_ms();
        if bugs::active(Bug::TimerEarly) {
            // The planted defect: timers fire a second early.
            now += 1_000;
        }
        if bugs::active(Bug::TimerLookAhead) {
            // The planted defect: timers up to half a second ahead fire now.
            now += 500;
        }
        let due = self.timers.lock().expect("timers").take_due(now);
        if due.is_empty() {
            return;
        }
        let mut woken: Vec<(String, u32)> = Vec::new();
        let mut end = 0;
        let mut left = Vec::new();
        {
            let mut store = self.store.lock().expect("store");
            let visible_end = self.visible_end(&store);
            for (at, offset) in due {
                let got = match store.get_or_rebuild(
                    TIMER_TOPIC,
                    0,
                    offset,
                    1,
                    visible_end,
                    &|_| true,
                ) {
                    Ok(got) => got,
                    Err(e) => {
                        tracing::warn!(offset, error = %e, "a due timer could not be read; trying again");
                        left.push((at, offset));
                        continue;
                    }
                };
                let Some(msg) = got
                    .messages
                    .into_iter()
                    .next()
                    .filter(|m| m.queue_offset == offset)
                else {
                    if matches!(got.status, GetStatus::NoNew | GetStatus::OffsetOverflow) {
                        // Not readable yet (not durable, or in controller
                        // mode not yet held by the whole sync-state set),
                        // or a power loss cut it: tried again later.
                        left.push((at, offset));
                    }
                    continue;
                };
                let Some(delayed) = msg.delayed.clone() else {
                    continue;
                };
                let copy = MessageExt {
                    message: crate::model::Message {
                        topic: delayed.topic.clone(),
                        ..msg.message
                    },
                    queue_id: delayed.queue_id,
                    delayed: None,
                    store_size: 0,
                    commit_log_offset: 0,
                    ..msg
                };
                match store.put(copy, self.clock.now_ms()) {
                    Ok(put) => {
                        end = end.max(put.end_offset);
                        self.timers
                            .lock()
                            .expect("timers")
                            .delivered(offset, put.end_offset);
                        woken.push((delayed.topic, delayed.queue_id));
                        marks::reach(Mark::TimerDelivered);
                    }
                    Err(e) => {
                        tracing::warn!(offset, error = %e, "a due timer could not be delivered; trying again");
                        left.push((at, offset));
                    }
                }
            }
        }
        if !left.is_empty() {
            let mut timers = self.timers.lock().expect("timers");
            for (at, offset) in left {
                timers.add(at, offset);
            }
        }
        self.wake_after_copies(woken, end).await;
    }

    /// Persists timer progress, as far as the delivered copies are durable.
    pub(super) fn persist_timers(&self) {
        if bugs::active(Bug::TimerProgressNotPersisted) {
            // The planted defect: the wheel's progress lives in memory only.
            return;
        }
        let _order = self.persisting.lock().expect("persisting");
        let flushed = self.store.lock().expect("store").flushed_offset();
        let snapshot = {
            let mut timers = self.timers.lock().expect("timers");
            timers.flushed(flushed);
            timers.take_snapshot()
        };
        if let Some(bytes) = snapshot {
            if let Err(e) = self.disk.write_atomic(TIMER_PATH, &bytes) {
                self.timers.lock().expect("timers").dirty = true;
                tracing::warn!(error = %e, "persisting timer progress failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_trim() {
        let mut r = Ranges::default();
        for o in [3, 1, 2, 7, 5, 6] {
            r.insert(o);
        }
        assert_eq!(r.0, BTreeMap::from([(1, 4), (5, 8)]));
        r.insert(4);
        assert_eq!(r.0, BTreeMap::from([(1, 8)]));
        assert!(r.contains(1) && r.contains(7) && !r.contains(8) && !r.contains(0));
        r.insert(10);
        r.trim(9);
        assert_eq!(r.0, BTreeMap::from([(10, 11)]));
    }

    #[test]
    fn the_wheel_gives_out_due_timers_in_time_order_and_persists_only_durable_deliveries() {
        let mut w = TimerWheel::default();
        w.add(5_000, 0);
        w.add(1_000, 1);
        w.add(1_000, 2);
        assert_eq!(w.next_due(), Some(1_000));
        assert!(w.take_due(999).is_empty());
        assert_eq!(w.take_due(1_000), [(1_000, 1), (1_000, 2)]);
        assert_eq!(w.len(), 1);
        w.delivered(1, 100);
        w.delivered(2, 200);
        w.add(1_000, 1);
        assert_eq!(
            w.len(),
            1,
            "a delivered timer does not go back on the wheel"
        );
        w.flushed(150);
        let snapshot = w.take_snapshot().unwrap();
        assert!(w.take_snapshot().is_none());
        let back = TimerWheel::from_json(&snapshot).unwrap();
        assert!(
            back.durable.contains(1) && !back.durable.contains(2),
            "the delivery past 150 fires again"
        );
        assert!(TimerWheel::from_json(b"{\"delivered\":[[3,3]]}")
            .unwrap_err()
            .contains("empty range"));
    }
}
