//! Consuming: a push consumer (clustering or broadcasting) and a simple
//! consumer (POP).

use crate::cli::{ConsumeArgs, ReceiveArgs, SourceArgs, StartFrom};
use crate::print::body_text;
use crate::Ctx;
use anyhow::anyhow;
use broker::client::{
    ConsumeContext, ConsumeResult, LocalOffsets, Producer, ProducerConfig, PushConsumer, PushConsumerConfig, SimpleConsumer, SimpleConsumerConfig,
};
use broker::command::ConsumeFrom;
use broker::model::{MessageExt, Selector, PROPERTY_CORRELATION_ID};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(crate) async fn consume(ctx: &Ctx, args: ConsumeArgs) -> anyhow::Result<()> {
    let SourceArgs { topic, group, subscription, sql, from, count, wait_s } = args.source;
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
    if args.broadcast {
        let dir = match args.offsets_dir {
            Some(dir) => dir,
            None => std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_default().join(".rocketmq_offsets").join("mqadmin"),
        };
        let disk = broker::store::FsDisk::new(&dir).map_err(|e| anyhow!("cannot open the offsets directory {}: {e}", dir.display()))?;
        config.broadcast = true;
        config.local_offsets = LocalOffsets(Some(Arc::new(disk)));
    }
    let responder = match &args.reply_with {
        Some(body) => {
            let producer = Producer::new(ctx.client.clone(), ProducerConfig::new("mqadmin-responder")).map_err(|e| ctx.explain(e))?;
            Some((producer, body.clone()))
        }
        None => None,
    };
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
                if let Some((producer, body)) = &responder {
                    if m.message.properties.contains_key(PROPERTY_CORRELATION_ID) {
                        let (producer, body, m) = (producer.clone(), body.clone(), m.clone());
                        tokio::spawn(async move {
                            if let Err(e) = producer.reply(&m, body.into_bytes()).await {
                                eprintln!("mqadmin: the reply to {} failed: {e}", m.msg_id());
                            }
                        });
                    }
                }
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


/// Receives with a simple consumer until `--count` messages came or
/// `--wait-s` passed, printing each with its attempt and receipt handle and
/// acknowledging it (unless `--no-ack`).
pub(crate) async fn receive(ctx: &Ctx, args: ReceiveArgs) -> anyhow::Result<()> {
    let ReceiveArgs { source: SourceArgs { topic, group, subscription, sql, from, count, wait_s }, invisible_s, no_ack, fifo, max_attempts } = args;
    let mut config = SimpleConsumerConfig::new(group, topic);
    config.selector = match sql {
        Some(condition) => Selector::sql(condition),
        None => Selector::tag(subscription),
    };
    config.consume_from = match from {
        StartFrom::First => ConsumeFrom::FirstOffset,
        StartFrom::Last => ConsumeFrom::LastOffset,
    };
    config.fifo = fifo;
    config.max_attempts = max_attempts;
    config.await_ms = 1_000;
    // Fail fast on an unreachable name server instead of waiting out --wait-s.
    ctx.client.route(&config.topic, true).await.map_err(|e| ctx.explain(e))?;
    let consumer = SimpleConsumer::new(ctx.client.clone(), config).map_err(|e| ctx.explain(e))?;
    let limit = count.unwrap_or(u64::MAX);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait_s);
    let mut got = 0u64;
    while got < limit && tokio::time::Instant::now() < deadline {
        let want = u32::try_from((limit - got).min(32)).expect("at most 32");
        let received = match consumer.receive(want, Duration::from_secs(invisible_s)).await {
            Ok(received) => received,
            Err(broker::Error::Refused(r)) => return Err(anyhow!("receive refused: {r}")),
            Err(e) => {
                eprintln!("mqadmin: receive failed: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        for p in received {
            let m = &p.message;
            let acked = if no_ack {
                "no".to_string()
            } else {
                match consumer.ack(&p.handle).await {
                    Ok(()) => "yes".to_string(),
                    Err(e) => format!("failed ({e})"),
                }
            };
            println!(
                "#{got} msgId={} queue={}/{}/{} offset={} attempt={} acked={acked} handle=\"{}\" tags={} keys={} body={}",
                m.msg_id(),
                p.handle.broker_name,
                p.handle.topic,
                p.handle.queue_id,
                p.handle.offset,
                p.handle.attempt,
                p.handle,
                m.message.tags.as_deref().unwrap_or("-"),
                if m.message.keys.is_empty() { "-".to_string() } else { m.message.keys.join(",") },
                body_text(m),
            );
            got += 1;
        }
    }
    eprintln!("mqadmin: received {got} messages");
    if let Some(n) = count {
        if got < n {
            return Err(anyhow!("only {got} of {n} messages arrived within {wait_s} s"));
        }
    }
    Ok(())
}
