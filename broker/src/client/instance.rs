//! What every client shares: name server access, a route cache, connections.

use crate::clock::Clock;
use crate::command::{Refusal, Refused};
use crate::error::{Error, Result};
use super::check_back::CheckListeners;
use super::inbound::{BrokerCalls, Rebalancers, Replies};
use crate::net::ConnectionPool;
use crate::protocol::{Call, Request, Response};
use crate::command::{BrokerInfo, GetClusterInfo, GetRoute, HeartbeatProducer, ReplicaRoute, TopicRoute, master_replica, read_replica};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Client settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Name servers, tried in turn.
    pub namesrv_addrs: Vec<String>,
    /// Unique per client instance: it names the consumer in its group.
    pub client_id: String,
    /// Timeout of each request (3 s).
    pub request_timeout_ms: u64,
    /// How often routes are refreshed (30 s).
    pub route_refresh_ms: u64,
    /// How often consumers heartbeat brokers (30 s).
    pub heartbeat_ms: u64,
}

impl ClientConfig {
    /// Defaults for a client named `client_id`.
    pub fn new(namesrv_addrs: Vec<String>, client_id: impl Into<String>) -> ClientConfig {
        ClientConfig {
            namesrv_addrs,
            client_id: client_id.into(),
            request_timeout_ms: 3_000,
            route_refresh_ms: 30_000,
            heartbeat_ms: 30_000,
        }
    }
}

/// One queue of a topic on one broker.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageQueue {
    /// The topic.
    pub topic: String,
    /// The broker's name.
    pub broker_name: String,
    /// The queue id.
    pub queue_id: u32,
}

impl std::fmt::Display for MessageQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.broker_name, self.topic, self.queue_id)
    }
}

/// Shared client state.
pub struct ClientInstance {
    config: ClientConfig,
    clock: Clock,
    pool: ConnectionPool,
    /// Topic -> its route and when it was fetched.
    routes: Mutex<BTreeMap<String, (TopicRoute, tokio::time::Instant)>>,
    /// Topics whose cached route is suspect: fetched again on next use.
    stale: Mutex<std::collections::BTreeSet<String>>,
    /// Broker name -> its brokers (master and slaves), from the latest
    /// routes and cluster info.
    brokers: Mutex<BTreeMap<String, Vec<ReplicaRoute>>>,
    next_namesrv: AtomicUsize,
    /// Answers brokers' transaction check-backs.
    check_listeners: Arc<CheckListeners>,
    /// Wakes consumers whose group a broker says changed.
    rebalancers: Arc<Rebalancers>,
    replies: Arc<Replies>,
    /// Addresses whose last request failed to connect or timed out, and when.
    unreachable: Mutex<BTreeMap<String, tokio::time::Instant>>,
    /// Producer groups with a producer here, and how many.
    producer_groups: Mutex<BTreeMap<String, usize>>,
    /// Set once the producer heartbeat loop runs.
    producer_heartbeats: std::sync::Once,
}

/// How long a master that did not answer is passed over for reads, when
/// its group has a slave.
const UNREACHABLE_MS: u64 = 5_000;

/// How long a cached route that lists a group without a master is used
/// before it is fetched again (see [`ClientInstance::route`]).
pub const MASTERLESS_ROUTE_REFRESH_MS: u64 = 1_000;

impl ClientInstance {
    /// A client instance; nothing is contacted until used.
    pub fn new(config: ClientConfig, clock: Clock) -> Arc<ClientInstance> {
        let check_listeners = Arc::new(CheckListeners::default());
        let rebalancers = Arc::new(Rebalancers::default());
        let replies = Arc::new(Replies::default());
        let calls = BrokerCalls { checks: check_listeners.clone(), rebalancers: rebalancers.clone(), replies: replies.clone() };
        Arc::new(ClientInstance {
            config,
            clock,
            pool: ConnectionPool::serving(Arc::new(calls)),
            check_listeners,
            rebalancers,
            replies,
            unreachable: Mutex::new(BTreeMap::new()),
            routes: Mutex::new(BTreeMap::new()),
            stale: Mutex::new(std::collections::BTreeSet::new()),
            brokers: Mutex::new(BTreeMap::new()),
            next_namesrv: AtomicUsize::new(0),
            producer_groups: Mutex::new(BTreeMap::new()),
            producer_heartbeats: std::sync::Once::new(),
        })
    }

