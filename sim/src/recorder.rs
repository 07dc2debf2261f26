//! The history recorder: every client and nemesis observation, stamped with
//! simulated time since the run's start and a sequential id.

use checker::history::{ConsumeOutcome, Event, Kind, Op};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// Marks the harness itself reaches (the broker's are in `broker::marks`).
pub mod harness_marks {
    /// A broker crashed or lost power with written but unsynced bytes.
    pub const CRASH_WITH_UNSYNCED_BYTES: &str = "crash-with-unsynced-bytes";
    /// A send was acknowledged while some partition was in force.
    pub const ACK_DURING_PARTITION: &str = "ack-during-partition";
    /// A group successfully consumed a message it had consumed before.
    pub const DUPLICATE_DELIVERED: &str = "duplicate-delivered";
    /// A producer resent an operation by business key after a failed or
    /// unknown send.
    pub const RESEND_BY_KEY: &str = "resend-by-key";
    /// A consumer crashed after its effect committed and before it
    /// acknowledged the message.
    pub const CRASH_BETWEEN_EFFECT_AND_ACK: &str = "crash-between-effect-and-ack";
    /// An operator sent a group's dead letters back to their topics.
    pub const DLQ_RESENT: &str = "dlq-resent";
    /// A FIFO simple consumer held a message longer before processing it,
    /// its invisible time being about to run out.
    pub const INVISIBLE_TIME_CHANGED: &str = "invisible-time-changed";
    /// Every harness mark.
    pub const ALL: [&str; 7] = [
        CRASH_WITH_UNSYNCED_BYTES,
        ACK_DURING_PARTITION,
        DUPLICATE_DELIVERED,
        RESEND_BY_KEY,
        CRASH_BETWEEN_EFFECT_AND_ACK,
        DLQ_RESENT,
        INVISIBLE_TIME_CHANGED,
    ];
}

/// Every mark a scenario may require: the broker's and the harness's.
pub fn known_marks() -> Vec<&'static str> {
    broker::marks::Mark::ALL.iter().map(|m| m.name()).chain(harness_marks::ALL).collect()
}

#[derive(Debug)]
struct Inner {
    events: Vec<Event>,
    /// Set by [`Recorder::start`] inside the simulation.
    start: Option<Instant>,
    trace: bool,
    /// Marks already recorded: each is recorded the first time only.
    reached: BTreeSet<String>,
    /// Partitions in force now.
    partitions: u32,
    /// (group, msg_id) consumed successfully so far.
    consumed: BTreeSet<(String, String)>,
}

/// Events the recorder has room for before its vector grows. The room is
/// only address space until events fill it (the kernel maps pages as they
/// are first written), and it spares the copies and fresh pages of each
/// doubling: a seed of failover-master-power-loss records 80,000 events of
/// 552 bytes.
const RESERVED_EVENTS: usize = 1 << 20;

/// Shared by every simulated process of one run.
#[derive(Clone, Debug)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
}

impl Inner {
    fn push(&mut self, mut event: Event) -> u64 {
        let elapsed = self.start.map(|s| s.elapsed()).unwrap_or_default();
        event.t_ms = elapsed.as_millis() as u64;
        // Microseconds only when the clock steps finer than a millisecond:
        // other histories stay as they were.
        if crate::cost::clock_step() < std::time::Duration::from_millis(1) {
            event.t_us = Some(elapsed.as_micros() as u64);
        }
        event.id = self.events.len() as u64 + 1;
        if self.trace {
            eprintln!("{}", checker::history::to_json_line(&event));
        }
        let id = event.id;
        self.events.push(event);
        id
    }

    fn reach(&mut self, mark: &str, process: &str) {
        if self.reached.insert(mark.to_string()) {
            self.push(Event::new(0, process, Kind::Info, Op::Reached).detail(mark));
        }
    }
}

impl Recorder {
    /// A recorder whose clock starts with [`Recorder::start`]; `trace`
    /// prints each event as it is recorded.
    pub fn new_unstarted(trace: bool) -> Recorder {
        Recorder {
            inner: Arc::new(Mutex::new(Inner {
                events: Vec::with_capacity(RESERVED_EVENTS),
                start: None,
                trace,
                reached: BTreeSet::new(),
                partitions: 0,
                consumed: BTreeSet::new(),
            })),
        }
    }

