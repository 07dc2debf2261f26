//! One function per request: validate, apply to the state, return a response.

use super::{Broker, FlushMode, LOCKS_PATH};
use crate::bugs::{self, Bug};
use crate::marks::{self, Mark};
use crate::model::{
    dlq_topic, is_system_topic, offset_msg_id, retry_level, retry_topic, validate_group, validate_name, Delayed, Message,
    MessageExt, Origin, TagFilter, HALF_TOPIC, TopicConfig, PERM_READ, PERM_WRITE, PROPERTY_UNIQ_KEY, SCHEDULE_TOPIC, TOPIC_QUEUES_MAX,
};
use crate::protocol::{Request, Response, ResponseBody, ResponseCode};
use crate::command::{AlterSyncStateSet, CheckTransactionState, ConsumeProgress, ConsumerSendMsgBack, ControllerHeartbeat, CreateTopic, EndTransaction, GetBrokerRuntimeInfo, GetClusterInfo, GetConsumeStats, GetConsumerList, GetControllerState, GetEpochs, GetQueueOffsets, GetReplicaConfig, GetReplicaInfo, GetRoute, GetTopicList, GetTopicStats, Heartbeat, HeartbeatProducer, LockBatchMq, NotifyConsumerIdsChanged, PullMessage, PullResult, QueryConsumerOffset, QueryMessageByKey, QueryMessageByUniqueId, QueueStats, Raft, RegisterBroker, ReplicaPull, RuntimeInfo, SearchOffsetByTime, SendMessage, SendResult, SendStatus, UnlockBatchMq, UnregisterBroker, UnregisterClient, UpdateConsumerOffset, ViewMessage};
use crate::store::{GetStatus, PutResult};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Most results of a query by key (RocketMQ: 32).
const QUERY_RESULTS_MAX: u32 = 32;
/// Most messages one pull returns.
const PULL_BATCH_MAX: u32 = 1024;

/// Where a sent message comes from.
struct Born {
    producer_group: String,
    timestamp_ms: u64,
    host: String,
    peer: SocketAddr,
}

