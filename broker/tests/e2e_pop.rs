//! Real mode, end to end, with the binaries on loopback: a SimpleConsumer
//! (POP) receives, acknowledges some messages and leaves the rest; the
//! broker is SIGKILLed and restarted on its store, and what was
//! acknowledged never comes again while what was not comes back as the
//! second attempt once its invisible time is over.
#![cfg(not(madsim))]

use broker::client::{ClientConfig, ClientInstance, Producer, ProducerConfig, SimpleConsumer, SimpleConsumerConfig};
use broker::clock::Clock;
use broker::command::{ConsumeFrom, Popped, Refused};
use broker::model::Message;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

mod common;

use common::*;

fn body(p: &Popped) -> String {
    String::from_utf8_lossy(&p.message.message.body).into_owned()
}

/// Receives until `want` distinct bodies came, or the deadline.
async fn receive_until(consumer: &SimpleConsumer, want: usize, invisible: Duration) -> BTreeMap<String, Popped> {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut got = BTreeMap::new();
    while got.len() < want {
        assert!(Instant::now() < deadline, "only {} of {want} received: {:?}", got.len(), got.keys());
        match consumer.receive(16, invisible).await {
            Ok(batch) => got.extend(batch.into_iter().map(|p| (body(&p), p))),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simple_consumer_keeps_its_acks_and_its_leases_across_a_broker_kill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut kill = Kill(Vec::new());
    let namesrv = namesrv_and_broker(&mut kill, dir.path(), "broker-s", "");
    let (code, _, err) = mqadmin(&namesrv, &["update-topic", "-t", "parcels", "-w", "2", "-r", "2"]);
    assert_eq!(code, 0, "{err}");
    let producer = Producer::new(ClientInstance::new(ClientConfig::new(vec![namesrv.clone()], "depot"), Clock::new()), ProducerConfig::new("depots"))
        .expect("producer");
    for n in 0..10 {
        producer.send(Message::new("parcels", format!("parcel-{n}").into_bytes())).await.expect("send");
    }
    let mut config = SimpleConsumerConfig::new("shipping", "parcels");
    config.consume_from = ConsumeFrom::FirstOffset;
    config.await_ms = 1_000;
    let mut client = ClientConfig::new(vec![namesrv.clone()], "shipper");
    client.heartbeat_ms = 500;
    let consumer = SimpleConsumer::new(ClientInstance::new(client, Clock::new()), config).expect("consumer");
    let invisible = Duration::from_secs(4);
    let first = receive_until(&consumer, 10, invisible).await;
    assert!(first.values().all(|p| p.handle.attempt == 1), "{first:?}");
    let kept = ["parcel-7", "parcel-8", "parcel-9"];
    for (name, p) in &first {
        if !kept.contains(&name.as_str()) {
            consumer.ack(&p.handle).await.expect("ack");
        }
    }

    // SIGKILL, and the same broker back on its store.
    let mut broker = kill.0.remove(1);
    broker.kill().expect("kill");
    broker.wait().expect("reap");
    let conf = dir.path().join("broker.conf");
    start(&mut kill, BROKER, &["-c", conf.to_str().expect("utf-8")], &dir.path().join("broker-2.log"), "broker broker-s listening on ");

    let again = receive_until(&consumer, 3, invisible).await;
    assert_eq!(again.keys().map(String::as_str).collect::<Vec<_>>(), kept, "only what was not acknowledged comes back");
    assert!(again.values().all(|p| p.handle.attempt == 2 && p.message.reconsume_times == 1), "{again:?}");
    let stale = consumer.ack(&first["parcel-7"].handle).await.expect_err("the first attempt's handle");
    assert!(matches!(&stale, broker::Error::Refused(r) if r.kind == Refused::HandleExpired), "{stale}");
    for p in again.values() {
        consumer.ack(&p.handle).await.expect("ack");
    }
    // Nothing is left: the group's progress is at the queues' ends.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, out, _) = mqadmin(&namesrv, &["consumer-progress", "-g", "shipping", "-t", "parcels"]);
        if code == 0 && out.contains("total diff: 0") {
            break;
        }
        assert!(Instant::now() < deadline, "the group's progress never reached the end: {out}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (code, members, err) = mqadmin(&namesrv, &["consumerConnection", "-g", "shipping"]);
    assert_eq!(code, 0, "{err}");
    assert!(members.contains("shipper"), "the simple consumer heartbeats its group: {members}");
}
