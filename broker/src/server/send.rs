//! Sending ([`crate::command::send`]): a producer's message is checked,
//! shaped (a half, a timer, a delay) and stored, and answered once it is
//! as durable as the flush and replication modes ask.

use super::{Broker, FlushMode};
use crate::bugs::{self, Bug};
use crate::command::{Outcome, PushReplyMessage, Refusal, Refused, SendBatch, SendMessage, SendResult, SendStatus, BATCH_BODY_BYTES_MAX};
use crate::marks::{self, Mark};
use crate::model::{
    is_system_topic, offset_msg_id, validate_name, Delayed, Message, MessageExt, TopicConfig, MESSAGE_TYPE_REPLY, PROPERTY_CORRELATION_ID, PROPERTY_MESSAGE_TYPE,
    PROPERTY_REPLY_TO_CLIENT, SCHEDULE_TOPIC,
};
use crate::store::PutResult;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl Broker {
    /// Stores a producer's message sent from `peer` (RocketMQ's
    /// `SEND_MESSAGE`). A result whose status is not `SendOk` was stored
    /// but is not as durable as configured.
    pub async fn send(&self, command: SendMessage, peer: SocketAddr) -> Outcome<SendResult> {
        let SendMessage { producer_group, queue_id, message, born_timestamp_ms, born_host, default_topic_queues } = command;
        self.refuse_on_slave("a send")?;
        if bugs::active(Bug::HostEntropy) {
            // The planted defect: a pause drawn from the host, not the seed.
            tokio::time::sleep(Duration::from_millis(host_entropy() % 3)).await;
        }
        if bugs::active(Bug::ProgressStall) && self.recovery.end_offset > 0 {
            // The planted defect: once restarted over a non-empty store, the
            // broker never acknowledges a send again.
            return Err(Refusal::new(Refused::Busy, "broker busy"));
        }
        validate_name("topic", &message.topic).map_err(|e| Refusal::new(Refused::Illegal, e))?;
        if is_system_topic(&message.topic) {
            return Err(Refusal::new(
                Refused::NoPermission,
                format!("topic {} is a system topic (schedule, retry or dead letter): producers may not send to it", message.topic),
            ));
        }
        let config = self.topic_for_send(&message.topic, default_topic_queues)?;
        if !config.writable() {
            return Err(Refusal::new(Refused::NoPermission, format!("topic {} is not writable", config.name)));
        }
        if queue_id >= config.write_queues {
            return Err(Refusal::new(
                Refused::Illegal,
                format!("queue {queue_id} does not exist: topic {} has {} write queues", config.name, config.write_queues),
            ));
        }
        if message.properties.get(PROPERTY_MESSAGE_TYPE).is_some_and(|t| t == MESSAGE_TYPE_REPLY) {
            return self.push_reply(message, queue_id, born_timestamp_ms, born_host, peer).await;
        }
        let msg_id_hint = message.unique_id().map(str::to_string);
        let now = self.clock.now_ms();
        let timer = message.timer_deliver_at(now, self.config.timer_max_delay_ms).map_err(|e| Refusal::new(Refused::Illegal, e))?.filter(|&at| at > now);
        let transactional = message.is_transactional();
        if transactional {
            if message.delay_level > 0 || message.has_timer() {
                return Err(Refusal::new(Refused::Illegal, "a transactional message may not have a delay level or a timer"));
            }
            validate_name("producer group", &producer_group).map_err(|e| Refusal::new(Refused::Illegal, e))?;
        }
        let mut msg = self.arrived(message, queue_id, born_timestamp_ms, born_host, peer);
        if transactional {
            self.make_half(&mut msg, &producer_group);
        } else if let Some(at) = timer {
            self.make_timer(&mut msg, at);
        } else if msg.message.delay_level > 0 {
            // Held in the schedule topic until due (a level past the table
            // is the last, as in RocketMQ).
            let level = self.config.delay_levels.clamp(msg.message.delay_level);
            msg.message.delay_level = level;
            self.hold_back(&mut msg, level, now);
        }
        let turn = self.send_queue.turn().await?;
        let (put, status) = self.store_message(msg, now, Some(turn)).await?;
        if let Some(at) = timer {
            self.timer_added(at, put.queue_offset);
        }
        let offset_id = offset_msg_id(&self.config.broker_name, put.commit_log_offset);
        Ok(SendResult {
            status,
            msg_id: msg_id_hint.unwrap_or_else(|| offset_id.clone()),
            offset_msg_id: offset_id,
            broker_name: self.config.broker_name.clone(),
            queue_id,
            queue_offset: put.queue_offset,
        })
    }

    /// A reply to a request (RocketMQ's request-reply): not stored, but
    /// pushed at once to the requester its `REPLY_TO_CLIENT` names, over
    /// the connection that client heartbeats on here. Refused (NotFound)
    /// when the requester is not connected here or no longer waits.
    async fn push_reply(&self, message: Message, queue_id: u32, born_timestamp_ms: u64, born_host: String, peer: SocketAddr) -> Outcome<SendResult> {
        let Some(client_id) = message.properties.get(PROPERTY_REPLY_TO_CLIENT).cloned() else {
            return Err(Refusal::new(Refused::Illegal, "a reply names no requester (REPLY_TO_CLIENT)"));
        };
        if !message.properties.contains_key(PROPERTY_CORRELATION_ID) {
            return Err(Refusal::new(Refused::Illegal, "a reply carries no CORRELATION_ID"));
        }
        let addr = self.producers.lock().expect("producers").connection_of(&client_id);
        let Some(requester) = addr.and_then(|addr| self.live_peers([&addr]).pop()) else {
            return Err(Refusal::new(Refused::NotFound, format!("the requester {client_id} is not connected to {}", self.config.broker_name)));
        };
        let msg_id = message.unique_id().unwrap_or_default().to_string();
        let reply = MessageExt { store_timestamp_ms: self.clock.now_ms(), ..self.arrived(message, queue_id, born_timestamp_ms, born_host, peer) };
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        requester
            .push_reply(PushReplyMessage { message: reply }, timeout)
            .await
            .map_err(|e| Refusal::new(Refused::NotFound, format!("the requester {client_id} did not take the reply: {e}")))?;
        Ok(SendResult {
            status: SendStatus::SendOk,
            msg_id,
            offset_msg_id: String::new(),
            broker_name: self.config.broker_name.clone(),
            queue_id,
            queue_offset: 0,
        })
    }

    /// Stores a producer's batch in one queue (RocketMQ's
    /// `SEND_BATCH_MESSAGE`): checked whole before anything is written,
    /// appended under one store lock, one after another, and answered once
    /// the last is as durable as configured, with one result per message.
    pub async fn send_batch(&self, command: SendBatch, peer: SocketAddr) -> Outcome<Vec<SendResult>> {
        let SendBatch { producer_group: _, queue_id, messages, born_timestamp_ms, born_host, default_topic_queues } = command;
        self.refuse_on_slave("a batch send")?;
        let illegal = |why: String| Refusal::new(Refused::Illegal, why);
        let Some(first) = messages.first() else { return Err(illegal("a batch holds at least one message".into())) };
        let topic = first.topic.clone();
        validate_name("topic", &topic).map_err(illegal)?;
        if is_system_topic(&topic) {
            return Err(Refusal::new(Refused::NoPermission, format!("topic {topic} is a system topic: producers may not send to it")));
        }
        if let Some(other) = messages.iter().find(|m| m.topic != topic) {
            return Err(illegal(format!("a batch is of one topic: {topic} and {}", other.topic)));
        }
        if messages.iter().any(|m| m.delay_level > 0 || m.has_timer() || m.is_transactional()) {
            return Err(illegal("a batch holds plain messages only: no delay level, timer or transaction".into()));
        }
        let bytes: usize = messages.iter().map(|m| m.body.len()).sum();
        if bytes > BATCH_BODY_BYTES_MAX {
            return Err(illegal(format!("the batch's bodies are {bytes} bytes, more than the {BATCH_BODY_BYTES_MAX} allowed")));
        }
        let config = self.topic_for_send(&topic, default_topic_queues)?;
        if !config.writable() {
            return Err(Refusal::new(Refused::NoPermission, format!("topic {topic} is not writable")));
        }
        if queue_id >= config.write_queues {
            return Err(illegal(format!("queue {queue_id} does not exist: topic {topic} has {} write queues", config.write_queues)));
        }
        let now = self.clock.now_ms();
        let ids: Vec<Option<String>> = messages.iter().map(|m| m.unique_id().map(str::to_string)).collect();
        let msgs: Vec<MessageExt> = messages.into_iter().map(|message| self.arrived(message, queue_id, born_timestamp_ms, born_host.clone(), peer)).collect();
        let mut msgs = msgs;
        if msgs.len() > 1 && bugs::active(Bug::BatchDropsLast) {
            // The planted defect: the batch's last message is not stored,
            // and is answered as stored all the same.
            msgs.pop();
        }
        let turn = self.send_queue.turn().await?;
        let mut puts = self.store.lock().expect("store").put_all(msgs, now)?;
        drop(turn);
        let last = *puts.last().expect("at least one");
        puts.resize(ids.len(), last);
        self.put_count.fetch_add(puts.len() as u64, Ordering::Relaxed);
        self.written.send_replace(last.end_offset);
        let status = self.settle(&topic, queue_id, &last).await?;
        Ok(puts
            .iter()
            .zip(ids)
            .map(|(put, id)| {
                let offset_id = offset_msg_id(&self.config.broker_name, put.commit_log_offset);
                SendResult {
                    status,
                    msg_id: id.unwrap_or_else(|| offset_id.clone()),
                    offset_msg_id: offset_id,
                    broker_name: self.config.broker_name.clone(),
                    queue_id,
                    queue_offset: put.queue_offset,
                }
            })
            .collect())
    }

    /// A message as it arrived here from `peer`, for `queue_id`: the
    /// producer's born host, or the peer's address when it gave none.
    fn arrived(&self, message: Message, queue_id: u32, born_timestamp_ms: u64, born_host: String, peer: SocketAddr) -> MessageExt {
        MessageExt {
            message,
            broker_name: self.config.broker_name.clone(),
            queue_id,
            born_timestamp_ms,
            born_host: if born_host.is_empty() { peer.to_string() } else { born_host },
            store_host: self.config.advertise_addr.clone(),
            ..MessageExt::default()
        }
    }

    /// The topic's config, auto-creating it when allowed.
    fn topic_for_send(&self, topic: &str, default_queues: u32) -> Outcome<TopicConfig> {
        if let Some(config) = self.topics.lock().expect("topics").get(topic) {
            return Ok(config.clone());
        }
        if !self.config.auto_create_topic {
            return Err(Refusal::new(
                Refused::TopicNotExist,
                format!("topic {topic} does not exist and auto-creation is off on {}", self.config.broker_name),
            ));
        }
        let queues = default_queues.clamp(1, self.config.default_topic_queues.max(1));
        let config = TopicConfig::new(topic, queues);
        self.topics.lock().expect("topics").entry(topic.to_string()).or_insert(config);
        self.persist_topics()?;
        self.register_soon();
        Ok(self.topics.lock().expect("topics")[topic].clone())
    }

    /// Stores a message and waits as long as the flush mode says before it
    /// may be acknowledged: the put and the durability it reached, or why
    /// it was refused. A producer's send writes in its `turn` of the send
    /// queue, given back before the wait for durability; the broker's own
    /// writes take none.
    pub(super) async fn store_message(&self, msg: MessageExt, now: u64, turn: Option<super::send_queue::Turn<'_>>) -> Outcome<(PutResult, SendStatus)> {
        let (topic, queue_id) = (msg.message.topic.clone(), msg.queue_id);
        let put = self.append(msg, now)?;
        drop(turn);
        let status = self.settle(&topic, queue_id, &put).await?;
        Ok((put, status))
    }

    /// The first half of [`Broker::store_message`]: appends the message to
    /// the log now, without waiting (a caller that must keep the log in the
    /// order of its own state changes appends under its own lock).
    pub(super) fn append(&self, msg: MessageExt, now: u64) -> Outcome<PutResult> {
        let put = self.store.lock().expect("store").put(msg, now)?;
        self.put_count.fetch_add(1, Ordering::Relaxed);
        self.written.send_replace(put.end_offset);
        Ok(put)
    }

    /// The second half: waits until an appended message is as durable as
    /// the flush mode and the replication role say, and wakes the pulls
    /// held on its queue.
    pub(super) async fn settle(&self, topic: &str, queue_id: u32, put: &PutResult) -> Outcome<SendStatus> {
        let mut status = SendStatus::SendOk;
        if self.config.flush == FlushMode::Sync && !bugs::active(Bug::AckBeforeFsync) {
            let flushed = self.wait_flushed(put.end_offset).await;
            // Held pulls wake once the message is durable, hence visible.
            self.notify_arrival(topic, queue_id);
            match flushed {
                Ok(()) => {}
                Err(None) => {
                    marks::reach(Mark::FlushDiskTimeout);
                    status = SendStatus::FlushDiskTimeout;
                }
                Err(Some(e)) => return Err(Refusal::new(Refused::System, format!("fsync failed: {e}"))),
            }
        } else {
            // ASYNC_FLUSH, or the planted ack-before-fsync bug, under which
            // SYNC_FLUSH acknowledges now and the periodic flush makes the
            // message durable up to flush_interval_ms later.
            self.notify_arrival(topic, queue_id);
        }
        if status == SendStatus::SendOk && self.config.role == super::ReplicationRole::SyncMaster {
            status = self.wait_replicated(put.end_offset).await;
        }
        Ok(status)
    }

    /// Turns a message into its schedule topic entry: it waits in the
    /// queue of `level` until the level's delay has passed on this broker's
    /// clock, then goes to the topic and queue it names now.
    pub(super) fn hold_back(&self, msg: &mut MessageExt, level: u32, now_ms: u64) {
        let delayed = Delayed {
            topic: std::mem::replace(&mut msg.message.topic, SCHEDULE_TOPIC.to_string()),
            queue_id: std::mem::replace(&mut msg.queue_id, level - 1),
            level,
            deliver_at_ms: now_ms.saturating_add(self.config.delay_levels.delay_ms(level)),
        };
        msg.delayed = Some(delayed);
    }
}

/// A number from the host, not the simulation: the process id and where
/// the OS placed an allocation, mixed with a count of calls. Only the
/// planted bug `host-entropy` reads it.
fn host_entropy() -> u64 {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let probe = Box::new(0u8);
    let address = &*probe as *const u8 as u64;
    let mut z = address ^ (u64::from(std::process::id()) << 32) ^ CALLS.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^ (z >> 31)
}
