//! What an application gives a push consumer: the listener that runs its
//! business logic, and the consumer's configuration.

use super::*;

/// What the business logic says about a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumeResult {
    /// Done; the offset may move past it.
    Success,
    /// Failed; deliver it again later: the consumer sends it back to the
    /// broker, which redelivers it through the group's retry topic after a
    /// delay that grows with each retry, and dead-letters it past the
    /// group's max reconsume times. An orderly consumer retries it in place.
    RetryLater,
}

/// Where a delivery came from.
#[derive(Clone, Debug)]
pub struct ConsumeContext {
    /// The queue the messages were pulled from (a retry topic's queue for
    /// retries, whose messages carry their original topic again).
    pub queue: MessageQueue,
    /// Times this consumer has retried these messages itself: in place
    /// (orderly), or after the broker could not take them back. 0 for a
    /// delivery from the broker.
    pub attempt: u32,
}

/// The business logic. A listener answers with a future, so business logic
/// can wait on its own database; plain closures answering at once work too
/// (the blanket impl below), and [`AsyncListener`] wraps an async closure.
pub trait MessageListener: Send + Sync + 'static {
    /// Consumes a batch (of `consume_batch` messages at most).
    fn consume(&self, msgs: Vec<MessageExt>, ctx: ConsumeContext) -> BoxFuture<'static, ConsumeResult>;
}

impl<F> MessageListener for F
where
    F: Fn(&[MessageExt], &ConsumeContext) -> ConsumeResult + Send + Sync + 'static,
{
    fn consume(&self, msgs: Vec<MessageExt>, ctx: ConsumeContext) -> BoxFuture<'static, ConsumeResult> {
        Box::pin(std::future::ready(self(&msgs, &ctx)))
    }
}

/// A listener from an async closure: `AsyncListener(|msgs, ctx| async move { ... })`.
pub struct AsyncListener<F>(pub F);

impl<F, Fut> MessageListener for AsyncListener<F>
where
    F: Fn(Vec<MessageExt>, ConsumeContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ConsumeResult> + Send + 'static,
{
    fn consume(&self, msgs: Vec<MessageExt>, ctx: ConsumeContext) -> BoxFuture<'static, ConsumeResult> {
        Box::pin((self.0)(msgs, ctx))
    }
}

/// Push consumer settings, after RocketMQ's `DefaultMQPushConsumer`.
#[derive(Clone, Debug)]
pub struct PushConsumerConfig {
    /// Consumer group.
    pub group: String,
    /// (topic, selector) pairs: a tag expression or an SQL92 condition.
    pub subscriptions: Vec<(String, Selector)>,
    /// Where a group with no committed offset starts.
    pub consume_from: ConsumeFrom,
    /// Messages per pull (32).
    pub pull_batch: u32,
    /// Messages per listener call (1).
    pub consume_batch: usize,
    /// Listener calls running at once (20).
    pub consume_concurrency: usize,
    /// Rebalance and heartbeat period (20 s).
    pub rebalance_interval_ms: u64,
    /// Offset commit period (5 s).
    pub offset_persist_interval_ms: u64,
    /// How long the broker may hold a pull (15 s).
    pub long_polling_ms: u64,
    /// Messages in flight per queue before pulling pauses (1000,
    /// `pullThresholdForQueue`).
    pub queue_cache_max: usize,
    /// Body bytes in flight per queue before pulling pauses (100 MiB,
    /// `pullThresholdSizeForQueue`).
    pub queue_cache_bytes_max: usize,
    /// Pause after a failed pull (1 s).
    pub pull_backoff_ms: u64,
    /// Pause before consuming a message again in place: an orderly retry,
    /// or a retry the broker could not take back (1 s).
    pub retry_delay_ms: u64,
    /// Times a message is consumed again before it goes to the group's
    /// dead-letter queue (16).
    pub max_reconsume_times: u32,
    /// A listener call running longer counts as failed (15 min).
    pub consume_timeout_ms: u64,
    /// Orderly: how long a queue lock is trusted, counted from before the
    /// request that took or renewed it (30 s); below the broker's lease
    /// (60 s), so this consumer stops before the lock can pass on.
    pub lock_lease_ms: u64,
    /// Orderly: how often the queue locks held are renewed (20 s).
    pub lock_interval_ms: u64,
    /// Consume each queue's messages one at a time, in queue order, retrying
    /// a failed one in place before moving on (for FIFO topics).
    pub orderly: bool,
    /// Broadcasting (RocketMQ's `MessageModel.BROADCASTING`): every
    /// consumer of the group takes every queue and keeps its own offsets,
    /// on its own side ([`PushConsumerConfig::local_offsets`]); nothing is
    /// committed to the brokers, and a failed message is not retried
    /// (there is no retry topic), as in RocketMQ. Off: clustering.
    pub broadcast: bool,
    /// Where a broadcasting consumer keeps its offsets, durably (RocketMQ's
    /// `LocalFileOffsetStore`, `~/.rocketmq_offsets/<client>/<group>/`): a
    /// consumer that restarts resumes from them. None: in memory only, so a
    /// restart starts again where `consume_from` says.
    pub local_offsets: LocalOffsets,
    /// Told whenever this consumer takes or gives up a queue, and of every
    /// commit the broker took (the simulation records orderly lock
    /// handovers and the group's offsets with it).
    pub on_queue: QueueHook,
}

