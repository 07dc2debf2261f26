//! The vendored madsim's patches (vendor/README.md): the timer queue (a
//! sleep wakes its task once, at its deadline, and never after it was
//! dropped, finished or moved) and the links of a TCP connection (packets
//! arrive in order, none lost, those sent during a partition after it).
//! Run with `cargo xtask test`.
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

#[madsim::test]
async fn a_connection_delivers_every_write_in_order_across_a_partition() {
    use madsim::net::NetSim;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let handle = madsim::runtime::Handle::current();
    let server_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1)), 7000);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<(Vec<u32>, Vec<Duration>)>();
    let server = handle
        .create_node()
        .name("server")
        .ip(server_addr.ip())
        .build();
    let client = handle
        .create_node()
        .name("client")
        .ip(IpAddr::V4(Ipv4Addr::new(10, 9, 0, 2)))
        .build();
    server.spawn(async move {
        let listener = tokio::net::TcpListener::bind(server_addr).await.expect("bind");
        let (mut stream, _) = listener.accept().await.expect("accept");
        let (start, mut got, mut at) = (Instant::now(), Vec::new(), Vec::new());
        let mut word = [0u8; 4];
        while stream.read_exact(&mut word).await.is_ok() {
            got.push(u32::from_be_bytes(word));
            at.push(start.elapsed());
        }
        let _ = done_tx.send((got, at));
    });
    let (server_id, client_id) = (server.id(), client.id());
    client.spawn(async move {
        sleep(Duration::from_millis(10)).await;
        let mut stream = tokio::net::TcpStream::connect(server_addr).await.expect("connect");
        for n in 0u32..100 {
            if n == 40 {
                NetSim::current().clog_link(client_id, server_id);
            }
            if n == 60 {
                // Written while cut off: must wait for the link, in order.
                sleep(Duration::from_secs(2)).await;
                NetSim::current().unclog_link(client_id, server_id);
            }
            stream.write_all(&n.to_be_bytes()).await.expect("write");
            stream.flush().await.expect("flush");
            sleep(Duration::from_millis(5)).await;
        }
    });
    let (got, at) = done_rx.await.expect("server reports");
    assert_eq!(got, (0..100).collect::<Vec<u32>>(), "every write, once, in order");
    // What was written during the cut arrived after it healed (about 2.2 s
    // after the first write), not before.
    assert!(at[40] >= Duration::from_secs(2), "write 40 arrived at {:?}, during the partition", at[40]);
}
