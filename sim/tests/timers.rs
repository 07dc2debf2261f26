//! The vendored madsim's timer queue (vendor/README.md, fourth patch): a
//! sleep wakes its task once, at its deadline, and never after it was
//! dropped, finished or moved. Run with `cargo xtask test`.
#![cfg(madsim)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{sleep, timeout, Instant};

/// Counts how often its task polls the wrapped future.
struct Counted<F> {
    inner: Pin<Box<F>>,
    polls: Arc<AtomicUsize>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        self.inner.as_mut().poll(cx)
    }
}

fn counted<F: Future>(inner: F) -> (Counted<F>, Arc<AtomicUsize>) {
    let polls = Arc::new(AtomicUsize::new(0));
    (Counted { inner: Box::pin(inner), polls: polls.clone() }, polls)
}

#[madsim::test]
async fn a_timeout_that_finished_early_does_not_wake_its_task_at_its_deadline() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (waiting, polls) = counted(async move {
        let quick = timeout(Duration::from_secs(10), sleep(Duration::from_millis(5))).await;
        assert!(quick.is_ok(), "the inner sleep ends long before the timeout");
        rx.await.expect("sender kept");
    });
    let task = tokio::spawn(waiting);
    sleep(Duration::from_secs(30)).await;
    // Polled at the start and when the inner sleep ended; the timeout's
    // deadline at 10 s must not have woken it.
    assert_eq!(polls.load(Ordering::Relaxed), 2, "a dropped timeout woke its task");
    tx.send(()).expect("task waits");
    task.await.expect("task ends");
    assert_eq!(polls.load(Ordering::Relaxed), 3);
}

#[madsim::test]
async fn a_sleep_polled_many_times_ends_at_its_deadline_with_one_wake() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
    let (waiting, polls) = counted(async move {
        let deadline = sleep(Duration::from_secs(5));
        tokio::pin!(deadline);
        let mut seen = 0;
        loop {
            tokio::select! {
                biased;
                _ = &mut deadline => break,
                Some(_) = rx.recv() => seen += 1,
            }
        }
        seen
    });
    let task = tokio::spawn(waiting);
    for n in 0..10 {
        sleep(Duration::from_millis(100)).await;
        tx.send(n).expect("task listens");
    }
    let start = Instant::now();
    let seen = task.await.expect("task ends");
    assert_eq!(seen, 10);
    assert!(start.elapsed() >= Duration::from_secs(3), "the sleep ended at its deadline");
    // One poll to start, one per message, one at the deadline: the ten
    // polls while the sleep was pending did not queue ten more wake-ups.
    assert_eq!(polls.load(Ordering::Relaxed), 12);
}

#[madsim::test]
async fn a_reset_sleep_fires_at_its_new_deadline_only() {
    let start = Instant::now();
    let (waiting, polls) = counted(async move {
        let pause = sleep(Duration::from_secs(1));
        tokio::pin!(pause);
        // Register the first deadline, then move it.
        assert!(futures::poll!(pause.as_mut()).is_pending());
        pause.as_mut().reset(Instant::now() + Duration::from_secs(4));
        pause.await;
        Instant::now()
    });
    let ended = waiting.await;
    assert!(ended - start >= Duration::from_secs(4), "ended after {:?}", ended - start);
    // The first deadline did not wake it: one poll to start, one at 4 s.
    assert_eq!(polls.load(Ordering::Relaxed), 2);
}
