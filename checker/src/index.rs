//! A read-only index over a history that every invariant shares: the sent
//! messages by msg_id with their outcome, the groups and their subscribers.

use crate::config::{CheckConfig, GroupSpec};
use crate::history::{ConsumeOutcome, Event, Kind, Op, TxState};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet};

/// How a send ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SendStatus {
    /// `fail`: definitely not stored.
    Failed,
    /// `info`, or no completion at all: may or may not be stored.
    Unknown,
    /// `ok`: stored, the broker promised it.
    Acknowledged,
}

/// One sent message.
#[derive(Debug, Clone)]
pub(crate) struct Message<'a> {
    /// The message id.
    pub msg_id: &'a str,
    /// The send invoke (the first, if a msg_id was sent more than once).
    pub invoke: &'a Event,
    /// The completion that decided `status`, if any.
    pub completion: Option<&'a Event>,
    /// The best outcome over every send of this msg_id.
    pub status: SendStatus,
}

impl<'a> Message<'a> {
    /// Topic, from the invoke or else the completion.
    pub fn topic(&self) -> Option<&'a str> {
        self.field(|e| e.topic.as_deref())
    }
    /// Tag, from the invoke or else the completion.
    pub fn tag(&self) -> Option<&'a str> {
        self.field(|e| e.tag.as_deref())
    }
    /// Business key, from the invoke or else the completion.
    pub fn key(&self) -> Option<&'a str> {
        self.field(|e| e.key.as_deref())
    }
    /// Sharding key, from the invoke or else the completion.
    pub fn shard(&self) -> Option<&'a str> {
        self.field(|e| e.shard.as_deref())
    }
    /// Sequence number, from the invoke or else the completion.
    pub fn seq(&self) -> Option<u64> {
        self.invoke.seq.or(self.completion.and_then(|e| e.seq))
    }
    /// Body digest, from the invoke or else the completion.
    pub fn body(&self) -> Option<&'a str> {
        self.field(|e| e.body.as_deref())
    }
    /// User properties, from the invoke or else the completion.
    pub fn props(&self) -> Option<&'a BTreeMap<String, String>> {
        self.invoke
            .props
            .as_ref()
            .or(self.completion.and_then(|e| e.props.as_ref()))
    }
    /// Time of the `ok` completion, for acknowledged messages.
    pub fn ack_t_ms(&self) -> Option<u64> {
        match self.status {
            SendStatus::Acknowledged => self.completion.map(|e| e.t_ms),
            _ => None,
        }
    }
    /// The invoke id and, if any, the completion id.
    pub fn event_ids(&self) -> Vec<u64> {
        std::iter::once(self.invoke.id)
            .chain(self.completion.map(|e| e.id))
            .collect()
    }

    fn field(&self, get: impl Fn(&'a Event) -> Option<&'a str>) -> Option<&'a str> {
        get(self.invoke).or_else(|| self.completion.and_then(get))
    }
}

/// What the history says of one transactional message.
#[derive(Debug, Clone)]
pub(crate) struct Tx<'a> {
    /// What its local transaction decides in the end.
    pub truth: TxState,
    /// Its producer group.
    pub group: Option<&'a str>,
    /// The producer's end the broker took (`tx-end` ok), if any.
    pub end: Option<&'a Event>,
    /// Check-back answers, in history order.
    pub checks: Vec<&'a Event>,
    /// The drain found it moved aside after the most checks.
    pub aside: Option<&'a Event>,
    /// Every producer of its group left for good, so nobody could answer
    /// a check-back about it.
    pub orphaned: bool,
}

impl Tx<'_> {
    /// Why the message need not be delivered, if it need not: rolled
    /// back, moved aside (and reported), or orphaned with no end.
    pub fn excuse(&self) -> Option<&'static str> {
        if self.truth == TxState::Rollback {
            Some("rolled-back")
        } else if self.aside.is_some() {
            Some("moved-aside")
        } else if self.orphaned && self.end.is_none() {
            Some("orphaned")
        } else {
            None
        }
    }
}

/// The sent messages: in msg_id order, and found by msg_id through a hash.
#[derive(Debug, Default)]
pub(crate) struct Messages<'a> {
    sorted: Vec<Message<'a>>,
    by_id: FxHashMap<&'a str, usize>,
}

