//! Queue locks of orderly consumers (RocketMQ's `RebalanceLockManager`).
//!
//! An orderly consumer processes a queue only while it holds the queue's
//! lock on the broker, so a rebalance never has two consumers of a group
//! processing one queue at once. A lock is a lease: the holder renews it
//! (every 20 s in RocketMQ) and it expires `lease` after the last renewal
//! (60 s), so a consumer that died does not hold its queues for ever. The
//! holder itself stops processing well before (its own lease, 30 s, counted
//! from before it asked), so a lock passes to another consumer only after
//! the old holder has stopped.
//!
//! Unlike RocketMQ's in-memory table, who holds which queue is persisted
//! whenever it changes: after a restart every loaded lock counts as renewed
//! at the restart, so a restarted broker cannot hand a queue to a second
//! consumer while the first still processes it. Expiry uses the monotonic
//! clock, so a broker clock set forward expires nothing early.

use crate::bugs::{self, Bug};
use crate::command::{LockBatchMq, Outcome, Refusal, Refused, UnlockBatchMq};
use crate::marks::{self, Mark};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio::time::{Duration, Instant};

/// A queue of a topic: (topic, queue id).
pub type QueueKey = (String, u32);

#[derive(Clone, Debug)]
struct Held {
    client_id: String,
    renewed: Instant,
}

/// Every lock a broker granted: (group, topic, queue) -> holder.
#[derive(Debug)]
pub struct QueueLocks {
    locks: BTreeMap<(String, String, u32), Held>,
    lease: Duration,
    /// Holders changed since the last snapshot.
    dirty: bool,
}

#[derive(Serialize, Deserialize)]
struct Persisted {
    /// (group, topic, queue id, client id).
    locks: Vec<(String, String, u32, String)>,
}

impl QueueLocks {
    /// An empty table whose locks last `lease` after each renewal.
    pub fn new(lease: Duration) -> QueueLocks {
        QueueLocks { locks: BTreeMap::new(), lease, dirty: false }
    }

    /// Loads persisted holders, each renewed `now`.
    pub fn from_json(bytes: &[u8], lease: Duration, now: Instant) -> Result<QueueLocks, String> {
        let persisted: Persisted = serde_json::from_slice(bytes).map_err(|e| format!("queue locks: {e}"))?;
        let locks = persisted
            .locks
            .into_iter()
            .map(|(group, topic, queue_id, client_id)| ((group, topic, queue_id), Held { client_id, renewed: now }))
            .collect();
        Ok(QueueLocks { locks, lease, dirty: false })
    }

    /// Locks (or renews) each queue for `client_id` unless another live
    /// client holds it; returns the queues `client_id` holds now.
    /// `exclusive` false is the planted `lock-not-exclusive` defect.
    pub fn lock(&mut self, group: &str, client_id: &str, queues: &[QueueKey], now: Instant, exclusive: bool) -> Vec<QueueKey> {
        let mut granted = Vec::new();
        for (topic, queue_id) in queues {
            let key = (group.to_string(), topic.clone(), *queue_id);
            let free = match self.locks.get(&key) {
                None => true,
                Some(held) if held.client_id == client_id => true,
                Some(held) if now.saturating_duration_since(held.renewed) >= self.lease => {
                    marks::reach(Mark::LockLeaseExpired);
                    true
                }
                Some(_) => !exclusive,
            };
            if free {
                let old = self.locks.insert(key, Held { client_id: client_id.to_string(), renewed: now });
                self.dirty |= old.is_none_or(|o| o.client_id != client_id);
                granted.push((topic.clone(), *queue_id));
            }
        }
        granted
    }

    /// Releases the queues `client_id` holds among `queues`.
    pub fn unlock(&mut self, group: &str, client_id: &str, queues: &[QueueKey]) {
        for (topic, queue_id) in queues {
            let key = (group.to_string(), topic.clone(), *queue_id);
            if self.locks.get(&key).is_some_and(|h| h.client_id == client_id) {
                self.locks.remove(&key);
                self.dirty = true;
            }
        }
    }

    /// Who holds a queue now, if anyone.
    pub fn holder(&self, group: &str, topic: &str, queue_id: u32, now: Instant) -> Option<&str> {
        let held = self.locks.get(&(group.to_string(), topic.to_string(), queue_id))?;
        (now.saturating_duration_since(held.renewed) < self.lease).then_some(held.client_id.as_str())
    }

    /// Makes the next [`Self::take_snapshot`] write, after a failed write.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// The JSON to persist when holders changed since the last call.
    pub fn take_snapshot(&mut self) -> Option<Vec<u8>> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        let locks = self.locks.iter().map(|((g, t, q), h)| (g.clone(), t.clone(), *q, h.client_id.clone())).collect();
        Some(serde_json::to_vec_pretty(&Persisted { locks }).expect("locks encode"))
    }
}

