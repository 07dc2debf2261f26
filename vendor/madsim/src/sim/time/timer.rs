//! The timer queue of a runtime (mqsim patch).
//!
//! Upstream used `naive_timer`, a heap of boxed callbacks without
//! cancellation, and every poll of a pending `Sleep` pushed one more
//! callback holding a clone of the waker. A timeout around a request that
//! finished early therefore still woke its task when the timeout's deadline
//! came, and a task polled ten times while it slept woke ten times. Here a
//! `Sleep` owns one [`SleepSlot`]: the queue holds the slot once, a later
//! poll only replaces the waker in it, and a dropped or finished `Sleep`
//! empties the slot so its entry wakes nobody and does not move the clock.
//!
//! Entries are ordered by deadline, then by the order they were added, so
//! timers due at the same instant fire first-in first-out whatever the
//! heap's shape.

use futures_util::task::AtomicWaker;
use std::{
    cmp::Ordering,
    collections::BinaryHeap,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed},
        Arc,
    },
    task::Waker,
    time::Duration,
};

/// What a `Sleep` shares with its entry in the queue.
pub(crate) struct SleepSlot {
    waker: AtomicWaker,
    live: AtomicBool,
    /// The queue's count of entries whose slot was cancelled while queued.
    cancelled: Arc<AtomicUsize>,
}

impl SleepSlot {
    /// Replaces the waker the entry will wake.
    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// Whether the entry has neither fired nor been cancelled.
    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Relaxed)
    }

    /// The `Sleep` is gone or done: its entry wakes nobody.
    pub(crate) fn cancel(&self) {
        if self.live.swap(false, Relaxed) {
            self.cancelled.fetch_add(1, Relaxed);
            drop(self.waker.take());
        }
    }
}

enum Action {
    Wake(Arc<SleepSlot>),
    Call(Box<dyn FnOnce() + Send + Sync>),
}

struct Entry {
    deadline: Duration,
    seq: u64,
    action: Action,
}

impl Entry {
    fn is_cancelled(&self) -> bool {
        matches!(&self.action, Action::Wake(slot) if !slot.live.load(Relaxed))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    // `BinaryHeap` is a max-heap: the earliest entry compares greatest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

/// A due timer, taken out of the queue.
pub(crate) struct Fired(Action);

impl Fired {
    /// Calls its callback or wakes its sleep's task.
    pub(crate) fn fire(self) {
        match self.0 {
            Action::Call(callback) => callback(),
            Action::Wake(slot) => {
                if let Some(waker) = slot.waker.take() {
                    waker.wake();
                }
            }
        }
    }
}

/// Timers of one runtime, due at offsets from its base instant.
#[derive(Default)]
pub(crate) struct Timer {
    heap: BinaryHeap<Entry>,
    seq: u64,
    cancelled: Arc<AtomicUsize>,
}

impl Timer {
    /// Calls `callback` once the clock reaches `deadline`.
    pub(crate) fn add(&mut self, deadline: Duration, callback: impl FnOnce() + Send + Sync + 'static) {
        self.push(deadline, Action::Call(Box::new(callback)));
    }

    /// Wakes `waker` once the clock reaches `deadline`, unless the returned
    /// slot is cancelled first.
    pub(crate) fn add_sleep(&mut self, deadline: Duration, waker: &Waker) -> Arc<SleepSlot> {
        let slot = Arc::new(SleepSlot {
            waker: AtomicWaker::new(),
            live: AtomicBool::new(true),
            cancelled: self.cancelled.clone(),
        });
        slot.register(waker);
        self.push(deadline, Action::Wake(slot.clone()));
        slot
    }

    fn push(&mut self, deadline: Duration, action: Action) {
        self.seq += 1;
        self.heap.push(Entry { deadline, seq: self.seq, action });
        self.compact();
    }

    /// Takes the earliest entry due at or before `now`, if any. The caller
    /// fires it (with [`Fired::fire`]) after letting go of the queue, so a
    /// callback may queue timers of its own.
    pub(crate) fn pop_due(&mut self, now: Duration) -> Option<Fired> {
        while self.heap.peek().is_some_and(|e| e.deadline <= now) {
            let entry = self.heap.pop().expect("peeked");
            match entry.action {
                Action::Call(callback) => return Some(Fired(Action::Call(callback))),
                Action::Wake(slot) => {
                    if slot.live.swap(false, Relaxed) {
                        return Some(Fired(Action::Wake(slot)));
                    }
                    self.cancelled.fetch_sub(1, Relaxed);
                }
            }
        }
        None
    }

    /// The deadline of the earliest live entry; cancelled ones before it
    /// are dropped.
    pub(crate) fn next(&mut self) -> Option<Duration> {
        while self.heap.peek().is_some_and(Entry::is_cancelled) {
            self.heap.pop();
            self.cancelled.fetch_sub(1, Relaxed);
        }
        self.heap.peek().map(|e| e.deadline)
    }

    /// Drops cancelled entries once they are most of a large queue, so long
    /// timeouts that finished early do not pile up.
    fn compact(&mut self) {
        let before = self.heap.len();
        if before >= 4096 && self.cancelled.load(Relaxed) * 2 > before {
            self.heap.retain(|e| !e.is_cancelled());
            self.cancelled.fetch_sub(before - self.heap.len(), Relaxed);
        }
    }
}
