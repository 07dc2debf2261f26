use crate::net::{IpProtocol::Tcp, *};
use bytes::{Buf, BufMut, BytesMut};
#[cfg(unix)]
use std::os::unix::io::{AsRawFd, RawFd};
use std::{
    fmt,
    io::Result,
    pin::Pin,
    task::{Context, Poll},
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::*;

/// A TCP stream between a local and a remote socket.
pub struct TcpStream {
    pub(super) guard: Option<Arc<BindGuard>>,
    pub(super) addr: SocketAddr,
    pub(super) peer: SocketAddr,
    /// Buffer write data to be flushed.
    pub(super) write_buf: BytesMut,
    pub(super) read_buf: Bytes,
    pub(super) tx: PayloadSender,
    pub(super) rx: PayloadReceiver,
    /// mqsim patch: the queue to this connection's wire, when the network
    /// sets a bandwidth (made at the first flush, on the owner's node).
    pub(super) wire: Option<tokio::sync::mpsc::UnboundedSender<Bytes>>,
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, fmt: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt.debug_struct("TcpStream")
            .field("addr", &self.addr)
            .field("peer", &self.peer)
            .finish()
    }
}

impl TcpStream {
    /// Opens a simulated TCP connection to a remote host.
    ///
    /// `addr` is an address of the remote host. Anything which implements the
    /// [`ToSocketAddrs`] trait can be supplied as the address.  If `addr`
    /// yields multiple addresses, connect will be attempted with each of the
    /// addresses until a connection is successful. If none of the addresses
    /// result in a successful connection, the error returned from the last
    /// connection attempt (the last address) is returned.
    ///
    /// [`ToSocketAddrs`]: trait@crate::net::ToSocketAddrs
    #[instrument]
    pub async fn connect<A: ToSocketAddrs>(addr: A) -> Result<TcpStream> {
        let mut last_err = None;

        for addr in lookup_host(addr).await? {
            match Self::connect_one(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "could not resolve to any addresses",
            )
        }))
    }

    /// Connects to one address.
    #[instrument]
    async fn connect_one(addr: SocketAddr) -> Result<TcpStream> {
        let net = plugin::simulator::<NetSim>();
        net.rand_delay().await?;

        // send a request to listener and wait for TcpStream
        // FIXME: the port it uses should not be exclusive
        let guard = BindGuard::bind("0.0.0.0:0", Tcp, Arc::new(TcpStreamSocket)).await?;
        let (tx, rx, local_addr) = net
            .connect1(plugin::node(), guard.addr.port(), addr, Tcp)
            .await?;
        let stream = TcpStream {
            guard: Some(Arc::new(guard)),
            addr: local_addr,
            peer: addr,
            write_buf: Default::default(),
            read_buf: Default::default(),
            tx,
            rx,
            wire: None,
        };
        Ok(stream)
    }

    /// Sets the value of the `TCP_NODELAY` option on this socket.
    pub fn set_nodelay(&self, _nodelay: bool) -> Result<()> {
        // TODO: simulate TCP_NODELAY
        Ok(())
    }

    /// Returns the socket address of the local half of this TCP connection.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.addr)
    }

    /// Returns the socket address of the remote peer of this TCP connection.
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        Ok(self.peer)
    }

    /// Tries to read data from the stream into the provided buffer, advancing
    /// the buffer's internal cursor, returning how many bytes were read.
    ///
    /// Receives any pending data from the socket but does not wait for new data
    /// to arrive. On success, returns the number of bytes read. Because
    /// `try_read_buf()` is non-blocking, the buffer does not have to be stored
    /// by the async task and can exist entirely on the stack.
    pub fn try_read_buf<B: BufMut>(&mut self, buf: &mut B) -> io::Result<usize> {
        // read the buffer if not empty
        if !self.read_buf.is_empty() {
            let len = self.read_buf.len().min(buf.remaining_mut());
            buf.put_slice(&self.read_buf[..len]);
            self.read_buf.advance(len);
            return Ok(len);
        }
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "read buffer is empty",
        ))
    }
}

