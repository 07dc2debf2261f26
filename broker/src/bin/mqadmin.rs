//! `mqadmin`: administer and exercise a cluster from the command line, after
//! RocketMQ's `mqadmin` (each subcommand also answers to RocketMQ's name,
//! e.g. `updateTopic`).
//!
//! Results go to stdout as plain-text tables with a fixed column order;
//! errors are one line on stderr and exit status 1; misuse is clap's message
//! and exit status 2.

mod common;

use anyhow::anyhow;
use broker::client::{
    Admin, ClientConfig, ClientInstance, ConsumeContext, ConsumeResult, Producer, ProducerConfig, PushConsumer,
    PushConsumerConfig, TransactionListener, TransactionProducer,
};
use broker::clock::Clock;
use broker::model::{Message, MessageExt, TopicConfig, TransactionState, PERM_READ, PERM_WRITE};
use broker::command::{ConsumeFrom, GetControllerState, SendStatus};
use clap::{Parser, Subcommand, ValueEnum};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Administer a RocketMQ-style cluster: topics, sends, consumption, queries, status.
#[derive(Parser, Debug)]
#[command(name = "mqadmin", version)]
struct Cli {
    /// Name servers, `a:9876;b:9876`.
    #[arg(short = 'n', long, env = "NAMESRV_ADDR", default_value = "127.0.0.1:9876", global = true)]
    namesrv: String,
    /// Timeout of each request (ms).
    #[arg(long, default_value_t = 3_000, global = true)]
    timeout_ms: u64,
    #[command(subcommand)]
    command: Command,
}

/// Where a new consumer group starts.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum StartFrom {
    /// The oldest retained message.
    First,
    /// Only messages sent from now on.
    Last,
}

/// What `consume` does.
#[derive(clap::Args, Debug)]
struct ConsumeArgs {
    /// Topic name.
    #[arg(short = 't', long)]
    topic: String,
    /// Consumer group.
    #[arg(short = 'g', long)]
    group: String,
    /// Tag expression: `*` or `TagA || TagB`.
    #[arg(short = 's', long, default_value = "*")]
    subscription: String,
    /// Select by an SQL92 condition over the message's properties instead
    /// of by tag (`env = 'gray' AND region IN ('hz', 'sh')`); the brokers
    /// need `enablePropertyFilter=true`.
    #[arg(long, conflicts_with = "subscription")]
    sql: Option<String>,
    /// Where a group with no committed offset starts.
    #[arg(long, value_enum, default_value_t = StartFrom::First)]
    from: StartFrom,
    /// Stop after this many messages (exit 1 if fewer came in time).
    #[arg(short = 'c', long)]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10)]
    wait_s: u64,
    /// Consume orderly: lock each queue on its broker and take its
    /// messages one at a time, in queue order.
    #[arg(long)]
    orderly: bool,
    /// Orderly: how long a queue lock is trusted (below the broker's
    /// `rebalanceLockMaxLiveTime`).
    #[arg(long, default_value_t = 30_000)]
    lock_lease_ms: u64,
    /// Orderly: how often queue locks are renewed.
    #[arg(long, default_value_t = 20_000)]
    lock_interval_ms: u64,
    /// How often the group is rebalanced.
    #[arg(long, default_value_t = 20_000)]
    rebalance_interval_ms: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
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
    },
    /// Send transactional messages (a half, the local transaction, its end),
    /// and answer the broker's check-backs for the producer group.
    #[command(alias = "sendTransactionMessage")]
    Transaction(TransactionArgs),
    /// Consume with a push consumer and print each message as it is consumed.
    #[command(alias = "consumeMessage")]
    Consume(ConsumeArgs),
    /// Messages of a topic with a business key.
    #[command(alias = "queryMsgByKey")]
    QueryByKey {
        /// Topic name.
        #[arg(short = 't', long)]
        topic: String,
        /// Business key.
        #[arg(short = 'k', long)]
        key: String,
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

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    common::init_logging("warn");
    if let Err(e) = run(cli).await {
        eprintln!("mqadmin: {e:#}");
        std::process::exit(1);
    }
}

/// Everything a command needs: the client and how to explain its errors.
struct Ctx {
    client: Arc<ClientInstance>,
    admin: Admin,
    namesrv: Vec<String>,
    timeout_ms: u64,
}