    /// Starts the run's clock at the current (simulated) time.
    pub fn start(&self) {
        self.inner.lock().expect("recorder").start = Some(Instant::now());
    }

    /// The instant `ms` after the run started.
    pub fn at(&self, ms: u64) -> Instant {
        let start = self.inner.lock().expect("recorder").start.expect("recorder started");
        start + std::time::Duration::from_millis(ms)
    }

    /// Milliseconds of simulated time since the run started.
    pub fn now_ms(&self) -> u64 {
        self.now_us() / 1000
    }

    /// Microseconds of simulated time since the run started.
    pub fn now_us(&self) -> u64 {
        self.inner.lock().expect("recorder").start.map(|s| s.elapsed().as_micros() as u64).unwrap_or(0)
    }

    /// A wall time in ms since the Unix epoch (as a broker stamps a message)
    /// as run time: less the wall time of the run's start, read now on this
    /// node's clock, which no fault moves.
    pub fn run_ms_of_wall(&self, wall_ms: u64) -> u64 {
        let start_wall_ms = broker::clock::Clock::new().now_ms().saturating_sub(self.now_ms());
        wall_ms.saturating_sub(start_wall_ms)
    }

    /// Records an event (its time and id are set here) and returns its id.
    /// Marks that the event itself shows (a duplicate delivery, an
    /// acknowledgement during a partition) are recorded right after it.
    pub fn record(&self, event: Event) -> u64 {
        let mut inner = self.inner.lock().expect("recorder");
        let mark = match (event.op, event.kind) {
            (Op::Send, Kind::Ok) if inner.partitions > 0 => Some(harness_marks::ACK_DURING_PARTITION),
            (Op::Deliver, Kind::Ok) if event.result == Some(ConsumeOutcome::Success) => {
                let consumed = (event.group.clone().unwrap_or_default(), event.msg_id.clone().unwrap_or_default());
                (!inner.consumed.insert(consumed)).then_some(harness_marks::DUPLICATE_DELIVERED)
            }
            _ => None,
        };
        let process = event.process.clone();
        let id = inner.push(event);
        if let Some(mark) = mark {
            inner.reach(mark, &process);
        }
        id
    }

    /// Records the first time `mark` is reached, by `process`.
    pub fn reach(&self, mark: &str, process: &str) {
        self.inner.lock().expect("recorder").reach(mark, process);
    }

    /// A partition starts (`true`) or ends (`false`).
    pub fn partition(&self, starts: bool) {
        let mut inner = self.inner.lock().expect("recorder");
        inner.partitions = if starts { inner.partitions + 1 } else { inner.partitions.saturating_sub(1) };
    }

    /// A nemesis event: `op` is `fault` or `heal`, `fault` the fault's name,
    /// `target` the nodes it hits, comma-separated.
    pub fn nemesis(&self, op: Op, fault: &str, target: &str, detail: Option<String>) -> u64 {
        self.nemesis_with(op, fault, target, |event| match detail {
            Some(d) => event.detail(d),
            None => event,
        })
    }

    /// A nemesis event whose typed fields (a clock move, unsynced bytes, a
    /// partition's other side) `fill` sets.
    pub fn nemesis_with(&self, op: Op, fault: &str, target: &str, fill: impl FnOnce(Event) -> Event) -> u64 {
        self.record(fill(Event::new(0, "nemesis", Kind::Info, op).fault(fault).target(target)))
    }

    /// A harness event.
    pub fn note(&self, process: &str, op: Op, target: Option<&str>, detail: Option<String>) -> u64 {
        let mut event = Event::new(0, process, Kind::Info, op);
        if let Some(t) = target {
            event = event.target(t);
        }
        if let Some(d) = detail {
            event = event.detail(d);
        }
        self.record(event)
    }

    /// Everything recorded, taken out: for the end of a run, when nothing
    /// records any more (a history is tens of megabytes of strings).
    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut self.inner.lock().expect("recorder").events)
    }
}
