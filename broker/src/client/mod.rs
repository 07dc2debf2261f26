//! Clients: [`Producer`], [`PushConsumer`], [`SimpleConsumer`] and [`Admin`], sharing a
//! [`ClientInstance`] that holds routes and connections.
//!
//! # Layout
//! - [`instance`]: configuration, name server queries, route cache, requests.
//! - [`producer`]: queue selection, retries on another broker, timeouts.
//! - [`consumer`]: push consumer: rebalance, long-polling pulls, listener,
//!   in-flight tracking and offset commits.
//! - [`rebalance`]: pure queue allocation strategies.
//! - [`simple`]: the simple consumer (POP): receive, ack, change invisible
//!   time.
//! - [`transaction`]: the transactional producer.
//! - [`check_back`]: the application's transaction listener, and the
//!   answers to the broker's check-backs over the client's connections.
//! - [`inbound`]: what brokers ask of a client: check-backs, and notices
//!   that a consumer group's members changed.
//! - [`admin`]: topic, query and cluster operations for `mqadmin`.

pub mod admin;
pub mod check_back;
pub mod consumer;
pub mod inbound;
pub mod instance;
pub mod producer;
pub mod rebalance;
pub mod simple;
pub mod transaction;

pub use admin::Admin;
pub use consumer::{
    AsyncListener, ConsumeContext, ConsumeResult, LocalOffsets, MessageListener, PushConsumer, PushConsumerConfig, QueueChange, QueueHook,
};
pub use instance::{ClientConfig, ClientInstance, MessageQueue};
pub use producer::{Producer, ProducerConfig};
pub use simple::{SimpleConsumer, SimpleConsumerConfig};
pub use transaction::{TransactionListener, TransactionProducer, TransactionSendResult};
