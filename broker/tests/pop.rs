//! POP consumption against one broker, its handlers called directly: what a
//! receive hands out, acks by receipt handle, invisible time, attempts,
//! dead letters, FIFO, and the state surviving a restart. The broker's
//! clock is moved forward rather than waited for.
#![cfg(not(madsim))]

use broker::clock::Clock;
use broker::command::{
    AckMessage, ChangeInvisibleTime, ConsumeFrom, CreateTopic, GetConsumeStats, PopMessage, Popped, QueryConsumerOffset, Refused, SendMessage,
};
use broker::model::{dlq_topic, ExpressionType, Message, TopicConfig};
use broker::server::{Broker, BrokerConfig};
use broker::store::{Disk, MemDisk};
use std::collections::BTreeSet;
use std::sync::Arc;

const PEER: &str = "127.0.0.1:9";

fn open(disk: &Arc<dyn Disk>, clock: &Clock) -> Arc<Broker> {
    let config = BrokerConfig::new("broker-p", "127.0.0.1:10911");
    Broker::open(config, disk.clone(), clock.clone()).expect("open")
}

async fn setup(queues: u32, messages: u32) -> (Arc<dyn Disk>, Clock, Arc<Broker>) {
    let disk: Arc<dyn Disk> = Arc::new(MemDisk::new());
    let clock = Clock::new();
    let broker = open(&disk, &clock);
    broker.create_topic(CreateTopic { config: TopicConfig::new("orders", queues) }).await.expect("topic");
    for n in 0..messages {
        let send = SendMessage {
            producer_group: "p".into(),
            queue_id: n % queues,
            message: Message::new("orders", format!("m{n}").into_bytes()).with_tags(if n % 2 == 0 { "even" } else { "odd" }),
            born_timestamp_ms: clock.now_ms(),
            born_host: PEER.into(),
            default_topic_queues: queues,
        };
        broker.send(send, PEER.parse().unwrap()).await.expect("send");
    }
    (disk, clock, broker)
}

fn receive(max: u32, invisible_ms: u64) -> PopMessage {
    PopMessage {
        group: "billing".into(),
        topic: "orders".into(),
        max_msgs: max,
        invisible_ms,
        poll_ms: 0,
        expression: "*".into(),
        expression_type: ExpressionType::Tag,
        fifo: false,
        max_attempts: 3,
        consume_from: ConsumeFrom::FirstOffset,
    }
}

fn bodies(popped: &[Popped]) -> BTreeSet<String> {
    popped.iter().map(|p| String::from_utf8_lossy(&p.message.message.body).into_owned()).collect()
}

async fn ack(broker: &Broker, p: &Popped) -> Result<(), Refused> {
    broker.ack_popped(AckMessage { group: "billing".into(), handle: p.handle.clone() }).await.map_err(|r| r.kind)
}

#[tokio::test]
async fn a_message_not_acked_in_time_comes_back_with_its_attempt_raised_and_its_old_handle_expired() {
    let (_, clock, broker) = setup(2, 6).await;
    let first = broker.pop(receive(32, 10_000)).await.expect("pop").messages;
    assert_eq!(bodies(&first).len(), 6, "every message once");
    assert!(first.iter().all(|p| p.handle.attempt == 1 && p.message.reconsume_times == 0));
    // Invisible meanwhile: nothing to receive.
    assert!(broker.pop(receive(32, 10_000)).await.unwrap().messages.is_empty());
    for p in &first[..3] {
        ack(&broker, p).await.expect("ack");
    }
    // A retried ack of the attempt that finished the message is taken again.
    ack(&broker, &first[0]).await.expect("a repeated ack");
    clock.jump_ms(10_001);
    let again = broker.pop(receive(32, 10_000)).await.unwrap().messages;
    assert_eq!(bodies(&again), bodies(&first[3..]), "only the unacknowledged come back");
    assert!(again.iter().all(|p| p.handle.attempt == 2 && p.message.reconsume_times == 1));
    assert_eq!(ack(&broker, &first[3]).await, Err(Refused::HandleExpired), "the first attempt's handle is stale");
    for p in &again {
        ack(&broker, p).await.expect("ack");
    }
    clock.jump_ms(20_000);
    assert!(broker.pop(receive(32, 10_000)).await.unwrap().messages.is_empty(), "everything is done");
    // The group's committed offsets follow: nothing left to consume.
    let stats = broker.consume_stats(GetConsumeStats { group: "billing".into(), topic: "orders".into() }).expect("stats");
    assert!(stats.iter().all(|q| q.consumer_offset == Some(q.max_offset)), "{stats:?}");
}

