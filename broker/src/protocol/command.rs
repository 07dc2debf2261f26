//! Typed requests and responses. New variants go at the end of each enum so
//! older peers still decode the ones they know.

use crate::model::{Message, MessageExt, TopicConfig};
use crate::store::GetStatus;
use serde::{Deserialize, Serialize};

/// Where a consumer group with no committed offset starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsumeFrom {
    /// The queue's end at the time of the first pull (RocketMQ's default).
    #[default]
    LastOffset,
    /// The queue's first retained message.
    FirstOffset,
    /// The first message stored at or after this time (ms).
    Timestamp(u64),
}

/// A consumer group as its members describe it in heartbeats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerData {
    /// The group.
    pub group: String,
    /// (topic, tag expression) pairs.
    pub subscriptions: Vec<(String, String)>,
    /// Where the group starts when it has no offset.
    pub consume_from: ConsumeFrom,
}

/// A request, to a name server or a broker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Broker -> name server, every 30 s: here I am, with my topics.
    RegisterBroker {
        /// Cluster the broker belongs to.
        cluster: String,
        /// Broker (group) name.
        broker_name: String,
        /// 0 for a master.
        broker_id: u64,
        /// Address clients connect to.
        addr: String,
        /// Every topic the broker serves.
        topics: Vec<TopicConfig>,
        /// Master or slave.
        role: BrokerRole,
        /// The master term it serves in (0 without a controller).
        epoch: u64,
    },
    /// Broker -> name server at shutdown.
    UnregisterBroker {
        /// Broker name.
        broker_name: String,
        /// Its id in the group.
        broker_id: u64,
    },
    /// Client -> name server: which brokers serve `topic`.
    GetRoute {
        /// The topic.
        topic: String,
    },
    /// Admin -> name server: every broker known.
    GetClusterInfo,
    /// Producer -> broker: store a message.
    SendMessage {
        /// Producer group.
        producer_group: String,
        /// Target queue.
        queue_id: u32,
        /// The message, with `UNIQ_KEY` set.
        message: Message,
        /// Producer's clock at creation.
        born_timestamp_ms: u64,
        /// Producer's address or id.
        born_host: String,
        /// Queues for an auto-created topic.
        default_topic_queues: u32,
    },
    /// Consumer -> broker: read a queue, waiting up to `suspend_ms` for new messages.
    PullMessage {
        /// Consumer group.
        group: String,
        /// Topic.
        topic: String,
        /// Queue.
        queue_id: u32,
        /// First offset wanted.
        offset: u64,
        /// Most messages to return.
        max_msgs: u32,
        /// Tag expression: `*` or `TagA || TagB`.
        expression: String,
        /// Long-polling wait when nothing is new.
        suspend_ms: u64,
    },
    /// Client -> broker every 30 s (and at start): liveness and subscriptions.
    Heartbeat {
        /// The client instance.
        client_id: String,
        /// Groups this client consumes in.
        consumers: Vec<ConsumerData>,
    },
    /// Client -> broker at shutdown: leave the group now.
    UnregisterClient {
        /// The client instance.
        client_id: String,
        /// The group it leaves.
        group: String,
    },
    /// Consumer -> broker: the live members of a group, sorted.
    GetConsumerList {
        /// The group.
        group: String,
    },
    /// Consumer -> broker: commit an offset.
    UpdateConsumerOffset {
        /// Group.
        group: String,
        /// Topic.
        topic: String,
        /// Queue.
        queue_id: u32,
        /// Next offset to consume.
        offset: u64,
    },
    /// Consumer -> broker: the committed offset, if any.
    QueryConsumerOffset {
        /// Group.
        group: String,
        /// Topic.
        topic: String,
        /// Queue.
        queue_id: u32,
    },
    /// The readable range of a queue.
    GetQueueOffsets {
        /// Topic.
        topic: String,
        /// Queue.
        queue_id: u32,
    },
    /// The first offset of a queue stored at or after a time.
    SearchOffsetByTime {
        /// Topic.
        topic: String,
        /// Queue.
        queue_id: u32,
        /// Time in ms.
        timestamp_ms: u64,
    },
    /// Admin -> broker: create or update a topic.
    CreateTopic {
        /// The topic.
        config: TopicConfig,
    },
    /// Admin -> broker: every topic.
    GetTopicList,
    /// Admin -> broker: per-queue offsets of a topic.
    GetTopicStats {
        /// The topic.
        topic: String,
    },
    /// Messages of a topic carrying a business key.
    QueryMessageByKey {
        /// Topic.
        topic: String,
        /// Business key.
        key: String,
        /// Most results (32 by default).
        max: u32,
        /// Earliest store time.
        begin_ms: u64,
        /// Latest store time.
        end_ms: u64,
    },
    /// Every stored copy of a unique id.
    QueryMessageByUniqueId {
        /// The id.
        id: String,
    },
    /// The message at a commit log offset (from an offset id).
    ViewMessage {
        /// The offset.
        commit_log_offset: u64,
    },
    /// Admin -> broker: store and traffic figures.
    GetBrokerRuntimeInfo,
    /// Group offsets and queue ends for a topic (consumer progress).
    GetConsumeStats {
        /// Group.
        group: String,
        /// Topic.
        topic: String,
    },
    /// Consumer -> broker: consumption of the message at this commit log
    /// offset failed; store a copy in the group's retry topic, delayed, or
    /// in its dead-letter topic once it was consumed again
    /// `max_reconsume_times` times (RocketMQ's `CONSUMER_SEND_MSG_BACK`).
    ConsumerSendMsgBack {
        /// Consumer group.
        group: String,
        /// Where the failed message is in this broker's commit log.
        commit_log_offset: u64,
        /// Delay level of the retry: 0 lets the broker choose
        /// (`3 + reconsume times`), a negative level dead-letters it now.
        delay_level: i32,
        /// The group's max reconsume times.
        max_reconsume_times: u32,
    },
    /// Orderly consumer -> broker: lock (or renew) these queues of the
    /// group for this client; the answer lists the queues it holds now.
    LockBatchMq {
        /// Consumer group.
        group: String,
        /// The client asking.
        client_id: String,
        /// (topic, queue id) pairs on this broker.
        queues: Vec<(String, u32)>,
    },
    /// Orderly consumer -> broker: release these queues (rebalance, shutdown).
    UnlockBatchMq {
        /// Consumer group.
        group: String,
        /// The client releasing.
        client_id: String,
        /// (topic, queue id) pairs on this broker.
        queues: Vec<(String, u32)>,
    },
    /// Producer -> broker, every heartbeat period: this client is live in
    /// these producer groups, and may be asked to check back on their
    /// transactions over this connection.
    HeartbeatProducer {
        /// The client instance.
        client_id: String,
        /// Its producer groups.
        groups: Vec<String>,
    },
    /// Producer -> broker: the local transaction of a half message ended
    /// (RocketMQ's `END_TRANSACTION`), after its executor or a check-back.
    EndTransaction {
        /// The half's producer group.
        producer_group: String,
        /// Where the half is in this broker's commit log.
        commit_log_offset: u64,
        /// The half's unique id, checked against the stored half.
        msg_id: String,
        /// Commit, rollback, or unknown (ignored: the broker asks again).
        state: crate::model::TransactionState,
        /// Whether a check-back asked for this answer.
        from_check: bool,
    },
    /// Broker -> producer, over the producer's connection: what became of
    /// the local transaction of this half? The producer acknowledges at
    /// once and answers later with an [`Request::EndTransaction`].
    CheckTransactionState {
        /// The producer group asked.
        producer_group: String,
        /// The half, with its real topic and queue.
        half: MessageExt,
        /// Checks of this half before this one.
        check_times: u32,
    },
    /// Broker -> consumer, oneway: the members of `group` changed (one
    /// joined or left), so rebalance now rather than at the next period,
    /// as RocketMQ's `NOTIFY_CONSUMER_IDS_CHANGED`.
    NotifyConsumerIdsChanged {
        /// The consumer group whose members changed.
        group: String,
    },
    /// Slave -> master: the commit log from `from_offset` (this slave's
    /// end), waiting up to `wait_ms` for more; and this slave holds its
    /// log durably up to `durable_offset` (what sync replication waits for).
    ReplicaPull {
        /// The broker group; a master of another group refuses.
        broker_name: String,
        /// The slave's id in the group.
        broker_id: u64,
        /// The master term the slave follows (0 without a controller): a
        /// master of another term refuses the pull.
        epoch: u64,
        /// Where the slave's log ends.
        from_offset: u64,
        /// How far the slave's log is durable.
        durable_offset: u64,
        /// Most bytes wanted.
        max_bytes: u32,
        /// Longest the master holds the pull when it has nothing new.
        wait_ms: u64,
    },
    /// Slave -> master: the topics and committed consumer offsets to copy.
    ReplicaConfig {
        /// The broker group.
        broker_name: String,
    },
    /// Slave -> master, before it copies: the master's terms and log end,
    /// to find where the slave's log parts from the master's.
    GetEpochs {
        /// The broker group.
        broker_name: String,
    },
    /// Controller -> controller: one of openraft's messages, as JSON.
    Raft {
        /// Which message.
        rpc: RaftRpc,
        /// openraft's request, JSON encoded.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Broker -> controller, every second: this replica is alive, in this
    /// master term, with its log this long. Answered with its group's
    /// replica info; the controller leader elects a new master when the
    /// master's heartbeats stop.
    ControllerHeartbeat {
        /// The broker group.
        broker_name: String,
        /// This replica's id in the group.
        broker_id: u64,
        /// Where it serves clients.
        addr: String,
        /// The latest master term it knows of.
        epoch: u64,
        /// Where its commit log ends.
        max_offset: u64,
        /// Whether it takes writes now.
        serving: bool,
        /// The last term its epoch file records (0: none). A replica named
        /// master of a term it already recorded, and not serving, is a
        /// master that restarted: it may have lost an unsynced tail, so it
        /// does not resume the term and the controller elects again.
        last_term: u64,
    },
    /// Anyone -> controller: a group's master, epoch and sync-state set, as
    /// the controller leader knows them once it has confirmed it leads.
    GetReplicaInfo {
        /// The broker group.
        broker_name: String,
    },
    /// Master -> controller: replace the group's sync-state set. Refused
    /// unless the sender is the master of the current term and names the
    /// set's current epoch (a deposed master is fenced here).
    AlterSyncStateSet {
        /// The broker group.
        broker_name: String,
        /// The master asking.
        master_id: u64,
        /// The term it believes it masters.
        master_epoch: u64,
        /// The epoch of the set it is changing.
        sync_state_set_epoch: u64,
        /// The new set (it must hold the master).
        sync_state_set: Vec<u64>,
    },
    /// Anyone -> controller: every group's replica info and the Raft
    /// state of the controller asked.
    GetControllerState,
}

