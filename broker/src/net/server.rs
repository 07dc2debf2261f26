//! The server side: accept connections, decode requests, run the service,
//! write responses. Handlers return values; only this layer writes.

use crate::protocol::{decode_payload, encode_payload, Frame, FrameCodec, Request, Response, ResponseCode, VERSION};
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

/// Something that answers requests: the name server or a broker.
pub trait Service: Send + Sync + 'static {
    /// Handles one request from `peer`.
    fn handle(self: Arc<Self>, request: Request, peer: SocketAddr) -> BoxFuture<'static, Response>;

    /// The connection from `peer` closed (the client went away, or its
    /// stream broke). Nothing by default.
    fn closed(&self, _peer: SocketAddr) {}
}

/// Accepts connections forever, serving each on its own task.
pub async fn serve<S: Service>(listener: TcpListener, service: Arc<S>) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        #[cfg(not(madsim))]
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            let (mut sink, mut frames) = Framed::new(stream, FrameCodec).split();
            let (tx, mut rx) = mpsc::channel::<Frame>(1024);
            tokio::spawn(async move {
                while let Some(frame) = rx.recv().await {
                    if sink.send(frame).await.is_err() {
                        break;
                    }
                }
            });
            while let Some(frame) = frames.next().await {
                let Ok(frame) = frame else {
                    // Bad framing cannot be resynchronised: drop the connection.
                    tracing::warn!(%peer, "closing connection after a malformed frame");
                    break;
                };
                if frame.response {
                    continue;
                }
                let tx = tx.clone();
                let service = service.clone();
                tokio::spawn(async move {
                    let response = if frame.version != VERSION {
                        Response::error(
                            ResponseCode::UnsupportedVersion,
                            format!("protocol version {} is not supported; this server speaks {VERSION}", frame.version),
                        )
                    } else {
                        match decode_payload::<Request>(&frame.payload) {
                            Ok(request) => service.handle(request, peer).await,
                            Err(e) => Response::error(ResponseCode::BadRequest, e.to_string()),
                        }
                    };
                    if !frame.oneway {
                        let reply = Frame {
                            version: VERSION,
                            response: true,
                            oneway: false,
                            opaque: frame.opaque,
                            payload: encode_payload(&response).unwrap_or_else(|e| {
                                // A response too large for a frame becomes
                                // an error the client can read.
                                let refusal = Response::error(ResponseCode::SystemError, format!("response not sent: {e}"));
                                encode_payload(&refusal).unwrap_or_default()
                            }),
                        };
                        let _ = tx.send(reply).await;
                    }
                });
            }
            service.closed(peer);
        });
    }
}
