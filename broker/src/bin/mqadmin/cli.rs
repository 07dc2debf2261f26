//! The command line: every subcommand and its options.

use clap::{Parser, Subcommand, ValueEnum};
use broker::model::{TransactionState, PERM_READ, PERM_WRITE};

/// Administer a RocketMQ-style cluster: topics, sends, consumption, queries, status.
#[derive(Parser, Debug)]
#[command(name = "mqadmin", version)]
pub(crate) struct Cli {
    /// Name servers, `a:9876;b:9876`.
    #[arg(short = 'n', long, env = "NAMESRV_ADDR", default_value = "127.0.0.1:9876", global = true)]
    pub(crate) namesrv: String,
    /// Timeout of each request (ms).
    #[arg(long, default_value_t = 3_000, global = true)]
    pub(crate) timeout_ms: u64,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Where a new consumer group starts.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum StartFrom {
    /// The oldest retained message.
    First,
    /// Only messages sent from now on.
    Last,
}

/// Where a consumer reads and how long it waits.
#[derive(clap::Args, Debug)]
pub(crate) struct SourceArgs {
    /// Topic name.
    #[arg(short = 't', long)]
    pub(crate) topic: String,
    /// Consumer group.
    #[arg(short = 'g', long)]
    pub(crate) group: String,
    /// Tag expression: `*` or `TagA || TagB`.
    #[arg(short = 's', long, default_value = "*")]
    pub(crate) subscription: String,
    /// Select by an SQL92 condition over the message's properties instead
    /// of by tag (`env = 'gray' AND region IN ('hz', 'sh')`); the brokers
    /// need `enablePropertyFilter=true`.
    #[arg(long, conflicts_with = "subscription")]
    pub(crate) sql: Option<String>,
    /// Where a group with no committed offset starts.
    #[arg(long, value_enum, default_value_t = StartFrom::First)]
    pub(crate) from: StartFrom,
    /// Stop after this many messages (exit 1 if fewer came in time).
    #[arg(short = 'c', long)]
    pub(crate) count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10)]
    pub(crate) wait_s: u64,
}

/// What `consume` does.
#[derive(clap::Args, Debug)]
pub(crate) struct ConsumeArgs {
    /// What to consume and for how long.
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    /// Consume orderly: lock each queue on its broker and take its
    /// messages one at a time, in queue order.
    #[arg(long)]
    pub(crate) orderly: bool,
    /// Orderly: how long a queue lock is trusted (below the broker's
    /// `rebalanceLockMaxLiveTime`).
    #[arg(long, default_value_t = 30_000)]
    pub(crate) lock_lease_ms: u64,
    /// Orderly: how often queue locks are renewed.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) lock_interval_ms: u64,
    /// How often the group is rebalanced.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) rebalance_interval_ms: u64,
    /// Broadcasting: this consumer takes every message of the topic, from
    /// offsets it keeps itself (under `--offsets-dir`), not the group's.
    #[arg(long, conflicts_with = "orderly")]
    pub(crate) broadcast: bool,
    /// Where a broadcasting consumer keeps its offsets (default
    /// `~/.rocketmq_offsets/mqadmin`).
    #[arg(long, requires = "broadcast")]
    pub(crate) offsets_dir: Option<std::path::PathBuf>,
    /// Answer every request consumed (a message `mqadmin request` sent)
    /// with this body.
    #[arg(long)]
    pub(crate) reply_with: Option<String>,
}

