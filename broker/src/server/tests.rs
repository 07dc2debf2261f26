//! Broker tests in real mode, against an in-memory disk.

use super::*;
use crate::model::{Message, TopicConfig};
use crate::net::Service;
use crate::protocol::{Response, ResponseCode};
use crate::command::{ConsumerSendMsgBack, CreateTopic, QueryConsumerOffset, EndTransaction, GetBrokerRuntimeInfo, HeartbeatProducer, PullMessage, ReplicaPull, SendMessage, UpdateConsumerOffset};
use super::test_disk::GatedDisk;
use crate::store::MemDisk;
use std::sync::atomic::Ordering;
use std::time::Instant;

fn send(topic: &str, body: &str) -> Request {
    Request::SendMessage(SendMessage {
        producer_group: "pg".into(),
        queue_id: 0,
        message: Message::new(topic, body.as_bytes().to_vec()),
        born_timestamp_ms: 0,
        born_host: "test".into(),
        default_topic_queues: 4,
    })
}

fn peer() -> SocketAddr {
    "127.0.0.1:1".parse().unwrap()
}

/// The commit log's fsync runs without the store lock: while one is stuck,
/// the store stays available to pulls and other puts, and only the sends
/// waiting for durability wait (RocketMQ's flush service works the same
/// way). A slow fsync in the simulation is spent at the same place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_lock_is_free_while_an_fsync_runs() {
    let disk = GatedDisk::default();
    let mut config = BrokerConfig::new("broker-a", "127.0.0.1:0");
    config.flush = FlushMode::Sync;
    config.flush_interval_ms = 20;
    let broker = Broker::open(config, Arc::new(disk.clone()), Clock::new()).unwrap();
    broker.spawn_loops();
    disk.close();
    let sender = broker.clone();
    let waiting_send = tokio::spawn(async move { sender.apply(send("orders", "first"), peer()).await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while disk.waiting() == 0 {
        assert!(Instant::now() < deadline, "the flusher never started an fsync");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The flusher is inside the fsync now. The store must be lockable.
    let free = (0..200).any(|_| {
        let free = broker.store.try_lock().is_ok();
        if !free {
            std::thread::sleep(Duration::from_millis(10));
        }
        free
    });
    disk.open();
    assert!(free, "the store lock was held for the whole fsync");
    let response = waiting_send.await.unwrap();
    assert_eq!(response.code, ResponseCode::Success, "{response:?}");
}

/// Regression: one client could stop the broker. A send whose encoded
/// entry exceeded what the store accepts panicked inside `put` with the
/// store lock held, and every later request panicked on the poisoned lock.
/// Now it is refused with MessageIllegal naming the limit, and the broker
/// goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_past_the_limits_is_refused_and_the_broker_goes_on() {
    let disk = GatedDisk::default();
    let broker = Broker::open(BrokerConfig::new("broker-a", "127.0.0.1:0"), Arc::new(disk), Clock::new()).unwrap();
    let Request::SendMessage(SendMessage { producer_group, queue_id, mut message, born_timestamp_ms, born_host, default_topic_queues }) =
        send("orders", "")
    else {
        unreachable!()
    };
    message.body = vec![7; 4 * 1024 * 1024];
    message.properties.insert("blob".into(), "x".repeat(1_200_000));
    let huge = Request::SendMessage(SendMessage { producer_group, queue_id, message, born_timestamp_ms, born_host, default_topic_queues });
    let refused = broker.apply(huge, peer()).await;
    assert_eq!(refused.code, ResponseCode::MessageIllegal, "{refused:?}");
    assert!(refused.remark.contains("32767"), "{}", refused.remark);
    let accepted = broker.apply(send("orders", "next"), peer()).await;
    assert_eq!(accepted.code, ResponseCode::Success, "{accepted:?}");
}

/// Regression (found by the progress check): a write that failed on a full
/// disk broke the store for good, so the broker refused every send until an
/// operator restarted it, long after the disk had room again. The broker now
/// reopens a broken store itself once the disk lets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_broken_by_a_full_disk_takes_sends_again_once_the_disk_has_room() {
    let disk = GatedDisk::default();
    let broker = Broker::open(BrokerConfig::new("broker-a", "127.0.0.1:0"), Arc::new(disk.clone()), Clock::new()).unwrap();
    broker.spawn_loops();
    assert_eq!(broker.apply(send("orders", "before"), peer()).await.code, ResponseCode::Success);
    disk.full.store(true, Ordering::Relaxed);
    let refused = broker.apply(send("orders", "while full"), peer()).await;
    assert_ne!(refused.code, ResponseCode::Success, "{refused:?}");
    disk.full.store(false, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = broker.apply(send("orders", "after"), peer()).await;
        if response.code == ResponseCode::Success {
            break;
        }
        assert!(Instant::now() < deadline, "the broker still refuses sends after the disk has room: {response:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A topic is refused with an error naming what is wrong: its name, its
/// queue counts, its permission bits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topic_names_each_bad_value() {
    let broker = Broker::open(BrokerConfig::new("broker-a", "127.0.0.1:0"), Arc::new(GatedDisk::default()), Clock::new()).unwrap();
    let create = |config: TopicConfig| Request::CreateTopic(CreateTopic { config });
    let cases = [
        (TopicConfig::new("bad name", 4), "contains ' '"),
        (TopicConfig::new("t".repeat(128), 4), "longer than 127"),
        (TopicConfig::new("orders", 0), "queue counts must be in 1..=1024"),
        (TopicConfig::new("orders", 5000), "queue counts must be in 1..=1024"),
        (TopicConfig { perm: 255, ..TopicConfig::new("orders", 4) }, "perm 255 is not a combination"),
    ];
    for (config, wanted) in cases {
        let response = broker.apply(create(config), peer()).await;
        assert_eq!(response.code, ResponseCode::MessageIllegal, "{response:?}");
        assert!(response.remark.contains(wanted), "{:?} does not say {wanted:?}", response.remark);
    }
    assert_eq!(broker.apply(create(TopicConfig::new("orders", 4)), peer()).await.code, ResponseCode::Success);
}

fn delayed(topic: &str, body: &str, level: u32) -> Request {
    let Request::SendMessage(SendMessage { producer_group, queue_id, message, born_timestamp_ms, born_host, default_topic_queues }) = send(topic, body) else {
        unreachable!()
    };
    let message = message.with_delay_level(level);
    Request::SendMessage(SendMessage { producer_group, queue_id, message, born_timestamp_ms, born_host, default_topic_queues })
}

/// Bodies readable in queue 0 of `topic` now.
fn bodies(broker: &Broker, topic: &str) -> Vec<String> {
    let store = broker.store.lock().unwrap();
    let got = store.get(topic, 0, 0, 100, u64::MAX, &|_| true).unwrap();
    got.messages.iter().map(|m| String::from_utf8_lossy(&m.message.body).into_owned()).collect()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn short_levels() -> BrokerConfig {
    let mut config = BrokerConfig::new("broker-a", "127.0.0.1:0");
    config.delay_levels = crate::model::DelayLevels::parse("300ms 600ms 2s").unwrap();
    config.offset_persist_interval_ms = 50;
    config.flush_interval_ms = 20;
    config
}

/// A message sent with a delay level reaches its topic no earlier than
/// the level's delay, with its body, key and id, and a level past the
/// table waits as long as the last level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_message_reaches_its_topic_once_its_level_has_passed() {
    let broker = Broker::open(short_levels(), Arc::new(MemDisk::new()), Clock::new()).unwrap();
    broker.spawn_loops();
    let start = Instant::now();
    let sent = broker.apply(delayed("orders", "later", 2), peer()).await;
    assert_eq!(sent.code, ResponseCode::Success, "{sent:?}");
    assert!(bodies(&broker, "orders").is_empty(), "delivered at once");
    wait_for("the delayed message arrives", || !bodies(&broker, "orders").is_empty()).await;
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(600), "delivered after {waited:?}, before its 600 ms level");
    assert_eq!(bodies(&broker, "orders"), ["later"]);
    let far = broker.apply(delayed("orders", "far", 99), peer()).await;
    assert_eq!(far.code, ResponseCode::Success);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(bodies(&broker, "orders"), ["later"], "a level past the table waits as long as the last (2 s)");
    wait_for("the clamped message arrives", || bodies(&broker, "orders").len() == 2).await;
}

/// Producers may not write the broker's own topics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_to_system_topics_are_refused() {
    let broker = Broker::open(short_levels(), Arc::new(MemDisk::new()), Clock::new()).unwrap();
    for topic in [crate::model::SCHEDULE_TOPIC, "%RETRY%billing", "%DLQ%billing"] {
        let response = broker.apply(send(topic, "x"), peer()).await;
        assert_eq!(response.code, ResponseCode::NoPermission, "{topic}: {response:?}");
        assert!(response.remark.contains("system topic"), "{}", response.remark);
    }
}

