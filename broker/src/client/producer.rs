//! The producer: picks a queue, sends, retries on another broker.

use super::instance::{ClientInstance, MessageQueue};
use crate::command::Refused;
use crate::error::{Error, Result};
use crate::model::{
    validate_name, Message, MessageExt, UniqueIdGenerator, MESSAGE_TYPE_REPLY, MESSAGE_TYPE_REQUEST, PERM_WRITE, PROPERTY_CORRELATION_ID, PROPERTY_MESSAGE_TTL,
    PROPERTY_MESSAGE_TYPE, PROPERTY_REPLY_TO_CLIENT, PROPERTY_UNIQ_KEY,
};
use crate::protocol::{Reply, Request, Response, ResponseCode};
use crate::command::{BrokerRole, QueueRoute, SendBatch, SendMessage, SendResult, SendStatus};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Producer settings, after RocketMQ's `DefaultMQProducer`.
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// Producer group.
    pub group: String,
    /// Timeout of one send attempt (3 s).
    pub send_timeout_ms: u64,
    /// Extra attempts of a sync send after a failure (2).
    pub retries: u32,
    /// Queues of a topic the broker auto-creates on first send (4).
    pub default_topic_queues: u32,
    /// Largest body accepted before sending (4 MiB).
    pub body_bytes_max: usize,
}

impl ProducerConfig {
    /// Defaults for `group`.
    pub fn new(group: impl Into<String>) -> ProducerConfig {
        ProducerConfig {
            group: group.into(),
            send_timeout_ms: 3_000,
            retries: 2,
            default_topic_queues: 4,
            body_bytes_max: 4 * 1024 * 1024,
        }
    }
}

/// How long a broker missing from a topic's routes keeps its share of the
/// ordered keys: the name servers' broker expiry (120 s).
const ORDERED_BROKER_GRACE: Duration = Duration::from_secs(120);

/// Per topic, the brokers ordered sends have seen serving it: broker name
/// -> (write queues, when a route last listed it).
type OrderedBrokers = BTreeMap<String, BTreeMap<String, (u32, Instant)>>;

/// Sends messages. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Producer {
    client: Arc<ClientInstance>,
    config: ProducerConfig,
    ids: Arc<UniqueIdGenerator>,
    round_robin: Arc<AtomicUsize>,
    ordered: Arc<Mutex<OrderedBrokers>>,
}

fn writable_queues(route: &[QueueRoute], topic: &str) -> Vec<MessageQueue> {
    route
        .iter()
        // Only a group with a master takes writes.
        .filter(|q| q.perm & PERM_WRITE != 0 && q.master().is_some())
        .flat_map(|q| {
            (0..q.write_queues).map(move |queue_id| MessageQueue { topic: topic.to_string(), broker_name: q.broker_name.clone(), queue_id })
        })
        .collect()
}

/// Whether another attempt (maybe elsewhere) could succeed.
fn retriable(e: &Error) -> bool {
    match e {
        // No route: the queue's group lists no master now; the retry
        // fetches the route again.
        Error::Timeout(_) | Error::Connection { .. } | Error::NoRoute(_) => true,
        Error::Refused(refusal) => {
            matches!(refusal.kind, Refused::Busy | Refused::System | Refused::TopicNotExist | Refused::NotMaster)
        }
        _ => false,
    }
}

impl Producer {
    /// A producer on a client instance.
    pub fn new(client: Arc<ClientInstance>, config: ProducerConfig) -> Result<Producer> {
        validate_name("producer group", &config.group).map_err(|m| Error::refused(Refused::Illegal, m))?;
        let prefix = format!("{}-{:X}", client.config().client_id, client.clock().now_ms());
        client.register_producer(&config.group);
        Ok(Producer { client, config, ids: Arc::new(UniqueIdGenerator::new(prefix)), round_robin: Arc::new(AtomicUsize::new(0)), ordered: Arc::default() })
    }

    /// Leaves the producer group: the brokers stop hearing of this
    /// producer (RocketMQ's `shutdown`). Sends still work.
    pub fn shutdown(&self) {
        self.client.unregister_producer(&self.config.group);
    }

    /// The producer group.
    pub fn group(&self) -> &str {
        &self.config.group
    }

    /// Gives the message its unique id (kept across retries) and checks it.
    pub fn prepare(&self, mut msg: Message) -> Result<Message> {
        validate_name("topic", &msg.topic).map_err(|m| Error::refused(Refused::Illegal, m))?;
        if msg.body.len() > self.config.body_bytes_max {
            return Err(Error::refused(Refused::Illegal,
                format!("body is {} bytes, more than the {} allowed", msg.body.len(), self.config.body_bytes_max),
            ));
        }
        if msg.unique_id().is_none() {
            msg.properties.insert(PROPERTY_UNIQ_KEY.into(), self.ids.next_id());
        }
        Ok(msg)
    }

