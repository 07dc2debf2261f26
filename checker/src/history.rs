//! The history: what clients, the nemesis and the harness observed, one
//! [`Event`] per JSON line.
//!
//! A client operation is an `invoke` event followed by at most one
//! completion (`ok`, `fail` or `info`) whose `of` names the invoke. Deliveries,
//! effects, dead-letter findings and nemesis actions are single events.

mod builder;

pub use builder::HistoryBuilder;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One observed event. Optional fields are left out of the JSON when `None`,
/// so a line carries only what the event knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Simulated time in milliseconds.
    pub t_ms: u64,
    /// Simulated time in microseconds, recorded only when the run's clock
    /// steps under a millisecond (a cost model's `clock_step_us`), so that
    /// sub-millisecond latencies can be measured; `t_ms` is it in whole ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_us: Option<u64>,
    /// Unique id, increasing in record order; anomalies cite these.
    pub id: u64,
    /// Who observed it: "producer-2", "consumer-billing-1", "nemesis", "drain", "harness".
    pub process: String,
    /// Invoke, or how the operation completed.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// What was done.
    pub op: Op,
    /// For a completion: the id of its invoke event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of: Option<u64>,
    /// Client-made unique message id, present already on the send invoke.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// Topic of the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Tag of the message, matched against a group's tag expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Business key; the idempotent consumer applies one effect per key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Sharding key: order holds per sharding key on FIFO topics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// Per-sharding-key sequence number given by the producer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Queue the message was stored in, as "broker-1/orders/3".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Offset of the message in its queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Consumer group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Reconsume count of a delivery (0 on the first attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconsume: Option<u32>,
    /// What the business logic answered, on deliver events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ConsumeOutcome>,
    /// The fault a nemesis `fault` or `heal` event starts or ends, named as
    /// scenario files name it (`kill`, `disk-fault`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// Node or link a nemesis event acts on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Free text: nemesis parameters, error text, tag expression of a
    /// subscribe, the reason of a `drain-gave-up`, the name of a `reached` mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Digest of the message body (the simulator writes 16 lowercase hex
    /// digits), so that integrity can tell a corrupted body without the
    /// history carrying the body itself. The checker only compares strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// User properties the producer set (on a send invoke) or the consumer
    /// observed (on a deliver), so that integrity can compare them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub props: Option<BTreeMap<String, String>>,
    /// On a deliver event: when the business logic started on the message
    /// (`t_ms` is when it answered), so checks can tell processing that
    /// overlapped from processing that followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<u64>,
    /// On a POP delivery (a simple consumer's): the earliest time the
    /// message may be received again unless acknowledged, as far as the
    /// consumer can tell: when its receive was asked plus the invisible
    /// time it asked for (the broker started the lease no earlier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_ms: Option<u64>,
    /// Transactions. On a send invoke: the message is transactional, and
    /// this is what its local transaction decides in the end (commit or
    /// rollback). On a `tx-end`: what the executor answered. On a
    /// `tx-check`: what the check listener answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx: Option<TxState>,
    /// On a send invoke: the message must not be delivered before this time
    /// (a timer's delivery time, or the send's start plus its delay level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_at_ms: Option<u64>,
    /// On a `dlq` event: when the broker stored the dead letter, by its own
    /// clock (the message's store timestamp, as a client reading it sees).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_ms: Option<u64>,
    /// On a nemesis event that moved a broker's clock (a skew or a jump,
    /// or the heal that takes it back): the move in ms, forward positive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_ms: Option<i64>,
    /// On a `power-loss` fault: the bytes its target had written and not
    /// synced when the power went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsynced_bytes: Option<u64>,
    /// On a `flip-byte` disk fault: where the flipped bit is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flip: Option<Flip>,
    /// On a `partition` fault or heal: the nodes on the other side from
    /// `target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<String>>,
}

/// Where a disk fault flipped a bit: the file and its byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flip {
    /// The file, as the store names it (`commitlog/00000000000000000000`).
    pub path: String,
    /// The byte's offset in the file.
    pub at: u64,
}

/// A local transaction's state, as a transactional producer knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxState {
    /// Deliver the message.
    Commit,
    /// Never deliver it.
    Rollback,
    /// Not known yet.
    Unknown,
}

impl TxState {
    /// The state's name in histories.
    pub fn as_str(self) -> &'static str {
        match self {
            TxState::Commit => "commit",
            TxState::Rollback => "rollback",
            TxState::Unknown => "unknown",
        }
    }
}

/// Whether an event starts an operation or how it ended (Jepsen's types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The operation starts.
    Invoke,
    /// The operation definitely happened.
    Ok,
    /// The operation definitely did not happen.
    Fail,
    /// Unknown outcome (timeout), or an event with no invoke/complete pair.
    Info,
}

