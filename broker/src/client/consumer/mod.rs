//! The push consumer (clustering mode): rebalance queues among the group,
//! long-poll each owned queue, hand messages to the listener, and commit the
//! smallest offset still in flight.
//!
//! - `api`: what an application gives the consumer: its listener and
//!   configuration.
//! - `consume`: handing a batch (or an orderly queue's message) to the
//!   listener, and sending failures back.

mod api;
mod consume;

pub use api::*;

use super::instance::{ClientInstance, MessageQueue};
use crate::command::Refused;
use super::rebalance::allocate_averagely;
use crate::bugs::{self, Bug};
use crate::marks::{self, Mark};
use crate::error::{Error, Result};
use crate::model::{is_system_topic, retry_topic, validate_group, validate_name, Filter, MessageExt, Selector, MAX_RECONSUME_TIMES_DEFAULT};
use super::inbound::ResetListener;
use crate::command::{CommittedOffset, ConsumeFrom, ConsumerData, GetConsumerList, GetQueueOffsets, Heartbeat, LockBatchMq, PullMessage, QueryConsumerOffset, SearchOffsetByTime, UnlockBatchMq, UnregisterClient, UpdateConsumerOffset};
use crate::store::GetStatus;
use futures::future::BoxFuture;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Queues grouped by broker, as (topic, queue id) pairs: one lock or
/// unlock request per broker.
fn by_broker(queues: &[MessageQueue]) -> BTreeMap<&str, Vec<(String, u32)>> {
    let mut grouped: BTreeMap<&str, Vec<(String, u32)>> = BTreeMap::new();
    for mq in queues {
        grouped.entry(mq.broker_name.as_str()).or_default().push((mq.topic.clone(), mq.queue_id));
    }
    grouped
}

/// A message as the listener sees it: a retry, pulled from the group's
/// retry topic, carries its original topic again (RocketMQ's
/// `resetRetryAndNamespace`); the queue it came from is in the context.
fn as_delivered(mut m: MessageExt, mq: &MessageQueue) -> MessageExt {
    if is_system_topic(&mq.topic) {
        if let Some(origin) = &m.origin {
            m.message.topic = origin.topic.clone();
        }
    }
    m
}

/// Offsets of one owned queue: what is pulled and what is still being consumed.
#[derive(Debug, Default)]
struct ProcessQueue {
    /// Offsets handed to the listener and not yet consumed successfully,
    /// with their bodies' sizes.
    in_flight: BTreeMap<u64, usize>,
    /// Body bytes of the messages in flight.
    cached_bytes: usize,
    /// Next offset to pull.
    next_pull: u64,
    /// Last offset committed to the broker.
    committed: Option<u64>,
    /// The queue's reset generation when this consumer took it: pulls and
    /// commits carry it, and the broker refuses them once an operator
    /// reset the group's offset there since.
    generation: u64,
}

impl ProcessQueue {
    /// The offset safe to commit: the smallest still in flight, or the next
    /// pull when nothing is.
    fn commit_offset(&self) -> u64 {
        if bugs::active(Bug::CommitOffsetAhead) {
            return self.next_pull;
        }
        self.in_flight.keys().next().copied().unwrap_or(self.next_pull)
    }

    /// Pulled messages, in flight until [`ProcessQueue::done`].
    fn take(&mut self, msgs: &[MessageExt]) {
        for m in msgs {
            if self.in_flight.insert(m.queue_offset, m.message.body.len()).is_none() {
                self.cached_bytes += m.message.body.len();
            }
        }
    }

    /// The message at `offset` is consumed (or moved on from).
    fn done(&mut self, offset: u64) {
        if let Some(bytes) = self.in_flight.remove(&offset) {
            self.cached_bytes -= bytes;
        }
    }
}

struct QueueState {
    mq: MessageQueue,
    selector: Selector,
    filter: Filter,
    dropped: AtomicBool,
    pq: Mutex<ProcessQueue>,
    /// Orderly: until when this consumer trusts its lock of the queue.
    locked_until: Mutex<Option<Instant>>,
    /// Orderly: held while one of the queue's messages is processed, so the
    /// queue is released (and its lock given up) only between messages.
    consume_lock: tokio::sync::Mutex<()>,
}

impl QueueState {
    fn lock_valid(&self) -> bool {
        self.locked_until.lock().expect("locked_until").is_some_and(|until| Instant::now() < until)
    }
}