/// Delay progress is persisted only as far as the copies it delivered are
/// durable: a power loss that takes a delivered copy back makes the broker
/// deliver it again, never skip it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_loss_never_skips_a_delayed_message() {
    let disk = MemDisk::new();
    let mut config = short_levels();
    // Nothing is flushed by the loops: the test decides what is durable.
    config.flush_interval_ms = 3_600_000;
    config.checkpoint_interval_ms = 3_600_000;
    let broker = Broker::open(config.clone(), Arc::new(disk.clone()), Clock::new()).unwrap();
    broker.spawn_loops();
    assert_eq!(broker.apply(delayed("orders", "first", 1), peer()).await.code, ResponseCode::Success);
    broker.store.lock().unwrap().flush().unwrap();
    wait_for("the copy is delivered", || !bodies(&broker, "orders").is_empty()).await;
    // The copy is not durable: persisting progress must not move past it.
    broker.persist_schedule();
    disk.power_loss(|_| 0);
    drop(broker);
    let reopened = Broker::open(config, Arc::new(disk.clone()), Clock::new()).unwrap();
    assert!(bodies(&reopened, "orders").is_empty(), "the power loss took the copy back");
    reopened.spawn_loops();
    wait_for("the message is delivered again", || bodies(&reopened, "orders") == ["first"]).await;
}