/// What an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// A producer sends a message.
    Send,
    /// A delivery to a consumer's business logic (kind ok, with `result`).
    Deliver,
    /// The idempotent consumer applied the business effect of `key` for `group`.
    Effect,
    /// The message was found in the group's dead-letter queue at the final drain.
    Dlq,
    /// A process joins `group` for `topic`; `detail` is the tag expression.
    Subscribe,
    /// A client process crashed.
    Crash,
    /// Nemesis: a fault starts; `fault` names it (`kill`, `partition`, ...,
    /// as scenario files do) and `target` the nodes it hits. Histories
    /// written before faults were named read their per-fault ops (`kill`,
    /// `power-loss`, ...) as this op without a `fault`.
    #[serde(alias = "kill", alias = "power-loss", alias = "pause", alias = "partition", alias = "latency")]
    #[serde(alias = "loss", alias = "clock-skew", alias = "clock-jump", alias = "disk-fault")]
    Fault,
    /// Nemesis: a fault ends (a process restarts or resumes, a partition or
    /// a disk heals, a clock steps back); `fault` and `target` are those of
    /// the fault it ends. Older histories' `restart` and `resume` read as it.
    #[serde(alias = "restart", alias = "resume")]
    Heal,
    /// Harness: from here on no faults, liveness must hold.
    TailStart,
    /// Harness: end of the run.
    End,
    /// Harness: the clients stopped, and only the final drain reads from
    /// here on; a liveness deadline after it is pending, not missed.
    ClientsStopped,
    /// Harness (process "drain"): the final drain could not read `queue` to
    /// its end for `group`; `detail` says why. Liveness fails on it, since
    /// lost cannot be judged for what the drain never read.
    DrainGaveUp,
    /// A "sometimes" mark: the run reached the interesting state named in
    /// `detail` (kebab-case, like "crash-with-unsynced-bytes"); `process`
    /// says who reached it. Sweeps count marks to show what a seed explored.
    Reached,
    /// A hostile client's request and how it was answered: `detail` is
    /// `<kind> -> <answer>`, the answer a response code (`MessageIllegal`),
    /// `closed`, `no-answer`, `unreachable`, or what the client did without
    /// waiting (`opened-16`, `sent`).
    Hostile,
    /// An orderly consumer (`process`) took (`detail` `taken`, holding the
    /// broker's lock) or gave up (`released`) `queue`: a queue passing from
    /// one consumer to another is a lock handover.
    QueueLock,
    /// A transactional producer ended a half with what its local
    /// transaction answered (`tx`): `ok` when the broker took the end,
    /// `info` when it is not known to have (the check-back resolves it).
    TxEnd,
    /// A producer (`process`, any of the half's producer group) answered a
    /// broker's check-back about `msg_id` with `tx`.
    TxCheck,
    /// The final drain found `msg_id` moved aside after the most
    /// check-backs (TRANS_CHECK_MAX_TIME_TOPIC): reported, not lost.
    TxAside,
    /// A producer process (`process`) of producer group `group` left for
    /// good: nobody answers check-backs for its halves once its group has
    /// no producer left.
    Retire,
    /// A broker replica (`process`: `<broker name>/<broker id>`) changed
    /// role in controller mode: `detail` is `master epoch=E start=S`,
    /// `slave of <addr> epoch=E`, `cut <from> to <to>` (its log cut back to
    /// where it agrees with a new master) or `sync-state-set [ids]
    /// set-epoch=N` (the controller confirmed its master's new set).
    /// Drawn on a report's timeline.
    Role,
    /// A consumer (`process`) of `group` had its commit of `offset` for
    /// `queue` taken by the broker (kind ok).
    OffsetCommit,
    /// A consumer (`process`, or the final drain) of `group` resumed
    /// `queue` at `offset`, as the broker's committed offset said (or, with
    /// none committed, where the group starts).
    OffsetResume,
    /// An operator (`process`) resets `group`'s offsets on its topic:
    /// `invoke` when asked (`detail` says to when), then one `ok` per queue
    /// with where the broker put the group's offset (`queue`, `offset`).
    OffsetReset,
    /// A simple consumer (`process`) acknowledges a received message
    /// (`msg_id`, `group`, the attempt less one in `reconsume`, `queue`,
    /// `offset`): `invoke`, then `ok` when the broker took the ack, `fail`
    /// when it refused it (`detail` says why: the attempt was received
    /// again since), `info` when the answer never came.
    Ack,
    /// Request-reply: a responder (`process` of `group`) answers the
    /// request `msg_id` (`invoke`); a requester got the reply to its
    /// request (`ok`, the reply's body in `detail`) or none in time
    /// (`fail`), `of` naming the request's send.
    Reply,
}

