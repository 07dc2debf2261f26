//! One simulated run: the cluster on madsim nodes, its workload and final
//! drain, and the [`Cluster`] operations the nemesis hurts it with.
//! Compiled only with `--cfg madsim`.

use broker::command::{CreateTopic, UpdateSubscriptionGroup};

use crate::cluster::{Cluster, LinkFault};
use crate::disk::{FlippedBit, SimDisk};
use crate::draw::draw;
use crate::recorder::Recorder;
use crate::database::{self, Database, DbClient, DB_PORT};
use crate::workload::{self, CrashTrigger, ProducerState};
use broker::client::{ClientConfig, ClientInstance};
use broker::clock::Clock;
use broker::model::{SubscriptionGroup, TopicConfig};
use broker::namesrv::{NameServer, NameServerConfig};
use broker::controller::{Controller, ControllerConfig};
use broker::server::{Broker, BrokerConfig, FlushMode, ReplicationRole};
use broker::store::StoreConfig;
use checker::history::{Event, Kind, Op};
use madsim::net::NetSim;
use madsim::runtime::Handle;
use madsim::task::NodeId;
use scenarios::{ConsumerKind, CrashStep, DiskFaultKind, Node, Resolved};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Port every name server listens on.
pub const NAMESRV_PORT: u16 = 9876;
/// Port every broker listens on.
pub const BROKER_PORT: u16 = 10911;
/// Port every controller listens on.
pub const CONTROLLER_PORT: u16 = 9878;
/// The business database's node name.
pub const DB_NODE: &str = "db-0";

/// Where the business database listens.
fn db_addr() -> SocketAddr {
    SocketAddr::new(ip_of(&Node::Database(0), 0), DB_PORT)
}


fn ip_of(node: &Node, consumer_index: u32) -> IpAddr {
    let (subnet, host) = match node {
        Node::Namesrv(i) => (0, *i),
        Node::Broker(i) => (1, *i),
        Node::Producer(i) => (2, *i),
        Node::Consumer { .. } => (3, consumer_index),
        Node::Database(i) => (4, *i),
        Node::Hostile(i) => (5, *i),
        Node::Controller(i) => (6, *i),
    };
    IpAddr::V4(Ipv4Addr::new(10, subnet, (host / 250) as u8, (host % 250 + 1) as u8))
}

