//! One simulated run: the cluster on madsim nodes, the workload, the
//! nemesis, and the final drain. Compiled only with `--cfg madsim`.

use crate::disk::SimDisk;
use crate::recorder::Recorder;
use crate::workload::{self, Dedupe, ProducerState};
use broker::client::{ClientConfig, ClientInstance};
use broker::clock::Clock;
use broker::model::TopicConfig;
use broker::namesrv::{NameServer, NameServerConfig};
use broker::server::{Broker, BrokerConfig, FlushMode};
use broker::store::StoreConfig;
use checker::history::Op;
use madsim::net::NetSim;
use madsim::runtime::Handle;
use madsim::task::NodeId;
use scenarios::{Fault, Node, Resolved, ScheduledFault};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Port every name server listens on.
pub const NAMESRV_PORT: u16 = 9876;
/// Port every broker listens on.
pub const BROKER_PORT: u16 = 10911;
/// When producers and consumers start, after brokers registered and topics exist.
pub const WORKLOAD_START_MS: u64 = 3_000;

/// A draw from the simulation's seeded RNG.
pub fn draw() -> u64 {
    madsim::rand::random::<u64>()
}

/// A draw in `0.0..1.0`.
pub fn draw_unit() -> f64 {
    (draw() >> 11) as f64 / (1u64 << 53) as f64
}

