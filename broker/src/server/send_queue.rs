//! The send queue: back-pressure on producers.
//!
//! RocketMQ writes sends on a pool of `sendMessageThreadPoolNums` threads
//! fed by a queue of at most `sendThreadPoolQueueCapacity` requests, and
//! answers SYSTEM_BUSY ("[TIMEOUT_CLEAN_QUEUE]") to a send that waited in
//! that queue past `waitTimeMillsInSendQueue`, and at once ("[OVERLOAD]")
//! to one that finds the queue full. The producer then tries another
//! broker, and a broker that cannot keep up keeps serving at its capacity
//! with bounded memory instead of holding every send a flood brings.
//!
//! A send whose handling starts past `send_queue_wait_ms` after its
//! request was read (a broker short of CPU) is refused before any work is
//! spent on it.
//!
//! Then a producer's send takes one of `send_workers` turns to write to
//! the store and gives it back once written, before it waits for its fsync
//! or its slaves (RocketMQ's asynchronous put does the same), so the turns
//! bound the writers, not the sends waiting for durability. A send that
//! finds a turn free takes it without waiting; the rest queue for one.
//! Under the simulator a turn is taken and given back within one poll (no
//! await between), so the queue never forms there: the testbed's cost
//! model plays this part in virtual time (`sim/src/cost.rs`).

use crate::command::{Refusal, Refused};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// The sends queued for a turn to write, and the bounds on them.
#[derive(Debug)]
pub(super) struct SendQueue {
    turns: Semaphore,
    /// Sends waiting for a turn.
    waiting: AtomicUsize,
    capacity: usize,
    wait_max: Duration,
    /// Sends refused busy since start.
    refused: AtomicU64,
}

/// The right to write a send to the store; given back when dropped.
pub(super) type Turn<'a> = SemaphorePermit<'a>;

impl SendQueue {
    /// `workers` turns, at most `capacity` sends waiting, each at most `wait_max`.
    pub(super) fn new(workers: u32, capacity: usize, wait_max: Duration) -> SendQueue {
        SendQueue {
            turns: Semaphore::new(workers.max(1) as usize),
            waiting: AtomicUsize::new(0),
            capacity,
            wait_max,
            refused: AtomicU64::new(0),
        }
    }

    /// A send read at `arrived` starts now: refused busy if it waited
    /// past the bound.
    pub(super) fn started(&self, arrived: Instant) -> Result<(), Refusal> {
        let waited = arrived.elapsed();
        if waited > self.wait_max {
            return Err(self.timed_out(waited));
        }
        Ok(())
    }

    fn overload(&self) -> Refusal {
        self.refused.fetch_add(1, Ordering::Relaxed);
        Refusal::new(
            Refused::Busy,
            format!("[OVERLOAD]system busy, start flow control for a while: the send queue holds its {} sends", self.capacity),
        )
    }

    fn timed_out(&self, waited: Duration) -> Refusal {
        self.refused.fetch_add(1, Ordering::Relaxed);
        Refusal::new(
            Refused::Busy,
            format!(
                "[TIMEOUT_CLEAN_QUEUE]broker busy, start flow control for a while, period in queue: {}ms, size of queue: {}",
                waited.as_millis(),
                self.waiting.load(Ordering::Acquire)
            ),
        )
    }

    /// A turn to write, or SYSTEM_BUSY when the queue is full or the wait
    /// for a turn runs past its bound.
    pub(super) async fn turn(&self) -> Result<Turn<'_>, Refusal> {
        if let Ok(turn) = self.turns.try_acquire() {
            return Ok(turn);
        }
        let queued = self.waiting.fetch_add(1, Ordering::AcqRel) + 1;
        let _leave = Leave(&self.waiting);
        if queued > self.capacity {
            return Err(self.overload());
        }
        match tokio::time::timeout(self.wait_max, self.turns.acquire()).await {
            Ok(Ok(turn)) => Ok(turn),
            Ok(Err(_)) => unreachable!("the send queue's semaphore is never closed"),
            Err(_) => Err(self.timed_out(self.wait_max)),
        }
    }

    /// Sends refused busy since start.
    pub(super) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Sends waiting for a turn now.
    pub(super) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