impl Ctx {
    /// A library error as one sentence that says which peer failed.
    fn explain(&self, e: broker::Error) -> anyhow::Error {
        match e {
            broker::Error::Connection { addr, reason } => {
                let role = if self.namesrv.contains(&addr) { "name server" } else { "broker" };
                anyhow!("cannot reach {role} {addr}: {}", plain_reason(&reason))
            }
            broker::Error::Timeout(ms) => anyhow!("no answer within {ms} ms (name servers {})", self.namesrv.join(";")),
            other => anyhow!("{other}"),
        }
    }
}

/// `Connection refused (os error 111)` -> `connection refused`.
fn plain_reason(reason: &str) -> String {
    let reason = match reason.find(" (os error ") {
        Some(i) => &reason[..i],
        None => reason,
    };
    let mut chars = reason.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let namesrv = broker::conf::parse_namesrv_list(&cli.namesrv).map_err(|e| anyhow!("--namesrv: {e}"))?;
    let mut config = ClientConfig::new(namesrv.clone(), format!("mqadmin-{}", std::process::id()));
    config.request_timeout_ms = cli.timeout_ms;
    let client = ClientInstance::new(config, Clock::new());
    let ctx = Ctx { admin: Admin::new(client.clone()), client, namesrv, timeout_ms: cli.timeout_ms };
    match cli.command {
        Command::UpdateTopic { topic, read_queues, write_queues, perm, broker, order } => {
            let config = TopicConfig { name: topic.clone(), write_queues, read_queues, perm, order };
            let done = ctx.admin.create_topic(config, broker.as_deref()).await.map_err(|e| ctx.explain(e))?;
            for name in done {
                println!(
                    "topic {topic} created or updated on {name} (read {read_queues}, write {write_queues}, perm {perm}, order {order})"
                );
            }
        }
        Command::TopicList => {
            let topics = ctx.admin.topics().await.map_err(|e| ctx.explain(e))?;
            let mut table = Table::new(&["TOPIC", "BROKER", "READ", "WRITE", "PERM", "ORDER"]);
            for (broker, t) in topics {
                table.row(vec![t.name, broker, t.read_queues.to_string(), t.write_queues.to_string(), t.perm.to_string(), t.order.to_string()]);
            }
            table.print();
        }
        Command::TopicStatus { topic } => {
            let stats = ctx.admin.topic_stats(&topic).await.map_err(|e| ctx.explain(e))?;
            let mut table = Table::new(&["BROKER", "QUEUE", "MIN_OFFSET", "MAX_OFFSET"]);
            for (broker, s) in stats {
                table.row(vec![broker, s.queue_id.to_string(), s.min_offset.to_string(), s.max_offset.to_string()]);
            }
            table.print();
        }
        Command::ClusterList => cluster_list(&ctx).await?,
        Command::SyncState { controllers } => sync_state(&controllers, cli.timeout_ms).await?,
        Command::Send { topic, body, tags, keys, count, delay_level, deliver_at_ms, timer_delay_ms, properties } => {
            let mut msg = Message { topic, body: body.into_bytes(), tags, keys, delay_level, ..Message::default() };
            for (name, value) in properties {
                msg = msg.with_property(name, value);
            }
            let msg = match (deliver_at_ms, timer_delay_ms) {
                (Some(at), _) => msg.with_deliver_at(at),
                (None, Some(ms)) => msg.with_timer_delay_ms(ms),
                (None, None) => msg,
            };
            send(&ctx, msg, count).await?
        }
        Command::Transaction(args) => transaction(&ctx, args).await?,
        Command::DlqList { group } => {
            let found = ctx.admin.dead_letters(&group).await.map_err(|e| ctx.explain(e))?;
            let mut table = Table::new(&[
                "MSG_ID", "ORIGIN_TOPIC", "BROKER", "QUEUE_OFFSET", "RECONSUME_TIMES", "STORE_TIME_MS", "TAGS", "KEYS", "BODY",
            ]);
            for m in &found {
                table.row(vec![
                    m.msg_id(),
                    m.origin_topic().to_string(),
                    m.broker_name.clone(),
                    m.queue_offset.to_string(),
                    m.reconsume_times.to_string(),
                    m.store_timestamp_ms.to_string(),
                    m.message.tags.clone().unwrap_or_default(),
                    m.message.keys.join(","),
                    shorten(&body_text(m), 60),
                ]);
            }
            table.print();
            eprintln!("mqadmin: {} dead letters in group {group}", found.len());
        }
        Command::DlqResend { group, id, all: _ } => {
            let resent = ctx.admin.resend_dead_letters(&group, id.as_deref()).await.map_err(|e| ctx.explain(e))?;
            if resent.is_empty() {
                return Err(match id {
                    Some(id) => anyhow!("no dead letter of group {group} has id or key {id}"),
                    None => anyhow!("group {group} has no dead letters"),
                });
            }
            let mut table = Table::new(&["MSG_ID", "TOPIC", "KEYS", "STATUS", "BROKER", "QUEUE", "QUEUE_OFFSET"]);
            for (m, r) in resent {
                table.row(vec![
                    r.msg_id,
                    m.origin_topic().to_string(),
                    m.message.keys.join(","),
                    status_name(r.status).to_string(),
                    r.broker_name,
                    r.queue_id.to_string(),
                    r.queue_offset.to_string(),
                ]);
            }
            table.print();
        }
        Command::Consume(args) => consume(&ctx, args).await?,
        Command::QueryByKey { topic, key } => {
            let found = ctx.admin.query_by_key(&topic, &key, 32).await.map_err(|e| ctx.explain(e))?;
            if found.is_empty() {
                return Err(anyhow!("no message of topic {topic} has key {key}"));
            }
            let mut table =
                Table::new(&["MSG_ID", "OFFSET_MSG_ID", "BROKER", "QUEUE", "QUEUE_OFFSET", "STORE_TIME_MS", "TAGS", "KEYS", "BODY"]);
            for m in found {
                table.row(vec![
                    m.msg_id(),
                    m.offset_msg_id(),
                    m.broker_name.clone(),
                    m.queue_id.to_string(),
                    m.queue_offset.to_string(),
                    m.store_timestamp_ms.to_string(),
                    m.message.tags.clone().unwrap_or_default(),
                    m.message.keys.join(","),
                    shorten(&body_text(&m), 60),
                ]);
            }
            table.print();
        }
        Command::QueryById { topic, id } => {
            let found = ctx.admin.query_by_id(&topic, &id).await.map_err(|e| ctx.explain(e))?;
            if found.is_empty() {
                return Err(anyhow!("no message of topic {topic} has id {id}"));
            }
            for (i, m) in found.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print_message(m);
            }
        }
        Command::TopicRoute { topic } => {
            let route = ctx.admin.topic_route(&topic).await.map_err(|e| ctx.explain(e))?;
            let mut table = Table::new(&["BROKER", "ID", "ROLE", "TERM", "ADDR", "WRITE_QUEUES", "READ_QUEUES", "PERM"]);
            for q in route.queues {
                for r in &q.replicas {
                    table.row(vec![
                        q.broker_name.clone(),
                        r.broker_id.to_string(),
                        r.role.name().to_string(),
                        r.epoch.to_string(),
                        r.addr.clone(),
                        q.write_queues.to_string(),
                        q.read_queues.to_string(),
                        q.perm.to_string(),
                    ]);
                }
            }
            table.print();
        }
        Command::BrokerStatus { broker_addr } => {
            let info = ctx.admin.broker_status(&broker_addr).await.map_err(|e| ctx.explain(e))?;
            let rows = [
                ("brokerName", info.broker_name.clone()),
                ("flushMode", info.flush_mode.clone()),
                ("commitLogWriteOffset", info.write_offset.to_string()),
                ("commitLogFlushedOffset", info.flushed_offset.to_string()),
                ("putMessageCount", info.put_count.to_string()),
                ("getMessageCount", info.get_count.to_string()),
                ("commitLogFsyncs", info.flush_count.to_string()),
                ("delayedPending", info.delayed_pending.to_string()),
                ("timersPending", info.timers_pending.to_string()),
                ("halvesPending", info.halves_pending.to_string()),
                ("halvesOrphaned", info.halves_orphaned.to_string()),
                ("halvesMovedAside", info.halves_moved_aside.to_string()),
            ];
            for (name, value) in rows {
                println!("{name:<24}: {value}");
            }
        }
        Command::DeleteTopic { topic } => {
            let brokers = ctx.admin.delete_topic(&topic).await.map_err(|e| ctx.explain(e))?;
            println!("deleted topic {topic} on {}", brokers.join(", "));
        }
        Command::BrokerConfig { broker_addr } => {
            let settings = ctx.admin.broker_config(&broker_addr).await.map_err(|e| ctx.explain(e))?;
            for (key, value) in settings {
                println!("{key}={value}");
            }
        }
        Command::ConsumerConnection { group } => {
            let members = ctx.admin.consumer_connection(&group).await.map_err(|e| ctx.explain(e))?;
            let mut table = Table::new(&["BROKER", "CLIENT_ID"]);
            for (broker, clients) in members {
                for client in clients {
                    table.row(vec![broker.clone(), client]);
                }
            }
            table.print();
        }
        Command::ResetOffsetByTime { group, topic, timestamp } => {
            let resets = ctx.admin.reset_offset(&group, &topic, Some(timestamp)).await.map_err(|e| ctx.explain(e))?;
            print_resets(resets);
        }
        Command::SkipAccumulatedMessage { group, topic } => {
            let resets = ctx.admin.reset_offset(&group, &topic, None).await.map_err(|e| ctx.explain(e))?;
            print_resets(resets);
        }
        Command::ConsumerProgress { group, topic } => {
            let progress = ctx.admin.consume_stats(&group, &topic).await.map_err(|e| ctx.explain(e))?;
            let mut table = Table::new(&["BROKER", "QUEUE", "BROKER_OFFSET", "CONSUMER_OFFSET", "DIFF"]);
            let mut total = 0u64;
            for (broker, p) in progress {
                let (committed, diff) = match p.consumer_offset {
                    Some(o) => {
                        let diff = p.max_offset.saturating_sub(o);
                        total += diff;
                        (o.to_string(), diff.to_string())
                    }
                    None => ("-".to_string(), "-".to_string()),
                };
                table.row(vec![broker, p.queue_id.to_string(), p.max_offset.to_string(), committed, diff]);
            }
            table.print();
            println!("total diff: {total}");
        }
    }
    Ok(())
}