/// A broker clock set back after a message was stored does not hold it
/// for the step on top of its delay, nor let it out early: it is due one
/// whole delay after the step was noticed. (RocketMQ delivers it at once,
/// up to a whole delay early, after any step back; the swarm found retries
/// a full level early that way.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_set_back_neither_strands_nor_hurries_a_delayed_message() {
    let clock = Clock::new();
    let mut config = short_levels();
    config.delay_levels = crate::model::DelayLevels::parse("1s").unwrap();
    let broker = Broker::open(config, Arc::new(MemDisk::new()), clock.clone()).unwrap();
    clock.set_offset_ms(3_600_000);
    let start = Instant::now();
    assert_eq!(broker.apply(delayed("orders", "skewed", 1), peer()).await.code, ResponseCode::Success);
    // A step back of a millisecond below the store time, then an hour.
    clock.set_offset_ms(3_600_000 - 1);
    broker.spawn_loops();
    tokio::time::sleep(Duration::from_millis(300)).await;
    clock.set_offset_ms(0);
    wait_for("the message is delivered", || !bodies(&broker, "orders").is_empty()).await;
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(1), "delivered {waited:?} after it was stored, before its 1 s delay");
    assert!(waited < Duration::from_secs(5), "held {waited:?}: the hour the clock stepped back was added");
}

/// A connection that serves nothing, over an in-memory stream.
fn loose_connection() -> Arc<crate::net::Connection> {
    struct Nothing;
    impl crate::net::Inbound for Nothing {
        fn handle(self: Arc<Self>, _r: Request, _c: Arc<crate::net::Connection>) -> futures::future::BoxFuture<'static, Response> {
            Box::pin(async { Response::error(ResponseCode::RequestNotSupported, "nothing") })
        }
    }
    let (stream, _other) = tokio::io::duplex(1024);
    std::mem::forget(_other);
    crate::net::Connection::start(stream, "peer".into(), Arc::new(Nothing), || {})
}

/// Regression (found by the swarm): a producer that reconnected from the
/// same address before the broker noticed its old connection close lost
/// its link: the late close removed the new connection, and the broker
/// never checked back with the producer again (madsim reuses ports; so
/// may a NAT). A close now leaves a live connection of the address alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_close_of_an_old_connection_keeps_the_new_one_from_the_same_address() {
    let broker = Broker::open(BrokerConfig::new("broker-a", "127.0.0.1:0"), Arc::new(MemDisk::new()), Clock::new()).unwrap();
    let (old, new) = (loose_connection(), loose_connection());
    broker.opened(peer(), &old);
    let heartbeat = Request::HeartbeatProducer(HeartbeatProducer { client_id: "p1".into(), groups: vec!["pay".into()] });
    broker.apply(heartbeat.clone(), peer()).await;
    old.close();
    broker.opened(peer(), &new);
    broker.closed(peer());
    assert!(broker.links.lock().unwrap().get(&peer()).is_some_and(|p| p.is_live()), "the new connection lost its link");
    assert_eq!(broker.producers.lock().unwrap().members("pay").len(), 1, "the producer left its group");
    new.close();
    broker.closed(peer());
    assert!(broker.links.lock().unwrap().is_empty());
    assert!(broker.producers.lock().unwrap().members("pay").is_empty());
}

fn runtime(response: Response) -> crate::command::RuntimeInfo {
    match response.body {
        crate::protocol::ResponseBody::Runtime(info) => info,
        other => panic!("not runtime info: {other:?}"),
    }
}

/// A reopened broker knows which halves ended (from the op records) and
/// which timers wait (from the timer log), and a half's check count
/// survives with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halves_their_ends_check_counts_and_timers_survive_a_reopen() {
    use crate::model::{TransactionState, PROPERTY_TRANSACTION};
    let disk = MemDisk::new();
    let open = || Broker::open(BrokerConfig::new("broker-a", "127.0.0.1:0"), Arc::new(disk.clone()), Clock::new()).unwrap();
    let broker = open();
    let half = |body: &str| {
        let Request::SendMessage(SendMessage { producer_group, queue_id, message, born_timestamp_ms, born_host, default_topic_queues }) = send("orders", body)
        else {
            unreachable!()
        };
        let message = message.with_property(PROPERTY_TRANSACTION, "true").with_property(crate::model::PROPERTY_UNIQ_KEY, format!("id-{body}"));
        Request::SendMessage(SendMessage { producer_group, queue_id, message, born_timestamp_ms, born_host, default_topic_queues })
    };
    let sent = broker.apply(half("ended"), peer()).await;
    let crate::protocol::ResponseBody::Send(result) = sent.body else { panic!("{sent:?}") };
    let offset = crate::model::parse_offset_msg_id(&result.offset_msg_id).unwrap().1;
    let end = Request::EndTransaction(EndTransaction {
        producer_group: "pg".into(),
        commit_log_offset: offset,
        msg_id: "id-ended".into(),
        state: TransactionState::Commit,
        from_check: false,
    });
    assert_eq!(broker.apply(end.clone(), peer()).await.code, ResponseCode::Success);
    assert_eq!(broker.apply(half("open"), peer()).await.code, ResponseCode::Success);
    broker.transactions.lock().unwrap().checked(1);
    broker.persist_checks();
    let Request::SendMessage(SendMessage { producer_group, queue_id, message, born_timestamp_ms, born_host, default_topic_queues }) = send("orders", "later")
    else {
        unreachable!()
    };
    let timer = Request::SendMessage(SendMessage {
        producer_group,
        queue_id,
        message: message.with_timer_delay_ms(600_000),
        born_timestamp_ms,
        born_host,
        default_topic_queues,
    });
    assert_eq!(broker.apply(timer, peer()).await.code, ResponseCode::Success);
    let before = runtime(broker.apply(Request::GetBrokerRuntimeInfo(GetBrokerRuntimeInfo), peer()).await);
    assert_eq!((before.halves_pending, before.timers_pending), (1, 1));
    broker.store.lock().unwrap().flush().unwrap();
    drop(broker);

    let reopened = open();
    let after = runtime(reopened.apply(Request::GetBrokerRuntimeInfo(GetBrokerRuntimeInfo), peer()).await);
    assert_eq!((after.halves_pending, after.timers_pending), (1, 1), "the ended half stays ended, the timer waits");
    assert_eq!(reopened.transactions.lock().unwrap().checks(1), 1, "the open half's check count survived");
    assert_eq!(reopened.apply(end, peer()).await.code, ResponseCode::Success, "a repeated end is answered");
    assert_eq!(bodies(&reopened, "orders"), ["ended"], "and writes no second copy");
}

