//! Operations for `mqadmin`: topics, queries, cluster status.

use super::instance::ClientInstance;
use crate::command::{Refusal, Refused};
use crate::error::{Error, Result};
use super::producer::{Producer, ProducerConfig};
use crate::model::{dlq_topic, parse_offset_msg_id, validate_group, validate_name, Message, MessageExt, TopicConfig};
use crate::command::{GetProducerConnections, ProducerConnection, QueryMessageByQueueOffset, SearchOffsetByTime};
use crate::command::{BrokerInfo, ConsumeProgress, CreateTopic, QueueReset, ResetOffset, GetBrokerRuntimeInfo, GetConsumeStats, GetTopicList, GetTopicStats, PullMessage, QueryMessageByKey, QueryMessageByUniqueId, QueueStats, RuntimeInfo, SendResult, ViewMessage};
use std::sync::Arc;

/// Administrative operations over a cluster.
#[derive(Clone)]
pub struct Admin {
    client: Arc<ClientInstance>,
}

impl Admin {
    /// Admin on a client instance.
    pub fn new(client: Arc<ClientInstance>) -> Admin {
        Admin { client }
    }

    /// Every broker the name servers know.
    pub async fn cluster(&self) -> Result<Vec<BrokerInfo>> {
        self.client.cluster().await
    }

    /// Creates (or updates) a topic on every master broker, or on one by name.
    pub async fn create_topic(&self, config: TopicConfig, broker_name: Option<&str>) -> Result<Vec<String>> {
        validate_name("topic", &config.name).map_err(|m| Error::refused(Refused::Illegal, m))?;
        let brokers = self.cluster().await?;
        let targets: Vec<&BrokerInfo> = brokers
            .iter()
            .filter(|b| b.broker_id == 0 && broker_name.is_none_or(|n| n == b.broker_name))
            .collect();
        if targets.is_empty() {
            return Err(Error::refused(Refused::TopicNotExist, "no matching broker is registered"));
        }
        let mut done = Vec::new();
        for b in targets {
            self.client.call(&b.addr, CreateTopic { config: config.clone() }, self.client.timeout()).await?;
            done.push(b.broker_name.clone());
        }
        Ok(done)
    }

    /// Topics of every broker, merged by name.
    pub async fn topics(&self) -> Result<Vec<(String, TopicConfig)>> {
        let mut out = Vec::new();
        for b in self.cluster().await? {
            let topics = self.client.call(&b.addr, GetTopicList, self.client.timeout()).await?;
            out.extend(topics.into_iter().map(|t| (b.broker_name.clone(), t)));
        }
        out.sort_by(|a, b| (&a.1.name, &a.0).cmp(&(&b.1.name, &b.0)));
        Ok(out)
    }

    /// Per-queue offsets of a topic on each broker serving it.
    pub async fn topic_stats(&self, topic: &str) -> Result<Vec<(String, QueueStats)>> {
        let route = self.client.route(topic, true).await?;
        let mut out = Vec::new();
        for q in route.queues {
            let stats = self.client.call(q.read_addr(), GetTopicStats { topic: topic.to_string() }, self.client.timeout()).await?;
            out.extend(stats.into_iter().map(|s| (q.broker_name.clone(), s)));
        }
        Ok(out)
    }

    /// A group's committed offsets against each queue's end.
    pub async fn consume_stats(&self, group: &str, topic: &str) -> Result<Vec<(String, ConsumeProgress)>> {
        let route = self.client.route(topic, true).await?;
        let mut out = Vec::new();
        for q in route.queues {
            let stats = GetConsumeStats { group: group.to_string(), topic: topic.to_string() };
            let progress = self.client.call(q.read_addr(), stats, self.client.timeout()).await?;
            out.extend(progress.into_iter().map(|p| (q.broker_name.clone(), p)));
        }
        Ok(out)
    }

