//! Send-back ([`crate::command::send_back`]): a consumer's failed message
//! is copied to its group's retry topic, held back, or to its dead letters.

use super::Broker;
use crate::bugs::{self, Bug};
use crate::command::{ConsumerSendMsgBack, Outcome, Refusal, Refused, SendStatus};
use crate::marks::{self, Mark};
use crate::model::{dlq_topic, retry_level, retry_topic, validate_group, Message, MessageExt, Origin, TopicConfig};

impl Broker {
    /// A consumer's failed message comes back (RocketMQ's
    /// `consumerSendMsgBack`). The broker reads it from its commit log and
    /// stores a copy with reconsume times + 1, its origin (the first
    /// message's id and topic), and everything the producer sent: in the
    /// group's retry topic, held back at the retry's delay level; or, once
    /// it has been consumed again `max_reconsume_times` times, in the
    /// group's dead-letter topic at once, never through the delay levels
    /// (Apache RocketMQ #2724 made dead letters wait for their level first).
    pub async fn send_back(&self, command: ConsumerSendMsgBack) -> Outcome<()> {
        let ConsumerSendMsgBack { group, commit_log_offset, delay_level, max_reconsume_times } = command;
        // The broker's word on retries wins over the consumer's.
        let max_reconsume_times = self.subscription_group(&group).map_or(max_reconsume_times, |g| g.retry_max_times);
        self.refuse_on_slave("a send-back")?;
        validate_group(&group).map_err(|e| Refusal::new(Refused::SubscriptionIllegal, e))?;
        let original = self
            .store
            .lock()
            .expect("store")
            .read_at(commit_log_offset)
            .map_err(|e| Refusal::new(Refused::NotFound, format!("no message at offset {commit_log_offset}: {e}")))?;
        let origin = original.origin.clone().unwrap_or_else(|| Origin { msg_id: original.msg_id(), topic: original.message.topic.clone() });
        let reconsumed = original.reconsume_times;
        let dead = reconsumed >= max_reconsume_times || delay_level < 0;
        if dead && bugs::active(Bug::DlqSkipped) {
            // The planted defect: past the max, the message is dropped.
            return Ok(());
        }
        let topic = if dead { dlq_topic(&group) } else { retry_topic(&group) };
        self.system_topic(&topic)?;
        let now = self.clock.now_ms();
        let mut copy = MessageExt {
            message: Message { topic, delay_level: 0, ..original.message },
            broker_name: self.config.broker_name.clone(),
            queue_id: 0,
            born_timestamp_ms: original.born_timestamp_ms,
            born_host: original.born_host,
            store_host: self.config.advertise_addr.clone(),
            reconsume_times: reconsumed.saturating_add(1),
            origin: Some(origin),
            ..MessageExt::default()
        };
        if bugs::active(Bug::RetryKeepsReconsume) && !dead {
            // The planted defect: the retry copy keeps the original's count.
            copy.reconsume_times = reconsumed;
        }
        if bugs::active(Bug::RetryDropsKey) && !dead {
            // The planted defect: the retry copy loses its business key.
            copy.message.keys.clear();
        }
        if dead && bugs::active(Bug::DlqWaitsLevel) {
            // The planted defect: the dead letter waits a retry's level.
            let level = self.config.delay_levels.clamp(retry_level(reconsumed));
            copy.message.delay_level = level;
            self.hold_back(&mut copy, level, now);
        }
        if dead {
            marks::reach(Mark::DeadLettered);
        } else if !bugs::active(Bug::RetryNoBackoff) {
            let asked = u32::try_from(delay_level).unwrap_or(0);
            let level = self.config.delay_levels.clamp(if asked == 0 { retry_level(reconsumed) } else { asked });
            copy.message.delay_level = level;
            self.hold_back(&mut copy, level, now);
        }
        marks::reach(Mark::SentBack);
        match self.store_message(copy, now, None).await? {
            (_, SendStatus::SendOk) => Ok(()),
            // Not durable as configured: the consumer keeps the message
            // and tries again, so nothing is lost if this copy is.
            (_, status) => Err(Refusal::new(Refused::NotDurable, format!("the copy was stored but is not durable: {status:?}"))),
        }
    }

    /// A retry or dead-letter topic: one queue, read and write, made on
    /// first use and registered with the name servers soon.
    pub(super) fn system_topic(&self, topic: &str) -> Outcome<()> {
        if self.topics.lock().expect("topics").contains_key(topic) {
            return Ok(());
        }
        self.topics.lock().expect("topics").entry(topic.to_string()).or_insert_with(|| TopicConfig::new(topic, 1));
        self.persist_topics()?;
        self.register_soon();
        Ok(())
    }
}
