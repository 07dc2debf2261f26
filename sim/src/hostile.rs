//! Hostile clients: processes that send, at their rate, what a buggy or
//! malicious client would, and record how the broker answered each
//! request.
//!
//! Every request is one of [`KINDS`]. Messages go to the spec's own topic,
//! which no group consumes, so what the broker rightly accepts does not
//! disturb the invariants of the well-behaved clients. The checker's
//! `hostile` invariant judges the answers.

use crate::recorder::Recorder;
use crate::draw::draw;
use crate::run::WORKLOAD_START_MS;
use broker::model::{Message, PROPERTIES_BYTES_MAX};
use broker::net::ConnectionPool;
use broker::protocol::{encode_payload, Frame, FrameCodec, Request, ResponseCode, FRAME_BYTES_MAX, VERSION};
use broker::command::{GetTopicList, PullMessage, QueryConsumerOffset, SendMessage, UpdateConsumerOffset};
use bytes::BytesMut;
use checker::history::{Event, Kind, Op};
use futures::StreamExt;
use scenarios::HostileSpec;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::{Encoder, FramedRead};

/// Every kind of hostile request, drawn uniformly.
pub const KINDS: [&str; 15] = [
    "oversized-frame",
    "malformed-frame",
    "wrong-version",
    "body-past-limit",
    "properties-at-limit",
    "properties-past-limit",
    "key-past-limit",
    "tag-illegal",
    "topic-past-limit",
    "unknown-topic-pull",
    "unknown-group",
    "offset-past-end",
    "foreign-commit",
    "connection-flood",
    "unread-pulls",
];

/// How long a hostile request waits for its answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections one flood opens.
const FLOOD_CONNECTIONS: usize = 16;
/// Flooded or unread connections a process keeps open at most; older ones
/// are let go.
const KEPT_OPEN_MAX: usize = 64;
/// The group a hostile client commits offsets and pulls as.
const HOSTILE_GROUP: &str = "hostile-g";

/// A hostile process: from the workload's start until `stop_at_ms`, one
/// request every `1 / rate_per_s` seconds to a broker drawn each time.
/// `victim_topic` is a topic of the well-behaved clients (pulled far past
/// its end, never committed for their groups).
pub async fn run_hostile(
    name: String,
    spec: HostileSpec,
    brokers: Vec<String>,
    victim_topic: String,
    recorder: Recorder,
    stop_at_ms: u64,
) {
    let interval = Duration::from_micros((1_000_000.0 / spec.rate_per_s.max(0.001)) as u64);
    let now = recorder.now_ms();
    if now < WORKLOAD_START_MS {
        tokio::time::sleep(Duration::from_millis(WORKLOAD_START_MS - now)).await;
    }
    let pool = ConnectionPool::new();
    let mut kept_open: VecDeque<TcpStream> = VecDeque::new();
    while recorder.now_ms() < stop_at_ms && !brokers.is_empty() {
        let kind = KINDS[(draw() % KINDS.len() as u64) as usize];
        let addr = &brokers[(draw() % brokers.len() as u64) as usize];
        let answer = match kind {
            "oversized-frame" => {
                let mut bytes = ((FRAME_BYTES_MAX + 1) as u32).to_be_bytes().to_vec();
                bytes.extend_from_slice(&[0xAB; 64]);
                raw(addr, &bytes).await
            }
            "malformed-frame" => raw(addr, &frame(VERSION, (0..64).map(|_| draw() as u8).collect())).await,
            "wrong-version" => raw(addr, &frame(VERSION + 1 + (draw() % 100) as u16, payload(&Request::GetTopicList(GetTopicList)))).await,
            "connection-flood" => {
                let mut opened = 0;
                for _ in 0..FLOOD_CONNECTIONS {
                    if let Ok(Ok(stream)) = tokio::time::timeout(ANSWER_TIMEOUT, TcpStream::connect(addr.as_str())).await {
                        keep(&mut kept_open, stream);
                        opened += 1;
                    }
                }
                if opened == 0 { "unreachable".to_string() } else { format!("opened-{opened}") }
            }
            "unread-pulls" => match tokio::time::timeout(ANSWER_TIMEOUT, TcpStream::connect(addr.as_str())).await {
                Ok(Ok(mut stream)) => {
                    let pull = Request::PullMessage(PullMessage {
                        group: HOSTILE_GROUP.into(),
                        topic: victim_topic.clone(),
                        queue_id: 0,
                        offset: u64::MAX / 2,
                        max_msgs: 32,
                        expression: "*".into(),
                        expression_type: Default::default(),
                        suspend_ms: 15_000,
                        generation: 0,
                    });
                    let mut sent = 0;
                    for _ in 0..8 {
                        if stream.write_all(&frame(VERSION, payload(&pull))).await.is_ok() {
                            sent += 1;
                        }
                    }
                    let _ = stream.flush().await;
                    keep(&mut kept_open, stream);
                    format!("sent-{sent}")
                }
                _ => "unreachable".to_string(),
            },
            _ => {
                let request = request(kind, &spec.topic, &victim_topic);
                match pool.request(addr, &request, ANSWER_TIMEOUT).await {
                    Ok(response) => format!("{:?}", response.code),
                    Err(broker::Error::Timeout(_)) => "no-answer".to_string(),
                    Err(broker::Error::Connection { .. }) => "unreachable".to_string(),
                    Err(e) => format!("error: {e}"),
                }
            }
        };
        recorder.record(
            Event::new(0, name.as_str(), Kind::Info, Op::Hostile).target(addr.as_str()).detail(format!("{kind} -> {answer}")),
        );
        tokio::time::sleep(interval).await;
    }
    std::future::pending::<()>().await
}

