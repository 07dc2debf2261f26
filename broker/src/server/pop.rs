//! POP consumption ([`crate::command::pop`]): the broker hands each
//! receive the visible messages of a group, keeps a lease per message
//! received and not yet done, and takes acks by receipt handle.
//!
//! Every change of the POP state is first a record in the POP log
//! ([`POP_TOPIC`]), appended under the state's lock so the log is in the
//! order the changes were made, and a receive or an ack is answered once
//! its record is as durable as a send would be (flushed under SYNC_FLUSH,
//! on the slaves under SYNC_MASTER or controller mode). The state is
//! rebuilt from the log at open, when a slave takes over, after the log was
//! cut back, and after the store was reopened: it survives crashes, power
//! loss (as far as the log does) and failover, and slaves need no copy of
//! their own.
//!
//! An expired lease is not moved anywhere: the message is received again
//! in place, with its attempt raised, so there is no revive copy to lose
//! (Apache RocketMQ #7914) and no ack to miss on the copy (#7724, #8835).
//! Past the group's most attempts the message is copied to the group's
//! dead-letter queue, and only then recorded as done.
//!
//! The group's committed offset on a queue is the offset below which every
//! message is done, so consume stats, lag and a slave's copy of the offsets
//! work for POP groups as for push groups.

use super::Broker;
use crate::bugs::{self, Bug};
use crate::command::{AckMessage, ChangeInvisibleTime, ConsumeFrom, Outcome, PopMessage, PopResult, Popped, ReceiptHandle, Refusal, Refused, POP_BATCH_MAX};
use crate::marks::{self, Mark};
use crate::model::{dlq_topic, validate_group, Filter, Message, MessageExt, Origin, POP_TOPIC};
use crate::store::{GetStatus, MessageStore, PutResult};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::OffsetTable;

pub(super) mod snapshot;

/// Records read per batch while rebuilding.
const SCAN_BATCH: usize = 256;

/// The shortest and longest invisible time a receive may ask for.
const INVISIBLE_MS_MIN: u64 = 1_000;
const INVISIBLE_MS_MAX: u64 = 12 * 3_600 * 1_000;

/// A received message's lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Lease {
    attempt: u32,
    visible_at_ms: u64,
}

/// One group's POP progress on one queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct PopQueue {
    /// Every offset below is done.
    start: u64,
    /// The next offset never handed out.
    next: u64,
    /// Messages received and not done, by offset.
    leases: BTreeMap<u64, Lease>,
    /// Offsets in `start..next` that are done, with the attempt that
    /// finished them (0: never received, passed over by the filter).
    done: BTreeMap<u64, u32>,
    /// The last [`RECENT_MAX`] offsets the start moved over, with the
    /// attempt that finished them, so an ack retried after its answer was
    /// lost is still told apart from a stale one.
    recent: BTreeMap<u64, u32>,
}

/// How many finished offsets below the start a queue remembers.
const RECENT_MAX: usize = 4_096;

impl PopQueue {
    fn at(offset: u64) -> PopQueue {
        PopQueue { start: offset, next: offset, ..PopQueue::default() }
    }

    /// Marks `offset` done by `attempt`; true when `start` moved.
    fn finish(&mut self, offset: u64, attempt: u32) -> bool {
        self.leases.remove(&offset);
        if offset >= self.start {
            self.done.insert(offset, attempt);
        }
        self.compact()
    }

    fn compact(&mut self) -> bool {
        let before = self.start;
        while let Some((&offset, _)) = self.done.first_key_value() {
            if offset != self.start {
                break;
            }
            let attempt = self.done.remove(&offset).expect("first");
            if attempt > 0 {
                self.recent.insert(offset, attempt);
                if self.recent.len() > RECENT_MAX {
                    self.recent.pop_first();
                }
            }
            self.start += 1;
        }
        if self.start >= self.next && self.leases.is_empty() {
            self.next = self.next.max(self.start);
        }
        self.start != before
    }