    /// Resets `group`'s offsets on `topic`, on every master serving it, to
    /// the first message stored at or after `timestamp_ms`, or to the
    /// queues' ends when it is `None` (RocketMQ's `resetOffsetByTime` and
    /// `skipAccumulatedMessage`), with the group's consumers running: they
    /// take the reset queues again from there. Returns where each queue
    /// went, by broker; an error when a broker refused or did not answer
    /// (the brokers before it have reset theirs: run it again).
    pub async fn reset_offset(&self, group: &str, topic: &str, timestamp_ms: Option<u64>) -> Result<Vec<(String, QueueReset)>> {
        validate_group(group).map_err(|m| Error::refused(Refused::SubscriptionIllegal, m))?;
        validate_name("topic", topic).map_err(|m| Error::refused(Refused::Illegal, m))?;
        let mut out = Vec::new();
        for (broker, master) in self.masters_serving(topic, "nothing reset there").await? {
            let reset = ResetOffset { group: group.to_string(), topic: topic.to_string(), timestamp_ms };
            let queues = self.client.call(&master, reset, self.client.timeout()).await?;
            out.extend(queues.into_iter().map(|r| (broker.clone(), r)));
        }
        Ok(out)
    }

    /// A topic's route as the name servers give it: each broker group
    /// serving it, with its replicas and queue counts.
    pub async fn topic_route(&self, topic: &str) -> Result<crate::command::TopicRoute> {
        validate_name("topic", topic).map_err(|m| Error::refused(Refused::Illegal, m))?;
        self.client.route(topic, true).await
    }

    /// A broker's store and traffic figures.
    pub async fn broker_status(&self, addr: &str) -> Result<RuntimeInfo> {
        self.client.call(addr, GetBrokerRuntimeInfo, self.client.timeout()).await
    }

    /// Deletes a topic on every master serving it; the brokers it was
    /// deleted from. An error when no broker serves it.
    pub async fn delete_topic(&self, topic: &str) -> Result<Vec<String>> {
        validate_name("topic", topic).map_err(|m| Error::refused(Refused::Illegal, m))?;
        let mut done = Vec::new();
        for (broker, master) in self.masters_serving(topic, "the topic stays there").await? {
            self.client.call(&master, crate::command::DeleteTopic { topic: topic.to_string() }, self.client.timeout()).await?;
            done.push(broker);
        }
        Ok(done)
    }

    /// (broker name, master address) of every broker group serving `topic`;
    /// an error, before anything is asked of any, when a group has no
    /// master now (`unchanged` says what that leaves there).
    async fn masters_serving(&self, topic: &str, unchanged: &str) -> Result<Vec<(String, String)>> {
        let route = self.client.route(topic, true).await?;
        route
            .queues
            .iter()
            .map(|q| match q.master() {
                Some(master) => Ok((q.broker_name.clone(), master.addr.clone())),
                None => Err(Error::refused(Refused::NotMaster, format!("{} has no master now; {unchanged}", q.broker_name))),
            })
            .collect()
    }

    /// The masters of every broker group (name, address), or of one.
    async fn masters(&self, broker_name: Option<&str>) -> Result<Vec<(String, String)>> {
        let brokers = self.cluster().await?;
        let masters: Vec<(String, String)> = brokers
            .into_iter()
            .filter(|b| b.role == crate::command::BrokerRole::Master && broker_name.is_none_or(|n| n == b.broker_name))
            .map(|b| (b.broker_name, b.addr))
            .collect();
        if masters.is_empty() {
            return Err(Error::refused(Refused::NotFound, "no matching master is registered"));
        }
        Ok(masters)
    }