impl Broker {
    pub(super) async fn apply(&self, request: Request, peer: SocketAddr) -> Response {
        let write = match &request {
            Request::SendMessage(SendMessage { .. }) => Some("a send"),
            Request::ConsumerSendMsgBack(ConsumerSendMsgBack { .. }) => Some("a send-back"),
            Request::EndTransaction(EndTransaction { .. }) => Some("the end of a transaction"),
            Request::LockBatchMq(LockBatchMq { .. }) | Request::UnlockBatchMq(UnlockBatchMq { .. }) => Some("a queue lock"),
            _ => None,
        };
        if let Some(refusal) = write.and_then(|what| self.refuse_on_slave(what)) {
            return refusal;
        }
        match request {
            Request::SendMessage(SendMessage { producer_group, queue_id, message, born_timestamp_ms, born_host, default_topic_queues }) => {
                let born = Born { producer_group, timestamp_ms: born_timestamp_ms, host: born_host, peer };
                self.send(queue_id, message, born, default_topic_queues).await
            }
            Request::HeartbeatProducer(HeartbeatProducer { client_id, groups }) => {
                let now = self.clock.now_ms();
                let mut producers = self.producers.lock().expect("producers");
                for group in groups.iter().filter(|g| validate_name("producer group", g).is_ok()) {
                    producers.heartbeat(&client_id, group, peer, now);
                }
                Response::ok(ResponseBody::None)
            }
            Request::ReplicaPull(ReplicaPull { broker_name, broker_id, epoch, from_offset, durable_offset, max_bytes, wait_ms }) => {
                self.replica_pull(&broker_name, broker_id, epoch, from_offset, durable_offset, max_bytes, wait_ms).await
            }
            Request::GetReplicaConfig(GetReplicaConfig { broker_name }) => self.replica_config(&broker_name),
            Request::GetEpochs(GetEpochs { broker_name }) => self.get_epochs(&broker_name),
            Request::EndTransaction(EndTransaction { producer_group, commit_log_offset, msg_id, state, from_check }) => {
                tracing::debug!(%msg_id, ?state, from_check, "end of a transaction");
                if from_check && state == crate::model::TransactionState::Commit && bugs::active(Bug::CheckCommitIgnored) {
                    // The planted defect: a check-back's commit is taken and dropped.
                    return Response::ok(ResponseBody::None);
                }
                self.end_transaction(&producer_group, commit_log_offset, &msg_id, state).await
            }
            Request::PullMessage(PullMessage { group, topic, queue_id, offset, max_msgs, expression, suspend_ms }) => {
                self.pull(&group, &topic, queue_id, offset, max_msgs, &expression, suspend_ms).await
            }
            Request::Heartbeat(Heartbeat { client_id, consumers }) => {
                let now = self.clock.now_ms();
                let mut retry_topics = Vec::new();
                let mut joined = Vec::new();
                {
                    let mut groups = self.groups.lock().expect("groups");
                    for data in consumers {
                        if validate_group(&data.group).is_ok() {
                            retry_topics.push(retry_topic(&data.group));
                        }
                        let group = data.group.clone();
                        if groups.heartbeat_on(&client_id, data, now, Some(peer)) {
                            joined.push(group);
                        }
                    }
                }
                for group in &joined {
                    self.notify_consumers_changed(group);
                }
                // Every group's retry topic exists as soon as it has a
                // member, so its consumers find a route to subscribe to.
                for topic in retry_topics {
                    if let Err(response) = self.system_topic(&topic).await {
                        return response;
                    }
                }
                Response::ok(ResponseBody::None)
            }
            Request::ConsumerSendMsgBack(ConsumerSendMsgBack { group, commit_log_offset, delay_level, max_reconsume_times }) => {
                self.send_back(&group, commit_log_offset, delay_level, max_reconsume_times).await
            }
            Request::LockBatchMq(LockBatchMq { group, client_id, queues }) => {
                let exclusive = !bugs::active(Bug::LockNotExclusive);
                let (granted, snapshot) = {
                    let mut locks = self.locks.lock().expect("locks");
                    let granted = locks.lock(&group, &client_id, &queues, self.clock.instant(), exclusive);
                    (granted, locks.take_snapshot())
                };
                if let Some(response) = self.persist_locks(snapshot) {
                    return response;
                }
                Response::ok(ResponseBody::LockedQueues(granted))
            }
            Request::UnlockBatchMq(UnlockBatchMq { group, client_id, queues }) => {
                let snapshot = {
                    let mut locks = self.locks.lock().expect("locks");
                    locks.unlock(&group, &client_id, &queues);
                    locks.take_snapshot()
                };
                match self.persist_locks(snapshot) {
                    Some(response) => response,
                    None => Response::ok(ResponseBody::None),
                }
            }
            Request::UnregisterClient(UnregisterClient { client_id, group }) => {
                if self.groups.lock().expect("groups").unregister(&client_id, &group) {
                    self.notify_consumers_changed(&group);
                }
                Response::ok(ResponseBody::None)
            }
            Request::GetConsumerList(GetConsumerList { group }) => {
                Response::ok(ResponseBody::ConsumerList(self.groups.lock().expect("groups").members(&group)))
            }
            Request::UpdateConsumerOffset(UpdateConsumerOffset { group, topic, queue_id, offset }) => {
                // A slave's offsets are its master's copy, replaced every
                // second: a commit taken here would be silently undone.
                if self.is_slave() {
                    return Response::error(
                        ResponseCode::NotMaster,
                        format!("{} is a slave: commit consumer offsets to its master", self.config.broker_name),
                    );
                }
                // Never past the queue's end: a consumer that read entries a
                // power loss took back may still commit its old position.
                let end = self.store.lock().expect("store").queue_offsets(&topic, queue_id).1;
                self.offsets.lock().expect("offsets").commit_forward(&group, &topic, queue_id, offset.min(end));
                Response::ok(ResponseBody::None)
            }
            Request::QueryConsumerOffset(QueryConsumerOffset { group, topic, queue_id }) => {
                if bugs::active(Bug::StaleOffsetRead) {
                    // The planted defect: answered from the last persisted table.
                    let persisted = crate::store::disk::read_all(self.disk.as_ref(), super::OFFSETS_PATH).ok().flatten();
                    let table = persisted.and_then(|bytes| serde_json::from_slice::<super::offsets::OffsetTable>(&bytes).ok());
                    return Response::ok(ResponseBody::Offset(table.and_then(|t| t.get(&group, &topic, queue_id))));
                }
                Response::ok(ResponseBody::Offset(self.offsets.lock().expect("offsets").get(&group, &topic, queue_id)))
            }
            Request::GetQueueOffsets(GetQueueOffsets { topic, queue_id }) => {
                let (min_offset, max_offset) = self.store.lock().expect("store").queue_offsets(&topic, queue_id);
                Response::ok(ResponseBody::QueueOffsets(QueueStats { queue_id, min_offset, max_offset }))
            }
            Request::SearchOffsetByTime(SearchOffsetByTime { topic, queue_id, timestamp_ms }) => {
                match self.store.lock().expect("store").offset_by_time(&topic, queue_id, timestamp_ms) {
                    Ok(offset) => Response::ok(ResponseBody::Offset(Some(offset))),
                    Err(e) => e.into(),
                }
            }
            Request::CreateTopic(CreateTopic { config }) => self.create_topic(config).await,
            Request::GetTopicList(GetTopicList) => {
                Response::ok(ResponseBody::Topics(self.topics.lock().expect("topics").values().cloned().collect()))
            }
            Request::GetTopicStats(GetTopicStats { topic }) => {
                let Some(config) = self.topics.lock().expect("topics").get(&topic).cloned() else {
                    return Response::error(ResponseCode::TopicNotExist, format!("topic {topic} does not exist on this broker"));
                };
                let store = self.store.lock().expect("store");
                let stats = (0..config.read_queues.max(config.write_queues))
                    .map(|queue_id| {
                        let (min_offset, max_offset) = store.queue_offsets(&topic, queue_id);
                        QueueStats { queue_id, min_offset, max_offset }
                    })
                    .collect();
                Response::ok(ResponseBody::TopicStats(stats))
            }
            Request::GetConsumeStats(GetConsumeStats { group, topic }) => {
                let Some(config) = self.topics.lock().expect("topics").get(&topic).cloned() else {
                    return Response::error(ResponseCode::TopicNotExist, format!("topic {topic} does not exist on this broker"));
                };
                let store = self.store.lock().expect("store");
                let offsets = self.offsets.lock().expect("offsets");
                let progress = (0..config.read_queues)
                    .map(|queue_id| ConsumeProgress {
                        queue_id,
                        max_offset: store.queue_offsets(&topic, queue_id).1,
                        consumer_offset: offsets.get(&group, &topic, queue_id),
                    })
                    .collect();
                Response::ok(ResponseBody::ConsumeStats(progress))
            }
            Request::QueryMessageByKey(QueryMessageByKey { topic, key, max, begin_ms, end_ms }) => {
                let max = max.clamp(1, QUERY_RESULTS_MAX) as usize;
                let found = self.store.lock().expect("store").with_index_rebuild(|s| s.query_by_key(&topic, &key, max, begin_ms, end_ms));
                match found {
                    Ok(found) if found.is_empty() => Response::error(ResponseCode::QueryNotFound, format!("no message of {topic} has key {key}")),
                    Ok(found) => Response::ok(ResponseBody::Messages(self.stamp(found))),
                    Err(e) => e.into(),
                }
            }
            Request::QueryMessageByUniqueId(QueryMessageByUniqueId { id }) => match self.store.lock().expect("store").with_index_rebuild(|s| s.query_by_unique_id(&id)) {
                Ok(found) if found.is_empty() => Response::error(ResponseCode::QueryNotFound, format!("no message has id {id}")),
                Ok(found) => Response::ok(ResponseBody::Messages(self.stamp(found))),
                Err(e) => e.into(),
            },
            Request::ViewMessage(ViewMessage { commit_log_offset }) => match self.store.lock().expect("store").read_at(commit_log_offset) {
                Ok(msg) => Response::ok(ResponseBody::Messages(self.stamp(vec![msg]))),
                Err(e) => Response::error(ResponseCode::QueryNotFound, format!("no message at offset {commit_log_offset}: {e}")),
            },
            Request::GetBrokerRuntimeInfo(GetBrokerRuntimeInfo) => {
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
                Response::ok(ResponseBody::Runtime(RuntimeInfo {
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
                }))
            }
            other @ (Request::RegisterBroker(RegisterBroker { .. })
            | Request::UnregisterBroker(UnregisterBroker { .. })
            | Request::GetRoute(GetRoute { .. })
            | Request::GetClusterInfo(GetClusterInfo)) => Response::error(
                ResponseCode::RequestNotSupported,
                format!("{} is a name server request; this is a broker", other.name()),
            ),
            other @ (Request::CheckTransactionState(CheckTransactionState { .. }) | Request::NotifyConsumerIdsChanged(NotifyConsumerIdsChanged { .. })) => Response::error(
                ResponseCode::RequestNotSupported,
                format!("{} is a request brokers send to clients; this is a broker", other.name()),
            ),
            other @ (Request::Raft(Raft { .. })
            | Request::ControllerHeartbeat(ControllerHeartbeat { .. })
            | Request::GetReplicaInfo(GetReplicaInfo { .. })
            | Request::AlterSyncStateSet(AlterSyncStateSet { .. })
            | Request::GetControllerState(GetControllerState)) => Response::error(
                ResponseCode::RequestNotSupported,
                format!("{} is a controller request; this is a broker", other.name()),
            ),
        }
    }

