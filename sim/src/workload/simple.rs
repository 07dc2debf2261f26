//! Simple consumers (RocketMQ 5's SimpleConsumer, POP): receive a batch,
//! run the business logic on each message, acknowledge what succeeded;
//! what failed is left to come back once its invisible time is over.

use super::*;
use broker::client::{SimpleConsumer, SimpleConsumerConfig};
use broker::command::{Popped, Refused};

/// Messages one receive asks for.
pub(crate) const RECEIVE_BATCH: u32 = 16;
/// Receives one simple consumer keeps out at once.
const RECEIVERS: usize = 4;
/// Messages one simple consumer processes at once.
const CONSUME_CONCURRENCY: usize = 32;
/// How long a receive waits at a broker when it has nothing visible.
pub(crate) const AWAIT_MS: u64 = 2_000;

/// Simple consumer settings used in the simulation: the group's selector,
/// `max_reconsume_times + 1` attempts (or RocketMQ's default, when the
/// brokers keep the group's), FIFO on FIFO topics, from the
/// queues' first messages.
pub fn simple_config(spec: &ConsumerSpec, fifo: bool) -> SimpleConsumerConfig {
    let mut config = SimpleConsumerConfig::new(spec.group.clone(), spec.topic.clone());
    config.selector = group_selector(spec);
    config.await_ms = AWAIT_MS;
    config.max_attempts = asked_retry_max_times(spec) + 1;
    config.fifo = fifo;
    config.consume_from = ConsumeFrom::FirstOffset;
    config
}

/// The retry max times a group's consumers ask for: the spec's, or
/// RocketMQ's default 16 when the brokers keep the group's own.
pub(crate) fn asked_retry_max_times(spec: &ConsumerSpec) -> u32 {
    if spec.group_on_broker {
        broker::model::MAX_RECONSUME_TIMES_DEFAULT
    } else {
        spec.max_reconsume_times
    }
}

/// A POP delivery event: the queue and attempt the handle names, and when
/// the message may come back at the earliest.
pub(crate) fn pop_delivery(process: &str, group: &str, p: &Popped, outcome: ConsumeOutcome, visible_ms: u64) -> Event {
    let queue = queue_name(&p.handle.broker_name, &p.handle.topic, p.handle.queue_id);
    delivery(process, group, &p.message, queue, false, outcome).visible_ms(visible_ms)
}

/// Acknowledges a received message, recording the ack and how it ended:
/// `ok`, `fail` when the broker refused it (the attempt came back since),
/// `info` when the answer is not known.
pub(crate) async fn ack(consumer: &SimpleConsumer, recorder: &Recorder, process: &str, group: &str, p: &Popped) -> bool {
    let queue = queue_name(&p.handle.broker_name, &p.handle.topic, p.handle.queue_id);
    let event = |kind: Kind| {
        Event::new(0, process, kind, Op::Ack).group(group).msg_id(p.message.msg_id()).queue(queue.clone()).offset(p.handle.offset).reconsume(p.message.reconsume_times)
    };
    let invoke = recorder.record(event(Kind::Invoke));
    match consumer.ack(&p.handle).await {
        Ok(()) => {
            recorder.record(event(Kind::Ok).of(invoke));
            true
        }
        Err(broker::Error::Refused(r)) if matches!(r.kind, Refused::HandleExpired | Refused::Illegal) => {
            recorder.record(event(Kind::Fail).of(invoke).detail(r.reason));
            false
        }
        Err(e) => {
            recorder.record(event(Kind::Info).of(invoke).detail(e.to_string()));
            false
        }
    }
}

/// One received message through the business logic, recorded, and
/// acknowledged when it succeeded.
async fn consume_one(business: &Business, recorder: &Recorder, consumer: &SimpleConsumer, name: &str, group: &str, p: &Popped, visible_ms: u64) -> Consumed {
    let start = recorder.now_ms();
    let consumed = business.consume(std::slice::from_ref(&p.message)).await;
    recorder.record(consumed.flag(pop_delivery(name, group, p, consumed.outcome(), visible_ms).start_ms(start)));
    if consumed == Consumed::Success {
        ack(consumer, recorder, name, group, p).await;
    }
    consumed
}