#[tokio::test]
async fn a_changed_invisible_time_holds_the_message_and_past_the_most_attempts_it_is_dead_lettered() {
    let (_, clock, broker) = setup(1, 2).await;
    let first = broker.pop(receive(32, 5_000)).await.unwrap().messages;
    assert_eq!(first.len(), 2);
    let change = ChangeInvisibleTime { group: "billing".into(), handle: first[0].handle.clone(), invisible_ms: 60_000 };
    let longer = broker.change_invisible(change).await.expect("change");
    assert!(longer.visible_at_ms > first[0].handle.visible_at_ms);
    clock.jump_ms(5_001);
    let again = broker.pop(receive(32, 5_000)).await.unwrap().messages;
    assert_eq!(bodies(&again), bodies(&first[1..]), "the held one stays invisible");
    // The old handle still acknowledges the held message.
    ack(&broker, &first[0]).await.expect("ack by the handle before the change");
    // The other is never acked: attempts 2 and 3, then the dead-letter queue.
    clock.jump_ms(5_001);
    let third = broker.pop(receive(32, 5_000)).await.unwrap().messages;
    assert_eq!(third.iter().map(|p| p.handle.attempt).collect::<Vec<_>>(), vec![3]);
    clock.jump_ms(5_001);
    assert!(broker.pop(receive(32, 5_000)).await.unwrap().messages.is_empty(), "past the most attempts it is not received");
    let dlq = dlq_topic("billing");
    let query = QueryConsumerOffset { group: "billing".into(), topic: "orders".into(), queue_id: 0 };
    assert_eq!(broker.query_offset(query).unwrap().offset, Some(2), "both are done");
    let stats = broker.queue_offsets(broker::command::GetQueueOffsets { topic: dlq, queue_id: 0 }).unwrap();
    assert_eq!(stats.max_offset, 1, "one dead letter");
}

#[tokio::test]
async fn fifo_hands_out_a_queue_only_once_nothing_of_it_is_in_flight() {
    let (_, clock, broker) = setup(1, 4).await;
    let fifo = |max| PopMessage { fifo: true, ..receive(max, 5_000) };
    let first = broker.pop(fifo(2)).await.unwrap().messages;
    assert_eq!(bodies(&first), BTreeSet::from(["m0".to_string(), "m1".to_string()]));
    assert!(broker.pop(fifo(2)).await.unwrap().messages.is_empty(), "m0 and m1 are in flight");
    ack(&broker, &first[0]).await.unwrap();
    assert!(broker.pop(fifo(2)).await.unwrap().messages.is_empty(), "m1 still is");
    clock.jump_ms(5_001);
    // m1 comes back before anything after it.
    let again = broker.pop(fifo(2)).await.unwrap().messages;
    assert_eq!(bodies(&again), BTreeSet::from(["m1".to_string()]));
    ack(&broker, &again[0]).await.unwrap();
    let next = broker.pop(fifo(2)).await.unwrap().messages;
    assert_eq!(bodies(&next), BTreeSet::from(["m2".to_string(), "m3".to_string()]));
}

#[tokio::test]
async fn leases_and_acks_survive_a_restart() {
    let (disk, clock, broker) = setup(2, 8).await;
    let first = broker.pop(receive(32, 30_000)).await.unwrap().messages;
    assert_eq!(first.len(), 8);
    for p in &first[..5] {
        ack(&broker, p).await.unwrap();
    }
    drop(broker);
    let broker = open(&disk, &clock);
    assert!(broker.pop(receive(32, 30_000)).await.unwrap().messages.is_empty(), "acked ones are done and the rest still invisible");
    // An ack of a lease taken before the restart is taken after it.
    ack(&broker, &first[5]).await.expect("ack after the restart");
    clock.jump_ms(30_001);
    let again = broker.pop(receive(32, 30_000)).await.unwrap().messages;
    assert_eq!(bodies(&again), bodies(&first[6..]));
    assert!(again.iter().all(|p| p.handle.attempt == 2));
}

#[tokio::test]
async fn a_tag_filter_passes_over_what_it_does_not_select_and_bad_requests_are_refused() {
    let (_, _, broker) = setup(1, 6).await;
    let even = PopMessage { expression: "even".into(), ..receive(32, 5_000) };
    assert_eq!(bodies(&broker.pop(even).await.unwrap().messages), BTreeSet::from(["m0".into(), "m2".into(), "m4".into()]));
    let short = receive(32, 10);
    assert_eq!(broker.pop(short).await.unwrap_err().kind, Refused::Illegal, "an invisible time under a second");
    let unknown = PopMessage { topic: "nope".into(), ..receive(32, 5_000) };
    assert_eq!(broker.pop(unknown).await.unwrap_err().kind, Refused::TopicNotExist);
    let bad_sql = PopMessage { expression: "a >".into(), expression_type: ExpressionType::Sql92, ..receive(32, 5_000) };
    assert_eq!(broker.pop(bad_sql).await.unwrap_err().kind, Refused::SubscriptionIllegal);
    assert!(broker.pop(receive(1, 5_000)).await.unwrap().messages.is_empty(), "the odd ones were passed over for this group");
    let handle = broker::command::ReceiptHandle {
        broker_name: "broker-x".into(),
        topic: "orders".into(),
        queue_id: 0,
        offset: 0,
        attempt: 1,
        visible_at_ms: 0,
    };
    let err = broker.ack_popped(AckMessage { group: "billing".into(), handle }).await.unwrap_err();
    assert_eq!(err.kind, Refused::Illegal, "{err}");
}
