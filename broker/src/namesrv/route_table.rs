//! The name server's state: a pure structure, time passed in.
//!
//! Brokers are known by broker name and broker id, so a broker group can
//! hold a master and its slaves; a route lists every live broker of each
//! group serving the topic, with its role and term.

use crate::model::TopicConfig;
use crate::command::{BrokerInfo, BrokerRole, QueueRoute, ReplicaRoute, TopicRoute};
use std::collections::BTreeMap;

/// One broker's registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// Cluster name.
    pub cluster: String,
    /// Broker (group) name.
    pub broker_name: String,
    /// Its id in the group.
    pub broker_id: u64,
    /// Where clients reach it.
    pub addr: String,
    /// Master or slave.
    pub role: BrokerRole,
    /// The master term it serves in.
    pub epoch: u64,
    /// Every topic it serves.
    pub topics: Vec<TopicConfig>,
}

#[derive(Clone, Debug)]
struct BrokerEntry {
    cluster: String,
    addr: String,
    role: BrokerRole,
    epoch: u64,
    topics: BTreeMap<String, TopicConfig>,
    last_update_ms: u64,
}

/// One group's brokers serving a topic while a route is built, with each
/// one's registration and topic config.
type GroupRoute<'a> = (Vec<ReplicaRoute>, Vec<(&'a BrokerEntry, &'a TopicConfig)>);

/// Brokers by (name, id), each with its topics and last registration time.
#[derive(Debug, Default)]
pub struct RouteTable {
    brokers: BTreeMap<(String, u64), BrokerEntry>,
}

impl RouteTable {
    /// Records (or refreshes) a broker and replaces its topic list.
    pub fn register(&mut self, r: Registration, now_ms: u64) {
        let topics = r.topics.into_iter().map(|t| (t.name.clone(), t)).collect();
        let entry = BrokerEntry { cluster: r.cluster, addr: r.addr, role: r.role, epoch: r.epoch, topics, last_update_ms: now_ms };
        self.brokers.insert((r.broker_name, r.broker_id), entry);
    }

    /// Forgets a broker.
    pub fn unregister(&mut self, broker_name: &str, broker_id: u64) {
        self.brokers.remove(&(broker_name.to_string(), broker_id));
    }

    /// Removes brokers silent for `expiry_ms` or more; returns them as
    /// `name/id`.
    pub fn expire(&mut self, now_ms: u64, expiry_ms: u64) -> Vec<String> {
        let dead: Vec<(String, u64)> = self
            .brokers
            .iter()
            .filter(|(_, b)| now_ms.saturating_sub(b.last_update_ms) >= expiry_ms)
            .map(|(key, _)| key.clone())
            .collect();
        for key in &dead {
            self.brokers.remove(key);
        }
        dead.into_iter().map(|(name, id)| format!("{name}/{id}")).collect()
    }

    /// The broker groups serving `topic`, sorted by name, each with its live
    /// brokers; `None` when none does. A group's queue counts and
    /// permissions are its master's (of the latest term), or, while it has
    /// none, its lowest slave's.
    pub fn route(&self, topic: &str) -> Option<TopicRoute> {
        let mut groups: BTreeMap<&str, GroupRoute> = BTreeMap::new();
        for ((name, id), b) in &self.brokers {
            let Some(t) = b.topics.get(topic) else { continue };
            let group = groups.entry(name.as_str()).or_default();
            group.0.push(ReplicaRoute { broker_id: *id, addr: b.addr.clone(), role: b.role, epoch: b.epoch });
            group.1.push((b, t));
        }
        let queues: Vec<QueueRoute> = groups
            .into_iter()
            .map(|(name, (replicas, configs))| {
                let (_, t) = configs
                    .iter()
                    .max_by_key(|(b, _)| (b.role == BrokerRole::Master, b.epoch))
                    .expect("a group in the map has a broker");
                QueueRoute {
                    broker_name: name.to_string(),
                    replicas,
                    write_queues: t.write_queues,
                    read_queues: t.read_queues,
                    perm: t.perm,
                }
            })
            .collect();
        (!queues.is_empty()).then_some(TopicRoute { queues })
    }

    /// Every broker known, by name and id.
    pub fn cluster_info(&self) -> Vec<BrokerInfo> {
        self.brokers
            .iter()
            .map(|((name, id), b)| BrokerInfo {
                cluster: b.cluster.clone(),
                broker_name: name.clone(),
                broker_id: *id,
                addr: b.addr.clone(),
                topics: b.topics.len() as u32,
                last_update_ms: b.last_update_ms,
                role: b.role,
                epoch: b.epoch,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(name: &str, id: u64, addr: &str, role: BrokerRole, epoch: u64, queues: u32) -> Registration {
        Registration {
            cluster: "c".into(),
            broker_name: name.into(),
            broker_id: id,
            addr: addr.into(),
            role,
            epoch,
            topics: vec![TopicConfig::new("orders", queues)],
        }
    }

    #[test]
    fn routes_and_expiry() {
        let mut t = RouteTable::default();
        t.register(reg("b1", 0, "a1", BrokerRole::Master, 0, 4), 0);
        t.register(reg("b0", 0, "a0", BrokerRole::Master, 0, 2), 50_000);
        let route = t.route("orders").unwrap();
        assert_eq!(route.queues.iter().map(|q| q.broker_name.as_str()).collect::<Vec<_>>(), ["b0", "b1"]);
        assert!(t.route("other").is_none());
        assert_eq!(t.expire(119_999, 120_000), Vec::<String>::new());
        assert_eq!(t.expire(120_000, 120_000), vec!["b1/0".to_string()]);
        assert_eq!(t.route("orders").unwrap().queues.len(), 1);
        assert_eq!(t.cluster_info()[0].broker_name, "b0");
    }

    #[test]
    fn a_group_lists_its_master_and_slaves_and_reads_from_a_slave_without_a_master() {
        let mut t = RouteTable::default();
        t.register(reg("b", 0, "old", BrokerRole::Master, 1, 4), 0);
        t.register(reg("b", 1, "s1", BrokerRole::Slave, 1, 4), 0);
        t.register(reg("b", 2, "s2", BrokerRole::Slave, 1, 4), 0);
        let route = t.route("orders").unwrap();
        assert_eq!(route.queues.len(), 1, "one entry per group");
        let group = &route.queues[0];
        assert_eq!(group.replicas.len(), 3);
        assert_eq!(group.master().map(|m| m.addr.as_str()), Some("old"));
        // Broker 2 is elected master of term 2; the old master has not heard.
        t.register(reg("b", 2, "s2", BrokerRole::Master, 2, 4), 1_000);
        let group = &t.route("orders").unwrap().queues[0];
        assert_eq!(group.master().map(|m| m.addr.as_str()), Some("s2"), "the latest term's master wins");
        // Masters gone: reads go to the lowest slave.
        t.unregister("b", 0);
        t.unregister("b", 2);
        let group = &t.route("orders").unwrap().queues[0];
        assert!(group.master().is_none());
        assert_eq!(group.read_replica().map(|r| r.addr.as_str()), Some("s1"));
        assert_eq!(t.cluster_info().len(), 1);
    }
}