/// openraft's messages between controllers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftRpc {
    /// Log replication and leader heartbeats.
    AppendEntries,
    /// A candidate asking for a vote.
    Vote,
    /// A snapshot chunk.
    InstallSnapshot,
}

impl Request {
    /// A short name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Request::RegisterBroker { .. } => "RegisterBroker",
            Request::UnregisterBroker { .. } => "UnregisterBroker",
            Request::GetRoute { .. } => "GetRoute",
            Request::GetClusterInfo => "GetClusterInfo",
            Request::SendMessage { .. } => "SendMessage",
            Request::PullMessage { .. } => "PullMessage",
            Request::Heartbeat { .. } => "Heartbeat",
            Request::UnregisterClient { .. } => "UnregisterClient",
            Request::GetConsumerList { .. } => "GetConsumerList",
            Request::UpdateConsumerOffset { .. } => "UpdateConsumerOffset",
            Request::QueryConsumerOffset { .. } => "QueryConsumerOffset",
            Request::GetQueueOffsets { .. } => "GetQueueOffsets",
            Request::SearchOffsetByTime { .. } => "SearchOffsetByTime",
            Request::CreateTopic { .. } => "CreateTopic",
            Request::GetTopicList => "GetTopicList",
            Request::GetTopicStats { .. } => "GetTopicStats",
            Request::QueryMessageByKey { .. } => "QueryMessageByKey",
            Request::QueryMessageByUniqueId { .. } => "QueryMessageByUniqueId",
            Request::ViewMessage { .. } => "ViewMessage",
            Request::GetBrokerRuntimeInfo => "GetBrokerRuntimeInfo",
            Request::GetConsumeStats { .. } => "GetConsumeStats",
            Request::ConsumerSendMsgBack { .. } => "ConsumerSendMsgBack",
            Request::LockBatchMq { .. } => "LockBatchMq",
            Request::UnlockBatchMq { .. } => "UnlockBatchMq",
            Request::HeartbeatProducer { .. } => "HeartbeatProducer",
            Request::EndTransaction { .. } => "EndTransaction",
            Request::CheckTransactionState { .. } => "CheckTransactionState",
            Request::NotifyConsumerIdsChanged { .. } => "NotifyConsumerIdsChanged",
            Request::ReplicaPull { .. } => "ReplicaPull",
            Request::ReplicaConfig { .. } => "ReplicaConfig",
            Request::GetEpochs { .. } => "GetEpochs",
            Request::Raft { .. } => "Raft",
            Request::ControllerHeartbeat { .. } => "ControllerHeartbeat",
            Request::GetReplicaInfo { .. } => "GetReplicaInfo",
            Request::AlterSyncStateSet { .. } => "AlterSyncStateSet",
            Request::GetControllerState => "GetControllerState",
        }
    }
}

