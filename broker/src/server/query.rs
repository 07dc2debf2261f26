//! Queries ([`crate::command::query`]): messages by business key, by
//! unique id, by commit log offset.

use super::Broker;
use crate::command::{Outcome, QueryMessageByKey, QueryMessageByUniqueId, Refusal, Refused, ViewMessage};
use crate::model::MessageExt;

/// Most results of a query by key (RocketMQ: 32).
const QUERY_RESULTS_MAX: u32 = 32;

impl Broker {
    /// Messages of a topic with a business key, stored in a time range.
    pub fn query_by_key(&self, command: QueryMessageByKey) -> Outcome<Vec<MessageExt>> {
        let QueryMessageByKey { topic, key, max, begin_ms, end_ms } = command;
        let max = max.clamp(1, QUERY_RESULTS_MAX) as usize;
        let found = self.store.lock().expect("store").with_index_rebuild(|s| s.query_by_key(&topic, &key, max, begin_ms, end_ms))?;
        if found.is_empty() {
            return Err(Refusal::new(Refused::NotFound, format!("no message of {topic} has key {key}")));
        }
        Ok(self.stamp(found))
    }

    /// Every stored copy of a unique id.
    pub fn query_by_unique_id(&self, command: QueryMessageByUniqueId) -> Outcome<Vec<MessageExt>> {
        let id = command.id;
        let found = self.store.lock().expect("store").with_index_rebuild(|s| s.query_by_unique_id(&id))?;
        if found.is_empty() {
            return Err(Refusal::new(Refused::NotFound, format!("no message has id {id}")));
        }
        Ok(self.stamp(found))
    }

    /// The message at a commit log offset.
    pub fn view_message(&self, command: ViewMessage) -> Outcome<Vec<MessageExt>> {
        let offset = command.commit_log_offset;
        match self.store.lock().expect("store").read_at(offset) {
            Ok(msg) => Ok(self.stamp(vec![msg])),
            Err(e) => Err(Refusal::new(Refused::NotFound, format!("no message at offset {offset}: {e}"))),
        }
    }
}