/// Where a reset put each queue.
fn print_resets(resets: Vec<(String, broker::command::QueueReset)>) {
    let mut table = Table::new(&["BROKER", "QUEUE", "CONSUMER_OFFSET", "GENERATION"]);
    for (broker, r) in resets {
        table.row(vec![broker, r.queue_id.to_string(), r.offset.to_string(), r.generation.to_string()]);
    }
    table.print();
}

/// A `--property name=value`.
fn parse_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_string(), value.to_string())),
        _ => Err(format!("{text:?} is not name=value")),
    }
}

/// A reset's time: `now`, ms since the epoch, RFC 3339, or RocketMQ's
/// `yyyy-MM-dd#HH:mm:ss:SSS` as UTC.
fn parse_reset_time(text: &str) -> Result<u64, String> {
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

/// Asks every controller for its view: the groups from the one that
/// leads, and a line per controller with its Raft state.
async fn sync_state(controllers: &str, timeout_ms: u64) -> anyhow::Result<()> {
    use broker::protocol::{Request, ResponseBody};
    let addrs = broker::conf::parse_namesrv_list(controllers).map_err(|e| anyhow!("--controllers: {e}"))?;
    let pool = broker::net::ConnectionPool::new();
    let timeout = std::time::Duration::from_millis(timeout_ms);
    let mut leader_view = None;
    let mut table = Table::new(&["CONTROLLER", "ADDR", "LEADER", "TERM", "APPLIED"]);
    for addr in &addrs {
        match pool.request(addr, &Request::GetControllerState(GetControllerState), timeout).await {
            Ok(response) => {
                let ResponseBody::ControllerState(view) = response.body else {
                    table.row(vec!["?".into(), addr.clone(), format!("not a controller: {:?} {}", response.code, response.remark), "-".into(), "-".into()]);
                    continue;
                };
                table.row(vec![
                    format!("n{}", view.controller_id),
                    addr.clone(),
                    view.leader_id.map_or("none".into(), |l| format!("n{l}")),
                    view.term.to_string(),
                    view.applied_index.map_or("-".into(), |i| i.to_string()),
                ]);
                if view.leader_id == Some(view.controller_id) || leader_view.is_none() {
                    leader_view = Some(view);
                }
            }
            Err(e) => table.row(vec!["?".into(), addr.clone(), format!("unreachable: {e}"), "-".into(), "-".into()]),
        }
    }
    table.print();
    let view = leader_view.ok_or_else(|| anyhow!("no controller of {controllers} answered"))?;
    println!();
    let mut groups = Table::new(&["BROKER", "MASTER_ID", "MASTER_ADDR", "EPOCH", "SYNC_STATE_SET", "SET_EPOCH", "REPLICAS"]);
    for g in view.groups {
        groups.row(vec![
            g.broker_name,
            g.master_id.map_or("none".into(), |m| m.to_string()),
            g.master_addr.unwrap_or_else(|| "-".into()),
            g.master_epoch.to_string(),
            format!("{:?}", g.sync_state_set),
            g.sync_state_set_epoch.to_string(),
            g.replicas.iter().map(|(id, addr)| format!("{id}@{addr}")).collect::<Vec<_>>().join(","),
        ]);
    }
    groups.print();
    Ok(())
}

async fn cluster_list(ctx: &Ctx) -> anyhow::Result<()> {
    let brokers = ctx.admin.cluster().await.map_err(|e| ctx.explain(e))?;
    let mut table = Table::new(&[
        "CLUSTER", "BROKER", "ID", "ROLE", "EPOCH", "ADDR", "TOPICS", "FLUSH", "WRITE_OFFSET", "FLUSHED_OFFSET", "PUTS", "GETS",
    ]);
    for b in brokers {
        let mut row = vec![
            b.cluster.clone(),
            b.broker_name.clone(),
            b.broker_id.to_string(),
            b.role.name().to_string(),
            b.epoch.to_string(),
            b.addr.clone(),
            b.topics.to_string(),
        ];
        match ctx.admin.runtime(&b.addr).await {
            Ok(info) => row.extend([
                info.flush_mode,
                info.write_offset.to_string(),
                info.flushed_offset.to_string(),
                info.put_count.to_string(),
                info.get_count.to_string(),
            ]),
            Err(e) => {
                eprintln!("mqadmin: broker {} at {}: {:#}", b.broker_name, b.addr, ctx.explain(e));
                row.extend(["unreachable", "-", "-", "-", "-"].map(String::from));
            }
        }
        table.row(row);
    }
    table.print();
    Ok(())
}

async fn send(ctx: &Ctx, template: Message, count: u64) -> anyhow::Result<()> {
    let mut config = ProducerConfig::new("mqadmin-producer");
    config.send_timeout_ms = ctx.timeout_ms;
    let producer = Producer::new(ctx.client.clone(), config).map_err(|e| ctx.explain(e))?;
    let mut table = Table::new(&["#", "STATUS", "MSG_ID", "OFFSET_MSG_ID", "BROKER", "QUEUE", "QUEUE_OFFSET"]);
    let mut not_ok = 0;
    for i in 0..count {
        match producer.send(template.clone()).await {
            Ok(r) => {
                if r.status != SendStatus::SendOk {
                    not_ok += 1;
                }
                table.row(vec![
                    i.to_string(),
                    status_name(r.status).to_string(),
                    r.msg_id,
                    r.offset_msg_id,
                    r.broker_name,
                    r.queue_id.to_string(),
                    r.queue_offset.to_string(),
                ]);
            }
            Err(e) => {
                table.print();
                return Err(ctx.explain(e).context(format!("send {i} of {count} failed")));
            }
        }
    }
    table.print();
    if not_ok > 0 {
        return Err(anyhow!("{not_ok} of {count} sends were stored but not SEND_OK"));
    }
    Ok(())
}

async fn consume(ctx: &Ctx, args: ConsumeArgs) -> anyhow::Result<()> {
    let ConsumeArgs { topic, group, subscription, sql, from, count, wait_s, .. } = args;
    let mut config = match sql {
        Some(condition) => PushConsumerConfig::sql(group, topic, condition),
        None => PushConsumerConfig::new(group, topic, subscription),
    };
    config.consume_from = match from {
        StartFrom::First => ConsumeFrom::FirstOffset,
        StartFrom::Last => ConsumeFrom::LastOffset,
    };
    // One at a time, so no message past --count is marked consumed.
    config.consume_concurrency = 1;
    config.offset_persist_interval_ms = 1_000;
    config.orderly = args.orderly;
    config.lock_lease_ms = args.lock_lease_ms;
    config.lock_interval_ms = args.lock_interval_ms;
    config.rebalance_interval_ms = args.rebalance_interval_ms;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let limit = count.unwrap_or(u64::MAX);
    let taken = Arc::new(AtomicU64::new(0));
    let listener = {
        let taken = taken.clone();
        move |msgs: &[MessageExt], _ctx: &ConsumeContext| {
            // Past the limit, leave messages unconsumed for the next run.
            if taken.fetch_add(msgs.len() as u64, Ordering::SeqCst) >= limit {
                taken.fetch_sub(msgs.len() as u64, Ordering::SeqCst);
                return ConsumeResult::RetryLater;
            }
            // Printed before the message counts as consumed: a process
            // killed after this line was consumed, one killed before it
            // gets the message again.
            for m in msgs {
                let n = taken.load(Ordering::SeqCst);
                let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
                println!(
                    "#{n} t={now_ms} msgId={} queue={}/{}/{} offset={} reconsume={} tags={} keys={} body={}",
                    m.msg_id(),
                    m.broker_name,
                    m.message.topic,
                    m.queue_id,
                    m.queue_offset,
                    m.reconsume_times,
                    m.message.tags.as_deref().unwrap_or("-"),
                    if m.message.keys.is_empty() { "-".to_string() } else { m.message.keys.join(",") },
                    body_text(m),
                );
                let _ = tx.send(());
            }
            ConsumeResult::Success
        }
    };
    // Fail fast on an unreachable name server instead of waiting out --wait-s.
    ctx.client.route(&config.subscriptions[0].0, true).await.map_err(|e| ctx.explain(e))?;
    let consumer = PushConsumer::start(ctx.client.clone(), config, listener).map_err(|e| ctx.explain(e))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait_s);
    let mut printed = 0u64;
    while printed < limit {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(())) => printed += 1,
            Ok(None) | Err(_) => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_millis(ctx.timeout_ms), consumer.shutdown()).await;
    eprintln!("mqadmin: consumed {printed} messages");
    if let Some(n) = count {
        if printed < n {
            return Err(anyhow!("only {printed} of {n} messages arrived within {wait_s} s"));
        }
    }
    Ok(())
}

