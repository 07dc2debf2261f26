//! Routing, served by the name servers: brokers register, clients ask
//! which brokers serve a topic.

use crate::model::TopicConfig;
use serde::{Deserialize, Serialize};

/// Broker -> name server, every 30 s: here I am, with my topics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBroker {
    /// Cluster the broker belongs to.
    pub cluster: String,
    /// Broker (group) name.
    pub broker_name: String,
    /// 0 for a master.
    pub broker_id: u64,
    /// Address clients connect to.
    pub addr: String,
    /// Every topic the broker serves.
    pub topics: Vec<TopicConfig>,
    /// Master or slave.
    pub role: BrokerRole,
    /// The master term it serves in (0 without a controller).
    pub epoch: u64,
}

/// Broker -> name server at shutdown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnregisterBroker {
    /// Broker name.
    pub broker_name: String,
    /// Its id in the group.
    pub broker_id: u64,
}

/// Client -> name server: which brokers serve `topic`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRoute {
    /// The topic.
    pub topic: String,
}

/// What a broker is in its group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BrokerRole {
    /// Takes writes (RocketMQ's ASYNC_MASTER and SYNC_MASTER).
    #[default]
    Master,
    /// Copies its master's log and serves reads when the master is gone.
    Slave,
}

impl BrokerRole {
    /// RocketMQ's name for it.
    pub fn name(self) -> &'static str {
        match self {
            BrokerRole::Master => "MASTER",
            BrokerRole::Slave => "SLAVE",
        }
    }
}

/// One broker of a group, as a route lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaRoute {
    /// Its id in the group (RocketMQ: 0 for the master it started as).
    pub broker_id: u64,
    /// Where clients reach it.
    pub addr: String,
    /// Master or slave.
    pub role: BrokerRole,
    /// The master term it serves in.
    pub epoch: u64,
}

/// One broker group's part of a topic's route: every live broker of the
/// group by id, master and slaves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRoute {
    /// Broker (group) name.
    pub broker_name: String,
    /// Its live brokers, by id.
    pub replicas: Vec<ReplicaRoute>,
    /// Writable queues.
    pub write_queues: u32,
    /// Readable queues.
    pub read_queues: u32,
    /// Permission bits.
    pub perm: u8,
}

impl QueueRoute {
    /// The master to write to: of the brokers that say they are master, the
    /// one of the latest term (an old master that has not heard of its
    /// successor may still say so).
    pub fn master(&self) -> Option<&ReplicaRoute> {
        master_replica(&self.replicas)
    }

    /// Where to read: the master, or, while the group has none, the slave
    /// with the lowest id.
    pub fn read_replica(&self) -> Option<&ReplicaRoute> {
        read_replica(&self.replicas)
    }

    /// The address [`Self::read_replica`] names ("" for a group with no
    /// broker, which a name server never lists).
    pub fn read_addr(&self) -> &str {
        self.read_replica().map_or("", |r| r.addr.as_str())
    }
}

/// The master of a group's brokers: of those that say they are master, the
/// one of the latest term.
pub fn master_replica(replicas: &[ReplicaRoute]) -> Option<&ReplicaRoute> {
    replicas.iter().filter(|r| r.role == BrokerRole::Master).max_by_key(|r| (r.epoch, std::cmp::Reverse(r.broker_id)))
}

/// The broker of a group to read from: its master, else its lowest slave.
pub fn read_replica(replicas: &[ReplicaRoute]) -> Option<&ReplicaRoute> {
    master_replica(replicas).or_else(|| replicas.iter().filter(|r| r.role == BrokerRole::Slave).min_by_key(|r| r.broker_id))
}

/// Which brokers serve a topic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRoute {
    /// One entry per broker group, sorted by broker name.
    pub queues: Vec<QueueRoute>,
}

/// A broker as the name server knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// Cluster.
    pub cluster: String,
    /// Broker name.
    pub broker_name: String,
    /// 0 for a master.
    pub broker_id: u64,
    /// Address.
    pub addr: String,
    /// Topics it serves.
    pub topics: u32,
    /// Name server time of its last registration (ms).
    pub last_update_ms: u64,
    /// Master or slave.
    pub role: BrokerRole,
    /// The master term it serves in.
    pub epoch: u64,
}

/// Admin -> name server: every broker known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetClusterInfo;