    /// Marks `from..to` handed out: the offsets leased are in flight, the
    /// rest were passed over. A range that starts past `next` (records a
    /// retention deleted, or a committed offset older than the log) counts
    /// what lies between as done.
    fn hand_out(&mut self, from: u64, to: u64, leased: &[(u64, u32)], visible_at_ms: u64) {
        if from > self.next {
            if self.start == self.next && self.leases.is_empty() && self.done.is_empty() {
                self.start = from;
            } else {
                for offset in self.next..from {
                    self.done.insert(offset, 0);
                }
            }
            self.next = from;
        }
        let leased_offsets: BTreeSet<u64> = leased.iter().map(|&(o, _)| o).collect();
        for offset in from.max(self.start)..to {
            if !leased_offsets.contains(&offset) && !self.leases.contains_key(&offset) {
                self.done.entry(offset).or_insert(0);
            }
        }
        for &(offset, attempt) in leased {
            if offset >= self.start && !self.done.contains_key(&offset) {
                self.leases.insert(offset, Lease { attempt, visible_at_ms });
            }
        }
        self.next = self.next.max(to);
        self.compact();
    }

    /// The queue lost its tail (a power loss cut the log): nothing at or
    /// past `end` exists any more.
    fn cut(&mut self, end: u64) {
        self.leases.retain(|&o, _| o < end);
        self.done.retain(|&o, _| o < end);
        self.recent.retain(|&o, _| o < end);
        self.next = self.next.min(end);
        self.start = self.start.min(end);
    }

    /// Whether a message of the queue is in flight (leased and still
    /// invisible) at `now_ms`.
    fn in_flight(&self, now_ms: u64) -> bool {
        self.leases.values().any(|l| l.visible_at_ms > now_ms)
    }
}

/// A change of the POP state, as the POP log stores it (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
enum PopRecord {
    /// A receive: `from..to` newly handed out (empty when it only took
    /// expired messages again), `leased` received with these attempts,
    /// invisible until `visible_at_ms`.
    Pop { group: String, topic: String, queue_id: u32, from: u64, to: u64, leased: Vec<(u64, u32)>, visible_at_ms: u64 },
    /// An ack of an attempt.
    Ack { group: String, topic: String, queue_id: u32, offset: u64, attempt: u32 },
    /// A new invisible time for an attempt.
    Change { group: String, topic: String, queue_id: u32, offset: u64, attempt: u32, visible_at_ms: u64 },
    /// The message went to the group's dead-letter queue after `attempt`.
    Dead { group: String, topic: String, queue_id: u32, offset: u64, attempt: u32 },
}

type QueueKey = (String, String, u32);

impl PopRecord {
    fn key(&self) -> QueueKey {
        let (PopRecord::Pop { group, topic, queue_id, .. }
        | PopRecord::Ack { group, topic, queue_id, .. }
        | PopRecord::Change { group, topic, queue_id, .. }
        | PopRecord::Dead { group, topic, queue_id, .. }) = self;
        (group.clone(), topic.clone(), *queue_id)
    }
}

/// Every group's POP progress on this broker's queues.
#[derive(Debug, Default)]
pub struct PopTable {
    queues: BTreeMap<QueueKey, PopQueue>,
    /// Which queue a receive looks at first, turned on every receive so
    /// each queue gets its share.
    turn: u32,
}

impl PopTable {
    /// Replays one record of the log. A queue first met here starts at the
    /// group's committed offset, or where the record starts.
    fn replay(&mut self, record: &PopRecord, committed: Option<u64>) {
        let start = match record {
            PopRecord::Pop { from, .. } => *from,
            PopRecord::Ack { offset, .. } | PopRecord::Change { offset, .. } | PopRecord::Dead { offset, .. } => *offset,
        };
        let q = self.queues.entry(record.key()).or_insert_with(|| PopQueue::at(committed.unwrap_or(start)));
        match record {
            PopRecord::Pop { from, to, leased, visible_at_ms, .. } => q.hand_out(*from, *to, leased, *visible_at_ms),
            PopRecord::Ack { offset, attempt, .. } | PopRecord::Dead { offset, attempt, .. } => {
                if q.leases.get(offset).is_some_and(|l| l.attempt == *attempt) {
                    q.finish(*offset, *attempt);
                }
            }
            PopRecord::Change { offset, attempt, visible_at_ms, .. } => {
                if let Some(lease) = q.leases.get_mut(offset).filter(|l| l.attempt == *attempt) {
                    lease.visible_at_ms = *visible_at_ms;
                }
            }
        }
    }

