//! Consumers: business logic that fails at a set rate and applies an idempotent effect by business key, and the crash trigger.

use super::*;

/// A deliver event: `queue` is where the message was pulled from (a retry
/// topic's queue for a retry), `local` marks a retry the consumer made
/// itself, and the message carries its original topic.
pub(crate) fn delivery(process: &str, group: &str, m: &MessageExt, queue: String, local: bool, outcome: ConsumeOutcome) -> Event {
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
pub(crate) fn with_message(event: Event, m: &MessageExt) -> Event {
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
pub(crate) fn is_poison(key: &str, share: f64) -> bool {
    share > 0.0 && (broker::model::fnv1a(key.as_bytes()) % 1_000_000) < (share * 1_000_000.0) as u64
}

/// Consumer settings used in the simulation: RocketMQ's, with a faster
/// rebalance so that short runs converge.
pub fn consumer_config(spec: &ConsumerSpec, orderly: bool) -> PushConsumerConfig {
    let mut config = PushConsumerConfig::with_selector(spec.group.clone(), spec.topic.clone(), group_selector(&spec));
    config.consume_from = ConsumeFrom::FirstOffset;
    config.rebalance_interval_ms = 5_000;
    // A broadcasting group's consumers each take every queue: no locks.
    config.orderly = orderly && !spec.broadcast;
    config.broadcast = spec.broadcast;
    config.max_reconsume_times = super::simple::asked_retry_max_times(spec);
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
/// the nemesis and sprung by the consumer's business logic, which then
/// stops its own process the way its cluster kills one.
#[derive(Clone)]
pub struct CrashTrigger {
    state: Arc<Mutex<TriggerState>>,
    kill: Arc<dyn Fn() + Send + Sync>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum TriggerState {
    #[default]
    Idle,
    Armed(CrashStep),
    Fired,
}

impl CrashTrigger {
    /// An idle trigger whose crash is `kill`.
    pub fn new(kill: impl Fn() + Send + Sync + 'static) -> CrashTrigger {
        CrashTrigger { state: Arc::default(), kill: Arc::new(kill) }
    }

    /// Arms the trigger for `step`.
    pub fn arm(&self, step: CrashStep) {
        *self.state.lock().expect("trigger") = TriggerState::Armed(step);
    }

    /// Disarms it; true when it fired (so the consumer is down).
    pub fn disarm(&self) -> bool {
        std::mem::take(&mut *self.state.lock().expect("trigger")) == TriggerState::Fired
    }

    /// At `step` of a delivery: when armed for it, records the crash and
    /// kills this consumer's node; the future then never completes.
    async fn strike(&self, step: CrashStep, recorder: &Recorder, process: &str) {
        {
            let mut state = self.state.lock().expect("trigger");
            if *state != TriggerState::Armed(step) {
                return;
            }
            *state = TriggerState::Fired;
        }
        recorder.record(Event::new(0, process, Kind::Info, Op::Crash).target(process).detail(format!("crashed at {}", step.as_str())));
        if step == CrashStep::AfterEffect {
            recorder.reach(harness_marks::CRASH_BETWEEN_EFFECT_AND_ACK, process);
        }
        (self.kill)();
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
    local_offsets: Option<Arc<dyn broker::store::Disk>>,
) {
    let client = ClientInstance::new(ClientConfig::new(namesrvs, name.clone()), clock);
    recorder.record(Event::new(0, &name, Kind::Ok, Op::Subscribe).group(spec.group.clone()).topic(spec.topic.clone()).detail(spec.tags.clone()));
    let (group, process) = (spec.group.clone(), name.clone());
    let hook_recorder = recorder.clone();
    let business = Business::of(&spec, db, trigger, recorder.clone(), name.clone());
    // A responding group answers each request it consumes, before its
    // business logic runs, with a reply naming the request.
    let responder = spec
        .replies
        .then(|| Arc::new(Producer::new(client.clone(), ProducerConfig::new(format!("{}-responders", spec.group))).expect("valid producer group")));
    let listener = AsyncListener(move |msgs: Vec<MessageExt>, ctx: ConsumeContext| {
        let (recorder, group, process, business, responder) = (recorder.clone(), group.clone(), process.clone(), business.clone(), responder.clone());
        async move {
            let queue = queue_name(&ctx.queue.broker_name, &ctx.queue.topic, ctx.queue.queue_id);
            let start = recorder.now_ms();
            if let Some(responder) = &responder {
                for m in msgs.iter().filter(|m| m.message.properties.contains_key(PROPERTY_CORRELATION_ID)) {
                    let id = m.msg_id();
                    recorder.record(Event::new(0, &process, Kind::Invoke, Op::Reply).group(group.clone()).msg_id(id.clone()));
                    if let Err(e) = responder.reply(m, checker::reply_body(&id)).await {
                        tracing::debug!(error = %e, "a reply was not sent");
                    }
                }
            }
            let consumed = business.consume(&msgs).await;
            for m in &msgs {
                let event = delivery(&process, &group, m, queue.clone(), ctx.attempt > 0, consumed.outcome()).start_ms(start);
                recorder.record(consumed.flag(event));
            }
            match consumed.outcome() {
                ConsumeOutcome::Success => ConsumeResult::Success,
                ConsumeOutcome::RetryLater => ConsumeResult::RetryLater,
            }
        }
    });
    let mut config = consumer_config(&spec, orderly);
    config.local_offsets = LocalOffsets(local_offsets);
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

/// A group's business logic: fails at the spec's rate and on poison keys,
/// takes its time, and commits the effect by key before it answers
/// success; a crash trigger may strike before or after the effect.
#[derive(Clone)]
pub(crate) struct Business {
    group: String,
    failure_rate: f64,
    idempotent: bool,
    poison: f64,
    process_ms: [u64; 2],
    db: DbClient,
    trigger: CrashTrigger,
    recorder: Recorder,
    process: String,
}

/// What the business logic made of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Consumed {
    /// Every effect committed (or had been).
    Success,
    /// Failed: retry later.
    Failed,
    /// The deduplication store could not be asked, so the batch failed.
    DedupeUnavailable,
}

impl Consumed {
    pub(crate) fn outcome(self) -> ConsumeOutcome {
        match self {
            Consumed::Success => ConsumeOutcome::Success,
            Consumed::Failed | Consumed::DedupeUnavailable => ConsumeOutcome::RetryLater,
        }
    }

    /// A delivery event marked as the dedupe store's failure where it was.
    pub(crate) fn flag(self, event: Event) -> Event {
        if self != Consumed::DedupeUnavailable {
            return event;
        }
        let detail = event.detail.clone().map_or(DEDUPE_UNAVAILABLE.to_string(), |d| format!("{d} {DEDUPE_UNAVAILABLE}"));
        event.detail(detail)
    }
}

impl Business {
    pub(crate) fn of(spec: &ConsumerSpec, db: DbClient, trigger: CrashTrigger, recorder: Recorder, process: String) -> Business {
        Business {
            group: spec.group.clone(),
            failure_rate: spec.failure_rate,
            idempotent: spec.idempotent,
            poison: spec.poison_key_share,
            process_ms: spec.process_ms,
            db,
            trigger,
            recorder,
            process,
        }
    }

    /// Runs the business logic on a batch.
    pub(crate) async fn consume(&self, msgs: &[MessageExt]) -> Consumed {
        let Business { group, failure_rate, idempotent, poison, process_ms, db, trigger, recorder, process } = self;
        let (failure_rate, idempotent, poison, process_ms) = (*failure_rate, *idempotent, *poison, *process_ms);
        if idempotent && (failure_rate > 0.0 || poison > 0.0) {
            // Business logic that can fail first looks the key up, as an
            // idempotent consumer does: a key that took effect is done,
            // whatever copy brings it again.
            match already_applied(db, group, msgs).await {
                Ok(true) => return Consumed::Success,
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(consumer = %process, error = %e, "dedupe lookup failed");
                    return Consumed::DedupeUnavailable;
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
            return Consumed::Failed;
        }
        trigger.strike(CrashStep::BeforeEffect, recorder, process).await;
        for m in msgs {
            if let Err(e) = apply_effect(db, group, idempotent, m).await {
                tracing::debug!(consumer = %process, error = %e, "effect not committed");
                return Consumed::Failed;
            }
        }
        trigger.strike(CrashStep::AfterEffect, recorder, process).await;
        Consumed::Success
    }
}

/// Commits the business effect of a consumed message (a message without a
/// business key has none).
pub(crate) async fn apply_effect(db: &DbClient, group: &str, idempotent: bool, m: &MessageExt) -> Result<(), String> {
    let Some(key) = m.message.keys.first() else { return Ok(()) };
    let effect = Effect { group: group.to_string(), key: key.clone(), msg_id: m.msg_id() };
    db.apply(&ApplyRequest { effect, idempotent, check_only: false }).await.map(|_| ())
}

/// Whether every message of the batch already took effect in the group.
pub(crate) async fn already_applied(db: &DbClient, group: &str, msgs: &[MessageExt]) -> Result<bool, String> {
    for m in msgs {
        let Some(key) = m.message.keys.first() else { return Ok(false) };
        let effect = Effect { group: group.to_string(), key: key.clone(), msg_id: m.msg_id() };
        if db.apply(&ApplyRequest { effect, idempotent: true, check_only: true }).await? != Applied::Duplicate {
            return Ok(false);
        }
    }
    Ok(!msgs.is_empty())
}