/// One simple consumer process's receiving side.
struct Receiver {
    consumer: Arc<SimpleConsumer>,
    permits: Arc<tokio::sync::Semaphore>,
    business: Business,
    recorder: Recorder,
    group: String,
    name: String,
    fifo: bool,
    invisible: Duration,
    budget_ms: u64,
}

impl Receiver {
    /// Receives and consumes until the process is killed.
    async fn run(self: Arc<Self>) {
        let Receiver { consumer, permits, business, recorder, group, name, fifo, invisible, budget_ms } = &*self;
        let invisible_ms = invisible.as_millis() as u64;
        loop {
            let asked = recorder.now_ms();
            let received = match consumer.receive(RECEIVE_BATCH, *invisible).await {
                Ok(received) => received,
                Err(e) => {
                    tracing::debug!(consumer = %name, error = %e, "receive failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let visible_ms = asked + invisible_ms;
            if *fifo {
                for p in &received {
                    // A message whose invisible time may run out before it
                    // is done is first held longer: once another consumer
                    // could receive it, processing it here would break its
                    // key's order. Refused (it came back already): the
                    // batch stops.
                    let (mut p, mut visible_ms) = (p.clone(), visible_ms);
                    let now = recorder.now_ms();
                    if now + budget_ms > visible_ms {
                        match consumer.change_invisible_duration(&p.handle, *invisible).await {
                            Ok(handle) => {
                                p.handle = handle;
                                visible_ms = now + invisible_ms;
                                recorder.reach(harness_marks::INVISIBLE_TIME_CHANGED, name);
                            }
                            Err(_) => break,
                        }
                    }
                    if consume_one(business, recorder, consumer, name, group, &p, visible_ms).await != Consumed::Success {
                        break;
                    }
                }
                continue;
            }
            // Side by side, as a push consumer's threads would, at most
            // CONSUME_CONCURRENCY at once; the next receive goes out while
            // the slow ones are still at work.
            for p in received {
                let permit = permits.clone().acquire_owned().await.expect("never closed");
                let (business, recorder, consumer, name, group) = (business.clone(), recorder.clone(), consumer.clone(), name.clone(), group.clone());
                tokio::spawn(async move {
                    consume_one(&business, &recorder, &consumer, &name, &group, &p, visible_ms).await;
                    drop(permit);
                });
            }
        }
    }
}

/// A simple consumer process: receives until killed, four receives out at
/// once. Each message goes
/// through the group's business logic, up to 32 side by side; a success is
/// acknowledged, a failure left to come back. On a FIFO topic they go one
/// at a time, and the rest of a batch after a failure is left too, so it
/// comes back behind the failed one, in order.
#[allow(clippy::too_many_arguments)]
pub async fn run_simple_consumer(
    name: String,
    spec: ConsumerSpec,
    fifo: bool,
    namesrvs: Vec<String>,
    clock: Clock,
    recorder: Recorder,
    db: DbClient,
    trigger: CrashTrigger,
) {
    // Heartbeats (and route refreshes) as often as the push consumers'
    // rebalances.
    let mut client_config = ClientConfig::new(namesrvs, name.clone());
    client_config.heartbeat_ms = 5_000;
    let client = ClientInstance::new(client_config, clock);
    recorder.record(Event::new(0, &name, Kind::Ok, Op::Subscribe).group(spec.group.clone()).topic(spec.topic.clone()).detail(spec.tags.clone()));
    let invisible = Duration::from_secs_f64(spec.invisible_s);
    let receiver = Arc::new(Receiver {
        consumer: Arc::new(SimpleConsumer::new(client, simple_config(&spec, fifo)).expect("valid simple consumer config")),
        permits: Arc::new(tokio::sync::Semaphore::new(CONSUME_CONCURRENCY)),
        business: Business::of(&spec, db, trigger, recorder.clone(), name.clone()),
        recorder,
        group: spec.group.clone(),
        name,
        fifo,
        invisible,
        // The most one message may take: the business logic's longest,
        // and its two database calls on a slow network.
        budget_ms: spec.process_ms[1] + 2_000,
    });
    // Several receives out at once, as an application's threads would
    // have: one waiting at a broker with nothing to give holds up none of
    // the others.
    for _ in 1..RECEIVERS {
        tokio::spawn(receiver.clone().run());
    }
    receiver.run().await

}
