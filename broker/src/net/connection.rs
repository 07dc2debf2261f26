//! The client side of a connection.

use crate::error::{Error, Result};
use crate::protocol::{decode_payload, encode_payload, Frame, FrameCodec, Request, Response, VERSION};
use futures::{SinkExt, StreamExt};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::Framed;

type Pending = Arc<Mutex<BTreeMap<u32, oneshot::Sender<Frame>>>>;

/// One TCP connection to a server, shared by many concurrent requests.
pub struct Connection {
    addr: String,
    outbound: mpsc::Sender<Frame>,
    pending: Pending,
    next_opaque: AtomicU32,
    closed: Arc<AtomicBool>,
    /// Set once to stop both of the connection's tasks.
    shutdown: watch::Sender<bool>,
}

impl Connection {
    /// Connects to `addr` within `timeout`.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Connection> {
        let conn_err = |reason: String| Error::Connection { addr: addr.to_string(), reason };
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => return Err(conn_err(format!("connect timed out after {} ms", timeout.as_millis()))),
            Ok(Err(e)) => return Err(conn_err(e.to_string())),
            Ok(Ok(s)) => s,
        };
        #[cfg(not(madsim))]
        stream.set_nodelay(true).map_err(|e| conn_err(e.to_string()))?;
        let (mut sink, mut stream) = Framed::new(stream, FrameCodec).split();
        let (outbound, mut rx) = mpsc::channel::<Frame>(1024);
        let pending: Pending = Arc::new(Mutex::new(BTreeMap::new()));
        let closed = Arc::new(AtomicBool::new(false));
        let (shutdown, stop) = watch::channel(false);
        {
            let closed = closed.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    let frame = tokio::select! {
                        biased;
                        _ = stop.changed() => break,
                        frame = rx.recv() => frame,
                    };
                    let Some(frame) = frame else { break };
                    if sink.send(frame).await.is_err() {
                        break;
                    }
                }
                closed.store(true, Ordering::Relaxed);
            });
        }
        {
            let pending = pending.clone();
            let closed = closed.clone();
            let mut stop = stop;
            tokio::spawn(async move {
                loop {
                    let next = tokio::select! {
                        biased;
                        _ = stop.changed() => break,
                        next = stream.next() => next,
                    };
                    let Some(Ok(frame)) = next else { break };
                    if !frame.response {
                        continue;
                    }
                    let waiter = pending.lock().expect("pending lock").remove(&frame.opaque);
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(frame);
                    }
                }
                closed.store(true, Ordering::Relaxed);
                // Dropping the senders fails every request still waiting.
                pending.lock().expect("pending lock").clear();
            });
        }
        Ok(Connection { addr: addr.to_string(), outbound, pending, next_opaque: AtomicU32::new(1), closed, shutdown })
    }

    /// Closes the connection: requests still waiting on it fail at once,
    /// later ones find it closed, and its socket is let go.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.pending.lock().expect("pending lock").clear();
        let _ = self.shutdown.send(true);
    }

    /// Whether the connection broke.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed) || self.outbound.is_closed()
    }

    /// Sends a request and waits up to `timeout` for its response.
    pub async fn request(&self, request: &Request, timeout: Duration) -> Result<Response> {
        let payload = encode_payload(request)?;
        let opaque = self.next_opaque.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending lock").insert(opaque, tx);
        let frame = Frame { version: VERSION, response: false, oneway: false, opaque, payload };
        let broken = |reason: &str| Error::Connection { addr: self.addr.clone(), reason: reason.to_string() };
        if self.outbound.send(frame).await.is_err() {
            self.pending.lock().expect("pending lock").remove(&opaque);
            return Err(broken("connection closed"));
        }
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => {
                self.pending.lock().expect("pending lock").remove(&opaque);
                Err(Error::Timeout(timeout.as_millis() as u64))
            }
            Ok(Err(_)) => Err(broken("connection closed while waiting")),
            Ok(Ok(frame)) => decode_payload(&frame.payload),
        }
    }

    /// Sends a request that gets no response.
    pub async fn oneway(&self, request: &Request) -> Result<()> {
        let frame = Frame { version: VERSION, response: false, oneway: true, opaque: 0, payload: encode_payload(request)? };
        self.outbound
            .send(frame)
            .await
            .map_err(|_| Error::Connection { addr: self.addr.clone(), reason: "connection closed".into() })
    }
}

/// One address's place in the pool: its connection, if any. Its lock is
/// held while connecting, so callers for the same address share one
/// attempt and callers for other addresses never wait for it.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

/// Connections by address, reconnecting when one breaks.
#[derive(Clone, Default)]
pub struct ConnectionPool {
    slots: Arc<Mutex<BTreeMap<String, Slot>>>,
}

impl ConnectionPool {
    /// An empty pool.
    pub fn new() -> ConnectionPool {
        ConnectionPool::default()
    }