/// Response codes, after RocketMQ's `ResponseCode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseCode {
    /// Done.
    Success,
    /// The server failed (disk error, corrupt data).
    SystemError,
    /// Too many requests queued; try later or elsewhere.
    SystemBusy,
    /// The server does not handle this request (wrong role).
    RequestNotSupported,
    /// The frame's payload could not be decoded.
    BadRequest,
    /// The peer speaks another protocol version.
    UnsupportedVersion,
    /// No such topic and auto-creation is off.
    TopicNotExist,
    /// Bad message or name: too large, bad characters.
    MessageIllegal,
    /// The topic's permissions forbid this.
    NoPermission,
    /// Stored, but the fsync did not finish in time (SYNC_FLUSH).
    FlushDiskTimeout,
    /// Stored, but no slave took it in time (SYNC_MASTER).
    FlushSlaveTimeout,
    /// Stored, but no slave is available (SYNC_MASTER).
    SlaveNotAvailable,
    /// A query found nothing.
    QueryNotFound,
    /// The subscription expression is malformed.
    SubscriptionIllegal,
    /// This controller does not lead; the remark names the leader's
    /// address when it knows one.
    ControllerNotLeader,
    /// A deposed master, or a stale sync-state set, was refused.
    ControllerFenced,
    /// This replica is not its group's master now (a slave, or a master
    /// deposed or not yet serving its term): a write goes to the master
    /// the name servers report, so a client asks them again.
    NotMaster,
}

