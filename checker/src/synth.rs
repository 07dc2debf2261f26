//! Synthetic histories: large, realistic and valid, so that the checker's own
//! speed can be measured (see the `checker-bench` binary) without running
//! the simulator.
//!
//! Four producers send keyed, tagged, sharded and sequenced messages with
//! body digests and properties to the FIFO topic "orders". Most sends are
//! acknowledged; some fail, some end unknown (a timeout, or no completion
//! at all), and the producer then sends the same business key again. Two
//! groups consume: `billing` takes every tag and deduplicates by key;
//! `audit` takes TagA and TagB only and is a non-idempotent control group
//! that applies every delivery. Some deliveries are retried, some are
//! redelivered after success, a few messages end in billing's dead-letter
//! queue. The nemesis kills and restarts a broker before the tail starts;
//! consumers stop shortly before the producers do and the final drain reads
//! what they left.
//!
//! Events are generated out of order, then sorted by time and numbered, so
//! the generator never scans the history (unlike
//! [`HistoryBuilder::deliver`](crate::history::HistoryBuilder::deliver),
//! which would make it quadratic).

use crate::config::{CheckConfig, Expect, GroupSpec};
use crate::history::{ConsumeOutcome, Event, Kind, Op};
use std::collections::{BTreeMap, BTreeSet};

/// The liveness bound of the generated config. It leaves room for a retry
/// (one second) and for the drain, which runs a few seconds after the last
/// consumer delivery and only reads messages acknowledged just before it.
pub const LIVENESS_BOUND_MS: u64 = 10_000;

/// Producer processes.
const PRODUCERS: u64 = 4;
/// Sharding keys per producer.
const SHARDS_PER_PRODUCER: u64 = 16;
/// Queues of the topic, spread over two brokers.
const QUEUES: u64 = 8;
/// Time between two sends (over all producers).
const SEND_INTERVAL_MS: u64 = 2;
/// When the first send happens, after the consumers subscribed.
const START_MS: u64 = 1_000;
/// How long a send of unknown outcome takes to time out.
const SEND_TIMEOUT_MS: u64 = 3_000;
/// Delay before a retried delivery, as RocketMQ's first backoff level.
const RETRY_DELAY_MS: u64 = 1_000;
/// How long before the last send the consumers stop.
const CONSUMERS_STOP_BEFORE_END_MS: u64 = 500;
/// Nemesis period: a broker is killed and restarted every this many ms.
const NEMESIS_PERIOD_MS: u64 = 20_000;
/// Events per message on average, measured; sizes the message count.
const EVENTS_PER_MESSAGE_MILLI: usize = 5_340;
/// Message tags; audit subscribes to the first two.
const TAGS: [&str; 3] = ["TagA", "TagB", "TagC"];
/// Values of the region property.
const REGIONS: [&str; 3] = ["eu", "us", "ap"];
/// The idempotent group that takes every tag.
const BILLING: &str = "billing";
/// The control group with a tag filter.
const AUDIT: &str = "audit";
/// Audit's tag expression.
const AUDIT_TAGS: &str = "TagA || TagB";
/// The topic, which is FIFO.
const TOPIC: &str = "orders";

/// A valid history of about `events_target` events, the same for the same
/// arguments, and the config to check it with: both groups, "orders" as a
/// FIFO topic, exactly-once and order expected, liveness bounded by
/// [`LIVENESS_BOUND_MS`].
pub fn history(events_target: usize, seed: u64) -> (Vec<Event>, CheckConfig) {
    let messages = (events_target * 1_000 / EVENTS_PER_MESSAGE_MILLI).max(1) as u64;
    let mut generator = Generator::new(seed, messages);
    generator.subscriptions();
    for n in 0..messages {
        generator.message(n);
    }
    generator.nemesis();
    let config = CheckConfig {
        groups: vec![
            GroupSpec {
                group: BILLING.into(),
                topic: TOPIC.into(),
                tags: "*".into(),
                sql: None,
                broadcast: false,
                pop: false,
                idempotent: true,
                max_reconsume_times: 16,
                replies: false,
            },
            GroupSpec {
                group: AUDIT.into(),
                topic: TOPIC.into(),
                tags: AUDIT_TAGS.into(),
                sql: None,
                broadcast: false,
                pop: false,
                idempotent: false,
                max_reconsume_times: 16,
                replies: false,
            },
        ],
        fifo_topics: vec![TOPIC.into()],
        expect: Expect {
            exactly_once: true,
            order: true,
            liveness_bound_ms: Some(LIVENESS_BOUND_MS),
            ..Expect::default()
        },
    };
    (generator.finish(), config)
}

