//! The history recorder: every client and nemesis observation, stamped with
//! simulated time since the run's start and a sequential id.

use checker::history::{Event, Kind, Op};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

#[derive(Debug)]
struct Inner {
    events: Vec<Event>,
    /// Set by [`Recorder::start`] inside the simulation.
    start: Option<Instant>,
    trace: bool,
}

/// Shared by every simulated process of one run.
#[derive(Clone, Debug)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
}

impl Recorder {
    /// A recorder whose clock starts with [`Recorder::start`]; `trace`
    /// prints each event as it is recorded.
    pub fn new_unstarted(trace: bool) -> Recorder {
        Recorder { inner: Arc::new(Mutex::new(Inner { events: Vec::new(), start: None, trace })) }
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
        self.inner.lock().expect("recorder").start.map(|s| s.elapsed().as_millis() as u64).unwrap_or(0)
    }

    /// Records an event (its time and id are set here) and returns its id.
    pub fn record(&self, mut event: Event) -> u64 {
        let mut inner = self.inner.lock().expect("recorder");
        event.t_ms = inner.start.map(|s| s.elapsed().as_millis() as u64).unwrap_or(0);
        event.id = inner.events.len() as u64 + 1;
        if inner.trace {
            eprintln!("{}", checker::history::to_json_line(&event));
        }
        let id = event.id;
        inner.events.push(event);
        id
    }

    /// A nemesis or harness event.
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

    /// Everything recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.inner.lock().expect("recorder").events.clone()
    }
}