    /// Writable queues of the topic; falls back to every known broker when
    /// the topic has no route yet (the broker auto-creates it).
    async fn queues(&self, topic: &str, refresh: bool) -> Result<Vec<MessageQueue>> {
        match self.client.route(topic, refresh).await {
            Ok(route) => Ok(writable_queues(&route.queues, topic)),
            Err(Error::NoRoute(_)) => {
                let brokers = self.client.cluster().await?;
                let mut queues = Vec::new();
                for b in brokers.iter().filter(|b| b.role == BrokerRole::Master) {
                    for queue_id in 0..self.config.default_topic_queues {
                        queues.push(MessageQueue { topic: topic.to_string(), broker_name: b.broker_name.clone(), queue_id });
                    }
                }
                if queues.is_empty() {
                    return Err(Error::NoRoute(topic.to_string()));
                }
                Ok(queues)
            }
            Err(e) => Err(e),
        }
    }

    /// The master of the group a queue of `topic` is on. None known: the
    /// topic's cached route named a master that a later route (of any
    /// topic) no longer lists, so the next send asks the name servers.
    fn master_addr(&self, topic: &str, broker_name: &str) -> Result<String> {
        self.client.master_addr(broker_name).ok_or_else(|| {
            self.client.route_stale(topic);
            Error::NoRoute(topic.to_string())
        })
    }

    /// Sends one attempt to one queue.
    pub async fn send_to(&self, msg: &Message, queue: &MessageQueue) -> Result<SendResult> {
        let addr = self.master_addr(&msg.topic, &queue.broker_name)?;
        let request = Request::SendMessage(SendMessage {
            producer_group: self.config.group.clone(),
            queue_id: queue.queue_id,
            message: msg.clone(),
            born_timestamp_ms: self.client.clock().now_ms(),
            born_host: self.client.config().client_id.clone(),
            default_topic_queues: self.config.default_topic_queues,
        });
        let response = self
            .client
            .pool_request(&addr, &request, Duration::from_millis(self.config.send_timeout_ms))
            .await?;
        self.sent(&msg.topic, response, "SendMessage")
    }

    /// A send's (or a batch's) answer: its result, also when stored but
    /// not durable in time (the status says so).
    fn sent<R: Reply>(&self, topic: &str, response: Response, command: &str) -> Result<R> {
        if response.code == ResponseCode::NotMaster {
            // The route named a replica that is not (or no longer) master:
            // ask the name servers again before the next send.
            self.client.route_stale(topic);
        }
        if matches!(response.code, ResponseCode::FlushDiskTimeout | ResponseCode::FlushSlaveTimeout | ResponseCode::SlaveNotAvailable) {
            if let Some(result) = R::from_body(response.body.clone()) {
                if response.code != ResponseCode::FlushDiskTimeout {
                    // A master whose slaves do not answer may have been
                    // deposed: look for a newer master before the next send.
                    self.client.route_stale(topic);
                }
                return Ok(result);
            }
        }
        response.into_reply(command)
    }

    /// Sync send: round-robin queue, up to `retries` more attempts after a
    /// failure, avoiding the broker that just failed. Only a result with
    /// [`SendStatus::SendOk`] means stored as configured.
    pub async fn send(&self, msg: Message) -> Result<SendResult> {
        let msg = &self.prepare(msg)?;
        self.with_retries(&msg.topic, |queue| async move { self.send_to(msg, &queue).await }).await
    }

    /// Batch send (RocketMQ's `send(Collection<Message>)`): the messages,
    /// all of one topic and none delayed, timed or transactional, go to
    /// one queue in one request, and are retried together elsewhere as a
    /// send is. One result per message, in order.
    pub async fn send_batch(&self, msgs: Vec<Message>) -> Result<Vec<SendResult>> {
        let msgs: Vec<Message> = msgs.into_iter().map(|m| self.prepare(m)).collect::<Result<_>>()?;
        let Some(topic) = msgs.first().map(|m| m.topic.clone()) else {
            return Err(Error::refused(Refused::Illegal, "a batch holds at least one message"));
        };
        if msgs.iter().any(|m| m.topic != topic) {
            return Err(Error::refused(Refused::Illegal, "a batch is of one topic"));
        }
        let msgs = &msgs;
        self.with_retries(&topic, |queue| async move { self.send_batch_to(msgs, &queue).await }).await
    }

