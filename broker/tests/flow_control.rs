//! A push consumer's local cache is bounded in bytes as well as in
//! messages (RocketMQ's pullThresholdSizeForQueue): a consumer far behind
//! a backlog of large messages holds a bounded amount of them, and takes
//! the rest once it catches up; `consumerStatus` shows its cache. In one
//! process over loopback TCP.
#![cfg(not(madsim))]

use broker::client::{Admin, AsyncListener, ClientConfig, ClientInstance, ConsumeContext, ConsumeResult, Producer, ProducerConfig, PushConsumer, PushConsumerConfig};
use broker::clock::Clock;
use broker::command::ConsumeFrom;
use broker::model::{Message, MessageExt, TopicConfig};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

mod common;

use common::loopback_cluster;

const MESSAGES: usize = 200;
const BODY: usize = 1024;
const QUEUES: u32 = 2;
const PULL_BATCH: u32 = 4;
const CACHE_BYTES: usize = 4 * BODY;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_behind_a_backlog_caches_a_bounded_number_of_bytes() {
    let namesrv = loopback_cluster().await;
    let admin = Admin::new(ClientInstance::new(ClientConfig::new(vec![namesrv.clone()], "ops"), Clock::new()));
    admin.create_topic(TopicConfig::new("bulk", QUEUES), None).await.expect("topic");
    let producer = Producer::new(ClientInstance::new(ClientConfig::new(vec![namesrv.clone()], "loader"), Clock::new()), ProducerConfig::new("loaders"))
        .expect("producer");
    for i in 0..MESSAGES {
        let mut body = format!("{i:04}").into_bytes();
        body.resize(BODY, b'.');
        producer.send(Message::new("bulk", body)).await.expect("send");
    }

    // The listener holds every message it is given until the gate opens.
    let received = Arc::new(AtomicUsize::new(0));
    let (open, gate) = watch::channel(false);
    let mut client = ClientConfig::new(vec![namesrv.clone()], "slow");
    client.heartbeat_ms = 200;
    let mut config = PushConsumerConfig::new("slow-readers", "bulk", "*");
    config.consume_from = ConsumeFrom::FirstOffset;
    config.pull_batch = PULL_BATCH;
    config.consume_concurrency = 2 * MESSAGES;
    config.queue_cache_bytes_max = CACHE_BYTES;
    config.rebalance_interval_ms = 300;
    config.long_polling_ms = 500;
    let listener = {
        let received = received.clone();
        AsyncListener(move |msgs: Vec<MessageExt>, _: ConsumeContext| {
            received.fetch_add(msgs.len(), Ordering::SeqCst);
            let mut gate = gate.clone();
            async move {
                let _ = gate.wait_for(|open| *open).await;
                ConsumeResult::Success
            }
        })
    };
    let consumer = PushConsumer::start(ClientInstance::new(client, Clock::new()), config, listener).expect("consumer");

    // Each queue pulls until its cache holds CACHE_BYTES, and a pull brings
    // a batch at most: the bound, where the message count (1,000 a queue)
    // would have let the whole backlog in.
    let bound = QUEUES as usize * (CACHE_BYTES / BODY + PULL_BATCH as usize);
    let deadline = Instant::now() + Duration::from_secs(20);
    while received.load(Ordering::SeqCst) < CACHE_BYTES / BODY {
        assert!(Instant::now() < deadline, "the consumer never filled its cache");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let held = received.load(Ordering::SeqCst);
    assert!(held <= bound, "{held} messages of {BODY} B in the cache, more than the byte bound allows ({bound})");

    // An operator sees it (consumerStatus: admin -> broker -> the
    // consumer's client): each queue's cache, in messages and bytes, and
    // the producer that loaded the topic (producerConnection).
    let status = admin.consumer_status("slow-readers", None).await.expect("consumer status");
    assert_eq!(status.len(), 1, "{status:?}");
    let (cached, bytes): (usize, usize) = status[0].queues.iter().map(|q| (q.cached_msgs, q.cached_bytes)).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let bulk = status[0].queues.iter().filter(|q| q.topic == "bulk").count();
    assert_eq!((status[0].client_id.as_str(), bulk, cached, bytes), ("slow", QUEUES as usize, held, held * BODY), "{status:?}");
    let missing = admin.consumer_status("slow-readers", Some("nobody")).await.expect_err("no such member");
    assert!(missing.to_string().contains("no live member nobody"), "{missing}");
    let producers = admin.producer_connection("loaders").await.expect("producer connection");
    assert_eq!(producers.iter().map(|(_, p)| p.client_id.as_str()).collect::<Vec<_>>(), ["loader"], "{producers:?}");

    // Caught up, it takes the rest.
    open.send_replace(true);
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::SeqCst) < MESSAGES {
        assert!(Instant::now() < deadline, "only {} of {MESSAGES} consumed after the gate opened", received.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    consumer.shutdown().await;
}