/// splitmix64: tiny, deterministic and good enough to draw a workload.
#[derive(Debug, Clone)]
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// The next 64 random bits.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0; the slight modulo bias does not matter here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1_000) < per_mille
    }
}

/// An event not yet numbered: its time, its generation order (which breaks
/// ties in time, so that an effect follows its delivery) and, for a
/// completion, the generation order of its invoke.
#[derive(Debug)]
struct Draft {
    t_ms: u64,
    order: u64,
    of_order: Option<u64>,
    event: Event,
}

/// The message fields a delivery copies from its send.
#[derive(Debug)]
struct Sent {
    msg_id: String,
    key: String,
    tag: &'static str,
    shard: String,
    seq: u64,
    body: String,
    props: BTreeMap<String, String>,
    queue: String,
    offset: u64,
}

/// How a send ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Acknowledged,
    Failed,
    TimedOut,
    NoCompletion,
}

/// Generator state.
#[derive(Debug)]
struct Generator {
    rng: SplitMix64,
    drafts: Vec<Draft>,
    /// When the last send happens.
    send_end_ms: u64,
    /// When the tail starts: after three quarters of the sends.
    tail_start_ms: u64,
    /// Deliveries due after this go to the drain.
    consumers_stop_ms: u64,
    /// When the drain starts: after every send timed out.
    drain_start_ms: u64,
    /// Next sequence number per sharding key.
    seqs: BTreeMap<String, u64>,
    /// Next offset per queue.
    offsets: BTreeMap<String, u64>,
    /// Time of the last successful delivery per (group, sharding key), so
    /// that each shard is consumed in order.
    last_success_ms: BTreeMap<(&'static str, String), u64>,
    /// (group, key) pairs whose effect an idempotent group applied.
    applied: BTreeSet<(&'static str, String)>,
    /// Per producer, the key and tag of a send of unknown outcome that the
    /// producer sends again.
    resend: BTreeMap<u64, (String, &'static str)>,
}

impl Generator {
    /// A generator of `messages` messages, with the phases of the run
    /// timed from that count.
    fn new(seed: u64, messages: u64) -> Generator {
        let send_end_ms = START_MS + messages * SEND_INTERVAL_MS;
        Generator {
            rng: SplitMix64 { state: seed },
            drafts: Vec::new(),
            send_end_ms,
            tail_start_ms: START_MS + messages * SEND_INTERVAL_MS * 3 / 4,
            consumers_stop_ms: send_end_ms.saturating_sub(CONSUMERS_STOP_BEFORE_END_MS),
            drain_start_ms: send_end_ms + SEND_TIMEOUT_MS + 100,
            seqs: BTreeMap::new(),
            offsets: BTreeMap::new(),
            last_success_ms: BTreeMap::new(),
            applied: BTreeSet::new(),
            resend: BTreeMap::new(),
        }
    }

    /// Adds `event` at `t_ms` and returns its generation order.
    fn push(&mut self, t_ms: u64, event: Event, of_order: Option<u64>) -> u64 {
        let order = self.drafts.len() as u64;
        self.drafts.push(Draft {
            t_ms,
            order,
            of_order,
            event,
        });
        order
    }

    /// The consumers join their groups.
    fn subscriptions(&mut self) {
        for (process, group, tags) in [
            ("consumer-billing-1", BILLING, "*"),
            ("consumer-billing-2", BILLING, "*"),
            ("consumer-audit-1", AUDIT, AUDIT_TAGS),
        ] {
            let event = Event::new(0, process, Kind::Ok, Op::Subscribe)
                .group(group)
                .topic(TOPIC)
                .detail(tags);
            self.push(0, event, None);
        }
    }

    /// Kill and restart pairs before the tail, each with its mark.
    fn nemesis(&mut self) {
        let mut t_ms = NEMESIS_PERIOD_MS;
        while t_ms + 2_000 < self.tail_start_ms {
            let broker = format!("broker-{}", self.rng.below(2));
            let kill = Event::new(0, "nemesis", Kind::Info, Op::Fault).fault("kill").target(broker.clone());
            self.push(t_ms, kill, None);
            let mark = Event::new(0, "nemesis", Kind::Info, Op::Reached)
                .detail("crash-with-unsynced-bytes");
            self.push(t_ms, mark, None);
            let restart = Event::new(0, "nemesis", Kind::Info, Op::Heal).fault("kill").target(broker);
            self.push(t_ms + 2_000, restart, None);
            t_ms += NEMESIS_PERIOD_MS;
        }
    }

    /// Message `n`: its send, completion, deliveries, effects and dead letter.
    fn message(&mut self, n: u64) {
        let producer_index = n % PRODUCERS;
        let producer = format!("producer-{}", producer_index + 1);
        let t_send_ms = START_MS + n * SEND_INTERVAL_MS;
        let (key, tag, is_resend) = match self.resend.remove(&producer_index) {
            Some((key, tag)) => (key, tag, true),
            None => (
                format!("{producer}-k{n}"),
                TAGS[self.rng.below(TAGS.len() as u64) as usize],
                false,
            ),
        };
        let shard_index = self.rng.below(SHARDS_PER_PRODUCER);
        let shard = format!("{producer}-s{shard_index}");
        let seq = next(&mut self.seqs, &shard);
        let queue_index = (producer_index * SHARDS_PER_PRODUCER + shard_index) % QUEUES;
        let queue = format!("broker-{}/{TOPIC}/{queue_index}", queue_index % 2);
        let offset = next(&mut self.offsets, &queue);
        let props = BTreeMap::from([
            ("amount".to_owned(), self.rng.below(100_000).to_string()),
            (
                "region".to_owned(),
                REGIONS[self.rng.below(REGIONS.len() as u64) as usize].to_owned(),
            ),
        ]);
        let sent = Sent {
            msg_id: format!("{producer}-m{n}"),
            key,
            tag,
            shard,
            seq,
            body: format!("{:016x}", self.rng.next()),
            props,
            queue,
            offset,
        };

        let invoke = sent.fields(Event::new(0, producer.as_str(), Kind::Invoke, Op::Send));
        let invoke_order = self.push(t_send_ms, invoke, None);
        let outcome = match self.rng.below(1_000) {
            0..=9 => Outcome::Failed,
            10..=29 => Outcome::TimedOut,
            30..=39 => Outcome::NoCompletion,
            _ => Outcome::Acknowledged,
        };
        let completion = match outcome {
            Outcome::Acknowledged => Some((Kind::Ok, 1 + self.rng.below(20), None)),
            Outcome::Failed => Some((Kind::Fail, 1 + self.rng.below(20), Some("no route"))),
            Outcome::TimedOut => Some((Kind::Info, SEND_TIMEOUT_MS, Some("timeout"))),
            Outcome::NoCompletion => None,
        };
        if let Some((kind, after_ms, detail)) = completion {
            let mut done = Event::new(0, producer.as_str(), kind, Op::Send)
                .msg_id(sent.msg_id.clone())
                .topic(TOPIC);
            done.detail = detail.map(str::to_owned);
            self.push(t_send_ms + after_ms, done, Some(invoke_order));
        }
        if matches!(outcome, Outcome::TimedOut | Outcome::NoCompletion) {
            self.resend
                .insert(producer_index, (sent.key.clone(), sent.tag));
        }
        let delivered = match outcome {
            Outcome::Acknowledged => true,
            Outcome::Failed => false,
            Outcome::TimedOut | Outcome::NoCompletion => self.rng.chance(500),
        };
        if !delivered {
            return;
        }

        let dead_letter = outcome == Outcome::Acknowledged && !is_resend && self.rng.chance(2);
        if dead_letter {
            self.dead_letter(t_send_ms, &sent);
        } else {
            self.consume(BILLING, t_send_ms, &sent);
        }
        if sent.tag != "TagC" {
            self.consume(AUDIT, t_send_ms, &sent);
        }
    }

    /// Billing fails `sent` three times and the drain finds it in the DLQ.
    fn dead_letter(&mut self, t_send_ms: u64, sent: &Sent) {
        let mut t_ms = t_send_ms + 5 + self.rng.below(40);
        for reconsume in 0..3 {
            if t_ms > self.consumers_stop_ms {
                break;
            }
            let process = billing_consumer(sent, false);
            let event = delivery(
                process,
                BILLING,
                sent,
                reconsume,
                ConsumeOutcome::RetryLater,
            );
            self.push(t_ms, event, None);
            t_ms += RETRY_DELAY_MS;
        }
        let dlq = Event::new(0, "drain", Kind::Ok, Op::Dlq)
            .group(BILLING)
            .msg_id(sent.msg_id.clone());
        self.push(self.drain_start_ms, dlq, None);
    }

    /// `group` consumes `sent`: maybe a retry first, a success in shard
    /// order (by the drain if the consumers have stopped), its effect,
    /// maybe a redelivery.
    fn consume(&mut self, group: &'static str, t_send_ms: u64, sent: &Sent) {
        let mut due_ms = t_send_ms + 5 + self.rng.below(40);
        let mut reconsume = 0;
        if self.rng.chance(40) && due_ms <= self.consumers_stop_ms {
            let process = consumer(group, sent, false);
            let event = delivery(process, group, sent, 0, ConsumeOutcome::RetryLater);
            self.push(due_ms, event, None);
            due_ms += RETRY_DELAY_MS;
            reconsume = 1;
        }
        let last = self
            .last_success_ms
            .entry((group, sent.shard.clone()))
            .or_insert(0);
        let by_drain = due_ms.max(*last + 1) > self.consumers_stop_ms;
        let (process, t_ms) = if by_drain {
            ("drain", self.drain_start_ms.max(*last + 1))
        } else {
            (consumer(group, sent, false), due_ms.max(*last + 1))
        };
        *last = t_ms;
        let reconsume = if by_drain { 0 } else { reconsume };
        let event = delivery(process, group, sent, reconsume, ConsumeOutcome::Success);
        self.push(t_ms, event, None);
        self.effect(group, process, t_ms, sent);

        let again_ms = t_ms + 500 + self.rng.below(500);
        if !by_drain && again_ms <= self.consumers_stop_ms && self.rng.chance(20) {
            let process = consumer(group, sent, true);
            let event = delivery(process, group, sent, 0, ConsumeOutcome::Success);
            self.push(again_ms, event, None);
            self.effect(group, process, again_ms, sent);
        }
    }

    /// The effect of a successful delivery: once per key in billing, on
    /// every delivery in the audit control group.
    fn effect(&mut self, group: &'static str, process: &str, t_ms: u64, sent: &Sent) {
        if group == BILLING && !self.applied.insert((group, sent.key.clone())) {
            return;
        }
        let event = Event::new(0, process, Kind::Ok, Op::Effect)
            .group(group)
            .key(sent.key.clone())
            .msg_id(sent.msg_id.clone());
        self.push(t_ms, event, None);
    }

    /// The history: tail start and end added, events sorted by time (then
    /// generation order) and numbered, completions pointed at their invokes.
    fn finish(mut self) -> Vec<Event> {
        let tail = Event::new(0, "harness", Kind::Info, Op::TailStart);
        self.push(self.tail_start_ms, tail, None);
        let last_ms = self.drafts.iter().map(|d| d.t_ms).max().unwrap_or(0);
        let end = Event::new(0, "harness", Kind::Info, Op::End);
        self.push(last_ms.max(self.send_end_ms) + 1, end, None);

        let mut drafts = self.drafts;
        drafts.sort_by_key(|d| (d.t_ms, d.order));
        let mut id_of_order = vec![0; drafts.len()];
        for (position, draft) in drafts.iter().enumerate() {
            id_of_order[draft.order as usize] = position as u64 + 1;
        }
        drafts
            .into_iter()
            .map(|draft| {
                let mut event = draft.event;
                event.t_ms = draft.t_ms;
                event.id = id_of_order[draft.order as usize];
                event.of = draft.of_order.map(|order| id_of_order[order as usize]);
                event
            })
            .collect()
    }
}

/// The next number of `name` in `counters`, starting at 0.
fn next(counters: &mut BTreeMap<String, u64>, name: &str) -> u64 {
    match counters.get_mut(name) {
        Some(count) => {
            *count += 1;
            *count
        }
        None => {
            counters.insert(name.to_owned(), 0);
            0
        }
    }
}

/// The consumer of `group` that owns `sent`'s queue, or after a rebalance
/// (`moved`) the other one.
fn consumer(group: &'static str, sent: &Sent, moved: bool) -> &'static str {
    match group {
        BILLING => billing_consumer(sent, moved),
        _ => "consumer-audit-1",
    }
}

/// Billing's two consumers split the messages by the parity of their
/// sequence number, which serves a benchmark as well as a queue assignment.
fn billing_consumer(sent: &Sent, moved: bool) -> &'static str {
    if sent.seq.is_multiple_of(2) != moved {
        "consumer-billing-1"
    } else {
        "consumer-billing-2"
    }
}

/// A delivery of `sent` carrying every field of its send.
fn delivery(
    process: &str,
    group: &str,
    sent: &Sent,
    reconsume: u32,
    result: ConsumeOutcome,
) -> Event {
    sent.fields(Event::new(0, process, Kind::Ok, Op::Deliver).group(group))
        .queue(sent.queue.clone())
        .offset(sent.offset)
        .reconsume(reconsume)
        .result(result)
}

impl Sent {
    /// `event` with the message fields a send and its deliveries share.
    fn fields(&self, event: Event) -> Event {
        event
            .msg_id(self.msg_id.clone())
            .topic(TOPIC)
            .tag(self.tag)
            .key(self.key.clone())
            .shard(self.shard.clone())
            .seq(self.seq)
            .body(self.body.clone())
            .props(self.props.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariant::check_all;

    #[test]
    fn synthetic_history_is_valid_and_of_the_asked_size() {
        let (history, cfg) = history(20_000, 7);
        let verdict = check_all(&history, &cfg);
        assert!(verdict.is_valid(), "{verdict:#?}");
        let size = history.len() as f64 / 20_000.0;
        assert!((0.9..1.1).contains(&size), "{} events", history.len());

        // Ids increase in record order and time never goes back.
        assert!(history.windows(2).all(|w| w[0].id + 1 == w[1].id));
        assert!(history.windows(2).all(|w| w[0].t_ms <= w[1].t_ms));
        // It exercises what the checks look at, not an empty success.
        let count = |check: &str, name: &str| verdict.check(check).map_or(0, |c| c.count(name));
        assert!(count("integrity", "checked") > 5_000);
        assert!(count("lost", "dead-lettered") > 0);
        assert!(count("order", "checked") > 5_000);
        assert!(count("duplicated", "duplicated") > 0);
        assert!(count("recovered", "recovered") > 0);
        assert!(count("exactly-once", "control-double-effect") > 0);
        assert!(count("liveness", "pending") > 0);
        assert!(history
            .iter()
            .any(|e| e.process == "drain" && e.op == Op::Deliver));
    }

    #[test]
    fn same_seed_same_history() {
        assert_eq!(history(2_000, 1).0, history(2_000, 1).0);
        assert_ne!(history(2_000, 1).0, history(2_000, 2).0);
    }
}