/// Sends an admin command (a topic or a subscription group to create) to
/// the master of `group`, waiting for the group to have one (the
/// controllers elect it a few seconds into the run).
async fn create_on_master<C: broker::protocol::Call + Clone>(client: &ClientInstance, group: &str, command: &C) {
    loop {
        let master = client.cluster().await.ok().and_then(|brokers| {
            brokers
                .into_iter()
                .filter(|b| b.broker_name == group && b.role == broker::command::BrokerRole::Master)
                .max_by_key(|b| b.epoch)
        });
        if let Some(master) = master {
            let created = client.call(&master.addr, command.clone(), Duration::from_secs(3)).await;
            if created.is_ok() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The spec of hostile process `index`, counted across the entries.
fn hostile_spec(scenario: &scenarios::Scenario, index: u32) -> &scenarios::HostileSpec {
    let mut first = 0;
    for spec in &scenario.workload.hostile {
        if index < first + spec.count {
            return spec;
        }
        first += spec.count;
    }
    panic!("hostile-{index} is not a node of this scenario")
}

/// The cluster of one run and the handles to hurt it.
pub struct World {
    resolved: Resolved,
    handle: Handle,
    recorder: Recorder,
    /// Node name -> madsim node id.
    ids: BTreeMap<String, NodeId>,
    /// Broker name -> its disk (outlives restarts).
    disks: BTreeMap<String, SimDisk>,
    /// Node name -> its clock (the offset survives restarts, as a machine's clock would).
    clocks: BTreeMap<String, Clock>,
    namesrv_addrs: Vec<String>,
    /// The business database's disk (outlives restarts of `db-0`).
    db_disk: SimDisk,
    /// Consumer name -> the crash armed for a step of its next delivery.
    triggers: BTreeMap<String, CrashTrigger>,
}

impl World {
    /// Builds every node of the topology and starts servers and clients.
    pub async fn build(resolved: Resolved, recorder: Recorder) -> World {
        let handle = Handle::current();
        let scenario = &resolved.scenario;
        let mut world = World {
            handle,
            recorder,
            ids: BTreeMap::new(),
            disks: BTreeMap::new(),
            clocks: BTreeMap::new(),
            namesrv_addrs: (0..scenario.topology.name_servers)
                .map(|i| SocketAddr::new(ip_of(&Node::Namesrv(i), 0), NAMESRV_PORT).to_string())
                .collect(),
            db_disk: SimDisk::new(),
            triggers: BTreeMap::new(),
            resolved: resolved.clone(),
        };
        // The cost model's clock step and links, before any connection opens.
        NetSim::current().set_tcp_bandwidth(scenario.topology.cost.as_ref().map(|c| c.link_mib_s * 1024.0 * 1024.0));
        if let Some(cost) = &scenario.topology.cost {
            madsim::time::set_min_sleep(Duration::from_micros(cost.clock_step_us));
            let config = world.base_net_config();
            NetSim::current().update_config(|c| *c = config);
        }
        let db_id = world.database_node();
        world.ids.insert(DB_NODE.to_string(), db_id);
        // A power loss of the database drops its unsynced bytes like a broker's.
        world.disks.insert(DB_NODE.to_string(), world.db_disk.clone());
        let mut consumer_index = 0;
        for node in scenario.nodes() {
            let name = node.to_string();
            let ip = ip_of(&node, consumer_index);
            if matches!(node, Node::Consumer { .. }) {
                consumer_index += 1;
            }
            let clock = Clock::new();
            world.clocks.insert(name.clone(), clock.clone());
            let id = match &node {
                Node::Namesrv(_) => world.namesrv_node(&name, ip, clock),
                Node::Broker(n) => world.broker_node(&name, *n, ip, clock),
                Node::Controller(n) => world.controller_node(&name, *n, ip, clock),
                _ => continue,
            };
            world.ids.insert(name, id);
        }
        // Let brokers register, then create the topics on every broker.
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        world.create_topics().await;
        let mut consumer_index = 0;
        let producer_state = ProducerState::default();
        for node in scenario.nodes() {
            let name = node.to_string();
            let ip = ip_of(&node, consumer_index);
            let id = match &node {
                Node::Producer(index) => {
                    let spec = workload::producer_spec(scenario, *index).clone();
                    let (recorder, state, namesrvs, clock) =
                        (world.recorder.clone(), producer_state.clone(), world.namesrv_addrs.clone(), world.clocks[&name].clone());
                    let stop_at = scenario.producer_stop_ms();
                    let node_name = name.clone();
                    let levels = scenario.topology.delay_levels_ms.clone();
                    world.node(&name, ip, move || {
                            workload::run_producer(
                                node_name.clone(),
                                spec.clone(),
                                namesrvs.clone(),
                                clock.clone(),
                                recorder.clone(),
                                state.clone(),
                                stop_at,
                                levels.clone(),
                            )
                        })
                }
                Node::Consumer { group, .. } => {
                    consumer_index += 1;
                    let spec = scenario.workload.consumers.iter().find(|c| &c.group == group).expect("group exists").clone();
                    let fifo = scenario.workload.producers.iter().any(|p| p.topic == spec.topic && p.fifo);
                    let (recorder, namesrvs, clock) = (world.recorder.clone(), world.namesrv_addrs.clone(), world.clocks[&name].clone());
                    let process = name.clone();
                    let trigger = world.triggers.entry(name.clone()).or_insert_with(|| CrashTrigger::new(move || Handle::current().kill(process.as_str()))).clone();
                    let node_name = name.clone();
                    // A broadcasting consumer keeps its offsets on a disk of
                    // its own, which outlives its crashes.
                    let local = spec.broadcast.then(SimDisk::new);
                    world.node(&name, ip, move || {
                        let (name, spec, namesrvs, clock, recorder, trigger) =
                            (node_name.clone(), spec.clone(), namesrvs.clone(), clock.clone(), recorder.clone(), trigger.clone());
                        let local = local.clone().map(|d| Arc::new(d) as Arc<dyn broker::store::Disk>);
                        async move {
                            let db = DbClient::new(db_addr());
                            match spec.kind {
                                ConsumerKind::Push => workload::run_consumer(name, spec, fifo, namesrvs, clock, recorder, db, trigger, local).await,
                                ConsumerKind::Simple => workload::run_simple_consumer(name, spec, fifo, namesrvs, clock, recorder, db, trigger).await,
                            }
                        }
                    })
                }
                Node::Hostile(index) => {
                    let spec = hostile_spec(scenario, *index).clone();
                    let brokers: Vec<String> = (0..scenario.broker_count())
                        .map(|i| SocketAddr::new(ip_of(&Node::Broker(i), 0), BROKER_PORT).to_string())
                        .collect();
                    let victim = scenario.workload.producers[0].topic.clone();
                    let (recorder, node_name) = (world.recorder.clone(), name.clone());
                    let stop_at = scenario.producer_stop_ms();
                    world.node(&name, ip, move || {
                        crate::hostile::run_hostile(node_name.clone(), spec.clone(), brokers.clone(), victim.clone(), recorder.clone(), stop_at)
                    })
                }
                _ => continue,
            };
            world.ids.insert(name, id);
        }
        // An operator per group that resends its dead letters at a set time.
        for (i, spec) in scenario.workload.consumers.iter().enumerate() {
            let Some(at_s) = spec.dlq_resend_at_s else { continue };
            let name = format!("operator-{}", spec.group);
            let ip = IpAddr::V4(Ipv4Addr::new(10, 9, 1, i as u8 + 1));
            let (recorder, namesrvs, group, node_name) = (world.recorder.clone(), world.namesrv_addrs.clone(), spec.group.clone(), name.clone());
            let at_ms = (at_s * 1000.0) as u64;
            let id = world.node(&name, ip, move || {
                workload::resend_dead_letters(node_name.clone(), namesrvs.clone(), group.clone(), at_ms, recorder.clone())
            });
            world.ids.insert(name, id);
        }
        // An operator per group that resets its offsets at a set time.
        for (i, spec) in scenario.workload.consumers.iter().enumerate() {
            let Some(at_s) = spec.offset_reset_at_s else { continue };
            let name = format!("resetter-{}", spec.group);
            let ip = IpAddr::V4(Ipv4Addr::new(10, 9, 2, i as u8 + 1));
            let (recorder, namesrvs, group, topic, node_name) =
                (world.recorder.clone(), world.namesrv_addrs.clone(), spec.group.clone(), spec.topic.clone(), name.clone());
            let (at_ms, rewind_ms) = ((at_s * 1000.0) as u64, (spec.offset_reset_rewind_s * 1000.0) as u64);
            let id = world.node(&name, ip, move || {
                workload::reset_offsets(node_name.clone(), namesrvs.clone(), group.clone(), topic.clone(), at_ms, rewind_ms, recorder.clone())
            });
            world.ids.insert(name, id);
        }
        world
    }

    /// A madsim node whose `init` runs again on every restart.
    fn node<F: std::future::Future + 'static>(&self, name: &str, ip: IpAddr, init: impl Fn() -> F + Send + Sync + 'static) -> NodeId {
        self.handle.create_node().name(name).ip(ip).init(init).build().id()
    }

    /// The business database: `db-0`, with a disk that outlives restarts.
    fn database_node(&self) -> NodeId {
        let disk = self.db_disk.clone();
        self.node(DB_NODE, db_addr().ip(), move || {
            let disk = disk.clone();
            async move {
                let db = loop {
                    match Database::open(Arc::new(disk.clone())) {
                        Ok(db) => break db,
                        Err(e) => {
                            tracing::warn!(error = %e, "database failed to open; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                };
                let listener = tokio::net::TcpListener::bind(db_addr()).await.expect("database port is free");
                database::serve(listener, db).await;
            }
        })
    }

    /// Records the database's durable effects, as `effect` events of
    /// process `db`: what the exactly-once check judges. Call once the
    /// clients and the drain are done; the database is stopped first and
    /// its unsynced bytes dropped, as a power loss would.
    pub fn record_effects(&self) {
        self.handle.kill(self.ids[DB_NODE]);
        self.db_disk.power_loss(|_| 0);
        let effects = match database::replay(&self.db_disk) {
            Ok((effects, _)) => effects,
            Err(e) => {
                self.recorder.note(DB_NODE, Op::DrainGaveUp, None, Some(format!("the database's log is unreadable: {e}")));
                return;
            }
        };
        for effect in effects {
            self.recorder.record(Event::new(0, DB_NODE, Kind::Ok, Op::Effect).group(effect.group).key(effect.key).msg_id(effect.msg_id));
        }
    }

    fn namesrv_node(&self, name: &str, ip: IpAddr, clock: Clock) -> NodeId {
        let config = NameServerConfig::default();
        self.node(name, ip, move || {
                let (config, clock) = (config.clone(), clock.clone());
                async move {
                    let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, NAMESRV_PORT)).await.expect("namesrv port is free");
                    let _ = NameServer::new(config, clock).serve(listener).await;
                }
            })
    }

    /// The configuration of process `broker-N`: group `N / replicas`'s
    /// broker name, its replica number as broker id, and its role (replica
    /// 0 starts as the master).
    fn broker_config(&self, n: u32, ip: IpAddr) -> BrokerConfig {
        let scenario = &self.resolved.scenario;
        let topology = &scenario.topology;
        let (group, replica) = scenario.broker_replica(n);
        let mut config = BrokerConfig::new(scenario.broker_group_name(group), SocketAddr::new(ip, BROKER_PORT).to_string());
        config.broker_id = u64::from(replica);
        // Groups may subscribe by SQL92 condition.
        config.enable_property_filter = true;
        // With controllers every replica may become master, and the role
        // says only how a master replicates.
        let master = replica == 0 || topology.controllers > 0;
        config.role = match (master, topology.replication) {
            (true, scenarios::ReplicationMode::Sync) => ReplicationRole::SyncMaster,
            (true, scenarios::ReplicationMode::Async) => ReplicationRole::AsyncMaster,
            (false, _) => ReplicationRole::Slave,
        };
        config.controller_addrs = self.controller_addrs();
        // Shorter than RocketMQ's 15 s, so a dead slave leaves the set (and
        // SYNC sends resume) well inside a run.
        config.ha_max_time_slave_not_catchup_ms = 5_000;
        config.namesrv_addrs = self.namesrv_addrs.clone();
        config.flush = match topology.flush {
            scenarios::FlushMode::Sync => FlushMode::Sync,
            scenarios::FlushMode::Async => FlushMode::Async,
        };
        config.flush_interval_ms = topology.flush_interval_ms;
        config.store = StoreConfig { segment_bytes: 1024 * 1024, ..StoreConfig::default() };
        // RocketMQ's shortest registerNameServerPeriod: a name server that
        // restarts empty learns every broker within 10 s, inside the tail's
        // liveness bound (with 30 s a consumer that rejoined in that window
        // could be given queues of a broker it had no route to).
        config.register_interval_ms = 10_000;
        config.delay_levels = broker::model::DelayLevels::from_ms(topology.delay_levels_ms.clone()).expect("validated with the scenario");
        config.lock_lease_ms = workload::BROKER_LOCK_LEASE_MS;
        config.transaction_timeout_ms = topology.transaction_timeout_ms;
        config.transaction_check_interval_ms = topology.transaction_check_interval_ms;
        config.transaction_check_max = topology.transaction_check_max;
        // A killed client's connections close at once on a real network
        // (RocketMQ then drops it from its groups); madsim sends no reset,
        // so the broker relies on expiry: three missed heartbeats.
        config.client_expiry_ms = 15_000;
        config
    }

    /// What serving requests costs broker `n` under the scenario's cost
    /// model, if it has one.
    fn service_cost(&self, n: u32) -> Option<crate::cost::ServiceCost> {
        let topology = &self.resolved.scenario.topology;
        topology.cost.as_ref().map(|c| crate::cost::ServiceCost {
            workers: c.broker_workers,
            // The broker's flush mode is the topology's.
            send_us: c.send_us + if topology.flush == scenarios::FlushMode::Sync { c.sync_send_us } else { 0.0 },
            pull_us: c.pull_us,
            other_us: c.other_us,
            per_kib_us: c.per_kib_us,
            flush_us: c.flush_us,
            stalls: (c.worker_stall_every_ms > 0.0 && c.worker_stall_ms[0] > 0.0).then(|| {
                // Each broker's stalls are drawn from the run's seed.
                let mut rng = scenarios::Rng::new(self.resolved.seed, &format!("stalls broker-{n}"));
                let (every_us, length_ms) = (c.worker_stall_every_ms * 1000.0, scenarios::LogNormal::from_percentiles(c.worker_stall_ms));
                crate::cost::Stalls::new(move || (rng.exponential(every_us), length_ms.draw(&mut rng) * 1000.0))
            }),
            late: (c.worker_late_share > 0.0).then(|| {
                let mut rng = scenarios::Rng::new(self.resolved.seed, &format!("late broker-{n}"));
                let share = c.worker_late_share;
                crate::cost::Lateness::new(move || if rng.unit() < share { rng.exponential(1.0) } else { 0.0 })
            }),
        })
    }

    fn broker_node(&mut self, name: &str, n: u32, ip: IpAddr, clock: Clock) -> NodeId {
        let disk = SimDisk::new();
        if let Some(cost) = &self.resolved.scenario.topology.cost {
            // Each broker's disk draws its own fsync latencies from the run's seed.
            disk.set_cost(cost.disk_mib_s, cost.fsync_ms, scenarios::Rng::new(self.resolved.seed, &format!("fsync {name}")));
        }
        self.disks.insert(name.to_string(), disk.clone());
        let config = self.broker_config(n, ip);
        let cost = self.service_cost(n);
        self.node(name, ip, move || {
                let (config, clock, disk, cost) = (config.clone(), clock.clone(), disk.clone(), cost.clone());
                async move {
                    // A supervisor that restarts the process when the store
                    // cannot open (a disk fault during recovery).
                    let broker = loop {
                        // Each start of the process has a pool of its own.
                        let hook = cost.clone().map(|c| Arc::new(crate::cost::WorkerPool::new(c)) as Arc<dyn broker::server::WorkHook>);
                        match Broker::open_with(config.clone(), Arc::new(disk.clone()), clock.clone(), hook) {
                            Ok(b) => break b,
                            Err(e) => {
                                tracing::warn!(broker = %config.broker_name, error = %e, "store failed to open; retrying");
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                        }
                    };
                    let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, BROKER_PORT)).await.expect("broker port is free");
                    let _ = broker.serve(listener).await;
                }
            })
    }

    /// The controllers' addresses.
    fn controller_addrs(&self) -> Vec<String> {
        (0..self.resolved.scenario.topology.controllers)
            .map(|i| SocketAddr::new(ip_of(&Node::Controller(i), 0), CONTROLLER_PORT).to_string())
            .collect()
    }

    /// A controller: its Raft log on a disk that outlives restarts.
    fn controller_node(&mut self, name: &str, n: u32, ip: IpAddr, clock: Clock) -> NodeId {
        let disk = SimDisk::new();
        self.disks.insert(name.to_string(), disk.clone());
        let peers: BTreeMap<u64, String> = self.controller_addrs().into_iter().enumerate().map(|(i, addr)| (i as u64, addr)).collect();
        let config = ControllerConfig::new(u64::from(n), peers);
        self.node(name, ip, move || {
            let (config, clock, disk) = (config.clone(), clock.clone(), disk.clone());
            async move {
                let controller = loop {
                    match Controller::open(config.clone(), Arc::new(disk.clone()), clock.clone()).await {
                        Ok(c) => break c,
                        Err(e) => {
                            tracing::warn!(controller = config.id, error = %e, "controller failed to open; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                };
                let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, CONTROLLER_PORT)).await.expect("controller port is free");
                let _ = controller.serve(listener).await;
            }
        })
    }

    async fn create_topics(&self) {
        let scenario = &self.resolved.scenario;
        let admin_node = self.handle.create_node().name("admin").ip(IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1))).build();
        let namesrvs = self.namesrv_addrs.clone();
        let mut topics: BTreeMap<String, bool> = BTreeMap::new();
        for p in &scenario.workload.producers {
            *topics.entry(p.topic.clone()).or_default() |= p.fifo;
        }
        let queues = scenario.topology.queues_per_topic;
        // On the masters; slaves copy topics from them.
        let brokers: Vec<String> = (0..scenario.broker_count())
            .filter(|&i| scenario.broker_replica(i).1 == 0)
            .map(|i| SocketAddr::new(ip_of(&Node::Broker(i), 0), BROKER_PORT).to_string())
            .collect();
        let groups: Vec<String> = (0..scenario.topology.broker_groups).map(|g| scenario.broker_group_name(g)).collect();
        let elected = scenario.topology.controllers > 0;
        // Consumer groups whose settings the brokers keep, as an operator
        // creates them before the consumers start.
        let subscription_groups: Vec<UpdateSubscriptionGroup> = scenario
            .workload
            .consumers
            .iter()
            .filter(|c| c.group_on_broker)
            .map(|c| UpdateSubscriptionGroup {
                config: SubscriptionGroup { group_name: c.group.clone(), retry_max_times: c.max_reconsume_times, ..SubscriptionGroup::default() },
            })
            .collect();
        admin_node
            .spawn(async move {
                let client = ClientInstance::new(ClientConfig::new(namesrvs, "admin"), Clock::new());
                if elected {
                    // The controllers elect the masters: create the topics
                    // on each group's master once one has registered.
                    for (topic, order) in &topics {
                        let config = TopicConfig { order: *order, ..TopicConfig::new(topic.clone(), queues) };
                        for group in &groups {
                            create_on_master(&client, group, &CreateTopic { config: config.clone() }).await;
                        }
                    }
                    for command in &subscription_groups {
                        for group in &groups {
                            create_on_master(&client, group, command).await;
                        }
                    }
                    return;
                }
                for (topic, order) in topics {
                    let config = TopicConfig { order, ..TopicConfig::new(topic, queues) };
                    for addr in &brokers {
                        // Brokers are up by now; a failure here is a harness bug.
                        client.call(addr, CreateTopic { config: config.clone() }, Duration::from_secs(10)).await.expect("topic creation");
                    }
                }
                for command in subscription_groups {
                    for addr in &brokers {
                        client.call(addr, command.clone(), Duration::from_secs(10)).await.expect("subscription group creation");
                    }
                }
            })
            .await
            .expect("admin task");
        self.handle.kill(admin_node.id());
    }

    /// Kills every client process, hostile ones included (end of the run,
    /// before the drain).
    pub fn stop_clients(&self) {
        let scenario = &self.resolved.scenario;
        // Transactional producers stay: they answer the check-backs of the
        // halves the drain waits for (they stopped sending already).
        let transactional = |name: &str| {
            name.strip_prefix("producer-")
                .and_then(|i| i.parse::<u32>().ok())
                .is_some_and(|i| workload::producer_spec(scenario, i).transaction.is_some())
        };
        for (name, id) in &self.ids {
            if transactional(name) {
                continue;
            }
            if name.starts_with("consumer-") || name.starts_with("producer-") || name.starts_with("hostile-") {
                self.handle.kill(*id);
            }
        }
    }

    /// Kills every node, so that their tasks' futures are dropped before the
    /// runtime is: madsim drops a killed node's futures when it next polls
    /// them, and futures parked in cycles of `Arc`s and wakers would
    /// otherwise outlive the run (several MB a seed in a sweep).
    pub fn shutdown(&self) {
        for id in self.ids.values() {
            self.handle.kill(*id);
        }
    }

    /// Reads every group's queues from its committed offset to the end,
    /// recording what it finds as deliveries of process `drain`.
    pub async fn drain(&self) {
        let node = self.handle.create_node().name("drain").ip(IpAddr::V4(Ipv4Addr::new(10, 9, 0, 2))).build();
        let namesrvs = self.namesrv_addrs.clone();
        let groups = self.resolved.scenario.workload.consumers.clone();
        let recorder = self.recorder.clone();
        let db = DbClient::new(db_addr());
        // Long enough for the longest delay level to pass once more.
        let delay_wait_ms = self.resolved.scenario.topology.delay_levels_ms.iter().max().copied().unwrap_or(0) + 30_000;
        // Long enough for every open half to be checked the most times.
        let t = &self.resolved.scenario.topology;
        let halves_wait_ms = t.transaction_timeout_ms + t.transaction_check_interval_ms * (u64::from(t.transaction_check_max) + 2) + 10_000;
        node.spawn(async move { workload::drain(namesrvs, groups, recorder, db, delay_wait_ms, halves_wait_ms).await })
            .await
            .expect("drain task");
        self.handle.kill(node.id());
    }
}

impl World {
    /// The network without faults: madsim's defaults (1-10 ms a packet), or
    /// the cost model's link latency.
    fn base_net_config(&self) -> madsim::net::Config {
        let mut config = madsim::net::Config::default();
        if let Some(cost) = &self.resolved.scenario.topology.cost {
            let [lo, hi] = cost.link_latency_ms.map(|ms| Duration::from_secs_f64(ms / 1000.0));
            // madsim draws from a half-open range: never an empty one.
            config.send_latency = lo..hi.max(lo + Duration::from_nanos(1));
        }
        config
    }
}

/// A latency range of whole milliseconds as madsim draws it: half-open,
/// never empty.
fn latency_range((lo, hi): (u64, u64)) -> std::ops::Range<Duration> {
    Duration::from_millis(lo)..Duration::from_millis(hi.max(lo + 1))
}

/// The madsim world's faults: madsim kills, restarts, pauses and resumes
/// nodes, clogs links and draws latency and loss; the simulated disks and
/// clocks take the rest.
impl Cluster for World {
    fn nodes(&self) -> Vec<String> {
        self.ids.keys().cloned().collect()
    }

    fn kill(&self, node: &str) {
        self.handle.kill(self.ids[node]);
    }

    fn power_off(&self, node: &str) {
        self.handle.kill(self.ids[node]);
        if let Some(disk) = self.disks.get(node) {
            disk.power_loss(|n| (draw() % (n as u64 + 1)) as usize);
        }
    }

    fn restart(&self, node: &str) {
        self.handle.restart(self.ids[node]);
    }

    fn pause(&self, node: &str) {
        self.handle.pause(self.ids[node]);
    }

    fn resume(&self, node: &str) {
        self.handle.resume(self.ids[node]);
    }

    fn cut(&self, from: &str, to: &str, cut: bool) {
        let net = NetSim::current();
        if cut {
            net.clog_link(self.ids[from], self.ids[to]);
        } else {
            net.unclog_link(self.ids[from], self.ids[to]);
        }
    }

    fn set_link(&self, from: &str, to: &str, fault: Option<LinkFault>) {
        let (Some(&src), Some(&dst)) = (self.ids.get(from), self.ids.get(to)) else { return };
        let fault = fault.map(|f| madsim::net::LinkFault { extra_latency: f.latency_ms.map(latency_range), loss_rate: f.loss_rate });
        NetSim::current().set_link_fault(src, dst, fault);
    }

    fn set_network(&self, fault: Option<LinkFault>) {
        let mut config = self.base_net_config();
        if let Some(fault) = fault {
            if let Some(latency) = fault.latency_ms {
                config.send_latency = latency_range(latency);
            }
            config.packet_loss_rate = fault.loss_rate;
        }
        NetSim::current().update_config(|c| *c = config);
    }

    fn shift_clock(&self, node: &str, ms: i64) {
        self.clocks[node].jump_ms(ms);
    }

    fn unsynced_bytes(&self, node: &str) -> Option<u64> {
        self.disks.get(node).map(SimDisk::unsynced_bytes)
    }

    fn disk_fault(&self, node: &str, fault: DiskFaultKind, on: bool) -> bool {
        let Some(disk) = self.disks.get(node) else { return false };
        disk.set(fault, on);
        true
    }

    fn flip_bit(&self, node: &str) -> Option<Option<FlippedBit>> {
        Some(self.disks.get(node)?.flip_byte(|n| draw() % n.max(1)))
    }

    fn arm_crash(&self, node: &str, step: CrashStep) {
        self.triggers[node].arm(step);
    }

    fn disarm_crash(&self, node: &str) -> bool {
        self.triggers[node].disarm()
    }
}
