//! The transactional producer: a half message, a local transaction, its
//! end. Check-backs, which may reach any live producer of the group, not
//! only the one that sent the half, are answered in [`super::check_back`].

pub use super::check_back::TransactionListener;
use super::instance::ClientInstance;
use super::producer::{Producer, ProducerConfig};
use crate::error::{Error, Result};
use crate::model::{parse_offset_msg_id, Message, TransactionState, PROPERTY_PRODUCER_GROUP, PROPERTY_TRANSACTION};
use crate::command::{EndTransaction, SendResult};
use std::sync::Arc;

/// The outcome of [`TransactionProducer::send_in_transaction`].
#[derive(Clone, Debug)]
pub struct TransactionSendResult {
    /// Where the half was stored.
    pub half: SendResult,
    /// What the local transaction answered (rollback, without running it,
    /// when the half was stored but not durable as configured).
    pub state: TransactionState,
    /// Whether the end reached the broker; when it did not (or the state
    /// was unknown), the broker checks back.
    pub end: std::result::Result<(), String>,
}

/// Sends transactional messages (RocketMQ's `TransactionMQProducer`).
pub struct TransactionProducer {
    producer: Producer,
    client: Arc<ClientInstance>,
    listener: Arc<dyn TransactionListener>,
    /// Set once shut down (the group is left once).
    shut: std::sync::atomic::AtomicBool,
}

impl TransactionProducer {
    /// Starts a transactional producer: check-backs of its group reach
    /// `listener`, and it heartbeats every broker so they know where to
    /// send them.
    pub fn start(client: Arc<ClientInstance>, config: ProducerConfig, listener: Arc<dyn TransactionListener>) -> Result<TransactionProducer> {
        let producer = Producer::new(client.clone(), config)?;
        let group = producer.group().to_string();
        client.check_listeners().register(&group, listener.clone(), client.timeout());
        Ok(TransactionProducer { producer, client, listener, shut: std::sync::atomic::AtomicBool::new(false) })
    }

    /// Sends `msg` as a half, runs the local transaction once the half is
    /// stored, and ends it with the answer. A failed send is an error and
    /// runs nothing.
    pub async fn send_in_transaction(&self, msg: Message) -> Result<TransactionSendResult> {
        let msg = msg
            .with_property(PROPERTY_TRANSACTION, "true")
            .with_property(PROPERTY_PRODUCER_GROUP, self.producer.group());
        let msg = self.producer.prepare(msg)?;
        let half = self.producer.send(msg.clone()).await?;
        let state = if half.is_ok() { self.listener.execute(&msg, &half).await } else { TransactionState::Rollback };
        let end = match state {
            TransactionState::Unknown => Ok(()),
            state => self.end(&half, state).await.map_err(|e| e.to_string()),
        };
        Ok(TransactionSendResult { half, state, end })
    }

    async fn end(&self, half: &SendResult, state: TransactionState) -> Result<()> {
        let Some((_, commit_log_offset)) = parse_offset_msg_id(&half.offset_msg_id) else {
            return Err(Error::Protocol(format!("the broker gave the half a malformed offset id {}", half.offset_msg_id)));
        };
        let addr = self.client.master_addr(&half.broker_name).ok_or_else(|| Error::NoRoute(half.broker_name.clone()))?;
        let end = EndTransaction {
            producer_group: self.producer.group().to_string(),
            commit_log_offset,
            msg_id: half.msg_id.clone(),
            state,
            from_check: false,
        };
        self.client.call(&addr, end, self.client.timeout()).await
    }

    /// The plain producer underneath (same group).
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// Stops heartbeating and answering check-backs.
    pub fn shutdown(&self) {
        if !self.shut.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.producer.shutdown();
            self.client.check_listeners().unregister(self.producer.group());
        }
    }
}

impl Drop for TransactionProducer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
