//! Request-reply, in one process over loopback TCP: a requester's message
//! is consumed by a responder, whose reply the broker pushes back to the
//! requester, which gets it under its correlation id; a request nobody
//! answers times out, and a reply to it afterwards is refused.
#![cfg(not(madsim))]

use broker::client::{AsyncListener, ClientConfig, ClientInstance, ConsumeContext, ConsumeResult, Producer, ProducerConfig, PushConsumer, PushConsumerConfig};
use broker::clock::Clock;
use broker::command::{ConsumeFrom, Refused};
use broker::model::{Message, MessageExt, PROPERTY_CORRELATION_ID};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;

use common::loopback_cluster;

fn producer(namesrv: &str, id: &str, group: &str) -> Producer {
    Producer::new(ClientInstance::new(ClientConfig::new(vec![namesrv.to_string()], id), Clock::new()), ProducerConfig::new(group)).expect("producer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_gets_its_reply_and_one_nobody_answers_times_out() {
    let namesrv = loopback_cluster().await;
    let requester = producer(&namesrv, "shop", "shops");
    // The topics exist before anyone subscribes.
    requester.send(Message::new("quotes", b"warm-up".to_vec())).await.expect("send");
    requester.send(Message::new("silent", b"warm-up".to_vec())).await.expect("send");

    // The responder answers every request on `quotes` with its price.
    let responder = Arc::new(producer(&namesrv, "pricer", "pricers"));
    let asked: Arc<Mutex<Vec<MessageExt>>> = Arc::default();
    let listener = {
        let (responder, asked) = (responder.clone(), asked.clone());
        AsyncListener(move |msgs: Vec<MessageExt>, _: ConsumeContext| {
            let (responder, asked) = (responder.clone(), asked.clone());
            async move {
                for m in msgs {
                    if m.message.properties.contains_key(PROPERTY_CORRELATION_ID) {
                        let body = format!("price of {}: 42", String::from_utf8_lossy(&m.message.body));
                        asked.lock().unwrap().push(m.clone());
                        responder.reply(&m, body.into_bytes()).await.expect("reply");
                    }
                }
                ConsumeResult::Success
            }
        })
    };
    let mut config = PushConsumerConfig::new("pricing", "quotes", "*");
    config.consume_from = ConsumeFrom::FirstOffset;
    config.rebalance_interval_ms = 300;
    config.long_polling_ms = 500;
    let _consumer = PushConsumer::start(ClientInstance::new(ClientConfig::new(vec![namesrv.clone()], "pricing-1"), Clock::new()), config, listener)
        .expect("consumer");

    let reply = requester.request(Message::new("quotes", b"apples".to_vec()), Duration::from_secs(20)).await.expect("a reply");
    assert_eq!(String::from_utf8_lossy(&reply.message.body), "price of apples: 42");
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(reply.message.properties.get(PROPERTY_CORRELATION_ID), asked[0].message.properties.get(PROPERTY_CORRELATION_ID));

    // Nobody consumes `silent`: the request times out, and a reply after
    // that finds no one waiting.
    let started = std::time::Instant::now();
    let err = requester.request(Message::new("silent", b"hello?".to_vec()), Duration::from_millis(800)).await.unwrap_err();
    assert!(matches!(err, broker::Error::Timeout(800)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut late = asked[0].clone();
    late.message.properties.insert(PROPERTY_CORRELATION_ID.into(), "gone".into());
    let refused = responder.reply(&late, b"too late".to_vec()).await.unwrap_err();
    assert!(matches!(&refused, broker::Error::Refused(r) if r.kind == Refused::NotFound), "{refused}");
    // A plain message cannot be answered.
    let plain = responder.reply(&MessageExt { message: Message::new("quotes", b"x".to_vec()), ..MessageExt::default() }, b"y".to_vec()).await.unwrap_err();
    assert!(matches!(&plain, broker::Error::Refused(r) if r.kind == Refused::Illegal), "{plain}");
}
