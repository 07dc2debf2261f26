//! What the checker needs to know besides the history: the consumer groups,
//! the FIFO topics and which invariants the scenario expects to hold.

use crate::history::{Event, Op};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Configuration of one check run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckConfig {
    /// Consumer groups; these win over groups derived from `subscribe` events.
    pub groups: Vec<GroupSpec>,
    /// Topics whose per-sharding-key order must hold.
    pub fifo_topics: Vec<String>,
    /// Which invariants must hold and with what tolerance.
    pub expect: Expect,
}

/// One consumer group's subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Group name.
    pub group: String,
    /// Subscribed topic.
    pub topic: String,
    /// Tag expression: "*" or "TagA || TagB".
    pub tags: String,
    /// An SQL92 condition over the message's properties and tag (`TAGS`),
    /// selecting instead of `tags` when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// Broadcast groups deliver every message to every consumer process.
    #[serde(default)]
    pub broadcast: bool,
    /// A POP group (simple consumers): the broker hands messages out with
    /// an invisible time and takes acks by receipt handle; a message comes
    /// back in place with its attempt raised, and after
    /// `max_reconsume_times + 1` attempts goes to the dead-letter queue.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pop: bool,
    /// Whether the group's consumers deduplicate by business key. A
    /// non-idempotent group is a control group: it applies every delivery,
    /// so its double effects are expected and measured, not a violation.
    /// Defaults to true so that configs written before the knob still parse.
    #[serde(default = "idempotent_default")]
    pub idempotent: bool,
    /// Times the group consumes a message again before dead-lettering it
    /// (RocketMQ's default 16, also for configs written before the knob).
    #[serde(default = "max_reconsume_default")]
    pub max_reconsume_times: u32,
    /// Whether the group answers the requests it consumes (request-reply's
    /// responders).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replies: bool,
}

/// The default of [`GroupSpec::idempotent`]: consumers deduplicate.
fn idempotent_default() -> bool {
    true
}

/// The default of [`GroupSpec::max_reconsume_times`].
fn max_reconsume_default() -> u32 {
    16
}

/// Which invariants the scenario expects. Everything defaults to the
/// strictest safety and to no optional check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Expect {
    /// Acknowledged messages that may be lost (ASYNC replication may lose some).
    pub lost_max: u64,
    /// Check per-sharding-key order on the FIFO topics.
    pub order: bool,
    /// Check that each acknowledged business key takes effect exactly once.
    pub exactly_once: bool,
    /// Bound on delivery delay after the fault-free tail starts.
    pub liveness_bound_ms: Option<u64>,
    /// Deliveries of never-sent messages that are tolerated.
    pub unexpected_max: u64,
    /// Least share, in thousandths, of the sends invoked after the tail has
    /// settled that must be acknowledged; `None` leaves progress unchecked.
    pub progress_min_permille: Option<u32>,
    /// How long after `tail-start` the progress window opens.
    pub progress_grace_ms: u64,
    /// Check retries and dead letters against the delay levels below.
    pub dead_letter: bool,
    /// The brokers' delay levels in ms, level 1 first; a retry after
    /// reconsumption `n` waits at level `n + 3`.
    pub delay_levels_ms: Vec<u64>,
    /// Per broker process, every move the run made to its clock, as
    /// (time, ms forward or back) in time order: a skew and its healing, a
    /// jump and its stepping back. A retry, timer or delayed message a
    /// broker held may arrive early by as much as that broker's clock ran
    /// ahead while it held it, and no more. A process not named kept true
    /// time.
    pub clock_moves_ms: BTreeMap<String, Vec<(u64, i64)>>,
    /// Per broker, how far the scenario moved its clock back, at most: a
    /// timer or delayed message it held may arrive that much later in true
    /// time, so liveness gives timed messages that much more.
    pub clock_setback_ms: BTreeMap<String, u64>,
    /// Whether the transaction check applies (the scenario sends
    /// transactional messages).
    pub transaction: bool,
    /// Whether the delay check applies (the scenario sends timer or
    /// delayed messages).
    pub delay: bool,
    /// Broker process -> the broker group (the name queues carry), for
    /// measuring each group's unavailability after a fault on one of its
    /// processes. Empty: not measured.
    pub broker_groups: BTreeMap<String, String>,
    /// In controller mode: how long after a master's process stops a
    /// replica of its group must take over, while a member of the
    /// master's sync-state set is up. `None`: failover is not checked.
    pub failover_bound_ms: Option<u64>,
    /// How long after a copy was consumed something may still make its
    /// group resume from an offset committed before it: the consumers'
    /// commit interval, the broker's persist interval, and slack. `None`:
    /// redeliveries are only counted.
    pub redelivery_bound_ms: Option<u64>,
    /// How long after a chain's last failure its dead letter may be stored
    /// (the consumer sends it back as it fails), where no fault touched the
    /// broker, the consumer or the network in between. `None`: not checked.
    pub dead_letter_bound_ms: Option<u64>,
    /// Broker process -> its replica as role events name it
    /// (`<broker name>/<broker id>`), for the failover check.
    pub broker_replicas: BTreeMap<String, String>,
}

