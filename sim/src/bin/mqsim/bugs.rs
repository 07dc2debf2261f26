//! Proving every planted bug is caught by the check it exists for.

use crate::input::*;
use crate::safety_unless;
use crate::sweep::{sweep, SweepMode};
use anyhow::Result;
use broker::bugs::Bug;
use sim::failure::{Failures, NONDETERMINISTIC};
use sim::run::RunOptions;

/// The check each planted bug exists to prove: the bug must fail it (a
/// bug caught only by another check means the target check cannot fail).
pub(crate) fn target_check(bug: Bug) -> &'static str {
    match bug {
        Bug::AckBeforeFsync
        | Bug::CommitOffsetAhead
        | Bug::DropRebalancedQueue
        | Bug::RetryLaterAcked
        | Bug::FilterSkipsMatch
        | Bug::AckBeforeSlaveAck
        | Bug::ElectOutOfSync
        | Bug::NoFencing
        | Bug::SkipTruncation
        | Bug::SlaveOffsetLies
        | Bug::ResumeAfterRestart
        | Bug::LocalRetryGivesUp
        | Bug::PopReviveDrops
        | Bug::BroadcastResumeAtEnd
        | Bug::BatchDropsLast
        // It loses the entry after the one recovery should keep; when a
        // consumer had read that entry, the next message takes its offset
        // and `offsets` sees two messages at one offset too (seeds 2..5 of
        // fifo-order, not seed 1).
        | Bug::RecoveryTruncatesExtra => "lost",
        Bug::TagFilterLeak | Bug::PullDropsProperties | Bug::RetryDropsKey | Bug::SqlUnknownMatches => "integrity",
        Bug::LongPollMiss => "liveness",
        Bug::DlqSkipped
        | Bug::RetryNoBackoff
        | Bug::DelayStepBackEarly
        | Bug::RetryKeepsReconsume
        | Bug::DlqWaitsLevel => "dead-letter",
        Bug::OrderlyRetryRequeued | Bug::LockNotExclusive | Bug::OrderlyReleaseEarly => "order",
        Bug::RollbackDelivered
        | Bug::CheckRoundAborts
        | Bug::CommitTwice
        | Bug::CheckCommitIgnored
        | Bug::RollbackRechecked => "transaction",
        Bug::NoFailover => "failover",
        Bug::PullOffsetSkew | Bug::StaleOffsetRead | Bug::CommitOverwrites => "offsets",
        Bug::PeriodicCommitStops | Bug::TimerProgressNotPersisted => "duplicated",
        Bug::TimerEarly | Bug::TimersLostOnRestart | Bug::TimerLookAhead => "delay",
        Bug::ProgressStall => "progress",
        Bug::LimitsUnchecked => "hostile",
        Bug::ResetNotFenced => "reset",
        Bug::PopAckForgotten | Bug::PopAttemptKept | Bug::SubGroupsNotCopied => "pop",
        Bug::ReplyCrossed => "reply",
        // Not an invariant: the sweep replays each seed and compares.
        Bug::HostEntropy => NONDETERMINISTIC,
    }
}