    fn slot(&self, addr: &str) -> Slot {
        self.slots.lock().expect("pool lock").entry(addr.to_string()).or_default().clone()
    }

    /// A live connection to `addr`, made if needed. Only callers for the
    /// same address wait for a connect in progress.
    pub async fn get(&self, addr: &str, timeout: Duration) -> Result<Arc<Connection>> {
        let slot = self.slot(addr);
        let mut conn = slot.lock().await;
        if let Some(live) = conn.as_ref().filter(|c| !c.is_closed()) {
            return Ok(live.clone());
        }
        let fresh = Arc::new(Connection::connect(addr, timeout).await?);
        *conn = Some(fresh.clone());
        Ok(fresh)
    }

    /// Sends a request to `addr`. A connection that breaks, or whose peer
    /// does not answer in time, is closed (failing the other requests
    /// waiting on it at once, as RocketMQ's `clientCloseSocketIfTimeout`
    /// does) so the next call reconnects instead of waiting on a peer that
    /// may be gone.
    pub async fn request(&self, addr: &str, request: &Request, timeout: Duration) -> Result<Response> {
        let conn = self.get(addr, timeout).await?;
        let result = conn.request(request, timeout).await;
        if matches!(result, Err(Error::Connection { .. }) | Err(Error::Timeout(_))) {
            conn.close();
        }
        result
    }

    /// Sends a oneway request to `addr`.
    pub async fn oneway(&self, addr: &str, request: &Request, timeout: Duration) -> Result<()> {
        self.get(addr, timeout).await?.oneway(request).await
    }

    /// Closes every connection.
    pub async fn clear(&self) {
        let slots: Vec<Slot> = std::mem::take(&mut *self.slots.lock().expect("pool lock")).into_values().collect();
        for slot in slots {
            if let Some(conn) = slot.lock().await.take() {
                conn.close();
            }
        }
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::namesrv::{NameServer, NameServerConfig};
    use std::time::Instant;
    use tokio::net::TcpListener;

    async fn name_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(NameServer::new(NameServerConfig::default(), Clock::new()).serve(listener));
        addr
    }

    /// Regression: the pool held its lock while connecting, so one address
    /// whose connect hung (up to its timeout) held up every request of the
    /// client to every other address. A listener whose accept queue is
    /// full makes a connect hang: the kernel drops the handshake.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connect_that_hangs_holds_up_no_other_address() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let full = socket.listen(1).unwrap();
        let full_addr = full.local_addr().unwrap();
        let mut filled = Vec::new();
        let hangs = loop {
            match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(full_addr)).await {
                Ok(Ok(stream)) if filled.len() < 64 => filled.push(stream),
                Ok(_) => break false,
                Err(_) => break true,
            }
        };
        assert!(hangs, "could not make a connect hang here (accept queue never filled)");
        let answering = name_server().await;
        let pool = ConnectionPool::new();
        let hanging = pool.clone();
        let stuck = tokio::spawn(async move { hanging.get(&full_addr.to_string(), Duration::from_secs(10)).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let start = Instant::now();
        pool.request(&answering, &Request::GetClusterInfo, Duration::from_secs(5)).await.expect("the name server answers");
        let waited = start.elapsed();
        stuck.abort();
        assert!(waited < Duration::from_secs(3), "a request to another address waited {waited:?} for a hanging connect");
    }

    /// Forwards connections to `target` while `forward` is set; otherwise
    /// takes them and stays silent, as a peer that lost power does (no
    /// reset ever comes).
    async fn switch(target: String, forward: Arc<AtomicBool>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let mut silent = Vec::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                if forward.load(Ordering::Relaxed) {
                    let target = target.clone();
                    tokio::spawn(async move {
                        let mut outbound = TcpStream::connect(target).await.unwrap();
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    });
                } else {
                    silent.push(inbound);
                }
            }
        });
        addr
    }

    /// Regression: a request that timed out left its connection in the
    /// pool, and a peer that went silent without a reset (power loss, a
    /// dropped route) made every later request go down the dead connection
    /// and time out too. A timeout now closes the connection, so the next
    /// request reconnects.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_that_times_out_closes_its_connection_and_the_next_reconnects() {
        let forward = Arc::new(AtomicBool::new(false));
        let addr = switch(name_server().await, forward.clone()).await;
        let pool = ConnectionPool::new();
        let silent = pool.request(&addr, &Request::GetClusterInfo, Duration::from_millis(300)).await;
        assert!(matches!(silent, Err(Error::Timeout(_))), "{silent:?}");
        forward.store(true, Ordering::Relaxed);
        let next = pool.request(&addr, &Request::GetClusterInfo, Duration::from_secs(3)).await;
        assert!(next.is_ok(), "the request after a timeout went down the dead connection: {next:?}");
    }
}
