//! Fuzzes a real broker's whole request path: frames over TCP from several
//! connections into a broker over a real store in a temporary directory.
//!
//! Every case is one frame, drawn from a seed: garbage bytes, frames with a
//! bad length, version or payload, or a request of any kind with fields at
//! and past every limit (long and odd strings, zero and huge numbers, bodies
//! and properties around their maximum). Requests go out on a few shared
//! connections, garbage on connections of its own. Afterwards every message
//! the broker acknowledged must still read back as sent, over the network,
//! and again after the broker is reopened on its store (recovery).
//!
//! The run fails on a panic anywhere in the broker (a panic hook counts
//! them: a panic in a connection task would otherwise only drop that
//! connection, and a poisoned lock panics every later request), on a
//! well-formed request that gets no answer, and on an acknowledged message
//! that cannot be read back.
//!
//! `cargo xtask fuzz --cases 100000` runs it in release; the test suite runs
//! a few thousand cases.

use anyhow::{bail, Context, Result};
use broker::clock::Clock;
use broker::model::{Message, TopicConfig, PROPERTY_UNIQ_KEY};
use broker::net::Connection;
use broker::protocol::{encode_payload, Frame, FrameCodec, Request, ResponseBody, ResponseCode, VERSION};
use broker::command::{ConsumeFrom, ConsumerData, ConsumerSendMsgBack, CreateTopic, GetBrokerRuntimeInfo, GetClusterInfo, GetConsumeStats, GetConsumerList, GetQueueOffsets, GetRoute, GetTopicList, GetTopicStats, Heartbeat, LockBatchMq, PullMessage, QueryConsumerOffset, QueryMessageByKey, QueryMessageByUniqueId, ResetOffset, SearchOffsetByTime, SendMessage, UnlockBatchMq, UnregisterClient, UpdateConsumerOffset, ViewMessage};
use broker::server::{Broker, BrokerConfig, FlushMode};
use broker::store::FsDisk;
use bytes::BytesMut;
use clap::Parser;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Encoder;

/// Fuzz the broker's request path.
#[derive(Parser, Debug)]
struct Args {
    /// Frames to send.
    #[arg(long, default_value_t = 10_000)]
    cases: u64,
    /// The seed every case is drawn from.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Shared connections that carry the requests.
    #[arg(long, default_value_t = 4)]
    connections: usize,
}

/// A small, fast, seeded generator (xorshift64*): the cases depend on the
/// seed alone.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// A number that is often at an edge.
    fn number(&mut self) -> u64 {
        match self.below(6) {
            0 => 0,
            1 => u64::MAX,
            2 => u64::from(u32::MAX) + self.below(3),
            3 => self.below(4),
            _ => self.below(1 << 20),
        }
    }

    /// A string that is often odd: empty, long, multi-byte, or holding the
    /// characters names and expressions treat specially.
    fn string(&mut self) -> String {
        match self.below(9) {
            0 => String::new(),
            1 => "x".repeat(self.pick(&[126, 127, 128, 255, 256, 65_536]).to_owned()),
            2 => "é".repeat(self.below(40_000) as usize),
            3 => self.pick(&["*", "||", "TagA || TagB", " ", "%RETRY%g", "../x", "a/b", "\u{0}", "\u{1}\u{2}"]).to_string(),
            4 => {
                let len = self.below(64) as usize;
                String::from_utf8_lossy(&self.bytes(len)).into_owned()
            }
            _ => format!("{}{}", self.pick(&["orders", "t", "g", "k", "fuzz"]), self.below(4)),
        }
    }

    fn topic(&mut self) -> String {
        if self.chance(70) {
            self.pick(&["orders", "payments", "fuzz-1"]).to_string()
        } else {
            self.string()
        }
    }
}

/// Sizes around the limits a message must meet.
const BODY_SIZES: [usize; 7] = [0, 1, 100, 4 * 1024 * 1024 - 1, 4 * 1024 * 1024, 4 * 1024 * 1024 + 1, 7 * 1024 * 1024];
const PROPERTY_SIZES: [usize; 5] = [0, 10, 32_700, 32_767, 40_000];