struct Inner {
    client: Arc<ClientInstance>,
    config: PushConsumerConfig,
    listener: Arc<dyn MessageListener>,
    owned: Mutex<BTreeMap<MessageQueue, Arc<QueueState>>>,
    permits: Arc<Semaphore>,
    stopped: AtomicBool,
    /// Wakes the rebalance loop: a broker's notice, a queue given up to
    /// be taken again after a reset.
    wake: Arc<tokio::sync::Notify>,
    /// A broadcasting consumer's own offsets.
    local: Mutex<LocalStore>,
}

/// A broadcasting consumer's offsets, kept on its own side: in memory, and
/// written to its disk (when it has one) at every commit round.
#[derive(Default)]
struct LocalStore {
    disk: Option<Arc<dyn crate::store::Disk>>,
    path: String,
    offsets: BTreeMap<MessageQueue, u64>,
    dirty: bool,
}

/// One queue's offset as a broadcasting consumer's file holds it.
#[derive(serde::Serialize, serde::Deserialize)]
struct LocalOffset {
    broker_name: String,
    topic: String,
    queue_id: u32,
    offset: u64,
}

impl LocalStore {
    fn load(disk: Arc<dyn crate::store::Disk>, group: &str) -> Result<LocalStore> {
        let path = format!("offsets/{group}.json");
        let offsets = match crate::store::disk::read_all(disk.as_ref(), &path)? {
            None => BTreeMap::new(),
            Some(bytes) => serde_json::from_slice::<Vec<LocalOffset>>(&bytes)
                .map_err(|e| Error::corrupt_file(&path, e.to_string()))?
                .into_iter()
                .map(|o| (MessageQueue { topic: o.topic, broker_name: o.broker_name, queue_id: o.queue_id }, o.offset))
                .collect(),
        };
        Ok(LocalStore { disk: Some(disk), path, offsets, dirty: false })
    }

    /// Writes the offsets when they changed; kept dirty when the disk failed.
    fn persist(&mut self) {
        let Some(disk) = &self.disk else { return };
        if !self.dirty {
            return;
        }
        let list: Vec<LocalOffset> = self
            .offsets
            .iter()
            .map(|(mq, &offset)| LocalOffset { broker_name: mq.broker_name.clone(), topic: mq.topic.clone(), queue_id: mq.queue_id, offset })
            .collect();
        let bytes = serde_json::to_vec(&list).expect("offsets encode");
        match disk.write_atomic(&self.path, &bytes) {
            Ok(()) => self.dirty = false,
            Err(e) => tracing::warn!(path = %self.path, error = %e, "the local offsets were not written"),
        }
    }
}

/// A running push consumer.
pub struct PushConsumer {
    inner: Arc<Inner>,
}

