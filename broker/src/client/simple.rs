//! The simple consumer (RocketMQ 5's `SimpleConsumer`): the application
//! asks for messages when it wants them, acknowledges each by its receipt
//! handle, and may keep one invisible longer. The brokers decide which
//! messages each receive gets (POP); nothing is rebalanced and no offset is
//! committed by the client.

use super::instance::ClientInstance;
use crate::command::{AckMessage, ChangeInvisibleTime, ConsumeFrom, ConsumerData, Heartbeat, PopMessage, Popped, ReceiptHandle, Refused, POP_BATCH_MAX};
use crate::error::{Error, Result};
use crate::model::{is_system_topic, validate_group, validate_name, Filter, Selector, MAX_RECONSUME_TIMES_DEFAULT, PERM_READ};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Simple consumer settings, after RocketMQ 5's `SimpleConsumerBuilder`.
#[derive(Clone, Debug)]
pub struct SimpleConsumerConfig {
    /// Consumer group.
    pub group: String,
    /// Subscribed topic.
    pub topic: String,
    /// Tag expression or SQL92 condition.
    pub selector: Selector,
    /// How long a receive waits at a broker when nothing is visible.
    pub await_ms: u64,
    /// Receives after which an unacknowledged message goes to the group's
    /// dead-letter queue (RocketMQ: the group's retry max times + 1).
    pub max_attempts: u32,
    /// FIFO: one message group's messages are received in order, a batch at
    /// a time (the next once the previous is acknowledged or expired).
    pub fifo: bool,
    /// Where a group new to a queue starts.
    pub consume_from: ConsumeFrom,
}

impl SimpleConsumerConfig {
    /// Settings for `group` on `topic` with every tag.
    pub fn new(group: impl Into<String>, topic: impl Into<String>) -> SimpleConsumerConfig {
        SimpleConsumerConfig {
            group: group.into(),
            topic: topic.into(),
            selector: Selector::tag("*"),
            await_ms: 20_000,
            max_attempts: MAX_RECONSUME_TIMES_DEFAULT + 1,
            fifo: false,
            consume_from: ConsumeFrom::LastOffset,
        }
    }
}

/// A simple consumer.
pub struct SimpleConsumer {
    client: Arc<ClientInstance>,
    config: SimpleConsumerConfig,
    /// Which broker the next receive asks first.
    turn: AtomicUsize,
    /// Tells the heartbeat loop to stop.
    stopped: Arc<AtomicBool>,
}

impl Drop for SimpleConsumer {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

impl SimpleConsumer {
    /// Validates the settings.
    pub fn new(client: Arc<ClientInstance>, config: SimpleConsumerConfig) -> Result<SimpleConsumer> {
        let illegal = |m: String| Error::refused(Refused::SubscriptionIllegal, m);
        validate_group(&config.group).map_err(illegal)?;
        validate_name("topic", &config.topic).map_err(illegal)?;
        if is_system_topic(&config.topic) {
            return Err(illegal(format!("{} is a system topic", config.topic)));
        }
        Filter::parse(config.selector.kind, &config.selector.expression).map_err(illegal)?;
        if config.max_attempts == 0 {
            return Err(illegal("max attempts must be at least 1".into()));
        }
        let stopped = Arc::new(AtomicBool::new(false));
        tokio::spawn(heartbeats(client.clone(), config.clone(), stopped.clone()));
        Ok(SimpleConsumer { client, config, turn: AtomicUsize::new(0), stopped })
    }

    /// The settings.
    pub fn config(&self) -> &SimpleConsumerConfig {
        &self.config
    }

