//! The cluster a scenario describes: its nodes in canonical order, which of
//! them a selector names, and how broker processes form groups.

use crate::spec::Scenario;
use crate::target::{Node, Selector};

impl Scenario {
    /// Every node of the cluster in canonical order: name servers, brokers,
    /// producers, consumers group by group in file order, then the business
    /// database when there are consumers.
    pub fn nodes(&self) -> Vec<Node> {
        let mut nodes: Vec<Node> = (0..self.topology.name_servers).map(Node::Namesrv).collect();
        nodes.extend((0..self.broker_count()).map(Node::Broker));
        nodes.extend((0..self.producer_count()).map(Node::Producer));
        for consumer in &self.workload.consumers {
            nodes.extend((0..consumer.count).map(|index| Node::Consumer {
                group: consumer.group.clone(),
                index,
            }));
        }
        if !self.workload.consumers.is_empty() {
            nodes.push(Node::Database(0));
        }
        nodes.extend((0..self.hostile_count()).map(Node::Hostile));
        nodes.extend((0..self.topology.controllers).map(Node::Controller));
        nodes
    }

    /// Hostile client processes over every `[[workload.hostile]]` entry.
    pub fn hostile_count(&self) -> u32 {
        self.workload.hostile.iter().map(|h| h.count).sum()
    }

    /// The nodes a selector stands for, in canonical order.
    pub fn select(&self, selector: &Selector) -> Vec<Node> {
        self.nodes()
            .into_iter()
            .filter(|node| match (selector, node) {
                (Selector::Group(want), Node::Consumer { group, .. }) => want == group,
                (Selector::Group(_), _) => false,
                _ => node.role() == selector.role(),
            })
            .collect()
    }

    /// True when `node` exists in this scenario's cluster.
    pub fn has_node(&self, node: &Node) -> bool {
        match node {
            Node::Namesrv(i) => *i < self.topology.name_servers,
            Node::Broker(i) => *i < self.broker_count(),
            Node::Producer(i) => *i < self.producer_count(),
            Node::Consumer { group, index } => self
                .workload
                .consumers
                .iter()
                .any(|c| &c.group == group && *index < c.count),
            Node::Database(i) => *i == 0 && !self.workload.consumers.is_empty(),
            Node::Hostile(i) => *i < self.hostile_count(),
            Node::Controller(i) => *i < self.topology.controllers,
        }
    }

    /// The number of broker processes: groups times replicas.
    pub fn broker_count(&self) -> u32 {
        self.topology.broker_groups.saturating_mul(self.topology.replicas)
    }

    /// The broker group and replica number of process `broker-N`.
    pub fn broker_replica(&self, n: u32) -> (u32, u32) {
        let replicas = self.topology.replicas.max(1);
        (n / replicas, n % replicas)
    }

    /// The broker name a group registers under: `broker-G` when groups have
    /// one broker each (so process and group share a name), else `group-G`
    /// for the master and slaves of group G.
    pub fn broker_group_name(&self, group: u32) -> String {
        if self.topology.replicas <= 1 {
            format!("broker-{group}")
        } else {
            format!("group-{group}")
        }
    }

    /// The number of producer processes over every producer entry.
    pub fn producer_count(&self) -> u32 {
        self.workload.producers.iter().map(|p| p.count).fold(0, u32::saturating_add)
    }
}