#[cfg(unix)]
impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        todo!("TcpStream::as_raw_fd");
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<Result<()>> {
        // read the buffer if not empty
        if !self.read_buf.is_empty() {
            let len = self.read_buf.len().min(buf.remaining());
            buf.put_slice(&self.read_buf[..len]);
            self.read_buf.advance(len);
            return Poll::Ready(Ok(()));
        }
        // otherwise wait on channel
        let poll_res = { self.rx.poll_next_unpin(cx) };
        match poll_res {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(data)) => {
                self.read_buf = *data.downcast::<Bytes>().unwrap();
                self.poll_read(cx, buf)
            }
            // ref: https://man7.org/linux/man-pages/man2/recv.2.html
            // > When a stream socket peer has performed an orderly shutdown, the
            // > return value will be 0 (the traditional "end-of-file" return).
            Poll::Ready(None) => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<Result<usize>> {
        self.write_buf.extend_from_slice(buf);
        // TODO: simulate buffer full, partial write
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        // send data
        let data = self.write_buf.split().freeze();
        // mqsim patch: under a bandwidth, the data queues for the wire.
        if self.wire.is_none() && !self.tx.is_closed() {
            if let Some(bytes_per_s) = plugin::simulator::<NetSim>().tcp_bandwidth() {
                let (queue, rx) = tokio::sync::mpsc::unbounded_channel();
                let tx = std::mem::replace(&mut self.tx, PayloadSender::dead());
                crate::task::spawn(wire(tx, rx, bytes_per_s));
                self.wire = Some(queue);
            }
        }
        if let Some(wire) = &self.wire {
            if data.is_empty() {
                return Poll::Ready(Ok(()));
            }
            return match wire.send(data) {
                Ok(()) => Poll::Ready(Ok(())),
                Err(_) => Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, "connection reset"))),
            };
        }
        self.tx
            .send(Box::new(data))
            .ok_or_else(|| io::Error::new(io::ErrorKind::ConnectionReset, "connection reset"))?;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<()>> {
        // TODO: simulate shutdown
        Poll::Ready(Ok(()))
    }
}

/// Frames one write of a paced wire carries at most (mqsim patch).
const WIRE_CHUNKS_MAX: usize = 1024;
/// Bytes one write of a paced wire carries at most, about (mqsim patch).
const WIRE_BYTES_MAX: usize = 4 << 20;
/// Yields that find nothing new before a paced wire writes (mqsim patch).
const WIRE_QUIET_YIELDS: u32 = 3;

/// mqsim patch: a connection's wire at `bytes_per_s`, a server in virtual
/// time. What was flushed while it was busy goes out in one write, after
/// those before it; a connection that wrote within the last clock step
/// waits for the next one (the network delivers a connection's writes one
/// a step at most), gathering what comes meanwhile.
async fn wire(tx: PayloadSender, mut queue: tokio::sync::mpsc::UnboundedReceiver<Bytes>, bytes_per_s: f64) {
    let time = crate::time::TimeHandle::current();
    let epoch = time.now_instant();
    let now_us = || (time.now_instant() - epoch).as_micros() as u64;
    let (mut busy_until_us, mut last_write) = (0u64, None::<std::time::Duration>);
    while let Some(first) = queue.recv().await {
        let step = time.min_sleep();
        let step_us = (step.as_micros() as u64).max(1);
        if last_write.is_some_and(|at| (time.now_instant() - epoch).saturating_sub(at) < step) {
            crate::time::sleep(step).await;
        }
        let mut batch = BytesMut::from(&first[..]);
        let (mut chunks, mut quiet) = (1, 0);
        while chunks < WIRE_CHUNKS_MAX && batch.len() < WIRE_BYTES_MAX && quiet < WIRE_QUIET_YIELDS {
            match queue.try_recv() {
                Ok(more) => {
                    batch.extend_from_slice(&more);
                    chunks += 1;
                    quiet = 0;
                }
                Err(_) => {
                    quiet += 1;
                    YieldNow(false).await;
                }
            }
        }
        let now = now_us();
        let work = (batch.len() as f64 / bytes_per_s * 1e6).round() as u64;
        busy_until_us = busy_until_us.max(now) + work;
        let owed = busy_until_us - now;
        if owed >= (step_us / 2).max(1) {
            crate::time::sleep(std::time::Duration::from_micros(owed)).await;
        }
        if tx.send(Box::new(batch.freeze())).is_none() {
            break;
        }
        last_write = Some(time.now_instant() - epoch);
    }
}

/// Ready on its second poll (mqsim patch).
struct YieldNow(bool);

impl std::future::Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Socket registered in the [`Network`].
struct TcpStreamSocket;

impl Socket for TcpStreamSocket {}