    /// Fills in what the store does not keep per message.
    fn stamp(&self, mut msgs: Vec<MessageExt>) -> Vec<MessageExt> {
        for m in &mut msgs {
            m.broker_name = self.config.broker_name.clone();
            m.store_host = self.config.advertise_addr.clone();
            if bugs::active(Bug::PullDropsProperties) && m.queue_offset % 5 == 4 {
                // The planted defect: user properties lost on the way out;
                // the unique id survives, so the message is still recognised.
                m.message.properties.retain(|name, _| name == PROPERTY_UNIQ_KEY);
            }
            if bugs::active(Bug::PullOffsetSkew) && m.queue_offset % 5 == 3 {
                // The planted defect: labelled with its predecessor's offset.
                m.queue_offset -= 1;
            }
        }
        msgs
    }

    async fn create_topic(&self, config: TopicConfig) -> Response {
        if let Err(e) = validate_name("topic", &config.name) {
            return Response::error(ResponseCode::MessageIllegal, e);
        }
        if !(1..=TOPIC_QUEUES_MAX).contains(&config.write_queues) || !(1..=TOPIC_QUEUES_MAX).contains(&config.read_queues) {
            return Response::error(ResponseCode::MessageIllegal, format!("queue counts must be in 1..={TOPIC_QUEUES_MAX}"));
        }
        if config.perm & !(PERM_READ | PERM_WRITE) != 0 {
            return Response::error(
                ResponseCode::MessageIllegal,
                format!("perm {} is not a combination of {PERM_READ} (read) and {PERM_WRITE} (write)", config.perm),
            );
        }
        self.topics.lock().expect("topics").insert(config.name.clone(), config);
        if let Err(e) = self.persist_topics() {
            return e.into();
        }
        let _ = self.register_all().await;
        Response::ok(ResponseBody::None)
    }

