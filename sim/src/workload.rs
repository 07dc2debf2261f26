//! What the simulated clients do: producers sending keyed, sharded,
//! sequenced messages; consumers whose business logic fails at a set rate
//! and applies an idempotent effect by business key; the final drain.
//! Compiled only with `--cfg madsim`.

use crate::database::{Applied, ApplyRequest, DbClient, Effect};
use crate::recorder::{harness_marks, Recorder};
use crate::draw::{draw, draw_unit};
use crate::run::WORKLOAD_START_MS;
use broker::client::{
    Admin, AsyncListener, ClientConfig, ClientInstance, ConsumeContext, ConsumeResult, MessageQueue, Producer, ProducerConfig, PushConsumer,
    PushConsumerConfig, QueueChange, QueueHook, TransactionListener, TransactionProducer,
};
use broker::clock::Clock;
use broker::model::{
    dlq_topic, retry_topic, Message, MessageExt, TagFilter, TransactionState, CHECK_MAX_TOPIC, PROPERTY_HALF_OFFSET, PROPERTY_PRODUCER_GROUP,
    PROPERTY_TRANSACTION, PROPERTY_UNIQ_KEY,
};
use broker::protocol::{ConsumeFrom, Request, ResponseBody, ResponseCode};
use broker::protocol::SendResult;
use broker::store::GetStatus;
use checker::history::{ConsumeOutcome, Event, Kind, Op, TxState};
use checker::{DEDUPE_UNAVAILABLE, LOCAL_RETRY};
use futures::future::BoxFuture;
use scenarios::{ConsumerSpec, CrashStep, ProducerSpec, Scenario, TransactionSpec};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Message property carrying the sharding key.
pub const PROPERTY_SHARD: &str = "SHARD";
/// Message property carrying the per-shard sequence number.
pub const PROPERTY_SEQ: &str = "SEQ";
/// Message property carrying a business amount, so integrity is checked on
/// properties the broker has no reason to touch.
pub const PROPERTY_AMOUNT: &str = "AMOUNT";
/// Message property carrying a business region.
pub const PROPERTY_REGION: &str = "REGION";
/// Pause before a business resend of a failed or unknown send.
const RESEND_BACKOFF: Duration = Duration::from_secs(1);
/// Operations one non-FIFO producer keeps in flight at most.
const IN_FLIGHT_MAX: usize = 64;
/// Sends one producer of a batched (over 1,000 a second) load may have in
/// flight: RocketMQ's bound on a client's asynchronous sends.
const ASYNC_IN_FLIGHT_MAX: usize = 65_535;
/// Regions a message's `REGION` property is drawn from.
const REGIONS: [&str; 4] = ["eu-west", "us-east", "ap-south", "cn-north"];

/// FNV-1a 64 of a body, as 16 hex digits: what the history carries so the
/// checker can compare a delivered body with the sent one.
pub fn body_digest(body: &[u8]) -> String {
    format!("{:016x}", broker::model::fnv1a(body))
}

/// A body of `len` bytes that differs per message: the message id repeated.
fn body_of(msg_id: &str, len: usize) -> Vec<u8> {
    msg_id.bytes().chain(std::iter::once(b'|')).cycle().take(len).collect()
}