impl Op {
    /// True for the ops the nemesis performs (drawn on a report's timeline).
    pub fn is_nemesis(self) -> bool {
        matches!(self, Op::Fault | Op::Heal)
    }

    /// The op's name as written in the JSON history ("power-loss").
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Send => "send",
            Op::Deliver => "deliver",
            Op::Effect => "effect",
            Op::Dlq => "dlq",
            Op::Subscribe => "subscribe",
            Op::Crash => "crash",
            Op::Fault => "fault",
            Op::Heal => "heal",
            Op::TailStart => "tail-start",
            Op::End => "end",
            Op::ClientsStopped => "clients-stopped",
            Op::DrainGaveUp => "drain-gave-up",
            Op::Reached => "reached",
            Op::Hostile => "hostile",
            Op::QueueLock => "queue-lock",
            Op::TxEnd => "tx-end",
            Op::TxCheck => "tx-check",
            Op::TxAside => "tx-aside",
            Op::Retire => "retire",
            Op::Role => "role",
            Op::OffsetCommit => "offset-commit",
            Op::OffsetResume => "offset-resume",
            Op::OffsetReset => "offset-reset",
            Op::Ack => "ack",
            Op::Reply => "reply",
        }
    }
}

/// What the consumer's business logic answered for a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsumeOutcome {
    /// Consumed; the broker may advance the offset.
    Success,
    /// Failed; the broker must redeliver later (or dead-letter it).
    RetryLater,
}

/// Why a history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// A line is not a valid event.
    #[error("history line {line}: {source}")]
    Parse {
        /// 1-based line number in the input.
        line: usize,
        /// What serde_json said.
        source: serde_json::Error,
    },
}

/// Parses a JSON-lines history. Blank lines are skipped; the error names the
/// 1-based line number of the first bad line.
pub fn parse_jsonl(text: &str) -> Result<Vec<Event>, HistoryError> {
    let mut events = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(line).map_err(|source| HistoryError::Parse {
            line: index + 1,
            source,
        })?;
        events.push(event);
    }
    Ok(events)
}

/// The canonical JSON line of one event, without the newline.
pub fn to_json_line(event: &Event) -> String {
    // Serializing a plain struct of strings and integers cannot fail.
    serde_json::to_string(event).expect("an Event always serializes")
}

/// Writes a history as JSON lines, each line ended by `\n`.
pub fn to_jsonl(events: &[Event]) -> String {
    let mut out = String::new();
    for event in events {
        out.push_str(&to_json_line(event));
        out.push('\n');
    }
    out
}

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A stable hash of a history: FNV-1a 64 over every event's canonical JSON
/// line followed by `\n` (the bytes of [`to_jsonl`]). Same events, same digest,
/// on every platform and Rust release.
pub fn digest(events: &[Event]) -> u64 {
    let mut fnv = Fnv(FNV_OFFSET_BASIS);
    for event in events {
        // Streamed into the hash: no line is built. Writing to `Fnv` cannot
        // fail and an Event always serializes.
        serde_json::to_writer(&mut fnv, event).expect("an Event always serializes");
        fnv.add(b"\n");
    }
    fnv.0
}

/// FNV-1a 64 as an `io::Write` sink.
struct Fnv(u64);

impl Fnv {
    fn add(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }
}