impl GroupSpec {
    /// True when this group receives a message of `topic` with `tag` and
    /// user properties `props`.
    pub fn subscribes(&self, topic: &str, tag: Option<&str>, props: Option<&BTreeMap<String, String>>) -> bool {
        self.topic == topic && self.selects(tag, props)
    }

    /// True when this group's selector (SQL92 condition, else tag
    /// expression) takes a message with `tag` and `props`. A condition that
    /// does not parse selects nothing.
    pub fn selects(&self, tag: Option<&str>, props: Option<&BTreeMap<String, String>>) -> bool {
        match &self.sql {
            Some(sql) => {
                let empty = BTreeMap::new();
                crate::sql::sql_selects(sql, tag, props.unwrap_or(&empty)).unwrap_or(false)
            }
            None => tag_matches(&self.tags, tag),
        }
    }

    /// The selector as a report names it: `tag expression TagA`, `SQL92
    /// condition a = 1`.
    pub fn selector(&self) -> String {
        match &self.sql {
            Some(sql) => format!("SQL92 condition {sql}"),
            None => format!("tag expression {}", self.tags),
        }
    }
}

impl CheckConfig {
    /// The groups to check: the configured ones, then, sorted by name, the
    /// groups that only `subscribe` events name (first subscription wins;
    /// never broadcast, idempotent, tag expression from `detail`, "*" if
    /// absent).
    pub fn effective_groups(&self, history: &[Event]) -> Vec<GroupSpec> {
        let mut groups = self.groups.clone();
        let mut known: BTreeSet<String> = groups.iter().map(|g| g.group.clone()).collect();
        let mut derived = Vec::new();
        for event in history.iter().filter(|e| e.op == Op::Subscribe) {
            let (Some(group), Some(topic)) = (&event.group, &event.topic) else {
                continue;
            };
            if known.insert(group.clone()) {
                derived.push(GroupSpec {
                    group: group.clone(),
                    topic: topic.clone(),
                    tags: event.detail.clone().unwrap_or_else(|| "*".to_owned()),
                    sql: None,
                    broadcast: false,
                    pop: false,
                    idempotent: true,
                    max_reconsume_times: max_reconsume_default(),
                    replies: false,
                });
            }
        }
        derived.sort_by(|a, b| a.group.cmp(&b.group));
        groups.extend(derived);
        groups
    }

    /// True when `topic` is one of the FIFO topics.
    pub fn is_fifo(&self, topic: &str) -> bool {
        self.fifo_topics.iter().any(|t| t == topic)
    }
}

/// RocketMQ tag filtering: "*" (or an empty expression) matches every
/// message; otherwise the expression is `||`-separated tag names, trimmed,
/// and a message matches when its tag is one of them. A message without a
/// tag matches only "*".
pub fn tag_matches(expr: &str, tag: Option<&str>) -> bool {
    let expr = expr.trim();
    if expr.is_empty() || expr == "*" {
        return true;
    }
    let Some(tag) = tag else {
        return false;
    };
    expr.split("||")
        .map(str::trim)
        .any(|name| !name.is_empty() && name == tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{HistoryBuilder, Kind};

    #[test]
    fn star_matches_everything_including_no_tag() {
        assert!(tag_matches("*", Some("A")));
        assert!(tag_matches(" * ", None));
        assert!(tag_matches("", None));
    }

    #[test]
    fn tag_list_matches_trimmed_names_only() {
        assert!(tag_matches("TagA || TagB", Some("TagB")));
        assert!(tag_matches("TagA||TagB", Some("TagA")));
        assert!(!tag_matches("TagA || TagB", Some("TagC")));
        assert!(!tag_matches("TagA || TagB", Some("Tag")));
        assert!(!tag_matches("TagA", None));
        assert!(!tag_matches("TagA || ", Some("")));
    }

    #[test]
    fn explicit_groups_win_over_subscribe_events() {
        let mut h = HistoryBuilder::new();
        for (process, group, topic, tags) in [
            ("c-1", "billing", "orders", "TagA"),
            ("c-2", "audit", "orders", "*"),
            ("c-3", "audit", "other", "X"),
        ] {
            h.push(
                Event::new(0, process, Kind::Info, Op::Subscribe)
                    .group(group)
                    .topic(topic)
                    .detail(tags),
            );
        }
        let cfg = CheckConfig {
            groups: vec![GroupSpec {
                group: "billing".into(),
                topic: "orders".into(),
                tags: "*".into(),
                sql: None,
                broadcast: true,
                pop: false,
                idempotent: false,
                max_reconsume_times: 16,
                replies: false,
            }],
            ..CheckConfig::default()
        };
        let groups = cfg.effective_groups(h.events());
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0], cfg.groups[0]);
        assert_eq!(groups[1].group, "audit");
        assert_eq!(groups[1].topic, "orders");
        assert_eq!(groups[1].tags, "*");
        assert!(groups[1].idempotent);
    }

    #[test]
    fn groups_without_the_idempotent_knob_parse_as_idempotent() {
        let old: GroupSpec =
            serde_json::from_str(r#"{"group":"billing","topic":"orders","tags":"*"}"#).unwrap();
        assert!(old.idempotent && !old.broadcast);
        let control: GroupSpec = serde_json::from_str(
            r#"{"group":"ledger","topic":"orders","tags":"*","idempotent":false}"#,
        )
        .unwrap();
        assert!(!control.idempotent);
    }
}