/// A message as a producer might build it, good or bad.
fn message(rng: &mut Rng, id: u64) -> Message {
    let mut message = Message::new(rng.topic(), Vec::new());
    let body_len = if rng.chance(90) { rng.below(256) as usize } else { *rng.pick(&BODY_SIZES) };
    message.body = rng.bytes(body_len.min(64)).repeat(body_len.div_ceil(64).max(1))[..body_len].to_vec();
    if rng.chance(60) {
        message.tags = Some(if rng.chance(80) { rng.pick(&["TagA", "TagB"]).to_string() } else { rng.string() });
    }
    for _ in 0..rng.below(3) {
        message.keys.push(if rng.chance(80) { format!("k{}", rng.below(100)) } else { rng.string() });
    }
    if rng.chance(10) {
        let size = *rng.pick(&PROPERTY_SIZES);
        message.properties.insert("blob".into(), "p".repeat(size));
    }
    if rng.chance(20) {
        message.properties.insert(rng.string(), rng.string());
    }
    message.properties.insert(PROPERTY_UNIQ_KEY.into(), format!("fuzz-{id}"));
    if rng.chance(10) {
        // Levels past the table's 18 included.
        message.delay_level = rng.below(40) as u32;
    }
    message
}

/// One request of any kind, fields drawn to hit edges.
fn request(rng: &mut Rng, id: u64) -> Request {
    match rng.below(20) {
        0..=7 => Request::SendMessage(SendMessage {
            producer_group: rng.string(),
            queue_id: if rng.chance(90) { rng.below(8) as u32 } else { rng.number() as u32 },
            message: message(rng, id),
            born_timestamp_ms: rng.number(),
            born_host: if rng.chance(90) { "fuzz".into() } else { rng.string() },
            default_topic_queues: rng.number() as u32,
        }),
        8 | 9 => Request::PullMessage(PullMessage {
            group: rng.string(),
            topic: rng.topic(),
            queue_id: rng.below(10) as u32,
            offset: rng.number(),
            max_msgs: rng.number() as u32,
            expression: rng.string(),
            expression_type: if rng.chance(30) { broker::model::ExpressionType::Sql92 } else { broker::model::ExpressionType::Tag },
            suspend_ms: rng.below(300),
            generation: rng.number(),
        }),
        10 => Request::Heartbeat(Heartbeat {
            client_id: rng.string(),
            consumers: vec![ConsumerData {
                group: rng.string(),
                subscriptions: vec![(rng.topic(), rng.string())],
                consume_from: match rng.below(3) {
                    0 => ConsumeFrom::FirstOffset,
                    1 => ConsumeFrom::LastOffset,
                    _ => ConsumeFrom::Timestamp(rng.number()),
                },
                broadcast: rng.below(2) == 0,
            }],
        }),
        11 => Request::UpdateConsumerOffset(UpdateConsumerOffset { group: rng.string(), topic: rng.topic(), queue_id: rng.number() as u32, offset: rng.number(), generation: rng.number() }),
        12 => Request::QueryConsumerOffset(QueryConsumerOffset { group: rng.string(), topic: rng.topic(), queue_id: rng.number() as u32 }),
        13 => Request::GetQueueOffsets(GetQueueOffsets { topic: rng.topic(), queue_id: rng.number() as u32 }),
        14 => Request::SearchOffsetByTime(SearchOffsetByTime { topic: rng.topic(), queue_id: rng.below(8) as u32, timestamp_ms: rng.number() }),
        15 => Request::CreateTopic(CreateTopic {
            config: TopicConfig {
                name: rng.topic(),
                write_queues: rng.number() as u32 % 2048,
                read_queues: rng.number() as u32 % 2048,
                perm: if rng.chance(20) { rng.next() as u8 } else { broker::model::PERM_READ | broker::model::PERM_WRITE },
                order: rng.chance(50),
            },
        }),
        16 => Request::QueryMessageByKey(QueryMessageByKey {
            topic: rng.topic(),
            key: rng.string(),
            max: rng.number() as u32,
            begin_ms: rng.number(),
            end_ms: rng.number(),
        }),
        17 => rng.pick(&[Request::GetTopicList(GetTopicList), Request::GetBrokerRuntimeInfo(GetBrokerRuntimeInfo), Request::GetClusterInfo(GetClusterInfo), Request::GetBrokerConfig(broker::command::GetBrokerConfig)]).clone(),
        18 => Request::ViewMessage(ViewMessage { commit_log_offset: rng.number() }),
        _ => match rng.below(10) {
            9 => Request::ResetOffset(ResetOffset {
                group: rng.string(),
                topic: rng.topic(),
                timestamp_ms: if rng.chance(50) { Some(rng.number()) } else { None },
            }),
            6 => Request::ConsumerSendMsgBack(ConsumerSendMsgBack {
                group: rng.string(),
                commit_log_offset: rng.number(),
                delay_level: rng.number() as i32,
                max_reconsume_times: rng.number() as u32,
            }),
            7 => Request::LockBatchMq(LockBatchMq { group: rng.string(), client_id: rng.string(), queues: vec![(rng.topic(), rng.number() as u32)] }),
            8 => Request::UnlockBatchMq(UnlockBatchMq { group: rng.string(), client_id: rng.string(), queues: vec![(rng.topic(), rng.number() as u32)] }),
            0 => Request::QueryMessageByUniqueId(QueryMessageByUniqueId { id: rng.string() }),
            1 => Request::GetTopicStats(GetTopicStats { topic: rng.topic() }),
            2 => Request::GetConsumeStats(GetConsumeStats { group: rng.string(), topic: rng.topic() }),
            3 => Request::GetConsumerList(GetConsumerList { group: rng.string() }),
            4 => Request::UnregisterClient(UnregisterClient { client_id: rng.string(), group: rng.string() }),
            _ => Request::GetRoute(GetRoute { topic: rng.topic() }),
        },
    }
}