    /// Creates or updates a subscription group on every master, or on one
    /// broker group by name (`updateSubGroup`).
    pub async fn update_subscription_group(&self, config: crate::model::SubscriptionGroup, broker_name: Option<&str>) -> Result<Vec<String>> {
        validate_group(&config.group_name).map_err(|m| Error::refused(Refused::SubscriptionIllegal, m))?;
        let mut done = Vec::new();
        for (broker, addr) in self.masters(broker_name).await? {
            self.client.call(&addr, crate::command::UpdateSubscriptionGroup { config: config.clone() }, self.client.timeout()).await?;
            done.push(broker);
        }
        Ok(done)
    }

    /// Deletes a subscription group on every master that keeps it
    /// (`deleteSubGroup`); the brokers it was deleted on.
    pub async fn delete_subscription_group(&self, group: &str) -> Result<Vec<String>> {
        let mut done = Vec::new();
        for (broker, addr) in self.masters(None).await? {
            match self.client.call(&addr, crate::command::DeleteSubscriptionGroup { group: group.to_string() }, self.client.timeout()).await {
                Ok(()) => done.push(broker),
                Err(Error::Refused(Refusal { kind: Refused::NotFound, .. })) => {}
                Err(e) => return Err(e),
            }
        }
        if done.is_empty() {
            return Err(Error::refused(Refused::NotFound, format!("no master keeps subscription group {group}")));
        }
        Ok(done)
    }

    /// Every master's subscription groups, by broker.
    pub async fn subscription_groups(&self) -> Result<Vec<(String, crate::model::SubscriptionGroup)>> {
        let mut all = Vec::new();
        for (broker, addr) in self.masters(None).await? {
            let groups = self.client.call(&addr, crate::command::GetSubscriptionGroups, self.client.timeout()).await?;
            all.extend(groups.into_iter().map(|g| (broker.clone(), g)));
        }
        Ok(all)
    }

    /// A broker's settings, as `broker.conf` keys and values.
    pub async fn broker_config(&self, addr: &str) -> Result<Vec<(String, String)>> {
        self.client.call(addr, crate::command::GetBrokerConfig, self.client.timeout()).await
    }