/// The request of a structured hostile kind.
fn request(kind: &str, topic: &str, victim_topic: &str) -> Request {
    // `name\x01value\x02` for one property: its value fills the rest.
    let blob = |total: usize| "x".repeat(total - "blob".len() - 2);
    let send = |message: Message| Request::SendMessage(SendMessage {
        producer_group: "hostile-producers".into(),
        queue_id: 0,
        message,
        born_timestamp_ms: 0,
        born_host: "hostile".into(),
        default_topic_queues: 4,
    });
    let pull = |topic: &str, offset: u64| Request::PullMessage(PullMessage {
        group: HOSTILE_GROUP.into(),
        topic: topic.into(),
        queue_id: 0,
        offset,
        max_msgs: 32,
        expression: "*".into(),
        expression_type: Default::default(),
        suspend_ms: 0,
        generation: 0,
    });
    match kind {
        "body-past-limit" => send(Message::new(topic, vec![7u8; 4 * 1024 * 1024 + 1])),
        "properties-at-limit" => send(Message::new(topic, "at the limit").with_property("blob", blob(PROPERTIES_BYTES_MAX))),
        "properties-past-limit" => {
            send(Message::new(topic, "past the limit").with_property("blob", blob(PROPERTIES_BYTES_MAX + 1)))
        }
        "key-past-limit" => send(Message::new(topic, "long key").with_key("k".repeat(PROPERTIES_BYTES_MAX + 1))),
        "tag-illegal" => send(Message::new(topic, "bad tag").with_tags("TagA||TagB")),
        "topic-past-limit" => send(Message::new("t".repeat(128), "long topic")),
        "unknown-topic-pull" => pull("no-such-topic", 0),
        "unknown-group" => Request::QueryConsumerOffset(QueryConsumerOffset { group: "no-such-group".into(), topic: victim_topic.into(), queue_id: 0 }),
        "offset-past-end" => pull(victim_topic, u64::MAX / 2),
        // A queue no consumer of the hostile group was ever given, at an
        // offset far past its end (the broker clamps it).
        _ => Request::UpdateConsumerOffset(UpdateConsumerOffset { group: HOSTILE_GROUP.into(), topic: victim_topic.into(), queue_id: 0, offset: u64::MAX, generation: 0 }),
    }
}

fn payload(request: &Request) -> Vec<u8> {
    encode_payload(request).expect("hostile requests fit a frame")
}

fn frame(version: u16, payload: Vec<u8>) -> Vec<u8> {
    let mut out = BytesMut::new();
    FrameCodec
        .encode(Frame { version, response: false, oneway: false, opaque: 1, payload }, &mut out)
        .expect("hostile frames fit the limit");
    out.to_vec()
}

/// Writes `bytes` on a connection of its own and waits for a frame back or
/// the connection's end: the answer's code, `closed`, `no-answer`, or
/// `unreachable` when no connection could be made.
async fn raw(addr: &str, bytes: &[u8]) -> String {
    let mut stream = match tokio::time::timeout(ANSWER_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        _ => return "unreachable".into(),
    };
    if stream.write_all(bytes).await.is_err() || stream.flush().await.is_err() {
        return "closed".into();
    }
    let mut frames = FramedRead::new(stream, FrameCodec);
    match tokio::time::timeout(ANSWER_TIMEOUT, frames.next()).await {
        Err(_) => "no-answer".into(),
        Ok(None) | Ok(Some(Err(_))) => "closed".into(),
        Ok(Some(Ok(frame))) => match broker::protocol::decode_payload::<broker::protocol::Response>(&frame.payload) {
            Ok(response) => format!("{:?}", response.code),
            Err(_) => format!("{:?}", ResponseCode::SystemError),
        },
    }
}

/// Keeps a connection open, letting the oldest go past the cap.
fn keep(kept: &mut VecDeque<TcpStream>, stream: TcpStream) {
    kept.push_back(stream);
    while kept.len() > KEPT_OPEN_MAX {
        kept.pop_front();
    }
}
