//! A second front, of this test's own: a text protocol over in-process
//! channels, nothing of the house protocol's frames or codes. It drives the
//! broker's command handlers as the bincode front does, and the broker
//! calls its clients back through the front's own [`Peer`]: a transaction's
//! check-back reaches a producer of this front, which commits through it.
#![cfg(not(madsim))]

use broker::clock::Clock;
use broker::command::{EndTransaction, HeartbeatProducer, Outcome, PullMessage, SendMessage};
use broker::command::{CheckTransactionState, ConsumerRunningInfo, GetConsumerRunningInfo, NotifyConsumerIdsChanged, PushReplyMessage, ResetOffsetNotice};
use broker::model::{Message, TransactionState, PROPERTY_TRANSACTION};
use broker::server::{Broker, BrokerConfig, Peer};
use broker::store::MemDisk;
use futures::future::BoxFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The front: one line in, one line out. `SEND topic body`, `HALF group
/// topic body`, `PRODUCER group`, `PULL group topic queue offset`, `COMMIT
/// group offset id`; answered `OK ...` or `NO kind: reason`.
struct LineFront {
    broker: Arc<Broker>,
    /// Where this front's one client connects from.
    client: SocketAddr,
}

impl LineFront {
    async fn call(&self, line: &str) -> String {
        let words: Vec<&str> = line.split(' ').collect();
        let send = |topic: &str, body: &str, group: &str| SendMessage {
            producer_group: group.to_string(),
            queue_id: 0,
            message: Message::new(topic, body),
            born_timestamp_ms: 0,
            born_host: String::new(),
            default_topic_queues: 1,
        };
        let answer: Outcome<String> = match words[..] {
            ["SEND", topic, body] => self.broker.send(send(topic, body, "p"), self.client).await.map(|r| format!("OK {}", r.queue_offset)),
            ["HALF", group, topic, body] => {
                let mut half = send(topic, body, group);
                half.message = half.message.with_property(PROPERTY_TRANSACTION, "true");
                self.broker.send(half, self.client).await.map(|r| format!("OK {}", r.msg_id))
            }
            ["PRODUCER", group] => {
                let heartbeat = HeartbeatProducer { client_id: "line-client".into(), groups: vec![group.to_string()] };
                self.broker.heartbeat_producer(heartbeat, self.client).map(|()| "OK".to_string())
            }
            ["PULL", group, topic, queue, offset] => {
                let pull = PullMessage {
                    group: group.into(),
                    topic: topic.into(),
                    queue_id: queue.parse().expect("queue"),
                    offset: offset.parse().expect("offset"),
                    max_msgs: 32,
                    expression: "*".into(),
                    expression_type: Default::default(),
                    suspend_ms: 0,
                    generation: 0,
                };
                self.broker.pull(pull).await.map(|r| {
                    let bodies: Vec<String> = r.messages.iter().map(|m| String::from_utf8_lossy(&m.message.body).into_owned()).collect();
                    format!("OK {}", bodies.join(","))
                })
            }
            ["COMMIT", group, offset, id] => {
                let end = EndTransaction {
                    producer_group: group.into(),
                    commit_log_offset: offset.parse().expect("offset"),
                    msg_id: id.into(),
                    state: TransactionState::Commit,
                    from_check: true,
                };
                self.broker.end_transaction(end).await.map(|()| "OK".to_string())
            }
            _ => return format!("NO unknown command: {line}"),
        };
        answer.unwrap_or_else(|refusal| format!("NO {refusal}"))
    }
}

/// The front's side of its client: the broker's calls become lines.
struct LinePeer {
    lines: mpsc::UnboundedSender<String>,
}

impl Peer for LinePeer {
    fn name(&self) -> String {
        "line-client".into()
    }

    fn is_live(&self) -> bool {
        !self.lines.is_closed()
    }

    fn check_transaction(&self, check: CheckTransactionState, _timeout: Duration) -> BoxFuture<'static, broker::Result<()>> {
        let line = format!("CHECK {} {} {}", check.producer_group, check.half.commit_log_offset, check.half.msg_id());
        let sent = self.lines.send(line).map_err(|_| broker::Error::Connection { addr: "line-client".into(), reason: "gone".into() });
        Box::pin(async move { sent })
    }

    fn consumers_changed(&self, notice: NotifyConsumerIdsChanged) -> BoxFuture<'static, broker::Result<()>> {
        let _ = self.lines.send(format!("CHANGED {}", notice.group));
        Box::pin(async { Ok(()) })
    }

    fn offsets_reset(&self, notice: ResetOffsetNotice) -> BoxFuture<'static, broker::Result<()>> {
        let _ = self.lines.send(format!("RESET {} {}", notice.group, notice.topic));
        Box::pin(async { Ok(()) })
    }

    fn push_reply(&self, reply: PushReplyMessage, _timeout: Duration) -> BoxFuture<'static, broker::Result<()>> {
        let _ = self.lines.send(format!("REPLY {}", String::from_utf8_lossy(&reply.message.message.body)));
        Box::pin(async { Ok(()) })
    }

    fn running_info(&self, ask: GetConsumerRunningInfo, _timeout: Duration) -> BoxFuture<'static, broker::Result<Vec<ConsumerRunningInfo>>> {
        let _ = self.lines.send(format!("STATUS {}", ask.group));
        Box::pin(async { Ok(Vec::new()) })
    }
}

#[tokio::test]
async fn a_front_of_its_own_drives_the_broker_and_takes_its_check_backs() {
    let mut config = BrokerConfig::new("broker-a", "127.0.0.1:10911");
    config.transaction_timeout_ms = 200;
    config.transaction_check_interval_ms = 100;
    let broker = Broker::open(config, Arc::new(MemDisk::new()), Clock::new()).expect("open");
    broker.start();
    let client: SocketAddr = "10.0.0.7:40000".parse().unwrap();
    let (tx, mut calls) = mpsc::unbounded_channel();
    broker.peer_connected(client, Arc::new(LinePeer { lines: tx }));
    let front = LineFront { broker: broker.clone(), client };

    assert_eq!(front.call("SEND orders hello").await, "OK 0");
    assert_eq!(front.call("PULL g orders 0 0").await, "OK hello");
    // Refusals come back in this front's own words.
    let refused = front.call("SEND bad!topic hello").await;
    assert!(refused.starts_with("NO Illegal:"), "{refused}");
    let refused = front.call("PULL g nowhere 0 0").await;
    assert!(refused.starts_with("NO TopicNotExist:"), "{refused}");

    // A half stays invisible until its producer, asked back through this
    // front's peer, commits it.
    assert_eq!(front.call("PRODUCER pg").await, "OK");
    assert!(front.call("HALF pg orders secret").await.starts_with("OK "));
    assert_eq!(front.call("PULL g orders 0 1").await, "OK ");
    let check = tokio::time::timeout(Duration::from_secs(10), calls.recv()).await.expect("a check-back within 10 s").expect("a line");
    let words: Vec<&str> = check.split(' ').collect();
    let ["CHECK", group, offset, id] = words[..] else { panic!("not a check-back: {check}") };
    assert_eq!(group, "pg");
    assert_eq!(front.call(&format!("COMMIT {group} {offset} {id}")).await, "OK");
    assert_eq!(front.call("PULL g orders 0 1").await, "OK secret");
}
