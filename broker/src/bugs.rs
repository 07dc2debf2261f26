//! Planted bugs: deliberate defects the testbed must catch, each a named
//! switch read at exactly one site. They exist only with the cargo feature
//! `planted-bugs`; without it [`active`] is always false and compiles away.
//!
//! Switches are per OS thread: the simulator runs one seed per thread, so
//! parallel seeds with different bugs do not interfere.

/// The catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bug {
    /// SYNC_FLUSH broker answers SEND_OK before the fsync, which comes with
    /// the next periodic flush (SYNC silently behaving as ASYNC).
    AckBeforeFsync,
    /// Consumer commits the next pull offset, ahead of messages still being processed.
    CommitOffsetAhead,
    /// Consumer taking over a queue starts at its end, dropping what the
    /// previous owner had not consumed.
    DropRebalancedQueue,
    /// Recovery cuts one entry too many off the commit log.
    RecoveryTruncatesExtra,
    /// Consumer treats a retry-later result as consumed and moves its
    /// offset past the message, which is then never consumed.
    RetryLaterAcked,
    /// Pull ignores the tag filter's hash and the client skips its re-check,
    /// so filtered groups are skipped past unmatched offsets: one matching
    /// message per pull is dropped.
    FilterSkipsMatch,
    /// The tag-expression parser reads `TagA || TagB` as `*`, so a
    /// filtered group (on the broker and in the client's re-check alike)
    /// receives every tag.
    TagFilterLeak,
    /// A pull hands out some messages (every fifth queue offset) without
    /// their user properties.
    PullDropsProperties,
    /// A held pull misses the arrival that should wake it and waits out its
    /// whole hold.
    LongPollMiss,
    /// A broker that restarted after a crash (a fault healed) answers every
    /// send "system busy" from then on: nothing it acknowledged is lost,
    /// it just never acknowledges again.
    ProgressStall,
    /// The store takes a message whose properties (tag and keys included)
    /// are past their limit.
    LimitsUnchecked,
    /// A message sent back past its max reconsume times is dropped instead
    /// of being stored in the group's dead-letter queue.
    DlqSkipped,
    /// A retry is stored straight into the retry topic, without waiting
    /// for its delay level.
    RetryNoBackoff,
    /// The retry copy of a message loses its business key.
    RetryDropsKey,
    /// An orderly consumer sends a failed message to the retry topic and
    /// moves on to the next one, instead of retrying it in place.
    OrderlyRetryRequeued,
    /// The broker grants a queue lock that another live consumer holds.
    LockNotExclusive,
    /// A delayed message stored before the broker's clock stepped back is
    /// delivered at once (RocketMQ's `correctDeliverTimestamp`), early by up
    /// to its whole delay.
    DelayStepBackEarly,
    /// A rolled-back half message is written to its real topic, as a
    /// commit would, and reaches consumers.
    RollbackDelivered,
    /// A check-back round stops at the first check that fails (Apache
    /// RocketMQ #9500): the half messages after it go unchecked that round.
    CheckRoundAborts,
    /// Timer messages fire one second before their delivery time.
    TimerEarly,
    /// Pending timers are not recovered when the broker opens its store:
    /// those stored before a restart are never delivered.
    TimersLostOnRestart,
    /// A commit that arrives after the half was already ended (by a
    /// check-back's commit) writes a second copy of the message.
    CommitTwice,
    /// A SYNC_MASTER acknowledges a send without waiting for its slaves
    /// (SYNC replication silently behaving as ASYNC).
    AckBeforeSlaveAck,
    /// The controller elects a replica outside the sync-state set, one that
    /// may lack acknowledged writes.
    ElectOutOfSync,
    /// A master that cannot reach the controller drops slaves from its
    /// sync-state set on its own, and goes on acknowledging alone after it
    /// was deposed (Apache RocketMQ #7017: two masters, the old one's
    /// writes lost).
    NoFencing,
    /// A replica that follows a new master keeps the tail its log has past
    /// the point where the two agree, and copies on from its own end.
    SkipTruncation,
    /// A slave reports as durable the log it has appended but not flushed
    /// (Apache RocketMQ #1155), and leaves the flush to its periodic
    /// flusher.
    SlaveOffsetLies,
    /// A master that restarts, still named master of its term by the
    /// controller, resumes that term at the end of its recovered log,
    /// though a power loss may have taken a tail its slaves hold.
    ResumeAfterRestart,
    /// The retry copy of a failed message keeps the original's reconsume
    /// count instead of raising it, so the message is retried at the first
    /// level for ever and never reaches the dead-letter queue.
    RetryKeepsReconsume,
    /// The broker drops a commit that a producer answered to a check-back,
    /// so a half that needed a check-back is checked to the most and moved
    /// aside though its producer said commit.
    CheckCommitIgnored,
    /// The controller never replaces a master whose heartbeats stopped:
    /// its group has no master until the old one returns.
    NoFailover,
    /// A pull labels every fifth message with the queue offset of the
    /// message before it, so two messages come out under one offset.
    PullOffsetSkew,
    /// The timer wheel fires each timer up to half a second before its
    /// time (a look-ahead meant to batch a slot's work): less early than
    /// the clock moves of timer-clock-skew, so only an allowance per
    /// delivery, not one per run, can tell it.
    TimerLookAhead,
    /// A consumer's periodic offset commit stops after its first round:
    /// its queues' committed offsets stay where they were, so whoever
    /// resumes them after a crash (or the final drain) gets again what it
    /// consumed long before.
    PeriodicCommitStops,
    /// An orderly consumer that gives a queue up in a rebalance unlocks it
    /// on the broker without waiting for the message it is processing, so
    /// the queue's next owner starts while that message is still in hand.
    OrderlyReleaseEarly,
    /// A consumer whose broker cannot take a failed message back gives up
    /// after three retries in place and moves its offset past the message,
    /// which is then never consumed, retried or dead-lettered.
    LocalRetryGivesUp,
    /// The broker answers a query for a group's committed offset from the
    /// table it last wrote to disk (up to its persist interval old), so a
    /// consumer taking a queue over resumes it below the latest commit.
    StaleOffsetRead,
    /// The timer wheel's progress is never written to disk (Apache
    /// RocketMQ #3473's shape): after a restart every timer it ever fired
    /// fires again.
    TimerProgressNotPersisted,
    /// A dead letter is held back at the retry's delay level before it
    /// reaches the dead-letter queue, as a retry is (Apache RocketMQ
    /// #2724's shape): every dead letter comes that much late.
    DlqWaitsLevel,
    /// A rollback is written but the broker does not mark its half ended,
    /// so it keeps asking the producer about a transaction it already
    /// ended (Apache RocketMQ #9640's shape) until it moves the half aside.
    RollbackRechecked,
    /// The broker takes pulls and commits of a consumer that has not heard
    /// of an operator's offset reset (RocketMQ's behaviour): one cut off
    /// when the reset was made commits its old position when it comes
    /// back, and the rewind is undone for its queues.
    ResetNotFenced,
    /// The broker's SQL92 filter takes an unknown condition (a missing
    /// property, a value that is not a number) as a match, as two-valued
    /// logic would: messages without the property reach the group.
    SqlUnknownMatches,
    /// A broker rebuilding its POP state after a restart or a failover
    /// skips the log's acks, so every message acknowledged since the
    /// group's committed offset is received again (modelled on Apache
    /// RocketMQ #7724 and #8835: acknowledged messages redelivered after
    /// revive).
    PopAckForgotten,
    /// A POP message whose invisible time ran out a second time is taken
    /// as done instead of being received again (modelled on Apache
    /// RocketMQ #7914: revive into the retry topic lost unacknowledged
    /// messages).
    PopReviveDrops,
    /// A POP message received again after its invisible time keeps its
    /// attempt, so two consumers hold the same attempt and both acks are
    /// taken.
    PopAttemptKept,
    /// A broadcasting consumer that restarts resumes its queues at their
    /// ends instead of at the offsets it kept, and misses what was sent
    /// while it was down.
    BroadcastResumeAtEnd,
    /// The broker's batch send stops one message short (an off-by-one in
    /// reading the batch) and answers every message of it as stored.
    BatchDropsLast,
    /// The broker takes any commit of a group's offset, a lower one too:
    /// a consumer that still believes it owns a queue (paused, it missed a
    /// rebalance) commits its old position over the new owner's (Apache
    /// RocketMQ #10700: concurrent commits overwrote each other), and the
    /// group resumes there later.
    CommitOverwrites,
    /// A slave copies its master's topics and offsets but not its
    /// subscription groups, so a slave that takes over applies the
    /// consumers' retry max times instead of the group's (Apache RocketMQ
    /// #9804 lost a topic across a switch the same way).
    SubGroupsNotCopied,
    /// A requester's client hands a reply to the request of its own that
    /// has waited longest (the lowest correlation id) instead of the one
    /// the reply's correlation id names: with two requests in flight, each
    /// may get the other's answer.
    ReplyCrossed,
    /// The broker draws a send's pause from the host (an address the OS
    /// placed at random) instead of the simulation's seeded RNG, so two
    /// runs of one seed differ: the determinism check must notice.
    HostEntropy,
}