impl PushConsumer {
    /// Validates the configuration and starts consuming in the background.
    pub fn start(client: Arc<ClientInstance>, mut config: PushConsumerConfig, listener: impl MessageListener) -> Result<PushConsumer> {
        let illegal = |m: String| Error::refused(Refused::SubscriptionIllegal, m);
        validate_group(&config.group).map_err(illegal)?;
        if config.subscriptions.is_empty() {
            return Err(illegal("a consumer needs at least one subscription".into()));
        }
        for (topic, selector) in &config.subscriptions {
            validate_name("topic", topic).map_err(illegal)?;
            if is_system_topic(topic) {
                return Err(illegal(format!("{topic} is a system topic; a group's retry topic is subscribed to by itself")));
            }
            Filter::parse(selector.kind, &selector.expression).map_err(illegal)?;
        }
        // Every clustering consumer takes its share of the group's retries
        // (not filtered again: what failed had passed the filter). A
        // broadcasting group has no retry topic.
        if !config.broadcast {
            config.subscriptions.push((retry_topic(&config.group), Selector::tag("*")));
        }
        if config.broadcast && config.orderly {
            return Err(illegal("an orderly consumer cannot broadcast: orderly consumption locks each queue to one consumer".into()));
        }
        let local = match &config.local_offsets.0 {
            Some(disk) if config.broadcast => LocalStore::load(disk.clone(), &config.group)?,
            _ => LocalStore::default(),
        };
        // A broker's notice that the group's members changed wakes this
        // consumer to rebalance at once (RocketMQ's rebalanceImmediately);
        // the period is the backstop for a notice lost on the way.
        let wake = Arc::new(tokio::sync::Notify::new());
        let inner = Arc::new(Inner {
            wake: wake.clone(),
            permits: Arc::new(Semaphore::new(config.consume_concurrency.max(1))),
            client,
            config,
            listener: Arc::new(listener),
            owned: Mutex::new(BTreeMap::new()),
            stopped: AtomicBool::new(false),
            local: Mutex::new(local),
        });
        inner.client.rebalancers().register(&inner.config.group, &wake);
        let listener: Arc<dyn ResetListener> = inner.clone();
        inner.client.rebalancers().register_reset(&inner.config.group, Arc::downgrade(&listener));
        let me = inner.clone();
        tokio::spawn(async move {
            while !me.stopped.load(Ordering::Relaxed) {
                me.heartbeat().await;
                me.rebalance().await;
                let period = tokio::time::sleep(Duration::from_millis(me.config.rebalance_interval_ms));
                tokio::pin!(period);
                loop {
                    tokio::select! {
                        _ = &mut period => break,
                        _ = wake.notified() => {
                            if me.stopped.load(Ordering::Relaxed) {
                                break;
                            }
                            me.rebalance().await;
                        }
                    }
                }
            }
        });
        let me = inner.clone();
        tokio::spawn(async move {
            let mut rounds = 0u64;
            while !me.stopped.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(me.config.offset_persist_interval_ms)).await;
                rounds += 1;
                if rounds > 1 && bugs::active(Bug::PeriodicCommitStops) {
                    // The planted defect: only the first round commits.
                    continue;
                }
                me.commit_all().await;
            }
        });
        if inner.config.orderly {
            let me = inner.clone();
            tokio::spawn(async move {
                while !me.stopped.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(me.config.lock_interval_ms)).await;
                    let owned: Vec<Arc<QueueState>> = me.owned.lock().expect("owned").values().cloned().collect();
                    me.renew_locks(&owned.iter().map(Arc::as_ref).collect::<Vec<_>>()).await;
                }
            });
        }
        Ok(PushConsumer { inner })
    }

    /// Queues this consumer owns now.
    pub fn owned_queues(&self) -> Vec<MessageQueue> {
        self.inner.owned.lock().expect("owned").keys().cloned().collect()
    }

    /// Runs one heartbeat and rebalance now instead of waiting for the period.
    pub async fn rebalance_now(&self) {
        self.inner.heartbeat().await;
        self.inner.rebalance().await;
    }

    /// Stops pulling, commits offsets, releases queue locks, and leaves
    /// the group.
    pub async fn shutdown(&self) {
        self.inner.stopped.store(true, Ordering::Relaxed);
        let owned: Vec<Arc<QueueState>> = self.inner.owned.lock().expect("owned").values().cloned().collect();
        for q in &owned {
            q.dropped.store(true, Ordering::Relaxed);
        }
        for q in &owned {
            // An orderly queue is given up between messages only.
            let _between = q.consume_lock.lock().await;
        }
        self.inner.commit_all().await;
        if self.inner.config.orderly {
            self.inner.unlock(&owned.iter().map(|q| q.mq.clone()).collect::<Vec<_>>()).await;
        }
        for q in &owned {
            self.inner.config.on_queue.tell(&q.mq, QueueChange::Released);
        }
        for addr in self.inner.broker_addrs().await {
            let leave = UnregisterClient {
                client_id: self.inner.client.config().client_id.clone(),
                group: self.inner.config.group.clone(),
            };
            let _ = self.inner.client.call(&addr, leave, self.inner.client.timeout()).await;
        }
    }
}

impl Inner {
    async fn broker_addrs(&self) -> BTreeSet<String> {
        let mut addrs = BTreeSet::new();
        for (topic, _) in &self.config.subscriptions {
            if let Ok(route) = self.client.route(topic, false).await {
                addrs.extend(route.queues.iter().flat_map(|q| q.replicas.iter().map(|r| r.addr.clone())));
            }
        }
        addrs
    }

