//! "Sometimes" marks: interesting states the broker reaches, in the manner of
//! FoundationDB's `TEST(...)` coverage macros and Antithesis's "sometimes"
//! assertions. A simulation sweep reports, per scenario, the share of seeds
//! that reached each mark, and a scenario can require some of them: a fault
//! schedule that never tears a write proves nothing about torn writes.
//!
//! Marks cost nothing in the real build: [`reach`] compiles to nothing
//! without `--cfg madsim`. Under the simulation the harness installs a sink
//! per OS thread (one seed runs on one thread), so parallel seeds do not
//! interfere.

/// A state worth reaching, named once here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mark {
    /// Recovery cut a torn write (an entry that runs past the end of what
    /// reached the disk) off the commit log.
    TornWriteCut,
    /// Recovery, or a queue rebuild's scan of the log, found an entry whose
    /// CRC did not match its body: cut at the end of the log (recovery
    /// only) or passed over (valid entries followed).
    CorruptEntryCut,
    /// A pull passed over a message whose stored bytes failed their CRC.
    CorruptEntrySkipped,
    /// A SYNC_FLUSH send answered FLUSH_DISK_TIMEOUT.
    FlushDiskTimeout,
    /// A held pull was woken by an arriving message, not by its deadline.
    LongPollWoken,
    /// A consumer released a queue while messages of it were still being
    /// processed.
    RebalanceWithInFlight,
    /// A pull found a consume queue entry that did not lead to its message
    /// and the store rebuilt the queue from the commit log.
    QueueRebuilt,
    /// A store broken by a failed write or fsync was reopened (recovered)
    /// once the disk let it.
    StoreReopened,
    /// A query found the index pointing at the wrong message or at bad
    /// bytes and the store rebuilt the index from the commit log.
    IndexRebuilt,
    /// The schedule service moved a due delayed message (a retry, or a
    /// message sent with a delay level) to its real topic.
    DelayDelivered,
    /// A delayed message was due past a whole delay from now (the broker's
    /// clock was set back since it was stored) and was delivered now.
    DelayClockCorrected,
    /// The broker stored a consumer's sent-back message in the retry path.
    SentBack,
    /// The broker dead-lettered a message past its max reconsume times.
    DeadLettered,
    /// A queue lock passed to another consumer once its holder's lease ran
    /// out (the holder died or lost the broker).
    LockLeaseExpired,
    /// The timer service moved a due timer message to its real topic.
    TimerDelivered,
    /// Pending timers stored before the broker opened its store were found
    /// again and put back on the wheel.
    TimersRecovered,
    /// The broker asked a producer to check back on a half message, and the
    /// producer took the question.
    TransactionChecked,
    /// A half message was checked `transactionCheckMax` times without an
    /// answer and was moved aside.
    TransactionMovedAside,
    /// A commit or rollback arrived for a half already ended, and was
    /// ignored.
    TransactionEndRepeated,
    /// A slave answered a consumer's pull with messages (its master was
    /// down or unreachable for that consumer).
    SlaveServedPull,
    /// A slave that started behind its master (it was down, or new) copied
    /// the log up to the master's end.
    ReplicaCaughtUp,
    /// A replica cut its log back to where it agrees with a new master
    /// (an old master dropping the tail it wrote in its lost term).
    DivergentTailCut,
    /// A slave took over as master in a new term.
    MasterElected,
    /// A consumer gave a queue up to take it again because an operator
    /// reset its group's offsets (told by the broker, or refused a pull or
    /// commit of the earlier generation).
    OffsetResetTaken,
    /// A POP message whose invisible time ran out was received again, with
    /// its attempt raised.
    PopRevived,
    /// The POP state was rebuilt from the POP log with leases in it (after
    /// a restart, a take-over, a cut or a reopen).
    PopRebuilt,
}

impl Mark {
    /// Every broker mark.
    pub const ALL: [Mark; 26] = [
        Mark::TornWriteCut,
        Mark::CorruptEntryCut,
        Mark::CorruptEntrySkipped,
        Mark::FlushDiskTimeout,
        Mark::LongPollWoken,
        Mark::RebalanceWithInFlight,
        Mark::QueueRebuilt,
        Mark::StoreReopened,
        Mark::IndexRebuilt,
        Mark::DelayDelivered,
        Mark::DelayClockCorrected,
        Mark::SentBack,
        Mark::DeadLettered,
        Mark::LockLeaseExpired,
        Mark::TimerDelivered,
        Mark::TimersRecovered,
        Mark::TransactionChecked,
        Mark::TransactionMovedAside,
        Mark::TransactionEndRepeated,
        Mark::SlaveServedPull,
        Mark::ReplicaCaughtUp,
        Mark::DivergentTailCut,
        Mark::MasterElected,
        Mark::OffsetResetTaken,
        Mark::PopRevived,
        Mark::PopRebuilt,
    ];