impl std::io::Write for Fnv {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.add(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// [`digest`] as 16 lowercase hex digits.
pub fn digest_hex(events: &[Event]) -> String {
    let mut out = String::with_capacity(16);
    write!(out, "{:016x}", digest(events)).expect("writing to a String cannot fail");
    out
}

impl Event {
    /// A bare event with id 0 and every optional field `None`; chain the
    /// setters below to fill it, and let a [`HistoryBuilder`] assign the id.
    pub fn new(t_ms: u64, process: impl Into<String>, kind: Kind, op: Op) -> Event {
        Event {
            t_ms,
            t_us: None,
            id: 0,
            process: process.into(),
            kind,
            op,
            of: None,
            msg_id: None,
            topic: None,
            tag: None,
            key: None,
            shard: None,
            seq: None,
            queue: None,
            offset: None,
            group: None,
            reconsume: None,
            result: None,
            fault: None,
            target: None,
            detail: None,
            body: None,
            props: None,
            start_ms: None,
            visible_ms: None,
            tx: None,
            deliver_at_ms: None,
            stored_ms: None,
            clock_ms: None,
            unsynced_bytes: None,
            flip: None,
            from: None,
        }
    }

    /// Its time in µs: `t_us` when recorded, else `t_ms` in µs.
    pub fn time_us(&self) -> u64 {
        self.t_us.unwrap_or(self.t_ms * 1000)
    }

    /// Sets the transaction state.
    pub fn tx(mut self, tx: TxState) -> Event {
        self.tx = Some(tx);
        self
    }

    /// Sets the earliest delivery time.
    pub fn deliver_at_ms(mut self, deliver_at_ms: u64) -> Event {
        self.deliver_at_ms = Some(deliver_at_ms);
        self
    }

    /// Sets the clock move (nemesis clock events).
    pub fn clock_ms(mut self, clock_ms: i64) -> Event {
        self.clock_ms = Some(clock_ms);
        self
    }

    /// Sets the unsynced bytes a power loss dropped.
    pub fn unsynced_bytes(mut self, bytes: u64) -> Event {
        self.unsynced_bytes = Some(bytes);
        self
    }

    /// Sets where a disk fault flipped a bit.
    pub fn flip(mut self, path: impl Into<String>, at: u64) -> Event {
        self.flip = Some(Flip { path: path.into(), at });
        self
    }

    /// Sets the other side of a partition.
    pub fn from(mut self, from: Vec<String>) -> Event {
        self.from = Some(from);
        self
    }

    /// Sets when the broker stored the message (dlq events).
    pub fn stored_ms(mut self, stored_ms: u64) -> Event {
        self.stored_ms = Some(stored_ms);
        self
    }

    /// Sets when processing started (deliver events).
    pub fn start_ms(mut self, start_ms: u64) -> Event {
        self.start_ms = Some(start_ms);
        self
    }

    /// Sets when a POP delivery may be received again at the earliest.
    pub fn visible_ms(mut self, visible_ms: u64) -> Event {
        self.visible_ms = Some(visible_ms);
        self
    }

    /// When processing started: `start_ms`, else `t_ms`.
    pub fn started_ms(&self) -> u64 {
        self.start_ms.unwrap_or(self.t_ms)
    }

    /// Sets the id.
    pub fn id(mut self, id: u64) -> Event {
        self.id = id;
        self
    }
    /// Sets the invoke this event completes.
    pub fn of(mut self, invoke_id: u64) -> Event {
        self.of = Some(invoke_id);
        self
    }
    /// Sets the message id.
    pub fn msg_id(mut self, msg_id: impl Into<String>) -> Event {
        self.msg_id = Some(msg_id.into());
        self
    }
    /// Sets the topic.
    pub fn topic(mut self, topic: impl Into<String>) -> Event {
        self.topic = Some(topic.into());
        self
    }
    /// Sets the tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Event {
        self.tag = Some(tag.into());
        self
    }
    /// Sets the business key.
    pub fn key(mut self, key: impl Into<String>) -> Event {
        self.key = Some(key.into());
        self
    }
    /// Sets the sharding key.
    pub fn shard(mut self, shard: impl Into<String>) -> Event {
        self.shard = Some(shard.into());
        self
    }
    /// Sets the per-shard sequence number.
    pub fn seq(mut self, seq: u64) -> Event {
        self.seq = Some(seq);
        self
    }
    /// Sets the queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Event {
        self.queue = Some(queue.into());
        self
    }
    /// Sets the queue offset.
    pub fn offset(mut self, offset: u64) -> Event {
        self.offset = Some(offset);
        self
    }
    /// Sets the consumer group.
    pub fn group(mut self, group: impl Into<String>) -> Event {
        self.group = Some(group.into());
        self
    }
    /// Sets the reconsume count.
    pub fn reconsume(mut self, reconsume: u32) -> Event {
        self.reconsume = Some(reconsume);
        self
    }
    /// Sets the consume outcome.
    pub fn result(mut self, result: ConsumeOutcome) -> Event {
        self.result = Some(result);
        self
    }
    /// Sets the name of the fault a nemesis event starts or ends.
    pub fn fault(mut self, fault: impl Into<String>) -> Event {
        self.fault = Some(fault.into());
        self
    }
    /// Sets the nemesis target.
    pub fn target(mut self, target: impl Into<String>) -> Event {
        self.target = Some(target.into());
        self
    }
    /// Sets the free-text detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Event {
        self.detail = Some(detail.into());
        self
    }
    /// Sets the body digest.
    pub fn body(mut self, body: impl Into<String>) -> Event {
        self.body = Some(body.into());
        self
    }
    /// Sets the user properties.
    pub fn props(mut self, props: BTreeMap<String, String>) -> Event {
        self.props = Some(props);
        self
    }
}

#[cfg(test)]
mod tests;
