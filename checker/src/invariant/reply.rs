//! **reply**: request-reply (RocketMQ's `request`) hands each requester the
//! reply to its own request. A responder answers a request it consumed with
//! a body naming it ([`reply_body`]) and records that it did (an `invoke`
//! of `reply`); a requester records what came back to the request it
//! waited on (`ok` with the body, or `fail`). Two anomalies:
//!
//! - `wrong-reply`: the reply a requester got names another request: the
//!   reply went to the wrong waiter (a correlation id mixed up on the way,
//!   by the broker or the requester's client).
//! - `reply-not-sent`: a reply came back naming the request, yet no
//!   responder of a responding group had answered the request by then.
//!
//! A request whose reply did not come in time is counted, not judged: a
//! reply is pushed to the requester once, best effort, as RocketMQ does,
//! and a fault may take it.
//!
//! Counts: `requests` (requests stored), `replied`, `timed-out`, and one
//! per anomaly.

use super::{not_expected, Invariant};
use crate::config::CheckConfig;
use crate::history::{Event, Kind, Op};
use crate::index::Index;
use crate::verdict::{CheckResult, Validity};
use std::collections::{BTreeSet, HashMap};

/// The anomalies, in the order the counts are listed.
const ANOMALIES: [&str; 2] = ["wrong-reply", "reply-not-sent"];

/// The body a responder answers the request `msg_id` with.
pub fn reply_body(msg_id: &str) -> String {
    format!("reply to {msg_id}")
}

/// Checks what requesters got back (see the module).
pub fn check_reply(history: &[Event], cfg: &CheckConfig) -> CheckResult {
    reply(history, cfg, &Index::build(history, cfg))
}

/// [`check_reply`] over an index built once for every check.
pub(crate) fn reply<'a>(history: &'a [Event], _cfg: &CheckConfig, index: &Index<'a>) -> CheckResult {
    let responders: BTreeSet<&str> = index.groups.iter().filter(|g| g.replies).map(|g| g.group.as_str()).collect();
    if responders.is_empty() {
        return not_expected(Invariant::Reply);
    }
    let mut result = CheckResult::new(Invariant::Reply.name());
    // msg_id -> when a responder of a responding group first answered it.
    let mut sent: HashMap<&str, u64> = HashMap::new();
    let (mut requests, mut replied, mut timed_out) = (0u64, 0u64, 0u64);
    let mut anomalies = [0u64; ANOMALIES.len()];
    for e in history {
        match (e.op, e.kind) {
            (Op::Reply, Kind::Invoke) if e.group.as_deref().is_some_and(|g| responders.contains(g)) => {
                if let Some(id) = e.msg_id.as_deref() {
                    sent.entry(id).or_insert(e.t_ms);
                }
            }
            (Op::Reply, Kind::Ok) => {
                requests += 1;
                replied += 1;
                let id = e.msg_id.as_deref().unwrap_or("");
                let body = e.detail.as_deref().unwrap_or("");
                if body != reply_body(id) {
                    anomalies[0] += 1;
                    result.push_anomaly(ANOMALIES[0], format!("{} waited on {id} and got {body:?}", e.process), vec![e.id]);
                } else if sent.get(id).is_none_or(|&at| at > e.t_ms) {
                    anomalies[1] += 1;
                    result.push_anomaly(
                        ANOMALIES[1],
                        format!("{} got a reply to {id} at {} ms, before any responder had answered it", e.process, e.t_ms),
                        vec![e.id],
                    );
                }
            }
            (Op::Reply, Kind::Fail) => {
                requests += 1;
                timed_out += 1;
            }
            _ => {}
        }
    }
    result.set("requests", requests);
    result.set("replied", replied);
    result.set("timed-out", timed_out);
    for (name, n) in ANOMALIES.iter().zip(anomalies) {
        result.set(name, n);
    }
    if anomalies.iter().any(|&n| n > 0) {
        result.worsen(Validity::Invalid);
    }
    result
}
