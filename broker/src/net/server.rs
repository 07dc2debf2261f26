//! The server side: accept connections and serve each with a [`Service`].
//! Handlers return values; only the connection layer writes.

use super::connection::{Connection, Inbound};
use crate::protocol::{Request, Response};
use futures::future::BoxFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Something that answers requests: the name server or a broker.
pub trait Service: Send + Sync + 'static {
    /// Handles one request from `peer`.
    fn handle(self: Arc<Self>, request: Request, peer: SocketAddr) -> BoxFuture<'static, Response>;

    /// [`Service::handle`] for a request read at `arrived`; by default the
    /// time is not looked at.
    fn handle_at(self: Arc<Self>, request: Request, peer: SocketAddr, arrived: tokio::time::Instant) -> BoxFuture<'static, Response> {
        let _ = arrived;
        self.handle(request, peer)
    }

    /// A connection from `peer` opened; `conn` carries requests to it (a
    /// broker's check-back to a producer). Nothing by default.
    fn opened(&self, _peer: SocketAddr, _conn: &Arc<Connection>) {}

    /// The connection from `peer` closed (the client went away, or its
    /// stream broke). Nothing by default.
    fn closed(&self, _peer: SocketAddr) {}
}

/// A service seen from one connection: it knows its peer.
struct Accepted<S> {
    service: Arc<S>,
    peer: SocketAddr,
}

impl<S: Service> Inbound for Accepted<S> {
    fn handle(self: Arc<Self>, request: Request, _conn: Arc<Connection>) -> BoxFuture<'static, Response> {
        self.service.clone().handle(request, self.peer)
    }

    fn handle_at(self: Arc<Self>, request: Request, _conn: Arc<Connection>, arrived: tokio::time::Instant) -> BoxFuture<'static, Response> {
        self.service.clone().handle_at(request, self.peer, arrived)
    }
}

/// Accepts connections forever, serving each on its own tasks.
pub async fn serve<S: Service>(listener: TcpListener, service: Arc<S>) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let inbound = Arc::new(Accepted { service: service.clone(), peer });
        let on_close = {
            let service = service.clone();
            move || service.closed(peer)
        };
        let conn = Connection::start(stream, peer.to_string(), inbound, on_close);
        service.opened(peer, &conn);
    }
}