/// What `receive` does.
#[derive(clap::Args, Debug)]
pub(crate) struct ReceiveArgs {
    /// What to receive and for how long.
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    /// How long each received message stays invisible to the group.
    #[arg(long, default_value_t = 30)]
    pub(crate) invisible_s: u64,
    /// Leave what was received unacknowledged: it comes back once its
    /// invisible time is over.
    #[arg(long)]
    pub(crate) no_ack: bool,
    /// FIFO: one message group's messages in order, a batch at a time.
    #[arg(long)]
    pub(crate) fifo: bool,
    /// Receives after which an unacknowledged message is dead-lettered.
    #[arg(long, default_value_t = 17)]
    pub(crate) max_attempts: u32,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Create or update a topic on every master broker, or on one.
    #[command(alias = "updateTopic")]
    UpdateTopic {
        /// Topic name.
        #[arg(short = 't', long)]
        topic: String,
        /// Read queues per broker.
        #[arg(short = 'r', long, default_value_t = 8)]
        read_queues: u32,
        /// Write queues per broker.
        #[arg(short = 'w', long, default_value_t = 8)]
        write_queues: u32,
        /// Permission bits: 2 write, 4 read, 6 both.
        #[arg(short = 'p', long, default_value_t = PERM_READ | PERM_WRITE)]
        perm: u8,
        /// Only this broker (by name).
        #[arg(short = 'b', long)]
        broker: Option<String>,
        /// Mark the topic ordered (FIFO).
        #[arg(short = 'o', long)]
        order: bool,
    },
    /// List every topic of every broker.
    #[command(alias = "topicList")]
    TopicList,
    /// Per-queue offsets of a topic.
    #[command(alias = "topicStatus")]
    TopicStatus {
        /// Topic name.
        #[arg(short = 't', long)]
        topic: String,
    },
    /// Every broker, with its store and traffic figures.
    #[command(alias = "clusterList")]
    ClusterList,
    /// Each broker group as the controllers know it: master, term (epoch),
    /// sync-state set; and each controller's Raft state.
    #[command(alias = "getSyncStateSet")]
    SyncState {
        /// Controllers, `a:9878;b:9878;c:9878`.
        #[arg(long)]
        controllers: String,
    },
    /// Send messages and print each send result.
    #[command(alias = "sendMessage")]
    Send {
        /// Topic name.
        #[arg(short = 't', long)]
        topic: String,
        /// Message body.
        #[arg(short = 'p', long)]
        body: String,
        /// Tag.
        #[arg(long)]
        tags: Option<String>,
        /// Business keys, comma-separated.
        #[arg(short = 'k', long, value_delimiter = ',')]
        keys: Vec<String>,
        /// How many copies to send.
        #[arg(short = 'c', long, default_value_t = 1)]
        count: u64,
        /// Delay level (1 is the broker's first `messageDelayLevel`; 0 none).
        #[arg(short = 'd', long, default_value_t = 0)]
        delay_level: u32,
        /// Timer: deliver at this time, ms since the epoch on the broker's
        /// clock (at most `timerMaxDelaySec` ahead).
        #[arg(long, conflicts_with_all = ["timer_delay_ms", "delay_level"])]
        deliver_at_ms: Option<u64>,
        /// Timer: deliver this many ms after the broker stores it.
        #[arg(long, conflicts_with = "delay_level")]
        timer_delay_ms: Option<u64>,
        /// A user property, `name=value` (repeat for more): what SQL92
        /// filters select on.
        #[arg(long = "property", value_parser = parse_property)]
        properties: Vec<(String, String)>,
        /// Send the copies in batches of this many, one request each (one
        /// queue; plain messages only).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=32))]
        batch: u64,
    },
    /// Send transactional messages (a half, the local transaction, its end),
    /// and answer the broker's check-backs for the producer group.
    #[command(alias = "sendTransactionMessage")]
    Transaction(TransactionArgs),
    /// Consume with a push consumer and print each message as it is consumed.
    #[command(alias = "consumeMessage")]
    Consume(ConsumeArgs),
    /// Create or update a subscription group on every master (or one):
    /// durable broker state, copied to slaves.
    #[command(alias = "updateSubGroup")]
    UpdateSubGroup {
        /// Consumer group.
        #[arg(short = 'g', long)]
        group: String,
        /// Whether the group may consume (`-e false` stops it).
        #[arg(short = 'e', long, default_value_t = true, action = clap::ArgAction::Set)]
        consume_enable: bool,
        /// Whether the group may consume by broadcasting.
        #[arg(short = 'd', long, default_value_t = true, action = clap::ArgAction::Set)]
        consume_broadcast_enable: bool,
        /// Times a message is consumed again before it is dead-lettered.
        #[arg(short = 'r', long, default_value_t = 16)]
        retry_max_times: u32,
        /// Whether the group consumes orderly.
        #[arg(short = 'o', long, default_value_t = false, action = clap::ArgAction::Set)]
        consume_message_orderly: bool,
        /// Only this broker group.
        #[arg(short = 'b', long)]
        broker: Option<String>,
    },
    /// Delete a subscription group: the group takes the defaults again.
    #[command(alias = "deleteSubGroup")]
    DeleteSubGroup {
        /// Consumer group.
        #[arg(short = 'g', long)]
        group: String,
    },
    /// Every master's subscription groups.
    #[command(alias = "subGroupList")]
    SubGroupList,
    /// Send a request and wait for its reply (request-reply), which a
    /// consumer of the topic sends (`mqadmin consume --reply-with`).
    Request {
        /// Topic name.
        #[arg(short = 't', long)]
        topic: String,
        /// Message body.
        #[arg(short = 'p', long)]
        body: String,
        /// How long to wait for the reply.
        #[arg(long, default_value_t = 10)]
        timeout_s: u64,
    },
    /// Receive with a simple consumer (POP), print each message with its
    /// attempt and receipt handle, and acknowledge it.
    Receive(ReceiveArgs),
    /// Messages of a topic with a business key.
    #[command(alias = "queryMsgByKey")]
    QueryByKey {
        /// Topic name.
        #[arg(short = 't', long)]
        topic: String,
        /// Business key.
        #[arg(short = 'k', long)]
        key: String,
        /// Only messages stored at or after this time (as `resetOffsetByTime -s` takes it).
        #[arg(short = 'b', long, value_parser = parse_reset_time)]
        begin: Option<u64>,
        /// Only messages stored at or before this time.
        #[arg(short = 'e', long, value_parser = parse_reset_time)]
        end: Option<u64>,
    },
    /// The messages of one queue from a queue offset on, as stored.
    #[command(alias = "queryMsgByOffset")]
    QueryByOffset {
        /// Topic name.
        #[arg(short = 't', long)]
        topic: String,
        /// Broker (group) name.
        #[arg(short = 'b', long)]
        broker_name: String,
        /// Queue id.
        #[arg(short = 'i', long)]
        queue_id: u32,
        /// Queue offset.
        #[arg(short = 'o', long)]
        offset: u64,
        /// Messages to show from there (at most 32).
        #[arg(short = 'c', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=32))]
        count: u32,
    },
    /// The messages of a topic stored in a time range, queue by queue.
    #[command(alias = "printMsg")]
    PrintMsg {
        /// Topic name.
        #[arg(short = 't', long)]
        topic: String,
        /// From this time (default: the first retained message).
        #[arg(short = 'b', long, value_parser = parse_reset_time)]
        begin: Option<u64>,
        /// Up to this time, exclusive (default: now).
        #[arg(short = 'e', long, value_parser = parse_reset_time)]
        end: Option<u64>,
        /// Messages at most.
        #[arg(long, default_value_t = 1_000)]
        max: usize,
    },
    /// A message by unique id or offset id, in full.
    #[command(alias = "queryMsgById")]
    QueryById {
        /// Topic name.
        #[arg(short = 't', long)]
        topic: String,
        /// Unique id (`UNIQ_KEY`) or offset id (`broker@hex`).
        #[arg(short = 'i', long)]
        id: String,
    },
    /// The messages in a consumer group's dead-letter queue.
    #[command(alias = "dlqList")]
    DlqList {
        /// Consumer group.
        #[arg(short = 'g', long)]
        group: String,
    },
    /// Send dead letters of a group back to their original topics, keeping
    /// id, business keys, tag and properties: one (by id or key) or all.
    #[command(alias = "resendDlq")]
    DlqResend {
        /// Consumer group.
        #[arg(short = 'g', long)]
        group: String,
        /// Only the dead letter with this unique id or business key.
        #[arg(short = 'i', long, conflicts_with = "all", required_unless_present = "all")]
        id: Option<String>,
        /// Every dead letter of the group.
        #[arg(short = 'a', long)]
        all: bool,
    },
    /// Move a group's offsets on a topic to the first message stored at or
    /// after a time, back or forward, with its consumers running: they take
    /// the queues again from there.
    #[command(alias = "resetOffsetByTime")]
    ResetOffsetByTime {
        /// Consumer group.
        #[arg(short = 'g', long)]
        group: String,
        /// Topic name.
        #[arg(short = 't', long)]
        topic: String,
        /// When: `now`, milliseconds since the epoch, RFC 3339
        /// (`2026-12-07T10:00:00Z`), or RocketMQ's `yyyy-MM-dd#HH:mm:ss:SSS`
        /// (read as UTC).
        #[arg(short = 's', long, value_parser = parse_reset_time)]
        timestamp: u64,
    },
    /// Move a group's offsets on a topic to the queues' ends: its backlog
    /// is skipped, with its consumers running.
    #[command(alias = "skipAccumulatedMessage")]
    SkipAccumulatedMessage {
        /// Consumer group.
        #[arg(short = 'g', long)]
        group: String,
        /// Topic name.
        #[arg(short = 't', long)]
        topic: String,
    },
    /// A topic's route: the broker groups serving it, their replicas
    /// (id, role, term, address) and queue counts.
    #[command(alias = "topicRoute")]
    TopicRoute {
        /// Topic name.
        #[arg(short = 't', long)]
        topic: String,
    },
    /// A broker's store and traffic figures.
    #[command(alias = "brokerStatus")]
    BrokerStatus {
        /// The broker's address (`ip:port`).
        #[arg(short = 'b', long)]
        broker_addr: String,
    },
    /// Delete a topic on every master serving it: no longer served, routed
    /// or written (its stored messages stay until retention).
    #[command(alias = "deleteTopic")]
    DeleteTopic {
        /// Topic name.
        #[arg(short = 't', long)]
        topic: String,
    },
    /// A broker's settings, as `broker.conf` lines (by RocketMQ's names).
    #[command(alias = "getBrokerConfig")]
    BrokerConfig {
        /// The broker's address (`ip:port`).
        #[arg(short = 'b', long)]
        broker_addr: String,
    },
    /// How each member of a consumer group runs: its subscriptions and,
    /// per queue it holds, what it pulled, cached and committed.
    #[command(alias = "consumerStatus")]
    ConsumerStatus {
        /// Consumer group.
        #[arg(short = 'g', long)]
        group: String,
        /// Only this member (its client id).
        #[arg(short = 'i', long)]
        client_id: Option<String>,
    },
    /// The live producers of a producer group, by broker.
    #[command(alias = "producerConnection")]
    ProducerConnection {
        /// Producer group.
        #[arg(short = 'g', long)]
        group: String,
    },
    /// The live members of a consumer group, by broker.
    #[command(alias = "consumerConnection")]
    ConsumerConnection {
        /// Consumer group.
        #[arg(short = 'g', long)]
        group: String,
    },
    /// A group's committed offsets against each queue's end.
    #[command(alias = "consumerProgress")]
    ConsumerProgress {
        /// Consumer group.
        #[arg(short = 'g', long)]
        group: String,
        /// Topic name.
        #[arg(short = 't', long)]
        topic: String,
    },
}

