//! [`HistoryBuilder`]: writes a history event by event, for tests and
//! the simulator's recorder.

use super::{ConsumeOutcome, Event, Kind, Op};

/// Records events with increasing ids, starting at 1. Tests use it to write
/// histories by hand; the simulator may use it as its recorder.
#[derive(Debug, Clone, Default)]
pub struct HistoryBuilder {
    events: Vec<Event>,
    next_id: u64,
}

impl HistoryBuilder {
    /// An empty history whose first event gets id 1.
    pub fn new() -> HistoryBuilder {
        HistoryBuilder {
            events: Vec::new(),
            next_id: 1,
        }
    }

    /// Appends `event` with the next id and returns that id.
    pub fn push(&mut self, mut event: Event) -> u64 {
        let id = self.next_id.max(1);
        self.next_id = id + 1;
        event.id = id;
        self.events.push(event);
        id
    }

    /// Appends the completion of invoke `invoke_id`: same process, op and
    /// message fields, `of` set. Panics if the invoke was not recorded here,
    /// which is a bug in the caller.
    pub fn complete(&mut self, t_ms: u64, invoke_id: u64, kind: Kind) -> u64 {
        let invoke = self
            .events
            .iter()
            .find(|e| e.id == invoke_id)
            .unwrap_or_else(|| panic!("no invoke with id {invoke_id}"));
        assert_eq!(
            invoke.kind,
            Kind::Invoke,
            "event {invoke_id} is not an invoke"
        );
        let mut done = Event::new(t_ms, invoke.process.clone(), kind, invoke.op).of(invoke_id);
        done.msg_id = invoke.msg_id.clone();
        done.topic = invoke.topic.clone();
        self.push(done)
    }

    /// Records a send invoke at `t_ms` of the message described by `draft`
    /// (process, msg_id, topic, tag, key, shard, seq; its kind and op are
    /// overwritten) and, when `done` is given, its completion. Returns the
    /// invoke id.
    pub fn send(&mut self, t_ms: u64, mut draft: Event, done: Option<(u64, Kind)>) -> u64 {
        draft.t_ms = t_ms;
        draft.kind = Kind::Invoke;
        draft.op = Op::Send;
        let invoke_id = self.push(draft);
        if let Some((t_done_ms, kind)) = done {
            self.complete(t_done_ms, invoke_id, kind);
        }
        invoke_id
    }

    /// Records a delivery of `msg_id` to `process` of `group`, copying topic,
    /// tag, key, shard, seq, body and props from the message's send invoke
    /// when known. It scans the history for that invoke, so it suits
    /// hand-written histories, not large generated ones.
    pub fn deliver(
        &mut self,
        t_ms: u64,
        process: &str,
        group: &str,
        msg_id: &str,
        result: ConsumeOutcome,
    ) -> u64 {
        let mut event = Event::new(t_ms, process, Kind::Ok, Op::Deliver)
            .group(group)
            .msg_id(msg_id)
            .result(result);
        let send = self.events.iter().find(|e| {
            e.op == Op::Send && e.kind == Kind::Invoke && e.msg_id.as_deref() == Some(msg_id)
        });
        if let Some(send) = send {
            event.topic = send.topic.clone();
            event.tag = send.tag.clone();
            event.key = send.key.clone();
            event.shard = send.shard.clone();
            event.seq = send.seq;
            event.body = send.body.clone();
            event.props = send.props.clone();
        }
        self.push(event)
    }

    /// Records a nemesis action of kind info: `op` is `fault` or `heal`,
    /// `fault` the fault's name.
    pub fn nemesis(&mut self, t_ms: u64, op: Op, fault: &str, target: Option<&str>) -> u64 {
        assert!(op.is_nemesis(), "{} is not a nemesis op", op.as_str());
        let mut event = Event::new(t_ms, "nemesis", Kind::Info, op).fault(fault);
        event.target = target.map(str::to_owned);
        self.push(event)
    }

    /// Records a harness event (`tail-start`, `end`) of kind info.
    pub fn harness(&mut self, t_ms: u64, op: Op) -> u64 {
        self.push(Event::new(t_ms, "harness", Kind::Info, op))
    }

    /// The events recorded so far.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The recorded history.
    pub fn build(self) -> Vec<Event> {
        self.events
    }
}