    /// The POP state the log holds, over the committed offsets: from
    /// `snapshot` when the log still holds what it applied, else from the
    /// log's start.
    pub(super) fn rebuild(store: &mut MessageStore, offsets: &OffsetTable, snapshot: Option<snapshot::PopSnapshot>) -> crate::error::Result<PopTable> {
        let mut replayed = snapshot::Replayed::start(store, snapshot);
        replayed.replay_to(store, offsets, u64::MAX)?;
        tracing::debug!(records = replayed.records, "POP state rebuilt");
        let mut table = replayed.table;
        // What the log lost with a cut tail is not there to hand out.
        for ((_, topic, queue_id), q) in &mut table.queues {
            let end = store.queue_offsets(topic, *queue_id).1;
            if q.next > end {
                q.cut(end);
            }
        }
        if table.queues.values().any(|q| !q.leases.is_empty()) {
            marks::reach(Mark::PopRebuilt);
        }
        Ok(table)
    }
}

/// What one look at the queues found: the messages handed out, the log
/// records appended for them, the messages to dead-letter, and the
/// earliest time a lease of the group runs out.
struct Look {
    messages: Vec<Popped>,
    puts: Vec<PutResult>,
    dying: Vec<Dying>,
    next_visible: Option<u64>,
}

/// A message to dead-letter after a receive: its queue, offset and the
/// attempt that was its last.
struct Dying {
    queue_id: u32,
    offset: u64,
    attempt: u32,
}

impl Broker {
    /// Rebuilds the POP state from the log (at take-over, after a cut, after
    /// a reopen). The POP lock is taken first, as a receive takes it.
    pub(super) fn rebuild_pops(&self) {
        let mut pops = self.pops.lock().expect("pops");
        let mut store = self.store.lock().expect("store");
        let offsets = self.offsets.lock().expect("offsets");
        match PopTable::rebuild(&mut store, &offsets, snapshot::load(self.disk.as_ref())) {
            Ok(table) => *pops = table,
            Err(e) => tracing::warn!(error = %e, "the POP log could not be read back; POP state waits for the next reopen"),
        }
    }