    /// The topic's config, auto-creating it when allowed.
    async fn topic_for_send(&self, topic: &str, default_queues: u32) -> Result<TopicConfig, Response> {
        if let Some(config) = self.topics.lock().expect("topics").get(topic) {
            return Ok(config.clone());
        }
        if !self.config.auto_create_topic {
            return Err(Response::error(
                ResponseCode::TopicNotExist,
                format!("topic {topic} does not exist and auto-creation is off on {}", self.config.broker_name),
            ));
        }
        let queues = default_queues.clamp(1, self.config.default_topic_queues.max(1));
        let config = TopicConfig::new(topic, queues);
        self.topics.lock().expect("topics").entry(topic.to_string()).or_insert(config);
        self.persist_topics().map_err(Response::from)?;
        self.register_soon();
        Ok(self.topics.lock().expect("topics")[topic].clone())
    }

    async fn send(&self, queue_id: u32, message: Message, born: Born, default_queues: u32) -> Response {
        if bugs::active(Bug::HostEntropy) {
            // The planted defect: a pause drawn from the host, not the seed.
            tokio::time::sleep(Duration::from_millis(host_entropy() % 3)).await;
        }
        if bugs::active(Bug::ProgressStall) && self.recovery.end_offset > 0 {
            // The planted defect: once restarted over a non-empty store, the
            // broker never acknowledges a send again.
            return Response::error(ResponseCode::SystemBusy, "broker busy");
        }
        if let Err(e) = validate_name("topic", &message.topic) {
            return Response::error(ResponseCode::MessageIllegal, e);
        }
        if is_system_topic(&message.topic) {
            return Response::error(
                ResponseCode::NoPermission,
                format!("topic {} is a system topic (schedule, retry or dead letter): producers may not send to it", message.topic),
            );
        }
        let config = match self.topic_for_send(&message.topic, default_queues).await {
            Ok(c) => c,
            Err(response) => return response,
        };
        if !config.writable() {
            return Response::error(ResponseCode::NoPermission, format!("topic {} is not writable", config.name));
        }
        if queue_id >= config.write_queues {
            return Response::error(
                ResponseCode::MessageIllegal,
                format!("queue {queue_id} does not exist: topic {} has {} write queues", config.name, config.write_queues),
            );
        }
        let msg_id_hint = message.unique_id().map(str::to_string);
        let now = self.clock.now_ms();
        let timer = match message.timer_deliver_at(now, self.config.timer_max_delay_ms) {
            Ok(timer) => timer.filter(|&at| at > now),
            Err(e) => return Response::error(ResponseCode::MessageIllegal, e),
        };
        let transactional = message.is_transactional();
        if transactional {
            if message.delay_level > 0 || message.has_timer() {
                return Response::error(ResponseCode::MessageIllegal, "a transactional message may not have a delay level or a timer");
            }
            if let Err(e) = validate_name("producer group", &born.producer_group) {
                return Response::error(ResponseCode::MessageIllegal, e);
            }
        }
        let mut msg = MessageExt {
            message,
            broker_name: self.config.broker_name.clone(),
            queue_id,
            born_timestamp_ms: born.timestamp_ms,
            born_host: if born.host.is_empty() { born.peer.to_string() } else { born.host },
            store_host: self.config.advertise_addr.clone(),
            ..MessageExt::default()
        };
        if transactional {
            self.make_half(&mut msg, &born.producer_group);
        } else if let Some(at) = timer {
            self.make_timer(&mut msg, at);
        } else if msg.message.delay_level > 0 {
            // Held in the schedule topic until due (a level past the table
            // is the last, as in RocketMQ).
            let level = self.config.delay_levels.clamp(msg.message.delay_level);
            msg.message.delay_level = level;
            self.hold_back(&mut msg, level, now);
        }
        let (put, status) = match self.store_message(msg, now).await {
            Ok(stored) => stored,
            Err(response) => return response,
        };
        if let Some(at) = timer {
            self.timer_added(at, put.queue_offset);
        }
        let offset_id = offset_msg_id(&self.config.broker_name, put.commit_log_offset);
        let result = SendResult {
            status,
            msg_id: msg_id_hint.unwrap_or_else(|| offset_id.clone()),
            offset_msg_id: offset_id,
            broker_name: self.config.broker_name.clone(),
            queue_id,
            queue_offset: put.queue_offset,
        };
        let code = match status {
            SendStatus::SendOk => ResponseCode::Success,
            SendStatus::FlushDiskTimeout => ResponseCode::FlushDiskTimeout,
            SendStatus::FlushSlaveTimeout => ResponseCode::FlushSlaveTimeout,
            SendStatus::SlaveNotAvailable => ResponseCode::SlaveNotAvailable,
        };
        Response { code, remark: String::new(), body: ResponseBody::Send(result) }
    }

