//! Delay levels and the system topics of retry, dead letter and delay.
//!
//! RocketMQ 4.x delays a message by one of a table of levels
//! (`messageDelayLevel`, 18 by default). A delayed message waits in the
//! schedule topic, in the queue of its level, until its delay has passed on
//! the broker's clock; a retry of a failed consumption is a delayed message
//! whose level grows with the times it was consumed again.

use super::topic::{validate_name, NAME_LEN_MAX};

/// RocketMQ's default `messageDelayLevel`.
pub const DELAY_LEVELS_DEFAULT: &str = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";

/// Most levels a table may have.
pub const DELAY_LEVELS_MAX: usize = 64;

/// Longest delay a level may have: a year.
pub const DELAY_MS_MAX: u64 = 365 * 24 * 3_600_000;

/// Where delayed messages wait: queue `level - 1` holds level `level`.
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";

/// The POP log: what POP consumers received and acknowledged, one record
/// per change, from which a broker rebuilds its POP state (RocketMQ's
/// revive topic, `rmq_sys_REVIVE_LOG_<cluster>`).
pub const POP_TOPIC: &str = "rmq_sys_POP_LOG";

/// Prefix of a group's retry topic.
pub const RETRY_PREFIX: &str = "%RETRY%";

/// Prefix of a group's dead-letter topic.
pub const DLQ_PREFIX: &str = "%DLQ%";

/// Times a message is consumed again before it is dead-lettered (16).
pub const MAX_RECONSUME_TIMES_DEFAULT: u32 = 16;

/// The retry topic of `group`.
pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_PREFIX}{group}")
}

/// The dead-letter topic of `group`.
pub fn dlq_topic(group: &str) -> String {
    format!("{DLQ_PREFIX}{group}")
}

/// Topics the broker makes and producers may not send to: the schedule
/// topic, every retry and dead-letter topic, and the transaction and timer
/// topics.
pub fn is_system_topic(topic: &str) -> bool {
    topic == SCHEDULE_TOPIC
        || topic.starts_with(RETRY_PREFIX)
        || topic.starts_with(DLQ_PREFIX)
        || [super::HALF_TOPIC, super::OP_TOPIC, super::CHECK_MAX_TOPIC, super::TIMER_TOPIC, POP_TOPIC].contains(&topic)
}

/// The topics the broker runs on itself (schedule, transactions, timers,
/// POP revive): system topics that are never in its topic table, unlike a
/// group's retry and dead-letter topics.
pub fn is_broker_own_topic(topic: &str) -> bool {
    is_system_topic(topic) && !topic.starts_with(RETRY_PREFIX) && !topic.starts_with(DLQ_PREFIX)
}

/// Checks a consumer group name, and that its retry and dead-letter topic
/// names are valid topic names too (so the group may be at most 120 bytes).
pub fn validate_group(group: &str) -> Result<(), String> {
    validate_name("consumer group", group)?;
    if group.starts_with('%') {
        return Err(format!("consumer group {group:?} starts with `%`, which marks system topics"));
    }
    if retry_topic(group).len() > NAME_LEN_MAX {
        return Err(format!(
            "consumer group name is {} bytes; its retry topic {RETRY_PREFIX}<group> must fit the {NAME_LEN_MAX} a topic name may have",
            group.len()
        ));
    }
    Ok(())
}

/// A delay level table: level `n` (1-based) waits `levels[n - 1]` ms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelayLevels(Vec<u64>);

impl Default for DelayLevels {
    fn default() -> DelayLevels {
        DelayLevels::parse(DELAY_LEVELS_DEFAULT).expect("the default table parses")
    }
}

impl DelayLevels {
    /// Parses a table as `messageDelayLevel` writes it: delays separated by
    /// spaces, each a positive number with a unit `ms`, `s`, `m`, `h` or
    /// `d` (`ms` is ours, for short simulated runs). Levels must not get
    /// shorter, so a retry never waits less than the one before it.
    pub fn parse(text: &str) -> Result<DelayLevels, String> {
        let mut levels = Vec::new();
        for word in text.split_whitespace() {
            let (number, unit_ms) = if let Some(n) = word.strip_suffix("ms") {
                (n, 1)
            } else if let Some(n) = word.strip_suffix('s') {
                (n, 1_000)
            } else if let Some(n) = word.strip_suffix('m') {
                (n, 60_000)
            } else if let Some(n) = word.strip_suffix('h') {
                (n, 3_600_000)
            } else if let Some(n) = word.strip_suffix('d') {
                (n, 86_400_000)
            } else {
                return Err(format!("delay {word:?} has no unit (ms, s, m, h or d)"));
            };
            let n: u64 = number.parse().map_err(|_| format!("delay {word:?} is not a positive whole number with a unit"))?;
            let ms = n.checked_mul(unit_ms).filter(|&ms| (1..=DELAY_MS_MAX).contains(&ms));
            let ms = ms.ok_or_else(|| format!("delay {word:?} must be positive and at most a year"))?;
            if levels.last().is_some_and(|&last| ms < last) {
                return Err(format!("delay {word:?} is shorter than the level before it"));
            }
            levels.push(ms);
        }
        if levels.is_empty() {
            return Err("no delay levels".to_string());
        }
        if levels.len() > DELAY_LEVELS_MAX {
            return Err(format!("{} delay levels, more than the {DELAY_LEVELS_MAX} allowed", levels.len()));
        }
        Ok(DelayLevels(levels))
    }

