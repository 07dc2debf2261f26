//! Helpers the checker's test binaries share: the groups and messages of
//! hand-written histories.

#![allow(dead_code)]

use checker::history::HistoryBuilder;
use checker::{CheckConfig, ConsumeOutcome, Event, Expect, GroupSpec, Kind, Op, TxState};

pub fn group(group: &str, tags: &str, broadcast: bool) -> GroupSpec {
    GroupSpec {
        group: group.into(),
        topic: "orders".into(),
        tags: tags.into(),
        sql: None,
        broadcast,
        pop: false,
        idempotent: true,
        max_reconsume_times: 16,
        replies: false,
    }
}

/// billing takes every order, audit only TagA; orders is a FIFO topic.
pub fn config(expect: Expect) -> CheckConfig {
    CheckConfig {
        groups: vec![group("billing", "*", false), group("audit", "TagA", false)],
        fifo_topics: vec!["orders".into()],
        expect,
    }
}

/// A send draft of `msg_id` on topic orders.
pub fn order(msg_id: &str, tag: &str, key: &str) -> Event {
    Event::new(0, "producer-1", Kind::Invoke, Op::Send)
        .msg_id(msg_id)
        .topic("orders")
        .tag(tag)
        .key(key)
}

/// Sends `msg_id` at `t` and acknowledges it 2 ms later.
pub fn acked(h: &mut HistoryBuilder, t: u64, draft: Event) -> u64 {
    h.send(t, draft, Some((t + 2, Kind::Ok)))
}

/// A transactional send draft on topic orders: `truth` is what its local
/// transaction decides, `group` its producer group.
pub fn tx_send(msg_id: &str, process: &str, group: &str, truth: TxState) -> Event {
    Event::new(0, process, Kind::Invoke, Op::Send).msg_id(msg_id).topic("orders").key(format!("k-{msg_id}")).group(group).tx(truth)
}

/// A delivery of `msg_id` to billing from `queue` at `offset`.
pub fn copy_delivered(h: &mut HistoryBuilder, t: u64, msg_id: &str, queue: &str, offset: u64) -> u64 {
    h.push(
        Event::new(t, "consumer-billing-1", Kind::Ok, Op::Deliver)
            .group("billing")
            .msg_id(msg_id)
            .topic("orders")
            .key(format!("k-{msg_id}"))
            .queue(queue)
            .offset(offset)
            .result(ConsumeOutcome::Success),
    )
}

pub fn tx_end(h: &mut HistoryBuilder, t: u64, process: &str, msg_id: &str, state: TxState, kind: Kind) -> u64 {
    h.push(Event::new(t, process, kind, Op::TxEnd).msg_id(msg_id).tx(state))
}

pub fn tx_expect() -> CheckConfig {
    CheckConfig { groups: vec![group("billing", "*", false)], expect: Expect { transaction: true, ..Expect::default() }, ..CheckConfig::default() }
}

/// A send draft of `msg_id` due at `at` (a timer or delayed message).
pub fn timed(msg_id: &str, at: u64) -> Event {
    order(msg_id, "TagA", &format!("k-{msg_id}")).deliver_at_ms(at)
}

/// Sends seq 0..n of shard s-1, all acknowledged.
pub fn shard_of(h: &mut HistoryBuilder, n: u64) {
    for seq in 0..n {
        acked(
            h,
            10 + seq,
            order(&format!("m{seq}"), "TagB", &format!("k{seq}"))
                .shard("s-1")
                .seq(seq),
        );
    }
}
