//! A broker's configuration: its name and addresses, flush and replication
//! modes, limits and intervals.

use super::*;

/// When a send is acknowledged relative to the fsync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushMode {
    /// Acknowledge after the fsync (group commit).
    Sync,
    /// Acknowledge after the write; fsync periodically.
    Async,
}

impl FlushMode {
    /// RocketMQ's name for it.
    pub fn rocketmq_name(self) -> &'static str {
        match self {
            FlushMode::Sync => "SYNC_FLUSH",
            FlushMode::Async => "ASYNC_FLUSH",
        }
    }
}

/// What a broker does in its group (RocketMQ's `brokerRole`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReplicationRole {
    /// A master that acknowledges without waiting for a slave.
    #[default]
    AsyncMaster,
    /// A master that acknowledges a send once a slave holds it durably.
    SyncMaster,
    /// Copies its master's log; refuses writes, serves reads.
    Slave,
}

impl ReplicationRole {
    /// RocketMQ's name for it.
    pub fn rocketmq_name(self) -> &'static str {
        match self {
            ReplicationRole::AsyncMaster => "ASYNC_MASTER",
            ReplicationRole::SyncMaster => "SYNC_MASTER",
            ReplicationRole::Slave => "SLAVE",
        }
    }
}

/// Broker settings, after RocketMQ's `broker.conf`.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Broker (group) name, e.g. `broker-a`.
    pub broker_name: String,
    /// Cluster name.
    pub cluster: String,
    /// 0 for a master.
    pub broker_id: u64,
    /// Address clients use to reach this broker (what gets registered).
    pub advertise_addr: String,
    /// Name servers to register with.
    pub namesrv_addrs: Vec<String>,
    /// When sends are acknowledged.
    pub flush: FlushMode,
    /// ASYNC_FLUSH period (500 ms).
    pub flush_interval_ms: u64,
    /// SYNC_FLUSH: how long a send waits for its fsync before FLUSH_DISK_TIMEOUT (5 s).
    pub sync_flush_timeout_ms: u64,
    /// How often consume queues and the index are synced and checkpointed.
    pub checkpoint_interval_ms: u64,
    /// Create unknown topics on first send.
    pub auto_create_topic: bool,
    /// Serve SQL92 property filters (RocketMQ's `enablePropertyFilter`,
    /// off by default as there): a pull with one is refused when off.
    pub enable_property_filter: bool,
    /// Queues of an auto-created topic at most, and of an admin-created one by default (8).
    pub default_topic_queues: u32,
    /// Registration period with the name servers (30 s).
    pub register_interval_ms: u64,
    /// Longest a pull is held waiting for messages (15 s).
    pub long_polling_max_ms: u64,
    /// Offset persistence period (5 s).
    pub offset_persist_interval_ms: u64,
    /// A consumer silent this long leaves its group (120 s).
    pub client_expiry_ms: u64,
    /// Timeout of requests the broker makes (3 s).
    pub request_timeout_ms: u64,
    /// How often expired commit log segments are deleted.
    pub retention_check_interval_ms: u64,
    /// The delay of each delay level (`messageDelayLevel`).
    pub delay_levels: DelayLevels,
    /// How long a queue lock lasts after its last renewal (60 s, RocketMQ's
    /// `rocketmq.broker.rebalance.lockMaxLiveTime`).
    pub lock_lease_ms: u64,
    /// A half message is checked back once this old with no end (6 s,
    /// `transactionTimeOut`).
    pub transaction_timeout_ms: u64,
    /// How often half messages are scanned for check-back (60 s,
    /// `transactionCheckInterval`).
    pub transaction_check_interval_ms: u64,
    /// Checks of one half before it is moved aside (15, `transactionCheckMax`).
    pub transaction_check_max: u32,
    /// How far ahead a timer message may be set (3 days, `timerMaxDelaySec`).
    pub timer_max_delay_ms: u64,
    /// Master (async or sync replication) or slave (`brokerRole`).
    pub role: ReplicationRole,
    /// A slave's master; without it the name servers say (`haMasterAddress`).
    pub ha_master_addr: Option<String>,
    /// How long a SYNC_MASTER waits for a slave before FLUSH_SLAVE_TIMEOUT
    /// (3 s, `slaveTimeout`).
    pub slave_timeout_ms: u64,
    /// Controllers (`controllerAddr`): when set, the broker runs in
    /// controller mode: the controllers say which replica of the group is
    /// master, in which term, and `role` only says whether a master waits
    /// for its slaves (SYNC_MASTER) or not.
    pub controller_addrs: Vec<String>,
    /// Controller mode: how often the broker heartbeats the controller.
    pub controller_heartbeat_ms: u64,
    /// Controller mode: a slave that has not caught up with its master for
    /// this long leaves the sync-state set (15 s,
    /// `haMaxTimeSlaveNotCatchup`).
    pub ha_max_time_slave_not_catchup_ms: u64,
    /// Sends writing to the store at once (4, `sendMessageThreadPoolNums`).
    pub send_workers: u32,
    /// Sends waiting for a writer at most; one more is refused busy at once
    /// (10,000, `sendThreadPoolQueueCapacity`).
    pub send_queue_capacity: usize,
    /// A send waiting this long for a writer is refused busy (200 ms,
    /// `waitTimeMillsInSendQueue`).
    pub send_queue_wait_ms: u64,
    /// Store settings.
    pub store: StoreConfig,
}

