//! Messages, ids and configuration records shared by the store, the server,
//! the protocol and the client.

mod delay;
mod filter;
pub mod sql;
mod message;
mod topic;
mod transaction;

pub use delay::{
    dlq_topic, is_broker_own_topic, is_system_topic, retry_level, retry_topic, validate_group, DelayLevels, DELAY_LEVELS_DEFAULT, DLQ_PREFIX,
    MAX_RECONSUME_TIMES_DEFAULT, POP_TOPIC, RETRY_PREFIX, SCHEDULE_TOPIC,
};
pub use filter::{ExpressionType, Filter, Selector, TagFilter};
pub use sql::SqlFilter;
pub use message::{
    fnv1a, offset_msg_id, parse_offset_msg_id, tag_hash, Delayed, Message, MessageExt, Origin, UniqueIdGenerator,
    BORN_HOST_BYTES_MAX, MESSAGE_TYPE_REPLY, MESSAGE_TYPE_REQUEST, PROPERTIES_BYTES_MAX, PROPERTY_CORRELATION_ID, PROPERTY_MESSAGE_TTL,
    PROPERTY_MESSAGE_TYPE, PROPERTY_REPLY_TO_CLIENT, PROPERTY_UNIQ_KEY,
};
pub use transaction::{
    TransactionState, CHECK_MAX_TOPIC, HALF_TOPIC, OP_TOPIC, PROPERTY_HALF_OFFSET, PROPERTY_PRODUCER_GROUP, PROPERTY_TIMER_DELAY_MS,
    PROPERTY_TIMER_DELAY_SEC, PROPERTY_TIMER_DELIVER_MS, PROPERTY_TRANSACTION, TIMER_MAX_DELAY_MS_DEFAULT, TIMER_TOPIC,
};
pub use topic::{validate_name, SubscriptionGroup, TopicConfig, PERM_READ, PERM_WRITE, TOPIC_QUEUES_MAX};
