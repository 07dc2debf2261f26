//! The nemesis's faults as spans of time, each from its `fault` event to the
//! first `heal` of the same fault and target after it, for the checks that
//! judge a promise only where no fault could excuse breaking it.

use crate::history::{Event, Op};

/// One fault from its start to its heal (or, never healed, the end).
pub(crate) struct FaultSpan<'a> {
    /// The `fault` event.
    pub fault: &'a Event,
    /// When it started.
    pub from_ms: u64,
    /// When it healed; `u64::MAX` when it never did.
    pub to_ms: u64,
}

impl FaultSpan<'_> {
    /// The fault's name (`kill`, `partition`, ...).
    pub fn name(&self) -> &str {
        self.fault.fault.as_deref().unwrap_or("")
    }

    /// The processes it targets.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.fault.target.as_deref().unwrap_or("").split(',').map(str::trim).filter(|t| !t.is_empty())
    }

    /// True when it was under way at some time in `[from_ms, to_ms]`.
    pub fn overlaps(&self, from_ms: u64, to_ms: u64) -> bool {
        self.from_ms <= to_ms && self.to_ms >= from_ms
    }
}

/// Every fault of `history`, in history order.
pub(crate) fn fault_spans(history: &[Event]) -> Vec<FaultSpan<'_>> {
    let mut out = Vec::new();
    for (i, fault) in history.iter().enumerate().filter(|(_, e)| e.op == Op::Fault) {
        let heal = history[i + 1..]
            .iter()
            .find(|h| h.op == Op::Heal && h.fault == fault.fault && h.target == fault.target)
            .map_or(u64::MAX, |h| h.t_ms);
        out.push(FaultSpan { fault, from_ms: fault.t_ms, to_ms: heal });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{HistoryBuilder, Kind};

    #[test]
    fn a_fault_lasts_until_its_own_heal() {
        let mut h = HistoryBuilder::new();
        h.nemesis(10, Op::Fault, "kill", Some("broker-0"));
        h.nemesis(12, Op::Fault, "kill", Some("broker-1"));
        h.nemesis(15, Op::Heal, "kill", Some("broker-1"));
        h.nemesis(20, Op::Heal, "kill", Some("broker-0"));
        h.nemesis(30, Op::Fault, "partition", Some("broker-0,broker-1"));
        h.push(Event::new(40, "harness", Kind::Info, Op::End));
        let spans = fault_spans(h.events());
        let got: Vec<(u64, u64)> = spans.iter().map(|s| (s.from_ms, s.to_ms)).collect();
        assert_eq!(got, [(10, 20), (12, 15), (30, u64::MAX)]);
        assert_eq!(spans[2].targets().collect::<Vec<_>>(), ["broker-0", "broker-1"]);
        assert!(spans[1].overlaps(15, 16) && !spans[1].overlaps(16, 17));
    }
}