    /// A SimpleConsumer's receive (RocketMQ's `POP_MESSAGE`).
    pub async fn pop(&self, command: PopMessage) -> Outcome<PopResult> {
        let PopMessage { group, topic, max_msgs, invisible_ms, poll_ms, expression, expression_type, fifo, max_attempts, consume_from } = command;
        self.refuse_on_slave("a POP receive")?;
        self.system_topic(POP_TOPIC)?;
        validate_group(&group).map_err(|e| Refusal::new(Refused::SubscriptionIllegal, e))?;
        self.refuse_disabled_group(&group)?;
        // The broker's word on attempts, and on order, wins over the consumer's.
        let settings = self.subscription_group(&group);
        let max_attempts = settings.as_ref().map_or(max_attempts, |g| g.retry_max_times.saturating_add(1));
        let fifo = fifo || settings.is_some_and(|g| g.consume_message_orderly);
        let Some(config) = self.topics.lock().expect("topics").get(&topic).cloned() else {
            return Err(Refusal::new(Refused::TopicNotExist, format!("topic {topic} does not exist on {}", self.config.broker_name)));
        };
        if !config.readable() {
            return Err(Refusal::new(Refused::NoPermission, format!("topic {topic} is not readable")));
        }
        if !(INVISIBLE_MS_MIN..=INVISIBLE_MS_MAX).contains(&invisible_ms) {
            return Err(Refusal::new(
                Refused::Illegal,
                format!("invisible time {invisible_ms} ms is outside {INVISIBLE_MS_MIN}..={INVISIBLE_MS_MAX} ms"),
            ));
        }
        let filter = Filter::parse(expression_type, &expression).map_err(|e| Refusal::new(Refused::SubscriptionIllegal, e))?;
        if matches!(filter, Filter::Sql(_)) && !self.config.enable_property_filter {
            return Err(Refusal::new(
                Refused::SubscriptionIllegal,
                format!("{} does not filter by SQL92: its enablePropertyFilter is false", self.config.broker_name),
            ));
        }
        let max_msgs = max_msgs.clamp(1, POP_BATCH_MAX) as usize;
        let max_attempts = max_attempts.max(1);
        let hold = Duration::from_millis(poll_ms.min(self.config.long_polling_max_ms));
        let now = self.clock.instant();
        let deadline = now.checked_add(hold).unwrap_or_else(|| now + Duration::from_secs(3_600));
        let queue_ids: Vec<u32> = (0..config.read_queues).collect();
        if queue_ids.is_empty() {
            return Ok(PopResult::default());
        }
        let mut arrivals: Vec<_> = queue_ids.iter().map(|&q| self.arrivals_rx(&topic, q)).collect();
        let mut replicated = self.replicated.subscribe();
        loop {
            let Look { messages, puts, dying, next_visible } =
                self.pop_once(&group, &topic, &queue_ids, &filter, max_msgs, invisible_ms, fifo, max_attempts, &consume_from)?;
            let mut settled = Ok(());
            for put in &puts {
                if let Err(e) = super::transaction::durable(self.settle(POP_TOPIC, 0, put).await.map(|status| (*put, status))) {
                    settled = Err(e);
                }
            }
            for d in dying {
                self.dead_letter_popped(&group, &topic, d).await;
            }
            settled?;
            let now = self.clock.instant();
            if messages.is_empty() && now < deadline {
                // Nothing visible: wait for an arrival, for a lease to run
                // out, or for the hold to end.
                let mut wait = deadline - now;
                if let Some(at) = next_visible {
                    wait = wait.min(Duration::from_millis(at.saturating_sub(self.clock.now_ms()).max(1)));
                }
                let heard = async {
                    let arrived = futures::future::select_all(arrivals.iter_mut().map(|rx| Box::pin(rx.changed())));
                    if self.controller.is_some() {
                        tokio::select! {
                            _ = arrived => {}
                            _ = replicated.changed() => {}
                        }
                    } else {
                        let _ = arrived.await;
                    }
                };
                let _ = tokio::time::timeout(wait, heard).await;
                continue;
            }
            self.get_count.fetch_add(messages.len() as u64, std::sync::atomic::Ordering::Relaxed);
            return Ok(PopResult { messages });
        }
    }