/// A local transaction's state on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum TxAnswer {
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
struct TransactionArgs {
    /// Producer group: the broker checks back with any live producer of it.
    #[arg(short = 'g', long)]
    group: String,
    /// Topic name (needed when sending).
    #[arg(short = 't', long, default_value = "")]
    topic: String,
    /// Message body.
    #[arg(short = 'p', long, default_value = "")]
    body: String,
    /// Business keys, comma-separated.
    #[arg(short = 'k', long, value_delimiter = ',')]
    keys: Vec<String>,
    /// Messages to send; 0 only answers check-backs.
    #[arg(short = 'c', long, default_value_t = 1)]
    count: u64,
    /// What the local transaction answers.
    #[arg(long, value_enum, default_value = "commit")]
    local: TxAnswer,
    /// What a check-back is answered.
    #[arg(long, value_enum, default_value = "commit")]
    check: TxAnswer,
    /// Keep answering check-backs this many seconds after the sends.
    #[arg(long, default_value_t = 0)]
    stay_s: u64,
}

/// Answers every local transaction and check-back as told, printing each
/// check-back as it is answered.
struct FixedAnswers {
    local: TransactionState,
    check: TransactionState,
}

impl TransactionListener for FixedAnswers {
    fn execute(&self, _msg: &Message, _half: &broker::command::SendResult) -> futures::future::BoxFuture<'static, TransactionState> {
        let state = self.local;
        Box::pin(async move { state })
    }

    fn check(&self, half: MessageExt, check_times: u32) -> futures::future::BoxFuture<'static, TransactionState> {
        let state = self.check;
        println!("CHECK msgId={} check={} answer={}", half.msg_id(), check_times + 1, state.name());
        Box::pin(async move { state })
    }
}