/// A queue taken, given up or committed by a consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueChange {
    /// The consumer took the queue (an orderly one holding its lock) and
    /// resumes it at `offset`: the group's committed offset, or where
    /// `consume_from` says when the group has none.
    Taken {
        /// The first offset it pulls.
        offset: u64,
    },
    /// The consumer gave the queue up (and, orderly, its lock).
    Released,
    /// The broker answered the consumer's commit.
    Committed {
        /// The group's committed offset on the broker after the commit
        /// (the next one to consume): the consumer's own, or a higher one
        /// the broker had already taken and kept.
        offset: u64,
    },
}

/// The disk a broadcasting consumer keeps its offsets on; none by default.
#[derive(Clone, Default)]
pub struct LocalOffsets(pub Option<Arc<dyn crate::store::Disk>>);

impl std::fmt::Debug for LocalOffsets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "LocalOffsets(disk)" } else { "LocalOffsets(memory)" })
    }
}

/// A callback told of [`QueueChange`]s; none by default.
#[derive(Clone, Default)]
pub struct QueueHook(pub Option<Arc<dyn Fn(&MessageQueue, QueueChange) + Send + Sync>>);

impl std::fmt::Debug for QueueHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "QueueHook(set)" } else { "QueueHook(none)" })
    }
}

impl QueueHook {
    pub(super) fn tell(&self, mq: &MessageQueue, change: QueueChange) {
        if let Some(hook) = &self.0 {
            hook(mq, change);
        }
    }
}

impl PushConsumerConfig {
    /// Defaults for `group` subscribed to `topic` with a tag `expression`.
    pub fn new(group: impl Into<String>, topic: impl Into<String>, expression: impl Into<String>) -> PushConsumerConfig {
        PushConsumerConfig::with_selector(group, topic, Selector::tag(expression))
    }

    /// Defaults for `group` subscribed to `topic` with an SQL92 condition
    /// (RocketMQ's `MessageSelector.bySql`; the brokers need
    /// `enablePropertyFilter=true`).
    pub fn sql(group: impl Into<String>, topic: impl Into<String>, condition: impl Into<String>) -> PushConsumerConfig {
        PushConsumerConfig::with_selector(group, topic, Selector::sql(condition))
    }

    /// Defaults for `group` subscribed to `topic` with `selector`.
    pub fn with_selector(group: impl Into<String>, topic: impl Into<String>, selector: Selector) -> PushConsumerConfig {
        PushConsumerConfig {
            group: group.into(),
            subscriptions: vec![(topic.into(), selector)],
            consume_from: ConsumeFrom::LastOffset,
            pull_batch: 32,
            consume_batch: 1,
            consume_concurrency: 20,
            rebalance_interval_ms: 20_000,
            offset_persist_interval_ms: 5_000,
            long_polling_ms: 15_000,
            queue_cache_max: 1000,
            queue_cache_bytes_max: 100 * 1024 * 1024,
            pull_backoff_ms: 1_000,
            retry_delay_ms: 1_000,
            max_reconsume_times: MAX_RECONSUME_TIMES_DEFAULT,
            consume_timeout_ms: 15 * 60_000,
            lock_lease_ms: 30_000,
            lock_interval_ms: 20_000,
            orderly: false,
            broadcast: false,
            local_offsets: LocalOffsets::default(),
            on_queue: QueueHook::default(),
        }
    }
}
