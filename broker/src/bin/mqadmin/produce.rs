//! Sending: plain messages, batches, and transactions with check-backs.

use crate::cli::TransactionArgs;
use crate::print::{status_name, Table};
use crate::Ctx;
use anyhow::anyhow;
use broker::client::{Producer, ProducerConfig, TransactionListener, TransactionProducer};
use broker::command::{SendResult, SendStatus};
use broker::model::{Message, MessageExt, TransactionState};
use std::sync::Arc;
use std::time::Duration;

/// A producer of `group` on the command's client.
fn producer(ctx: &Ctx, group: &str) -> anyhow::Result<Producer> {
    let mut config = ProducerConfig::new(group);
    config.send_timeout_ms = ctx.timeout_ms;
    Producer::new(ctx.client.clone(), config).map_err(|e| ctx.explain(e))
}

/// The table of send results.
fn results_table() -> Table {
    Table::new(&["#", "STATUS", "MSG_ID", "OFFSET_MSG_ID", "BROKER", "QUEUE", "QUEUE_OFFSET"])
}

/// One send result as a row.
fn result_row(i: u64, r: SendResult) -> Vec<String> {
    vec![i.to_string(), status_name(r.status).to_string(), r.msg_id, r.offset_msg_id, r.broker_name, r.queue_id.to_string(), r.queue_offset.to_string()]
}

pub(crate) async fn send(ctx: &Ctx, template: Message, count: u64) -> anyhow::Result<()> {
    let producer = producer(ctx, "mqadmin-producer")?;
    let mut table = results_table();
    let mut not_ok = 0;
    for i in 0..count {
        match producer.send(template.clone()).await {
            Ok(r) => {
                if r.status != SendStatus::SendOk {
                    not_ok += 1;
                }
                table.row(result_row(i, r));
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

/// Sends `count` copies of `template` in batches of `batch`, one request a
/// batch, and prints each message's result.
pub(crate) async fn send_batches(ctx: &Ctx, template: Message, count: u64, batch: u64) -> anyhow::Result<()> {
    let producer = producer(ctx, "mqadmin-producer")?;
    let mut table = results_table();
    let (mut sent, mut not_ok) = (0u64, 0u64);
    while sent < count {
        let n = batch.min(count - sent);
        let msgs = (0..n).map(|_| template.clone()).collect();
        let results = match producer.send_batch(msgs).await {
            Ok(results) => results,
            Err(e) => {
                table.print();
                return Err(ctx.explain(e).context(format!("the batch of messages {sent}..{} failed", sent + n)));
            }
        };
        for r in results {
            not_ok += u64::from(r.status != SendStatus::SendOk);
            table.row(result_row(sent, r));
            sent += 1;
        }
    }
    table.print();
    if not_ok > 0 {
        return Err(anyhow!("{not_ok} of {count} messages were stored but not SEND_OK"));
    }
    Ok(())
}

/// Sends a request and prints its reply.
pub(crate) async fn request(ctx: &Ctx, topic: String, body: String, timeout_s: u64) -> anyhow::Result<()> {
    let producer = producer(ctx, "mqadmin-requester")?;
    let reply = producer.request(Message::new(topic, body.into_bytes()), Duration::from_secs(timeout_s)).await.map_err(|e| match e {
        broker::Error::Timeout(_) => anyhow!("no reply within {timeout_s} s"),
        other => ctx.explain(other),
    })?;
    println!(
        "reply correlationId={} from={} body={}",
        reply.message.properties.get(broker::model::PROPERTY_CORRELATION_ID).map_or("-", String::as_str),
        reply.born_host,
        String::from_utf8_lossy(&reply.message.body)
    );
    Ok(())
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

pub(crate) async fn transaction(ctx: &Ctx, args: TransactionArgs) -> anyhow::Result<()> {
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