    /// The mark's name in histories, reports and scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Mark::TornWriteCut => "torn-write-cut",
            Mark::CorruptEntryCut => "corrupt-entry-cut",
            Mark::CorruptEntrySkipped => "corrupt-entry-skipped",
            Mark::FlushDiskTimeout => "flush-disk-timeout",
            Mark::LongPollWoken => "long-poll-woken",
            Mark::RebalanceWithInFlight => "rebalance-with-in-flight",
            Mark::QueueRebuilt => "queue-rebuilt",
            Mark::StoreReopened => "store-reopened",
            Mark::IndexRebuilt => "index-rebuilt",
            Mark::DelayDelivered => "delay-delivered",
            Mark::DelayClockCorrected => "delay-clock-corrected",
            Mark::SentBack => "sent-back",
            Mark::DeadLettered => "dead-lettered",
            Mark::LockLeaseExpired => "lock-lease-expired",
            Mark::TimerDelivered => "timer-delivered",
            Mark::TimersRecovered => "timers-recovered",
            Mark::TransactionChecked => "transaction-checked",
            Mark::TransactionMovedAside => "transaction-moved-aside",
            Mark::TransactionEndRepeated => "transaction-end-repeated",
            Mark::SlaveServedPull => "slave-served-pull",
            Mark::ReplicaCaughtUp => "replica-caught-up",
            Mark::DivergentTailCut => "divergent-tail-cut",
            Mark::MasterElected => "master-elected",
            Mark::OffsetResetTaken => "offset-reset-taken",
            Mark::PopRevived => "pop-revived",
            Mark::PopRebuilt => "pop-rebuilt",
        }
    }
}

/// Where marks go: the simulation's recorder.
#[cfg(madsim)]
pub type Sink = Box<dyn Fn(Mark)>;

#[cfg(madsim)]
thread_local! {
    static SINK: std::cell::RefCell<Option<Sink>> = const { std::cell::RefCell::new(None) };
}

/// Says that `mark`'s state was reached (nothing in the real build).
#[inline]
pub fn reach(mark: Mark) {
    #[cfg(madsim)]
    SINK.with(|sink| {
        if let Some(sink) = sink.borrow().as_ref() {
            sink(mark);
        }
    });
    #[cfg(not(madsim))]
    let _ = mark;
}

/// Where role notes go: the simulation's recorder, as (replica, what).
#[cfg(madsim)]
pub type NoteSink = Box<dyn Fn(&str, &str)>;

#[cfg(madsim)]
thread_local! {
    static NOTES: std::cell::RefCell<Option<NoteSink>> = const { std::cell::RefCell::new(None) };
}

/// Says that replica `who` (`<broker name>/<broker id>`) changed role:
/// took over as master, followed another, cut its log, or had its
/// sync-state set confirmed. A history event on the report's timeline in
/// the simulation; a log line in the real build (the caller logs it).
#[inline]
pub fn note(who: &str, what: &str) {
    #[cfg(madsim)]
    NOTES.with(|sink| {
        if let Some(sink) = sink.borrow().as_ref() {
            sink(who, what);
        }
    });
    #[cfg(not(madsim))]
    let _ = (who, what);
}

/// Installs (or with `None` removes) this thread's role-note sink.
#[cfg(madsim)]
pub fn set_note_sink(sink: Option<NoteSink>) {
    NOTES.with(|slot| *slot.borrow_mut() = sink);
}

/// Installs (or with `None` removes) this thread's sink.
#[cfg(madsim)]
pub fn set_sink(sink: Option<Sink>) {
    SINK.with(|slot| *slot.borrow_mut() = sink);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_kebab_case() {
        let names: std::collections::BTreeSet<&str> = Mark::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), Mark::ALL.len());
        assert!(names.iter().all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '-')));
        reach(Mark::TornWriteCut);
    }
}
