//! Real mode, end to end, with the binaries on loopback: an operator
//! resets a running group's offsets with `mqadmin`.
//!
//! A push consumer consumes a topic's 20 messages; `mqadmin
//! resetOffsetByTime` to a time before the first send makes it consume all
//! 20 again while it keeps running, and `mqadmin skipAccumulatedMessage`
//! makes it skip a backlog sent while it was down. Both print where each
//! queue went. On the way, `topicRoute`, `consumerConnection` and
//! `brokerStatus` show the topic's broker, the group's member and the
//! broker's count of stored messages, and `deleteTopic` removes a topic
//! from the route.
#![cfg(not(madsim))]

use broker::client::{ClientConfig, ClientInstance, ConsumeContext, ConsumeResult, Producer, ProducerConfig, PushConsumer, PushConsumerConfig};
use broker::clock::Clock;
use broker::command::ConsumeFrom;
use broker::model::{Message, MessageExt};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;

use common::*;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() as u64
}

async fn wait_for(what: &str, deadline: Instant, done: impl Fn() -> bool) {
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqadmin_rewinds_a_running_group_to_a_time_and_skips_its_backlog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut kill = Kill(Vec::new());
    let namesrv = namesrv_and_broker(&mut kill, dir.path(), "broker-o", "");
    let (code, _, err) = mqadmin(&namesrv, &["update-topic", "-t", "prices", "-w", "2", "-r", "2"]);
    assert_eq!(code, 0, "{err}");

    // Every delivery's body, in order.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let listener = {
        let seen = seen.clone();
        move |msgs: &[MessageExt], _: &ConsumeContext| {
            seen.lock().unwrap().extend(msgs.iter().map(|m| String::from_utf8_lossy(&m.message.body).into_owned()));
            ConsumeResult::Success
        }
    };
    let mut config = PushConsumerConfig::new("pricing", "prices", "*");
    config.consume_from = ConsumeFrom::FirstOffset;
    config.rebalance_interval_ms = 1_000;
    config.offset_persist_interval_ms = 200;
    config.long_polling_ms = 1_000;
    let consumer = PushConsumer::start(ClientInstance::new(ClientConfig::new(vec![namesrv.clone()], "pricer"), Clock::new()), config.clone(), listener.clone())
        .expect("consumer");
    let producer = Producer::new(ClientInstance::new(ClientConfig::new(vec![namesrv.clone()], "feed"), Clock::new()), ProducerConfig::new("feeds"))
        .expect("producer");
    let before_first = now_ms() - 1;
    let first: BTreeSet<String> = (0..20).map(|n| format!("price-{n}")).collect();
    for body in &first {
        producer.send(Message::new("prices", body.as_bytes().to_vec())).await.expect("send");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    wait_for("the first 20 deliveries", deadline, || seen.lock().unwrap().len() >= 20).await;
    // Committed before the reset, so the rewind really moves offsets back.
    wait_for("the commits", deadline, || mqadmin(&namesrv, &["consumer-progress", "-g", "pricing", "-t", "prices"]).1.contains("total diff: 0")).await;

    // What an operator looks at first: where the topic lives, who is in
    // the group, what the broker holds.
    let (code, route, err) = mqadmin(&namesrv, &["topicRoute", "-t", "prices"]);
    assert_eq!(code, 0, "{err}");
    assert!(route.contains("broker-o") && route.contains("MASTER"), "{route}");
    let addr = route.split_whitespace().find(|w| w.starts_with("127.0.0.1:")).expect("the broker's address in the route").to_string();
    let (code, members, err) = mqadmin(&namesrv, &["consumerConnection", "-g", "pricing"]);
    assert_eq!(code, 0, "{err}");
    assert!(members.contains("pricer"), "{members}");
    let (code, status, err) = mqadmin(&namesrv, &["brokerStatus", "-b", &addr]);
    assert_eq!(code, 0, "{err}");
    let puts = status.lines().find(|l| l.starts_with("putMessageCount")).and_then(|l| l.split(':').nth(1)).map(str::trim);
    assert_eq!(puts, Some("20"), "{status}");
    let (code, settings, err) = mqadmin(&namesrv, &["getBrokerConfig", "-b", &addr]);
    assert_eq!(code, 0, "{err}");
    assert!(settings.lines().any(|l| l == "brokerName=broker-o") && settings.lines().any(|l| l == "flushDiskType=SYNC_FLUSH"), "{settings}");
    let (code, _, err) = mqadmin(&namesrv, &["consumerConnection", "-g", "nobody-ever"]);
    assert_eq!(code, 1);
    assert!(err.contains("never had a member"), "{err}");

    let (code, out, err) = mqadmin(&namesrv, &["resetOffsetByTime", "-g", "pricing", "-t", "prices", "-s", &before_first.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("broker-o") && out.contains("GENERATION"), "{out}");
    wait_for("every message again after the rewind", deadline, || {
        let seen = seen.lock().unwrap();
        seen.len() > 20 && seen[20..].iter().cloned().collect::<BTreeSet<_>>() == first
    })
    .await;

    // A backlog piles up while the group is down; skipping it, the group
    // comes back at the queues' ends.
    consumer.shutdown().await;
    let delivered_before_backlog = seen.lock().unwrap().len();
    for n in 0..10 {
        producer.send(Message::new("prices", format!("stale-{n}").into_bytes())).await.expect("send");
    }
    let (code, out, err) = mqadmin(&namesrv, &["skipAccumulatedMessage", "-g", "pricing", "-t", "prices"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("broker-o"), "{out}");
    let consumer = PushConsumer::start(ClientInstance::new(ClientConfig::new(vec![namesrv.clone()], "pricer-2"), Clock::new()), config, listener)
        .expect("consumer");
    // Taken at the ends, then one message more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    producer.send(Message::new("prices", b"fresh".to_vec())).await.expect("send");
    wait_for("the message sent after the skip", deadline, || seen.lock().unwrap().iter().any(|b| b == "fresh")).await;
    let after: Vec<String> = seen.lock().unwrap()[delivered_before_backlog..].to_vec();
    assert_eq!(after, ["fresh"], "the skipped backlog was consumed");

    // A topic made for nothing is deleted: gone from the route.
    let (code, _, err) = mqadmin(&namesrv, &["update-topic", "-t", "scratch", "-w", "1", "-r", "1"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = mqadmin(&namesrv, &["deleteTopic", "-t", "scratch"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deleted topic scratch on broker-o"), "{out}");
    let (code, _, err) = mqadmin(&namesrv, &["topicRoute", "-t", "scratch"]);
    assert_eq!(code, 1, "the deleted topic still has a route: {err}");

    let (code, _, err) = mqadmin(&namesrv, &["resetOffsetByTime", "-g", "pricing", "-t", "prices", "-s", "yesterday"]);
    assert_eq!(code, 2, "a bad time is a usage error: {err}");
    assert!(err.contains("RFC 3339"), "{err}");
    let (code, _, err) = mqadmin(&namesrv, &["skipAccumulatedMessage", "-g", "pricing", "-t", "no-such-topic"]);
    assert_eq!(code, 1);
    assert!(!err.is_empty());
    consumer.shutdown().await;
}
