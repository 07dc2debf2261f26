//! Batch send, in one process over loopback TCP: one request stores its
//! messages in one queue, one after another, and a consumer gets them in
//! order; a batch of mixed topics, with a delayed message, too large or
//! empty is refused whole.
#![cfg(not(madsim))]

use broker::client::{ClientConfig, ClientInstance, ConsumeContext, ConsumeResult, Producer, ProducerConfig, PushConsumer, PushConsumerConfig};
use broker::clock::Clock;
use broker::command::{ConsumeFrom, Refused};
use broker::model::{Message, MessageExt};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::loopback_cluster;

fn refusal(e: broker::Error) -> Refused {
    match e {
        broker::Error::Refused(r) => r.kind,
        other => panic!("not a refusal: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_stored_in_one_queue_in_order_and_a_bad_one_is_refused_whole() {
    let namesrv = loopback_cluster().await;
    let producer = Producer::new(ClientInstance::new(ClientConfig::new(vec![namesrv.clone()], "feed"), Clock::new()), ProducerConfig::new("feeds"))
        .expect("producer");
    let batch: Vec<Message> = (0..10).map(|n| Message::new("ticks", format!("tick-{n}").into_bytes()).with_key(format!("k{n}"))).collect();
    let results = producer.send_batch(batch).await.expect("batch");
    assert_eq!(results.len(), 10);
    assert!(results.iter().all(|r| r.is_ok() && r.queue_id == results[0].queue_id && r.broker_name == results[0].broker_name));
    let offsets: Vec<u64> = results.iter().map(|r| r.queue_offset).collect();
    assert_eq!(offsets, (offsets[0]..offsets[0] + 10).collect::<Vec<_>>(), "one after another in one queue");
    let mut ids: Vec<&str> = results.iter().map(|r| r.msg_id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 10, "each message its own id");

    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut config = PushConsumerConfig::new("tickers", "ticks", "*");
    config.consume_from = ConsumeFrom::FirstOffset;
    config.rebalance_interval_ms = 300;
    config.long_polling_ms = 500;
    let listener = {
        let seen = seen.clone();
        move |msgs: &[MessageExt], _: &ConsumeContext| {
            seen.lock().unwrap().extend(msgs.iter().map(|m| String::from_utf8_lossy(&m.message.body).into_owned()));
            ConsumeResult::Success
        }
    };
    let _consumer = PushConsumer::start(ClientInstance::new(ClientConfig::new(vec![namesrv.clone()], "ticker"), Clock::new()), config, listener).expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().len() < 10 {
        assert!(Instant::now() < deadline, "the batch was not all consumed: {:?}", seen.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut got = seen.lock().unwrap().clone();
    got.sort_by_key(|b| b.trim_start_matches("tick-").parse::<u32>().unwrap());
    assert_eq!(got, (0..10).map(|n| format!("tick-{n}")).collect::<Vec<_>>());

    let mixed = vec![Message::new("ticks", b"a".to_vec()), Message::new("other", b"b".to_vec())];
    assert_eq!(refusal(producer.send_batch(mixed).await.unwrap_err()), Refused::Illegal);
    let mut delayed = Message::new("ticks", b"later".to_vec());
    delayed.delay_level = 2;
    assert_eq!(refusal(producer.send_batch(vec![Message::new("ticks", b"now".to_vec()), delayed]).await.unwrap_err()), Refused::Illegal);
    let big: Vec<Message> = (0..5).map(|_| Message::new("ticks", vec![b'x'; 1024 * 1024])).collect();
    assert_eq!(refusal(producer.send_batch(big).await.unwrap_err()), Refused::Illegal, "5 MiB of bodies in one batch");
    assert_eq!(refusal(producer.send_batch(Vec::new()).await.unwrap_err()), Refused::Illegal);
    // Nothing of the refused batches was stored.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(seen.lock().unwrap().len(), 10);
}