    /// The live members (client ids) of a consumer group, as each master
    /// serving the group's retry topic knows them, by broker.
    pub async fn consumer_connection(&self, group: &str) -> Result<Vec<(String, Vec<String>)>> {
        validate_group(group).map_err(|m| Error::refused(Refused::SubscriptionIllegal, m))?;
        let route = match self.client.route(&crate::model::retry_topic(group), true).await {
            Ok(route) => route,
            Err(Error::Refused(Refusal { kind: Refused::TopicNotExist, .. }) | Error::NoRoute(_)) => {
                return Err(Error::refused(Refused::NotFound, format!("consumer group {group} has never had a member")));
            }
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for q in route.queues {
            let members = self.client.call(q.read_addr(), crate::command::GetConsumerList { group: group.to_string() }, self.client.timeout()).await?;
            out.push((q.broker_name.clone(), members));
        }
        Ok(out)
    }

    /// How a consumer group's members run (`consumerStatus`), each asked
    /// once through the first master that knows it; one member when
    /// `client_id` names it.
    pub async fn consumer_status(&self, group: &str, client_id: Option<&str>) -> Result<Vec<crate::command::ConsumerRunningInfo>> {
        validate_group(group).map_err(|m| Error::refused(Refused::SubscriptionIllegal, m))?;
        let mut seen = std::collections::BTreeSet::new();
        let mut all = Vec::new();
        let mut last_refusal = None;
        for (_, addr) in self.masters(None).await? {
            let ask = crate::command::GetConsumerRunningInfo { group: group.to_string(), client_id: client_id.map(str::to_string) };
            match self.client.call(&addr, ask, self.client.timeout()).await {
                Ok(infos) => all.extend(infos.into_iter().filter(|i| seen.insert(i.client_id.clone()))),
                Err(Error::Refused(refusal)) => last_refusal = Some(refusal),
                Err(e) => return Err(e),
            }
        }
        match (all.is_empty(), last_refusal) {
            (true, Some(refusal)) => Err(Error::Refused(refusal)),
            _ => Ok(all),
        }
    }

    /// The live producers of a producer group, by broker
    /// (`producerConnection`).
    pub async fn producer_connection(&self, group: &str) -> Result<Vec<(String, ProducerConnection)>> {
        validate_name("producer group", group).map_err(|m| Error::refused(Refused::Illegal, m))?;
        let mut all = Vec::new();
        for (broker, addr) in self.masters(None).await? {
            let members = self.client.call(&addr, GetProducerConnections { group: group.to_string() }, self.client.timeout()).await?;
            all.extend(members.into_iter().map(|m| (broker.clone(), m)));
        }
        Ok(all)
    }

    /// Up to `max` messages of one queue of `topic` on broker group
    /// `broker_name`, from `offset` on (`queryMsgByOffset`).
    pub async fn query_by_queue_offset(&self, topic: &str, broker_name: &str, queue_id: u32, offset: u64, max: u32) -> Result<Vec<MessageExt>> {
        let route = self.client.route(topic, true).await?;
        let Some(q) = route.queues.iter().find(|q| q.broker_name == broker_name) else {
            return Err(Error::refused(Refused::NotFound, format!("topic {topic} has no queues on {broker_name}")));
        };
        if queue_id >= q.read_queues {
            return Err(Error::refused(Refused::Illegal, format!("queue {queue_id} does not exist: {topic} has {} read queues on {broker_name}", q.read_queues)));
        }
        let query = QueryMessageByQueueOffset { topic: topic.into(), queue_id, offset, max };
        self.client.call(q.read_addr(), query, self.client.timeout()).await
    }

    /// The messages of `topic` stored from `begin_ms` up to `end_ms`
    /// (exclusive), queue by queue, at most `max` in all (`printMsg`).
    pub async fn messages_between(&self, topic: &str, begin_ms: u64, end_ms: u64, max: usize) -> Result<Vec<MessageExt>> {
        let route = self.client.route(topic, true).await?;
        let mut found = Vec::new();
        for q in &route.queues {
            for queue_id in 0..q.read_queues {
                let search = |timestamp_ms| SearchOffsetByTime { topic: topic.into(), queue_id, timestamp_ms };
                let Some(mut offset) = self.client.call(q.read_addr(), search(begin_ms), self.client.timeout()).await? else { continue };
                let end = self.client.call(q.read_addr(), search(end_ms), self.client.timeout()).await?.unwrap_or(u64::MAX);
                while offset < end && found.len() < max {
                    let query = QueryMessageByQueueOffset { topic: topic.into(), queue_id, offset, max: 32 };
                    let batch = match self.client.call(q.read_addr(), query, self.client.timeout()).await {
                        Ok(batch) => batch,
                        Err(Error::Refused(Refusal { kind: Refused::NotFound, .. })) => break,
                        Err(e) => return Err(e),
                    };
                    let Some(last) = batch.last().map(|m| m.queue_offset) else { break };
                    offset = last + 1;
                    let within = batch.into_iter().filter(|m| m.queue_offset < end && (begin_ms..end_ms).contains(&m.store_timestamp_ms));
                    found.extend(within.take(max - found.len()));
                }
            }
        }
        Ok(found)
    }

    /// Messages of `topic` with business key `key`, from every broker.
    pub async fn query_by_key(&self, topic: &str, key: &str, max: u32) -> Result<Vec<MessageExt>> {
        self.query_by_key_between(topic, key, max, 0, u64::MAX).await
    }

    /// [`Admin::query_by_key`], of the messages stored from `begin_ms` to
    /// `end_ms` (inclusive).
    pub async fn query_by_key_between(&self, topic: &str, key: &str, max: u32, begin_ms: u64, end_ms: u64) -> Result<Vec<MessageExt>> {
        let route = self.client.route(topic, true).await?;
        let mut found = Vec::new();
        for q in route.queues {
            let query = QueryMessageByKey { topic: topic.into(), key: key.into(), max, begin_ms, end_ms };
            match self.client.call(q.read_addr(), query, self.client.timeout()).await {
                Ok(m) => found.extend(m),
                Err(Error::Refused(Refusal { kind: Refused::NotFound, .. })) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }

    /// A message by unique id (searched on the topic's brokers) or by
    /// offset id (`broker@hex`, read from that broker).
    pub async fn query_by_id(&self, topic: &str, id: &str) -> Result<Vec<MessageExt>> {
        let route = self.client.route(topic, true).await?;
        if let Some((broker, offset)) = parse_offset_msg_id(id) {
            if let Some(q) = route.queues.iter().find(|q| q.broker_name == broker) {
                return self.client.call(q.read_addr(), ViewMessage { commit_log_offset: offset }, self.client.timeout()).await;
            }
        }
        let mut found = Vec::new();
        for q in route.queues {
            match self.client.call(q.read_addr(), QueryMessageByUniqueId { id: id.into() }, self.client.timeout()).await {
                Ok(m) => found.extend(m),
                Err(Error::Refused(Refusal { kind: Refused::NotFound, .. })) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }

    /// Every message in a group's dead-letter queues, broker by broker in
    /// queue order; none when the group never dead-lettered anything.
    pub async fn dead_letters(&self, group: &str) -> Result<Vec<MessageExt>> {
        validate_group(group).map_err(|m| Error::refused(Refused::SubscriptionIllegal, m))?;
        let topic = dlq_topic(group);
        let route = match self.client.route(&topic, true).await {
            Ok(route) => route,
            Err(Error::Refused(Refusal { kind: Refused::TopicNotExist, .. }) | Error::NoRoute(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut found = Vec::new();
        for q in route.queues {
            let stats = self.client.call(q.read_addr(), GetTopicStats { topic: topic.clone() }, self.client.timeout()).await?;
            for s in stats {
                let mut offset = s.min_offset;
                while offset < s.max_offset {
                    let pull = PullMessage {
                        group: format!("{group}-dlq-reader"),
                        topic: topic.clone(),
                        queue_id: s.queue_id,
                        offset,
                        max_msgs: 256,
                        expression: "*".into(),
                        expression_type: Default::default(),
                        suspend_ms: 0,
                        // A reader, not a consumer: no reset fences it.
                        generation: u64::MAX,
                    };
                    let result = self.client.call(q.read_addr(), pull, self.client.timeout()).await?;
                    if result.next_offset <= offset {
                        break;
                    }
                    found.extend(result.messages);
                    offset = result.next_offset;
                }
            }
        }
        Ok(found)
    }

    /// Sends dead letters of `group` back to the topics they were first
    /// sent to, as new messages with the same unique id, business keys, tag,
    /// properties and body, so an idempotent consumer recognises what it
    /// already applied: every one, or those whose id or business key is
    /// `only`. Returns each resent message with its send result.
    pub async fn resend_dead_letters(&self, group: &str, only: Option<&str>) -> Result<Vec<(MessageExt, SendResult)>> {
        let producer = Producer::new(self.client.clone(), ProducerConfig::new("mqadmin-dlq-resend"))?;
        let mut resent = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for m in self.dead_letters(group).await? {
            let id = m.msg_id();
            if only.is_some_and(|wanted| id != wanted && !m.message.keys.iter().any(|k| k == wanted)) || !seen.insert(id) {
                continue;
            }
            let message = Message { topic: m.origin_topic().to_string(), delay_level: 0, ..m.message.clone() };
            let result = producer.send(message).await?;
            resent.push((m, result));
        }
        Ok(resent)
    }

    /// Store and traffic figures of a broker.
    pub async fn runtime(&self, addr: &str) -> Result<RuntimeInfo> {
        self.client.call(addr, GetBrokerRuntimeInfo, self.client.timeout()).await
    }
}
