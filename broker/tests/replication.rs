//! Real mode, in one process over loopback TCP: a SYNC_MASTER and its
//! slave. Without a slave the master answers SLAVE_NOT_AVAILABLE; once the
//! slave pulls, sends are SEND_OK only when the slave holds them; the slave
//! has every message at the master's offsets, serves pulls and queries, and
//! refuses writes, offset commits included; a route lists both, and a client reads from the slave
//! once the master is gone.
#![cfg(not(madsim))]

use broker::client::{ClientConfig, ClientInstance, Producer, ProducerConfig};
use broker::clock::Clock;
use broker::model::Message;
use broker::namesrv::{NameServer, NameServerConfig};
use broker::protocol::{Request, ResponseCode};
use broker::command::{
    BrokerRole, PullMessage, QueryMessageByUniqueId, ResetOffset, SendMessage, SendStatus, UnregisterBroker, UpdateConsumerOffset, UpdateSubscriptionGroup,
};
use broker::server::{Broker, BrokerConfig, FlushMode, ReplicationRole};
use broker::store::MemDisk;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

async fn start(config: BrokerConfig, listener: TcpListener) {
    let broker = Broker::open(config, Arc::new(MemDisk::new()), Clock::new()).unwrap();
    tokio::spawn(broker.serve(listener));
}