    /// A producer of `group` lives here from now: every broker hears of it
    /// each heartbeat period (RocketMQ's client heartbeat carries its
    /// producer groups), for `producerConnection`, check-backs and replies.
    pub fn register_producer(self: &Arc<Self>, group: &str) {
        *self.producer_groups.lock().expect("producer groups").entry(group.to_string()).or_default() += 1;
        self.producer_heartbeats.call_once(|| {
            // The loop ends with the instance.
            let weak = Arc::downgrade(self);
            tokio::spawn(async move {
                while let Some(client) = weak.upgrade() {
                    client.heartbeat_producers().await;
                    let period = Duration::from_millis(client.config.heartbeat_ms);
                    drop(client);
                    tokio::time::sleep(period).await;
                }
            });
        });
    }

    /// A producer of `group` here shut down; once its last one has, the
    /// group is no longer in this client's heartbeats, and the brokers let
    /// it go when it expires.
    pub fn unregister_producer(&self, group: &str) {
        let mut groups = self.producer_groups.lock().expect("producer groups");
        if let Some(n) = groups.get_mut(group) {
            *n -= 1;
            if *n == 0 {
                groups.remove(group);
            }
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.request_timeout_ms)
    }

    /// Sends a command to `addr` and waits up to `timeout` for its reply: a
    /// refusal is an error, and so is an answer that is not this command's
    /// reply.
    pub async fn call<C: Call>(&self, addr: &str, command: C, timeout: Duration) -> Result<C::Reply> {
        let request = command.into();
        self.pool_request(addr, &request, timeout).await?.into_reply(request.name())
    }

    /// Sends a request to `addr` and returns the raw response.
    pub async fn pool_request(&self, addr: &str, request: &Request, timeout: Duration) -> Result<Response> {
        let result = self.pool.request(addr, request, timeout).await;
        let mut unreachable = self.unreachable.lock().expect("unreachable");
        match &result {
            Err(Error::Connection { .. } | Error::Timeout(_)) => {
                unreachable.insert(addr.to_string(), self.clock.instant());
            }
            _ => {
                unreachable.remove(addr);
            }
        }
        result
    }

    /// Sends a request that expects no answer.
    pub async fn oneway(&self, addr: &str, request: &Request) -> Result<()> {
        self.pool.oneway(addr, request, self.timeout()).await
    }

    /// Asks the name servers in turn until one answers with success. A
    /// refusal from one (a lagging name server that expired the brokers
    /// says TopicNotExist) does not end the search: the error is a
    /// refusal only when every name server refused, and otherwise the last
    /// failure to reach one.
    pub async fn call_namesrv<C: Call>(&self, command: C) -> Result<C::Reply> {
        let addrs = &self.config.namesrv_addrs;
        if addrs.is_empty() {
            return Err(Error::Connection { addr: "-".into(), reason: "no name server configured".into() });
        }
        let request = command.into();
        let start = self.next_namesrv.fetch_add(1, Ordering::Relaxed);
        let (mut refused, mut unreachable) = (None, None);
        for i in 0..addrs.len() {
            let addr = &addrs[(start + i) % addrs.len()];
            match self.pool_request(addr, &request, self.timeout()).await.and_then(|r| r.into_reply(request.name())) {
                Ok(reply) => return Ok(reply),
                Err(e @ Error::Refused(_)) => refused = Some(e),
                Err(e) => unreachable = Some(e),
            }
        }
        Err(unreachable.or(refused).expect("at least one name server tried"))
    }