fn ip_of(node: &Node, consumer_index: u32) -> IpAddr {
    let (subnet, host) = match node {
        Node::Namesrv(i) => (0, *i),
        Node::Broker(i) => (1, *i),
        Node::Producer(i) => (2, *i),
        Node::Consumer { .. } => (3, consumer_index),
    };
    IpAddr::V4(Ipv4Addr::new(10, subnet, (host / 250) as u8, (host % 250 + 1) as u8))
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
    dedupe: Dedupe,
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
            dedupe: Dedupe::default(),
            resolved: resolved.clone(),
        };
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
                Node::Broker(_) => world.broker_node(&name, ip, clock),
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
                    let stop_at = scenario.duration_ms() + scenario.tail_s * 1000 / 2;
                    let node_name = name.clone();
                    world.node(&name, ip, move || {
                            workload::run_producer(
                                node_name.clone(),
                                spec.clone(),
                                namesrvs.clone(),
                                clock.clone(),
                                recorder.clone(),
                                state.clone(),
                                stop_at,
                            )
                        })
                }
                Node::Consumer { group, .. } => {
                    consumer_index += 1;
                    let spec = scenario.workload.consumers.iter().find(|c| &c.group == group).expect("group exists").clone();
                    let fifo = scenario.workload.producers.iter().any(|p| p.topic == spec.topic && p.fifo);
                    let (recorder, dedupe, namesrvs, clock) =
                        (world.recorder.clone(), world.dedupe.clone(), world.namesrv_addrs.clone(), world.clocks[&name].clone());
                    let node_name = name.clone();
                    world.node(&name, ip, move || {
                            workload::run_consumer(
                                node_name.clone(),
                                spec.clone(),
                                fifo,
                                namesrvs.clone(),
                                clock.clone(),
                                recorder.clone(),
                                dedupe.clone(),
                            )
                        })
                }
                _ => continue,
            };
            world.ids.insert(name, id);
        }
        world
    }

    /// A madsim node whose `init` runs again on every restart.
    fn node<F: std::future::Future + 'static>(&self, name: &str, ip: IpAddr, init: impl Fn() -> F + Send + Sync + 'static) -> NodeId {
        self.handle.create_node().name(name).ip(ip).init(init).build().id()
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

    fn broker_config(&self, name: &str, ip: IpAddr) -> BrokerConfig {
        let topology = &self.resolved.scenario.topology;
        let mut config = BrokerConfig::new(name, SocketAddr::new(ip, BROKER_PORT).to_string());
        config.namesrv_addrs = self.namesrv_addrs.clone();
        config.flush = match topology.flush {
            scenarios::FlushMode::Sync => FlushMode::Sync,
            scenarios::FlushMode::Async => FlushMode::Async,
        };
        config.flush_interval_ms = topology.flush_interval_ms;
        config.store = StoreConfig { segment_bytes: 1024 * 1024, ..StoreConfig::default() };
        config
    }

    fn broker_node(&mut self, name: &str, ip: IpAddr, clock: Clock) -> NodeId {
        let disk = SimDisk::new();
        self.disks.insert(name.to_string(), disk.clone());
        let config = self.broker_config(name, ip);
        self.node(name, ip, move || {
                let (config, clock, disk) = (config.clone(), clock.clone(), disk.clone());
                async move {
                    // A supervisor that restarts the process when the store
                    // cannot open (a disk fault during recovery).
                    let broker = loop {
                        match Broker::open(config.clone(), Arc::new(disk.clone()), clock.clone()) {
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

    async fn create_topics(&self) {
        let scenario = &self.resolved.scenario;
        let admin_node = self.handle.create_node().name("admin").ip(IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1))).build();
        let namesrvs = self.namesrv_addrs.clone();
        let mut topics: BTreeMap<String, bool> = BTreeMap::new();
        for p in &scenario.workload.producers {
            *topics.entry(p.topic.clone()).or_default() |= p.fifo;
        }
        let queues = scenario.topology.queues_per_topic;
        let brokers: Vec<String> = (0..scenario.broker_count())
            .map(|i| SocketAddr::new(ip_of(&Node::Broker(i), 0), BROKER_PORT).to_string())
            .collect();
        admin_node
            .spawn(async move {
                let client = ClientInstance::new(ClientConfig::new(namesrvs, "admin"), Clock::new());
                for (topic, order) in topics {
                    let config = TopicConfig { order, ..TopicConfig::new(topic, queues) };
                    for addr in &brokers {
                        let request = broker::protocol::Request::CreateTopic { config: config.clone() };
                        // Brokers are up by now; a failure here is a harness bug.
                        client.call(addr, &request, Duration::from_secs(10)).await.expect("topic creation");
                    }
                }
            })
            .await
            .expect("admin task");
        self.handle.kill(admin_node.id());
    }

    /// Applies one fault now and records it.
    pub fn inject(&self, fault: &ScheduledFault) {
        let net = NetSim::current();
        let rec = &self.recorder;
        match &fault.fault {
            Fault::Kill { node } => {
                rec.note("nemesis", Op::Kill, Some(node), None);
                self.handle.kill(self.ids[node]);
            }
            Fault::ConsumerCrash { node } => {
                rec.note("nemesis", Op::Crash, Some(node), None);
                self.handle.kill(self.ids[node]);
            }
            Fault::PowerLoss { node } => {
                let unsynced = self.disks.get(node).map(SimDisk::unsynced_bytes).unwrap_or(0);
                rec.note("nemesis", Op::PowerLoss, Some(node), Some(format!("unsynced_bytes={unsynced}")));
                self.handle.kill(self.ids[node]);
                if let Some(disk) = self.disks.get(node) {
                    disk.power_loss(|n| (draw() % (n as u64 + 1)) as usize);
                }
            }
            Fault::Pause { node } => {
                rec.note("nemesis", Op::Pause, Some(node), None);
                self.handle.pause(self.ids[node]);
            }
            Fault::Partition { side, from, one_way } => {
                rec.note("nemesis", Op::Partition, Some(&side.join(",")), Some(format!("from={} one_way={one_way}", from.join(","))));
                for a in side {
                    for b in from {
                        net.clog_link(self.ids[a], self.ids[b]);
                        if !one_way {
                            net.clog_link(self.ids[b], self.ids[a]);
                        }
                    }
                }
            }
            Fault::Latency { nodes, min_ms, max_ms } => {
                // madsim's latency is one setting for the whole network.
                rec.note("nemesis", Op::Latency, Some(&nodes.join(",")), Some(format!("{min_ms}..{max_ms} ms, network-wide")));
                let (lo, hi) = (*min_ms, (*max_ms).max(*min_ms + 1));
                net.update_config(|c| c.send_latency = Duration::from_millis(lo)..Duration::from_millis(hi));
            }
            Fault::Loss { nodes, rate } => {
                rec.note("nemesis", Op::Loss, Some(&nodes.join(",")), Some(format!("rate={rate}, network-wide")));
                let rate = *rate;
                net.update_config(|c| c.packet_loss_rate = rate);
            }
            Fault::ClockSkew { node, skew_ms } => {
                rec.note("nemesis", Op::ClockSkew, Some(node), Some(format!("skew_ms={skew_ms}")));
                self.clocks[node].set_offset_ms(*skew_ms);
            }
            Fault::ClockJump { node, jump_ms } => {
                rec.note("nemesis", Op::ClockJump, Some(node), Some(format!("jump_ms={jump_ms}")));
                self.clocks[node].jump_ms(*jump_ms);
            }
            Fault::DiskFault { node, disk } => {
                let Some(sim_disk) = self.disks.get(node) else { return };
                if *disk == scenarios::DiskFaultKind::FlipByte {
                    let at = sim_disk.flip_byte(|n| draw() % n.max(1));
                    rec.note("nemesis", Op::DiskFault, Some(node), Some(format!("{disk:?} at {at:?}")));
                } else {
                    rec.note("nemesis", Op::DiskFault, Some(node), Some(format!("{disk:?}")));
                    sim_disk.set(*disk, true);
                }
            }
        }
    }

    /// Undoes a fault (restart, resume, unclog, unskew) and records it.
    pub fn heal(&self, fault: &ScheduledFault) {
        let net = NetSim::current();
        let rec = &self.recorder;
        match &fault.fault {
            Fault::Kill { node } | Fault::PowerLoss { node } | Fault::ConsumerCrash { node } => {
                rec.note("nemesis", Op::Restart, Some(node), None);
                self.handle.restart(self.ids[node]);
            }
            Fault::Pause { node } => {
                rec.note("nemesis", Op::Resume, Some(node), None);
                self.handle.resume(self.ids[node]);
            }
            Fault::Partition { side, from, .. } => {
                rec.note("nemesis", Op::Heal, Some(&side.join(",")), None);
                for a in side {
                    for b in from {
                        net.unclog_link(self.ids[a], self.ids[b]);
                        net.unclog_link(self.ids[b], self.ids[a]);
                    }
                }
            }
            Fault::Latency { nodes, .. } | Fault::Loss { nodes, .. } => {
                rec.note("nemesis", Op::Heal, Some(&nodes.join(",")), Some("network defaults".into()));
                net.update_config(|c| *c = madsim::net::Config::default());
            }
            Fault::ClockSkew { node, .. } => {
                rec.note("nemesis", Op::Heal, Some(node), Some("clock offset 0".into()));
                self.clocks[node].set_offset_ms(0);
            }
            Fault::ClockJump { .. } => {}
            Fault::DiskFault { node, disk } => {
                if let Some(sim_disk) = self.disks.get(node) {
                    rec.note("nemesis", Op::Heal, Some(node), Some(format!("{disk:?}")));
                    sim_disk.heal();
                }
            }
        }
    }

    /// Kills every consumer process (end of the run, before the drain).
    pub fn stop_clients(&self) {
        for (name, id) in &self.ids {
            if name.starts_with("consumer-") || name.starts_with("producer-") {
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
        let (recorder, dedupe) = (self.recorder.clone(), self.dedupe.clone());
        node.spawn(async move { workload::drain(namesrvs, groups, recorder, dedupe).await }).await.expect("drain task");
        self.handle.kill(node.id());
    }
}
