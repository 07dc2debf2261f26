//! The house protocol's payloads: a [`Request`] wraps one command of
//! [`crate::command`], a [`Response`] carries a code, a remark and one
//! reply. New variants go at the end of each enum so older peers still
//! decode the ones they know; a variant holding a command struct encodes
//! as the struct's fields would inline, so the wire is the one the
//! variants with named fields had.

use crate::command::*;
use crate::model::{MessageExt, TopicConfig};
use serde::{Deserialize, Serialize};

macro_rules! requests {
    ($($(#[doc = $doc:literal])* $variant:ident($command:ty),)*) => {
        /// A request, to a name server, a broker, a controller, or a client
        /// (the broker's calls back). Each names its command.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub enum Request {
            $($(#[doc = $doc])* $variant($command),)*
        }

        impl Request {
            /// Every request's name, in the order of [`Request::index`].
            pub const NAMES: &'static [&'static str] = &[$(stringify!($variant),)*];

            /// A short name for logs and errors.
            pub fn name(&self) -> &'static str {
                Self::NAMES[self.index()]
            }

            /// The request's place in [`Request::NAMES`].
            pub fn index(&self) -> usize {
                #[allow(non_camel_case_types, clippy::enum_variant_names)]
                enum Index { $($variant,)* }
                match self {
                    $(Request::$variant(_) => Index::$variant as usize,)*
                }
            }
        }

        $(impl From<$command> for Request {
            fn from(command: $command) -> Request {
                Request::$variant(command)
            }
        })*
    };
}

requests! {
    /// Broker -> name server, every 30 s.
    RegisterBroker(RegisterBroker),
    /// Broker -> name server at shutdown.
    UnregisterBroker(UnregisterBroker),
    /// Client -> name server: a topic's route.
    GetRoute(GetRoute),
    /// Admin -> name server: every broker known.
    GetClusterInfo(GetClusterInfo),
    /// Producer -> broker: store a message.
    SendMessage(SendMessage),
    /// Consumer -> broker: read a queue.
    PullMessage(PullMessage),
    /// Client -> broker: liveness and subscriptions.
    Heartbeat(Heartbeat),
    /// Client -> broker: leave a group.
    UnregisterClient(UnregisterClient),
    /// Consumer -> broker: a group's live members.
    GetConsumerList(GetConsumerList),
    /// Consumer -> broker: commit an offset.
    UpdateConsumerOffset(UpdateConsumerOffset),
    /// Consumer -> broker: the committed offset.
    QueryConsumerOffset(QueryConsumerOffset),
    /// A queue's readable range.
    GetQueueOffsets(GetQueueOffsets),
    /// A queue's first offset at or after a time.
    SearchOffsetByTime(SearchOffsetByTime),
    /// Admin -> broker: create or update a topic.
    CreateTopic(CreateTopic),
    /// Admin -> broker: every topic.
    GetTopicList(GetTopicList),
    /// Admin -> broker: a topic's queue ranges.
    GetTopicStats(GetTopicStats),
    /// Messages carrying a business key.
    QueryMessageByKey(QueryMessageByKey),
    /// Every stored copy of a unique id.
    QueryMessageByUniqueId(QueryMessageByUniqueId),
    /// The message at a commit log offset.
    ViewMessage(ViewMessage),
    /// Admin -> broker: store and traffic figures.
    GetBrokerRuntimeInfo(GetBrokerRuntimeInfo),
    /// A group's progress on a topic.
    GetConsumeStats(GetConsumeStats),
    /// Consumer -> broker: a failed message comes back.
    ConsumerSendMsgBack(ConsumerSendMsgBack),
    /// Orderly consumer -> broker: lock queues.
    LockBatchMq(LockBatchMq),
    /// Orderly consumer -> broker: release queues.
    UnlockBatchMq(UnlockBatchMq),
    /// Producer -> broker: live in these producer groups.
    HeartbeatProducer(HeartbeatProducer),
    /// Producer -> broker: a half's transaction ended.
    EndTransaction(EndTransaction),
    /// Broker -> producer: what became of a half's transaction?
    CheckTransactionState(CheckTransactionState),
    /// Broker -> consumer: the group's members changed.
    NotifyConsumerIdsChanged(NotifyConsumerIdsChanged),
    /// Slave -> master: the log from an offset.
    ReplicaPull(ReplicaPull),
    /// Slave -> master: topics, offsets and progress files.
    GetReplicaConfig(GetReplicaConfig),
    /// Slave -> master: the master's terms.
    GetEpochs(GetEpochs),
    /// Controller -> controller: openraft.
    Raft(Raft),
    /// Broker -> controller: alive, in this term.
    ControllerHeartbeat(ControllerHeartbeat),
    /// Anyone -> controller: a group's replica info.
    GetReplicaInfo(GetReplicaInfo),
    /// Master -> controller: a new sync-state set.
    AlterSyncStateSet(AlterSyncStateSet),
    /// Anyone -> controller: every group and the Raft state.
    GetControllerState(GetControllerState),
    /// Admin -> broker: reset a group's offsets on a topic.
    ResetOffset(ResetOffset),
    /// Broker -> consumer: a group's offsets were reset.
    ResetOffsetNotice(ResetOffsetNotice),
    /// Admin -> broker: its settings.
    GetBrokerConfig(GetBrokerConfig),
    /// Admin -> broker: delete a topic.
    DeleteTopic(DeleteTopic),
    /// POP consumer -> broker: receive messages.
    PopMessage(PopMessage),
    /// POP consumer -> broker: a received message is done.
    AckMessage(AckMessage),
    /// POP consumer -> broker: keep a received message invisible longer.
    ChangeInvisibleTime(ChangeInvisibleTime),
    /// Producer -> broker: store a batch of messages in one queue.
    SendBatch(SendBatch),
    /// Broker -> requesting client: a reply to its request.
    PushReplyMessage(PushReplyMessage),
    /// Admin -> broker: create or update a subscription group.
    UpdateSubscriptionGroup(UpdateSubscriptionGroup),
    /// Admin -> broker: delete a subscription group.
    DeleteSubscriptionGroup(DeleteSubscriptionGroup),
    /// Admin -> broker: its subscription groups.
    GetSubscriptionGroups(GetSubscriptionGroups),
    /// Admin -> broker: messages of a queue from an offset.
    QueryMessageByQueueOffset(QueryMessageByQueueOffset),
    /// Admin -> broker: a producer group's live producers.
    GetProducerConnections(GetProducerConnections),
    /// Admin -> broker, and broker -> consumer: how a group's consumers run.
    GetConsumerRunningInfo(GetConsumerRunningInfo),
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
    /// The group's offsets on the queue were reset since the consumer took
    /// it.
    ConsumerOffsetReset,
    /// A POP receipt handle names an attempt that is no longer current.
    InvalidReceiptHandle,
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
    /// A committed offset and the queue's reset generation.
    Committed(CommittedOffset),
    /// Where a reset put each queue.
    Resets(Vec<QueueReset>),
    /// A broker's settings, as `broker.conf` keys and values.
    Properties(Vec<(String, String)>),
    /// What a POP receive returned.
    Popped(PopResult),
    /// A new receipt handle.
    Handle(ReceiptHandle),
    /// A batch's results, one per message.
    SendBatch(Vec<SendResult>),
    /// Subscription groups.
    SubscriptionGroups(Vec<crate::model::SubscriptionGroup>),
    /// Live producers of a group.
    ProducerConnections(Vec<ProducerConnection>),
    /// How consumers run.
    RunningInfo(Vec<ConsumerRunningInfo>),
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

    /// A handler's outcome: its reply, or its refusal with the code for it.
    pub fn answer<R: Reply>(outcome: Outcome<R>) -> Response {
        match outcome {
            Ok(reply) => Response::ok(reply.into_body()),
            Err(refusal) => refusal.into(),
        }
    }

    /// The body of a success, or the refusal the response carries.
    pub fn into_body(self) -> crate::Result<ResponseBody> {
        match self.code.refused() {
            None => Ok(self.body),
            Some(kind) => Err(crate::Error::Refused(Refusal::new(kind, self.remark))),
        }
    }

    /// The reply of a success, typed, or the refusal the response carries;
    /// a success with another body is a protocol error.
    pub fn into_reply<R: Reply>(self, command: &str) -> crate::Result<R> {
        R::from_body(self.into_body()?).ok_or_else(|| crate::Error::Protocol(format!("the answer to {command} carried another body")))
    }
}

impl From<Refusal> for Response {
    fn from(refusal: Refusal) -> Response {
        Response::error(ResponseCode::from(refusal.kind), refusal.reason)
    }
}

impl From<Refused> for ResponseCode {
    fn from(kind: Refused) -> ResponseCode {
        match kind {
            Refused::System => ResponseCode::SystemError,
            Refused::Busy => ResponseCode::SystemBusy,
            Refused::NotSupported => ResponseCode::RequestNotSupported,
            Refused::BadRequest => ResponseCode::BadRequest,
            Refused::TopicNotExist => ResponseCode::TopicNotExist,
            Refused::Illegal => ResponseCode::MessageIllegal,
            Refused::NoPermission => ResponseCode::NoPermission,
            Refused::NotDurable => ResponseCode::FlushDiskTimeout,
            Refused::NotFound => ResponseCode::QueryNotFound,
            Refused::SubscriptionIllegal => ResponseCode::SubscriptionIllegal,
            Refused::ControllerNotLeader => ResponseCode::ControllerNotLeader,
            Refused::ControllerFenced => ResponseCode::ControllerFenced,
            Refused::NotMaster => ResponseCode::NotMaster,
            Refused::StaleReset => ResponseCode::ConsumerOffsetReset,
            Refused::HandleExpired => ResponseCode::InvalidReceiptHandle,
        }
    }
}

impl ResponseCode {
    /// What a refusal with this code means to a caller (`None` for a
    /// success). A send's durability codes come with a result and mean
    /// "stored, but not durable as configured".
    pub fn refused(self) -> Option<Refused> {
        Some(match self {
            ResponseCode::Success => return None,
            ResponseCode::SystemError => Refused::System,
            ResponseCode::SystemBusy => Refused::Busy,
            ResponseCode::RequestNotSupported => Refused::NotSupported,
            ResponseCode::BadRequest | ResponseCode::UnsupportedVersion => Refused::BadRequest,
            ResponseCode::TopicNotExist => Refused::TopicNotExist,
            ResponseCode::MessageIllegal => Refused::Illegal,
            ResponseCode::NoPermission => Refused::NoPermission,
            ResponseCode::FlushDiskTimeout | ResponseCode::FlushSlaveTimeout | ResponseCode::SlaveNotAvailable => Refused::NotDurable,
            ResponseCode::QueryNotFound => Refused::NotFound,
            ResponseCode::SubscriptionIllegal => Refused::SubscriptionIllegal,
            ResponseCode::ControllerNotLeader => Refused::ControllerNotLeader,
            ResponseCode::ControllerFenced => Refused::ControllerFenced,
            ResponseCode::NotMaster => Refused::NotMaster,
            ResponseCode::ConsumerOffsetReset => Refused::StaleReset,
            ResponseCode::InvalidReceiptHandle => Refused::HandleExpired,
        })
    }
}

/// A reply's place in a [`ResponseBody`], both ways.
pub trait Reply: Sized {
    /// The body that carries it.
    fn into_body(self) -> ResponseBody;
    /// It, if `body` carries one.
    fn from_body(body: ResponseBody) -> Option<Self>;
}

/// A command's reply type on the house protocol, so a caller gets the
/// reply it asked for, typed, or an error saying the body was another.
pub trait Call: Into<Request> {
    /// What a success carries.
    type Reply: Reply;
}

macro_rules! replies {
    ($($reply:ty => $variant:ident,)*) => {
        $(impl Reply for $reply {
            fn into_body(self) -> ResponseBody {
                ResponseBody::$variant(self)
            }
            fn from_body(body: ResponseBody) -> Option<Self> {
                match body {
                    ResponseBody::$variant(reply) => Some(reply),
                    _ => None,
                }
            }
        })*
    };
}

replies! {
    SendResult => Send,
    PullResult => Pull,
    TopicRoute => Route,
    Vec<BrokerInfo> => Cluster,
    Vec<String> => ConsumerList,
    Option<u64> => Offset,
    QueueStats => QueueOffsets,
    Vec<MessageExt> => Messages,
    Vec<TopicConfig> => Topics,
    Vec<QueueStats> => TopicStats,
    RuntimeInfo => Runtime,
    Vec<ConsumeProgress> => ConsumeStats,
    Vec<(String, u32)> => LockedQueues,
    ReplicaChunk => Replica,
    ReplicaConfig => ReplicaConfig,
    EpochList => Epochs,
    Vec<u8> => Raft,
    ReplicaInfo => ReplicaInfo,
    ControllerView => ControllerState,
    CommittedOffset => Committed,
    Vec<QueueReset> => Resets,
    Vec<(String, String)> => Properties,
    PopResult => Popped,
    ReceiptHandle => Handle,
    Vec<SendResult> => SendBatch,
    Vec<crate::model::SubscriptionGroup> => SubscriptionGroups,
    Vec<ProducerConnection> => ProducerConnections,
    Vec<ConsumerRunningInfo> => RunningInfo,
}

impl Reply for () {
    fn into_body(self) -> ResponseBody {
        ResponseBody::None
    }
    fn from_body(body: ResponseBody) -> Option<()> {
        matches!(body, ResponseBody::None).then_some(())
    }
}

macro_rules! calls {
    ($($command:ty => $reply:ty,)*) => {
        $(impl Call for $command {
            type Reply = $reply;
        })*
    };
}

calls! {
    RegisterBroker => (),
    UnregisterBroker => (),
    GetRoute => TopicRoute,
    SendMessage => SendResult,
    PullMessage => PullResult,
    Heartbeat => (),
    UnregisterClient => (),
    GetConsumerList => Vec<String>,
    UpdateConsumerOffset => CommittedOffset,
    QueryConsumerOffset => CommittedOffset,
    GetQueueOffsets => QueueStats,
    SearchOffsetByTime => Option<u64>,
    CreateTopic => (),
    GetTopicStats => Vec<QueueStats>,
    QueryMessageByKey => Vec<MessageExt>,
    QueryMessageByUniqueId => Vec<MessageExt>,
    ViewMessage => Vec<MessageExt>,
    GetConsumeStats => Vec<ConsumeProgress>,
    ConsumerSendMsgBack => (),
    LockBatchMq => Vec<(String, u32)>,
    UnlockBatchMq => (),
    HeartbeatProducer => (),
    EndTransaction => (),
    CheckTransactionState => (),
    NotifyConsumerIdsChanged => (),
    ReplicaPull => ReplicaChunk,
    GetReplicaConfig => ReplicaConfig,
    GetEpochs => EpochList,
    Raft => Vec<u8>,
    ControllerHeartbeat => ReplicaInfo,
    GetReplicaInfo => ReplicaInfo,
    AlterSyncStateSet => ReplicaInfo,
    GetClusterInfo => Vec<BrokerInfo>,
    GetTopicList => Vec<TopicConfig>,
    GetBrokerRuntimeInfo => RuntimeInfo,
    GetControllerState => ControllerView,
    ResetOffset => Vec<QueueReset>,
    ResetOffsetNotice => (),
    GetBrokerConfig => Vec<(String, String)>,
    DeleteTopic => (),
    PopMessage => PopResult,
    AckMessage => (),
    ChangeInvisibleTime => ReceiptHandle,
    SendBatch => Vec<SendResult>,
    PushReplyMessage => (),
    UpdateSubscriptionGroup => (),
    DeleteSubscriptionGroup => (),
    GetSubscriptionGroups => Vec<crate::model::SubscriptionGroup>,
    QueryMessageByQueueOffset => Vec<MessageExt>,
    GetProducerConnections => Vec<ProducerConnection>,
    GetConsumerRunningInfo => Vec<ConsumerRunningInfo>,
}
