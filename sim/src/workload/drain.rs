//! The end of a run: the final drain of every group, its dead letters and the halves moved aside, and an operator's resend of dead letters.

use broker::command::{GetBrokerRuntimeInfo, GetQueueOffsets, GetTopicStats, PullMessage, QueryConsumerOffset};
use broker::command::{Refusal, Refused};

use super::*;

/// Attempts per request of the drain before it gives up on a queue.
pub(crate) const DRAIN_ATTEMPTS_MAX: u32 = 30;

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

/// An operator who, at `at_ms`, resets `group`'s offsets on `topic` to the
/// messages stored `rewind_ms` before (`mqadmin resetOffsetByTime`), with
/// the group's consumers running. Records the request (`invoke`) and, once
/// every master answered, where each queue went (`ok`, one per queue).
pub async fn reset_offsets(name: String, namesrvs: Vec<String>, group: String, topic: String, at_ms: u64, rewind_ms: u64, recorder: Recorder) {
    let now = recorder.now_ms();
    if now < at_ms {
        tokio::time::sleep(Duration::from_millis(at_ms - now)).await;
    }
    let clock = Clock::new();
    let to_ms = clock.now_ms().saturating_sub(rewind_ms);
    let admin = Admin::new(ClientInstance::new(ClientConfig::new(namesrvs, name.clone()), clock));
    recorder.record(Event::new(0, &name, Kind::Invoke, Op::OffsetReset).group(group.clone()).detail(format!("to {to_ms} ms on {topic}")));
    let Some(resets) = retrying!(admin.reset_offset(&group, &topic, Some(to_ms))) else {
        tracing::warn!(group, "the operator could not reset the offsets");
        return;
    };
    for (broker, r) in resets {
        recorder.record(
            Event::new(0, &name, Kind::Ok, Op::OffsetReset).group(group.clone()).queue(queue_name(&broker, &topic, r.queue_id)).offset(r.offset),
        );
    }
    std::future::pending::<()>().await
}