    async fn heartbeat(&self) {
        let data = ConsumerData {
            group: self.config.group.clone(),
            subscriptions: self.config.subscriptions.iter().map(|(t, s)| (t.clone(), s.expression.clone())).collect(),
            consume_from: self.config.consume_from,
            broadcast: self.config.broadcast,
        };
        let heartbeat = Heartbeat { client_id: self.client.config().client_id.clone(), consumers: vec![data] };
        for (topic, _) in &self.config.subscriptions {
            let _ = self.client.route(topic, true).await;
        }
        let calls = self.broker_addrs().await.into_iter().map(|addr| {
            let heartbeat = heartbeat.clone();
            async move {
                if let Err(e) = self.client.call(&addr, heartbeat, self.client.timeout()).await {
                    tracing::debug!(broker = %addr, error = %e, "heartbeat failed");
                }
            }
        });
        futures::future::join_all(calls).await;
    }

    async fn consumers(&self, queues: &[MessageQueue]) -> Option<Vec<String>> {
        let names: BTreeSet<&String> = queues.iter().map(|q| &q.broker_name).collect();
        for name in names {
            let Some(addr) = self.client.broker_addr(name) else { continue };
            let members = GetConsumerList { group: self.config.group.clone() };
            if let Ok(list) = self.client.call(&addr, members, self.client.timeout()).await {
                if !list.is_empty() {
                    return Some(list);
                }
            }
        }
        None
    }

    async fn rebalance(self: &Arc<Self>) {
        for (topic, selector) in &self.config.subscriptions {
            let Ok(queues) = self.client.read_queues(topic, false).await else { continue };
            let mine: BTreeSet<MessageQueue> = if self.config.broadcast {
                // Every consumer of a broadcasting group reads every queue.
                queues.into_iter().collect()
            } else {
                let Some(consumers) = self.consumers(&queues).await else { continue };
                allocate_averagely(&queues, &consumers, &self.client.config().client_id).into_iter().collect()
            };
            let current: Vec<Arc<QueueState>> =
                self.owned.lock().expect("owned").values().filter(|q| &q.mq.topic == topic).cloned().collect();
            for q in current.iter().filter(|q| !mine.contains(&q.mq)) {
                q.dropped.store(true, Ordering::Relaxed);
                if !q.pq.lock().expect("pq").in_flight.is_empty() {
                    marks::reach(Mark::RebalanceWithInFlight);
                }
                // An orderly queue is released between messages only: once
                // this returns, nothing of it is being processed here.
                let between = if bugs::active(Bug::OrderlyReleaseEarly) {
                    // The planted defect: released with a message in hand.
                    None
                } else {
                    Some(q.consume_lock.lock().await)
                };
                self.commit(q).await;
                if self.config.orderly {
                    self.unlock(std::slice::from_ref(&q.mq)).await;
                }
                drop(between);
                self.owned.lock().expect("owned").remove(&q.mq);
                self.config.on_queue.tell(&q.mq, QueueChange::Released);
                tracing::debug!(queue = %q.mq, "queue released");
            }
            for mq in mine {
                if self.owned.lock().expect("owned").contains_key(&mq) {
                    continue;
                }
                // An orderly consumer takes a queue only once it holds the
                // queue's lock; another consumer may still be finishing it.
                let mut locked_until = None;
                if self.config.orderly {
                    let (sent, granted, _) = self.lock(std::slice::from_ref(&mq)).await;
                    if !granted.contains(&mq) {
                        tracing::debug!(queue = %mq, "queue lock held elsewhere; trying again at the next rebalance");
                        continue;
                    }
                    locked_until = Some(sent + Duration::from_millis(self.config.lock_lease_ms));
                }
                match self.start_offset(&mq).await {
                    Ok((offset, generation)) => {
                        let state = Arc::new(QueueState {
                            mq: mq.clone(),
                            selector: selector.clone(),
                            filter: Filter::parse(selector.kind, &selector.expression).expect("validated at start"),
                            dropped: AtomicBool::new(false),
                            pq: Mutex::new(ProcessQueue { next_pull: offset, generation, ..ProcessQueue::default() }),
                            locked_until: Mutex::new(locked_until),
                            consume_lock: tokio::sync::Mutex::new(()),
                        });
                        self.owned.lock().expect("owned").insert(mq.clone(), state.clone());
                        self.config.on_queue.tell(&mq, QueueChange::Taken { offset });
                        tracing::debug!(queue = %mq, offset, "queue taken");
                        let me = self.clone();
                        tokio::spawn(async move { me.pull_loop(state).await });
                    }
                    Err(e) => tracing::debug!(queue = %mq, error = %e, "cannot read start offset yet"),
                }
            }
        }
    }