impl BrokerConfig {
    /// The settings as `broker.conf` keys and values, by RocketMQ's names
    /// (`mqadmin getBrokerConfig`); parsed back as a `broker.conf`, they
    /// give these settings again (the listen address and store directory
    /// are the process's, not the broker's).
    pub fn as_properties(&self) -> Vec<(String, String)> {
        let hours = self.store.retention_ms / 3_600_000;
        let mut out: Vec<(&str, String)> = vec![
            ("brokerClusterName", self.cluster.clone()),
            ("brokerName", self.broker_name.clone()),
            ("brokerId", self.broker_id.to_string()),
            ("brokerRole", self.role.rocketmq_name().to_string()),
            ("flushDiskType", self.flush.rocketmq_name().to_string()),
            ("flushIntervalCommitLog", self.flush_interval_ms.to_string()),
            ("syncFlushTimeout", self.sync_flush_timeout_ms.to_string()),
            ("flushIntervalConsumeQueue", self.checkpoint_interval_ms.to_string()),
            ("flushConsumerOffsetInterval", self.offset_persist_interval_ms.to_string()),
            ("autoCreateTopicEnable", self.auto_create_topic.to_string()),
            ("enablePropertyFilter", self.enable_property_filter.to_string()),
            ("defaultTopicQueueNums", self.default_topic_queues.to_string()),
            ("fileReservedTime", hours.max(1).to_string()),
            ("mappedFileSizeCommitLog", self.store.segment_bytes.to_string()),
            ("maxMessageSize", self.store.body_bytes_max.to_string()),
            ("rebalanceLockMaxLiveTime", self.lock_lease_ms.to_string()),
            ("messageDelayLevel", self.delay_levels.render()),
            ("transactionTimeOut", self.transaction_timeout_ms.to_string()),
            ("transactionCheckInterval", self.transaction_check_interval_ms.to_string()),
            ("transactionCheckMax", self.transaction_check_max.to_string()),
            ("timerMaxDelaySec", (self.timer_max_delay_ms / 1_000).to_string()),
            ("registerNameServerPeriod", self.register_interval_ms.to_string()),
            ("longPollingMaxMs", self.long_polling_max_ms.to_string()),
            ("slaveTimeout", self.slave_timeout_ms.to_string()),
            ("sendMessageThreadPoolNums", self.send_workers.to_string()),
            ("sendThreadPoolQueueCapacity", self.send_queue_capacity.to_string()),
            ("waitTimeMillsInSendQueue", self.send_queue_wait_ms.to_string()),
        ];
        if !self.namesrv_addrs.is_empty() {
            out.push(("namesrvAddr", self.namesrv_addrs.join(";")));
        }
        if let Some(master) = &self.ha_master_addr {
            out.push(("haMasterAddress", master.clone()));
        }
        if !self.controller_addrs.is_empty() {
            out.push(("controllerAddr", self.controller_addrs.join(";")));
            out.push(("enableControllerMode", "true".to_string()));
            out.push(("haMaxTimeSlaveNotCatchup", self.ha_max_time_slave_not_catchup_ms.to_string()));
            out.push(("controllerHeartbeatInterval", self.controller_heartbeat_ms.to_string()));
        }
        out.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// Defaults for a broker named `broker_name` reachable at `advertise_addr`.
    pub fn new(broker_name: impl Into<String>, advertise_addr: impl Into<String>) -> BrokerConfig {
        BrokerConfig {
            broker_name: broker_name.into(),
            cluster: "DefaultCluster".into(),
            broker_id: 0,
            advertise_addr: advertise_addr.into(),
            namesrv_addrs: Vec::new(),
            flush: FlushMode::Async,
            flush_interval_ms: 500,
            sync_flush_timeout_ms: 5_000,
            checkpoint_interval_ms: 1_000,
            auto_create_topic: true,
            enable_property_filter: false,
            default_topic_queues: 8,
            register_interval_ms: 30_000,
            long_polling_max_ms: 15_000,
            offset_persist_interval_ms: 5_000,
            client_expiry_ms: 120_000,
            request_timeout_ms: 3_000,
            retention_check_interval_ms: 60_000,
            delay_levels: DelayLevels::default(),
            lock_lease_ms: 60_000,
            transaction_timeout_ms: 6_000,
            transaction_check_interval_ms: 60_000,
            transaction_check_max: 15,
            timer_max_delay_ms: crate::model::TIMER_MAX_DELAY_MS_DEFAULT,
            role: ReplicationRole::AsyncMaster,
            ha_master_addr: None,
            slave_timeout_ms: 3_000,
            controller_addrs: Vec::new(),
            controller_heartbeat_ms: 1_000,
            ha_max_time_slave_not_catchup_ms: 15_000,
            send_workers: 4,
            send_queue_capacity: 10_000,
            send_queue_wait_ms: 200,
            store: StoreConfig::default(),
        }
    }
}