    /// Stores a message and waits as long as the flush mode says before it
    /// may be acknowledged: the put and the durability it reached, or the
    /// response that refuses it.
    pub(super) async fn store_message(&self, msg: MessageExt, now: u64) -> Result<(PutResult, SendStatus), Response> {
        let (topic, queue_id) = (msg.message.topic.clone(), msg.queue_id);
        let put = self.store.lock().expect("store").put(msg, now).map_err(Response::from)?;
        self.put_count.fetch_add(1, Ordering::Relaxed);
        self.written.send_replace(put.end_offset);
        let mut status = SendStatus::SendOk;
        if self.config.flush == FlushMode::Sync && !bugs::active(Bug::AckBeforeFsync) {
            let flushed = self.wait_flushed(put.end_offset).await;
            // Held pulls wake once the message is durable, hence visible.
            self.notify_arrival(&topic, queue_id);
            match flushed {
                Ok(()) => {}
                Err(None) => {
                    marks::reach(Mark::FlushDiskTimeout);
                    status = SendStatus::FlushDiskTimeout;
                }
                Err(Some(e)) => return Err(Response::error(ResponseCode::SystemError, format!("fsync failed: {e}"))),
            }
        } else {
            // ASYNC_FLUSH, or the planted ack-before-fsync bug, under which
            // SYNC_FLUSH acknowledges now and the periodic flush makes the
            // message durable up to flush_interval_ms later.
            self.notify_arrival(&topic, queue_id);
        }
        if status == SendStatus::SendOk && self.config.role == super::ReplicationRole::SyncMaster {
            status = self.wait_replicated(put.end_offset).await;
        }
        Ok((put, status))
    }