async fn transaction(ctx: &Ctx, args: TransactionArgs) -> anyhow::Result<()> {
    let mut config = ProducerConfig::new(args.group.clone());
    config.send_timeout_ms = ctx.timeout_ms;
    let listener = Arc::new(FixedAnswers { local: args.local.into(), check: args.check.into() });
    let producer = TransactionProducer::start(ctx.client.clone(), config, listener).map_err(|e| ctx.explain(e))?;
    let mut table = Table::new(&["#", "STATUS", "MSG_ID", "OFFSET_MSG_ID", "BROKER", "LOCAL", "END"]);
    for i in 0..args.count {
        let msg = Message { topic: args.topic.clone(), body: args.body.clone().into_bytes(), keys: args.keys.clone(), ..Message::default() };
        let r = producer.send_in_transaction(msg).await.map_err(|e| ctx.explain(e).context(format!("half {i} of {} failed", args.count)))?;
        table.row(vec![
            i.to_string(),
            status_name(r.half.status).to_string(),
            r.half.msg_id,
            r.half.offset_msg_id,
            r.half.broker_name,
            r.state.name().to_string(),
            match r.end {
                Ok(()) if r.state == TransactionState::Unknown => "left to check-back".to_string(),
                Ok(()) => "sent".to_string(),
                Err(e) => format!("failed: {e}"),
            },
        ]);
    }
    if args.count > 0 {
        table.print();
    }
    if args.stay_s > 0 {
        println!("answering check-backs of group {} for {} s", args.group, args.stay_s);
        // Heartbeat now, so the brokers know where to ask at once.
        ctx.client.heartbeat_producers().await;
        tokio::time::sleep(Duration::from_secs(args.stay_s)).await;
    }
    producer.shutdown();
    Ok(())
}