impl Bug {
    /// Every planted bug.
    pub const ALL: [Bug; 51] = [
        Bug::AckBeforeFsync,
        Bug::CommitOffsetAhead,
        Bug::DropRebalancedQueue,
        Bug::RecoveryTruncatesExtra,
        Bug::RetryLaterAcked,
        Bug::FilterSkipsMatch,
        Bug::TagFilterLeak,
        Bug::PullDropsProperties,
        Bug::LongPollMiss,
        Bug::ProgressStall,
        Bug::LimitsUnchecked,
        Bug::DlqSkipped,
        Bug::RetryNoBackoff,
        Bug::RetryDropsKey,
        Bug::OrderlyRetryRequeued,
        Bug::LockNotExclusive,
        Bug::DelayStepBackEarly,
        Bug::RollbackDelivered,
        Bug::CheckRoundAborts,
        Bug::TimerEarly,
        Bug::TimersLostOnRestart,
        Bug::CommitTwice,
        Bug::AckBeforeSlaveAck,
        Bug::ElectOutOfSync,
        Bug::NoFencing,
        Bug::SkipTruncation,
        Bug::SlaveOffsetLies,
        Bug::ResumeAfterRestart,
        Bug::RetryKeepsReconsume,
        Bug::CheckCommitIgnored,
        Bug::NoFailover,
        Bug::PullOffsetSkew,
        Bug::TimerLookAhead,
        Bug::PeriodicCommitStops,
        Bug::OrderlyReleaseEarly,
        Bug::LocalRetryGivesUp,
        Bug::StaleOffsetRead,
        Bug::TimerProgressNotPersisted,
        Bug::DlqWaitsLevel,
        Bug::RollbackRechecked,
        Bug::ResetNotFenced,
        Bug::SqlUnknownMatches,
        Bug::PopAckForgotten,
        Bug::PopReviveDrops,
        Bug::PopAttemptKept,
        Bug::BroadcastResumeAtEnd,
        Bug::BatchDropsLast,
        Bug::CommitOverwrites,
        Bug::SubGroupsNotCopied,
        Bug::ReplyCrossed,
        Bug::HostEntropy,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Bug::AckBeforeFsync => "ack-before-fsync",
            Bug::CommitOffsetAhead => "commit-offset-ahead",
            Bug::DropRebalancedQueue => "drop-rebalanced-queue",
            Bug::RecoveryTruncatesExtra => "recovery-truncates-extra",
            Bug::RetryLaterAcked => "retry-later-acked",
            Bug::FilterSkipsMatch => "filter-skips-match",
            Bug::TagFilterLeak => "tag-filter-leak",
            Bug::PullDropsProperties => "pull-drops-properties",
            Bug::LongPollMiss => "long-poll-miss",
            Bug::ProgressStall => "progress-stall",
            Bug::LimitsUnchecked => "limits-unchecked",
            Bug::DlqSkipped => "dlq-skipped",
            Bug::RetryNoBackoff => "retry-no-backoff",
            Bug::RetryDropsKey => "retry-drops-key",
            Bug::OrderlyRetryRequeued => "orderly-retry-requeued",
            Bug::LockNotExclusive => "lock-not-exclusive",
            Bug::DelayStepBackEarly => "delay-step-back-early",
            Bug::RollbackDelivered => "rollback-delivered",
            Bug::CheckRoundAborts => "check-round-aborts",
            Bug::TimerEarly => "timer-early",
            Bug::TimersLostOnRestart => "timers-lost-on-restart",
            Bug::CommitTwice => "commit-twice",
            Bug::AckBeforeSlaveAck => "ack-before-slave-ack",
            Bug::ElectOutOfSync => "elect-out-of-sync",
            Bug::NoFencing => "no-fencing",
            Bug::SkipTruncation => "skip-truncation",
            Bug::SlaveOffsetLies => "slave-offset-lies",
            Bug::ResumeAfterRestart => "resume-after-restart",
            Bug::RetryKeepsReconsume => "retry-keeps-reconsume",
            Bug::CheckCommitIgnored => "check-commit-ignored",
            Bug::NoFailover => "no-failover",
            Bug::PullOffsetSkew => "pull-offset-skew",
            Bug::TimerLookAhead => "timer-look-ahead",
            Bug::PeriodicCommitStops => "periodic-commit-stops",
            Bug::OrderlyReleaseEarly => "orderly-release-early",
            Bug::LocalRetryGivesUp => "local-retry-gives-up",
            Bug::StaleOffsetRead => "stale-offset-read",
            Bug::TimerProgressNotPersisted => "timer-progress-not-persisted",
            Bug::DlqWaitsLevel => "dlq-waits-level",
            Bug::RollbackRechecked => "rollback-rechecked",
            Bug::ResetNotFenced => "reset-not-fenced",
            Bug::SqlUnknownMatches => "sql-unknown-matches",
            Bug::PopAckForgotten => "pop-ack-forgotten",
            Bug::PopReviveDrops => "pop-revive-drops",
            Bug::PopAttemptKept => "pop-attempt-kept",
            Bug::BroadcastResumeAtEnd => "broadcast-resume-at-end",
            Bug::BatchDropsLast => "batch-drops-last",
            Bug::CommitOverwrites => "commit-overwrites",
            Bug::SubGroupsNotCopied => "sub-groups-not-copied",
            Bug::ReplyCrossed => "reply-crossed",
            Bug::HostEntropy => "host-entropy",
        }
    }

    /// Looks a bug up by its command-line name.
    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == name)
    }

    fn bit(self) -> u64 {
        1 << (self as u32)
    }
}

