//! **integrity**: a delivered message is the message that was sent, and it
//! reaches only the groups whose tag expression selects it.

use super::Invariant;
use crate::config::{CheckConfig, GroupSpec};
use crate::history::{Event, Kind, Op};
use crate::index::{Index, Message};
use crate::verdict::{CheckResult, Validity};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

/// Checks every delivery against its send and its group's tag filter.
/// Always checked: no scenario tolerates a corrupted message.
///
/// Every `deliver` event of kind ok (any process, the drain included, any
/// result) whose msg_id some send invoked is compared with that send: topic,
/// key, tag, shard, seq, body and props. A field the send carried must be
/// delivered equal (delivering none of it is a difference); a field the send
/// did not carry is not compared. A delivery with any difference is one
/// `corrupted` anomaly naming every differing field.
///
/// Separately, a delivery to a group of [`CheckConfig::effective_groups`]
/// whose delivered tag the group's tag expression does not select is a
/// `filter-leak`. It is judged against the group's subscriptions to the
/// delivered topic (the sent one when the delivery names none, every one
/// when neither is known); a topic the group does not subscribe to is left
/// alone, because a group derived from `subscribe` events keeps only its
/// first subscription. Counts: `checked` (deliveries compared with their
/// send), `corrupted` and `filter-leak`; either of the last two is invalid.
pub fn check_integrity(history: &[Event], cfg: &CheckConfig) -> CheckResult {
    integrity(history, cfg, &Index::build(history, cfg))
}

/// [`check_integrity`] over an index built once for every check.
pub(crate) fn integrity<'a>(history: &'a [Event], _cfg: &CheckConfig, index: &Index<'a>) -> CheckResult {
    let mut subscriptions: BTreeMap<&str, Vec<&GroupSpec>> = BTreeMap::new();
    for spec in &index.groups {
        subscriptions
            .entry(spec.group.as_str())
            .or_default()
            .push(spec);
    }

    let mut result = CheckResult::new(Invariant::Integrity.name());
    let (mut checked, mut corrupted, mut leaked) = (0, 0, 0);
    for event in history
        .iter()
        .filter(|e| e.op == Op::Deliver && e.kind == Kind::Ok)
    {
        let message = event
            .msg_id
            .as_deref()
            .and_then(|msg_id| index.messages.get(msg_id));
        let group = event.group.as_deref();
        if let Some(message) = message {
            checked += 1;
            let differences = differences(message, event);
            if !differences.is_empty() {
                corrupted += 1;
                let detail = format!(
                    "{} delivered to group {} differs from its send: {}",
                    message.msg_id,
                    group.unwrap_or("(none)"),
                    differences.join("; ")
                );
                result.push_anomaly("corrupted", detail, vec![message.invoke.id, event.id]);
            }
        }

        let Some(group) = group else { continue };
        let Some(specs) = subscriptions.get(group) else {
            continue;
        };
        let topic = event.topic.as_deref().or(message.and_then(|m| m.topic()));
        let judged = || {
            specs
                .iter()
                .filter(move |spec| topic.is_none_or(|topic| spec.topic == topic))
        };
        let tag = event.tag.as_deref();
        // The properties as sent: a delivery that lost some is corrupted,
        // and judged by what it should have carried.
        let props = message.and_then(|m| m.props()).or(event.props.as_ref());
        if judged().next().is_none() || judged().any(|spec| spec.selects(tag, props)) {
            continue;
        }
        let expressions: Vec<String> = judged().map(|spec| spec.selector()).collect();
        leaked += 1;
        let detail = format!(
            "{} with {} reached group {group}, whose {} does not select it",
            event
                .msg_id
                .as_deref()
                .unwrap_or("a message without msg_id"),
            tag.map_or("no tag".to_owned(), |tag| format!("tag {tag}")),
            expressions.join(" and ")
        );
        let ids = match message {
            Some(message) => vec![message.invoke.id, event.id],
            None => vec![event.id],
        };
        result.push_anomaly("filter-leak", detail, ids);
    }
    result.set("checked", checked);
    result.set("corrupted", corrupted);
    result.set("filter-leak", leaked);
    if corrupted + leaked > 0 {
        result.worsen(Validity::Invalid);
    }
    result
}

/// The fields in which `delivery` differs from the send of `message`, each
/// as "field sent X delivered Y", in a fixed order.
fn differences(message: &Message, delivery: &Event) -> Vec<String> {
    let mut found = Vec::new();
    compare(
        &mut found,
        "topic",
        message.topic(),
        delivery.topic.as_deref(),
    );
    compare(&mut found, "key", message.key(), delivery.key.as_deref());
    compare(&mut found, "tag", message.tag(), delivery.tag.as_deref());
    compare(
        &mut found,
        "shard",
        message.shard(),
        delivery.shard.as_deref(),
    );
    compare(
        &mut found,
        "seq",
        message.seq().as_ref(),
        delivery.seq.as_ref(),
    );
    compare(&mut found, "body", message.body(), delivery.body.as_deref());
    compare_props(&mut found, message.props(), delivery.props.as_ref());
    found
}

/// Notes `field` in `found` when the send carried it and the delivery does
/// not carry it equal.
fn compare<T: PartialEq + Display + ?Sized>(
    found: &mut Vec<String>,
    field: &str,
    sent: Option<&T>,
    delivered: Option<&T>,
) {
    let Some(sent) = sent else { return };
    if delivered != Some(sent) {
        let delivered = delivered.map_or("none".to_owned(), ToString::to_string);
        found.push(format!("{field} sent {sent} delivered {delivered}"));
    }
}

/// Notes in `found` each property that differs between the sent and the
/// delivered properties, when the send carried properties at all. Properties
/// are compared as a whole map, so one the delivery added differs too.
fn compare_props(
    found: &mut Vec<String>,
    sent: Option<&BTreeMap<String, String>>,
    delivered: Option<&BTreeMap<String, String>>,
) {
    let Some(sent) = sent else { return };
    let Some(delivered) = delivered else {
        found.push(format!("props sent {} delivered none", props_text(sent)));
        return;
    };
    if sent == delivered {
        return;
    }
    let names: BTreeSet<&String> = sent.keys().chain(delivered.keys()).collect();
    for name in names {
        let (was, is) = (sent.get(name), delivered.get(name));
        if was != is {
            found.push(format!(
                "props.{name} sent {} delivered {}",
                was.map_or("none", String::as_str),
                is.map_or("none", String::as_str)
            ));
        }
    }
}

/// Properties as "{a=1, b=2}", in name order.
fn props_text(props: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = props.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", pairs.join(", "))
}