/// How a send ended, after RocketMQ's `SendStatus`. Only `SendOk` means
/// stored as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendStatus {
    /// Stored and, as configured, flushed and replicated.
    SendOk,
    /// Stored; the fsync did not finish within the timeout.
    FlushDiskTimeout,
    /// Stored; the slave did not confirm within the timeout.
    FlushSlaveTimeout,
    /// Stored; no slave to replicate to.
    SlaveNotAvailable,
}

/// Result of a stored message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResult {
    /// Durability reached.
    pub status: SendStatus,
    /// The unique id.
    pub msg_id: String,
    /// The offset id (broker + commit log offset).
    pub offset_msg_id: String,
    /// Broker that stored it.
    pub broker_name: String,
    /// Queue.
    pub queue_id: u32,
    /// Position in the queue.
    pub queue_offset: u64,
}

/// Messages returned by a pull.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullResult {
    /// What the read found.
    pub status: GetStatus,
    /// Offset to pull from next.
    pub next_offset: u64,
    /// Queue's smallest offset.
    pub min_offset: u64,
    /// Queue's next offset to be written.
    pub max_offset: u64,
    /// The messages.
    pub messages: Vec<MessageExt>,
}

/// What a broker is in its group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BrokerRole {
    /// Takes writes (RocketMQ's ASYNC_MASTER and SYNC_MASTER).
    #[default]
    Master,
    /// Copies its master's log and serves reads when the master is gone.
    Slave,
}

impl BrokerRole {
    /// RocketMQ's name for it.
    pub fn name(self) -> &'static str {
        match self {
            BrokerRole::Master => "MASTER",
            BrokerRole::Slave => "SLAVE",
        }
    }
}

/// One broker of a group, as a route lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaRoute {
    /// Its id in the group (RocketMQ: 0 for the master it started as).
    pub broker_id: u64,
    /// Where clients reach it.
    pub addr: String,
    /// Master or slave.
    pub role: BrokerRole,
    /// The master term it serves in.
    pub epoch: u64,
}

/// One broker group's part of a topic's route: every live broker of the
/// group by id, master and slaves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRoute {
    /// Broker (group) name.
    pub broker_name: String,
    /// Its live brokers, by id.
    pub replicas: Vec<ReplicaRoute>,
    /// Writable queues.
    pub write_queues: u32,
    /// Readable queues.
    pub read_queues: u32,
    /// Permission bits.
    pub perm: u8,
}