    /// The route of a topic: from the cache unless `refresh` or older than
    /// `route_refresh_ms`, or, while it lists a group without a master,
    /// older than [`MASTERLESS_ROUTE_REFRESH_MS`]: producers send only to
    /// groups with a master, so no failed send would ever ask for the route
    /// again, and a group whose master failed over stayed unused until the
    /// whole refresh period had passed (failover-master-power-loss: 19 s a
    /// failover where a failed send found the new master in 6).
    pub async fn route(&self, topic: &str, refresh: bool) -> Result<TopicRoute> {
        let refresh = self.stale.lock().expect("stale").remove(topic) || refresh;
        if !refresh {
            if let Some((route, fetched)) = self.routes.lock().expect("routes").get(topic) {
                let masterless = route.queues.iter().any(|q| q.master().is_none());
                let max_ms = if masterless { self.config.route_refresh_ms.min(MASTERLESS_ROUTE_REFRESH_MS) } else { self.config.route_refresh_ms };
                if fetched.elapsed() < Duration::from_millis(max_ms) {
                    return Ok(route.clone());
                }
            }
        }
        match self.call_namesrv(GetRoute { topic: topic.to_string() }).await {
            Ok(route) => {
                let mut brokers = self.brokers.lock().expect("brokers");
                for q in &route.queues {
                    brokers.insert(q.broker_name.clone(), q.replicas.clone());
                }
                self.routes.lock().expect("routes").insert(topic.to_string(), (route.clone(), self.clock.instant()));
                Ok(route)
            }
            // No name server answered with a route: a stale route beats
            // none, as in RocketMQ (whose client keeps its route table when
            // the name servers say the topic does not exist: restarted
            // name servers know no broker until the brokers register
            // again, up to 30 s later). The next attempt waits a whole
            // refresh period rather than holding up every send. Without a
            // cached route, a topic every name server denies has none.
            Err(e) => match self.routes.lock().expect("routes").get_mut(topic) {
                Some((route, fetched)) => {
                    *fetched = self.clock.instant();
                    Ok(route.clone())
                }
                None if matches!(e, Error::Refused(Refusal { kind: Refused::TopicNotExist, .. })) => {
                    Err(Error::NoRoute(topic.to_string()))
                }
                None => Err(e),
            },
        }
    }

    /// Marks a topic's route suspect (a broker answered as if it no longer
    /// had a slave, or may have been deposed): the next use fetches it.
    pub fn route_stale(&self, topic: &str) {
        self.stale.lock().expect("stale").insert(topic.to_string());
    }

    /// Every broker the name servers know.
    pub async fn cluster(&self) -> Result<Vec<BrokerInfo>> {
        let brokers = self.call_namesrv(GetClusterInfo).await?;
        let mut groups: BTreeMap<&str, Vec<ReplicaRoute>> = BTreeMap::new();
        for b in &brokers {
            let replica = ReplicaRoute { broker_id: b.broker_id, addr: b.addr.clone(), role: b.role, epoch: b.epoch };
            groups.entry(b.broker_name.as_str()).or_default().push(replica);
        }
        let mut known = self.brokers.lock().expect("brokers");
        for (name, replicas) in groups {
            known.insert(name.to_string(), replicas);
        }
        Ok(brokers)
    }

    /// The broker of a group to talk to, from routes seen so far: its
    /// master, or, while it has none, a slave (which serves reads).
    /// A master that did not answer within the last few seconds is passed
    /// over for a slave that did not fail too, so reads go on without it.
    pub fn broker_addr(&self, broker_name: &str) -> Option<String> {
        let brokers = self.brokers.lock().expect("brokers");
        let replicas = brokers.get(broker_name)?;
        let read = read_replica(replicas)?;
        let failed = |addr: &str| {
            self.unreachable
                .lock()
                .expect("unreachable")
                .get(addr)
                .is_some_and(|at| at.elapsed() < Duration::from_millis(UNREACHABLE_MS))
        };
        if read.role == crate::command::BrokerRole::Master && failed(&read.addr) {
            let slave = replicas.iter().filter(|r| r.role == crate::command::BrokerRole::Slave && !failed(&r.addr)).min_by_key(|r| r.broker_id);
            if let Some(slave) = slave {
                return Some(slave.addr.clone());
            }
        }
        Some(read.addr.clone())
    }