/// Bytes a buggy or hostile client might write instead of a good frame.
fn garbage(rng: &mut Rng, id: u64) -> (&'static str, Vec<u8>) {
    let frame = |version: u16, payload: Vec<u8>| {
        let mut out = BytesMut::new();
        // A payload past the frame limit cannot be framed: send what the
        // codec would refuse as the length prefix alone.
        if FrameCodec.encode(Frame { version, response: false, oneway: false, opaque: id as u32, payload }, &mut out).is_err() {
            return u32::MAX.to_be_bytes().to_vec();
        }
        out.to_vec()
    };
    match rng.below(6) {
        0 => {
            let len = rng.below(4096) as usize;
            ("random-bytes", rng.bytes(len))
        }
        1 => {
            let mut bytes = ((8 * 1024 * 1024 + 1 + rng.below(1 << 30)) as u32).to_be_bytes().to_vec();
            bytes.extend(rng.bytes(64));
            ("oversized-frame", bytes)
        }
        2 => ("short-frame", (rng.below(7) as u32).to_be_bytes().to_vec()),
        3 => {
            let len = rng.below(512) as usize;
            ("bad-payload", frame(VERSION, rng.bytes(len)))
        }
        4 => {
            let version = loop {
                let v = rng.next() as u16;
                if v != VERSION {
                    break v;
                }
            };
            ("wrong-version", frame(version, encode_payload(&Request::GetTopicList(GetTopicList)).expect("small request")))
        }
        _ => {
            let mut bytes = frame(VERSION, encode_payload(&request(rng, id)).unwrap_or_default());
            let cut = rng.below(bytes.len() as u64) as usize;
            bytes.truncate(cut);
            ("truncated-frame", bytes)
        }
    }
}

/// A message the broker acknowledged, as sent.
struct Stored {
    id: String,
    topic: String,
    body: Vec<u8>,
}

/// Reads every acknowledged message back by its unique id; returns how many
/// failed, with the first few reasons printed.
async fn verify(addr: &str, stored: &[Stored], label: &str) -> Result<u64> {
    let conn = Connection::connect(addr, Duration::from_secs(5)).await?;
    let mut bad = 0;
    for message in stored {
        let request = Request::QueryMessageByUniqueId(QueryMessageByUniqueId { id: message.id.clone() });
        let found = match conn.request(&request, Duration::from_secs(10)).await {
            Ok(response) => match response.body {
                ResponseBody::Messages(found) => {
                    // A delayed message may still wait in the schedule topic.
                    found.iter().any(|m| {
                        m.message.body == message.body
                            && (m.message.topic == message.topic || m.delayed.as_ref().is_some_and(|d| d.topic == message.topic))
                    })
                }
                _ => false,
            },
            Err(_) => false,
        };
        if !found {
            bad += 1;
            if bad <= 5 {
                eprintln!("{label}: acknowledged message {} ({} bytes on {}) does not read back", message.id, message.body.len(), message.topic);
            }
        }
    }
    Ok(bad)
}

async fn start(dir: &std::path::Path) -> Result<(Arc<Broker>, String)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let mut config = BrokerConfig::new("fuzz-broker", addr.clone());
    config.flush = FlushMode::Async;
    let broker = Broker::open(config, Arc::new(FsDisk::new(dir)?), Clock::new()).context("broker opens")?;
    let serving = broker.clone();
    tokio::spawn(async move {
        let _ = serving.serve(listener).await;
    });
    Ok((broker, addr))
}

/// A runtime of two worker threads.
fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

