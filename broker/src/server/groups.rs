//! Consumer group membership, from heartbeats, with expiry.

use crate::command::ConsumerData;
use std::net::SocketAddr;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug)]
struct Member {
    data: ConsumerData,
    last_seen_ms: u64,
    /// The connection its last heartbeat came on.
    peer: Option<SocketAddr>,
}

/// Groups and their live members.
#[derive(Debug, Default)]
pub struct ConsumerGroups {
    groups: BTreeMap<String, BTreeMap<String, Member>>,
}

impl ConsumerGroups {
    /// Records a heartbeat of `client_id` in its group; true when it joined
    /// the group with it.
    pub fn heartbeat(&mut self, client_id: &str, data: ConsumerData, now_ms: u64) -> bool {
        self.heartbeat_on(client_id, data, now_ms, None)
    }

    /// Records a heartbeat that came on the connection from `peer`; true
    /// when the client joined the group with it.
    pub fn heartbeat_on(&mut self, client_id: &str, data: ConsumerData, now_ms: u64, peer: Option<SocketAddr>) -> bool {
        let group = self.groups.entry(data.group.clone()).or_default();
        group.insert(client_id.to_string(), Member { data, last_seen_ms: now_ms, peer }).is_none()
    }

    /// The connection from `peer` closed: its clients leave every group at
    /// once, as RocketMQ's broker drops a consumer whose channel closed,
    /// rather than after the expiry (a live client joins again with its
    /// next heartbeat). Returns the groups that lost a member.
    pub fn connection_closed(&mut self, peer: SocketAddr) -> Vec<String> {
        self.remove_where(|m| m.peer == Some(peer))
    }

    /// Removes a client from a group; true when it was a member.
    pub fn unregister(&mut self, client_id: &str, group: &str) -> bool {
        self.groups.get_mut(group).is_some_and(|members| members.remove(client_id).is_some())
    }

    /// Live members of a group, sorted.
    pub fn members(&self, group: &str) -> Vec<String> {
        self.groups.get(group).map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    /// The connections the members of a group heartbeat on, each once.
    pub fn member_peers(&self, group: &str) -> BTreeSet<SocketAddr> {
        self.groups.get(group).map(|m| m.values().filter_map(|m| m.peer).collect()).unwrap_or_default()
    }

    /// Removes the members `gone` picks; returns the groups that lost one.
    fn remove_where(&mut self, gone: impl Fn(&Member) -> bool) -> Vec<String> {
        let mut changed = Vec::new();
        for (group, members) in &mut self.groups {
            let before = members.len();
            members.retain(|_, m| !gone(m));
            if members.len() < before {
                changed.push(group.clone());
            }
        }
        changed
    }

    /// Where a group starts, as its members said.
    pub fn consume_from(&self, group: &str) -> Option<crate::command::ConsumeFrom> {
        self.groups.get(group)?.values().next().map(|m| m.data.consume_from)
    }

    /// Drops members silent for `expiry_ms`; returns the groups that lost
    /// one.
    pub fn expire(&mut self, now_ms: u64, expiry_ms: u64) -> Vec<String> {
        self.remove_where(|m| now_ms.saturating_sub(m.last_seen_ms) >= expiry_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::ConsumeFrom;

    fn data(group: &str) -> ConsumerData {
        ConsumerData { group: group.into(), subscriptions: vec![("t".into(), "*".into())], consume_from: ConsumeFrom::FirstOffset }
    }

    #[test]
    fn membership_sorted_and_expiring() {
        let mut g = ConsumerGroups::default();
        assert!(g.heartbeat("c2", data("g"), 0), "c2 joins");
        assert!(g.heartbeat("c1", data("g"), 100), "c1 joins");
        assert!(!g.heartbeat("c1", data("g"), 200), "c1 was a member already");
        assert_eq!(g.members("g"), ["c1", "c2"]);
        assert_eq!(g.expire(120_050, 120_000), ["g"]);
        assert_eq!(g.members("g"), ["c1"]);
        assert!(g.expire(120_050, 120_000).is_empty(), "nobody else expired");
        assert!(g.unregister("c1", "g"));
        assert!(!g.unregister("c1", "g"), "no longer a member");
        assert!(g.members("g").is_empty());
    }

    #[test]
    fn a_closed_connection_takes_its_clients_out_of_their_groups() {
        let mut g = ConsumerGroups::default();
        let (a, b): (SocketAddr, SocketAddr) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
        g.heartbeat_on("c1", data("g"), 0, Some(a));
        g.heartbeat_on("c1", data("h"), 0, Some(a));
        g.heartbeat_on("c2", data("g"), 0, Some(b));
        assert_eq!(g.member_peers("g"), BTreeSet::from([a, b]));
        assert_eq!(g.connection_closed(a), ["g", "h"]);
        assert_eq!(g.members("g"), ["c2"]);
        assert_eq!(g.member_peers("g"), BTreeSet::from([b]));
        assert!(g.members("h").is_empty());
        assert!(g.connection_closed(a).is_empty());
    }
}
