//! Producers: keyed, sharded, sequenced sends with business resends, and transactional producers with their check listener.

use super::*;

/// What one transaction decides, as the business database knows it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Decision {
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

pub(crate) fn tx_state(state: TransactionState) -> TxState {
    match state {
        TransactionState::Commit => TxState::Commit,
        TransactionState::Rollback => TxState::Rollback,
        TransactionState::Unknown => TxState::Unknown,
    }
}

pub(crate) fn transaction_state(state: TxState) -> TransactionState {
    match state {
        TxState::Commit => TransactionState::Commit,
        TxState::Rollback => TransactionState::Rollback,
        TxState::Unknown => TransactionState::Unknown,
    }
}

/// A duration drawn from `[min, max]` ms.
pub(crate) fn draw_between([min, max]: [u64; 2]) -> Duration {
    Duration::from_millis(min + draw() % (max - min + 1))
}

/// The simulated business logic of a transactional producer: its local
/// transactions take their time and answer what the business decided (or
/// unknown); its check listener reads the decision once it is known and
/// records every answer.
pub(crate) struct SimTransactions {
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

pub(crate) fn queue_name(broker: &str, topic: &str, queue_id: u32) -> String {
    format!("{broker}/{topic}/{queue_id}")
}

/// Records how a send ended; true when it was acknowledged.
pub(crate) fn record_completion(recorder: &Recorder, process: &str, invoke: u64, topic: &str, result: broker::Result<SendResult>) -> bool {
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
pub(crate) struct Operation {
    /// The producer's operation number, which names its messages.
    n: u64,
    key: String,
    shard: String,
    seq: u64,
    tag: Option<String>,
    amount: u64,
    region: &'static str,
    /// Sent with `ENV = gray` (a gray release's share).
    gray: bool,
    /// A timer's delay after the send, in ms.
    timer_ms: Option<u64>,
    /// A delay level (1-based), and its delay in ms.
    delay_level: Option<(u32, u64)>,
    /// What the transaction decides (transactional producers only).
    decision: Option<(TxState, bool)>,
    /// Sent as a request, waiting for its reply (request-reply).
    request: bool,
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
        if self.gray {
            msg = msg.with_property(PROPERTY_ENV, "gray");
        }
        if let Some(tag) = &self.tag {
            msg = msg.with_tags(tag.clone());
        }
        if let Some((level, _)) = self.delay_level {
            msg = msg.with_delay_level(level);
        }
        msg
    }

    /// The send invoke of `msg`, this operation's message: what the
    /// checker compares deliveries with.
    fn send_invoke(&self, process: &str, spec: &ProducerSpec, msg: &Message) -> Event {
        let invoke = Event::new(0, process, Kind::Invoke, Op::Send)
            .msg_id(msg.unique_id().unwrap_or_default())
            .topic(spec.topic.clone())
            .key(self.key.clone())
            .shard(self.shard.clone())
            .seq(self.seq)
            .body(body_digest(&msg.body))
            .props(user_props(msg));
        match &self.tag {
            Some(tag) => invoke.tag(tag.clone()),
            None => invoke,
        }
    }

    /// When the message is due, on the history's clock, if it is delayed.
    fn due_ms(&self, now_ms: u64) -> Option<u64> {
        self.timer_ms.or(self.delay_level.map(|(_, ms)| ms)).map(|ms| now_ms + ms)
    }
}

/// How a producer sends: plainly, or in transactions.
pub(crate) enum Sender {
    Plain(Producer),
    Transactional(Arc<TransactionProducer>, TransactionSpec),
}

/// Sends one operation until it is acknowledged, resending it under a new
/// message id up to `spec.resend_max` times (a second apart, and only
/// before `stop_at_ms`) after a failed or unknown send.
pub(crate) async fn send_operation(
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
        let mut invoke = op.send_invoke(process, spec, &msg);
        if let Some(due) = op.due_ms(recorder.now_ms()) {
            invoke = invoke.deliver_at_ms(due);
        }
        let msg_id = msg.unique_id().unwrap_or_default().to_string();
        let acked = match sender {
            Sender::Plain(producer) if op.request => {
                let invoke = recorder.record(invoke);
                match producer.request_with_receipt(msg, Duration::from_millis(spec.request_timeout_ms)).await {
                    Ok((sent, reply)) => {
                        let acked = record_completion(recorder, process, invoke, &spec.topic, Ok(sent));
                        let answer = Event::new(0, process, Kind::Ok, Op::Reply).of(invoke).msg_id(msg_id.clone());
                        recorder.record(match reply {
                            Ok(reply) => answer.detail(String::from_utf8_lossy(&reply.message.body).into_owned()),
                            Err(e) => Event { kind: Kind::Fail, ..answer }.detail(e.to_string()),
                        });
                        acked
                    }
                    Err(e) => record_completion(recorder, process, invoke, &spec.topic, Err(e)),
                }
            }
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

/// Sends operations together in one batch send until it is acknowledged,
/// resending them together under new message ids up to `spec.resend_max`
/// times (a second apart, and only before `stop_at_ms`) after a failed or
/// unknown batch. Each message is recorded as a send of its own.
pub(crate) async fn send_batch_operations(sender: &Sender, recorder: &Recorder, process: &str, spec: &ProducerSpec, ops: &[Operation], stop_at_ms: u64) {
    let Sender::Plain(producer) = sender else { unreachable!("validated: batches are plain") };
    for attempt in 0..=spec.resend_max {
        if attempt > 0 {
            if recorder.now_ms() >= stop_at_ms {
                return;
            }
            recorder.reach(harness_marks::RESEND_BY_KEY, process);
        }
        let msgs: Vec<Message> = ops.iter().map(|op| op.message(process, spec, attempt)).collect();
        let invokes: Vec<u64> = ops
            .iter()
            .zip(&msgs)
            .map(|(op, msg)| recorder.record(op.send_invoke(process, spec, msg)))
            .collect();
        let acked = match producer.send_batch(msgs).await {
            Ok(results) if results.len() == invokes.len() => {
                let mut all = true;
                for (invoke, r) in invokes.iter().zip(results) {
                    all &= record_completion(recorder, process, *invoke, &spec.topic, Ok(r));
                }
                all
            }
            Ok(results) => {
                let why = format!("the batch of {} was answered with {} results", invokes.len(), results.len());
                for invoke in &invokes {
                    recorder.record(Event::new(0, process, Kind::Info, Op::Send).of(*invoke).detail(why.clone()));
                }
                false
            }
            Err(e) => {
                for invoke in &invokes {
                    recorder.record(Event::new(0, process, Kind::Info, Op::Send).of(*invoke).detail(e.to_string()));
                }
                false
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
pub(crate) async fn send_transaction(
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
    let step_us = crate::cost::clock_step_us();
    let batched = interval < Duration::from_micros(step_us);
    // Time in whole steps, so a load is the same whatever the µs within one.
    let now_step_us = || recorder.now_us() / step_us * step_us;
    let in_flight = spec.in_flight_max.map_or(if batched { ASYNC_IN_FLIGHT_MAX } else { IN_FLIGHT_MAX }, |n| n as usize);
    let permits = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let (load_start_us, mut started) = (now_step_us(), 0u64);
    // Operations waiting to fill a batch.
    let mut pending: Vec<Operation> = Vec::new();
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
            // Drawn only where the scenario asks, so other runs keep their draws.
            gray: spec.gray_share.is_some_and(|share| draw_unit() < share),
            timer_ms: None,
            delay_level: None,
            decision: spec.transaction.as_ref().map(|t| {
                let outcome = if draw_unit() < t.rollback_share { TxState::Rollback } else { TxState::Commit };
                (outcome, draw_unit() < t.unknown_share)
            }),
            // Drawn only where the scenario asks, so other runs keep their draws.
            request: spec.request_share.is_some_and(|share| draw_unit() < share),
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
        if spec.batch > 1 {
            // Operations go out `batch` at a time, in one batch send.
            pending.push(op);
            if pending.len() >= spec.batch as usize {
                let ops = std::mem::take(&mut pending);
                let permit = permits.clone().acquire_owned().await.expect("semaphore never closes");
                let (sender, recorder, name, spec) = (sender.clone(), recorder.clone(), name.clone(), spec.clone());
                tokio::spawn(async move {
                    send_batch_operations(&sender, &recorder, &name, &spec, &ops, stop_at_ms).await;
                    drop(permit);
                });
            }
        } else if spec.fifo {
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
    if !pending.is_empty() {
        // The last, short batch.
        send_batch_operations(&sender, &recorder, &name, &spec, &pending, stop_at_ms).await;
    }
    std::future::pending::<()>().await
}