    /// Where to start a queue, and its reset generation.
    async fn start_offset(&self, mq: &MessageQueue) -> Result<(u64, u64)> {
        let addr = self.client.broker_addr(&mq.broker_name).ok_or_else(|| Error::NoRoute(mq.topic.clone()))?;
        let timeout = self.client.timeout();
        if self.config.broadcast {
            // Its own offset, never the group's: a broadcasting consumer
            // neither commits nor is fenced by resets.
            let local = self.local.lock().expect("local").offsets.get(mq).copied();
            let range = self.client.call(&addr, GetQueueOffsets { topic: mq.topic.clone(), queue_id: mq.queue_id }, timeout).await?;
            if let Some(offset) = local {
                if bugs::active(Bug::BroadcastResumeAtEnd) {
                    // The planted defect: its own offset is passed over.
                    return Ok((range.max_offset, u64::MAX));
                }
                return Ok((offset, u64::MAX));
            }
            let offset = match self.config.consume_from {
                ConsumeFrom::FirstOffset => range.min_offset,
                ConsumeFrom::LastOffset => range.max_offset,
                ConsumeFrom::Timestamp(timestamp_ms) => {
                    let search = SearchOffsetByTime { topic: mq.topic.clone(), queue_id: mq.queue_id, timestamp_ms };
                    self.client.call(&addr, search, timeout).await?.unwrap_or(range.max_offset)
                }
            };
            return Ok((offset, u64::MAX));
        }
        let query = QueryConsumerOffset { group: self.config.group.clone(), topic: mq.topic.clone(), queue_id: mq.queue_id };
        let CommittedOffset { offset: committed, generation } = self.client.call(&addr, query, timeout).await?;
        let range = self.client.call(&addr, GetQueueOffsets { topic: mq.topic.clone(), queue_id: mq.queue_id }, timeout).await?;
        let (min, max) = (range.min_offset, range.max_offset);
        if let Some(offset) = committed {
            if bugs::active(Bug::DropRebalancedQueue) {
                return Ok((max, generation));
            }
            return Ok((offset, generation));
        }
        let offset = match self.config.consume_from {
            ConsumeFrom::FirstOffset => min,
            ConsumeFrom::LastOffset => max,
            ConsumeFrom::Timestamp(timestamp_ms) => {
                let search = SearchOffsetByTime { topic: mq.topic.clone(), queue_id: mq.queue_id, timestamp_ms };
                self.client.call(&addr, search, timeout).await?.unwrap_or(max)
            }
        };
        Ok((offset, generation))
    }

    /// Gives a queue up to take it again at once from the group's
    /// committed offset: an operator reset it. Between messages for an
    /// orderly queue (its lock stays held and is renewed on the take).
    fn retake(self: &Arc<Self>, q: &Arc<QueueState>) {
        if q.dropped.swap(true, Ordering::Relaxed) {
            // A rebalance is giving it up already, or a retake runs.
            return;
        }
        marks::reach(Mark::OffsetResetTaken);
        let me = self.clone();
        let q = q.clone();
        tokio::spawn(async move {
            let _between = q.consume_lock.lock().await;
            {
                let mut owned = me.owned.lock().expect("owned");
                if !owned.get(&q.mq).is_some_and(|now| Arc::ptr_eq(now, &q)) {
                    return;
                }
                owned.remove(&q.mq);
            }
            me.config.on_queue.tell(&q.mq, QueueChange::Released);
            tracing::debug!(queue = %q.mq, "queue given up after an offset reset; taking it again");
            me.wake.notify_one();
        });
    }

    /// Locks (or renews) queues on their brokers; returns when the requests
    /// were sent (what a lock's trust is counted from), the queues held, and
    /// the brokers that answered.
    async fn lock(&self, queues: &[MessageQueue]) -> (Instant, BTreeSet<MessageQueue>, BTreeSet<String>) {
        let sent = Instant::now();
        let mut held = BTreeSet::new();
        let mut answered = BTreeSet::new();
        for (broker_name, keys) in by_broker(queues) {
            let Some(addr) = self.client.master_addr(broker_name) else { continue };
            let lock = LockBatchMq { group: self.config.group.clone(), client_id: self.client.config().client_id.clone(), queues: keys };
            match self.client.call(&addr, lock, self.client.timeout()).await {
                Ok(granted) => {
                    answered.insert(broker_name.to_string());
                    held.extend(granted.into_iter().map(|(topic, queue_id)| MessageQueue {
                        topic,
                        broker_name: broker_name.to_string(),
                        queue_id,
                    }));
                }
                Err(e) => tracing::debug!(broker = %broker_name, error = %e, "queue lock failed"),
            }
        }
        (sent, held, answered)
    }

