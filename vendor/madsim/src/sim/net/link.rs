//! One direction of a simulated connection (mqsim patch).
//!
//! Upstream carried each packet over a channel to a stream on the
//! receiving side, which slept until the packet's arrival time: two wakes
//! of the reading task and a sleep per packet. Here the sender queues a
//! timer that puts the packet in the receiver's buffer when it arrives,
//! and the reader is woken once, by that. The rules are upstream's: a
//! packet's latency is drawn when it is sent; it arrives no sooner than a
//! clock step (the shortest sleep) after it was sent and after the packet
//! before it, so none overtakes another; one sent while the link is down
//! (a partition, a loss) waits, with those after it, until a retry finds
//! the link up again (after 1 ms, then twice as long each time up to
//! 10 s), and then goes.

use super::Payload;
use crate::time::TimeHandle;
use futures_util::Stream;
use spin::Mutex;
use std::{
    collections::VecDeque,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

/// When a packet sent now would arrive, or `None` while the link is down.
pub(crate) type TestLink = Arc<dyn Fn() -> Option<Instant> + Send + Sync>;

pub(crate) struct Link {
    test_link: TestLink,
    time: TimeHandle,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Arrived, not yet read.
    arrived: VecDeque<Payload>,
    /// Sent while the link was down, in order, waiting for it.
    held: VecDeque<Payload>,
    /// Whether a retry of the link is queued.
    retrying: bool,
    /// When the latest packet on its way arrives.
    last_arrival: Option<Instant>,
    /// Packets on their way.
    in_flight: usize,
    sender_gone: bool,
    receiver_gone: bool,
    reader: Option<Waker>,
    /// Tasks waiting for the receiver to go.
    closed_waiters: Vec<Waker>,
}

impl Link {
    /// A link with its sender and its receiver.
    pub(crate) fn new(test_link: TestLink, time: TimeHandle) -> Arc<Link> {
        Arc::new(Link { test_link, time, state: Mutex::new(State::default()) })
    }

    /// A link whose receiver is gone.
    pub(crate) fn dead(time: TimeHandle) -> Arc<Link> {
        let link = Link::new(Arc::new(|| None), time);
        link.state.lock().receiver_gone = true;
        link
    }

    /// Sends `value`; `None` once the receiver is gone.
    pub(crate) fn send(self: &Arc<Self>, value: Payload) -> Option<()> {
        let mut state = self.state.lock();
        if state.receiver_gone {
            return None;
        }
        if !state.held.is_empty() {
            state.held.push_back(value);
            return Some(());
        }
        drop(state);
        // Drawn outside the lock: it takes the network's.
        let arrival = (self.test_link)();
        let mut state = self.state.lock();
        match arrival {
            Some(at) => self.schedule(&mut state, value, at),
            None => {
                state.held.push_back(value);
                if !state.retrying {
                    state.retrying = true;
                    drop(state);
                    self.retry(Duration::from_millis(1));
                }
            }
        }
        Some(())
    }

    /// Queues `value` to arrive at `at`, but no sooner than a clock step
    /// from now and a step after the packet before it: upstream's reader
    /// slept at least a step (the shortest sleep) for each packet, and the
    /// cost model's `clock_step_us` is calibrated on that.
    fn schedule(self: &Arc<Self>, state: &mut State, value: Payload, at: Instant) {
        let step = self.time.min_sleep();
        let at = at.max(self.time.now_instant() + step);
        let at = state.last_arrival.map_or(at, |last| at.max(last + step));
        state.last_arrival = Some(at);
        state.in_flight += 1;
        let link = self.clone();
        self.time.add_timer_at(at, move || {
            let mut state = link.state.lock();
            state.in_flight -= 1;
            if state.receiver_gone {
                return;
            }
            state.arrived.push_back(value);
            if let Some(reader) = state.reader.take() {
                drop(state);
                reader.wake();
            }
        });
    }

    /// Tries the link again after `backoff`; sends what waits once it is up.
    fn retry(self: &Arc<Self>, backoff: Duration) {
        let link = self.clone();
        self.time.add_timer(backoff, move || {
            if link.state.lock().receiver_gone {
                return;
            }
            match (link.test_link)() {
                None => link.retry((backoff * 2).min(Duration::from_secs(10))),
                Some(at) => {
                    let mut state = link.state.lock();
                    state.retrying = false;
                    while let Some(value) = state.held.pop_front() {
                        link.schedule(&mut state, value, at);
                    }
                }
            }
        });
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().receiver_gone
    }

    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.state.lock();
        if state.receiver_gone {
            return Poll::Ready(());
        }
        state.closed_waiters.push(cx.waker().clone());
        Poll::Pending
    }

    /// The sender went: the reader ends once nothing else can come.
    pub(crate) fn drop_sender(&self) {
        let mut state = self.state.lock();
        state.sender_gone = true;
        if let Some(reader) = state.reader.take() {
            drop(state);
            reader.wake();
        }
    }
}

/// The receiving end: a stream of the packets in the order they arrive.
pub(crate) struct LinkReceiver(pub(crate) Arc<Link>);

impl Stream for LinkReceiver {
    type Item = Payload;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Payload>> {
        let mut state = self.0.state.lock();
        if let Some(value) = state.arrived.pop_front() {
            return Poll::Ready(Some(value));
        }
        if state.sender_gone && state.in_flight == 0 && state.held.is_empty() {
            return Poll::Ready(None);
        }
        match &state.reader {
            Some(reader) if reader.will_wake(cx.waker()) => {}
            _ => state.reader = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for LinkReceiver {
    fn drop(&mut self) {
        let mut state = self.0.state.lock();
        state.receiver_gone = true;
        state.arrived.clear();
        state.held.clear();
        let waiters = std::mem::take(&mut state.closed_waiters);
        drop(state);
        for waiter in waiters {
            waiter.wake();
        }
    }
}
