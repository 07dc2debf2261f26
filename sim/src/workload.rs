//! What the simulated clients do: producers sending keyed, sharded,
//! sequenced messages; consumers whose business logic fails at a set rate
//! and applies an idempotent effect by business key; the final drain.
//! Compiled only with `--cfg madsim`.

use crate::recorder::Recorder;
use crate::world::{draw, draw_unit, WORKLOAD_START_MS};
use broker::client::{ClientConfig, ClientInstance, ConsumeContext, ConsumeResult, Producer, ProducerConfig, PushConsumer, PushConsumerConfig};
use broker::clock::Clock;
use broker::model::{Message, MessageExt, TagFilter, PROPERTY_UNIQ_KEY};
use broker::protocol::{ConsumeFrom, Request, ResponseBody};
use broker::protocol::SendResult;
use broker::store::GetStatus;
use checker::history::{ConsumeOutcome, Event, Kind, Op};
use scenarios::{ConsumerSpec, ProducerSpec, Scenario};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Message property carrying the sharding key.
pub const PROPERTY_SHARD: &str = "SHARD";
/// Message property carrying the per-shard sequence number.
pub const PROPERTY_SEQ: &str = "SEQ";
/// Sends one non-FIFO producer keeps in flight at most.
const IN_FLIGHT_MAX: usize = 64;

/// The business database of the idempotent consumers: (group, key) pairs
/// whose effect was applied. It outlives consumer crashes, as a real
/// database would.
#[derive(Clone, Debug, Default)]
pub struct Dedupe(Arc<Mutex<BTreeSet<(String, String)>>>);

/// Counters that survive producer restarts: messages per producer and
/// sequence numbers per sharding key.
#[derive(Clone, Debug, Default)]
pub struct ProducerState(Arc<Mutex<BTreeMap<String, u64>>>);

impl ProducerState {
    fn next(&self, counter: &str) -> u64 {
        let mut map = self.0.lock().expect("producer state");
        let n = map.entry(counter.to_string()).or_insert(0);
        *n += 1;
        *n
    }
}

/// The producer entry that producer number `index` belongs to.
pub fn producer_spec(scenario: &Scenario, index: u32) -> &ProducerSpec {
    let mut first = 0;
    for spec in &scenario.workload.producers {
        if index < first + spec.count {
            return spec;
        }
        first += spec.count;
    }
    panic!("producer-{index} is outside the topology");
}

fn queue_name(broker: &str, topic: &str, queue_id: u32) -> String {
    format!("{broker}/{topic}/{queue_id}")
}

fn record_completion(recorder: &Recorder, process: &str, invoke: u64, topic: &str, result: broker::Result<SendResult>) {
    let event = match result {
        Ok(r) if r.is_ok() => Event::new(0, process, Kind::Ok, Op::Send)
            .of(invoke)
            .msg_id(r.msg_id.clone())
            .queue(queue_name(&r.broker_name, topic, r.queue_id))
            .offset(r.queue_offset),
        // Stored but not durable as configured: the outcome is unknown.
        Ok(r) => Event::new(0, process, Kind::Info, Op::Send).of(invoke).detail(format!("{:?}", r.status)),
        // After a timeout an earlier attempt may have stored it: unknown too.
        Err(e) => Event::new(0, process, Kind::Info, Op::Send).of(invoke).detail(e.to_string()),
    };
    recorder.record(event);
}

