//! Real mode, in one process over loopback TCP: transactions with
//! check-back, and timer messages.
//!
//! - A producer whose local transaction answers unknown goes away; the
//!   broker checks back over the connection of another producer of the
//!   group, which commits. The message arrives with the half's id, key and
//!   body. A rolled-back half never arrives; an end repeated after the
//!   commit writes no second copy.
//! - A half no producer answers is moved aside after the most checks.
//! - Timer messages arrive no earlier than their delivery time; one set
//!   past the maximum is refused.
#![cfg(not(madsim))]

use broker::client::{
    AsyncListener, ClientConfig, ClientInstance, ConsumeContext, ConsumeResult, Producer, ProducerConfig, PushConsumer, PushConsumerConfig,
    TransactionListener, TransactionProducer,
};
use broker::clock::Clock;
use broker::model::{Message, MessageExt, TransactionState, CHECK_MAX_TOPIC, PROPERTY_HALF_OFFSET};
use broker::namesrv::{NameServer, NameServerConfig};
use broker::command::{ConsumeFrom, EndTransaction, QueryMessageByUniqueId};
use broker::server::{Broker, BrokerConfig};
use broker::store::MemDisk;
use futures::future::BoxFuture;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

struct Cluster {
    namesrv: String,
    broker_addr: String,
}

async fn cluster(check_max: u32) -> Cluster {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let namesrv = listener.local_addr().unwrap().to_string();
    tokio::spawn(NameServer::new(NameServerConfig::default(), Clock::new()).serve(listener));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let broker_addr = listener.local_addr().unwrap().to_string();
    let mut config = BrokerConfig::new("broker-a", broker_addr.clone());
    config.namesrv_addrs = vec![namesrv.clone()];
    config.transaction_timeout_ms = 300;
    config.transaction_check_interval_ms = 200;
    config.transaction_check_max = check_max;
    config.timer_max_delay_ms = 60_000;
    let broker = Broker::open(config, Arc::new(MemDisk::new()), Clock::new()).unwrap();
    tokio::spawn(broker.serve(listener));
    // Sends need a route: wait until the broker has registered.
    let probe = ClientInstance::new(ClientConfig::new(vec![namesrv.clone()], "probe"), Clock::new());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !probe.cluster().await.is_ok_and(|brokers| !brokers.is_empty()) {
        assert!(Instant::now() < deadline, "the broker never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Cluster { namesrv, broker_addr }
}

fn client(c: &Cluster, id: &str) -> Arc<ClientInstance> {
    let mut config = ClientConfig::new(vec![c.namesrv.clone()], id);
    config.heartbeat_ms = 200;
    ClientInstance::new(config, Clock::new())
}

/// Answers the local transaction and every check with fixed states, and
/// counts the checks.
struct Fixed {
    execute: TransactionState,
    check: TransactionState,
    checks: Arc<Mutex<Vec<String>>>,
}

impl TransactionListener for Fixed {
    fn execute(&self, _msg: &Message, _half: &broker::command::SendResult) -> BoxFuture<'static, TransactionState> {
        let state = self.execute;
        Box::pin(async move { state })
    }
    fn check(&self, half: MessageExt, _check_times: u32) -> BoxFuture<'static, TransactionState> {
        self.checks.lock().unwrap().push(half.msg_id());
        let state = self.check;
        Box::pin(async move { state })
    }
}

fn fixed(execute: TransactionState, check: TransactionState) -> (Arc<Fixed>, Arc<Mutex<Vec<String>>>) {
    let checks = Arc::new(Mutex::new(Vec::new()));
    (Arc::new(Fixed { execute, check, checks: checks.clone() }), checks)
}

/// A consumer that keeps (receipt time, message) of everything it takes.
async fn consume(c: &Cluster, group: &str, topic: &str) -> (PushConsumer, Arc<Mutex<Vec<(Instant, MessageExt)>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let mut config = PushConsumerConfig::new(group, topic, "*");
    config.consume_from = ConsumeFrom::FirstOffset;
    config.rebalance_interval_ms = 200;
    let listener = AsyncListener(move |msgs: Vec<MessageExt>, _ctx: ConsumeContext| {
        let sink = sink.clone();
        async move {
            let now = Instant::now();
            sink.lock().unwrap().extend(msgs.into_iter().map(|m| (now, m)));
            ConsumeResult::Success
        }
    });
    let consumer = PushConsumer::start(client(c, &format!("{group}-consumer")), config, listener).unwrap();
    (consumer, got)
}

async fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_back_reaches_another_producer_of_the_group_and_ends_each_half_once() {
    let c = cluster(15).await;
    let (consumer, got) = consume(&c, "billing", "payments").await;

    // The sender's local transaction stays unknown, and it goes away.
    let (unsure, unsure_checks) = fixed(TransactionState::Unknown, TransactionState::Unknown);
    let sender_client = client(&c, "sender");
    let sender = TransactionProducer::start(sender_client.clone(), ProducerConfig::new("payments-tx"), unsure).unwrap();
    let pending = sender.send_in_transaction(Message::new("payments", "pay 10").with_key("order-1")).await.unwrap();
    assert_eq!(pending.state, TransactionState::Unknown);
    sender.shutdown();
    sender_client.reset_connections().await;
    drop(sender);

    // Another instance of the group commits what it is asked about.
    let (sure, checks) = fixed(TransactionState::Commit, TransactionState::Commit);
    let _other = TransactionProducer::start(client(&c, "other"), ProducerConfig::new("payments-tx"), sure).unwrap();
    wait_for("the committed half to arrive", Duration::from_secs(15), || !got.lock().unwrap().is_empty()).await;
    let (_, m) = got.lock().unwrap()[0].clone();
    assert_eq!(m.msg_id(), pending.half.msg_id, "the committed message keeps the half's id");
    assert_eq!(m.message.keys, ["order-1"]);
    assert_eq!(m.message.body, b"pay 10");
    assert!(m.message.properties.contains_key(PROPERTY_HALF_OFFSET));
    assert!(!checks.lock().unwrap().is_empty(), "the other producer was checked");
    assert!(unsure_checks.lock().unwrap().is_empty(), "the producer that left was asked");

    // Repeating the commit writes nothing new.
    let offset = broker::model::parse_offset_msg_id(&pending.half.offset_msg_id).unwrap().1;
    let again = EndTransaction {
        producer_group: "payments-tx".into(),
        commit_log_offset: offset,
        msg_id: pending.half.msg_id.clone(),
        state: TransactionState::Commit,
        from_check: false,
    };
    let admin = client(&c, "admin");
    admin.call(&c.broker_addr, again, Duration::from_secs(3)).await.unwrap();

    // A rolled-back half never arrives.
    let (rollback, _) = fixed(TransactionState::Rollback, TransactionState::Rollback);
    let roller = TransactionProducer::start(client(&c, "roller"), ProducerConfig::new("refunds-tx"), rollback).unwrap();
    let r = roller.send_in_transaction(Message::new("payments", "refund").with_key("order-3")).await.unwrap();
    assert_eq!((r.state, r.end.clone()), (TransactionState::Rollback, Ok(())));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = got.lock().unwrap().clone();
    let ids: Vec<String> = got.iter().map(|(_, m)| m.msg_id()).collect();
    assert!(!ids.contains(&r.half.msg_id), "a rolled-back half was delivered");
    let copies = ids.iter().filter(|id| **id == pending.half.msg_id).count();
    assert_eq!(copies, 1, "the repeated commit wrote a second copy: {ids:?}");
    consumer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_nobody_answers_is_moved_aside_after_the_most_checks() {
    let c = cluster(3).await;
    let (unsure, checks) = fixed(TransactionState::Unknown, TransactionState::Unknown);
    let producer = TransactionProducer::start(client(&c, "p"), ProducerConfig::new("stuck-tx"), unsure).unwrap();
    let sent = producer.send_in_transaction(Message::new("ledger", "entry").with_key("k")).await.unwrap();
    let admin = client(&c, "admin");
    wait_for("the half to be moved aside", Duration::from_secs(15), || checks.lock().unwrap().len() >= 3).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = admin.call(&c.broker_addr, QueryMessageByUniqueId { id: sent.half.msg_id.clone() }, admin.timeout()).await;
        if let Ok(found) = found {
            if found.iter().any(|m| m.message.topic == CHECK_MAX_TOPIC) {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the half was not moved to {CHECK_MAX_TOPIC}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(checks.lock().unwrap().len(), 3, "checks went on after the most");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_arrive_no_earlier_than_their_time_and_too_far_is_refused() {
    let c = cluster(15).await;
    let (consumer, got) = consume(&c, "alarms", "wakeups").await;
    let producer = Producer::new(client(&c, "timer-producer"), ProducerConfig::new("timers")).unwrap();
    let clock = Clock::new();
    let mut due = Vec::new();
    for (i, delay) in [1_500u64, 300, 900].into_iter().enumerate() {
        let at = clock.now_ms() + delay;
        let sent = producer.send(Message::new("wakeups", format!("t{i}")).with_deliver_at(at)).await.unwrap();
        due.push((sent.msg_id, at));
    }
    let relative = producer.send(Message::new("wakeups", "rel").with_timer_delay_ms(600)).await.unwrap();
    let far = producer.send(Message::new("wakeups", "far").with_timer_delay_ms(61_000)).await.unwrap_err();
    assert!(far.to_string().contains("more than the 60 s allowed"), "{far}");
    wait_for("four timers", Duration::from_secs(10), || got.lock().unwrap().len() >= 4).await;
    let got = got.lock().unwrap().clone();
    for (id, at) in &due {
        let (_, m) = got.iter().find(|(_, m)| &m.msg_id() == id).expect("timer delivered");
        assert!(m.store_timestamp_ms >= *at, "timer {id} stored in its topic at {} before its time {at}", m.store_timestamp_ms);
    }
    assert!(got.iter().any(|(_, m)| m.msg_id() == relative.msg_id));
    consumer.shutdown().await;
}
