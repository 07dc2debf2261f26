//! Consumer group membership, from heartbeats, with expiry.

use crate::protocol::ConsumerData;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
struct Member {
    data: ConsumerData,
    last_seen_ms: u64,
}

/// Groups and their live members.
#[derive(Debug, Default)]
pub struct ConsumerGroups {
    groups: BTreeMap<String, BTreeMap<String, Member>>,
}

impl ConsumerGroups {
    /// Records a heartbeat of `client_id` in its group.
    pub fn heartbeat(&mut self, client_id: &str, data: ConsumerData, now_ms: u64) {
        let group = self.groups.entry(data.group.clone()).or_default();
        group.insert(client_id.to_string(), Member { data, last_seen_ms: now_ms });
    }

    /// Removes a client from a group.
    pub fn unregister(&mut self, client_id: &str, group: &str) {
        if let Some(members) = self.groups.get_mut(group) {
            members.remove(client_id);
        }
    }

    /// Live members of a group, sorted.
    pub fn members(&self, group: &str) -> Vec<String> {
        self.groups.get(group).map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    /// Where a group starts, as its members said.
    pub fn consume_from(&self, group: &str) -> Option<crate::protocol::ConsumeFrom> {
        self.groups.get(group)?.values().next().map(|m| m.data.consume_from)
    }

    /// Drops members silent for `expiry_ms`; returns how many.
    pub fn expire(&mut self, now_ms: u64, expiry_ms: u64) -> usize {
        let mut removed = 0;
        for members in self.groups.values_mut() {
            let before = members.len();
            members.retain(|_, m| now_ms.saturating_sub(m.last_seen_ms) < expiry_ms);
            removed += before - members.len();
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ConsumeFrom;

    fn data(group: &str) -> ConsumerData {
        ConsumerData { group: group.into(), subscriptions: vec![("t".into(), "*".into())], consume_from: ConsumeFrom::FirstOffset }
    }

    #[test]
    fn membership_sorted_and_expiring() {
        let mut g = ConsumerGroups::default();
        g.heartbeat("c2", data("g"), 0);
        g.heartbeat("c1", data("g"), 100);
        assert_eq!(g.members("g"), ["c1", "c2"]);
        assert_eq!(g.expire(120_050, 120_000), 1);
        assert_eq!(g.members("g"), ["c1"]);
        g.unregister("c1", "g");
        assert!(g.members("g").is_empty());
    }
}
