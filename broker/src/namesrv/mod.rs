//! The name server: brokers register their topics here; clients ask it which
//! brokers serve a topic. Several run side by side, each knowing only what
//! brokers told it.

mod route_table;

pub use route_table::RouteTable;

use crate::clock::Clock;
use crate::net::Service;
use crate::protocol::{Request, Response, ResponseBody, ResponseCode};
use crate::command::{GetClusterInfo, GetRoute, RegisterBroker, UnregisterBroker};
use futures::future::BoxFuture;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Name server settings.
#[derive(Clone, Debug)]
pub struct NameServerConfig {
    /// A broker silent this long is removed (RocketMQ: 120 s).
    pub broker_expiry_ms: u64,
    /// How often expiry is checked (RocketMQ: 5 s).
    pub scan_interval_ms: u64,
}

impl Default for NameServerConfig {
    fn default() -> NameServerConfig {
        NameServerConfig { broker_expiry_ms: 120_000, scan_interval_ms: 5_000 }
    }
}

/// A running name server.
pub struct NameServer {
    config: NameServerConfig,
    clock: Clock,
    table: Mutex<RouteTable>,
}

impl NameServer {
    /// A name server with an empty route table.
    pub fn new(config: NameServerConfig, clock: Clock) -> Arc<NameServer> {
        Arc::new(NameServer { config, clock, table: Mutex::new(RouteTable::default()) })
    }

    /// Serves requests on `listener` and expires silent brokers, forever.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(me.config.scan_interval_ms)).await;
                let removed = me.table.lock().expect("route table").expire(me.clock.now_ms(), me.config.broker_expiry_ms);
                for name in removed {
                    tracing::info!(broker = %name, "broker expired");
                }
            }
        });
        crate::net::serve(listener, self).await
    }

    fn apply(&self, request: Request) -> Response {
        let now = self.clock.now_ms();
        let mut table = self.table.lock().expect("route table");
        match request {
            Request::RegisterBroker(RegisterBroker { cluster, broker_name, broker_id, addr, topics, role, epoch }) => {
                table.register(route_table::Registration { cluster, broker_name, broker_id, addr, role, epoch, topics }, now);
                Response::ok(ResponseBody::None)
            }
            Request::UnregisterBroker(UnregisterBroker { broker_name, broker_id }) => {
                table.unregister(&broker_name, broker_id);
                Response::ok(ResponseBody::None)
            }
            Request::GetRoute(GetRoute { topic }) => match table.route(&topic) {
                Some(route) => Response::ok(ResponseBody::Route(route)),
                None => Response::error(ResponseCode::TopicNotExist, format!("no broker serves topic {topic}")),
            },
            Request::GetClusterInfo(GetClusterInfo) => Response::ok(ResponseBody::Cluster(table.cluster_info())),
            other => Response::error(
                ResponseCode::RequestNotSupported,
                format!("{} is a broker request; this is a name server", other.name()),
            ),
        }
    }
}

impl Service for NameServer {
    fn handle(self: Arc<Self>, request: Request, _peer: SocketAddr) -> BoxFuture<'static, Response> {
        Box::pin(async move { self.apply(request) })
    }
}