    /// One look at the queues under the POP lock.
    #[allow(clippy::too_many_arguments)]
    fn pop_once(
        &self,
        group: &str,
        topic: &str,
        queue_ids: &[u32],
        filter: &Filter,
        max_msgs: usize,
        invisible_ms: u64,
        fifo: bool,
        max_attempts: u32,
        consume_from: &ConsumeFrom,
    ) -> Outcome<Look> {
        let hashes = filter.hashes();
        let accept = |h: u64| hashes.as_ref().is_none_or(|set| set.contains(&h));
        let mut pops = self.pops.lock().expect("pops");
        let now_ms = self.clock.now_ms();
        let visible_at_ms = now_ms.saturating_add(invisible_ms);
        let turn = pops.turn;
        pops.turn = pops.turn.wrapping_add(1);
        let mut messages = Vec::new();
        let mut puts = Vec::new();
        let mut dying = Vec::new();
        let mut next_visible: Option<u64> = None;
        let n = queue_ids.len().max(1);
        for i in 0..queue_ids.len() {
            let queue_id = queue_ids[(turn as usize + i) % n];
            let key = (group.to_string(), topic.to_string(), queue_id);
            if !pops.queues.contains_key(&key) {
                let start = self.pop_start(group, topic, queue_id, consume_from);
                pops.queues.insert(key.clone(), PopQueue::at(start));
            }
            let q = pops.queues.get_mut(&key).expect("inserted");
            let in_flight = q.in_flight(now_ms);
            for lease in q.leases.values().filter(|l| l.visible_at_ms > now_ms) {
                next_visible = Some(next_visible.map_or(lease.visible_at_ms, |v: u64| v.min(lease.visible_at_ms)));
            }
            if messages.len() >= max_msgs || (fifo && in_flight) {
                continue;
            }
            // Expired leases first, in offset order: received again with
            // the attempt raised, or past the most attempts dead-lettered.
            let mut leased: Vec<(u64, u32)> = Vec::new();
            let mut revived = 0;
            let expired: Vec<(u64, Lease)> = q.leases.iter().filter(|(_, l)| l.visible_at_ms <= now_ms).map(|(&o, &l)| (o, l)).collect();
            for (offset, lease) in expired {
                if lease.attempt >= max_attempts {
                    // Held while its dead letter is written; received again
                    // if that fails.
                    q.leases.insert(offset, Lease { visible_at_ms, ..lease });
                    dying.push(Dying { queue_id, offset, attempt: lease.attempt });
                    revived += 1;
                    continue;
                }
                if lease.attempt >= 2 && bugs::active(Bug::PopReviveDrops) {
                    // The planted defect: a second expiry is taken as done.
                    q.finish(offset, lease.attempt);
                    continue;
                }
                if messages.len() + leased.len() >= max_msgs {
                    break;
                }
                let attempt = if bugs::active(Bug::PopAttemptKept) { lease.attempt } else { lease.attempt + 1 };
                leased.push((offset, attempt));
                revived += 1;
            }
            let from = q.next;
            let mut to = q.next;
            let mut fresh = Vec::new();
            let room = max_msgs - messages.len() - leased.len();
            if room > 0 && !(fifo && revived > 0) {
                let got = {
                    let mut store = self.store.lock().expect("store");
                    let visible_end = self.visible_end(&store);
                    store.get_or_rebuild(topic, queue_id, q.next, room, visible_end, &accept)?
                };
                if got.status == GetStatus::OffsetOverflow {
                    q.cut(got.max_offset);
                } else {
                    to = got.next_offset.max(q.next);
                    fresh = got.messages;
                    if let Filter::Sql(sql) = filter {
                        fresh.retain(|m| sql.matches(&m.message.properties, m.message.tags.as_deref()));
                    }
                    leased.extend(fresh.iter().map(|m| (m.queue_offset, 1)));
                }
            }
            let (from, to) = if to > from { (from, to) } else { (q.next, q.next) };
            if leased.is_empty() {
                // Passed over by the filter only: not logged (a rebuild
                // reads them again and passes them over again).
                q.hand_out(from, to, &[], visible_at_ms);
                let start = q.start;
                self.commit_pop_start(group, topic, queue_id, start);
                continue;
            }
            let record = PopRecord::Pop { group: group.to_string(), topic: topic.to_string(), queue_id, from, to, leased: leased.clone(), visible_at_ms };
            puts.push(self.append_pop_record(&record, now_ms)?);
            q.hand_out(from, to, &leased, visible_at_ms);
            let start = q.start;
            self.commit_pop_start(group, topic, queue_id, start);
            // The messages: the fresh ones as read, the expired ones read again.
            let mut by_offset: BTreeMap<u64, MessageExt> = fresh.into_iter().map(|m| (m.queue_offset, m)).collect();
            for &(offset, attempt) in &leased {
                let message = match by_offset.remove(&offset) {
                    Some(m) => m,
                    None => match self.read_queue_message(topic, queue_id, offset) {
                        Some(m) => m,
                        None => continue,
                    },
                };
                let mut message = message;
                message.reconsume_times = attempt - 1;
                let handle = ReceiptHandle {
                    broker_name: self.config.broker_name.clone(),
                    topic: topic.to_string(),
                    queue_id,
                    offset,
                    attempt,
                    visible_at_ms,
                };
                if attempt > 1 {
                    marks::reach(Mark::PopRevived);
                }
                messages.push(Popped { message, handle });
            }
        }
        drop(pops);
        let stamped = self.stamp(messages.iter().map(|p| p.message.clone()).collect());
        for (p, m) in messages.iter_mut().zip(stamped) {
            p.message = m;
        }
        Ok(Look { messages, puts, dying, next_visible })
    }