/// Leaves the queue when dropped, however the wait ended.
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::command::SendMessage;
    use crate::model::Message;
    use crate::server::test_disk::GatedDisk;
    use crate::server::{Broker, BrokerConfig};
    use std::sync::Arc;

    fn send(body: &str) -> SendMessage {
        SendMessage {
            producer_group: "pg".into(),
            queue_id: 0,
            message: Message::new("orders", body.as_bytes().to_vec()),
            born_timestamp_ms: 0,
            born_host: "test".into(),
            default_topic_queues: 1,
        }
    }

    /// The broker's sends go through the queue: with one writer stuck for
    /// 300 ms, a send behind it is refused busy after 100 ms, counted in
    /// the runtime figures, and the stuck one is stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broker_refuses_busy_a_send_that_waits_past_its_bound_behind_a_stuck_writer() {
        let disk = GatedDisk::default();
        let mut config = BrokerConfig::new("broker-a", "127.0.0.1:0");
        config.send_workers = 1;
        config.send_queue_wait_ms = 100;
        let broker = Broker::open(config, Arc::new(disk.clone()), Clock::new()).unwrap();
        let peer = "127.0.0.1:1".parse().unwrap();
        broker.send(send("warm"), peer).await.expect("the topic is made and a send stored");
        disk.slow_appends.store(true, Ordering::SeqCst);
        let stuck = {
            let broker = broker.clone();
            tokio::spawn(async move { broker.send(send("stuck"), peer).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refusal = broker.send(send("behind"), peer).await.expect_err("the writer is stuck past the bound");
        assert_eq!(refusal.kind, Refused::Busy);
        assert!(refusal.reason.starts_with("[TIMEOUT_CLEAN_QUEUE]"), "{}", refusal.reason);
        stuck.await.unwrap().expect("the stuck send is stored in the end");
        disk.slow_appends.store(false, Ordering::SeqCst);
        let info = broker.runtime_info().unwrap();
        assert_eq!((info.put_count, info.send_busy), (2, 1));
    }

    #[tokio::test]
    async fn a_send_that_waits_past_the_bound_is_refused_busy_and_a_free_turn_is_taken_at_once() {
        let queue = SendQueue::new(1, 10, Duration::from_millis(50));
        let held = queue.turn().await.expect("a free turn");
        let refusal = queue.turn().await.expect_err("no turn frees within the bound");
        assert_eq!(refusal.kind, Refused::Busy);
        assert!(refusal.reason.starts_with("[TIMEOUT_CLEAN_QUEUE]"), "{}", refusal.reason);
        assert_eq!((queue.refused(), queue.waiting()), (1, 0));
        drop(held);
        drop(queue.turn().await.expect("the turn is free again"));
    }

    #[tokio::test]
    async fn a_send_whose_handling_starts_past_the_bound_after_it_was_read_is_refused_busy() {
        let queue = SendQueue::new(4, 2, Duration::from_millis(20));
        let read = Instant::now();
        queue.started(read).expect("started at once");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refusal = queue.started(read).expect_err("started 50 ms after it was read");
        assert!(refusal.reason.starts_with("[TIMEOUT_CLEAN_QUEUE]"), "{}", refusal.reason);
        assert_eq!((queue.refused(), queue.waiting()), (1, 0));
    }

    #[tokio::test]
    async fn a_send_that_finds_the_queue_full_is_refused_at_once() {
        let queue = Arc::new(SendQueue::new(1, 2, Duration::from_secs(5)));
        let held = queue.turn().await.expect("a free turn");
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let queue = queue.clone();
                tokio::spawn(async move { queue.turn().await.map(drop) })
            })
            .collect();
        while queue.waiting() < 2 {
            tokio::task::yield_now().await;
        }
        let refusal = queue.turn().await.expect_err("the queue is full");
        assert!(refusal.reason.starts_with("[OVERLOAD]"), "{}", refusal.reason);
        drop(held);
        for waiter in waiters {
            waiter.await.unwrap().expect("a queued send gets its turn once one is free");
        }
        assert_eq!((queue.refused(), queue.waiting()), (1, 0));
    }
}