/// A SYNC_MASTER whose slave pulls but does not catch up answers
/// FLUSH_SLAVE_TIMEOUT once `slaveTimeout` passes; with no slave at all,
/// SLAVE_NOT_AVAILABLE at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_master_times_out_on_a_slave_that_does_not_catch_up() {
    let mut config = BrokerConfig::new("broker-a", "127.0.0.1:0");
    config.role = ReplicationRole::SyncMaster;
    config.slave_timeout_ms = 200;
    let broker = Broker::open(config, Arc::new(MemDisk::new()), Clock::new()).unwrap();
    let alone = broker.apply(send("orders", "a"), peer()).await;
    assert_eq!(alone.code, ResponseCode::SlaveNotAvailable, "{alone:?}");
    // A slave that pulled once, from the start, and holds nothing.
    let pull = Request::ReplicaPull(ReplicaPull { broker_name: "broker-a".into(), broker_id: 1, epoch: 0, from_offset: 0, durable_offset: 0, max_bytes: 1, wait_ms: 0 });
    assert_eq!(broker.apply(pull, peer()).await.code, ResponseCode::Success);
    let started = Instant::now();
    let slow = broker.apply(send("orders", "b"), peer()).await;
    assert_eq!(slow.code, ResponseCode::FlushSlaveTimeout, "{slow:?}");
    assert!(started.elapsed() >= Duration::from_millis(200));
    // A slave of another group is refused.
    let stranger = Request::ReplicaPull(ReplicaPull { broker_name: "broker-b".into(), broker_id: 1, epoch: 0, from_offset: 0, durable_offset: 0, max_bytes: 1, wait_ms: 0 });
    assert_eq!(broker.apply(stranger, peer()).await.code, ResponseCode::NoPermission);
    // So is a replica of another term, whatever it says it holds (the HA
    // swarm caught a slave elected master meanwhile, whose own writes
    // counted as copies of the deposed master's log).
    let other_term = Request::ReplicaPull(ReplicaPull { broker_name: "broker-a".into(), broker_id: 1, epoch: 2, from_offset: 0, durable_offset: u64::MAX, max_bytes: 1, wait_ms: 0 });
    let refused = broker.apply(other_term, peer()).await;
    assert_eq!(refused.code, ResponseCode::NoPermission, "{refused:?}");
    assert!(refused.remark.contains("term"), "{}", refused.remark);
    let still_slow = broker.apply(send("orders", "c"), peer()).await;
    assert_eq!(still_slow.code, ResponseCode::FlushSlaveTimeout, "{still_slow:?}");
}

/// Regression (Apache RocketMQ #4771): a broker whose log is cut back keeps
/// no consumer offset past the new queue ends, so what is written at the
/// cut offsets next is consumed, not skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_cut_back_moves_consumer_offsets_back_with_it() {
    let broker = Broker::open(BrokerConfig::new("broker-a", "127.0.0.1:0"), Arc::new(MemDisk::new()), Clock::new()).unwrap();
    let mut cut = None;
    for n in 0..10 {
        let sent = broker.apply(send("orders", &format!("m{n}")), peer()).await;
        let crate::protocol::ResponseBody::Send(r) = sent.body else { panic!("{sent:?}") };
        if n == 6 {
            cut = Some(crate::model::parse_offset_msg_id(&r.offset_msg_id).unwrap().1);
        }
    }
    let commit = Request::UpdateConsumerOffset(UpdateConsumerOffset { group: "g".into(), topic: "orders".into(), queue_id: 0, offset: 10, generation: 0 });
    broker.apply(commit, peer()).await;
    broker.truncate_log(cut.unwrap()).await.unwrap();
    assert_eq!(bodies(&broker, "orders"), ["m0", "m1", "m2", "m3", "m4", "m5"]);
    assert_eq!(broker.offsets.lock().unwrap().get("g", "orders", 0), Some(6), "the group's offset moved back to the cut end");
    broker.apply(send("orders", "after"), peer()).await;
    let pull = Request::PullMessage(PullMessage {
        group: "g".into(),
        topic: "orders".into(),
        queue_id: 0,
        offset: 6,
        max_msgs: 10,
        expression: "*".into(),
        expression_type: Default::default(),
        suspend_ms: 0,
        generation: 0,
    });
    let got = broker.apply(pull, peer()).await;
    let crate::protocol::ResponseBody::Pull(got) = got.body else { panic!("{got:?}") };
    assert_eq!(got.messages.len(), 1, "the message written at the cut offset is there for the group");
}

