//! "Sometimes" marks: which interesting states a run reached. They are not
//! an invariant (nothing is wrong when a mark is missing from one run); a
//! sweep counts them over many seeds to show that the faults it claims to
//! explore were in fact explored.

use crate::history::{Event, Op};
use std::collections::BTreeMap;

/// Counts, per mark name, the `reached` events that name it in `detail`.
/// A `reached` event without a detail names no mark and is skipped, so any
/// history gives an answer.
pub fn reached_marks(history: &[Event]) -> BTreeMap<String, u64> {
    let mut marks: BTreeMap<String, u64> = BTreeMap::new();
    for event in history.iter().filter(|e| e.op == Op::Reached) {
        if let Some(mark) = event.detail.as_deref() {
            match marks.get_mut(mark) {
                Some(count) => *count += 1,
                None => {
                    marks.insert(mark.to_owned(), 1);
                }
            }
        }
    }
    marks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{HistoryBuilder, Kind};

    #[test]
    fn counts_each_mark_by_name() {
        let mut h = HistoryBuilder::new();
        let reached = |process: &str, mark: &str| {
            Event::new(0, process, Kind::Info, Op::Reached).detail(mark)
        };
        h.push(reached("nemesis", "crash-with-unsynced-bytes"));
        h.push(reached("broker-0", "torn-write-cut"));
        h.push(reached("nemesis", "crash-with-unsynced-bytes"));
        // Neither a mark without a name nor another op with a detail counts.
        h.push(Event::new(0, "nemesis", Kind::Info, Op::Reached));
        h.push(Event::new(0, "nemesis", Kind::Info, Op::Fault).fault("kill").detail("torn-write-cut"));
        h.harness(10, Op::End);

        let marks = reached_marks(h.events());
        assert_eq!(
            marks,
            BTreeMap::from([
                ("crash-with-unsynced-bytes".to_owned(), 2),
                ("torn-write-cut".to_owned(), 1),
            ])
        );
        assert!(reached_marks(&[]).is_empty());
    }
}