    /// Renews the locks of `queues`: each held one is trusted for another
    /// lease from when the request was sent; an unanswered one keeps what
    /// trust it had left; one its broker refused (another consumer holds
    /// it) is no longer trusted at all.
    async fn renew_locks(&self, queues: &[&QueueState]) {
        let mqs: Vec<MessageQueue> = queues.iter().map(|q| q.mq.clone()).collect();
        let (sent, held, answered) = self.lock(&mqs).await;
        let until = sent + Duration::from_millis(self.config.lock_lease_ms);
        for q in queues {
            let mut locked_until = q.locked_until.lock().expect("locked_until");
            if held.contains(&q.mq) {
                *locked_until = Some(until);
            } else if answered.contains(&q.mq.broker_name) {
                *locked_until = None;
            }
        }
    }

    /// Releases queue locks on their brokers.
    async fn unlock(&self, queues: &[MessageQueue]) {
        for (broker_name, keys) in by_broker(queues) {
            let Some(addr) = self.client.master_addr(broker_name) else { continue };
            let unlock = UnlockBatchMq { group: self.config.group.clone(), client_id: self.client.config().client_id.clone(), queues: keys };
            if let Err(e) = self.client.call(&addr, unlock, self.client.timeout()).await {
                tracing::debug!(broker = %broker_name, error = %e, "queue unlock failed; the lease runs out instead");
            }
        }
    }