impl QueueRoute {
    /// The master to write to: of the brokers that say they are master, the
    /// one of the latest term (an old master that has not heard of its
    /// successor may still say so).
    pub fn master(&self) -> Option<&ReplicaRoute> {
        master_replica(&self.replicas)
    }

    /// Where to read: the master, or, while the group has none, the slave
    /// with the lowest id.
    pub fn read_replica(&self) -> Option<&ReplicaRoute> {
        read_replica(&self.replicas)
    }

    /// The address [`Self::read_replica`] names ("" for a group with no
    /// broker, which a name server never lists).
    pub fn read_addr(&self) -> &str {
        self.read_replica().map_or("", |r| r.addr.as_str())
    }
}

/// The master of a group's brokers: of those that say they are master, the
/// one of the latest term.
pub fn master_replica(replicas: &[ReplicaRoute]) -> Option<&ReplicaRoute> {
    replicas.iter().filter(|r| r.role == BrokerRole::Master).max_by_key(|r| (r.epoch, std::cmp::Reverse(r.broker_id)))
}

/// The broker of a group to read from: its master, else its lowest slave.
pub fn read_replica(replicas: &[ReplicaRoute]) -> Option<&ReplicaRoute> {
    master_replica(replicas).or_else(|| replicas.iter().filter(|r| r.role == BrokerRole::Slave).min_by_key(|r| r.broker_id))
}

/// Which brokers serve a topic.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRoute {
    /// One entry per broker group, sorted by broker name.
    pub queues: Vec<QueueRoute>,
}

/// A broker as the name server knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// Cluster.
    pub cluster: String,
    /// Broker name.
    pub broker_name: String,
    /// 0 for a master.
    pub broker_id: u64,
    /// Address.
    pub addr: String,
    /// Topics it serves.
    pub topics: u32,
    /// Name server time of its last registration (ms).
    pub last_update_ms: u64,
    /// Master or slave.
    pub role: BrokerRole,
    /// The master term it serves in.
    pub epoch: u64,
}

/// Readable range of one queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Queue id.
    pub queue_id: u32,
    /// Smallest offset.
    pub min_offset: u64,
    /// Next offset to be written.
    pub max_offset: u64,
}

/// A group's progress on one queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumeProgress {
    /// Queue id.
    pub queue_id: u32,
    /// Queue end.
    pub max_offset: u64,
    /// Committed offset, if any.
    pub consumer_offset: Option<u64>,
}

/// Broker figures for `mqadmin`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// Broker name.
    pub broker_name: String,
    /// Commit log end.
    pub write_offset: u64,
    /// Durable commit log end.
    pub flushed_offset: u64,
    /// Messages stored since start.
    pub put_count: u64,
    /// Messages returned by pulls since start.
    pub get_count: u64,
    /// "SYNC_FLUSH" or "ASYNC_FLUSH".
    pub flush_mode: String,
    /// Delayed messages (retries included) not yet moved to their topics.
    pub delayed_pending: u64,
    /// Half messages neither committed, rolled back nor moved aside, with
    /// a live producer to ask.
    pub halves_pending: u64,
    /// Open half messages whose producer group had no live producer when
    /// last checked: they wait for one to come back.
    pub halves_orphaned: u64,
    /// Timer messages not yet delivered.
    pub timers_pending: u64,
    /// Half messages moved aside after too many checks, since start.
    pub halves_moved_aside: u64,
    /// Commit log fsyncs since start: under SYNC_FLUSH, the sends a flush
    /// covers (group commit) is `put_count` over this.
    pub flush_count: u64,
}

