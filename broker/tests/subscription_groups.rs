//! Subscription groups against one broker, its handlers called directly:
//! an operator's settings stop a group's consumption and set its retries,
//! survive a restart, and go away with the group.
#![cfg(not(madsim))]

use broker::clock::Clock;
use broker::command::{
    ConsumeFrom, ConsumerData, ConsumerSendMsgBack, CreateTopic, DeleteSubscriptionGroup, GetQueueOffsets, Heartbeat, PopMessage, PullMessage, Refused,
    SendMessage, UpdateSubscriptionGroup,
};
use broker::model::{dlq_topic, ExpressionType, Message, SubscriptionGroup, TopicConfig};
use broker::server::{Broker, BrokerConfig};
use broker::store::{Disk, MemDisk};
use std::sync::Arc;

const PEER: &str = "127.0.0.1:9";

fn open(disk: &Arc<dyn Disk>) -> Arc<Broker> {
    Broker::open(BrokerConfig::new("broker-s", "127.0.0.1:10911"), disk.clone(), Clock::new()).expect("open")
}

fn pull(group: &str) -> PullMessage {
    PullMessage {
        group: group.into(),
        topic: "orders".into(),
        queue_id: 0,
        offset: 0,
        max_msgs: 32,
        expression: "*".into(),
        expression_type: ExpressionType::Tag,
        suspend_ms: 0,
        generation: 0,
    }
}

fn pop(group: &str) -> PopMessage {
    PopMessage {
        group: group.into(),
        topic: "orders".into(),
        max_msgs: 8,
        invisible_ms: 5_000,
        poll_ms: 0,
        expression: "*".into(),
        expression_type: ExpressionType::Tag,
        fifo: false,
        max_attempts: 17,
        consume_from: ConsumeFrom::FirstOffset,
    }
}

#[tokio::test]
async fn a_disabled_group_cannot_consume_its_retries_follow_the_broker_and_the_settings_survive_a_restart() {
    let disk: Arc<dyn Disk> = Arc::new(MemDisk::new());
    let broker = open(&disk);
    broker.create_topic(CreateTopic { config: TopicConfig::new("orders", 1) }).await.expect("topic");
    let send = SendMessage {
        producer_group: "p".into(),
        queue_id: 0,
        message: Message::new("orders", b"order-1".to_vec()),
        born_timestamp_ms: 0,
        born_host: PEER.into(),
        default_topic_queues: 1,
    };
    broker.send(send, PEER.parse().unwrap()).await.expect("send");

    let stopped = SubscriptionGroup { group_name: "billing".into(), consume_enable: false, ..SubscriptionGroup::default() };
    broker.update_subscription_group(UpdateSubscriptionGroup { config: stopped }).expect("update");
    assert_eq!(broker.pull(pull("billing")).await.unwrap_err().kind, Refused::NoPermission);
    assert_eq!(broker.pop(pop("billing")).await.unwrap_err().kind, Refused::NoPermission);
    assert_eq!(broker.pull(pull("audit")).await.expect("another group").messages.len(), 1);
    let bad = SubscriptionGroup { group_name: "%bad".into(), ..SubscriptionGroup::default() };
    assert_eq!(broker.update_subscription_group(UpdateSubscriptionGroup { config: bad }).unwrap_err().kind, Refused::Illegal);

    // One retry at most, whatever the consumer asks: the first send-back
    // after a retry dead-letters.
    let once = SubscriptionGroup { group_name: "audit".into(), retry_max_times: 0, ..SubscriptionGroup::default() };
    broker.update_subscription_group(UpdateSubscriptionGroup { config: once }).expect("update");
    let stored = broker.pull(pull("audit")).await.expect("pull").messages.remove(0);
    let back = ConsumerSendMsgBack { group: "audit".into(), commit_log_offset: stored.commit_log_offset, delay_level: 0, max_reconsume_times: 16 };
    broker.send_back(back).await.expect("send back");
    let dlq = broker.queue_offsets(GetQueueOffsets { topic: dlq_topic("audit"), queue_id: 0 }).expect("dlq");
    assert_eq!(dlq.max_offset, 1, "dead-lettered at once by the group's retryMaxTimes 0");

    // A restart keeps them; a deletion gives the defaults back.
    drop(broker);
    let broker = open(&disk);
    let kept: Vec<String> = broker.subscription_groups().expect("groups").into_iter().map(|g| g.group_name).collect();
    assert_eq!(kept, ["audit", "billing"]);
    assert_eq!(broker.pull(pull("billing")).await.unwrap_err().kind, Refused::NoPermission);
    broker.delete_subscription_group(DeleteSubscriptionGroup { group: "billing".into() }).expect("delete");
    assert_eq!(broker.pull(pull("billing")).await.expect("enabled again").messages.len(), 1);
    assert_eq!(broker.delete_subscription_group(DeleteSubscriptionGroup { group: "billing".into() }).unwrap_err().kind, Refused::NotFound);
}

