//! Administration ([`crate::command::admin`]): topics, their queues'
//! ranges, a group's progress, and the broker's figures.

use super::Broker;
use crate::command::{
    ConsumeProgress, CreateTopic, DeleteSubscriptionGroup, DeleteTopic, GetConsumeStats, GetTopicStats, Outcome, QueueStats, Refusal, Refused, RuntimeInfo,
    UpdateSubscriptionGroup,
};
use crate::model::{is_broker_own_topic, validate_name, TopicConfig, HALF_TOPIC, PERM_READ, PERM_WRITE, SCHEDULE_TOPIC, TOPIC_QUEUES_MAX};
use std::sync::atomic::Ordering;

/// Most `retryMaxTimes` a subscription group may set.
const RETRY_MAX_TIMES_MAX: u32 = 1_000;

impl Broker {
    /// Creates or updates a topic and registers it with the name servers.
    pub async fn create_topic(&self, command: CreateTopic) -> Outcome<()> {
        let config = command.config;
        validate_name("topic", &config.name).map_err(|e| Refusal::new(Refused::Illegal, e))?;
        if !(1..=TOPIC_QUEUES_MAX).contains(&config.write_queues) || !(1..=TOPIC_QUEUES_MAX).contains(&config.read_queues) {
            return Err(Refusal::new(Refused::Illegal, format!("queue counts must be in 1..={TOPIC_QUEUES_MAX}")));
        }
        if config.perm & !(PERM_READ | PERM_WRITE) != 0 {
            return Err(Refusal::new(
                Refused::Illegal,
                format!("perm {} is not a combination of {PERM_READ} (read) and {PERM_WRITE} (write)", config.perm),
            ));
        }
        self.topics.lock().expect("topics").insert(config.name.clone(), config);
        self.persist_topics()?;
        let _ = self.register_all().await;
        Ok(())
    }

    /// Deletes a topic (see [`DeleteTopic`]) and tells the name servers.
    /// A topic the broker runs on (schedule, transactions, timers) is
    /// refused; a group's retry or dead-letter topic may go.
    pub async fn delete_topic(&self, command: DeleteTopic) -> Outcome<()> {
        let DeleteTopic { topic } = command;
        self.refuse_on_slave("a topic deletion")?;
        if is_broker_own_topic(&topic) {
            return Err(Refusal::new(Refused::NoPermission, format!("{topic} is the broker's own topic and cannot be deleted")));
        }
        if self.topics.lock().expect("topics").remove(&topic).is_none() {
            return Err(Refusal::new(Refused::TopicNotExist, format!("topic {topic} does not exist on {}", self.config.broker_name)));
        }
        self.persist_topics()?;
        tracing::info!(topic, "topic deleted");
        let _ = self.register_all().await;
        Ok(())
    }

    /// Every topic.
    pub fn topic_list(&self) -> Outcome<Vec<TopicConfig>> {
        Ok(self.topics.lock().expect("topics").values().cloned().collect())
    }

    /// The readable range of each queue of a topic.
    pub fn topic_stats(&self, command: GetTopicStats) -> Outcome<Vec<QueueStats>> {
        let topic = command.topic;
        let config = self.topic_here(&topic)?;
        let store = self.store.lock().expect("store");
        Ok((0..config.read_queues.max(config.write_queues))
            .map(|queue_id| {
                let (min_offset, max_offset) = store.queue_offsets(&topic, queue_id);
                QueueStats { queue_id, min_offset, max_offset }
            })
            .collect())
    }

    /// A group's committed offset and the end of each queue of a topic.
    pub fn consume_stats(&self, command: GetConsumeStats) -> Outcome<Vec<ConsumeProgress>> {
        let GetConsumeStats { group, topic } = command;
        let config = self.topic_here(&topic)?;
        let store = self.store.lock().expect("store");
        let offsets = self.offsets.lock().expect("offsets");
        Ok((0..config.read_queues)
            .map(|queue_id| ConsumeProgress {
                queue_id,
                max_offset: store.queue_offsets(&topic, queue_id).1,
                consumer_offset: offsets.get(&group, &topic, queue_id),
            })
            .collect())
    }

