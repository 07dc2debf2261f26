//! The client side of a connection.

use crate::error::{Error, Result};
use crate::protocol::{decode_payload, encode_payload, Frame, FrameCodec, Request, Response, VERSION};
use futures::{SinkExt, StreamExt};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Framed;

type Pending = Arc<Mutex<BTreeMap<u32, oneshot::Sender<Frame>>>>;

/// One TCP connection to a server, shared by many concurrent requests.
pub struct Connection {
    addr: String,
    outbound: mpsc::Sender<Frame>,
    pending: Pending,
    next_opaque: AtomicU32,
    closed: Arc<AtomicBool>,
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
        {
            let closed = closed.clone();
            tokio::spawn(async move {
                while let Some(frame) = rx.recv().await {
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
            tokio::spawn(async move {
                while let Some(Ok(frame)) = stream.next().await {
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
        Ok(Connection { addr: addr.to_string(), outbound, pending, next_opaque: AtomicU32::new(1), closed })
    }

    /// Whether the connection broke.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed) || self.outbound.is_closed()
    }

    /// Sends a request and waits up to `timeout` for its response.
    pub async fn request(&self, request: &Request, timeout: Duration) -> Result<Response> {
        let opaque = self.next_opaque.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending lock").insert(opaque, tx);
        let frame = Frame { version: VERSION, response: false, oneway: false, opaque, payload: encode_payload(request) };
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
        let frame = Frame { version: VERSION, response: false, oneway: true, opaque: 0, payload: encode_payload(request) };
        self.outbound
            .send(frame)
            .await
            .map_err(|_| Error::Connection { addr: self.addr.clone(), reason: "connection closed".into() })
    }
}

/// Connections by address, reconnecting when one breaks.
#[derive(Clone, Default)]
pub struct ConnectionPool {
    conns: Arc<tokio::sync::Mutex<BTreeMap<String, Arc<Connection>>>>,
}

impl ConnectionPool {
    /// An empty pool.
    pub fn new() -> ConnectionPool {
        ConnectionPool::default()
    }

    /// A live connection to `addr`, made if needed.
    pub async fn get(&self, addr: &str, timeout: Duration) -> Result<Arc<Connection>> {
        let mut conns = self.conns.lock().await;
        if let Some(conn) = conns.get(addr) {
            if !conn.is_closed() {
                return Ok(conn.clone());
            }
        }
        let conn = Arc::new(Connection::connect(addr, timeout).await?);
        conns.insert(addr.to_string(), conn.clone());
        Ok(conn)
    }

    /// Sends a request to `addr`; a broken connection is dropped so the next
    /// call reconnects.
    pub async fn request(&self, addr: &str, request: &Request, timeout: Duration) -> Result<Response> {
        let conn = self.get(addr, timeout).await?;
        let result = conn.request(request, timeout).await;
        if matches!(result, Err(Error::Connection { .. }) | Err(Error::Timeout(_))) && conn.is_closed() {
            self.conns.lock().await.remove(addr);
        }
        result
    }

    /// Sends a oneway request to `addr`.
    pub async fn oneway(&self, addr: &str, request: &Request, timeout: Duration) -> Result<()> {
        self.get(addr, timeout).await?.oneway(request).await
    }

    /// Closes every connection.
    pub async fn clear(&self) {
        self.conns.lock().await.clear();
    }
}