/// A registration some name server did not take (here after a role change
/// or a new topic, outside the registration loop) wakes the loop to retry
/// within a second. Regression (ha-swarm seed 109): a master elected while
/// cut off from a name server was unknown to it until the loop's next
/// period, 10 s after the cut healed, and producers asking it wrote to the
/// deposed master all that time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_a_name_server_missed_is_retried_soon() {
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = BrokerConfig::new("broker-a", "127.0.0.1:0");
    config.namesrv_addrs = vec![gone.local_addr().unwrap().to_string()];
    drop(gone);
    let broker = Broker::open(config, Arc::new(MemDisk::new()), Clock::new()).unwrap();
    assert!(!broker.register_all().await);
    let woken = tokio::time::timeout(Duration::from_millis(100), broker.register_retry.notified()).await;
    assert!(woken.is_ok(), "a failed registration did not wake the registration loop");
}

/// A write to a slave is answered NotMaster, the code that sends a
/// producer back to the name servers for the master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_answers_a_send_with_not_master() {
    let mut config = BrokerConfig::new("broker-a", "127.0.0.1:0");
    config.role = ReplicationRole::Slave;
    config.broker_id = 1;
    let broker = Broker::open(config, Arc::new(MemDisk::new()), Clock::new()).unwrap();
    let refused = broker.apply(send("orders", "a"), peer()).await;
    assert_eq!(refused.code, ResponseCode::NotMaster, "{refused:?}");
}

/// A broker in controller mode serving as master of term 1 (the test plays
/// the controller), with `n` messages in queue 0 of orders; the commit log
/// offset where each starts.
async fn controller_mode_master(n: usize) -> (Arc<Broker>, Vec<u64>) {
    let mut config = BrokerConfig::new("broker-a", "127.0.0.1:0");
    config.controller_addrs = vec!["127.0.0.1:1".into()];
    let broker = Broker::open(config, Arc::new(MemDisk::new()), Clock::new()).unwrap();
    broker.store.lock().unwrap().set_follower(false);
    {
        let mut role = broker.role.lock().unwrap();
        role.master = true;
        role.epoch = 1;
    }
    let mut starts = Vec::new();
    for i in 0..n {
        let sent = broker.apply(send("orders", &format!("m{i}")), peer()).await;
        let crate::protocol::ResponseBody::Send(r) = sent.body else { panic!("{sent:?}") };
        starts.push(crate::model::parse_offset_msg_id(&r.offset_msg_id).unwrap().1);
    }
    (broker, starts)
}

/// Group g's pull of orders' queue 0 from `offset`, at reset `generation`,
/// through `selector`.
fn pull_selected(offset: u64, generation: u64, selector: crate::model::Selector) -> Request {
    Request::PullMessage(PullMessage {
        group: "g".into(),
        topic: "orders".into(),
        queue_id: 0,
        offset,
        max_msgs: 32,
        expression: selector.expression,
        expression_type: selector.kind,
        suspend_ms: 0,
        generation,
    })
}

fn pull_orders(offset: u64) -> Request {
    pull_at(offset, 0)
}

async fn pulled(broker: &Broker, offset: u64) -> Vec<String> {
    let got = broker.apply(pull_orders(offset), peer()).await;
    let crate::protocol::ResponseBody::Pull(got) = got.body else { panic!("{got:?}") };
    got.messages.iter().map(|m| String::from_utf8_lossy(&m.message.body).into_owned()).collect()
}

/// Regression (ha-swarm seed 82): a master deposed while cut off served
/// the tail it had written alone, which the new master never had, to
/// consumers until it joined the new master and cut it; the group's offset
/// then skipped the new master's messages at those queue offsets. A slave
/// in controller mode shows consumers only the confirmed log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_in_controller_mode_shows_only_the_confirmed_log() {
    let (broker, starts) = controller_mode_master(4).await;
    assert_eq!(pulled(&broker, 0).await, ["m0", "m1", "m2", "m3"], "a master without a sync-state set shows all");
    // Deposed with m0 and m1 confirmed.
    broker.store.lock().unwrap().set_follower(true);
    {
        let mut role = broker.role.lock().unwrap();
        role.master = false;
        role.epoch = 2;
        role.confirm_offset = starts[2];
    }
    assert_eq!(pulled(&broker, 0).await, ["m0", "m1"]);
    // Restarted, it shows nothing until a master says what is confirmed.
    broker.role.lock().unwrap().confirm_offset = 0;
    assert!(pulled(&broker, 0).await.is_empty());
}