/// A producer process: sends at the spec's rate until `stop_at_ms`.
pub async fn run_producer(
    name: String,
    spec: ProducerSpec,
    namesrvs: Vec<String>,
    clock: Clock,
    recorder: Recorder,
    state: ProducerState,
    stop_at_ms: u64,
) {
    let client = ClientInstance::new(ClientConfig::new(namesrvs, name.clone()), clock);
    let producer = Producer::new(client, ProducerConfig::new("sim-producers")).expect("valid producer group");
    let interval = Duration::from_micros((1_000_000.0 / spec.rate_per_s.max(0.001)) as u64);
    let now = recorder.now_ms();
    if now < WORKLOAD_START_MS {
        tokio::time::sleep(Duration::from_millis(WORKLOAD_START_MS - now)).await;
    }
    let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_MAX));
    while recorder.now_ms() < stop_at_ms {
        let n = state.next(&name);
        let shard = format!("{name}-s{}", draw() % spec.sharding_keys.max(1));
        let seq = state.next(&shard);
        let key = format!("{name}-k{n}");
        let msg_id = format!("{name}-m{n}");
        let tag = (!spec.tags.is_empty()).then(|| spec.tags[(draw() % spec.tags.len() as u64) as usize].clone());
        let mut msg = Message::new(spec.topic.clone(), vec![b'x'; spec.body_bytes as usize])
            .with_key(key.clone())
            .with_property(PROPERTY_UNIQ_KEY, msg_id.clone())
            .with_property(PROPERTY_SHARD, shard.clone())
            .with_property(PROPERTY_SEQ, seq.to_string());
        let mut invoke = Event::new(0, &name, Kind::Invoke, Op::Send).msg_id(msg_id).topic(spec.topic.clone()).key(key).shard(shard.clone()).seq(seq);
        if let Some(tag) = tag {
            invoke = invoke.tag(tag.clone());
            msg = msg.with_tags(tag);
        }
        let invoke = recorder.record(invoke);
        if spec.fifo {
            // Ordered sends are synchronous: the next waits for this one.
            let result = producer.send_ordered(msg, &shard).await;
            record_completion(&recorder, &name, invoke, &spec.topic, result);
        } else {
            let permit = permits.clone().acquire_owned().await.expect("semaphore never closes");
            let (producer, recorder, name, topic) = (producer.clone(), recorder.clone(), name.clone(), spec.topic.clone());
            tokio::spawn(async move {
                let result = producer.send(msg).await;
                record_completion(&recorder, &name, invoke, &topic, result);
                drop(permit);
            });
        }
        tokio::time::sleep(interval).await;
    }
    std::future::pending::<()>().await
}

fn delivery(process: &str, group: &str, m: &MessageExt, attempt: u32, outcome: ConsumeOutcome) -> Event {
    let mut event = Event::new(0, process, Kind::Ok, Op::Deliver)
        .group(group)
        .msg_id(m.msg_id())
        .topic(m.message.topic.clone())
        .queue(queue_name(&m.broker_name, &m.message.topic, m.queue_id))
        .offset(m.queue_offset)
        .reconsume(attempt)
        .result(outcome);
    if let Some(key) = m.message.keys.first() {
        event = event.key(key.clone());
    }
    if let Some(tag) = &m.message.tags {
        event = event.tag(tag.clone());
    }
    if let Some(shard) = m.message.properties.get(PROPERTY_SHARD) {
        event = event.shard(shard.clone());
    }
    if let Some(seq) = m.message.properties.get(PROPERTY_SEQ).and_then(|s| s.parse().ok()) {
        event = event.seq(seq);
    }
    event
}

/// Consumer settings used in the simulation: RocketMQ's, with a faster
/// rebalance so that short runs converge.
pub fn consumer_config(spec: &ConsumerSpec, orderly: bool) -> PushConsumerConfig {
    let mut config = PushConsumerConfig::new(spec.group.clone(), spec.topic.clone(), spec.tags.clone());
    config.consume_from = ConsumeFrom::FirstOffset;
    config.rebalance_interval_ms = 5_000;
    config.orderly = orderly;
    config
}

/// A consumer process: joins its group and consumes until killed.
pub async fn run_consumer(
    name: String,
    spec: ConsumerSpec,
    orderly: bool,
    namesrvs: Vec<String>,
    clock: Clock,
    recorder: Recorder,
    dedupe: Dedupe,
) {
    let client = ClientInstance::new(ClientConfig::new(namesrvs, name.clone()), clock);
    recorder.record(Event::new(0, &name, Kind::Ok, Op::Subscribe).group(spec.group.clone()).topic(spec.topic.clone()).detail(spec.tags.clone()));
    let (group, failure_rate, process) = (spec.group.clone(), spec.failure_rate, name.clone());
    let listener = move |msgs: &[MessageExt], ctx: &ConsumeContext| {
        let fail = failure_rate > 0.0 && draw_unit() < failure_rate;
        let outcome = if fail { ConsumeOutcome::RetryLater } else { ConsumeOutcome::Success };
        for m in msgs {
            recorder.record(delivery(&process, &group, m, ctx.attempt, outcome));
        }
        if fail {
            return ConsumeResult::RetryLater;
        }
        for m in msgs {
            apply_effect(&dedupe, &recorder, &process, &group, m);
        }
        ConsumeResult::Success
    };
    let _consumer = PushConsumer::start(client, consumer_config(&spec, orderly), listener).expect("valid consumer config");
    std::future::pending::<()>().await
}

