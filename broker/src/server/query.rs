//! Queries ([`crate::command::query`]): messages by business key, by
//! unique id, by commit log offset.

use super::Broker;
use crate::command::{
    GetProducerConnections, Outcome, ProducerConnection, QueryMessageByKey, QueryMessageByQueueOffset, QueryMessageByUniqueId, Refusal, Refused, ViewMessage,
};
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

    /// Messages of one queue from an offset on, as far as a pull could
    /// read them now.
    pub fn query_by_queue_offset(&self, command: QueryMessageByQueueOffset) -> Outcome<Vec<MessageExt>> {
        let QueryMessageByQueueOffset { topic, queue_id, offset, max } = command;
        let got = {
            let mut store = self.store.lock().expect("store");
            let visible_end = self.visible_end(&store);
            store.get_or_rebuild(&topic, queue_id, offset, max.clamp(1, 32) as usize, visible_end, &|_| true)?
        };
        if got.messages.is_empty() {
            return Err(Refusal::new(
                Refused::NotFound,
                format!("no message of {topic} queue {queue_id} at offset {offset} (its readable offsets are {}..{})", got.min_offset, got.max_offset),
            ));
        }
        Ok(self.stamp(got.messages))
    }

    /// A producer group's live producers (RocketMQ's `producerConnection`).
    pub fn producer_connections(&self, command: GetProducerConnections) -> Outcome<Vec<ProducerConnection>> {
        Ok(self.producers.lock().expect("producers").connections(&command.group))
    }
}