/// The catalogue scenario where each planted bug is hunted first (the rest
/// follow in catalogue order), so proving the catalogue catches every bug
/// does not sweep scenarios that cannot reach it.
pub(crate) fn hunting_ground(bug: Bug) -> &'static str {
    match bug {
        Bug::AckBeforeFsync => "power-loss-sync-flush",
        Bug::DropRebalancedQueue | Bug::RetryLaterAcked => "broker-crash-async-flush",
        Bug::CommitOffsetAhead => "orderly-rebalance",
        Bug::RecoveryTruncatesExtra => "fifo-order",
        Bug::FilterSkipsMatch | Bug::TagFilterLeak => "consumer-crash-rebalance",
        Bug::PullDropsProperties | Bug::LongPollMiss | Bug::ProgressStall | Bug::PullOffsetSkew => {
            "broker-crash-sync-flush"
        }
        Bug::PeriodicCommitStops => "fifo-order",
        Bug::StaleOffsetRead => "consumer-crash-rebalance",
        Bug::LocalRetryGivesUp => "replication-slave-reads",
        Bug::LimitsUnchecked => "hostile-clients",
        Bug::DlqSkipped
        | Bug::RetryNoBackoff
        | Bug::RetryDropsKey
        | Bug::RetryKeepsReconsume
        | Bug::DlqWaitsLevel => "retry-dead-letter",
        Bug::OrderlyRetryRequeued | Bug::LockNotExclusive | Bug::OrderlyReleaseEarly => {
            "orderly-rebalance"
        }
        Bug::DelayStepBackEarly => "retry-clock-skew",
        Bug::RollbackDelivered
        | Bug::CheckRoundAborts
        | Bug::CommitTwice
        | Bug::CheckCommitIgnored
        | Bug::RollbackRechecked => "transaction-check-back",
        Bug::TimerEarly => "timer-clock-skew",
        Bug::TimerLookAhead => "timer-clock-behind",
        Bug::TimersLostOnRestart | Bug::TimerProgressNotPersisted => "transaction-broker-crash",
        Bug::AckBeforeSlaveAck | Bug::SkipTruncation | Bug::NoFailover => {
            "failover-sync-master-crash"
        }
        Bug::ElectOutOfSync => "failover-lagging-slave",
        Bug::NoFencing => "failover-master-isolated",
        Bug::SlaveOffsetLies => "failover-slave-power-loss",
        Bug::ResumeAfterRestart => "failover-master-power-loss",
        Bug::ResetNotFenced => "offset-reset",
        Bug::SqlUnknownMatches => "sql-gray-release",
        Bug::PopAckForgotten | Bug::PopReviveDrops | Bug::PopAttemptKept => "pop-broker-crash",
        Bug::BroadcastResumeAtEnd => "broadcast-consumer-crash",
        Bug::BatchDropsLast => "batch-broker-crash",
        Bug::CommitOverwrites => "consumer-pause-rebalance",
        Bug::SubGroupsNotCopied => "subscription-group-failover",
        Bug::ReplyCrossed => "request-reply",
        Bug::HostEntropy => "broker-crash-sync-flush",
    }
}

/// `mqsim bugs`: runs each planted bug over `seeds` of its hunting ground,
/// then the rest of the catalogue, until a seed fails; the bug is caught
/// when the check it targets is among the failed ones.
pub fn prove(seeds: &str, j: Option<usize>) -> Result<Failures> {
    let range = parse_seeds(seeds)?;
    let seeds: Vec<u64> = range.clone().collect();
    let list = catalogue()?;
    let mut all_caught = true;
    let mut missed = 0;
    for bug in Bug::ALL {
        parse_bugs(&[bug.name().to_string()])?;
        let options = RunOptions {
            trace: false,
            bugs: vec![bug],
            ..RunOptions::default()
        };
        let mut caught = None;
        let target = target_check(bug);
        let first = hunting_ground(bug);
        let order = list
            .iter()
            .filter(|s| s.name == first)
            .chain(list.iter().filter(|s| s.name != first));
        // A bug may show first as another check's failure (a truncated log
        // can surface as a committed offset going back before any message
        // is missed): the hunt goes on through the seeds for one where its
        // own check fails, and reports the other only when none does.
        let mut other = None;
        'hunt: for s in order {
            let replay = target == NONDETERMINISTIC;
            let mut remaining: &[u64] = &seeds;
            while !remaining.is_empty() {
                let mode = SweepMode { check_determinism: replay, stop_at_first: true, timing: false };
                let (_, entries) = sweep(s, &s.name, remaining, jobs(j), &options, None, mode)?;
                let invalid = || entries.iter().filter(|e| e.validity != checker::verdict::Validity::Valid);
                if let Some(e) = invalid().find(|e| e.invalid_checks.iter().any(|c| c == target)) {
                    caught = Some((e.repro.clone(), e.invalid_checks.clone()));
                    break 'hunt;
                }
                let Some(e) = invalid().next() else { break };
                other.get_or_insert_with(|| (e.repro.clone(), e.invalid_checks.clone()));
                let last = entries.iter().map(|e| e.seed).max().unwrap_or(u64::MAX);
                remaining = &remaining[remaining.iter().position(|&seed| seed > last).unwrap_or(remaining.len())..];
            }
        }
        let caught = caught.or(other);
        match caught {
            Some((repro, checks)) if checks.iter().any(|c| c == target) => {
                println!(
                    "CAUGHT {} by {target} (invalid: {}) repro: {repro}",
                    bug.name(),
                    checks.join(", ")
                )
            }
            Some((repro, checks)) => {
                all_caught = false;
                missed += 1;
                println!(
                    "WRONG-CHECK {}: meant for {target}, but only {} failed; repro: {repro}",
                    bug.name(),
                    checks.join(", ")
                );
            }
            None => {
                all_caught = false;
                missed += 1;
                println!("MISSED {} in seeds {range:?} of every scenario", bug.name());
            }
        }
    }
    println!("bugs: {} passed, {missed} failed", Bug::ALL.len() - missed);
    Ok(safety_unless(all_caught))
}