/// A local transaction's state on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum TxAnswer {
    Commit,
    Rollback,
    Unknown,
}

impl From<TxAnswer> for TransactionState {
    fn from(a: TxAnswer) -> TransactionState {
        match a {
            TxAnswer::Commit => TransactionState::Commit,
            TxAnswer::Rollback => TransactionState::Rollback,
            TxAnswer::Unknown => TransactionState::Unknown,
        }
    }
}

#[derive(clap::Args, Debug)]
pub(crate) struct TransactionArgs {
    /// Producer group: the broker checks back with any live producer of it.
    #[arg(short = 'g', long)]
    pub(crate) group: String,
    /// Topic name (needed when sending).
    #[arg(short = 't', long, default_value = "")]
    pub(crate) topic: String,
    /// Message body.
    #[arg(short = 'p', long, default_value = "")]
    pub(crate) body: String,
    /// Business keys, comma-separated.
    #[arg(short = 'k', long, value_delimiter = ',')]
    pub(crate) keys: Vec<String>,
    /// Messages to send; 0 only answers check-backs.
    #[arg(short = 'c', long, default_value_t = 1)]
    pub(crate) count: u64,
    /// What the local transaction answers.
    #[arg(long, value_enum, default_value = "commit")]
    pub(crate) local: TxAnswer,
    /// What a check-back is answered.
    #[arg(long, value_enum, default_value = "commit")]
    pub(crate) check: TxAnswer,
    /// Keep answering check-backs this many seconds after the sends.
    #[arg(long, default_value_t = 0)]
    pub(crate) stay_s: u64,
}