fn status_name(status: SendStatus) -> &'static str {
    match status {
        SendStatus::SendOk => "SEND_OK",
        SendStatus::FlushDiskTimeout => "FLUSH_DISK_TIMEOUT",
        SendStatus::FlushSlaveTimeout => "FLUSH_SLAVE_TIMEOUT",
        SendStatus::SlaveNotAvailable => "SLAVE_NOT_AVAILABLE",
    }
}

fn body_text(m: &MessageExt) -> String {
    String::from_utf8_lossy(&m.message.body).into_owned()
}

fn shorten(text: &str, chars_max: usize) -> String {
    if text.chars().count() <= chars_max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(chars_max).collect();
    out.push_str("...");
    out
}

fn print_message(m: &MessageExt) {
    let props: Vec<String> = m.message.properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let fields = [
        ("Topic", m.message.topic.clone()),
        ("Tags", m.message.tags.clone().unwrap_or_default()),
        ("Keys", m.message.keys.join(",")),
        ("Msg ID", m.msg_id()),
        ("Offset Msg ID", m.offset_msg_id()),
        ("Broker", m.broker_name.clone()),
        ("Queue ID", m.queue_id.to_string()),
        ("Queue Offset", m.queue_offset.to_string()),
        ("CommitLog Offset", m.commit_log_offset.to_string()),
        ("Store Size", m.store_size.to_string()),
        ("Born Timestamp ms", m.born_timestamp_ms.to_string()),
        ("Store Timestamp ms", m.store_timestamp_ms.to_string()),
        ("Born Host", m.born_host.clone()),
        ("Store Host", m.store_host.clone()),
        ("Reconsume Times", m.reconsume_times.to_string()),
        ("Properties", props.join(", ")),
        ("Body", body_text(m)),
    ];
    for (name, value) in fields {
        println!("{:<20}{value}", format!("{name}:"));
    }
}

/// A plain-text table: left-aligned columns two spaces apart.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    fn row(&mut self, row: Vec<String>) {
        assert_eq!(row.len(), self.header.len(), "a row has one cell per column");
        self.rows.push(row);
    }

    fn print(&self) {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            println!("{}", line.join("  ").trim_end());
        }
    }
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
