//! What the simulated clients do: producers sending keyed, sharded,
//! sequenced messages; consumers whose business logic fails at a set rate
//! and applies an idempotent effect by business key; the final drain.
//! They speak the client library only, so they drive a simulated or a real
//! cluster alike.
//!
//! - `producer`: producers and transactional producers.
//! - `consumer`: consumers and their business logic.
//! - `simple`: simple consumers (POP): receive, business logic, ack.
//! - `drain`: the final drain, and the operator's dead-letter resend.

mod consumer;
mod drain;
mod producer;
mod simple;

pub use consumer::*;
pub use drain::*;
pub use producer::*;
pub use simple::*;

use crate::database::{Applied, ApplyRequest, DbClient, Effect};
use crate::recorder::{harness_marks, Recorder};
use crate::draw::{draw, draw_unit};
use crate::run::WORKLOAD_START_MS;
use broker::client::{
    Admin, AsyncListener, ClientConfig, ClientInstance, ConsumeContext, ConsumeResult, LocalOffsets, MessageQueue, Producer, ProducerConfig, PushConsumer,
    PushConsumerConfig, QueueChange, QueueHook, TransactionListener, TransactionProducer,
};
use broker::clock::Clock;
use broker::model::{
    dlq_topic, retry_topic, Filter, Message, MessageExt, Selector, TagFilter, TransactionState, CHECK_MAX_TOPIC, PROPERTY_CORRELATION_ID, PROPERTY_HALF_OFFSET,
    PROPERTY_MESSAGE_TTL, PROPERTY_MESSAGE_TYPE, PROPERTY_PRODUCER_GROUP, PROPERTY_REPLY_TO_CLIENT, PROPERTY_TRANSACTION, PROPERTY_UNIQ_KEY,
};
use broker::command::ConsumeFrom;
use broker::command::SendResult;
use broker::store::GetStatus;
use checker::history::{ConsumeOutcome, Event, Kind, Op, TxState};
use checker::{DEDUPE_UNAVAILABLE, LOCAL_RETRY};
use futures::future::BoxFuture;
use scenarios::{ConsumerSpec, CrashStep, ProducerSpec, Scenario, TransactionSpec};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Message property carrying the sharding key.
pub const PROPERTY_SHARD: &str = "SHARD";
/// Message property carrying the per-shard sequence number.
pub const PROPERTY_SEQ: &str = "SEQ";
/// Message property carrying a business amount, so integrity is checked on
/// properties the broker has no reason to touch.
pub const PROPERTY_AMOUNT: &str = "AMOUNT";
/// Message property carrying a business region.
pub const PROPERTY_REGION: &str = "REGION";
/// Message property of a gray release: `gray` on the share a producer's
/// `gray_share` draws, absent on the rest.
pub const PROPERTY_ENV: &str = "ENV";
/// Pause before a business resend of a failed or unknown send.
pub(crate) const RESEND_BACKOFF: Duration = Duration::from_secs(1);
/// Operations one non-FIFO producer keeps in flight at most.
pub(crate) const IN_FLIGHT_MAX: usize = 64;
/// Sends one producer of a batched (over 1,000 a second) load may have in
/// flight: RocketMQ's bound on a client's asynchronous sends.
pub(crate) const ASYNC_IN_FLIGHT_MAX: usize = 65_535;
/// Regions a message's `REGION` property is drawn from.
pub(crate) const REGIONS: [&str; 4] = ["eu-west", "us-east", "ap-south", "cn-north"];

/// What a group selects on its topic: its SQL92 condition, else its tag
/// expression.
pub(crate) fn group_selector(spec: &ConsumerSpec) -> Selector {
    match &spec.sql {
        Some(sql) => Selector::sql(sql.clone()),
        None => Selector::tag(spec.tags.clone()),
    }
}

/// FNV-1a 64 of a body, as 16 hex digits: what the history carries so the
/// checker can compare a delivered body with the sent one.
pub fn body_digest(body: &[u8]) -> String {
    format!("{:016x}", broker::model::fnv1a(body))
}

/// A body of `len` bytes that differs per message: the message id repeated.
pub(crate) fn body_of(msg_id: &str, len: usize) -> Vec<u8> {
    msg_id.bytes().chain(std::iter::once(b'|')).cycle().take(len).collect()
}

/// The properties the history records: every one but the unique id, which
/// the history carries as `msg_id`, and the ones the transactional producer
/// and the broker add to a transactional message.
pub(crate) fn user_props(message: &Message) -> BTreeMap<String, String> {
    const SYSTEM: [&str; 8] = [
        PROPERTY_UNIQ_KEY,
        PROPERTY_TRANSACTION,
        PROPERTY_PRODUCER_GROUP,
        PROPERTY_HALF_OFFSET,
        // A request's, which `Producer::request` sets.
        PROPERTY_CORRELATION_ID,
        PROPERTY_REPLY_TO_CLIENT,
        PROPERTY_MESSAGE_TYPE,
        PROPERTY_MESSAGE_TTL,
    ];
    message.properties.iter().filter(|(name, _)| !SYSTEM.contains(&name.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}