#[cfg(feature = "planted-bugs")]
thread_local! {
    static ACTIVE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Whether `bug` is switched on (always false without `planted-bugs`).
#[inline]
pub fn active(bug: Bug) -> bool {
    #[cfg(feature = "planted-bugs")]
    {
        ACTIVE.with(|a| a.get() & bug.bit() != 0)
    }
    #[cfg(not(feature = "planted-bugs"))]
    {
        let _ = bug.bit();
        false
    }
}

/// Switches exactly the given bugs on for this thread. Returns false when the
/// build has no planted bugs, so a caller can refuse `--bug`.
pub fn set_active(bugs: &[Bug]) -> bool {
    #[cfg(feature = "planted-bugs")]
    {
        ACTIVE.with(|a| a.set(bugs.iter().fold(0, |m, b| m | b.bit())));
        true
    }
    #[cfg(not(feature = "planted-bugs"))]
    {
        bugs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_default_build_is_clean() {
        for bug in Bug::ALL {
            assert_eq!(Bug::from_name(bug.name()), Some(bug));
        }
        assert_eq!(Bug::from_name("nope"), None);
        #[cfg(not(feature = "planted-bugs"))]
        {
            assert!(!set_active(&[Bug::AckBeforeFsync]));
            assert!(!active(Bug::AckBeforeFsync));
        }
    }
}