    /// Where a group that never received from a queue starts: its
    /// committed offset, else as `consume_from` says.
    fn pop_start(&self, group: &str, topic: &str, queue_id: u32, consume_from: &ConsumeFrom) -> u64 {
        if let Some(committed) = self.offsets.lock().expect("offsets").get(group, topic, queue_id) {
            return committed;
        }
        let store = self.store.lock().expect("store");
        let (min, max) = store.queue_offsets(topic, queue_id);
        match consume_from {
            ConsumeFrom::FirstOffset => min,
            ConsumeFrom::LastOffset => max,
            ConsumeFrom::Timestamp(ms) => store.offset_by_time(topic, queue_id, *ms).unwrap_or(max),
        }
    }

    /// The message at `offset` of a queue, if the store still has it.
    fn read_queue_message(&self, topic: &str, queue_id: u32, offset: u64) -> Option<MessageExt> {
        let mut store = self.store.lock().expect("store");
        let got = store.get_or_rebuild(topic, queue_id, offset, 1, u64::MAX, &|_| true).ok()?;
        got.messages.into_iter().next().filter(|m| m.queue_offset == offset)
    }

    /// The group's committed offset follows what is done.
    fn commit_pop_start(&self, group: &str, topic: &str, queue_id: u32, start: u64) {
        let mut offsets = self.offsets.lock().expect("offsets");
        if offsets.get(group, topic, queue_id) != Some(start) {
            offsets.commit(group, topic, queue_id, start);
        }
    }

    fn append_pop_record(&self, record: &PopRecord, now_ms: u64) -> Outcome<PutResult> {
        let body = serde_json::to_vec(record).expect("a POP record encodes");
        let msg = MessageExt {
            message: Message { topic: POP_TOPIC.to_string(), body, ..Message::default() },
            broker_name: self.config.broker_name.clone(),
            store_host: self.config.advertise_addr.clone(),
            born_host: self.config.advertise_addr.clone(),
            born_timestamp_ms: now_ms,
            ..MessageExt::default()
        };
        self.append(msg, now_ms)
    }

    /// Copies a message past its most attempts to the group's dead-letter
    /// queue and then records it done; left leased (received again later)
    /// when either step fails.
    async fn dead_letter_popped(&self, group: &str, topic: &str, d: Dying) {
        let Some(original) = self.read_queue_message(topic, d.queue_id, d.offset) else {
            // Gone with retention: nothing to keep.
            let _ = self.finish_popped(group, topic, d.queue_id, d.offset, d.attempt, true).await;
            return;
        };
        let dlq = dlq_topic(group);
        if let Err(e) = self.system_topic(&dlq) {
            tracing::warn!(error = %e, "the dead-letter topic could not be made");
            return;
        }
        let origin = original.origin.clone().unwrap_or_else(|| Origin { msg_id: original.msg_id(), topic: original.message.topic.clone() });
        let now = self.clock.now_ms();
        let copy = MessageExt {
            message: Message { topic: dlq, delay_level: 0, ..original.message },
            broker_name: self.config.broker_name.clone(),
            queue_id: 0,
            born_timestamp_ms: original.born_timestamp_ms,
            born_host: original.born_host,
            store_host: self.config.advertise_addr.clone(),
            reconsume_times: d.attempt,
            origin: Some(origin),
            ..MessageExt::default()
        };
        match super::transaction::durable(self.store_message(copy, now, None).await) {
            Ok(()) => {
                marks::reach(Mark::DeadLettered);
                if let Err(e) = self.finish_popped(group, topic, d.queue_id, d.offset, d.attempt, true).await {
                    tracing::debug!(error = %e, "a dead letter's POP record is not durable");
                }
            }
            Err(e) => tracing::debug!(error = %e, "a POP dead letter was not stored; it is received again"),
        }
    }