/// Regression (ha-swarm seed 95): a slave elected master while it waited
/// for its old master's terms cut its own new writes away once the answer
/// came. The cut is made only while the broker still follows that term.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_promoted_meanwhile_does_not_cut_its_log() {
    let (broker, starts) = controller_mode_master(3).await;
    assert!(!broker.cut_log(starts[1], Some(1)).unwrap(), "a master's log was cut");
    assert_eq!(bodies(&broker, "orders"), ["m0", "m1", "m2"]);
    broker.role.lock().unwrap().master = false;
    assert!(!broker.cut_log(starts[1], Some(0)).unwrap(), "cut for another term");
    assert!(broker.cut_log(starts[1], Some(1)).unwrap());
    assert_eq!(bodies(&broker, "orders"), ["m0"]);
}

/// Regression (ha-swarm seed 824): a chunk of the old master's log that
/// reaches a slave already promoted is neither appended nor lets the old
/// master's terms replace the term the new master began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_reaching_a_promoted_slave_leaves_its_log_and_terms_alone() {
    let (old_master, _) = controller_mode_master(2).await;
    let chunk = {
        let store = old_master.store.lock().unwrap();
        crate::command::ReplicaChunk {
            offset: 0,
            bytes: store.replica_chunk(0, 1 << 20).unwrap(),
            master_end: store.write_offset(),
            epochs: vec![(1, 0)],
            confirmed: 0,
        }
    };
    let mut config = BrokerConfig::new("broker-a", "127.0.0.1:0");
    config.controller_addrs = vec!["127.0.0.1:1".into()];
    config.broker_id = 1;
    let replica = Broker::open(config, Arc::new(MemDisk::new()), Clock::new()).unwrap();
    replica.role.lock().unwrap().epoch = 1;
    // Promoted to master of term 2 before the chunk is taken.
    {
        let mut role = replica.role.lock().unwrap();
        role.master = true;
        role.epoch = 2;
    }
    replica.epochs.lock().unwrap().begin(2, 0);
    assert!(replica.take_chunk(&chunk, 1).is_none());
    assert_eq!(replica.store.lock().unwrap().write_offset(), 0);
    assert_eq!(replica.epochs.lock().unwrap().last().map(|e| e.epoch), Some(2), "the new term was erased");
    // A slave of term 1 takes it, and the master's terms with it.
    {
        let mut role = replica.role.lock().unwrap();
        role.master = false;
        role.epoch = 1;
    }
    *replica.epochs.lock().unwrap() = Epochs::default();
    assert!(replica.take_chunk(&chunk, 1).unwrap().is_ok());
    assert_eq!(bodies(&replica, "orders"), ["m0", "m1"]);
    assert_eq!(replica.epochs.lock().unwrap().last().map(|e| e.epoch), Some(1));
}

/// A send-back that creates a group's dead-letter topic (like a send that
/// creates its topic) is answered without waiting for the name servers: the
/// registration loop announces the new topic. Regression (swarm seed 12,
/// found by dead-lettered-late): while a name server was paused, each first
/// dead letter of a group on a broker waited for its registration to time
/// out, 1.8 s after the consumer's failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_dead_letter_topic_does_not_wait_for_the_name_servers() {
    // Takes connections (the kernel's backlog) and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = BrokerConfig::new("broker-a", "127.0.0.1:0");
    config.namesrv_addrs = vec![silent.local_addr().unwrap().to_string()];
    config.request_timeout_ms = 3_600_000;
    let broker = Broker::open(config, Arc::new(MemDisk::new()), Clock::new()).unwrap();
    broker.spawn_loops();
    let patience = Duration::from_secs(60);
    let sent = tokio::time::timeout(patience, broker.apply(send("orders", "poison"), peer())).await;
    let sent = sent.expect("a send creating its topic waited for a name server that never answers");
    assert_eq!(sent.code, ResponseCode::Success, "{sent:?}");
    let back = Request::ConsumerSendMsgBack(ConsumerSendMsgBack { group: "billing".into(), commit_log_offset: 0, delay_level: -1, max_reconsume_times: 3 });
    let answered = tokio::time::timeout(patience, broker.apply(back, peer())).await;
    let answered = answered.expect("a send-back creating the DLQ topic waited for a name server that never answers");
    assert_eq!(answered.code, ResponseCode::Success, "{answered:?}");
    assert!(broker.topics.lock().unwrap().contains_key("%DLQ%billing"));
}