/// A `--property name=value`.
pub(crate) fn parse_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_string(), value.to_string())),
        _ => Err(format!("{text:?} is not name=value")),
    }
}

/// A reset's time: `now`, ms since the epoch, RFC 3339, or RocketMQ's
/// `yyyy-MM-dd#HH:mm:ss:SSS` as UTC.
pub(crate) fn parse_reset_time(text: &str) -> Result<u64, String> {
    let ms = if text == "now" {
        chrono::Utc::now().timestamp_millis()
    } else if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    } else if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        t.timestamp_millis()
    } else if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d#%H:%M:%S:%3f") {
        t.and_utc().timestamp_millis()
    } else {
        return Err(format!("{text:?} is not a time: give `now`, milliseconds since the epoch, RFC 3339 (2026-12-07T10:00:00Z) or yyyy-MM-dd#HH:mm:ss:SSS"));
    };
    u64::try_from(ms).map_err(|_| format!("{text:?} is before 1970"))
}

#[cfg(test)]
mod tests {
    use super::parse_reset_time;

    #[test]
    fn reset_times_in_every_accepted_form() {
        assert_eq!(parse_reset_time("1765101600000"), Ok(1_765_101_600_000));
        assert_eq!(parse_reset_time("2025-12-07T10:00:00Z"), Ok(1_765_101_600_000));
        assert_eq!(parse_reset_time("2025-12-07T11:00:00+01:00"), Ok(1_765_101_600_000));
        assert_eq!(parse_reset_time("2025-12-07#10:00:00:250"), Ok(1_765_101_600_250));
        assert!(parse_reset_time("now").unwrap() > 1_765_101_600_000);
        let bad = parse_reset_time("yesterday").unwrap_err();
        assert!(bad.contains("yesterday") && bad.contains("RFC 3339"), "{bad}");
        assert!(parse_reset_time("1969-12-31T23:59:59Z").unwrap_err().contains("before 1970"));
    }
}