/// Attempts per request of the drain before it gives up on a queue.
const DRAIN_ATTEMPTS_MAX: u32 = 30;

/// Evaluates an async expression until it succeeds, at most
/// `DRAIN_ATTEMPTS_MAX` times a second apart; `None` if it never did.
macro_rules! retrying {
    ($call:expr) => {{
        let mut found = None;
        for _ in 0..DRAIN_ATTEMPTS_MAX {
            match $call.await {
                Ok(v) => {
                    found = Some(v);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
        found
    }};
}

/// Applies the business effect of a successfully consumed message once per
/// (group, key), recording it when it is new.
fn apply_effect(dedupe: &Dedupe, recorder: &Recorder, process: &str, group: &str, m: &MessageExt) {
    let Some(key) = m.message.keys.first() else { return };
    let fresh = dedupe.0.lock().expect("dedupe").insert((group.to_string(), key.clone()));
    if fresh {
        recorder.record(Event::new(0, process, Kind::Ok, Op::Effect).group(group).key(key.clone()).msg_id(m.msg_id()));
    }
}

/// Reads every group's queues from the committed offset to the end, as the
/// group's last consumer: it records deliveries and applies effects.
pub async fn drain(namesrvs: Vec<String>, groups: Vec<ConsumerSpec>, recorder: Recorder, dedupe: Dedupe) {
    let client = ClientInstance::new(ClientConfig::new(namesrvs, "drain"), Clock::new());
    let timeout = client.timeout();
    for g in groups {
        let filter = TagFilter::parse(&g.tags).unwrap_or(TagFilter::All);
        let Some(queues) = retrying!(client.read_queues(&g.topic, true)) else {
            recorder.note("drain", Op::End, None, Some(format!("no route for {}", g.topic)));
            continue;
        };
        for mq in queues {
            let Some(addr) = client.broker_addr(&mq.broker_name) else { continue };
            let query = Request::QueryConsumerOffset { group: g.group.clone(), topic: mq.topic.clone(), queue_id: mq.queue_id };
            let range = Request::GetQueueOffsets { topic: mq.topic.clone(), queue_id: mq.queue_id };
            let committed = retrying!(client.call(&addr, &query, timeout));
            let min = match retrying!(client.call(&addr, &range, timeout)) {
                Some(ResponseBody::QueueOffsets(s)) => s.min_offset,
                _ => 0,
            };
            let mut offset = match committed {
                Some(ResponseBody::Offset(Some(o))) => o,
                _ => min,
            };
            loop {
                let pull = Request::PullMessage {
                    group: g.group.clone(),
                    topic: mq.topic.clone(),
                    queue_id: mq.queue_id,
                    offset,
                    max_msgs: 256,
                    expression: g.tags.clone(),
                    suspend_ms: 0,
                };
                let Some(ResponseBody::Pull(result)) = retrying!(client.call(&addr, &pull, timeout)) else {
                    recorder.note("drain", Op::End, Some(&mq.to_string()), Some("queue unreadable".into()));
                    break;
                };
                for m in result.messages.iter().filter(|m| filter.matches(m.message.tags.as_deref())) {
                    recorder.record(delivery("drain", &g.group, m, 0, ConsumeOutcome::Success));
                    apply_effect(&dedupe, &recorder, "drain", &g.group, m);
                }
                if result.next_offset <= offset || matches!(result.status, GetStatus::NoNew | GetStatus::OffsetOverflow) {
                    break;
                }
                offset = result.next_offset;
            }
        }
    }
}