    fn topic_here(&self, topic: &str) -> Outcome<TopicConfig> {
        self.topics
            .lock()
            .expect("topics")
            .get(topic)
            .cloned()
            .ok_or_else(|| Refusal::new(Refused::TopicNotExist, format!("topic {topic} does not exist on this broker")))
    }

    /// The store's and the services' figures.
    pub fn runtime_info(&self) -> Outcome<RuntimeInfo> {
        let store = self.store.lock().expect("store");
        let delayed_pending = {
            let schedule = self.schedule.lock().expect("schedule");
            store
                .queues()
                .into_iter()
                .filter(|(topic, _)| topic == SCHEDULE_TOPIC)
                .map(|(_, queue_id)| store.queue_offsets(SCHEDULE_TOPIC, queue_id).1.saturating_sub(schedule.next(queue_id + 1)))
                .sum()
        };
        // Each lock is let go before the next is taken.
        let (halves_pending, halves_orphaned, halves_moved_aside) = {
            let t = self.transactions.lock().expect("transactions");
            let open = t.open(store.queue_offsets(HALF_TOPIC, 0).1);
            (open.saturating_sub(t.orphaned()), t.orphaned(), t.moved_aside())
        };
        Ok(RuntimeInfo {
            broker_name: self.config.broker_name.clone(),
            write_offset: store.write_offset(),
            flushed_offset: store.flushed_offset(),
            put_count: self.put_count.load(Ordering::Relaxed),
            get_count: self.get_count.load(Ordering::Relaxed),
            flush_mode: self.config.flush.rocketmq_name().to_string(),
            delayed_pending,
            halves_pending,
            halves_orphaned,
            timers_pending: self.timers.lock().expect("timers").len() as u64,
            halves_moved_aside,
            flush_count: self.flush_count.load(Ordering::Relaxed),
            send_busy: self.send_queue.refused(),
            send_queue_waiting: self.send_queue.waiting() as u64,
        })
    }

    /// Creates or updates a subscription group (RocketMQ's
    /// `UPDATE_AND_CREATE_SUBSCRIPTIONGROUP`), persisted at once.
    pub fn update_subscription_group(&self, command: UpdateSubscriptionGroup) -> Outcome<()> {
        self.refuse_on_slave("a subscription group change")?;
        let config = command.config;
        crate::model::validate_group(&config.group_name).map_err(|e| Refusal::new(Refused::Illegal, e))?;
        if config.retry_max_times > RETRY_MAX_TIMES_MAX {
            return Err(Refusal::new(
                Refused::Illegal,
                format!("retryMaxTimes {} is more than the {} allowed", config.retry_max_times, RETRY_MAX_TIMES_MAX),
            ));
        }
        self.subscription_groups.lock().expect("subscription groups").insert(config.group_name.clone(), config);
        self.persist_subscription_groups()?;
        Ok(())
    }

    /// Deletes a subscription group: the group takes the defaults again.
    pub fn delete_subscription_group(&self, command: DeleteSubscriptionGroup) -> Outcome<()> {
        self.refuse_on_slave("a subscription group change")?;
        if self.subscription_groups.lock().expect("subscription groups").remove(&command.group).is_none() {
            return Err(Refusal::new(Refused::NotFound, format!("no subscription group {} on {}", command.group, self.config.broker_name)));
        }
        self.persist_subscription_groups()?;
        Ok(())
    }

    /// Every subscription group kept here.
    pub fn subscription_groups(&self) -> Outcome<Vec<crate::model::SubscriptionGroup>> {
        Ok(self.subscription_groups.lock().expect("subscription groups").values().cloned().collect())
    }

    /// Refused when an operator disabled the group's consumption.
    pub(super) fn refuse_disabled_group(&self, group: &str) -> Outcome<()> {
        if self.subscription_group(group).is_some_and(|g| !g.consume_enable) {
            return Err(Refusal::new(Refused::NoPermission, format!("consumption of group {group} is disabled on {}", self.config.broker_name)));
        }
        Ok(())
    }
}