    /// Marks an attempt done and logs it (an ack, or a dead letter); refused
    /// when the attempt is not the message's current one. An attempt that
    /// finished the message already is logged again, so a retried ack whose
    /// first record was not durable is.
    async fn finish_popped(&self, group: &str, topic: &str, queue_id: u32, offset: u64, attempt: u32, dead: bool) -> Outcome<()> {
        let put = {
            let mut pops = self.pops.lock().expect("pops");
            let key = (group.to_string(), topic.to_string(), queue_id);
            let Some(q) = pops.queues.get_mut(&key) else {
                return Err(expired(group, topic, queue_id, offset, attempt, "the group holds nothing received from the queue"));
            };
            let current = q.leases.get(&offset).map(|l| l.attempt);
            let finished = q.done.get(&offset).or_else(|| q.recent.get(&offset)).copied();
            if current != Some(attempt) && finished != Some(attempt) {
                let why = match (current, finished) {
                    (Some(now), _) => format!("it was received again since (attempt {now})"),
                    (None, Some(_)) => "it is done".to_string(),
                    (None, None) if offset < q.start => "it is done".to_string(),
                    (None, None) => "it was never received".to_string(),
                };
                return Err(expired(group, topic, queue_id, offset, attempt, &why));
            }
            let (group, topic) = (group.to_string(), topic.to_string());
            let record = if dead {
                PopRecord::Dead { group: group.clone(), topic: topic.clone(), queue_id, offset, attempt }
            } else {
                PopRecord::Ack { group: group.clone(), topic: topic.clone(), queue_id, offset, attempt }
            };
            let put = self.append_pop_record(&record, self.clock.now_ms())?;
            let q = pops.queues.get_mut(&key).expect("looked up");
            if q.finish(offset, attempt) {
                let start = q.start;
                self.commit_pop_start(&group, &topic, queue_id, start);
            }
            put
        };
        super::transaction::durable(self.settle(POP_TOPIC, 0, &put).await.map(|status| (put, status)))
    }

    /// A received message is done (RocketMQ's `ACK_MESSAGE`).
    pub async fn ack_popped(&self, command: AckMessage) -> Outcome<()> {
        let AckMessage { group, handle } = command;
        self.refuse_on_slave("an ack")?;
        self.own_handle(&handle)?;
        self.system_topic(POP_TOPIC)?;
        self.finish_popped(&group, &handle.topic, handle.queue_id, handle.offset, handle.attempt, false).await
    }

    /// Keeps a received message invisible for a while from now (RocketMQ's
    /// `CHANGE_MESSAGE_INVISIBLETIME`); answers the new handle.
    pub async fn change_invisible(&self, command: ChangeInvisibleTime) -> Outcome<ReceiptHandle> {
        let ChangeInvisibleTime { group, handle, invisible_ms } = command;
        self.refuse_on_slave("a change of invisible time")?;
        self.own_handle(&handle)?;
        self.system_topic(POP_TOPIC)?;
        if !(INVISIBLE_MS_MIN..=INVISIBLE_MS_MAX).contains(&invisible_ms) {
            return Err(Refusal::new(
                Refused::Illegal,
                format!("invisible time {invisible_ms} ms is outside {INVISIBLE_MS_MIN}..={INVISIBLE_MS_MAX} ms"),
            ));
        }
        let (put, visible_at_ms) = {
            let mut pops = self.pops.lock().expect("pops");
            let key = (group.clone(), handle.topic.clone(), handle.queue_id);
            let now_ms = self.clock.now_ms();
            let visible_at_ms = now_ms.saturating_add(invisible_ms);
            let current = pops.queues.get(&key).and_then(|q| q.leases.get(&handle.offset)).map(|l| l.attempt);
            if current != Some(handle.attempt) {
                let why = current.map_or("it is done or was never received".to_string(), |a| format!("it was received again since (attempt {a})"));
                return Err(expired(&group, &handle.topic, handle.queue_id, handle.offset, handle.attempt, &why));
            }
            let record = PopRecord::Change {
                group: group.clone(),
                topic: handle.topic.clone(),
                queue_id: handle.queue_id,
                offset: handle.offset,
                attempt: handle.attempt,
                visible_at_ms,
            };
            let put = self.append_pop_record(&record, now_ms)?;
            let lease = pops.queues.get_mut(&key).and_then(|q| q.leases.get_mut(&handle.offset)).expect("looked up");
            lease.visible_at_ms = visible_at_ms;
            (put, visible_at_ms)
        };
        super::transaction::durable(self.settle(POP_TOPIC, 0, &put).await.map(|status| (put, status)))?;
        Ok(ReceiptHandle { visible_at_ms, ..handle })
    }

