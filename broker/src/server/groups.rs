//! Consumer group membership, from heartbeats, with expiry.

use crate::command::{ConsumerRunningInfo, GetConsumerList, GetConsumerRunningInfo, Heartbeat, HeartbeatProducer, Outcome, Refusal, Refused, UnregisterClient};
use crate::model::{retry_topic, validate_group, validate_name};
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

    /// A group's members and the connection each heartbeats on.
    pub fn member_connections(&self, group: &str) -> Vec<(String, Option<SocketAddr>)> {
        self.groups.get(group).map(|m| m.iter().map(|(id, m)| (id.clone(), m.peer)).collect()).unwrap_or_default()
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

    /// Whether a member of the group consumes by broadcasting.
    pub fn broadcasting(&self, group: &str) -> bool {
        self.groups.get(group).is_some_and(|m| m.values().any(|m| m.data.broadcast))
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

/// The handlers of [`crate::command::groups`].
impl super::Broker {
    /// A consumer's heartbeat from `peer`: its groups and subscriptions. A
    /// client that joins a group makes the others rebalance now, and every
    /// group's retry topic exists as soon as it has a member, so its
    /// consumers find a route to subscribe to.
    pub async fn heartbeat(&self, command: Heartbeat, peer: SocketAddr) -> Outcome<()> {
        let Heartbeat { client_id, consumers } = command;
        let now = self.clock.now_ms();
        let mut retry_topics = Vec::new();
        let mut joined = Vec::new();
        {
            let mut groups = self.groups.lock().expect("groups");
            for data in consumers {
                if validate_group(&data.group).is_ok() {
                    retry_topics.push(retry_topic(&data.group));
                }
                let group = data.group.clone();
                if groups.heartbeat_on(&client_id, data, now, Some(peer)) {
                    joined.push(group);
                }
            }
        }
        for group in &joined {
            self.notify_consumers_changed(group);
        }
        for topic in retry_topics {
            self.system_topic(&topic)?;
        }
        Ok(())
    }

    /// A producer's heartbeat from `peer`: live in these producer groups,
    /// and asked about their halves over its connection.
    pub fn heartbeat_producer(&self, command: HeartbeatProducer, peer: SocketAddr) -> Outcome<()> {
        let now = self.clock.now_ms();
        let mut producers = self.producers.lock().expect("producers");
        for group in command.groups.iter().filter(|g| validate_name("producer group", g).is_ok()) {
            producers.heartbeat(&command.client_id, group, peer, now);
        }
        Ok(())
    }

    /// A client leaves a group now (its shutdown).
    pub fn unregister_client(&self, command: UnregisterClient) -> Outcome<()> {
        if self.groups.lock().expect("groups").unregister(&command.client_id, &command.group) {
            self.notify_consumers_changed(&command.group);
        }
        Ok(())
    }

    /// A group's live members, sorted.
    pub fn consumer_list(&self, command: GetConsumerList) -> Outcome<Vec<String>> {
        Ok(self.groups.lock().expect("groups").members(&command.group))
    }

    /// How a group's consumers here run, each asked over the connection it
    /// heartbeats on (RocketMQ's `consumerStatus`); one member when the
    /// command names it. Members that do not answer are left out; none
    /// answering is an error.
    pub async fn consumer_running_info(&self, command: GetConsumerRunningInfo) -> Outcome<Vec<ConsumerRunningInfo>> {
        let GetConsumerRunningInfo { group, client_id } = command;
        let members: Vec<(String, Option<SocketAddr>)> = self
            .groups
            .lock()
            .expect("groups")
            .member_connections(&group)
            .into_iter()
            .filter(|(id, _)| client_id.as_ref().is_none_or(|wanted| wanted == id))
            .collect();
        if members.is_empty() {
            let who = client_id.map_or_else(|| "no live member".to_string(), |id| format!("no live member {id}"));
            return Err(Refusal::new(Refused::NotFound, format!("consumer group {group} has {who} on {}", self.config.broker_name)));
        }
        let timeout = std::time::Duration::from_millis(self.config.request_timeout_ms);
        let mut running = Vec::new();
        let mut failures = Vec::new();
        for (id, addr) in members {
            let Some(peer) = addr.and_then(|addr| self.live_peers([&addr]).pop()) else {
                failures.push(format!("{id}: not connected"));
                continue;
            };
            match peer.running_info(GetConsumerRunningInfo { group: group.clone(), client_id: Some(id.clone()) }, timeout).await {
                Ok(infos) => running.extend(infos),
                Err(e) => failures.push(format!("{id}: {e}")),
            }
        }
        if running.is_empty() {
            return Err(Refusal::new(Refused::System, format!("no member of {group} answered: {}", failures.join("; "))));
        }
        Ok(running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::ConsumeFrom;

    fn data(group: &str) -> ConsumerData {
        ConsumerData { group: group.into(), subscriptions: vec![("t".into(), "*".into())], consume_from: ConsumeFrom::FirstOffset, broadcast: false }
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
