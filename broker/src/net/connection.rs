//! One connection, either side: requests go both ways over it, each with
//! an id (the frame's opaque) and a timeout, and the responses find their
//! requests by that id. A client connects and may serve requests the server
//! sends it (a broker's transaction check-back); a server accepts and may
//! call the client back over the same socket.

use crate::error::{Error, Result};
use crate::protocol::{decode_payload, encode_payload, Call, Frame, FrameCodec, Request, Response, ResponseCode, VERSION};
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::Framed;

type Pending = Arc<Mutex<BTreeMap<u32, oneshot::Sender<Frame>>>>;

/// Requests read by every connection of this process, by kind (the
/// simulator's timing aid shows which requests a seed's time went to).
static READ: [AtomicU64; Request::NAMES.len()] = [const { AtomicU64::new(0) }; Request::NAMES.len()];

/// How many requests of each kind this process's connections have read
/// so far, by name, the kinds never read left out.
pub fn requests_read() -> Vec<(&'static str, u64)> {
    Request::NAMES.iter().zip(&READ).map(|(name, n)| (*name, n.load(Ordering::Relaxed))).filter(|(_, n)| *n > 0).collect()
}

/// What serves the requests a connection's peer sends.
pub trait Inbound: Send + Sync + 'static {
    /// Answers one request that came on `conn`.
    fn handle(self: Arc<Self>, request: Request, conn: Arc<Connection>) -> BoxFuture<'static, Response>;

    /// [`Inbound::handle`] for a request read at `arrived` (a broker
    /// refuses a send that waited too long since); by default the time is
    /// not looked at.
    fn handle_at(self: Arc<Self>, request: Request, conn: Arc<Connection>, arrived: tokio::time::Instant) -> BoxFuture<'static, Response> {
        let _ = arrived;
        self.handle(request, conn)
    }
}

/// Refuses every request: the side of a connection that serves nothing.
struct ServesNothing;

impl Inbound for ServesNothing {
    fn handle(self: Arc<Self>, request: Request, _conn: Arc<Connection>) -> BoxFuture<'static, Response> {
        let refusal = Response::error(ResponseCode::RequestNotSupported, format!("{} is not served on this side of the connection", request.name()));
        Box::pin(async move { refusal })
    }
}

/// Requests from one peer handled at once at most, long polls aside; the
/// next is read once one of them is answered. Under a flood this bounds
/// the memory a connection holds, and the work a broker short of CPU
/// spends on requests whose senders have given up (`memory-bench`: at
/// 1,024 a broker at ten times its capacity held four times the memory
/// and stored half as many sends).
pub const REQUESTS_IN_FLIGHT_MAX: usize = 256;
/// Long polls (pulls and POP receives, held until messages come) from one
/// peer at once at most: one a queue a consumer owns, so far more than a
/// consumer's queues on one broker.
pub const LONG_POLLS_IN_FLIGHT_MAX: usize = 4096;

/// Frames a connection writes together at most, flushed once.
const BURST_FRAMES_MAX: usize = 64;

/// One TCP connection, shared by many concurrent requests in either direction.
pub struct Connection {
    addr: String,
    outbound: mpsc::Sender<Frame>,
    pending: Pending,
    next_opaque: AtomicU32,
    closed: Arc<AtomicBool>,
    /// Set once to stop both of the connection's tasks.
    shutdown: watch::Sender<bool>,
    /// Cancelled with `shutdown`: stops a write stuck on a peer that does
    /// not read. (A token, not a second `watch` poll, which would draw from
    /// tokio's thread RNG and move every simulated history.)
    cancel: tokio_util::sync::CancellationToken,
}