    /// Request-reply (RocketMQ's `request`): sends `msg` as a request and
    /// waits up to `timeout` for the reply a consumer sends with
    /// [`Producer::reply`], which a broker pushes to this client over the
    /// connection it heartbeats on.
    pub async fn request(&self, msg: Message, timeout: Duration) -> Result<MessageExt> {
        let (_, reply) = self.request_with_receipt(msg, timeout).await?;
        reply
    }

    /// [`Producer::request`], telling apart a request that was not stored
    /// (the error) from one stored whose reply did not come in time: the
    /// request's send result, then its reply or the timeout.
    pub async fn request_with_receipt(&self, msg: Message, timeout: Duration) -> Result<(SendResult, Result<MessageExt>)> {
        let correlation_id = self.ids.next_id();
        let msg = msg
            .with_property(PROPERTY_CORRELATION_ID, correlation_id.clone())
            .with_property(PROPERTY_REPLY_TO_CLIENT, self.client.config().client_id.clone())
            .with_property(PROPERTY_MESSAGE_TYPE, MESSAGE_TYPE_REQUEST)
            .with_property(PROPERTY_MESSAGE_TTL, timeout.as_millis().to_string());
        let reply = self.client.replies().wait(&correlation_id);
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out = || Error::Timeout(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        // Every broker learns where this client is: the responder's reply
        // may go to any of them.
        self.client.heartbeat_producer_groups(vec![self.config.group.clone()]).await;
        let outcome = async {
            let sent = match tokio::time::timeout(deadline.saturating_duration_since(tokio::time::Instant::now()), self.send(msg)).await {
                Err(_) => return Err(timed_out()),
                Ok(sent) => sent?,
            };
            if !sent.is_ok() {
                return Err(Error::refused(Refused::NotDurable, format!("the request was stored but not durable: {:?}", sent.status)));
            }
            let answer = match tokio::time::timeout(deadline.saturating_duration_since(tokio::time::Instant::now()), reply).await {
                Ok(Ok(reply)) => Ok(reply),
                _ => Err(timed_out()),
            };
            Ok((sent, answer))
        }
        .await;
        if !matches!(outcome, Ok((_, Ok(_)))) {
            self.client.replies().forget(&correlation_id);
        }
        outcome
    }

    /// Answers a request (a message [`Producer::request`] sent) with `body`:
    /// the reply goes to the requester through whichever broker of the
    /// request's topic knows its connection.
    pub async fn reply(&self, request: &MessageExt, body: impl Into<Vec<u8>>) -> Result<SendResult> {
        let props = &request.message.properties;
        let (Some(correlation_id), Some(reply_to)) = (props.get(PROPERTY_CORRELATION_ID), props.get(PROPERTY_REPLY_TO_CLIENT)) else {
            return Err(Error::refused(Refused::Illegal, "the message is not a request: it has no CORRELATION_ID or REPLY_TO_CLIENT"));
        };
        let msg = self.prepare(
            Message::new(request.origin_topic(), body)
                .with_property(PROPERTY_MESSAGE_TYPE, MESSAGE_TYPE_REPLY)
                .with_property(PROPERTY_CORRELATION_ID, correlation_id.clone())
                .with_property(PROPERTY_REPLY_TO_CLIENT, reply_to.clone()),
        )?;
        let queues = self.queues(&msg.topic, false).await?;
        let mut brokers: Vec<&MessageQueue> = Vec::new();
        for q in &queues {
            if !brokers.iter().any(|b| b.broker_name == q.broker_name) {
                brokers.push(q);
            }
        }
        let mut last = Error::NoRoute(msg.topic.clone());
        for queue in brokers {
            match self.send_to(&msg, queue).await {
                Ok(result) => return Ok(result),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Sends one attempt of a batch to one queue.
    async fn send_batch_to(&self, msgs: &[Message], queue: &MessageQueue) -> Result<Vec<SendResult>> {
        let addr = self.master_addr(&queue.topic, &queue.broker_name)?;
        let request = Request::SendBatch(SendBatch {
            producer_group: self.config.group.clone(),
            queue_id: queue.queue_id,
            messages: msgs.to_vec(),
            born_timestamp_ms: self.client.clock().now_ms(),
            born_host: self.client.config().client_id.clone(),
            default_topic_queues: self.config.default_topic_queues,
        });
        let response = self.client.pool_request(&addr, &request, Duration::from_millis(self.config.send_timeout_ms)).await?;
        self.sent(&queue.topic, response, "SendBatch")
    }

    /// Round-robin queue, up to `retries` more attempts after a failure,
    /// avoiding the broker that just failed.
    async fn with_retries<T, F, Fut>(&self, topic: &str, attempt_at: F) -> Result<T>
    where
        F: Fn(MessageQueue) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut failed_broker: Option<String> = None;
        let mut last_err = None;
        for attempt in 0..=self.config.retries {
            let mut queues = self.queues(topic, attempt > 0).await?;
            if queues.is_empty() && attempt == 0 {
                // The cached route lists no master to write to (a name
                // server that restarted had heard from slaves only, or the
                // master was deposed): ask again before giving up.
                queues = self.queues(topic, true).await?;
            }
            if queues.is_empty() {
                return Err(Error::NoRoute(topic.to_string()));
            }
            let start = self.round_robin.fetch_add(1, Ordering::Relaxed);
            let pick = (0..queues.len())
                .map(|i| &queues[(start + i) % queues.len()])
                .find(|q| Some(&q.broker_name) != failed_broker.as_ref())
                .unwrap_or(&queues[start % queues.len()]);
            match attempt_at(pick.clone()).await {
                Ok(result) => return Ok(result),
                Err(e) if retriable(&e) => {
                    tracing::debug!(queue = %pick, error = %e, attempt, "send failed, retrying");
                    failed_broker = Some(pick.broker_name.clone());
                    last_err = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    /// Ordered send: the queue is chosen by a hash of `sharding_key` over the
    /// topic's writable queues; no retry elsewhere, as RocketMQ does for FIFO.
    ///
    /// The queues hashed over are those of every broker a route listed in
    /// the last two minutes, not only the latest route's: a name server
    /// that restarted lists a broker only once it registers again, and
    /// RocketMQ's client, hashing over the shorter list meanwhile, moves
    /// keys to other queues, where their later messages overtake earlier
    /// ones still queued (the swarm caught this). A key's queue changes only
    /// when a broker has been gone that long.
    pub async fn send_ordered(&self, msg: Message, sharding_key: &str) -> Result<SendResult> {
        let msg = self.prepare(msg)?;
        let queues = self.ordered_queues(&msg.topic).await?;
        let index = (crate::model::tag_hash(sharding_key) % queues.len() as u64) as usize;
        self.send_to(&msg, &queues[index]).await
    }

    /// The queues ordered sends hash over (see [`Self::send_ordered`]).
    async fn ordered_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        let current = self.queues(topic, false).await?;
        let now = Instant::now();
        let mut ordered = self.ordered.lock().expect("ordered");
        let brokers = ordered.entry(topic.to_string()).or_default();
        let mut listed: BTreeMap<&str, u32> = BTreeMap::new();
        for q in &current {
            let n = listed.entry(q.broker_name.as_str()).or_default();
            *n = (*n).max(q.queue_id + 1);
        }
        for (name, count) in listed {
            brokers.insert(name.to_string(), (count, now));
        }
        brokers.retain(|_, (_, seen)| now.saturating_duration_since(*seen) < ORDERED_BROKER_GRACE);
        let queues: Vec<MessageQueue> = brokers
            .iter()
            .flat_map(|(name, (count, _))| {
                (0..*count).map(move |queue_id| MessageQueue { topic: topic.to_string(), broker_name: name.clone(), queue_id })
            })
            .collect();
        if queues.is_empty() {
            return Err(Error::NoRoute(topic.to_string()));
        }
        Ok(queues)
    }

    /// Async send: returns at once; `callback` gets the outcome.
    pub fn send_async(&self, msg: Message, callback: impl FnOnce(Result<SendResult>) + Send + 'static) {
        let me = self.clone();
        tokio::spawn(async move { callback(me.send(msg).await) });
    }

    /// Oneway send: no acknowledgement, no retry; a lost message is not reported.
    pub async fn send_oneway(&self, msg: Message) -> Result<()> {
        let msg = self.prepare(msg)?;
        let queues = self.queues(&msg.topic, false).await?;
        if queues.is_empty() {
            return Err(Error::NoRoute(msg.topic.clone()));
        }
        let queue = &queues[self.round_robin.fetch_add(1, Ordering::Relaxed) % queues.len()];
        let addr = self.master_addr(&msg.topic, &queue.broker_name)?;
        let request = Request::SendMessage(SendMessage {
            producer_group: self.config.group.clone(),
            queue_id: queue.queue_id,
            message: msg,
            born_timestamp_ms: self.client.clock().now_ms(),
            born_host: self.client.config().client_id.clone(),
            default_topic_queues: self.config.default_topic_queues,
        });
        self.client.oneway(&addr, &request).await
    }
}

impl SendResult {
    /// Whether the broker stored the message as configured.
    pub fn is_ok(&self) -> bool {
        self.status == SendStatus::SendOk
    }
}