/// What a response carries besides its code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ResponseBody {
    /// Nothing.
    None,
    /// A send's result.
    Send(SendResult),
    /// A pull's result.
    Pull(PullResult),
    /// A topic route.
    Route(TopicRoute),
    /// Every broker known to a name server.
    Cluster(Vec<BrokerInfo>),
    /// Client ids of a group, sorted.
    ConsumerList(Vec<String>),
    /// An offset, if one exists.
    Offset(Option<u64>),
    /// A queue's range.
    QueueOffsets(QueueStats),
    /// Messages found by a query.
    Messages(Vec<MessageExt>),
    /// Topics of a broker.
    Topics(Vec<TopicConfig>),
    /// Queue ranges of a topic.
    TopicStats(Vec<QueueStats>),
    /// Broker figures.
    Runtime(RuntimeInfo),
    /// A group's progress per queue.
    ConsumeStats(Vec<ConsumeProgress>),
    /// Queues a client holds the lock of: (topic, queue id).
    LockedQueues(Vec<(String, u32)>),
    /// Commit log bytes for a slave.
    Replica(ReplicaChunk),
    /// What a slave copies besides the log.
    ReplicaConfig(ReplicaConfig),
    /// A master's terms and log end.
    Epochs(EpochList),
    /// openraft's response, JSON encoded.
    Raft(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A group's replicas as the controller knows them.
    ReplicaInfo(ReplicaInfo),
    /// A controller's view of every group and of its Raft.
    ControllerState(ControllerView),
}

/// A log's master terms: (term, offset of its first write), oldest first,
/// and where the log ends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochList {
    /// (term, start offset).
    pub terms: Vec<(u64, u64)>,
    /// The commit log's end.
    pub end: u64,
}

/// A broker group as the controller knows it: its replicas, the master of
/// the current term and the sync-state set (the replicas that hold every
/// acknowledged write, and the only ones that may be elected).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaInfo {
    /// The broker group.
    pub broker_name: String,
    /// Replica id -> address, as each last registered.
    pub replicas: Vec<(u64, String)>,
    /// The master of the current term, if the group has one.
    pub master_id: Option<u64>,
    /// Its address.
    pub master_addr: Option<String>,
    /// The current master term (0 before the first election).
    pub master_epoch: u64,
    /// Replicas in sync with the master.
    pub sync_state_set: Vec<u64>,
    /// Changes of the set so far (a master names it to change the set).
    pub sync_state_set_epoch: u64,
}

/// What `GetControllerState` answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerView {
    /// The controller answering.
    pub controller_id: u64,
    /// The leader it knows of.
    pub leader_id: Option<u64>,
    /// Its Raft term.
    pub term: u64,
    /// Its last applied log index.
    pub applied_index: Option<u64>,
    /// Every group, by name.
    pub groups: Vec<ReplicaInfo>,
}

/// A master's topics and committed consumer offsets, for its slaves, and
/// its durable service progress (delay levels, timers, transaction check
/// counts) as the files it persisted, so a slave that takes over resumes
/// where its master got to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaConfig {
    /// Every topic the master serves.
    pub topics: Vec<TopicConfig>,
    /// (group, topic, queue id, next offset to consume).
    pub offsets: Vec<(String, String, u32, u64)>,
    /// (path, contents) of the master's progress files.
    pub progress: Vec<(String, Vec<u8>)>,
    /// The master's durable log end when it read them: a slave writes them
    /// only once it holds its log that far.
    pub progress_end: u64,
}

/// A piece of a master's commit log for a slave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaChunk {
    /// Where the bytes start in the master's log.
    pub offset: u64,
    /// Whole entries (or a corrupt run), to append as they are.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
    /// Where the master's log ends.
    pub master_end: u64,
    /// The master's terms: (term, start offset).
    pub epochs: Vec<(u64, u64)>,
    /// How far the master's log is confirmed (held by every replica the
    /// controller may elect): a slave in controller mode shows consumers
    /// no further, since past it its log may yet be cut.
    pub confirmed: u64,
}

/// A response: a code, a human-readable remark, and a body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Outcome.
    pub code: ResponseCode,
    /// Why, when not a success.
    pub remark: String,
    /// Payload.
    pub body: ResponseBody,
}

impl Response {
    /// A success with a body.
    pub fn ok(body: ResponseBody) -> Response {
        Response { code: ResponseCode::Success, remark: String::new(), body }
    }

    /// A failure with a reason.
    pub fn error(code: ResponseCode, remark: impl Into<String>) -> Response {
        Response { code, remark: remark.into(), body: ResponseBody::None }
    }
}

impl From<crate::error::Error> for Response {
    fn from(e: crate::error::Error) -> Response {
        match e {
            crate::error::Error::Rejected { code, message } => Response::error(code, message),
            other => Response::error(ResponseCode::SystemError, other.to_string()),
        }
    }
}

/// The house protocol's code for each store error.
impl From<crate::store::StoreError> for Response {
    fn from(e: crate::store::StoreError) -> Response {
        crate::error::Error::from(e).into()
    }
}