    async fn pull_loop(self: Arc<Self>, q: Arc<QueueState>) {
        let backoff = Duration::from_millis(self.config.pull_backoff_ms);
        while !q.dropped.load(Ordering::Relaxed) && !self.stopped.load(Ordering::Relaxed) {
            if self.config.orderly && !q.lock_valid() {
                // Nothing of a queue is pulled or processed without its lock.
                self.renew_locks(&[q.as_ref()]).await;
                if !q.lock_valid() {
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            }
            let (offset, cached, cached_bytes, generation) = {
                let pq = q.pq.lock().expect("pq");
                (pq.next_pull, pq.in_flight.len(), pq.cached_bytes, pq.generation)
            };
            // Flow control (RocketMQ's pullThresholdForQueue and
            // pullThresholdSizeForQueue): the local cache is bounded in
            // messages and in bytes, however far behind the consumer is.
            if cached >= self.config.queue_cache_max || cached_bytes >= self.config.queue_cache_bytes_max {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let Some(addr) = self.client.broker_addr(&q.mq.broker_name) else {
                tokio::time::sleep(backoff).await;
                continue;
            };
            let pull = PullMessage {
                group: self.config.group.clone(),
                topic: q.mq.topic.clone(),
                queue_id: q.mq.queue_id,
                offset,
                max_msgs: self.config.pull_batch,
                expression: q.selector.expression.clone(),
                expression_type: q.selector.kind,
                suspend_ms: self.config.long_polling_ms,
                generation,
            };
            let timeout = Duration::from_millis(self.config.long_polling_ms) + self.client.timeout();
            let result = match self.client.call(&addr, pull, timeout).await {
                Ok(r) => r,
                Err(Error::Refused(refusal)) if refusal.kind == Refused::StaleReset => {
                    tracing::debug!(queue = %q.mq, reason = %refusal.reason, "pull refused: the offsets were reset");
                    self.retake(&q);
                    break;
                }
                Err(e) => {
                    tracing::debug!(queue = %q.mq, error = %e, "pull failed");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            if q.dropped.load(Ordering::Relaxed) {
                break;
            }
            let msgs: Vec<MessageExt> = if result.status == GetStatus::Found {
                result.messages.into_iter().filter(|m| q.filter.matches(&m.message)).collect()
            } else {
                Vec::new()
            };
            {
                let mut pq = q.pq.lock().expect("pq");
                pq.take(&msgs);
                pq.next_pull = result.next_offset;
            }
            if self.config.orderly {
                for m in msgs {
                    if !self.consume_orderly(&q, m).await {
                        break;
                    }
                }
                continue;
            }
            for chunk in msgs.chunks(self.config.consume_batch.max(1)) {
                let permit = self.permits.clone().acquire_owned().await.expect("semaphore never closes");
                let me = self.clone();
                let q = q.clone();
                let batch = chunk.to_vec();
                tokio::spawn(async move {
                    me.consume(&q, batch).await;
                    drop(permit);
                });
            }
        }
    }

    async fn commit(self: &Arc<Self>, q: &Arc<QueueState>) {
        let (offset, generation) = {
            let pq = q.pq.lock().expect("pq");
            let offset = pq.commit_offset();
            if pq.committed == Some(offset) {
                return;
            }
            (offset, pq.generation)
        };
        if self.config.broadcast {
            let mut local = self.local.lock().expect("local");
            if local.offsets.insert(q.mq.clone(), offset) != Some(offset) {
                local.dirty = true;
            }
            q.pq.lock().expect("pq").committed = Some(offset);
            return;
        }
        // A commit is a write: to the master, never to a slave read from
        // while the master is away (its copy of the offsets is replaced by
        // the master's); it waits for the next round instead.
        let Some(addr) = self.client.master_addr(&q.mq.broker_name) else { return };
        let commit =
            UpdateConsumerOffset { group: self.config.group.clone(), topic: q.mq.topic.clone(), queue_id: q.mq.queue_id, offset, generation };
        match self.client.call(&addr, commit, self.client.timeout()).await {
            Ok(now) => {
                q.pq.lock().expect("pq").committed = Some(offset);
                // A higher commit than this one (a previous owner's, taken
                // first) stays on the broker: the hook hears the offset the
                // group would resume at.
                let held = now.offset.unwrap_or(offset);
                if held != offset {
                    tracing::debug!(queue = %q.mq, offset, held, "the broker kept a higher commit than this one");
                }
                self.config.on_queue.tell(&q.mq, QueueChange::Committed { offset: held });
            }
            Err(Error::Refused(refusal)) if refusal.kind == Refused::StaleReset => {
                tracing::debug!(queue = %q.mq, reason = %refusal.reason, "commit refused: the offsets were reset");
                self.retake(q);
            }
            Err(e) => tracing::debug!(queue = %q.mq, error = %e, "offset commit failed"),
        }
    }

    async fn commit_all(self: &Arc<Self>) {
        let owned: Vec<Arc<QueueState>> = self.owned.lock().expect("owned").values().cloned().collect();
        for q in owned {
            self.commit(&q).await;
        }
        self.local.lock().expect("local").persist();
    }
}

impl ResetListener for Inner {
    fn offsets_reset(self: Arc<Self>, topic: &str, broker_name: &str) {
        let reset: Vec<Arc<QueueState>> = self
            .owned
            .lock()
            .expect("owned")
            .values()
            .filter(|q| q.mq.topic == topic && q.mq.broker_name == broker_name)
            .cloned()
            .collect();
        for q in &reset {
            self.retake(q);
        }
    }

    fn running_info(&self) -> crate::command::ConsumerRunningInfo {
        let owned: Vec<Arc<QueueState>> = self.owned.lock().expect("owned").values().cloned().collect();
        let queues = owned
            .iter()
            .filter(|q| !q.dropped.load(Ordering::Relaxed))
            .map(|q| {
                let pq = q.pq.lock().expect("pq");
                crate::command::QueueRunningInfo {
                    topic: q.mq.topic.clone(),
                    broker_name: q.mq.broker_name.clone(),
                    queue_id: q.mq.queue_id,
                    next_pull: pq.next_pull,
                    committed: pq.committed,
                    cached_msgs: pq.in_flight.len(),
                    cached_bytes: pq.cached_bytes,
                    first_in_flight: pq.in_flight.keys().next().copied(),
                    locked: self.config.orderly && q.lock_valid(),
                }
            })
            .collect();
        crate::command::ConsumerRunningInfo {
            client_id: self.client.config().client_id.clone(),
            group: self.config.group.clone(),
            broadcast: self.config.broadcast,
            orderly: self.config.orderly,
            subscriptions: self.config.subscriptions.iter().map(|(topic, s)| (topic.clone(), s.expression.clone())).collect(),
            consume_concurrency: self.config.consume_concurrency,
            queues,
        }
    }
}
