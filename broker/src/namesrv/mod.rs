//! The name server: brokers register their topics here; clients ask it which
//! brokers serve a topic. Several run side by side, each knowing only what
//! brokers told it.

mod route_table;

pub use route_table::RouteTable;

use crate::clock::Clock;
use crate::net::Service;
use crate::protocol::{Request, Response};
use crate::command::{BrokerInfo, GetRoute, Outcome, RegisterBroker, Refusal, Refused, TopicRoute, UnregisterBroker};
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

    /// A broker's registration: it serves these topics, in this role.
    pub fn register_broker(&self, command: RegisterBroker) -> Outcome<()> {
        let RegisterBroker { cluster, broker_name, broker_id, addr, topics, role, epoch } = command;
        let registration = route_table::Registration { cluster, broker_name, broker_id, addr, role, epoch, topics };
        self.table.lock().expect("route table").register(registration, self.clock.now_ms());
        Ok(())
    }

    /// A broker that shuts down.
    pub fn unregister_broker(&self, command: UnregisterBroker) -> Outcome<()> {
        self.table.lock().expect("route table").unregister(&command.broker_name, command.broker_id);
        Ok(())
    }

    /// Which brokers serve a topic.
    pub fn route(&self, command: GetRoute) -> Outcome<TopicRoute> {
        let topic = command.topic;
        let route = self.table.lock().expect("route table").route(&topic);
        route.ok_or_else(|| Refusal::new(Refused::TopicNotExist, format!("no broker serves topic {topic}")))
    }

    /// Every broker known.
    pub fn cluster_info(&self) -> Outcome<Vec<BrokerInfo>> {
        Ok(self.table.lock().expect("route table").cluster_info())
    }

    /// The house protocol's front: a thin match from request to handler.
    fn apply(&self, request: Request) -> Response {
        match request {
            Request::RegisterBroker(c) => Response::answer(self.register_broker(c)),
            Request::UnregisterBroker(c) => Response::answer(self.unregister_broker(c)),
            Request::GetRoute(c) => Response::answer(self.route(c)),
            Request::GetClusterInfo(_) => Response::answer(self.cluster_info()),
            other => Refusal::new(Refused::NotSupported, format!("{} is a broker request; this is a name server", other.name())).into(),
        }
    }
}

impl Service for NameServer {
    fn handle(self: Arc<Self>, request: Request, _peer: SocketAddr) -> BoxFuture<'static, Response> {
        Box::pin(async move { self.apply(request) })
    }
}