fn config(name: &str, addr: &str, namesrv: &str, role: ReplicationRole, id: u64) -> BrokerConfig {
    let mut c = BrokerConfig::new(name, addr);
    c.namesrv_addrs = vec![namesrv.to_string()];
    c.register_interval_ms = 200;
    c.flush = FlushMode::Sync;
    c.role = role;
    c.broker_id = id;
    c.slave_timeout_ms = 2_000;
    c
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_master_waits_for_its_slave_which_copies_everything_and_serves_reads() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let namesrv = listener.local_addr().unwrap().to_string();
    tokio::spawn(NameServer::new(NameServerConfig::default(), Clock::new()).serve(listener));
    let master_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let master_addr = master_listener.local_addr().unwrap().to_string();
    start(config("broker-a", &master_addr, &namesrv, ReplicationRole::SyncMaster, 0), master_listener).await;
    let client = ClientInstance::new(ClientConfig::new(vec![namesrv.clone()], "c"), Clock::new());
    let producer = Producer::new(client.clone(), ProducerConfig::new("p")).unwrap();

    // No slave yet.
    let alone = eventually("the master to take a send", async || producer.send(Message::new("orders", "first").with_key("k0")).await.ok()).await;
    assert_eq!(alone.status, SendStatus::SlaveNotAvailable);

    // The slave finds its master through the name server.
    let slave_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slave_addr = slave_listener.local_addr().unwrap().to_string();
    start(config("broker-a", &slave_addr, &namesrv, ReplicationRole::Slave, 1), slave_listener).await;
    let ok = eventually("a send the slave holds", async || {
        producer.send(Message::new("orders", "second").with_key("k1")).await.ok().filter(|r| r.status == SendStatus::SendOk)
    })
    .await;
    let mut ids = vec![alone.msg_id.clone(), ok.msg_id.clone()];
    for n in 0..20 {
        let r = producer.send(Message::new("orders", format!("m{n}")).with_key(format!("key-{n}"))).await.unwrap();
        assert_eq!(r.status, SendStatus::SendOk, "a sync master acknowledges once its slave holds it");
        ids.push(r.msg_id);
    }

    // The slave holds every message at the master's offsets.
    let timeout = client.timeout();
    for id in &ids {
        let on = |addr: String| {
            let (client, id) = (client.clone(), id.clone());
            async move {
                client.call(&addr, QueryMessageByUniqueId { id }, timeout).await.unwrap()[0].clone()
            }
        };
        let (m, s) = (on(master_addr.clone()).await, on(slave_addr.clone()).await);
        assert_eq!((m.commit_log_offset, m.queue_offset, m.queue_id, &m.message), (s.commit_log_offset, s.queue_offset, s.queue_id, &s.message));
    }

    // The slave refuses writes.
    let send = Request::SendMessage(SendMessage {
        producer_group: "p".into(),
        queue_id: 0,
        message: Message::new("orders", "direct"),
        born_timestamp_ms: 0,
        born_host: "t".into(),
        default_topic_queues: 4,
    });
    let refused = client.pool_request(&slave_addr, &send, timeout).await.unwrap();
    assert_eq!(refused.code, ResponseCode::NotMaster, "{refused:?}");
    // And consumer offset commits: its offsets are the master's copy,
    // replaced every second, so a commit it took would be undone (the HA
    // swarm's seeds 12 and 17: a group resumed below a commit a slave had
    // taken while its master was away).
    let commit =
        Request::UpdateConsumerOffset(UpdateConsumerOffset { group: "g".into(), topic: "orders".into(), queue_id: 0, offset: 5, generation: 0 });
    let refused = client.pool_request(&slave_addr, &commit, timeout).await.unwrap();
    assert_eq!(refused.code, ResponseCode::NotMaster, "{refused:?}");
    let taken = client.pool_request(&master_addr, &commit, timeout).await.unwrap();
    assert_eq!(taken.code, ResponseCode::Success, "{taken:?}");
    // An operator's reset is the master's to make, and its generation
    // reaches the slave: a consumer that missed it, reading from the slave,
    // is refused there too.
    let reset = Request::ResetOffset(ResetOffset { group: "g".into(), topic: "orders".into(), timestamp_ms: Some(0) });
    let refused = client.pool_request(&slave_addr, &reset, timeout).await.unwrap();
    assert_eq!(refused.code, ResponseCode::NotMaster, "{refused:?}");
    let done = client.pool_request(&master_addr, &reset, timeout).await.unwrap();
    assert_eq!(done.code, ResponseCode::Success, "{done:?}");
    let stale_pull = Request::PullMessage(PullMessage {
        group: "g".into(),
        topic: "orders".into(),
        queue_id: 0,
        offset: 5,
        max_msgs: 1,
        expression: "*".into(),
        expression_type: Default::default(),
        suspend_ms: 0,
        generation: 0,
    });
    eventually("the slave to know the reset", async || {
        let answer = client.pool_request(&slave_addr, &stale_pull, timeout).await.ok()?;
        (answer.code == ResponseCode::ConsumerOffsetReset).then_some(())
    })
    .await;

    // A subscription group an operator stops on the master stops reads
    // from the slave too, once it copied the master's groups.
    let stop = Request::UpdateSubscriptionGroup(UpdateSubscriptionGroup {
        config: broker::model::SubscriptionGroup { group_name: "stopped".into(), consume_enable: false, ..Default::default() },
    });
    let refused = client.pool_request(&slave_addr, &stop, timeout).await.unwrap();
    assert_eq!(refused.code, ResponseCode::NotMaster, "{refused:?}");
    let done = client.pool_request(&master_addr, &stop, timeout).await.unwrap();
    assert_eq!(done.code, ResponseCode::Success, "{done:?}");
    let stopped_pull = Request::PullMessage(PullMessage {
        group: "stopped".into(),
        topic: "orders".into(),
        queue_id: 0,
        offset: 0,
        max_msgs: 1,
        expression: "*".into(),
        expression_type: Default::default(),
        suspend_ms: 0,
        generation: u64::MAX,
    });
    eventually("the slave to know the stopped group", async || {
        let answer = client.pool_request(&slave_addr, &stopped_pull, timeout).await.ok()?;
        (answer.code == ResponseCode::NoPermission).then_some(())
    })
    .await;

    // The route lists both, with their roles.
    let route = eventually("both brokers in the route", async || {
        let route = client.route("orders", true).await.ok()?;
        (route.queues[0].replicas.len() == 2).then_some(route)
    })
    .await;
    let roles: Vec<(u64, BrokerRole)> = route.queues[0].replicas.iter().map(|r| (r.broker_id, r.role)).collect();
    assert_eq!(roles, [(0, BrokerRole::Master), (1, BrokerRole::Slave)]);

    // With the master gone from the name server, reads go to the slave.
    let gone = UnregisterBroker { broker_name: "broker-a".into(), broker_id: 0 };
    client.call(&namesrv, gone, timeout).await.unwrap();
    client.route("orders", true).await.unwrap();
    assert_eq!(client.broker_addr("broker-a").as_deref(), Some(slave_addr.as_str()));
    let queue = route.queues[0].write_queues;
    let mut pulled = Vec::new();
    for queue_id in 0..queue {
        let pull = PullMessage {
            group: "g".into(),
            topic: "orders".into(),
            queue_id,
            offset: 0,
            max_msgs: 100,
            expression: "*".into(),
            expression_type: Default::default(),
            suspend_ms: 0,
            generation: u64::MAX,
        };
        let got = client.call(&client.broker_addr("broker-a").unwrap(), pull, timeout).await.unwrap();
        pulled.extend(got.messages.iter().map(|m| m.msg_id()));
    }
    // Sends that were stored before the slave held them are there too.
    assert!(ids.iter().all(|id| pulled.contains(id)), "the slave serves every message: {pulled:?}");
}
