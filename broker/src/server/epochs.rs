//! A broker's epoch file (RocketMQ's `EpochFileCache`): for every master
//! term its log has entries of, the term and the commit log offset where
//! that term's writes start. Two replicas compare theirs to find where
//! their logs stop agreeing: up to the end of the last term both have with
//! the same start, their logs are the same bytes (a term has one master,
//! and a replica copies its master's log byte for byte). A replica cuts its
//! log there before it follows a new master.

use serde::{Deserialize, Serialize};

/// Where the epoch file lives.
pub(super) const EPOCHS_PATH: &str = "config/epochs.json";

/// One term: its number and the offset its first write has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epoch {
    /// The term.
    pub epoch: u64,
    /// Where its writes start in the commit log.
    pub start: u64,
}

/// The terms of a log, oldest first: epochs and starts both ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epochs {
    /// The terms.
    pub entries: Vec<Epoch>,
}

impl Epochs {
    /// Reads the persisted file.
    pub fn from_json(bytes: &[u8]) -> Result<Epochs, String> {
        let epochs: Epochs = serde_json::from_slice(bytes).map_err(|e| format!("{EPOCHS_PATH}: {e}"))?;
        let ordered = epochs.entries.windows(2).all(|w| w[0].epoch < w[1].epoch && w[0].start <= w[1].start);
        if !ordered {
            return Err(format!("{EPOCHS_PATH}: terms out of order: {:?}", epochs.entries));
        }
        Ok(epochs)
    }

    /// The bytes to persist.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("epochs encode")
    }

    /// The latest term, if any.
    pub fn last(&self) -> Option<Epoch> {
        self.entries.last().copied()
    }

    /// The latest term's number (0: none).
    pub fn last_term(&self) -> u64 {
        self.last().map_or(0, |e| e.epoch)
    }

    /// Starts term `epoch` at `start` (the log's end when a master takes
    /// over). A term already recorded, or older than the last, changes
    /// nothing and returns false.
    pub fn begin(&mut self, epoch: u64, start: u64) -> bool {
        if self.last().is_some_and(|last| last.epoch >= epoch) {
            return false;
        }
        // A term that wrote nothing leaves no bytes to tell apart: the new
        // one replaces it.
        while self.last().is_some_and(|last| last.start >= start) {
            self.entries.pop();
        }
        self.entries.push(Epoch { epoch, start });
        true
    }

    /// Where term `epoch` ends in a log ending at `log_end`: the start of
    /// the next term, or the log's end for the last.
    fn end_of(&self, index: usize, log_end: u64) -> u64 {
        self.entries.get(index + 1).map_or(log_end, |next| next.start).min(log_end)
    }

    /// The offset up to which this log (ending at `my_end`) and a master's
    /// (`theirs`, ending at `their_end`) hold the same bytes: the end of
    /// the last term both have, with the same start, on the shorter side.
    /// 0 when they share no term.
    pub fn consistent_point(&self, my_end: u64, theirs: &Epochs, their_end: u64) -> u64 {
        for (i, mine) in self.entries.iter().enumerate().rev() {
            if let Some(j) = theirs.entries.iter().position(|t| t == mine) {
                return self.end_of(i, my_end).min(theirs.end_of(j, their_end));
            }
        }
        0
    }

    /// Forgets terms that start at or past `offset` (the log was cut
    /// there).
    pub fn cut(&mut self, offset: u64) {
        self.entries.retain(|e| e.start < offset);
    }

    /// Takes the master's terms for the part of the log this replica holds
    /// (up to `my_end`); its own terms agree with them there once its log
    /// was cut to the consistent point.
    pub fn copy_from(&mut self, master: &Epochs, my_end: u64) {
        self.entries = master.entries.iter().copied().filter(|e| e.start < my_end || e.start == 0).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epochs(list: &[(u64, u64)]) -> Epochs {
        Epochs { entries: list.iter().map(|&(epoch, start)| Epoch { epoch, start }).collect() }
    }

    #[test]
    fn terms_begin_in_order_and_an_empty_term_is_replaced() {
        let mut e = Epochs::default();
        assert!(e.begin(1, 0));
        assert!(!e.begin(1, 50), "a term recorded once");
        assert!(e.begin(2, 100));
        assert!(e.begin(3, 100), "term 2 wrote nothing");
        assert_eq!(e, epochs(&[(1, 0), (3, 100)]));
        assert!(!e.begin(2, 300));
        let back = Epochs::from_json(&e.to_json()).unwrap();
        assert_eq!(back, e);
        assert!(Epochs::from_json(br#"{"entries":[{"epoch":2,"start":0},{"epoch":1,"start":5}]}"#).unwrap_err().contains("out of order"));
    }

    #[test]
    fn the_consistent_point_is_the_end_of_the_last_shared_term() {
        // The old master wrote term 1 up to 500; the new master copied it up
        // to 300 and took over at 300 in term 2.
        let old = epochs(&[(1, 0)]);
        let new = epochs(&[(1, 0), (2, 300)]);
        assert_eq!(old.consistent_point(500, &new, 800), 300, "the old master's divergent tail goes");
        // A slave behind in term 1 keeps all it has.
        assert_eq!(old.consistent_point(200, &new, 800), 200);
        // Same terms: the shorter end.
        assert_eq!(new.consistent_point(900, &new, 800), 800);
        // Nothing shared.
        assert_eq!(epochs(&[(4, 0)]).consistent_point(100, &new, 800), 0);
        assert_eq!(Epochs::default().consistent_point(0, &new, 800), 0);
        // A term started at another offset on each side is not shared.
        assert_eq!(epochs(&[(1, 0), (2, 350)]).consistent_point(600, &new, 800), 300);
    }

    #[test]
    fn cutting_and_copying_keep_terms_of_the_bytes_held() {
        let mut e = epochs(&[(1, 0), (2, 300), (3, 700)]);
        e.cut(300);
        assert_eq!(e, epochs(&[(1, 0)]));
        e.copy_from(&epochs(&[(1, 0), (2, 300), (5, 900)]), 500);
        assert_eq!(e, epochs(&[(1, 0), (2, 300)]));
    }
}
