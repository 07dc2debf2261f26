//! Transactional and timer messages: their system topics, the properties
//! that mark them, and the checks a timer's delivery time must pass.

use super::Message;
use serde::{Deserialize, Serialize};

/// Half messages wait here, invisible, until committed or rolled back.
pub const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
/// One op record per ended half (commit, rollback, moved aside).
pub const OP_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
/// Halves checked `transactionCheckMax` times without an answer are moved
/// here and reported; an operator can read them.
pub const CHECK_MAX_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
/// Timer messages wait here until their delivery time.
pub const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";

/// Set to `true` on a half message (and kept on its committed copy).
pub const PROPERTY_TRANSACTION: &str = "TRAN_MSG";
/// The producer group of a transactional message: who is asked on check-back.
pub const PROPERTY_PRODUCER_GROUP: &str = "PGROUP";
/// On a committed copy: the queue offset of the half it came from.
pub const PROPERTY_HALF_OFFSET: &str = "TRAN_PREPARED_QUEUE_OFFSET";
/// A timer message's delivery time, ms since the epoch on the broker's clock.
pub const PROPERTY_TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
/// A timer message's delay from its arrival at the broker, in ms.
pub const PROPERTY_TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
/// A timer message's delay from its arrival at the broker, in seconds.
pub const PROPERTY_TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";

/// How far ahead a timer may be set by default: 3 days (`timerMaxDelaySec`).
pub const TIMER_MAX_DELAY_MS_DEFAULT: u64 = 3 * 24 * 3_600 * 1_000;

/// A local transaction's outcome, as the executor or the check listener
/// answers (RocketMQ's `LocalTransactionState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TransactionState {
    /// Deliver the message.
    Commit,
    /// Drop the message.
    Rollback,
    /// Not known yet: the broker asks again later.
    Unknown,
}

impl TransactionState {
    /// The name in histories and logs.
    pub fn name(self) -> &'static str {
        match self {
            TransactionState::Commit => "commit",
            TransactionState::Rollback => "rollback",
            TransactionState::Unknown => "unknown",
        }
    }
}

impl Message {
    /// Marks the message as transactional.
    pub fn is_transactional(&self) -> bool {
        self.properties.get(PROPERTY_TRANSACTION).is_some_and(|v| v == "true")
    }

    /// Asks for delivery at `deliver_at_ms` on the broker's clock.
    pub fn with_deliver_at(self, deliver_at_ms: u64) -> Message {
        self.with_property(PROPERTY_TIMER_DELIVER_MS, deliver_at_ms.to_string())
    }

    /// Asks for delivery `delay_ms` after the broker stores it.
    pub fn with_timer_delay_ms(self, delay_ms: u64) -> Message {
        self.with_property(PROPERTY_TIMER_DELAY_MS, delay_ms.to_string())
    }

    /// Whether the message asks for a timer.
    pub fn has_timer(&self) -> bool {
        [PROPERTY_TIMER_DELIVER_MS, PROPERTY_TIMER_DELAY_MS, PROPERTY_TIMER_DELAY_SEC].iter().any(|p| self.properties.contains_key(*p))
    }

    /// The delivery time a timer message asks for, on a broker whose clock
    /// reads `now_ms` and which takes timers at most `max_delay_ms` ahead:
    /// `None` for a message without a timer, an error naming the problem
    /// for one that is malformed, overflows, or lies too far ahead (Apache
    /// RocketMQ #10872 delivered those at once). A time already past is due
    /// at once.
    pub fn timer_deliver_at(&self, now_ms: u64, max_delay_ms: u64) -> Result<Option<u64>, String> {
        let number = |name: &str| -> Result<Option<u64>, String> {
            match self.properties.get(name) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| format!("{name} is {v:?}, not a whole number of {}", if name.ends_with("SEC") { "seconds" } else { "ms" })),
            }
        };
        let asked = [number(PROPERTY_TIMER_DELIVER_MS)?, number(PROPERTY_TIMER_DELAY_MS)?, number(PROPERTY_TIMER_DELAY_SEC)?];
        if asked.iter().flatten().count() > 1 {
            return Err(format!(
                "a message may name one of {PROPERTY_TIMER_DELIVER_MS}, {PROPERTY_TIMER_DELAY_MS} and {PROPERTY_TIMER_DELAY_SEC}, not several"
            ));
        }
        let overflow = || "the timer's delay overflows: the delivery time is past what a 64-bit ms clock holds".to_string();
        let deliver_at = match asked {
            [Some(at), _, _] => at,
            [_, Some(ms), _] => now_ms.checked_add(ms).ok_or_else(overflow)?,
            [_, _, Some(sec)] => sec.checked_mul(1_000).and_then(|ms| now_ms.checked_add(ms)).ok_or_else(overflow)?,
            [None, None, None] => return Ok(None),
        };
        if self.delay_level > 0 {
            return Err("a message may have a delay level or a timer, not both".to_string());
        }
        let ahead = deliver_at.saturating_sub(now_ms);
        if ahead > max_delay_ms {
            return Err(format!(
                "the timer is {} s ahead, more than the {} s allowed (timerMaxDelaySec)",
                ahead / 1_000,
                max_delay_ms / 1_000
            ));
        }
        Ok(Some(deliver_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_delivery_times_are_checked() {
        let now = 1_000_000;
        let max = TIMER_MAX_DELAY_MS_DEFAULT;
        let msg = |name: &str, v: &str| Message::new("t", "b").with_property(name, v);
        assert_eq!(Message::new("t", "b").timer_deliver_at(now, max), Ok(None));
        assert_eq!(msg(PROPERTY_TIMER_DELIVER_MS, "1005000").timer_deliver_at(now, max), Ok(Some(1_005_000)));
        assert_eq!(msg(PROPERTY_TIMER_DELAY_MS, "2500").timer_deliver_at(now, max), Ok(Some(1_002_500)));
        assert_eq!(msg(PROPERTY_TIMER_DELAY_SEC, "3").timer_deliver_at(now, max), Ok(Some(1_003_000)));
        assert_eq!(msg(PROPERTY_TIMER_DELIVER_MS, "5").timer_deliver_at(now, max), Ok(Some(5)), "a past time is due at once");
        assert_eq!(msg(PROPERTY_TIMER_DELIVER_MS, &(now + max).to_string()).timer_deliver_at(now, max), Ok(Some(now + max)));
        let too_far = msg(PROPERTY_TIMER_DELIVER_MS, &(now + max + 1_000).to_string()).timer_deliver_at(now, max).unwrap_err();
        assert!(too_far.contains("more than the 259200 s allowed"), "{too_far}");
        let overflow = msg(PROPERTY_TIMER_DELAY_SEC, &u64::MAX.to_string()).timer_deliver_at(now, max).unwrap_err();
        assert!(overflow.contains("overflows"), "{overflow}");
        let overflow = msg(PROPERTY_TIMER_DELAY_MS, &(u64::MAX - 10).to_string()).timer_deliver_at(now, max).unwrap_err();
        assert!(overflow.contains("overflows"), "{overflow}");
        assert!(msg(PROPERTY_TIMER_DELAY_MS, "-5").timer_deliver_at(now, max).unwrap_err().contains("whole number"));
        let both = msg(PROPERTY_TIMER_DELAY_MS, "5").with_property(PROPERTY_TIMER_DELAY_SEC, "5").timer_deliver_at(now, max);
        assert!(both.unwrap_err().contains("not several"));
        let level = msg(PROPERTY_TIMER_DELAY_MS, "5").with_delay_level(2).timer_deliver_at(now, max);
        assert!(level.unwrap_err().contains("not both"));
    }
}