/// Waits until no broker holds a delayed message (a retry waiting for its
/// level), a timer, or a half message a live producer could end, at most
/// `wait_ms` (halves at most `halves_wait_ms`: as long as their checks can
/// take): the drain can only read what has reached the topics.
pub(crate) async fn wait_for_delayed(client: &ClientInstance, addrs: &BTreeSet<String>, wait_ms: u64, halves_wait_ms: u64) {
    let start = tokio::time::Instant::now();
    let (deadline, halves_deadline) = (start + Duration::from_millis(wait_ms), start + Duration::from_millis(halves_wait_ms));
    loop {
        let now = tokio::time::Instant::now();
        let (mut delayed, mut halves) = (0, 0);
        for addr in addrs {
            match client.call(addr, GetBrokerRuntimeInfo, client.timeout()).await {
                Ok(info) => {
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
        if g.broadcast {
            // Each consumer of a broadcasting group reads for itself, from
            // its own offsets: the drain has nothing to read for them.
            continue;
        }
        if g.kind == scenarios::ConsumerKind::Simple {
            drain_pop(&client, &g, &recorder, &db).await;
            for (broker_name, addr) in &brokers {
                read_dead_letters(&client, broker_name, addr, &g, &recorder).await;
            }
            continue;
        }
        let selector = group_selector(&g);
        let filter = Filter::parse(selector.kind, &selector.expression).unwrap_or(Filter::Tag(TagFilter::All));
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
                let query = QueryConsumerOffset { group: g.group.clone(), topic: mq.topic.clone(), queue_id: mq.queue_id };
                let committed = retrying!(client.call(&addr, query.clone(), timeout));
                let mut offset = match committed.and_then(|c| c.offset) {
                    Some(o) => {
                        recorder.record(
                            Event::new(0, "drain", Kind::Ok, Op::OffsetResume).group(g.group.clone()).queue(queue.clone()).offset(o),
                        );
                        o
                    }
                    _ => queue_min(&client, &addr, &mq.topic, mq.queue_id).await,
                };
                let queue_selector = if topic == g.topic { selector.clone() } else { Selector::tag("*") };
                let done = read_queue(&client, &addr, &g.group, &mq.topic, mq.queue_id, &queue_selector, &mut offset, |m| {
                    let (db, recorder, queue, group) = (db.clone(), recorder.clone(), queue.clone(), g.group.clone());
                    let m = m.clone();
                    let keep = filter.matches(&m.message);
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

/// How long the drain of a POP group may take, in simulated ms: what the
/// group's consumers still held comes back within an invisible time.
const POP_DRAIN_MS: u64 = 120_000;

/// Drains a POP group as its last simple consumer: receives and
/// acknowledges until every queue of its topic is done on every master
/// (the group's committed offset at the queue's end), waiting out what
/// the group's consumers still held invisible.
async fn drain_pop(client: &Arc<ClientInstance>, g: &ConsumerSpec, recorder: &Recorder, db: &DbClient) {
    // FIFO whatever the topic: the drain then takes each queue's messages
    // in order, behind what a consumer still held, as a FIFO group needs;
    // other groups only wait as long as they would anyway.
    let mut config = simple_config(g, true);
    config.await_ms = 1_000;
    let consumer = broker::client::SimpleConsumer::new(client.clone(), config).expect("valid simple consumer config");
    let invisible = Duration::from_secs(5);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(POP_DRAIN_MS);
    loop {
        let asked = recorder.now_ms();
        match consumer.receive(32, invisible).await {
            Ok(received) if !received.is_empty() => {
                for p in &received {
                    let start = recorder.now_ms();
                    if retrying!(apply_effect(db, &g.group, g.idempotent, &p.message)).is_none() {
                        continue;
                    }
                    let visible = asked + invisible.as_millis() as u64;
                    recorder.record(pop_delivery("drain", &g.group, p, ConsumeOutcome::Success, visible).start_ms(start));
                    ack(&consumer, recorder, "drain", &g.group, p).await;
                }
                continue;
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
        match pop_left(client, g).await {
            Some(0) => return,
            left => {
                if tokio::time::Instant::now() >= deadline {
                    let reason = match left {
                        Some(n) => format!("{n} messages of the POP group were still not done after {POP_DRAIN_MS} ms"),
                        None => "the POP group's progress could not be read".to_string(),
                    };
                    recorder.record(Event::new(0, "drain", Kind::Info, Op::DrainGaveUp).group(g.group.clone()).queue(g.topic.clone()).detail(reason));
                    return;
                }
            }
        }
    }
}

/// How many messages of a POP group's topic are not done, over every
/// master; `None` when a master could not be asked.
async fn pop_left(client: &ClientInstance, g: &ConsumerSpec) -> Option<u64> {
    let route = client.route(&g.topic, true).await.ok()?;
    let mut left = 0;
    for q in &route.queues {
        let addr = &q.master()?.addr;
        let stats = broker::command::GetConsumeStats { group: g.group.clone(), topic: g.topic.clone() };
        for progress in client.call(addr, stats, client.timeout()).await.ok()? {
            left += progress.max_offset.saturating_sub(progress.consumer_offset.unwrap_or(0));
        }
    }
    Some(left)
}

/// Records every half a broker moved aside after the most check-backs.
pub(crate) async fn read_moved_aside(client: &ClientInstance, broker_name: &str, addr: &str, recorder: &Recorder) {
    let query = GetQueueOffsets { topic: CHECK_MAX_TOPIC.to_string(), queue_id: 0 };
    let Some(range) = retrying!(client.call(addr, query.clone(), client.timeout())) else { return };
    let mut offset = range.min_offset;
    let done = read_queue(client, addr, "drain-moved-aside", CHECK_MAX_TOPIC, 0, &Selector::tag("*"), &mut offset, |m| {
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
pub(crate) async fn queue_min(client: &ClientInstance, addr: &str, topic: &str, queue_id: u32) -> u64 {
    let range = GetQueueOffsets { topic: topic.to_string(), queue_id };
    retrying!(client.call(addr, range.clone(), client.timeout())).map_or(0, |s| s.min_offset)
}

/// Pulls a queue from `offset` to its end, handing each message to
/// `visit`; `Err` says why it stopped short.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn read_queue<F, Fut>(
    client: &ClientInstance,
    addr: &str,
    group: &str,
    topic: &str,
    queue_id: u32,
    selector: &Selector,
    offset: &mut u64,
    visit: F,
) -> Result<(), String>
where
    F: Fn(&MessageExt) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    loop {
        let pull = PullMessage {
            group: group.to_string(),
            topic: topic.to_string(),
            queue_id,
            offset: *offset,
            max_msgs: 256,
            expression: selector.expression.clone(),
            expression_type: selector.kind,
            suspend_ms: 0,
            // The drain reads what the group left; it commits nothing, so
            // no reset fences it.
            generation: u64::MAX,
        };
        let Some(result) = retrying!(client.call(addr, pull.clone(), client.timeout())) else {
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
pub(crate) async fn read_dead_letters(client: &ClientInstance, broker_name: &str, addr: &str, g: &ConsumerSpec, recorder: &Recorder) {
    let topic = dlq_topic(&g.group);
    let stats = GetTopicStats { topic: topic.clone() };
    let mut queues = None;
    for _ in 0..DRAIN_ATTEMPTS_MAX {
        match client.call(addr, stats.clone(), client.timeout()).await {
            Ok(s) => {
                queues = Some(s);
                break;
            }
            Err(broker::Error::Refused(Refusal { kind: Refused::TopicNotExist, .. })) => return,
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
        let done = read_queue(client, addr, &g.group, &topic, q.queue_id, &Selector::tag("*"), &mut offset, |m| {
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