/// `consumeBroadcastEnable=false` refuses a group's broadcasting members
/// (their heartbeats say so), not its clustering ones;
/// `consumeMessageOrderly=true` makes the group's receives FIFO whatever
/// the consumer asks: nothing more of a queue while some of it is out.
#[tokio::test]
async fn a_group_may_be_kept_from_broadcasting_and_made_orderly() {
    let disk: Arc<dyn Disk> = Arc::new(MemDisk::new());
    let broker = open(&disk);
    broker.create_topic(CreateTopic { config: TopicConfig::new("orders", 1) }).await.expect("topic");
    let send = |body: &str| SendMessage {
        producer_group: "p".into(),
        queue_id: 0,
        message: Message::new("orders", body.as_bytes().to_vec()),
        born_timestamp_ms: 0,
        born_host: PEER.into(),
        default_topic_queues: 1,
    };
    for body in ["order-1", "order-2"] {
        broker.send(send(body), PEER.parse().unwrap()).await.expect("send");
    }
    let member = |group: &str, client: &str, broadcast: bool| Heartbeat {
        client_id: client.into(),
        consumers: vec![ConsumerData { group: group.into(), subscriptions: vec![("orders".into(), "*".into())], consume_from: ConsumeFrom::FirstOffset, broadcast }],
    };

    for group in ["cache", "billing"] {
        let config = SubscriptionGroup { group_name: group.into(), consume_broadcast_enable: false, ..SubscriptionGroup::default() };
        broker.update_subscription_group(UpdateSubscriptionGroup { config }).expect("update");
    }
    broker.heartbeat(member("cache", "node-1", true), PEER.parse().unwrap()).await.expect("heartbeat");
    broker.heartbeat(member("billing", "biller-1", false), PEER.parse().unwrap()).await.expect("heartbeat");
    let refused = broker.pull(pull("cache")).await.unwrap_err();
    assert_eq!(refused.kind, Refused::NoPermission);
    assert!(refused.reason.contains("consumeBroadcastEnable=false"), "{}", refused.reason);
    assert_eq!(broker.pull(pull("billing")).await.expect("clustering is allowed").messages.len(), 2);

    // Unordered, a receive takes what the last left; ordered by the
    // group's settings, it waits for the queue's messages out to come back.
    let ordered = SubscriptionGroup { group_name: "ledger".into(), consume_message_orderly: true, ..SubscriptionGroup::default() };
    broker.update_subscription_group(UpdateSubscriptionGroup { config: ordered }).expect("update");
    for group in ["ledger", "shipping"] {
        let first = broker.pop(PopMessage { max_msgs: 1, ..pop(group) }).await.expect("receive");
        assert_eq!(first.messages.len(), 1, "{group}");
    }
    assert_eq!(broker.pop(pop("shipping")).await.expect("receive").messages.len(), 1, "unordered: the second message");
    assert!(broker.pop(pop("ledger")).await.expect("receive").messages.is_empty(), "orderly: nothing while the first is out");
}
