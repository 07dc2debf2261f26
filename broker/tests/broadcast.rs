//! Broadcasting, in one process over loopback TCP: every consumer of a
//! broadcasting group receives every message; each keeps its own offsets
//! on its own disk, so one that stops and starts again resumes where it
//! was, and a clustering group beside it splits the same messages once.
#![cfg(not(madsim))]

use broker::client::{ClientConfig, ClientInstance, ConsumeContext, ConsumeResult, LocalOffsets, Producer, ProducerConfig, PushConsumer, PushConsumerConfig};
use broker::clock::Clock;
use broker::command::ConsumeFrom;
use broker::model::{Message, MessageExt};
use broker::store::{Disk, MemDisk};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::loopback_cluster;

/// Bodies each consumer received, by consumer.
type Seen = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

fn consumer(namesrv: &str, id: &str, group: &str, broadcast: bool, disk: Option<Arc<dyn Disk>>, seen: &Seen) -> PushConsumer {
    let mut client = ClientConfig::new(vec![namesrv.to_string()], id);
    client.heartbeat_ms = 200;
    let mut config = PushConsumerConfig::new(group, "prices", "*");
    config.consume_from = ConsumeFrom::FirstOffset;
    config.broadcast = broadcast;
    config.local_offsets = LocalOffsets(disk);
    config.rebalance_interval_ms = 300;
    config.offset_persist_interval_ms = 100;
    config.long_polling_ms = 500;
    let (seen, id) = (seen.clone(), id.to_string());
    let listener = move |msgs: &[MessageExt], _: &ConsumeContext| {
        let bodies = msgs.iter().map(|m| String::from_utf8_lossy(&m.message.body).into_owned());
        seen.lock().unwrap().entry(id.clone()).or_default().extend(bodies);
        ConsumeResult::Success
    };
    PushConsumer::start(ClientInstance::new(client, Clock::new()), config, listener).expect("consumer")
}

async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broadcast_consumer_gets_every_message_and_resumes_from_its_own_offsets() {
    let namesrv = loopback_cluster().await;
    let producer = Producer::new(ClientInstance::new(ClientConfig::new(vec![namesrv.clone()], "feed"), Clock::new()), ProducerConfig::new("feeds"))
        .expect("producer");
    // The topic exists (4 queues by default) before anyone subscribes.
    producer.send(Message::new("prices", b"price-0".to_vec())).await.expect("send");
    let seen: Seen = Arc::default();
    let disk_a: Arc<dyn Disk> = Arc::new(MemDisk::new());
    let a = consumer(&namesrv, "cache-a", "cache-sync", true, Some(disk_a.clone()), &seen);
    let _b = consumer(&namesrv, "cache-b", "cache-sync", true, Some(Arc::new(MemDisk::new())), &seen);
    let _c = consumer(&namesrv, "billing-1", "billing", false, None, &seen);
    let _d = consumer(&namesrv, "billing-2", "billing", false, None, &seen);
    for n in 1..20 {
        producer.send(Message::new("prices", format!("price-{n}").into_bytes())).await.expect("send");
    }
    let count = |id: &str| seen.lock().unwrap().get(id).map_or(0, Vec::len);
    wait_for("both cache consumers to get all 20", || count("cache-a") >= 20 && count("cache-b") >= 20).await;
    let billing = || {
        let seen = seen.lock().unwrap();
        let mut all: Vec<String> = ["billing-1", "billing-2"].iter().flat_map(|id| seen.get(*id).cloned().unwrap_or_default()).collect();
        all.sort();
        all.dedup();
        all.len()
    };
    wait_for("billing to split the 20", || billing() >= 20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((count("cache-a"), count("cache-b")), (20, 20), "each broadcast consumer once per message");
    // The clustering group shares them (at least once: a queue may pass
    // from one consumer to the other while the second joins).
    assert_eq!(billing(), 20, "the clustering group has every message");

    // cache-a stops; what is sent meanwhile it takes when it starts again
    // on its own disk, and nothing before it again.
    a.shutdown().await;
    for n in 20..30 {
        producer.send(Message::new("prices", format!("price-{n}").into_bytes())).await.expect("send");
    }
    let _a = consumer(&namesrv, "cache-a", "cache-sync", true, Some(disk_a), &seen);
    wait_for("cache-a to catch up", || count("cache-a") >= 30).await;
    wait_for("cache-b to get the rest", || count("cache-b") >= 30).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a_bodies = seen.lock().unwrap()["cache-a"].clone();
    assert_eq!(a_bodies.len(), 30, "resumed from its own offsets: {a_bodies:?}");
    let mut sorted = a_bodies.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 30);

    // An orderly broadcasting consumer is refused.
    let mut config = PushConsumerConfig::new("cache-sync", "prices", "*");
    config.broadcast = true;
    config.orderly = true;
    let refused = PushConsumer::start(ClientInstance::new(ClientConfig::new(vec![namesrv], "x"), Clock::new()), config, |_: &[MessageExt], _: &ConsumeContext| ConsumeResult::Success);
    assert!(refused.is_err());
}