    /// Writes the queue locks when their holders changed; the response
    /// refusing the request when the disk did not take them (a lock not
    /// persisted could pass to a second consumer after a restart).
    fn persist_locks(&self, snapshot: Option<Vec<u8>>) -> Option<Response> {
        let bytes = snapshot?;
        match self.disk.write_atomic(LOCKS_PATH, &bytes) {
            Ok(()) => None,
            Err(e) => {
                // Written again with the next change; until then refuse.
                self.locks.lock().expect("locks").mark_dirty();
                Some(Response::error(ResponseCode::SystemError, format!("queue locks not persisted: {e}")))
            }
        }
    }

    /// A retry or dead-letter topic: one queue, read and write, made on
    /// first use and registered with the name servers.
    pub(super) async fn system_topic(&self, topic: &str) -> Result<(), Response> {
        if self.topics.lock().expect("topics").contains_key(topic) {
            return Ok(());
        }
        self.topics.lock().expect("topics").entry(topic.to_string()).or_insert_with(|| TopicConfig::new(topic, 1));
        self.persist_topics().map_err(Response::from)?;
        self.register_soon();
        Ok(())
    }

    /// A consumer's failed message comes back (RocketMQ's
    /// `consumerSendMsgBack`). The broker reads it from its commit log and
    /// stores a copy with reconsume times + 1, its origin (the first
    /// message's id and topic), and everything the producer sent: in the
    /// group's retry topic, held back at the retry's delay level; or, once
    /// it has been consumed again `max_reconsume_times` times, in the
    /// group's dead-letter topic at once, never through the delay levels
    /// (Apache RocketMQ #2724 made dead letters wait for their level first).
    async fn send_back(&self, group: &str, commit_log_offset: u64, delay_level: i32, max_reconsume_times: u32) -> Response {
        if let Err(e) = validate_group(group) {
            return Response::error(ResponseCode::SubscriptionIllegal, e);
        }
        let original = match self.store.lock().expect("store").read_at(commit_log_offset) {
            Ok(msg) => msg,
            Err(e) => return Response::error(ResponseCode::QueryNotFound, format!("no message at offset {commit_log_offset}: {e}")),
        };
        let origin = original.origin.clone().unwrap_or_else(|| Origin { msg_id: original.msg_id(), topic: original.message.topic.clone() });
        let reconsumed = original.reconsume_times;
        let dead = reconsumed >= max_reconsume_times || delay_level < 0;
        if dead && bugs::active(Bug::DlqSkipped) {
            // The planted defect: past the max, the message is dropped.
            return Response::ok(ResponseBody::None);
        }
        let topic = if dead { dlq_topic(group) } else { retry_topic(group) };
        if let Err(response) = self.system_topic(&topic).await {
            return response;
        }
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
        match self.store_message(copy, now).await {
            Ok((_, SendStatus::SendOk)) => Response::ok(ResponseBody::None),
            // Not durable as configured: the consumer keeps the message
            // and tries again, so nothing is lost if this copy is.
            Ok((_, status)) => Response::error(ResponseCode::FlushDiskTimeout, format!("the copy was stored but is not durable: {status:?}")),
            Err(response) => response,
        }
    }

    /// Turns a message into its schedule topic entry: it waits in the
    /// queue of `level` until the level's delay has passed on this broker's
    /// clock, then goes to the topic and queue it names now.
    pub(super) fn hold_back(&self, msg: &mut MessageExt, level: u32, now_ms: u64) {
        let delayed = Delayed {
            topic: std::mem::replace(&mut msg.message.topic, SCHEDULE_TOPIC.to_string()),
            queue_id: std::mem::replace(&mut msg.queue_id, level - 1),
            level,
            deliver_at_ms: now_ms.saturating_add(self.config.delay_levels.delay_ms(level)),
        };
        msg.delayed = Some(delayed);
    }