/// The handlers of [`crate::command::locks`].
impl super::Broker {
    /// Locks (or renews) queues for an orderly consumer: the queues of
    /// the request it holds now.
    pub fn lock_queues(&self, command: LockBatchMq) -> Outcome<Vec<QueueKey>> {
        let LockBatchMq { group, client_id, queues } = command;
        self.refuse_on_slave("a queue lock")?;
        let exclusive = !bugs::active(Bug::LockNotExclusive);
        let _order = self.persisting.lock().expect("persisting");
        let (granted, snapshot) = {
            let mut locks = self.locks.lock().expect("locks");
            let granted = locks.lock(&group, &client_id, &queues, self.clock.instant(), exclusive);
            (granted, locks.take_snapshot())
        };
        self.persist_locks(snapshot)?;
        Ok(granted)
    }

    /// Releases queues an orderly consumer held.
    pub fn unlock_queues(&self, command: UnlockBatchMq) -> Outcome<()> {
        let UnlockBatchMq { group, client_id, queues } = command;
        self.refuse_on_slave("a queue lock")?;
        let _order = self.persisting.lock().expect("persisting");
        let snapshot = {
            let mut locks = self.locks.lock().expect("locks");
            locks.unlock(&group, &client_id, &queues);
            locks.take_snapshot()
        };
        self.persist_locks(snapshot)
    }

    /// Writes the queue locks when their holders changed (the caller holds
    /// `persisting` from the snapshot on); refused when the
    /// disk did not take them (a lock not persisted could pass to a second
    /// consumer after a restart).
    fn persist_locks(&self, snapshot: Option<Vec<u8>>) -> Outcome<()> {
        let Some(bytes) = snapshot else { return Ok(()) };
        self.disk.write_atomic(super::LOCKS_PATH, &bytes).map_err(|e| {
            // Written again with the next change; until then refuse.
            self.locks.lock().expect("locks").mark_dirty();
            Refusal::new(Refused::System, format!("queue locks not persisted: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: u32) -> QueueKey {
        ("orders".to_string(), n)
    }

    #[test]
    fn a_lock_is_exclusive_until_its_lease_runs_out() {
        let lease = Duration::from_secs(60);
        let mut locks = QueueLocks::new(lease);
        let t0 = Instant::now();
        assert_eq!(locks.lock("g", "c1", &[q(0), q(1)], t0, true), vec![q(0), q(1)]);
        assert_eq!(locks.lock("g", "c2", &[q(1), q(2)], t0 + Duration::from_secs(10), true), vec![q(2)]);
        assert_eq!(locks.lock("other-group", "c2", &[q(1)], t0, true), vec![q(1)], "groups lock apart");
        // c1 renews q0 only; q1 runs out 60 s after its last renewal.
        assert_eq!(locks.lock("g", "c1", &[q(0)], t0 + Duration::from_secs(30), true), vec![q(0)]);
        assert_eq!(locks.lock("g", "c2", &[q(0), q(1)], t0 + Duration::from_secs(61), true), vec![q(1)]);
        assert_eq!(locks.holder("g", "orders", 0, t0 + Duration::from_secs(61)), Some("c1"));
        locks.unlock("g", "c2", &[q(0)]);
        assert_eq!(locks.holder("g", "orders", 0, t0 + Duration::from_secs(61)), Some("c1"), "only the holder unlocks");
        locks.unlock("g", "c1", &[q(0)]);
        assert_eq!(locks.lock("g", "c2", &[q(0)], t0 + Duration::from_secs(62), true), vec![q(0)]);
        // The planted defect grants a lock another live client holds.
        assert_eq!(locks.lock("g", "c3", &[q(0)], t0 + Duration::from_secs(62), false), vec![q(0)]);
    }

    #[test]
    fn persisted_locks_count_as_renewed_at_load() {
        let lease = Duration::from_secs(60);
        let mut locks = QueueLocks::new(lease);
        let t0 = Instant::now();
        locks.lock("g", "c1", &[q(0)], t0, true);
        let snapshot = locks.take_snapshot().unwrap();
        assert!(locks.take_snapshot().is_none());
        locks.lock("g", "c1", &[q(0)], t0 + Duration::from_secs(1), true);
        assert!(locks.take_snapshot().is_none(), "a renewal is not a change of holder");
        let later = t0 + Duration::from_secs(100);
        let mut loaded = QueueLocks::from_json(&snapshot, lease, later).unwrap();
        assert_eq!(loaded.lock("g", "c2", &[q(0)], later + Duration::from_secs(59), true), Vec::<QueueKey>::new());
        assert_eq!(loaded.lock("g", "c2", &[q(0)], later + Duration::from_secs(60), true), vec![q(0)]);
        assert!(QueueLocks::from_json(b"[", lease, later).is_err());
    }
}