    /// A table of the given delays in ms (tests and the simulation).
    pub fn from_ms(levels: Vec<u64>) -> Result<DelayLevels, String> {
        let text: Vec<String> = levels.iter().map(|ms| format!("{ms}ms")).collect();
        DelayLevels::parse(&text.join(" "))
    }

    /// The highest level.
    pub fn max_level(&self) -> u32 {
        self.0.len() as u32
    }

    /// The delay of `level` (1-based); a level past the table is the last
    /// (RocketMQ clamps it too), 0 has none.
    pub fn delay_ms(&self, level: u32) -> u64 {
        match level {
            0 => 0,
            n => self.0[(n.min(self.max_level()) - 1) as usize],
        }
    }

    /// `level` brought inside the table.
    pub fn clamp(&self, level: u32) -> u32 {
        level.min(self.max_level())
    }

    /// The delays in ms, level 1 first.
    pub fn delays_ms(&self) -> &[u64] {
        &self.0
    }

    /// The table as `messageDelayLevel` writes it.
    pub fn render(&self) -> String {
        let word = |ms: u64| match ms {
            ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
            ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
            ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
            ms => format!("{ms}ms"),
        };
        self.0.iter().map(|&ms| word(ms)).collect::<Vec<_>>().join(" ")
    }
}

/// The delay level of the retry after a message was consumed
/// `reconsume_times` times again already: RocketMQ's `3 + reconsume_times`,
/// so the first retry waits at level 3 (10 s by default).
pub fn retry_level(reconsume_times: u32) -> u32 {
    reconsume_times.saturating_add(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_table_is_rocketmqs() {
        let levels = DelayLevels::default();
        assert_eq!(levels.max_level(), 18);
        assert_eq!((levels.delay_ms(1), levels.delay_ms(3), levels.delay_ms(18)), (1_000, 10_000, 7_200_000));
        assert_eq!(levels.delay_ms(0), 0);
        assert_eq!(levels.delay_ms(99), 7_200_000);
        assert_eq!(levels.render(), DELAY_LEVELS_DEFAULT);
        assert_eq!(retry_level(0), 3);
    }

    #[test]
    fn bad_tables_are_refused_with_the_word_at_fault() {
        for (text, want) in [
            ("", "no delay levels"),
            ("1s 5", "\"5\" has no unit"),
            ("1s xs", "\"xs\" is not"),
            ("0s", "must be positive"),
            ("99999999999999d", "must be positive"),
            ("5s 1s", "shorter than the level before"),
        ] {
            let err = DelayLevels::parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        assert!(DelayLevels::parse(&"1s ".repeat(65)).unwrap_err().contains("more than the 64"));
        assert_eq!(DelayLevels::parse("500ms 1s 2m").unwrap().delays_ms(), &[500, 1_000, 120_000]);
    }

    #[test]
    fn system_topics_and_group_names() {
        assert!(is_system_topic(SCHEDULE_TOPIC) && is_system_topic("%RETRY%g") && is_system_topic("%DLQ%g"));
        assert!(!is_system_topic("orders"));
        assert!(is_broker_own_topic(SCHEDULE_TOPIC) && is_broker_own_topic(crate::model::HALF_TOPIC));
        assert!(!is_broker_own_topic("%RETRY%g") && !is_broker_own_topic("%DLQ%g") && !is_broker_own_topic("orders"));
        assert!(validate_group("billing").is_ok());
        assert!(validate_group(&"g".repeat(120)).is_ok());
        assert!(validate_group(&"g".repeat(121)).unwrap_err().contains("retry topic"));
        assert!(validate_group("%RETRY%billing").is_err());
    }
}