impl Connection {
    /// Connects to `addr` within `timeout`; requests the server sends over
    /// it are refused.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Arc<Connection>> {
        Connection::connect_serving(addr, timeout, Arc::new(ServesNothing)).await
    }

    /// Connects to `addr` within `timeout`; `inbound` answers the requests
    /// the server sends over it.
    pub async fn connect_serving(addr: &str, timeout: Duration, inbound: Arc<dyn Inbound>) -> Result<Arc<Connection>> {
        let conn_err = |reason: String| Error::Connection { addr: addr.to_string(), reason };
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => return Err(conn_err(format!("connect timed out after {} ms", timeout.as_millis()))),
            Ok(Err(e)) => return Err(conn_err(e.to_string())),
            Ok(Ok(s)) => s,
        };
        stream.set_nodelay(true).map_err(|e| conn_err(e.to_string()))?;
        Ok(Connection::start(stream, addr.to_string(), inbound, || {}))
    }

    /// Runs a connection over `stream` (connected or accepted): `peer` names
    /// the other side in errors and logs, `inbound` answers its requests,
    /// and `on_close` runs once the stream ends or breaks.
    pub fn start<S>(stream: S, peer: String, inbound: Arc<dyn Inbound>, on_close: impl FnOnce() + Send + 'static) -> Arc<Connection>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let framed = Framed::new(stream, FrameCodec);
        let (mut sink, mut frames) = framed.split();
        let (outbound, mut rx) = mpsc::channel::<Frame>(1024);
        let (shutdown, stop) = watch::channel(false);
        let cancel = tokio_util::sync::CancellationToken::new();
        let conn = Arc::new(Connection {
            cancel: cancel.clone(),
            addr: peer,
            outbound,
            pending: Arc::new(Mutex::new(BTreeMap::new())),
            next_opaque: AtomicU32::new(1),
            closed: Arc::new(AtomicBool::new(false)),
            shutdown,
        });
        {
            let closed = conn.closed.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    let frame = tokio::select! {
                        biased;
                        _ = stop.changed() => break,
                        frame = rx.recv() => frame,
                    };
                    let Some(frame) = frame else { break };
                    // Frames queued meanwhile go out with it, flushed once:
                    // under load a burst of answers is one write, not one
                    // each. A peer that stops reading fills its socket; a
                    // close must not wait for it.
                    let burst = async {
                        sink.feed(frame).await?;
                        for _ in 1..BURST_FRAMES_MAX {
                            let Ok(next) = rx.try_recv() else { break };
                            sink.feed(next).await?;
                        }
                        sink.flush().await
                    };
                    let sent = tokio::select! {
                        biased;
                        _ = cancel.cancelled() => break,
                        sent = burst => sent,
                    };
                    if sent.is_err() {
                        break;
                    }
                }
                closed.store(true, Ordering::Relaxed);
            });
        }
        // The reader holds the connection while the stream lasts, so an
        // accepted connection lives without anyone else keeping it.
        let reader = conn.clone();
        let mut stop = stop;
        let in_flight = Arc::new(tokio::sync::Semaphore::new(REQUESTS_IN_FLIGHT_MAX));
        let long_polls = Arc::new(tokio::sync::Semaphore::new(LONG_POLLS_IN_FLIGHT_MAX));
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    next = frames.next() => next,
                };
                let frame = match next {
                    None => break,
                    Some(Ok(frame)) => frame,
                    Some(Err(crate::Error::Store(crate::store::StoreError::Io(e)))) => {
                        // The socket broke (the peer reset it).
                        tracing::debug!(error = %e, "connection broke");
                        break;
                    }
                    Some(Err(e)) => {
                        // Bad framing cannot be resynchronised: drop the connection.
                        tracing::warn!(error = %e, "closing a connection after a malformed frame");
                        break;
                    }
                };
                let conn = reader.clone();
                if frame.response {
                    let waiter = conn.pending.lock().expect("pending lock").remove(&frame.opaque);
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(frame);
                    }
                    continue;
                }
                let request = if frame.version != VERSION {
                    Err(Response::error(
                        ResponseCode::UnsupportedVersion,
                        format!("protocol version {} is not supported; this side speaks {VERSION}", frame.version),
                    ))
                } else {
                    decode_payload::<Request>(&frame.payload).map_err(|e| Response::error(ResponseCode::BadRequest, e.to_string()))
                };
                // A peer with this many requests unanswered is not read
                // from until one is answered: its socket fills and its
                // writes wait, instead of this side's memory growing (and
                // its work going stale). Long polls, held until messages
                // come, have a bound of their own.
                if let Ok(request) = &request {
                    READ[request.index()].fetch_add(1, Ordering::Relaxed);
                }
                let bound = match request {
                    Ok(Request::PullMessage(_) | Request::PopMessage(_)) => &long_polls,
                    _ => &in_flight,
                };
                let permit = match bound.clone().try_acquire_owned() {
                    Ok(permit) => permit,
                    Err(_) => tokio::select! {
                        biased;
                        _ = stop.changed() => break,
                        permit = bound.clone().acquire_owned() => permit.expect("never closed"),
                    },
                };
                // The handler learns when the request was taken: a send
                // that waits too long for the handler to start is refused
                // busy.
                let arrived = tokio::time::Instant::now();
                let (opaque, oneway) = (frame.opaque, frame.oneway);
                drop(frame);
                let inbound = inbound.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    if !oneway && conn.is_closed() {
                        // The requester went away before its request was
                        // started: no one would read the answer, and it
                        // took the close as a failure (a send it may try
                        // again), so the work is not done. A oneway
                        // request (an end of transaction) still is.
                        return;
                    }
                    let response = match request {
                        Ok(request) => inbound.handle_at(request, conn.clone(), arrived).await,
                        Err(refusal) => refusal,
                    };
                    if !oneway {
                        conn.respond(opaque, &response).await;
                    }
                });
            }
            reader.close();
            drop(reader);
            on_close();
        });
        conn
    }

    /// Writes the response to the request numbered `opaque`.
    async fn respond(&self, opaque: u32, response: &Response) {
        let payload = encode_payload(response).unwrap_or_else(|e| {
            // A response too large for a frame becomes an error the peer
            // can read.
            let refusal = Response::error(ResponseCode::SystemError, format!("response not sent: {e}"));
            encode_payload(&refusal).unwrap_or_default()
        });
        let reply = Frame { version: VERSION, response: true, oneway: false, opaque, payload };
        let _ = self.outbound.send(reply).await;
    }

    /// The peer's address.
    pub fn peer(&self) -> &str {
        &self.addr
    }

    /// Closes the connection: requests still waiting on it fail at once,
    /// later ones find it closed, and its socket is let go.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.pending.lock().expect("pending lock").clear();
        let _ = self.shutdown.send(true);
        self.cancel.cancel();
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
        if self.is_closed() {
            self.pending.lock().expect("pending lock").remove(&opaque);
            return Err(broken("connection closed"));
        }
        // The timeout covers queueing the frame too: a peer that stopped
        // reading fills the socket, then the queue, and a send would wait
        // for room forever.
        let exchange = async {
            if self.outbound.send(frame).await.is_err() {
                return Err(broken("connection closed"));
            }
            match rx.await {
                Err(_) => Err(broken("connection closed while waiting")),
                Ok(frame) => decode_payload(&frame.payload),
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => {
                self.pending.lock().expect("pending lock").remove(&opaque);
                Err(Error::Timeout(timeout.as_millis() as u64))
            }
            Ok(Err(e)) => {
                self.pending.lock().expect("pending lock").remove(&opaque);
                Err(e)
            }
            Ok(Ok(response)) => Ok(response),
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

/// One address's place in the pool. Its lock is held while connecting, so
/// callers for the same address share one attempt and callers for other
/// addresses never wait for it.
type Slot = Arc<tokio::sync::Mutex<SlotState>>;

/// An address's connection, if any, and how its last connect failed.
#[derive(Default)]
struct SlotState {
    conn: Option<Arc<Connection>>,
    /// When the last connect failed, and why.
    failed: Option<(tokio::time::Instant, String)>,
}

/// Connections by address, reconnecting when one breaks.
#[derive(Clone)]
pub struct ConnectionPool {
    slots: Arc<Mutex<BTreeMap<String, Slot>>>,
    /// Answers the requests servers send over the pool's connections.
    inbound: Arc<dyn Inbound>,
}

impl Default for ConnectionPool {
    fn default() -> ConnectionPool {
        ConnectionPool::new()
    }
}

impl ConnectionPool {
    /// An empty pool whose connections serve nothing.
    pub fn new() -> ConnectionPool {
        ConnectionPool::serving(Arc::new(ServesNothing))
    }

    /// An empty pool whose connections serve the requests servers send
    /// back over them with `inbound`.
    pub fn serving(inbound: Arc<dyn Inbound>) -> ConnectionPool {
        ConnectionPool { slots: Arc::default(), inbound }
    }

    fn slot(&self, addr: &str) -> Slot {
        self.slots.lock().expect("pool lock").entry(addr.to_string()).or_default().clone()
    }

    /// A live connection to `addr`, made if needed, within `timeout`. Only
    /// callers for the same address wait for a connect in progress, and
    /// they share its outcome: when it fails, each fails with it at once,
    /// rather than trying again one after another (a peer that is down
    /// would hold a crowd of senders for a connect attempt each, long past
    /// their timeouts, as a master failover showed).
    pub async fn get(&self, addr: &str, timeout: Duration) -> Result<Arc<Connection>> {
        let slot = self.slot(addr);
        let arrived = tokio::time::Instant::now();
        let Ok(mut state) = tokio::time::timeout(timeout, slot.lock()).await else {
            return Err(Error::Connection { addr: addr.to_string(), reason: format!("waited {} ms for a connect in progress", timeout.as_millis()) });
        };
        if let Some(live) = state.conn.as_ref().filter(|c| !c.is_closed()) {
            return Ok(live.clone());
        }
        if let Some((at, why)) = &state.failed {
            if *at >= arrived {
                return Err(Error::Connection { addr: addr.to_string(), reason: why.clone() });
            }
        }
        match Connection::connect_serving(addr, timeout, self.inbound.clone()).await {
            Ok(fresh) => {
                *state = SlotState { conn: Some(fresh.clone()), failed: None };
                Ok(fresh)
            }
            Err(e) => {
                let why = match &e {
                    Error::Connection { reason, .. } => reason.clone(),
                    other => other.to_string(),
                };
                state.failed = Some((tokio::time::Instant::now(), why));
                Err(e)
            }
        }
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

    /// Sends a command to `addr` and waits up to `timeout` for its typed
    /// reply; a refusal is an error, and so is an answer of another type.
    pub async fn call<C: Call>(&self, addr: &str, command: C, timeout: Duration) -> Result<C::Reply> {
        let request = command.into();
        self.request(addr, &request, timeout).await?.into_reply(request.name())
    }

    /// Sends a oneway request to `addr`.
    pub async fn oneway(&self, addr: &str, request: &Request, timeout: Duration) -> Result<()> {
        self.get(addr, timeout).await?.oneway(request).await
    }

    /// Closes every connection.
    pub async fn clear(&self) {
        let slots: Vec<Slot> = std::mem::take(&mut *self.slots.lock().expect("pool lock")).into_values().collect();
        for slot in slots {
            if let Some(conn) = slot.lock().await.conn.take() {
                conn.close();
            }
        }
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::command::GetClusterInfo;
    use crate::namesrv::{NameServer, NameServerConfig};
    use std::time::Instant;
    use tokio::net::TcpListener;

    /// Regression: the writer waited in a send to a peer that stopped
    /// reading, outside its select, so a close left the task, its queue
    /// (up to 1,024 frames of up to 8 MiB) and the socket held for as long
    /// as the peer stayed silent.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_close_stops_a_write_to_a_peer_that_does_not_read() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        // Accepts and never reads.
        let silent = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(3_600)).await;
            drop(socket);
        });
        let conn = Connection::connect(&addr, Duration::from_secs(5)).await.unwrap();
        let big = Request::SendMessage(crate::command::SendMessage {
            producer_group: "pg".into(),
            queue_id: 0,
            message: crate::model::Message::new("orders", vec![7u8; 4 * 1024 * 1024]),
            born_timestamp_ms: 0,
            born_host: "test".into(),
            default_topic_queues: 1,
        });
        // Far more than the socket buffers hold: the writer blocks.
        for _ in 0..16 {
            conn.oneway(&big).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        conn.close();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !conn.outbound.is_closed() {
            assert!(Instant::now() < deadline, "the writer is still stuck in its send after the close");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        silent.abort();
    }

    /// A stream that counts its flushes.
    struct CountsFlushes(tokio::io::DuplexStream, Arc<std::sync::atomic::AtomicUsize>);

    impl AsyncRead for CountsFlushes {
        fn poll_read(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for CountsFlushes {
        fn poll_write(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
            std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
        }

        fn poll_flush(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
            self.1.fetch_add(1, Ordering::SeqCst);
            std::pin::Pin::new(&mut self.0).poll_flush(cx)
        }

        fn poll_shutdown(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
        }
    }

    /// Frames queued while the writer was busy go out together, flushed
    /// once a burst of at most BURST_FRAMES_MAX, and every one arrives.
    #[tokio::test(flavor = "current_thread")]
    async fn frames_queued_together_are_written_with_one_flush() {
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let flushes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let conn = Connection::start(CountsFlushes(ours, flushes.clone()), "peer".into(), Arc::new(ServesNothing), || {});
        let request = Request::GetClusterInfo(GetClusterInfo);
        // One thread: nothing runs the writer until this task waits.
        for _ in 0..100 {
            conn.oneway(&request).await.unwrap();
        }
        let mut frames = Framed::new(theirs, FrameCodec);
        for n in 0..100 {
            let frame = tokio::time::timeout(Duration::from_secs(5), frames.next()).await.expect("in time").expect("a frame").expect("whole");
            assert!(!frame.response, "frame {n}");
        }
        assert_eq!(flushes.load(Ordering::SeqCst), 2, "100 frames in bursts of {BURST_FRAMES_MAX}");
    }

    /// A handler that never answers, counting the requests it was given.
    struct NeverAnswers(Arc<std::sync::atomic::AtomicUsize>);

    impl Inbound for NeverAnswers {
        fn handle(self: Arc<Self>, _request: Request, _conn: Arc<Connection>) -> BoxFuture<'static, Response> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(futures::future::pending())
        }
    }

    /// A peer that sends requests faster than they are answered has at most
    /// REQUESTS_IN_FLIGHT_MAX of them taken; the rest wait in its socket.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_has_at_most_its_in_flight_bound_of_requests_taken() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let server = {
            let taken = taken.clone();
            tokio::spawn(async move {
                let (socket, peer) = listener.accept().await.unwrap();
                let conn = Connection::start(socket, peer.to_string(), Arc::new(NeverAnswers(taken)), || {});
                tokio::time::sleep(Duration::from_secs(3_600)).await;
                drop(conn);
            })
        };
        let conn = Connection::connect(&addr, Duration::from_secs(5)).await.unwrap();
        let request = Request::GetClusterInfo(GetClusterInfo);
        for _ in 0..REQUESTS_IN_FLIGHT_MAX + 100 {
            conn.oneway(&request).await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while taken.load(Ordering::SeqCst) < REQUESTS_IN_FLIGHT_MAX {
            assert!(Instant::now() < deadline, "only {} requests taken", taken.load(Ordering::SeqCst));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(taken.load(Ordering::SeqCst), REQUESTS_IN_FLIGHT_MAX);
        server.abort();
    }

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
        pool.request(&answering, &Request::GetClusterInfo(GetClusterInfo), Duration::from_secs(5)).await.expect("the name server answers");
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
        let silent = pool.request(&addr, &Request::GetClusterInfo(GetClusterInfo), Duration::from_millis(300)).await;
        assert!(matches!(silent, Err(Error::Timeout(_))), "{silent:?}");
        forward.store(true, Ordering::Relaxed);
        let next = pool.request(&addr, &Request::GetClusterInfo(GetClusterInfo), Duration::from_secs(3)).await;
        assert!(next.is_ok(), "the request after a timeout went down the dead connection: {next:?}");
    }
}