/// Two handlers creating topics at once (a send-back making a retry topic
/// while another makes a dead-letter topic) both end up in the topics
/// file. Before, each took its snapshot and wrote it without order: the
/// first snapshot, written last, dropped the second topic from disk, and
/// a restart lost it.
#[test]
fn concurrent_topic_creations_are_all_persisted() {
    let disk = GatedDisk::default();
    let broker = Broker::open(BrokerConfig::new("broker-a", "127.0.0.1:0"), Arc::new(disk.clone()), Clock::new()).unwrap();
    disk.slow_topics_write.store(true, Ordering::SeqCst);
    let first = {
        let broker = broker.clone();
        std::thread::spawn(move || broker.system_topic("%RETRY%billing").unwrap())
    };
    // The first write has begun (and taken the flag) before the second.
    while disk.slow_topics_write.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    broker.system_topic("%DLQ%billing").unwrap();
    first.join().unwrap();
    let bytes = read_all(&disk, TOPICS_PATH).unwrap().expect("a topics file");
    let stored: Vec<TopicConfig> = serde_json::from_slice(&bytes).unwrap();
    let names: Vec<&str> = stored.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"%RETRY%billing") && names.contains(&"%DLQ%billing"), "persisted topics: {names:?}");
}

fn pull_at(offset: u64, generation: u64) -> Request {
    pull_selected(offset, generation, crate::model::Selector::tag("*"))
}

fn commit_at(offset: u64, generation: u64) -> Request {
    Request::UpdateConsumerOffset(UpdateConsumerOffset { group: "g".into(), topic: "orders".into(), queue_id: 0, offset, generation })
}

fn reset(timestamp_ms: Option<u64>) -> Request {
    Request::ResetOffset(crate::command::ResetOffset { group: "g".into(), topic: "orders".into(), timestamp_ms })
}

/// An operator's reset moves the group's offset on every queue of the
/// topic, back to a time or forward to the end, and starts a generation:
/// a consumer that did not hear of it can neither pull nor commit (its
/// higher commit would undo a rewind) until it takes the queue again, and
/// the offset and generation survive a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_moves_the_offsets_and_fences_the_consumers_that_missed_it() {
    let disk = MemDisk::new();
    let mut config = BrokerConfig::new("broker-a", "127.0.0.1:0");
    config.default_topic_queues = 1;
    let broker = Broker::open(config.clone(), Arc::new(disk.clone()), Clock::new()).unwrap();
    for n in 0..10 {
        let sent = broker.apply(send("orders", &format!("m{n}")), peer()).await;
        assert_eq!(sent.code, ResponseCode::Success, "{sent:?}");
    }
    assert_eq!(broker.apply(commit_at(10, 0), peer()).await.code, ResponseCode::Success);

    let rewound = broker.apply(reset(Some(0)), peer()).await;
    let crate::protocol::ResponseBody::Resets(queues) = rewound.body else { panic!("{rewound:?}") };
    assert_eq!(queues, [crate::command::QueueReset { queue_id: 0, offset: 0, generation: 1 }]);
    // The consumer that missed it is refused, whatever it asks.
    let stale = broker.apply(commit_at(10, 0), peer()).await;
    assert_eq!(stale.code, ResponseCode::ConsumerOffsetReset, "{stale:?}");
    assert!(stale.remark.contains("generation 1"), "{}", stale.remark);
    assert_eq!(broker.apply(pull_at(10, 0), peer()).await.code, ResponseCode::ConsumerOffsetReset);
    assert_eq!(broker.offsets.lock().unwrap().get("g", "orders", 0), Some(0), "the stale commit did not undo the rewind");
    // Taken again, it reads from the reset offset.
    let query = Request::QueryConsumerOffset(QueryConsumerOffset { group: "g".into(), topic: "orders".into(), queue_id: 0 });
    let answered = broker.apply(query.clone(), peer()).await;
    assert_eq!(answered.body, crate::protocol::ResponseBody::Committed(crate::command::CommittedOffset { offset: Some(0), generation: 1 }));
    let again = broker.apply(pull_at(0, 1), peer()).await;
    let crate::protocol::ResponseBody::Pull(got) = again.body else { panic!("{again:?}") };
    assert_eq!(got.messages.len(), 10);
    assert_eq!(broker.apply(commit_at(4, 1), peer()).await.code, ResponseCode::Success);
    // A lower commit than one taken (a previous owner's, late) leaves the
    // offset, and its answer says where the offset is.
    let lower = broker.apply(commit_at(3, 1), peer()).await;
    assert_eq!(lower.body, crate::protocol::ResponseBody::Committed(crate::command::CommittedOffset { offset: Some(4), generation: 1 }), "{lower:?}");

    // Skipping the backlog moves it to the end, in a third generation.
    let skipped = broker.apply(reset(None), peer()).await;
    let crate::protocol::ResponseBody::Resets(queues) = skipped.body else { panic!("{skipped:?}") };
    assert_eq!(queues, [crate::command::QueueReset { queue_id: 0, offset: 10, generation: 2 }]);
    assert_eq!(broker.apply(commit_at(5, 1), peer()).await.code, ResponseCode::ConsumerOffsetReset);

    // Unknown topics and bad groups are refused, and change nothing.
    let unknown = broker.apply(Request::ResetOffset(crate::command::ResetOffset { group: "g".into(), topic: "nope".into(), timestamp_ms: None }), peer()).await;
    assert_eq!(unknown.code, ResponseCode::TopicNotExist, "{unknown:?}");
    let bad = broker.apply(Request::ResetOffset(crate::command::ResetOffset { group: "g g".into(), topic: "orders".into(), timestamp_ms: None }), peer()).await;
    assert_eq!(bad.code, ResponseCode::MessageIllegal, "{bad:?}");

    // Both survive a restart.
    drop(broker);
    let reopened = Broker::open(config, Arc::new(disk), Clock::new()).unwrap();
    let answered = reopened.apply(query, peer()).await;
    assert_eq!(answered.body, crate::protocol::ResponseBody::Committed(crate::command::CommittedOffset { offset: Some(10), generation: 2 }));
    assert_eq!(reopened.apply(commit_at(10, 1), peer()).await.code, ResponseCode::ConsumerOffsetReset);
}