impl<'a> Messages<'a> {
    fn new(messages: FxHashMap<&'a str, Message<'a>>) -> Messages<'a> {
        let mut sorted: Vec<Message<'a>> = messages.into_values().collect();
        sorted.sort_unstable_by(|a, b| a.msg_id.cmp(b.msg_id));
        let by_id = sorted.iter().enumerate().map(|(i, m)| (m.msg_id, i)).collect();
        Messages { sorted, by_id }
    }

    /// The message sent as `msg_id`.
    pub fn get(&self, msg_id: &str) -> Option<&Message<'a>> {
        self.by_id.get(msg_id).map(|&i| &self.sorted[i])
    }

    /// Every message, in msg_id order.
    pub fn values(&self) -> std::slice::Iter<'_, Message<'a>> {
        self.sorted.iter()
    }
}

/// The shared index.
#[derive(Debug)]
pub(crate) struct Index<'a> {
    /// Every message some send invoked, by msg_id.
    pub messages: Messages<'a>,
    /// Groups to check, see [`CheckConfig::effective_groups`].
    pub groups: Vec<GroupSpec>,
    /// Processes that subscribed, per group (the consumers of a broadcast group).
    pub subscribers: BTreeMap<&'a str, BTreeSet<&'a str>>,
    /// The first `tail-start` event.
    pub tail_start: Option<&'a Event>,
    /// The first `end` event.
    pub end: Option<&'a Event>,
    /// Messages a nemesis disk fault destroyed (a flipped bit in the
    /// message's stored entry, named by the `disk-fault` event's msg_id).
    /// With one copy of the data no broker can bring them back, so they are
    /// excused and counted as `destroyed`, as dead letters are.
    pub destroyed: BTreeSet<&'a str>,
    /// Transactional messages, by msg_id.
    pub tx: BTreeMap<&'a str, Tx<'a>>,
}

impl<'a> Index<'a> {
    /// Indexes `history`.
    pub fn build(history: &'a [Event], cfg: &CheckConfig) -> Index<'a> {
        let completions: BTreeMap<u64, &Event> = history
            .iter()
            .filter(|e| e.op == Op::Send && e.kind != Kind::Invoke)
            .filter_map(|e| e.of.map(|of| (of, e)))
            .collect();

        let mut messages: FxHashMap<&str, Message> = FxHashMap::default();
        for invoke in history
            .iter()
            .filter(|e| e.op == Op::Send && e.kind == Kind::Invoke)
        {
            let completion = completions.get(&invoke.id).copied();
            let Some(msg_id) = invoke
                .msg_id
                .as_deref()
                .or(completion.and_then(|c| c.msg_id.as_deref()))
            else {
                continue;
            };
            let status = match completion.map(|c| c.kind) {
                Some(Kind::Ok) => SendStatus::Acknowledged,
                Some(Kind::Fail) => SendStatus::Failed,
                _ => SendStatus::Unknown,
            };
            let message = Message {
                msg_id,
                invoke,
                completion,
                status,
            };
            match messages.get_mut(msg_id) {
                None => {
                    messages.insert(msg_id, message);
                }
                Some(known) if status > known.status => {
                    known.status = status;
                    known.completion = completion;
                }
                Some(_) => {}
            }
        }

        let mut subscribers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for event in history.iter().filter(|e| e.op == Op::Subscribe) {
            if let Some(group) = event.group.as_deref() {
                subscribers
                    .entry(group)
                    .or_default()
                    .insert(event.process.as_str());
            }
        }

        let messages = Messages::new(messages);
        let tx = transactions(history, &messages);
        Index {
            tx,
            messages,
            groups: cfg.effective_groups(history),
            subscribers,
            tail_start: history.iter().find(|e| e.op == Op::TailStart),
            end: history.iter().find(|e| e.op == Op::End),
            destroyed: history
                .iter()
                .filter(|e| e.op == Op::Fault)
                .filter_map(|e| e.msg_id.as_deref())
                .collect(),
        }
    }

    /// Why an acknowledged message need not be delivered, if it need not:
    /// a disk fault destroyed it, or it is a transaction that was rolled
    /// back, moved aside or orphaned.
    pub fn excuse(&self, msg_id: &str) -> Option<&'static str> {
        if self.destroyed.contains(msg_id) {
            return Some("destroyed");
        }
        self.tx.get(msg_id).and_then(Tx::excuse)
    }

    /// When a message may be delivered from: its acknowledgement, its
    /// delivery time if later, and for a transaction the end the broker
    /// took. `None` for a transaction whose commit no end brought (a
    /// check-back resolves it, on its own time: the transaction check's).
    pub fn deliverable_from_ms(&self, message: &Message<'a>) -> Option<u64> {
        let ack = message.ack_t_ms()?;
        let mut from = ack.max(message.invoke.deliver_at_ms.unwrap_or(0));
        if let Some(tx) = self.tx.get(message.msg_id) {
            let end = tx.end.filter(|e| e.tx == Some(TxState::Commit))?;
            from = from.max(end.t_ms);
        }
        Some(from)
    }