    fn own_handle(&self, handle: &ReceiptHandle) -> Outcome<()> {
        if handle.broker_name != self.config.broker_name {
            return Err(Refusal::new(
                Refused::Illegal,
                format!("the receipt handle is {}'s; this is {}", handle.broker_name, self.config.broker_name),
            ));
        }
        Ok(())
    }
}

fn expired(group: &str, topic: &str, queue_id: u32, offset: u64, attempt: u32, why: &str) -> Refusal {
    Refusal::new(
        Refused::HandleExpired,
        format!("the receipt handle of {topic}/{queue_id}@{offset} attempt {attempt} for {group} has expired: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pop(from: u64, to: u64, leased: &[(u64, u32)], visible_at_ms: u64) -> PopRecord {
        PopRecord::Pop { group: "g".into(), topic: "t".into(), queue_id: 0, from, to, leased: leased.to_vec(), visible_at_ms }
    }

    fn ack(offset: u64, attempt: u32) -> PopRecord {
        PopRecord::Ack { group: "g".into(), topic: "t".into(), queue_id: 0, offset, attempt }
    }

    fn queue(table: &PopTable) -> &PopQueue {
        &table.queues[&("g".to_string(), "t".to_string(), 0)]
    }

    #[test]
    fn replay_moves_the_start_over_what_is_done_and_keeps_the_leases_of_the_rest() {
        let mut table = PopTable::default();
        // 0..4 handed out, 1 passed over by the filter.
        table.replay(&pop(0, 4, &[(0, 1), (2, 1), (3, 1)], 100), None);
        assert_eq!((queue(&table).start, queue(&table).next), (0, 4));
        table.replay(&ack(0, 1), None);
        assert_eq!(queue(&table).start, 2, "0 acked and 1 passed over");
        // 2 expires and is received again: an ack of its first attempt is stale.
        table.replay(&pop(4, 4, &[(2, 2)], 200), None);
        table.replay(&ack(2, 1), None);
        assert_eq!(queue(&table).leases[&2], Lease { attempt: 2, visible_at_ms: 200 });
        table.replay(&ack(3, 1), None);
        table.replay(&ack(2, 2), None);
        assert_eq!((queue(&table).start, queue(&table).next), (4, 4));
        assert!(queue(&table).leases.is_empty() && queue(&table).done.is_empty());
    }

    #[test]
    fn replay_starts_a_queue_at_the_committed_offset_and_ignores_what_lies_below() {
        let mut table = PopTable::default();
        table.replay(&pop(0, 3, &[(0, 1), (1, 1), (2, 1)], 100), Some(2));
        assert_eq!(queue(&table).start, 2);
        assert_eq!(queue(&table).leases.keys().copied().collect::<Vec<_>>(), vec![2]);
        // A range past `next` (older records gone): what lies between is done.
        table.replay(&ack(2, 1), None);
        table.replay(&pop(10, 12, &[(11, 1)], 100), None);
        assert_eq!((queue(&table).start, queue(&table).next), (11, 12));
    }

    #[test]
    fn a_cut_forgets_what_lies_past_the_new_end() {
        let mut q = PopQueue::at(0);
        q.hand_out(0, 6, &[(1, 1), (4, 1), (5, 1)], 50);
        q.cut(4);
        assert_eq!((q.start, q.next), (1, 4), "0 was passed over");
        assert_eq!(q.leases.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert!(q.in_flight(10) && !q.in_flight(50));
    }

    #[test]
    fn records_read_back_as_written() {
        for record in [pop(1, 5, &[(2, 1)], 9), ack(2, 1)] {
            let json = serde_json::to_vec(&record).unwrap();
            assert_eq!(serde_json::from_slice::<PopRecord>(&json).unwrap(), record);
        }
    }
}