fn main() -> Result<()> {
    let args = Args::parse();
    println!("fuzz seed={} cases={} connections={}", args.seed, args.cases, args.connections);
    let panics = Arc::new(AtomicU64::new(0));
    {
        let panics = panics.clone();
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            panics.fetch_add(1, Ordering::Relaxed);
            default_hook(info);
        }));
    }
    let dir = tempfile::tempdir()?;
    // The broker runs on a runtime of its own, so that shutting it down
    // stops every task of the first broker before the second opens the
    // same store, as a process exit would.
    let clients = runtime()?;
    let first = runtime()?;
    let (broker, addr) = first.block_on(start(dir.path()))?;
    let (stored, answers, silent, elapsed) = clients.block_on(fuzz(&args, &addr))?;
    println!("{:<24} {:<24} {:>8}", "request", "answer", "count");
    for ((kind, outcome), count) in &answers {
        println!("{kind:<24} {outcome:<24} {count:>8}");
    }
    let unreadable = clients.block_on(verify(&addr, &stored, "live"))?;
    drop(broker);
    first.shutdown_timeout(Duration::from_secs(5));
    let second = runtime()?;
    let (_reopened, addr) = second.block_on(start(dir.path()))?;
    let unreadable_after = clients.block_on(verify(&addr, &stored, "reopened"))?;
    second.shutdown_timeout(Duration::from_secs(5));
    let panics = panics.load(Ordering::Relaxed);
    println!(
        "cases={} acknowledged-sends={} unreadable={} unreadable-after-reopen={} no-answer={} panics={} wall={:.1}s cases/s={:.0}",
        args.cases,
        stored.len(),
        unreadable,
        unreadable_after,
        silent,
        panics,
        elapsed.as_secs_f64(),
        args.cases as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    if panics > 0 || silent > 0 || unreadable > 0 || unreadable_after > 0 {
        bail!("the broker failed the fuzz (seed {}): reproduce with `cargo xtask fuzz --seed {} --cases {}`", args.seed, args.seed, args.cases);
    }
    println!("fuzz: ok");
    Ok(())
}

/// What the fuzz saw: the acknowledged messages, the answers by request
/// kind, the requests with no answer, and the time it took.
type Findings = (Vec<Stored>, BTreeMap<(String, String), u64>, u64, Duration);

/// Sends `args.cases` frames to the broker at `addr`.
async fn fuzz(args: &Args, addr: &str) -> Result<Findings> {
    let mut conns = Vec::new();
    for _ in 0..args.connections.max(1) {
        conns.push(Connection::connect(addr, Duration::from_secs(5)).await?);
    }
    let mut rng = Rng::new(args.seed);
    let mut answers: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut stored = Vec::new();
    let mut silent = 0u64;
    let started = Instant::now();
    for case in 0..args.cases {
        if rng.chance(10) {
            let (kind, bytes) = garbage(&mut rng, case);
            let outcome = send_garbage(addr, &bytes).await;
            *answers.entry((kind.to_string(), outcome)).or_default() += 1;
            continue;
        }
        let request = request(&mut rng, case);
        let kind = request.name().to_string();
        let conn = &conns[rng.below(conns.len() as u64) as usize];
        let sent = match &request {
            Request::SendMessage(SendMessage { message, .. }) => Some(Stored {
                id: message.unique_id().unwrap_or_default().to_string(),
                topic: message.topic.clone(),
                body: message.body.clone(),
            }),
            _ => None,
        };
        let outcome = match conn.request(&request, Duration::from_secs(10)).await {
            Ok(response) => {
                if response.code == ResponseCode::Success {
                    stored.extend(sent);
                }
                format!("{:?}", response.code)
            }
            Err(e) => {
                silent += 1;
                eprintln!("case {case}: {kind} got no answer: {e}");
                "no-answer".to_string()
            }
        };
        *answers.entry((kind, outcome)).or_default() += 1;
    }
    Ok((stored, answers, silent, started.elapsed()))
}

/// Writes `bytes` on a connection of its own and says how the broker took
/// it: it closed the connection, answered, or is still waiting for the rest
/// of a frame (then this side hangs up).
async fn send_garbage(addr: &str, bytes: &[u8]) -> String {
    let Ok(mut stream) = TcpStream::connect(addr).await else { return "connect-failed".into() };
    if stream.write_all(bytes).await.is_err() {
        return "closed".into();
    }
    let mut buf = [0u8; 4096];
    match tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => "closed".into(),
        Ok(Ok(_)) => "answered".into(),
        Err(_) => "awaits-more".into(),
    }
}