    /// The master of a group, where writes go, from routes seen so far.
    pub fn master_addr(&self, broker_name: &str) -> Option<String> {
        self.brokers.lock().expect("brokers").get(broker_name).and_then(|r| master_replica(r)).map(|r| r.addr.clone())
    }

    /// Every broker address known, masters and slaves.
    pub fn known_broker_addrs(&self) -> Vec<String> {
        let mut addrs: Vec<String> = self.brokers.lock().expect("brokers").values().flatten().map(|r| r.addr.clone()).collect();
        addrs.sort();
        addrs.dedup();
        addrs
    }

    /// Readable queues of a topic, sorted.
    pub async fn read_queues(&self, topic: &str, refresh: bool) -> Result<Vec<MessageQueue>> {
        let route = self.route(topic, refresh).await?;
        let mut queues: Vec<MessageQueue> = route
            .queues
            .iter()
            .filter(|q| q.perm & crate::model::PERM_READ != 0)
            .flat_map(|q| {
                (0..q.read_queues).map(move |queue_id| MessageQueue {
                    topic: topic.to_string(),
                    broker_name: q.broker_name.clone(),
                    queue_id,
                })
            })
            .collect();
        queues.sort();
        Ok(queues)
    }

    /// The check listeners of this client's transactional producers.
    pub fn check_listeners(&self) -> &CheckListeners {
        &self.check_listeners
    }

    /// The rebalance wakers of this client's consumers.
    pub fn rebalancers(&self) -> &Rebalancers {
        &self.rebalancers
    }

    /// Requests of this client waiting for their replies.
    pub fn replies(&self) -> &Replies {
        &self.replies
    }

    /// Tells every broker the name servers know which producer groups
    /// live here, so they can check back with this client; failures are
    /// logged and tried again next period.
    pub async fn heartbeat_producers(&self) {
        let mut groups = self.check_listeners.groups();
        groups.extend(self.producer_groups.lock().expect("producer groups").keys().cloned());
        groups.sort();
        groups.dedup();
        if groups.is_empty() {
            return;
        }
        self.heartbeat_producer_groups(groups).await;
    }

    /// Tells every broker the name servers know that `groups` live here, on
    /// this client's connection to it (where a broker calls it back).
    pub async fn heartbeat_producer_groups(&self, groups: Vec<String>) {
        let mut addrs: Vec<String> = match self.cluster().await {
            Ok(brokers) => brokers.into_iter().map(|b| b.addr).collect(),
            Err(e) => {
                tracing::debug!(error = %e, "no cluster info for producer heartbeats; using the brokers seen");
                self.known_broker_addrs()
            }
        };
        addrs.sort();
        addrs.dedup();
        let heartbeat = HeartbeatProducer { client_id: self.config.client_id.clone(), groups };
        let calls = addrs.iter().map(|addr| {
            let heartbeat = heartbeat.clone();
            async move {
                if let Err(e) = self.call(addr, heartbeat, self.timeout()).await {
                    tracing::debug!(broker = %addr, error = %e, "producer heartbeat failed");
                }
            }
        });
        futures::future::join_all(calls).await;
    }

    /// Drops every connection (after a network change).
    pub async fn reset_connections(&self) {
        self.pool.clear().await;
    }
}