    /// Receives up to `max` messages (1 to 32), each invisible to the group
    /// for `invisible` unless acknowledged: asks the masters in turn, one
    /// per call, which holds the call up to `await_ms` when it has nothing.
    /// Empty when that broker had nothing in time.
    pub async fn receive(&self, max: u32, invisible: Duration) -> Result<Vec<Popped>> {
        if !(1..=POP_BATCH_MAX).contains(&max) {
            return Err(Error::refused(Refused::Illegal, format!("a receive takes 1 to {POP_BATCH_MAX} messages, not {max}")));
        }
        let route = self.client.route(&self.config.topic, false).await?;
        let mut masters: Vec<(String, String)> = route
            .queues
            .iter()
            .filter(|q| q.perm & PERM_READ != 0 && q.read_queues > 0)
            .filter_map(|q| q.master().map(|m| (q.broker_name.clone(), m.addr.clone())))
            .collect();
        masters.sort();
        if masters.is_empty() {
            self.client.route_stale(&self.config.topic);
            return Err(Error::NoRoute(self.config.topic.clone()));
        }
        let (broker_name, addr) = &masters[self.turn.fetch_add(1, Ordering::Relaxed) % masters.len()];
        let pop = PopMessage {
            group: self.config.group.clone(),
            topic: self.config.topic.clone(),
            max_msgs: max,
            invisible_ms: u64::try_from(invisible.as_millis()).unwrap_or(u64::MAX),
            poll_ms: self.config.await_ms,
            expression: self.config.selector.expression.clone(),
            expression_type: self.config.selector.kind,
            fifo: self.config.fifo,
            max_attempts: self.config.max_attempts,
            consume_from: self.config.consume_from,
        };
        let timeout = self.client.timeout() + Duration::from_millis(self.config.await_ms);
        match self.client.call(addr, pop, timeout).await {
            Ok(result) => Ok(result.messages),
            Err(e) => {
                self.forget_route_on(&e);
                tracing::debug!(broker = %broker_name, error = %e, "a receive failed");
                Err(e)
            }
        }
    }

    /// Acknowledges a received message: it is done. Refused
    /// ([`Refused::HandleExpired`]) when it was received again since.
    pub async fn ack(&self, handle: &ReceiptHandle) -> Result<()> {
        let addr = self.master_of(&handle.broker_name).await?;
        let ack = AckMessage { group: self.config.group.clone(), handle: handle.clone() };
        self.client.call(&addr, ack, self.client.timeout()).await.inspect_err(|e| self.forget_route_on(e))
    }

    /// Keeps a received message invisible for `invisible` from now; answers
    /// its new handle (the old one still acknowledges it).
    pub async fn change_invisible_duration(&self, handle: &ReceiptHandle, invisible: Duration) -> Result<ReceiptHandle> {
        let addr = self.master_of(&handle.broker_name).await?;
        let change = ChangeInvisibleTime {
            group: self.config.group.clone(),
            handle: handle.clone(),
            invisible_ms: u64::try_from(invisible.as_millis()).unwrap_or(u64::MAX),
        };
        self.client.call(&addr, change, self.client.timeout()).await.inspect_err(|e| self.forget_route_on(e))
    }

    async fn master_of(&self, broker_name: &str) -> Result<String> {
        if let Some(addr) = self.client.master_addr(broker_name) {
            return Ok(addr);
        }
        self.client.route(&self.config.topic, true).await?;
        self.client
            .master_addr(broker_name)
            .ok_or_else(|| Error::Connection { addr: broker_name.to_string(), reason: "the broker group has no master now".into() })
    }

    /// A broker that did not answer, or is no longer master: the route is
    /// asked for again next time.
    fn forget_route_on(&self, e: &Error) {
        let suspect = match e {
            Error::Refused(r) => r.kind == Refused::NotMaster,
            Error::Connection { .. } | Error::Timeout(_) => true,
            _ => false,
        };
        if suspect {
            self.client.route_stale(&self.config.topic);
        }
    }
}

/// Every heartbeat period, until the consumer is dropped: the topic's
/// route is asked for again (a name server that restarted may have given a
/// route without a broker that had not registered with it again yet, and
/// receives would pass that broker by until the next refresh), and every
/// broker of the route is told the group has this member, as RocketMQ's
/// simple consumer does (so `consumerConnection` lists it).
async fn heartbeats(client: Arc<ClientInstance>, config: SimpleConsumerConfig, stopped: Arc<AtomicBool>) {
    let data = ConsumerData {
        group: config.group.clone(),
        subscriptions: vec![(config.topic.clone(), config.selector.expression.clone())],
        consume_from: config.consume_from,
        broadcast: false,
    };
    let heartbeat = Heartbeat { client_id: client.config().client_id.clone(), consumers: vec![data] };
    while !stopped.load(Ordering::Relaxed) {
        if let Ok(route) = client.route(&config.topic, true).await {
            let mut addrs: Vec<String> = route.queues.iter().flat_map(|q| q.replicas.iter().map(|r| r.addr.clone())).collect();
            addrs.sort();
            addrs.dedup();
            for addr in addrs {
                if let Err(e) = client.call(&addr, heartbeat.clone(), client.timeout()).await {
                    tracing::debug!(broker = %addr, error = %e, "a simple consumer's heartbeat failed");
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(client.config().heartbeat_ms.max(100))).await;
    }
}