    #[allow(clippy::too_many_arguments)]
    async fn pull(&self, group: &str, topic: &str, queue_id: u32, offset: u64, max_msgs: u32, expression: &str, suspend_ms: u64) -> Response {
        let Some(config) = self.topics.lock().expect("topics").get(topic).cloned() else {
            return Response::error(ResponseCode::TopicNotExist, format!("topic {topic} does not exist on {}", self.config.broker_name));
        };
        if !config.readable() {
            return Response::error(ResponseCode::NoPermission, format!("topic {topic} is not readable"));
        }
        let filter = match TagFilter::parse(expression) {
            Ok(f) => f,
            Err(e) => return Response::error(ResponseCode::SubscriptionIllegal, e),
        };
        let hashes = if bugs::active(Bug::FilterSkipsMatch) { None } else { filter.hashes() };
        let accept = |h: u64| hashes.as_ref().is_none_or(|set| set.contains(&h));
        let max_msgs = max_msgs.clamp(1, PULL_BATCH_MAX) as usize;
        let hold = Duration::from_millis(suspend_ms.min(self.config.long_polling_max_ms));
        // Checked: a hold too long to add to the clock waits an hour at most.
        let now = self.clock.instant();
        let deadline = now.checked_add(hold).unwrap_or_else(|| now + Duration::from_secs(3_600));
        let mut arrivals = self.arrivals_rx(topic, queue_id);
        let mut replicated = self.replicated.subscribe();
        loop {
            let got = {
                let mut store = self.store.lock().expect("store");
                let visible_end = self.visible_end(&store);
                store.get_or_rebuild(topic, queue_id, offset, max_msgs, visible_end, &accept)
            };
            let mut got = match got {
                Ok(g) => g,
                Err(e) => return e.into(),
            };
            let now = self.clock.instant();
            if got.status == GetStatus::NoNew && now < deadline {
                if bugs::active(Bug::LongPollMiss) {
                    // The planted defect: the arrival goes unheard and the
                    // pull sleeps out its whole hold.
                    tokio::time::sleep(deadline - now).await;
                } else {
                    // In controller mode a message becomes visible when the
                    // sync-state set holds it, which a slave's ack says.
                    let heard = async {
                        if self.controller.is_some() {
                            tokio::select! {
                                arrived = arrivals.changed() => arrived.is_ok(),
                                _ = replicated.changed() => false,
                            }
                        } else {
                            arrivals.changed().await.is_ok()
                        }
                    };
                    if tokio::time::timeout(deadline - now, heard).await == Ok(true) {
                        marks::reach(Mark::LongPollWoken);
                    }
                }
                continue;
            }
            if got.status == GetStatus::OffsetOverflow {
                // Past the end (the queue lost its tail in a power loss):
                // resume at the group's committed offset, clamped at open,
                // rather than at the end, which would skip new messages.
                if let Some(committed) = self.offsets.lock().expect("offsets").get(group, topic, queue_id) {
                    got.next_offset = committed.min(got.max_offset);
                }
            }
            if bugs::active(Bug::FilterSkipsMatch) && hashes.is_none() && filter != TagFilter::All {
                // The planted defect: filtering moved client-side and the
                // first matching message of every batch is skipped.
                if let Some(i) = got.messages.iter().position(|m| filter.matches(m.message.tags.as_deref())) {
                    got.messages.remove(i);
                }
            }
            if self.is_slave() && !got.messages.is_empty() {
                marks::reach(Mark::SlaveServedPull);
            }
            self.get_count.fetch_add(got.messages.len() as u64, Ordering::Relaxed);
            return Response::ok(ResponseBody::Pull(PullResult {
                status: got.status,
                next_offset: got.next_offset,
                min_offset: got.min_offset,
                max_offset: got.max_offset,
                messages: self.stamp(got.messages),
            }));
        }
    }
}

/// A number from the host, not the simulation: the process id and where
/// the OS placed an allocation, mixed with a count of calls. Only the
/// planted bug `host-entropy` reads it.
fn host_entropy() -> u64 {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let probe = Box::new(0u8);
    let address = &*probe as *const u8 as u64;
    let mut z = address ^ (u64::from(std::process::id()) << 32) ^ CALLS.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^ (z >> 31)
}