#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;
    use crate::command::{RegisterBroker, UnregisterBroker};
    use crate::model::TopicConfig;
    use crate::namesrv::{NameServer, NameServerConfig};

    async fn name_server() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(NameServer::new(NameServerConfig::default(), Clock::new()).serve(listener));
        addr
    }

    /// Regression: the client stopped at the first name server that
    /// answered with an error (a lagging one that expired the brokers says
    /// TopicNotExist) and deleted its cached route, although another name
    /// server had the route.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_name_server_that_lost_the_topic_does_not_take_the_route_away() {
        let lagging = name_server().await;
        let current = name_server().await;
        let client = ClientInstance::new(ClientConfig::new(vec![lagging.clone(), current.clone()], "c"), Clock::new());
        let register = RegisterBroker {
            cluster: "c".into(),
            broker_name: "broker-a".into(),
            broker_id: 0,
            addr: "127.0.0.1:1".into(),
            topics: vec![TopicConfig::new("orders", 4)],
            role: crate::command::BrokerRole::Master,
            epoch: 0,
        };
        client.call(&current, register.clone(), client.timeout()).await.unwrap();
        // Every turn of the rotation, the lagging name server is asked
        // first once: the route must come back each time.
        for _ in 0..4 {
            let route = client.route("orders", true).await.unwrap();
            assert_eq!(route.queues.len(), 1);
        }
        // When every name server denies the topic, it is gone.
        let unknown = client.route("nope", true).await.unwrap_err();
        assert!(matches!(unknown, Error::NoRoute(_)), "{unknown}");
    }

    /// Broker `id` of group broker-a, serving topic orders, registering.
    fn register_replica(id: u64, addr: &str, role: crate::command::BrokerRole) -> RegisterBroker {
        RegisterBroker {
            cluster: "c".into(),
            broker_name: "broker-a".into(),
            broker_id: id,
            addr: addr.into(),
            topics: vec![TopicConfig::new("orders", 4)],
            role,
            epoch: 1,
        }
    }

    /// A group's route lists its master and slaves: writes go to the master,
    /// and while the group has none, reads go to a slave.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_follow_the_master_and_reads_fall_back_to_a_slave() {
        let namesrv = name_server().await;
        let client = ClientInstance::new(ClientConfig::new(vec![namesrv.clone()], "c"), Clock::new());
        let register = register_replica;
        client.call(&namesrv, register(0, "10.0.0.1:1", crate::command::BrokerRole::Master), client.timeout()).await.unwrap();
        client.call(&namesrv, register(1, "10.0.0.2:1", crate::command::BrokerRole::Slave), client.timeout()).await.unwrap();
        let route = client.route("orders", true).await.unwrap();
        assert_eq!(route.queues.len(), 1);
        assert_eq!(route.queues[0].replicas.len(), 2);
        assert_eq!(client.master_addr("broker-a").as_deref(), Some("10.0.0.1:1"));
        assert_eq!(client.broker_addr("broker-a").as_deref(), Some("10.0.0.1:1"));
        let gone = UnregisterBroker { broker_name: "broker-a".into(), broker_id: 0 };
        client.call(&namesrv, gone, client.timeout()).await.unwrap();
        client.route("orders", true).await.unwrap();
        assert_eq!(client.master_addr("broker-a"), None, "no master, no writes");
        assert_eq!(client.broker_addr("broker-a").as_deref(), Some("10.0.0.2:1"), "reads go to the slave");
        let producer = crate::client::Producer::new(client.clone(), crate::client::ProducerConfig::new("p")).unwrap();
        let sent = producer.send(crate::model::Message::new("orders", "x")).await;
        assert!(sent.is_err(), "a group without a master took a write: {sent:?}");
    }

    /// Regression (ha-swarm seed 179): a topic's cached route still named
    /// the old master while a later route of another topic showed the
    /// group without one; every send of the topic failed with no route
    /// and none asked the name servers again until the cached route aged
    /// out, 30 s later. A send that finds no master marks the route stale.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_send_that_finds_no_master_asks_for_the_route_again() {
        let namesrv = name_server().await;
        let client = ClientInstance::new(ClientConfig::new(vec![namesrv.clone()], "c"), Clock::new());
        let register = |id: u64, addr: &str, role, epoch| RegisterBroker {
            cluster: "c".into(),
            broker_name: "broker-a".into(),
            broker_id: id,
            addr: addr.into(),
            topics: vec![TopicConfig::new("orders", 1), TopicConfig::new("audit", 1)],
            role,
            epoch,
        };
        use crate::command::BrokerRole::{Master, Slave};
        client.call(&namesrv, register(0, "127.0.0.1:1", Master, 1), client.timeout()).await.unwrap();
        client.route("orders", true).await.unwrap();
        // Replica 0 is deposed; the other topic's route shows no master.
        client.call(&namesrv, register(0, "127.0.0.1:1", Slave, 2), client.timeout()).await.unwrap();
        client.route("audit", true).await.unwrap();
        assert_eq!(client.master_addr("broker-a"), None);
        let mut config = crate::client::ProducerConfig::new("p");
        config.retries = 0;
        let producer = crate::client::Producer::new(client.clone(), config).unwrap();
        let sent = producer.send(crate::model::Message::new("orders", "x")).await.unwrap_err();
        assert!(matches!(sent, Error::NoRoute(_)), "{sent}");
        // Replica 1 is elected and registers; the next send finds it.
        client.call(&namesrv, register(1, "127.0.0.1:2", Master, 2), client.timeout()).await.unwrap();
        let _ = producer.send(crate::model::Message::new("orders", "x")).await;
        assert_eq!(client.master_addr("broker-a").as_deref(), Some("127.0.0.1:2"), "the route was not fetched again");
    }

    /// A cached route that lists a group without a master is fetched again
    /// within a second, so the group's next master is used without a send
    /// having to fail first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_route_with_a_masterless_group_is_fetched_again_soon() {
        let namesrv = name_server().await;
        let client = ClientInstance::new(ClientConfig::new(vec![namesrv.clone()], "c"), Clock::new());
        use crate::command::BrokerRole::{Master, Slave};
        client.call(&namesrv, register_replica(1, "127.0.0.1:2", Slave), client.timeout()).await.unwrap();
        let route = client.route("orders", false).await.unwrap();
        assert!(route.queues[0].master().is_none());
        client.call(&namesrv, register_replica(1, "127.0.0.1:2", Master), client.timeout()).await.unwrap();
        assert!(client.route("orders", false).await.unwrap().queues[0].master().is_none(), "fetched again at once");
        tokio::time::sleep(Duration::from_millis(MASTERLESS_ROUTE_REFRESH_MS + 100)).await;
        let route = client.route("orders", false).await.unwrap();
        assert_eq!(route.queues[0].master().map(|m| m.addr.as_str()), Some("127.0.0.1:2"));
    }

    /// A master that stops answering is passed over for reads while its
    /// group has a slave, before the name servers notice it is gone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_go_to_a_slave_while_the_master_does_not_answer() {
        let namesrv = name_server().await;
        let slave = name_server().await; // anything that answers
        let client = ClientInstance::new(ClientConfig::new(vec![namesrv.clone()], "c"), Clock::new());
        for (id, addr, role) in [(0, "127.0.0.1:1", crate::command::BrokerRole::Master), (1, slave.as_str(), crate::command::BrokerRole::Slave)] {
            client.call(&namesrv, register_replica(id, addr, role), client.timeout()).await.unwrap();
        }
        client.route("orders", true).await.unwrap();
        let first = client.broker_addr("broker-a").unwrap();
        assert_eq!(first, "127.0.0.1:1", "the master first");
        assert!(client.call(&first, GetClusterInfo, client.timeout()).await.is_err());
        assert_eq!(client.broker_addr("broker-a").as_deref(), Some(slave.as_str()), "then the slave");
        assert_eq!(client.master_addr("broker-a").as_deref(), Some("127.0.0.1:1"), "writes still go to the master");
    }
}