/// The properties the history records: every one but the unique id, which
/// the history carries as `msg_id`, and the ones the transactional producer
/// and the broker add to a transactional message.
fn user_props(message: &Message) -> BTreeMap<String, String> {
    const SYSTEM: [&str; 4] = [PROPERTY_UNIQ_KEY, PROPERTY_TRANSACTION, PROPERTY_PRODUCER_GROUP, PROPERTY_HALF_OFFSET];
    message.properties.iter().filter(|(name, _)| !SYSTEM.contains(&name.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// What one transaction decides, as the business database knows it.
#[derive(Clone, Copy, Debug)]
struct Decision {
    /// Commit or rollback.
    outcome: TxState,
    /// From when check-backs can read the outcome (before: unknown).
    known_at_ms: u64,
    /// Whether the executor answers unknown, leaving the end to a check-back.
    executor_unknown: bool,
    /// The send invoke of the message, which its acknowledgement completes.
    invoke: u64,
}

/// State that survives producer restarts and is shared by every producer
/// of the run, as a business database would be: messages per producer,
/// sequence numbers per sharding key, and what each transaction decided
/// (so any producer of a group can answer a check-back).
#[derive(Clone, Debug, Default)]
pub struct ProducerState {
    counters: Arc<Mutex<BTreeMap<String, u64>>>,
    decisions: Arc<Mutex<BTreeMap<String, Decision>>>,
}

impl ProducerState {
    fn next(&self, counter: &str) -> u64 {
        let mut map = self.counters.lock().expect("producer state");
        let n = map.entry(counter.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    fn decide(&self, msg_id: &str, decision: Decision) {
        self.decisions.lock().expect("decisions").insert(msg_id.to_string(), decision);
    }

    fn decision(&self, msg_id: &str) -> Option<Decision> {
        self.decisions.lock().expect("decisions").get(msg_id).copied()
    }
}

fn tx_state(state: TransactionState) -> TxState {
    match state {
        TransactionState::Commit => TxState::Commit,
        TransactionState::Rollback => TxState::Rollback,
        TransactionState::Unknown => TxState::Unknown,
    }
}

fn transaction_state(state: TxState) -> TransactionState {
    match state {
        TxState::Commit => TransactionState::Commit,
        TxState::Rollback => TransactionState::Rollback,
        TxState::Unknown => TransactionState::Unknown,
    }
}

/// A duration drawn from `[min, max]` ms.
fn draw_between([min, max]: [u64; 2]) -> Duration {
    Duration::from_millis(min + draw() % (max - min + 1))
}

/// The simulated business logic of a transactional producer: its local
/// transactions take their time and answer what the business decided (or
/// unknown); its check listener reads the decision once it is known and
/// records every answer.
struct SimTransactions {
    process: String,
    spec: TransactionSpec,
    state: ProducerState,
    recorder: Recorder,
}

impl TransactionListener for SimTransactions {
    fn execute(&self, msg: &Message, _half: &SendResult) -> BoxFuture<'static, TransactionState> {
        let msg_id = msg.unique_id().unwrap_or_default();
        let decision = self.state.decision(msg_id);
        // The half is stored: its send is acknowledged now, before the
        // local transaction runs.
        if let Some(d) = decision {
            self.recorder.record(Event::new(0, &self.process, Kind::Ok, Op::Send).of(d.invoke).msg_id(msg_id));
        }
        let took = draw_between(self.spec.local_ms);
        Box::pin(async move {
            tokio::time::sleep(took).await;
            match decision {
                Some(d) if !d.executor_unknown => transaction_state(d.outcome),
                _ => TransactionState::Unknown,
            }
        })
    }

    fn check(&self, half: MessageExt, check_times: u32) -> BoxFuture<'static, TransactionState> {
        let msg_id = half.msg_id();
        let decision = self.state.decision(&msg_id);
        let took = draw_between(self.spec.check_ms);
        let (recorder, process) = (self.recorder.clone(), self.process.clone());
        // When the broker's question arrived: the checker tells a check
        // asked after the half's end from one already on its way.
        let asked_ms = recorder.now_ms();
        Box::pin(async move {
            tokio::time::sleep(took).await;
            let answer = match decision {
                Some(d) if recorder.now_ms() >= d.known_at_ms => d.outcome,
                _ => TxState::Unknown,
            };
            recorder.record(
                Event::new(0, &process, Kind::Ok, Op::TxCheck)
                    .msg_id(msg_id)
                    .tx(answer)
                    .detail(format!("check {}", check_times + 1))
                    .start_ms(asked_ms),
            );
            transaction_state(answer)
        })
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

/// Records how a send ended; true when it was acknowledged.
fn record_completion(recorder: &Recorder, process: &str, invoke: u64, topic: &str, result: broker::Result<SendResult>) -> bool {
    let (event, acked) = match result {
        Ok(r) if r.is_ok() => {
            let event = Event::new(0, process, Kind::Ok, Op::Send)
                .of(invoke)
                .msg_id(r.msg_id.clone())
                .queue(queue_name(&r.broker_name, topic, r.queue_id))
                .offset(r.queue_offset);
            (event, true)
        }
        // Stored but not durable as configured: the outcome is unknown.
        Ok(r) => (Event::new(0, process, Kind::Info, Op::Send).of(invoke).detail(format!("{:?}", r.status)), false),
        // After a timeout an earlier attempt may have stored it: unknown too.
        Err(e) => (Event::new(0, process, Kind::Info, Op::Send).of(invoke).detail(e.to_string()), false),
    };
    recorder.record(event);
    acked
}

/// One business operation of a producer: what every resend of it carries.
#[derive(Clone, Debug)]
struct Operation {
    /// The producer's operation number, which names its messages.
    n: u64,
    key: String,
    shard: String,
    seq: u64,
    tag: Option<String>,
    amount: u64,
    region: &'static str,
    /// A timer's delay after the send, in ms.
    timer_ms: Option<u64>,
    /// A delay level (1-based), and its delay in ms.
    delay_level: Option<(u32, u64)>,
    /// What the transaction decides (transactional producers only).
    decision: Option<(TxState, bool)>,
}

impl Operation {
    /// The message of resend `attempt` (0 for the first send): same key and
    /// content, its own unique id.
    fn message(&self, process: &str, spec: &ProducerSpec, attempt: u32) -> Message {
        let msg_id = match attempt {
            0 => format!("{process}-m{}", self.n),
            a => format!("{process}-m{}-r{a}", self.n),
        };
        let mut msg = Message::new(spec.topic.clone(), body_of(&msg_id, spec.body_bytes as usize))
            .with_key(self.key.clone())
            .with_property(PROPERTY_UNIQ_KEY, msg_id)
            .with_property(PROPERTY_SHARD, self.shard.clone())
            .with_property(PROPERTY_SEQ, self.seq.to_string())
            .with_property(PROPERTY_AMOUNT, self.amount.to_string())
            .with_property(PROPERTY_REGION, self.region);
        if let Some(tag) = &self.tag {
            msg = msg.with_tags(tag.clone());
        }
        if let Some((level, _)) = self.delay_level {
            msg = msg.with_delay_level(level);
        }
        msg
    }

    /// When the message is due, on the history's clock, if it is delayed.
    fn due_ms(&self, now_ms: u64) -> Option<u64> {
        self.timer_ms.or(self.delay_level.map(|(_, ms)| ms)).map(|ms| now_ms + ms)
    }
}

/// How a producer sends: plainly, or in transactions.
enum Sender {
    Plain(Producer),
    Transactional(Arc<TransactionProducer>, TransactionSpec),
}

/// Sends one operation until it is acknowledged, resending it under a new
/// message id up to `spec.resend_max` times (a second apart, and only
/// before `stop_at_ms`) after a failed or unknown send.
async fn send_operation(
    sender: &Sender,
    clock: &Clock,
    state: &ProducerState,
    recorder: &Recorder,
    process: &str,
    spec: &ProducerSpec,
    op: &Operation,
    stop_at_ms: u64,
) {
    for attempt in 0..=spec.resend_max {
        if attempt > 0 {
            if recorder.now_ms() >= stop_at_ms {
                return;
            }
            recorder.reach(harness_marks::RESEND_BY_KEY, process);
        }
        let mut msg = op.message(process, spec, attempt);
        if let Some(ms) = op.timer_ms {
            msg = msg.with_deliver_at(clock.now_ms() + ms);
        }
        let mut invoke = Event::new(0, process, Kind::Invoke, Op::Send)
            .msg_id(msg.unique_id().unwrap_or_default())
            .topic(spec.topic.clone())
            .key(op.key.clone())
            .shard(op.shard.clone())
            .seq(op.seq)
            .body(body_digest(&msg.body))
            .props(user_props(&msg));
        if let Some(tag) = &op.tag {
            invoke = invoke.tag(tag.clone());
        }
        if let Some(due) = op.due_ms(recorder.now_ms()) {
            invoke = invoke.deliver_at_ms(due);
        }
        let msg_id = msg.unique_id().unwrap_or_default().to_string();
        let acked = match sender {
            Sender::Plain(producer) => {
                let invoke = recorder.record(invoke);
                let result = if spec.fifo { producer.send_ordered(msg, &op.shard).await } else { producer.send(msg).await };
                record_completion(recorder, process, invoke, &spec.topic, result)
            }
            Sender::Transactional(producer, tx) => {
                let (outcome, executor_unknown) = op.decision.unwrap_or((TxState::Commit, false));
                let known_at_ms = recorder.now_ms() + tx.unknown_for_ms;
                let invoke = recorder.record(invoke.group(tx.group.clone()).tx(outcome));
                state.decide(&msg_id, Decision { outcome, known_at_ms, executor_unknown, invoke });
                send_transaction(producer, state, recorder, process, invoke, &msg_id, msg).await
            }
        };
        if acked {
            return;
        }
        tokio::time::sleep(RESEND_BACKOFF).await;
    }
}

/// Sends one half and records its outcome and its end; true when the half
/// was stored as configured (the operation needs no resend: the broker
/// checks back on it if its end was lost).
async fn send_transaction(
    producer: &TransactionProducer,
    state: &ProducerState,
    recorder: &Recorder,
    process: &str,
    invoke: u64,
    msg_id: &str,
    msg: Message,
) -> bool {
    match producer.send_in_transaction(msg).await {
        Ok(r) if r.half.is_ok() => {
            // Its acknowledgement was recorded when the local transaction
            // began (SimTransactions::execute).
            let kind = if r.state != TransactionState::Unknown && r.end.is_ok() { Kind::Ok } else { Kind::Info };
            let mut end = Event::new(0, process, kind, Op::TxEnd).msg_id(msg_id).tx(tx_state(r.state));
            if let Err(e) = &r.end {
                end = end.detail(e.clone());
            }
            recorder.record(end);
            true
        }
        Ok(r) => {
            // Stored but not durable: the producer rolled it back without
            // running the local transaction, so the business rolls back too.
            if let Some(d) = state.decision(msg_id) {
                state.decide(msg_id, Decision { outcome: TxState::Rollback, ..d });
            }
            recorder.record(Event::new(0, process, Kind::Info, Op::Send).of(invoke).detail(format!("{:?}", r.half.status)));
            recorder.record(Event::new(0, process, Kind::Info, Op::TxEnd).msg_id(msg_id).tx(TxState::Rollback));
            false
        }
        Err(e) => {
            recorder.record(Event::new(0, process, Kind::Info, Op::Send).of(invoke).detail(e.to_string()));
            false
        }
    }
}

/// A producer process: starts operations at the spec's rate until
/// `stop_at_ms`.
pub async fn run_producer(
    name: String,
    spec: ProducerSpec,
    namesrvs: Vec<String>,
    clock: Clock,
    recorder: Recorder,
    state: ProducerState,
    stop_at_ms: u64,
    delay_levels_ms: Vec<u64>,
) {
    let retire_at_ms = spec.transaction.as_ref().and_then(|t| t.retire_at_s).map(|s| (s * 1000.0) as u64);
    let retire = |recorder: &Recorder| {
        let group = spec.transaction.as_ref().map(|t| t.group.clone()).unwrap_or_default();
        recorder.record(Event::new(0, &name, Kind::Info, Op::Retire).group(group));
    };
    if retire_at_ms.is_some_and(|at| recorder.now_ms() >= at) {
        // Restarted after it retired: it stays gone.
        retire(&recorder);
        return std::future::pending::<()>().await;
    }
    // Transactional producers heartbeat three times per broker expiry.
    let config = ClientConfig { heartbeat_ms: 5_000, ..ClientConfig::new(namesrvs, name.clone()) };
    let client = ClientInstance::new(config, clock.clone());
    let sender = match &spec.transaction {
        None => Sender::Plain(Producer::new(client, ProducerConfig::new("sim-producers")).expect("valid producer group")),
        Some(tx) => {
            // One half per message id: a failed half is resent by the
            // business under a new id, never by the client.
            let config = ProducerConfig { retries: 0, ..ProducerConfig::new(tx.group.clone()) };
            let listener = Arc::new(SimTransactions { process: name.clone(), spec: tx.clone(), state: state.clone(), recorder: recorder.clone() });
            let producer = TransactionProducer::start(client, config, listener).expect("valid producer group");
            Sender::Transactional(Arc::new(producer), tx.clone())
        }
    };
    let sender = Arc::new(sender);
    let interval = Duration::from_micros((1_000_000.0 / spec.rate_per_s.max(0.001)) as u64);
    let now = recorder.now_ms();
    if now < WORKLOAD_START_MS {
        tokio::time::sleep(Duration::from_millis(WORKLOAD_START_MS - now)).await;
    }
    // Above one send a clock step (1 ms unless a cost model lowers it) sends
    // go out in a batch each tick, as many as have come due since the load
    // began: an open-loop load, its sends bounded only as RocketMQ bounds a
    // client's asynchronous sends (65,535 in flight).
    let step_us = broker::server::cost::clock_step_us();
    let batched = interval < Duration::from_micros(step_us);
    // Time in whole steps, so a load is the same whatever the µs within one.
    let now_step_us = || recorder.now_us() / step_us * step_us;
    let in_flight = spec.in_flight_max.map_or(if batched { ASYNC_IN_FLIGHT_MAX } else { IN_FLIGHT_MAX }, |n| n as usize);
    let permits = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let (load_start_us, mut started) = (now_step_us(), 0u64);
    while recorder.now_ms() < stop_at_ms {
        if retire_at_ms.is_some_and(|at| recorder.now_ms() >= at) {
            if let Sender::Transactional(producer, _) = sender.as_ref() {
                producer.shutdown();
            }
            retire(&recorder);
            break;
        }
        let n = state.next(&name);
        let shard = format!("{name}-s{}", draw() % spec.sharding_keys.max(1));
        let mut op = Operation {
            n,
            seq: state.next(&shard),
            shard,
            key: format!("{name}-k{n}"),
            tag: (!spec.tags.is_empty()).then(|| spec.tags[(draw() % spec.tags.len() as u64) as usize].clone()),
            amount: draw() % 100_000,
            region: REGIONS[(draw() % REGIONS.len() as u64) as usize],
            timer_ms: None,
            delay_level: None,
            decision: spec.transaction.as_ref().map(|t| {
                let outcome = if draw_unit() < t.rollback_share { TxState::Rollback } else { TxState::Commit };
                (outcome, draw_unit() < t.unknown_share)
            }),
        };
        if let Some(timer) = &spec.timer {
            let roll = draw_unit();
            if roll < timer.share {
                op.timer_ms = Some(draw() % (timer.max_ms + 1));
            } else if roll < timer.share + timer.delay_level_share {
                let level = 1 + (draw() % u64::from(timer.delay_level_max)) as u32;
                op.delay_level = Some((level, delay_levels_ms.get(level as usize - 1).copied().unwrap_or(0)));
            }
        }
        if spec.fifo {
            // Ordered operations are synchronous: the next waits for this one.
            send_operation(&sender, &clock, &state, &recorder, &name, &spec, &op, stop_at_ms).await;
        } else {
            let permit = permits.clone().acquire_owned().await.expect("semaphore never closes");
            let (sender, clock, state, recorder, name, spec) =
                (sender.clone(), clock.clone(), state.clone(), recorder.clone(), name.clone(), spec.clone());
            tokio::spawn(async move {
                send_operation(&sender, &clock, &state, &recorder, &name, &spec, &op, stop_at_ms).await;
                drop(permit);
            });
        }
        started += 1;
        if !batched {
            tokio::time::sleep(interval).await;
        } else {
            let due = |now_us: u64| ((now_us - load_start_us) as f64 * spec.rate_per_s / 1e6) as u64 + 1;
            while started >= due(now_step_us()) && recorder.now_ms() < stop_at_ms {
                tokio::time::sleep(Duration::from_micros(step_us)).await;
            }
        }
    }
    std::future::pending::<()>().await
}

/// A deliver event: `queue` is where the message was pulled from (a retry
/// topic's queue for a retry), `local` marks a retry the consumer made
/// itself, and the message carries its original topic.
fn delivery(process: &str, group: &str, m: &MessageExt, queue: String, local: bool, outcome: ConsumeOutcome) -> Event {
    let event = Event::new(0, process, Kind::Ok, Op::Deliver)
        .group(group)
        .queue(queue)
        .offset(m.queue_offset)
        .reconsume(m.reconsume_times)
        .result(outcome);
    let event = with_message(event, m);
    if local {
        event.detail(LOCAL_RETRY)
    } else {
        event
    }
}

/// `event` with what the history says of a message: its id, original
/// topic, body digest, user properties, key, tag, sharding key and sequence.
fn with_message(event: Event, m: &MessageExt) -> Event {
    let mut event = event
        .msg_id(m.msg_id())
        .topic(m.origin_topic().to_string())
        .body(body_digest(&m.message.body))
        .props(user_props(&m.message));
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

/// Whether a business key is poison in a group whose poison share is
/// `share`: its consumption always fails. Decided by the key alone, so
/// every copy and resend of it fails alike.
fn is_poison(key: &str, share: f64) -> bool {
    share > 0.0 && (broker::model::fnv1a(key.as_bytes()) % 1_000_000) < (share * 1_000_000.0) as u64
}

/// Consumer settings used in the simulation: RocketMQ's, with a faster
/// rebalance so that short runs converge.
pub fn consumer_config(spec: &ConsumerSpec, orderly: bool) -> PushConsumerConfig {
    let mut config = PushConsumerConfig::new(spec.group.clone(), spec.topic.clone(), spec.tags.clone());
    config.consume_from = ConsumeFrom::FirstOffset;
    config.rebalance_interval_ms = 5_000;
    config.orderly = orderly;
    config.max_reconsume_times = spec.max_reconsume_times;
    // Queue locks scaled down with the rebalance: trusted 4 s, renewed
    // every 2 s, under the brokers' 12 s lease (`BROKER_LOCK_LEASE_MS`),
    // which leaves 8 s for a message begun at the end of the trust.
    config.lock_lease_ms = 4_000;
    config.lock_interval_ms = 2_000;
    config
}

/// The brokers' queue lock lease in the simulation (RocketMQ: 60 s).
pub const BROKER_LOCK_LEASE_MS: u64 = 12_000;

/// A consumer crash armed to strike at a step of the next delivery, set by
/// the nemesis and sprung by the consumer's business logic.
#[derive(Clone, Debug, Default)]
pub struct CrashTrigger(Arc<Mutex<TriggerState>>);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum TriggerState {
    #[default]
    Idle,
    Armed(CrashStep),
    Fired,
}

impl CrashTrigger {
    /// Arms the trigger for `step`.
    pub fn arm(&self, step: CrashStep) {
        *self.0.lock().expect("trigger") = TriggerState::Armed(step);
    }

    /// Disarms it; true when it fired (so the consumer is down).
    pub fn disarm(&self) -> bool {
        std::mem::take(&mut *self.0.lock().expect("trigger")) == TriggerState::Fired
    }

    /// At `step` of a delivery: when armed for it, records the crash and
    /// kills this consumer's node; the future then never completes.
    async fn strike(&self, step: CrashStep, recorder: &Recorder, process: &str) {
        {
            let mut state = self.0.lock().expect("trigger");
            if *state != TriggerState::Armed(step) {
                return;
            }
            *state = TriggerState::Fired;
        }
        recorder.record(Event::new(0, process, Kind::Info, Op::Crash).target(process).detail(format!("crashed at {}", step.as_str())));
        if step == CrashStep::AfterEffect {
            recorder.reach(harness_marks::CRASH_BETWEEN_EFFECT_AND_ACK, process);
        }
        madsim::runtime::Handle::current().kill(process);
        std::future::pending::<()>().await
    }
}

/// A consumer process: joins its group and consumes until killed. Its
/// business logic fails at the spec's rate (retry later); otherwise it
/// commits the effect to the database and only then answers success, so
/// the offset can move past the message.
pub async fn run_consumer(
    name: String,
    spec: ConsumerSpec,
    orderly: bool,
    namesrvs: Vec<String>,
    clock: Clock,
    recorder: Recorder,
    db: DbClient,
    trigger: CrashTrigger,
) {
    let client = ClientInstance::new(ClientConfig::new(namesrvs, name.clone()), clock);
    recorder.record(Event::new(0, &name, Kind::Ok, Op::Subscribe).group(spec.group.clone()).topic(spec.topic.clone()).detail(spec.tags.clone()));
    let (group, failure_rate, idempotent, process) = (spec.group.clone(), spec.failure_rate, spec.idempotent, name.clone());
    let poison = spec.poison_key_share;
    let process_ms = spec.process_ms;
    let hook_recorder = recorder.clone();
    let listener = AsyncListener(move |msgs: Vec<MessageExt>, ctx: ConsumeContext| {
        let (recorder, db, trigger, group, process) = (recorder.clone(), db.clone(), trigger.clone(), group.clone(), process.clone());
        async move {
            let queue = queue_name(&ctx.queue.broker_name, &ctx.queue.topic, ctx.queue.queue_id);
            let start = recorder.now_ms();
            let record = |outcome: ConsumeOutcome| {
                for m in &msgs {
                    recorder.record(delivery(&process, &group, m, queue.clone(), ctx.attempt > 0, outcome).start_ms(start));
                }
            };
            if idempotent && (failure_rate > 0.0 || poison > 0.0) {
                // Business logic that can fail first looks the key up, as
                // an idempotent consumer does: a key that took effect is
                // done, whatever copy brings it again.
                match already_applied(&db, &group, &msgs).await {
                    Ok(true) => {
                        record(ConsumeOutcome::Success);
                        return ConsumeResult::Success;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::debug!(consumer = %process, error = %e, "dedupe lookup failed");
                        for m in &msgs {
                            let event = delivery(&process, &group, m, queue.clone(), ctx.attempt > 0, ConsumeOutcome::RetryLater);
                            let detail = event.detail.clone().map_or(DEDUPE_UNAVAILABLE.to_string(), |d| format!("{d} {DEDUPE_UNAVAILABLE}"));
                            recorder.record(event.start_ms(start).detail(detail));
                        }
                        return ConsumeResult::RetryLater;
                    }
                }
            }
            if process_ms != [0, 0] {
                // The business logic takes its time (drawn only when the
                // scenario asks, so other scenarios replay as before).
                tokio::time::sleep(draw_between(process_ms)).await;
            }
            let poisoned = msgs.iter().any(|m| m.message.keys.first().is_some_and(|k| is_poison(k, poison)));
            if poisoned || (failure_rate > 0.0 && draw_unit() < failure_rate) {
                record(ConsumeOutcome::RetryLater);
                return ConsumeResult::RetryLater;
            }
            trigger.strike(CrashStep::BeforeEffect, &recorder, &process).await;
            for m in &msgs {
                if let Err(e) = apply_effect(&db, &group, idempotent, m).await {
                    tracing::debug!(consumer = %process, error = %e, "effect not committed");
                    record(ConsumeOutcome::RetryLater);
                    return ConsumeResult::RetryLater;
                }
            }
            trigger.strike(CrashStep::AfterEffect, &recorder, &process).await;
            record(ConsumeOutcome::Success);
            ConsumeResult::Success
        }
    });
    let mut config = consumer_config(&spec, orderly);
    // Where each queue is resumed and what the broker took as committed,
    // for the offsets check; orderly lock handovers, for the timeline.
    let (recorder, process, group) = (hook_recorder, name.clone(), spec.group.clone());
    config.on_queue = QueueHook(Some(Arc::new(move |mq: &MessageQueue, change: QueueChange| {
        let queue = queue_name(&mq.broker_name, &mq.topic, mq.queue_id);
        let offset_event = |op: Op, offset: u64| Event::new(0, &process, Kind::Ok, op).group(group.clone()).queue(queue.clone()).offset(offset);
        let lock = |detail: &str| Event::new(0, &process, Kind::Info, Op::QueueLock).queue(queue.clone()).detail(detail);
        match change {
            QueueChange::Taken { offset } => {
                if orderly {
                    recorder.record(lock("taken"));
                }
                recorder.record(offset_event(Op::OffsetResume, offset));
            }
            QueueChange::Released if orderly => {
                recorder.record(lock("released"));
            }
            QueueChange::Released => {}
            QueueChange::Committed { offset } => {
                recorder.record(offset_event(Op::OffsetCommit, offset));
            }
        }
    })));
    let _consumer = PushConsumer::start(client, config, listener).expect("valid consumer config");
    std::future::pending::<()>().await
}

/// Commits the business effect of a consumed message (a message without a
/// business key has none).
async fn apply_effect(db: &DbClient, group: &str, idempotent: bool, m: &MessageExt) -> Result<(), String> {
    let Some(key) = m.message.keys.first() else { return Ok(()) };
    let effect = Effect { group: group.to_string(), key: key.clone(), msg_id: m.msg_id() };
    db.apply(&ApplyRequest { effect, idempotent, check_only: false }).await.map(|_| ())
}

/// Whether every message of the batch already took effect in the group.
async fn already_applied(db: &DbClient, group: &str, msgs: &[MessageExt]) -> Result<bool, String> {
    for m in msgs {
        let Some(key) = m.message.keys.first() else { return Ok(false) };
        let effect = Effect { group: group.to_string(), key: key.clone(), msg_id: m.msg_id() };
        if db.apply(&ApplyRequest { effect, idempotent: true, check_only: true }).await? != Applied::Duplicate {
            return Ok(false);
        }
    }
    Ok(!msgs.is_empty())
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

/// An operator who, at `at_ms`, sends every dead letter of `group` back to
/// its original topic (`mqadmin dlq-resend --all`), recording each resend
/// as a send of the operator with the message's id, key and content.
pub async fn resend_dead_letters(name: String, namesrvs: Vec<String>, group: String, at_ms: u64, recorder: Recorder) {
    let now = recorder.now_ms();
    if now < at_ms {
        tokio::time::sleep(Duration::from_millis(at_ms - now)).await;
    }
    let admin = Admin::new(ClientInstance::new(ClientConfig::new(namesrvs, name.clone()), Clock::new()));
    let Some(resent) = retrying!(admin.resend_dead_letters(&group, None)) else {
        tracing::warn!(group, "the operator could not resend the dead letters");
        return;
    };
    for (m, r) in resent {
        let invoke = recorder.record(with_message(Event::new(0, &name, Kind::Invoke, Op::Send), &m));
        let topic = m.origin_topic().to_string();
        record_completion(&recorder, &name, invoke, &topic, Ok(r));
        recorder.reach(harness_marks::DLQ_RESENT, &name);
    }
    std::future::pending::<()>().await
}

/// Waits until no broker holds a delayed message (a retry waiting for its
/// level), a timer, or a half message a live producer could end, at most
/// `wait_ms` (halves at most `halves_wait_ms`: as long as their checks can
/// take): the drain can only read what has reached the topics.
async fn wait_for_delayed(client: &ClientInstance, addrs: &BTreeSet<String>, wait_ms: u64, halves_wait_ms: u64) {
    let start = tokio::time::Instant::now();
    let (deadline, halves_deadline) = (start + Duration::from_millis(wait_ms), start + Duration::from_millis(halves_wait_ms));
    loop {
        let now = tokio::time::Instant::now();
        let (mut delayed, mut halves) = (0, 0);
        for addr in addrs {
            match client.call(addr, &Request::GetBrokerRuntimeInfo, client.timeout()).await {
                Ok(ResponseBody::Runtime(info)) => {
                    delayed += info.delayed_pending + info.timers_pending;
                    halves += info.halves_pending;
                }
                _ => delayed += 1,
            }
        }
        if (delayed == 0 || now >= deadline) && (halves == 0 || now >= halves_deadline) {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Reads every group's queues, its retry topic's included, from the
/// committed offset to the end, as the group's last consumer: it records
/// deliveries and applies effects. Then it reads each group's dead-letter
/// queues and records what they hold. Delayed retries are waited for first,
/// at most `delay_wait_ms`.
pub async fn drain(namesrvs: Vec<String>, groups: Vec<ConsumerSpec>, recorder: Recorder, db: DbClient, delay_wait_ms: u64, halves_wait_ms: u64) {
    let client = ClientInstance::new(ClientConfig::new(namesrvs, "drain"), Clock::new());
    let timeout = client.timeout();
    let mut brokers: BTreeMap<String, String> = BTreeMap::new();
    for g in &groups {
        if let Some(queues) = retrying!(client.read_queues(&g.topic, true)) {
            for mq in queues {
                if let Some(addr) = client.broker_addr(&mq.broker_name) {
                    brokers.insert(mq.broker_name.clone(), addr);
                }
            }
        }
    }
    wait_for_delayed(&client, &brokers.values().cloned().collect(), delay_wait_ms, halves_wait_ms).await;
    for g in groups {
        let filter = TagFilter::parse(&g.tags).unwrap_or(TagFilter::All);
        let gave_up = |queue: String, reason: String| {
            recorder.record(Event::new(0, "drain", Kind::Info, Op::DrainGaveUp).group(g.group.clone()).queue(queue).detail(reason));
        };
        for topic in [g.topic.clone(), retry_topic(&g.group)] {
            let Some(queues) = retrying!(client.read_queues(&topic, true)) else {
                gave_up(topic.clone(), format!("no route for topic {topic} after {DRAIN_ATTEMPTS_MAX} attempts"));
                continue;
            };
            for mq in queues {
                let queue = queue_name(&mq.broker_name, &mq.topic, mq.queue_id);
                let Some(addr) = client.broker_addr(&mq.broker_name) else {
                    gave_up(queue, format!("no address for broker {}", mq.broker_name));
                    continue;
                };
                let query = Request::QueryConsumerOffset { group: g.group.clone(), topic: mq.topic.clone(), queue_id: mq.queue_id };
                let committed = retrying!(client.call(&addr, &query, timeout));
                let mut offset = match committed {
                    Some(ResponseBody::Offset(Some(o))) => {
                        recorder.record(
                            Event::new(0, "drain", Kind::Ok, Op::OffsetResume).group(g.group.clone()).queue(queue.clone()).offset(o),
                        );
                        o
                    }
                    _ => queue_min(&client, &addr, &mq.topic, mq.queue_id).await,
                };
                let expression = if topic == g.topic { g.tags.clone() } else { "*".to_string() };
                let done = read_queue(&client, &addr, &g.group, &mq.topic, mq.queue_id, &expression, &mut offset, |m| {
                    let (db, recorder, queue, group) = (db.clone(), recorder.clone(), queue.clone(), g.group.clone());
                    let m = m.clone();
                    let keep = filter.matches(m.message.tags.as_deref());
                    async move {
                        if !keep {
                            return Ok(());
                        }
                        if retrying!(apply_effect(&db, &group, g.idempotent, &m)).is_none() {
                            return Err(format!("the database did not commit the effect of {}", m.msg_id()));
                        }
                        recorder.record(delivery("drain", &group, &m, queue, false, ConsumeOutcome::Success));
                        Ok(())
                    }
                })
                .await;
                if let Err(reason) = done {
                    gave_up(queue.clone(), reason);
                }
            }
        }
        for (broker_name, addr) in &brokers {
            read_dead_letters(&client, broker_name, addr, &g, &recorder).await;
        }
    }
    for (broker_name, addr) in &brokers {
        read_moved_aside(&client, broker_name, addr, &recorder).await;
    }
}

/// Records every half a broker moved aside after the most check-backs.
async fn read_moved_aside(client: &ClientInstance, broker_name: &str, addr: &str, recorder: &Recorder) {
    let query = Request::GetQueueOffsets { topic: CHECK_MAX_TOPIC.to_string(), queue_id: 0 };
    let Some(ResponseBody::QueueOffsets(range)) = retrying!(client.call(addr, &query, client.timeout())) else { return };
    let mut offset = range.min_offset;
    let done = read_queue(client, addr, "drain-moved-aside", CHECK_MAX_TOPIC, 0, "*", &mut offset, |m| {
        let (recorder, queue) = (recorder.clone(), queue_name(broker_name, CHECK_MAX_TOPIC, 0));
        let msg_id = m.msg_id();
        async move {
            recorder.record(Event::new(0, "drain", Kind::Info, Op::TxAside).msg_id(msg_id).queue(queue));
            Ok(())
        }
    })
    .await;
    if let Err(reason) = done {
        tracing::warn!(broker_name, reason, "the moved-aside halves could not all be read");
    }
}

/// The smallest offset of a queue (0 if it cannot be read).
async fn queue_min(client: &ClientInstance, addr: &str, topic: &str, queue_id: u32) -> u64 {
    let range = Request::GetQueueOffsets { topic: topic.to_string(), queue_id };
    match retrying!(client.call(addr, &range, client.timeout())) {
        Some(ResponseBody::QueueOffsets(s)) => s.min_offset,
        _ => 0,
    }
}

/// Pulls a queue from `offset` to its end, handing each message to
/// `visit`; `Err` says why it stopped short.
#[allow(clippy::too_many_arguments)]
async fn read_queue<F, Fut>(
    client: &ClientInstance,
    addr: &str,
    group: &str,
    topic: &str,
    queue_id: u32,
    expression: &str,
    offset: &mut u64,
    visit: F,
) -> Result<(), String>
where
    F: Fn(&MessageExt) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    loop {
        let pull = Request::PullMessage {
            group: group.to_string(),
            topic: topic.to_string(),
            queue_id,
            offset: *offset,
            max_msgs: 256,
            expression: expression.to_string(),
            suspend_ms: 0,
        };
        let Some(ResponseBody::Pull(result)) = retrying!(client.call(addr, &pull, client.timeout())) else {
            return Err(format!("pull at offset {offset} failed {DRAIN_ATTEMPTS_MAX} times"));
        };
        for m in &result.messages {
            visit(m).await?;
        }
        if result.next_offset <= *offset || matches!(result.status, GetStatus::NoNew | GetStatus::OffsetOverflow) {
            return Ok(());
        }
        *offset = result.next_offset;
    }
}

/// Records every message of a group's dead-letter queue on one broker as a
/// `dlq` event; a broker without the topic holds none.
async fn read_dead_letters(client: &ClientInstance, broker_name: &str, addr: &str, g: &ConsumerSpec, recorder: &Recorder) {
    let topic = dlq_topic(&g.group);
    let stats = Request::GetTopicStats { topic: topic.clone() };
    let mut queues = None;
    for _ in 0..DRAIN_ATTEMPTS_MAX {
        match client.call(addr, &stats, client.timeout()).await {
            Ok(ResponseBody::TopicStats(s)) => {
                queues = Some(s);
                break;
            }
            Err(broker::Error::Rejected { code: ResponseCode::TopicNotExist, .. }) => return,
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    let Some(queues) = queues else {
        recorder.record(
            Event::new(0, "drain", Kind::Info, Op::DrainGaveUp)
                .group(g.group.clone())
                .queue(queue_name(broker_name, &topic, 0))
                .detail(format!("the dead-letter topic could not be read after {DRAIN_ATTEMPTS_MAX} attempts")),
        );
        return;
    };
    for q in queues {
        let queue = queue_name(broker_name, &topic, q.queue_id);
        let mut offset = q.min_offset;
        let done = read_queue(client, addr, &g.group, &topic, q.queue_id, "*", &mut offset, |m| {
            let mut event = Event::new(0, "drain", Kind::Ok, Op::Dlq)
                .group(g.group.clone())
                .msg_id(m.msg_id())
                .topic(m.origin_topic().to_string())
                .queue(queue.clone())
                .offset(m.queue_offset)
                .reconsume(m.reconsume_times)
                .stored_ms(recorder.run_ms_of_wall(m.store_timestamp_ms));
            if let Some(key) = m.message.keys.first() {
                event = event.key(key.clone());
            }
            recorder.record(event);
            std::future::ready(Ok(()))
        })
        .await;
        if let Err(reason) = done {
            recorder.record(Event::new(0, "drain", Kind::Info, Op::DrainGaveUp).group(g.group.clone()).queue(queue).detail(reason));
        }
    }
}