    /// Acknowledged messages, by msg_id.
    pub fn acknowledged(&self) -> impl Iterator<Item = &Message<'a>> {
        self.messages
            .values()
            .filter(|m| m.status == SendStatus::Acknowledged)
    }

    /// The groups that receive `message` (topic equal, tag matched).
    pub fn subscribing_groups<'s>(
        &'s self,
        message: &Message<'a>,
    ) -> impl Iterator<Item = &'s GroupSpec> {
        let topic = message.topic();
        let tag = message.tag();
        let props = message.props();
        self.groups
            .iter()
            .filter(move |g| topic.is_some_and(|topic| g.subscribes(topic, tag, props)))
    }

    /// The processes that must each consume a message for `group`: every
    /// subscriber of a broadcast group, or `None` (any one process) otherwise.
    pub fn required_consumers(&self, group: &GroupSpec) -> Option<Vec<&'a str>> {
        group.broadcast.then(|| {
            self.subscribers
                .get(group.group.as_str())
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default()
        })
    }
}

/// True for a deliver event that the business logic consumed successfully.
pub(crate) fn is_success(event: &Event) -> bool {
    event.op == Op::Deliver
        && event.kind == Kind::Ok
        && event.result == Some(ConsumeOutcome::Success)
}

/// Successful deliveries: (group, msg_id) -> the delivering events, in history order.
pub(crate) fn successes(history: &[Event]) -> BTreeMap<(&str, &str), Vec<&Event>> {
    let mut map: BTreeMap<(&str, &str), Vec<&Event>> = BTreeMap::new();
    for event in history.iter().filter(|e| is_success(e)) {
        if let (Some(group), Some(msg_id)) = (event.group.as_deref(), event.msg_id.as_deref()) {
            map.entry((group, msg_id)).or_default().push(event);
        }
    }
    map
}

/// Dead-letter findings: (group, msg_id) -> the first `dlq` event.
pub(crate) fn dead_letters(history: &[Event]) -> BTreeMap<(&str, &str), &Event> {
    let mut map = BTreeMap::new();
    for event in history
        .iter()
        .filter(|e| e.op == Op::Dlq && e.kind != Kind::Fail)
    {
        if let (Some(group), Some(msg_id)) = (event.group.as_deref(), event.msg_id.as_deref()) {
            map.entry((group, msg_id)).or_insert(event);
        }
    }
    map
}

/// Transactional messages (send invokes carrying `tx`), with their ends,
/// check-back answers and what the drain found moved aside.
fn transactions<'a>(history: &'a [Event], messages: &Messages<'a>) -> BTreeMap<&'a str, Tx<'a>> {
    let mut tx: BTreeMap<&str, Tx> = messages
        .values()
        .filter_map(|m| {
            let id = m.msg_id;
            let truth = m.invoke.tx?;
            Some((id, Tx { truth, group: m.invoke.group.as_deref(), end: None, checks: Vec::new(), aside: None, orphaned: false }))
        })
        .collect();
    if tx.is_empty() {
        return tx;
    }
    // Producer group -> (its processes, those that retired).
    let mut groups: BTreeMap<&str, (BTreeSet<&str>, BTreeSet<&str>)> = BTreeMap::new();
    for e in history {
        match e.op {
            Op::Send if e.kind == Kind::Invoke && e.tx.is_some() => {
                if let Some(g) = e.group.as_deref() {
                    groups.entry(g).or_default().0.insert(&e.process);
                }
            }
            Op::Retire => {
                if let Some(g) = e.group.as_deref() {
                    groups.entry(g).or_default().1.insert(&e.process);
                }
            }
            _ => {}
        }
        let Some(t) = e.msg_id.as_deref().and_then(|id| tx.get_mut(id)) else { continue };
        match e.op {
            Op::TxEnd if e.kind == Kind::Ok && t.end.is_none() => t.end = Some(e),
            Op::TxCheck => t.checks.push(e),
            Op::TxAside if t.aside.is_none() => t.aside = Some(e),
            _ => {}
        }
    }
    for t in tx.values_mut() {
        t.orphaned = t.group.and_then(|g| groups.get(g)).is_some_and(|(all, retired)| !all.is_empty() && all.is_subset(retired));
    }
    tx
}
