//! `mqadmin`: administer and exercise a cluster from the command line, after
//! RocketMQ's `mqadmin` (each subcommand also answers to RocketMQ's name,
//! e.g. `updateTopic`).
//!
//! Results go to stdout as plain-text tables with a fixed column order;
//! errors are one line on stderr and exit status 1; misuse is clap's message
//! and exit status 2.

#[path = "../common/mod.rs"]
mod common;
mod cli;
mod consume;
mod print;
mod produce;

use anyhow::anyhow;
use broker::client::{Admin, ClientConfig, ClientInstance};
use broker::clock::Clock;
use broker::command::GetControllerState;
use broker::model::{Message, TopicConfig};
use clap::Parser;
use cli::{Cli, Command};
use print::{body_text, print_message, print_message_rows, print_resets, shorten, status_name, Table};
use std::sync::Arc;

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
pub(crate) struct Ctx {
    pub(crate) client: Arc<ClientInstance>,
    pub(crate) admin: Admin,
    pub(crate) namesrv: Vec<String>,
    pub(crate) timeout_ms: u64,
}

impl Ctx {
    /// A library error as one sentence that says which peer failed.
    pub(crate) fn explain(&self, e: broker::Error) -> anyhow::Error {
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
        Command::Send { topic, body, tags, keys, count, delay_level, deliver_at_ms, timer_delay_ms, properties, batch } => {
            let mut msg = Message { topic, body: body.into_bytes(), tags, keys, delay_level, ..Message::default() };
            for (name, value) in properties {
                msg = msg.with_property(name, value);
            }
            let msg = match (deliver_at_ms, timer_delay_ms) {
                (Some(at), _) => msg.with_deliver_at(at),
                (None, Some(ms)) => msg.with_timer_delay_ms(ms),
                (None, None) => msg,
            };
            if batch > 1 {
                produce::send_batches(&ctx, msg, count, batch).await?
            } else {
                produce::send(&ctx, msg, count).await?
            }
        }
        Command::Transaction(args) => produce::transaction(&ctx, args).await?,
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
        Command::Consume(args) => consume::consume(&ctx, args).await?,
        Command::Receive(args) => consume::receive(&ctx, args).await?,
        Command::UpdateSubGroup { group, consume_enable, consume_broadcast_enable, retry_max_times, consume_message_orderly, broker } => {
            let config = broker::model::SubscriptionGroup { group_name: group.clone(), consume_enable, consume_broadcast_enable, retry_max_times, consume_message_orderly };
            let done = ctx.admin.update_subscription_group(config, broker.as_deref()).await.map_err(|e| ctx.explain(e))?;
            println!("subscription group {group} created or updated on {}", done.join(", "));
        }
        Command::DeleteSubGroup { group } => {
            let done = ctx.admin.delete_subscription_group(&group).await.map_err(|e| ctx.explain(e))?;
            println!("deleted subscription group {group} on {}", done.join(", "));
        }
        Command::SubGroupList => {
            let groups = ctx.admin.subscription_groups().await.map_err(|e| ctx.explain(e))?;
            let mut table = Table::new(&["BROKER", "GROUP", "CONSUME_ENABLE", "BROADCAST_ENABLE", "RETRY_MAX_TIMES", "ORDERLY"]);
            for (broker, g) in groups {
                table.row(vec![
                    broker,
                    g.group_name,
                    g.consume_enable.to_string(),
                    g.consume_broadcast_enable.to_string(),
                    g.retry_max_times.to_string(),
                    g.consume_message_orderly.to_string(),
                ]);
            }
            table.print();
        }
        Command::Request { topic, body, timeout_s } => produce::request(&ctx, topic, body, timeout_s).await?,
        Command::QueryByKey { topic, key, begin, end } => {
            let (begin, end) = (begin.unwrap_or(0), end.unwrap_or(u64::MAX));
            let found = ctx.admin.query_by_key_between(&topic, &key, 32, begin, end).await.map_err(|e| ctx.explain(e))?;
            if found.is_empty() {
                return Err(anyhow!("no message of topic {topic} has key {key}"));
            }
            print_message_rows(found);
        }
        Command::QueryByOffset { topic, broker_name, queue_id, offset, count } => {
            let found =
                ctx.admin.query_by_queue_offset(&topic, &broker_name, queue_id, offset, count).await.map_err(|e| ctx.explain(e))?;
            for (i, m) in found.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print_message(m);
            }
        }
        Command::PrintMsg { topic, begin, end, max } => {
            let end = end.unwrap_or_else(|| broker::clock::Clock::new().now_ms() + 1);
            let found = ctx.admin.messages_between(&topic, begin.unwrap_or(0), end, max).await.map_err(|e| ctx.explain(e))?;
            if found.is_empty() {
                return Err(anyhow!("no message of topic {topic} was stored in that time"));
            }
            print_message_rows(found);
        }
        Command::ConsumerStatus { group, client_id } => {
            let members = ctx.admin.consumer_status(&group, client_id.as_deref()).await.map_err(|e| ctx.explain(e))?;
            for (i, m) in members.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                let subscriptions: Vec<String> = m.subscriptions.iter().map(|(t, e)| format!("{t}:{e}")).collect();
                println!("client {} group {}", m.client_id, m.group);
                println!(
                    "model {} {} concurrency {} subscriptions {}",
                    if m.broadcast { "BROADCASTING" } else { "CLUSTERING" },
                    if m.orderly { "ORDERLY" } else { "CONCURRENTLY" },
                    m.consume_concurrency,
                    subscriptions.join(" ")
                );
                let mut table = Table::new(&["TOPIC", "BROKER", "QUEUE", "NEXT_PULL", "COMMITTED", "CACHED_MSGS", "CACHED_BYTES", "FIRST_IN_FLIGHT", "LOCKED"]);
                for q in &m.queues {
                    let opt = |o: Option<u64>| o.map_or("-".to_string(), |o| o.to_string());
                    table.row(vec![
                        q.topic.clone(),
                        q.broker_name.clone(),
                        q.queue_id.to_string(),
                        q.next_pull.to_string(),
                        opt(q.committed),
                        q.cached_msgs.to_string(),
                        q.cached_bytes.to_string(),
                        opt(q.first_in_flight),
                        q.locked.to_string(),
                    ]);
                }
                table.print();
            }
        }
        Command::ProducerConnection { group } => {
            let members = ctx.admin.producer_connection(&group).await.map_err(|e| ctx.explain(e))?;
            if members.is_empty() {
                return Err(anyhow!("producer group {group} has no live producer"));
            }
            let mut table = Table::new(&["BROKER", "CLIENT_ID", "ADDR", "LAST_HEARTBEAT_MS"]);
            for (broker, p) in members {
                table.row(vec![broker, p.client_id, p.addr, p.last_heartbeat_ms.to_string()]);
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
                ("sendBusyRefused", info.send_busy.to_string()),
                ("sendQueueWaiting", info.send_queue_waiting.to_string()),
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

