//! The name server's state: a pure structure, time passed in.

use crate::model::TopicConfig;
use crate::protocol::{BrokerInfo, QueueRoute, TopicRoute};
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
struct BrokerEntry {
    cluster: String,
    broker_id: u64,
    addr: String,
    topics: BTreeMap<String, TopicConfig>,
    last_update_ms: u64,
}

/// Brokers by name, each with its topics and last registration time.
#[derive(Debug, Default)]
pub struct RouteTable {
    brokers: BTreeMap<String, BrokerEntry>,
}

impl RouteTable {
    /// Records (or refreshes) a broker and replaces its topic list.
    pub fn register(&mut self, cluster: String, broker_name: String, broker_id: u64, addr: String, topics: Vec<TopicConfig>, now_ms: u64) {
        let topics = topics.into_iter().map(|t| (t.name.clone(), t)).collect();
        self.brokers.insert(broker_name, BrokerEntry { cluster, broker_id, addr, topics, last_update_ms: now_ms });
    }

    /// Forgets a broker.
    pub fn unregister(&mut self, broker_name: &str) {
        self.brokers.remove(broker_name);
    }

    /// Removes brokers silent for `expiry_ms` or more; returns their names.
    pub fn expire(&mut self, now_ms: u64, expiry_ms: u64) -> Vec<String> {
        let dead: Vec<String> = self
            .brokers
            .iter()
            .filter(|(_, b)| now_ms.saturating_sub(b.last_update_ms) >= expiry_ms)
            .map(|(n, _)| n.clone())
            .collect();
        for name in &dead {
            self.brokers.remove(name);
        }
        dead
    }

    /// The brokers serving `topic`, sorted by name; `None` when none does.
    pub fn route(&self, topic: &str) -> Option<TopicRoute> {
        let queues: Vec<QueueRoute> = self
            .brokers
            .iter()
            .filter_map(|(name, b)| {
                b.topics.get(topic).map(|t| QueueRoute {
                    broker_name: name.clone(),
                    addr: b.addr.clone(),
                    write_queues: t.write_queues,
                    read_queues: t.read_queues,
                    perm: t.perm,
                })
            })
            .collect();
        (!queues.is_empty()).then_some(TopicRoute { queues })
    }

    /// Every broker known.
    pub fn cluster_info(&self) -> Vec<BrokerInfo> {
        self.brokers
            .iter()
            .map(|(name, b)| BrokerInfo {
                cluster: b.cluster.clone(),
                broker_name: name.clone(),
                broker_id: b.broker_id,
                addr: b.addr.clone(),
                topics: b.topics.len() as u32,
                last_update_ms: b.last_update_ms,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_expiry() {
        let mut t = RouteTable::default();
        t.register("c".into(), "b1".into(), 0, "a1".into(), vec![TopicConfig::new("orders", 4)], 0);
        t.register("c".into(), "b0".into(), 0, "a0".into(), vec![TopicConfig::new("orders", 2)], 50_000);
        let route = t.route("orders").unwrap();
        assert_eq!(route.queues.iter().map(|q| q.broker_name.as_str()).collect::<Vec<_>>(), ["b0", "b1"]);
        assert!(t.route("other").is_none());
        assert_eq!(t.expire(119_999, 120_000), Vec::<String>::new());
        assert_eq!(t.expire(120_000, 120_000), vec!["b1".to_string()]);
        assert_eq!(t.route("orders").unwrap().queues.len(), 1);
        assert_eq!(t.cluster_info()[0].broker_name, "b0");
    }
}