fn pull_sql(condition: &str) -> Request {
    pull_selected(0, 0, crate::model::Selector::sql(condition))
}

/// An SQL92 filter is evaluated on the broker over each message's
/// properties and tag, only where `enablePropertyFilter` is on; a bad
/// condition is refused with the parser's reason, and the queue's offsets
/// move past what the filter dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sql92_pull_gets_only_what_the_condition_selects() {
    let mut config = BrokerConfig::new("broker-a", "127.0.0.1:0");
    config.default_topic_queues = 1;
    let off = Broker::open(config.clone(), Arc::new(MemDisk::new()), Clock::new()).unwrap();
    assert_eq!(off.apply(send("orders", "m"), peer()).await.code, ResponseCode::Success);
    let refused = off.apply(pull_sql("env = 'gray'"), peer()).await;
    assert_eq!(refused.code, ResponseCode::SubscriptionIllegal, "{refused:?}");
    assert!(refused.remark.contains("enablePropertyFilter is false"), "{}", refused.remark);

    config.enable_property_filter = true;
    let broker = Broker::open(config, Arc::new(MemDisk::new()), Clock::new()).unwrap();
    for (n, env, tag) in [(0, "gray", "TagA"), (1, "prod", "TagA"), (2, "gray", "TagB"), (3, "", "TagA")] {
        let mut m = Message::new("orders", format!("m{n}").into_bytes()).with_tags(tag).with_property("n", n.to_string());
        if !env.is_empty() {
            m = m.with_property("env", env);
        }
        let request = Request::SendMessage(SendMessage {
            producer_group: "pg".into(),
            queue_id: 0,
            message: m,
            born_timestamp_ms: 0,
            born_host: "test".into(),
            default_topic_queues: 1,
        });
        assert_eq!(broker.apply(request, peer()).await.code, ResponseCode::Success);
    }
    let bodies = |response: Response| -> (Vec<String>, u64) {
        let crate::protocol::ResponseBody::Pull(got) = response.body else { panic!("{response:?}") };
        (got.messages.iter().map(|m| String::from_utf8_lossy(&m.message.body).into_owned()).collect(), got.next_offset)
    };
    assert_eq!(bodies(broker.apply(pull_sql("env = 'gray'"), peer()).await), (vec!["m0".to_string(), "m2".to_string()], 4));
    assert_eq!(bodies(broker.apply(pull_sql("env IS NULL OR (TAGS = 'TagA' AND n >= 1)"), peer()).await).0, ["m1", "m3"]);
    assert_eq!(bodies(broker.apply(pull_sql("n > 9"), peer()).await), (Vec::<String>::new(), 4));
    let bad = broker.apply(pull_sql("env = gray'"), peer()).await;
    assert_eq!(bad.code, ResponseCode::SubscriptionIllegal, "{bad:?}");
    assert!(bad.remark.contains("bad SQL92 filter"), "{}", bad.remark);
}

/// A deleted topic is no longer served nor written where topics are not
/// created on first send, survives a restart deleted, and the broker's own
/// topics cannot be deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_topic_is_gone_for_good_and_the_brokers_own_cannot_go() {
    let disk = MemDisk::new();
    let mut config = BrokerConfig::new("broker-a", "127.0.0.1:0");
    config.default_topic_queues = 1;
    let broker = Broker::open(config.clone(), Arc::new(disk.clone()), Clock::new()).unwrap();
    assert_eq!(broker.apply(send("orders", "m0"), peer()).await.code, ResponseCode::Success);
    let delete = |topic: &str| Request::DeleteTopic(crate::command::DeleteTopic { topic: topic.into() });
    assert_eq!(broker.apply(delete("orders"), peer()).await.code, ResponseCode::Success);
    assert!(!broker.topics.lock().unwrap().contains_key("orders"));
    assert_eq!(broker.apply(delete("orders"), peer()).await.code, ResponseCode::TopicNotExist);
    let own = broker.apply(delete(crate::model::SCHEDULE_TOPIC), peer()).await;
    assert_eq!(own.code, ResponseCode::NoPermission, "{own:?}");
    assert!(own.remark.contains("cannot be deleted"), "{}", own.remark);
    assert_eq!(broker.apply(pull_orders(0), peer()).await.code, ResponseCode::TopicNotExist);
    drop(broker);
    config.auto_create_topic = false;
    let reopened = Broker::open(config, Arc::new(disk), Clock::new()).unwrap();
    assert!(!reopened.topics.lock().unwrap().contains_key("orders"), "the deletion was not persisted");
    let refused = reopened.apply(send("orders", "m1"), peer()).await;
    assert_eq!(refused.code, ResponseCode::TopicNotExist, "{refused:?}");
}
