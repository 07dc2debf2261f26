//! The invariants, one file each behind the [`Invariant`] enum. Every check
//! is a pure `fn(&[Event], &CheckConfig) -> CheckResult`; [`check_all`]
//! runs them all and keeps the worst validity.
//!
//! A check that the scenario does not expect (exactly-once, order, liveness
//! when their `expect` knob is off) is still listed in the verdict, as valid
//! with the note [`NOT_EXPECTED`] and no counts, so every verdict has the
//! same rows in the same order. Liveness is the one exception: a final drain
//! that gave up fails it even then, since that drain is what every check
//! relies on to have seen the whole run.

mod dead_letter;
mod delay;
mod duplicated;
mod exactly_once;
mod failover;
mod hostile;
mod integrity;
mod liveness;
mod lost;
mod offsets;
mod order;
mod pop;
mod progress;
mod recovered;
mod reply;
mod reset;
mod transaction;
mod unexpected;

pub use dead_letter::{check_dead_letter, DEDUPE_UNAVAILABLE, LOCAL_RETRY};
pub use delay::check_delay;
pub use duplicated::check_duplicated;
pub use exactly_once::check_exactly_once;
pub use failover::check_failover;
pub use hostile::check_hostile;
pub use integrity::check_integrity;
pub use liveness::check_liveness;
pub use lost::check_lost;
pub use offsets::check_offsets;
pub use order::check_order;
pub use pop::check_pop;
pub use progress::check_progress;
pub use recovered::check_recovered;
pub use reply::{check_reply, reply_body};
pub use reset::check_reset;
pub use transaction::check_transaction;
pub use unexpected::check_unexpected;

use crate::config::CheckConfig;
use crate::history::Event;
use crate::index::Index;
use crate::verdict::{CheckResult, Verdict};

/// Note on a check that the scenario's `expect` does not ask for.
pub const NOT_EXPECTED: &str = "not expected by this scenario";

/// The invariants the checker knows, in verdict order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// Acknowledged but never consumed by a subscribing group nor dead-lettered.
    Lost,
    /// Delivered, dead-lettered or applied but never sent (or sent and failed).
    Unexpected,
    /// Delivered as sent (topic, key, tag, shard, seq, body, props), and
    /// only to groups whose tag expression selects it.
    Integrity,
    /// Raw duplicate successful deliveries (informational: at-least-once).
    Duplicated,
    /// Sends of unknown outcome that were consumed anyway (informational).
    Recovered,
    /// One business effect per acknowledged key and group.
    ExactlyOnce,
    /// Per-sharding-key order on FIFO topics.
    Order,
    /// Delivery within a bound during the fault-free tail.
    Liveness,
    /// Sends acknowledged once the faults have healed.
    Progress,
    /// Hostile clients' requests refused, legal ones accepted, all answered.
    Hostile,
    /// In the DLQ iff consumption failed max-reconsume + 1 times; never both
    /// consumed and dead-lettered; each retry no earlier than its level.
    DeadLetter,
    /// Rolled back never delivered; committed delivered (or moved aside
    /// and reported) from one stored copy; check-backs counted.
    Transaction,
    /// Timers and delayed messages never delivered before their time, and
    /// delivered; lateness measured.
    Delay,
    /// In controller mode, a stopped master replaced within a bound while
    /// a member of its sync-state set is up; time without a master measured.
    Failover,
    /// One queue offset, one message: never two messages delivered from
    /// the same queue and offset.
    Offsets,
    /// An operator's offset reset brings back what the group consumed at
    /// or after the offset it reset to.
    Reset,
    /// POP groups: one holder per attempt, nothing received while
    /// invisible, nothing acknowledged received again, no attempt past
    /// the most.
    Pop,
    /// Request-reply: each requester gets the reply to its own request,
    /// from a responder that consumed it.
    Reply,
}

impl Invariant {
    /// Every implemented invariant, in verdict order.
    pub const ALL: [Invariant; 18] = [
        Invariant::Lost,
        Invariant::Unexpected,
        Invariant::Integrity,
        Invariant::Duplicated,
        Invariant::Recovered,
        Invariant::ExactlyOnce,
        Invariant::Order,
        Invariant::Liveness,
        Invariant::Progress,
        Invariant::Hostile,
        Invariant::DeadLetter,
        Invariant::Transaction,
        Invariant::Delay,
        Invariant::Failover,
        Invariant::Offsets,
        Invariant::Reset,
        Invariant::Pop,
        Invariant::Reply,
    ];

    /// The name used in [`CheckResult::name`].
    pub fn name(self) -> &'static str {
        match self {
            Invariant::Lost => "lost",
            Invariant::Unexpected => "unexpected",
            Invariant::Integrity => "integrity",
            Invariant::Duplicated => "duplicated",
            Invariant::Recovered => "recovered",
            Invariant::ExactlyOnce => "exactly-once",
            Invariant::Order => "order",
            Invariant::Liveness => "liveness",
            Invariant::Progress => "progress",
            Invariant::Hostile => "hostile",
            Invariant::DeadLetter => "dead-letter",
            Invariant::Transaction => "transaction",
            Invariant::Delay => "delay",
            Invariant::Failover => "failover",
            Invariant::Offsets => "offsets",
            Invariant::Reset => "reset",
            Invariant::Pop => "pop",
            Invariant::Reply => "reply",
        }
    }

    /// The invariant of that name.
    pub fn from_name(name: &str) -> Option<Invariant> {
        Invariant::ALL.into_iter().find(|i| i.name() == name)
    }

    /// True for the invariants that promise something good happens in
    /// time (delivery by a deadline, acknowledgements once faults heal, a
    /// new master within a bound); the rest promise nothing bad happens.
    pub fn is_liveness(self) -> bool {
        matches!(self, Invariant::Liveness | Invariant::Progress | Invariant::Failover)
    }

    /// Runs this invariant's check.
    pub fn check(self, history: &[Event], cfg: &CheckConfig) -> CheckResult {
        self.check_indexed(history, cfg, &Index::build(history, cfg))
    }

    /// Runs this invariant's check over an index of `history` built once.
    fn check_indexed<'a>(self, history: &'a [Event], cfg: &CheckConfig, index: &Index<'a>) -> CheckResult {
        match self {
            Invariant::Lost => lost::lost(history, cfg, index),
            Invariant::Unexpected => unexpected::unexpected(history, cfg, index),
            Invariant::Integrity => integrity::integrity(history, cfg, index),
            Invariant::Duplicated => duplicated::duplicated(history, cfg, index),
            Invariant::Recovered => recovered::recovered(history, cfg, index),
            Invariant::ExactlyOnce => exactly_once::exactly_once(history, cfg, index),
            Invariant::Order => order::order(history, cfg, index),
            Invariant::Liveness => liveness::liveness(history, cfg, index),
            Invariant::Progress => progress::progress(history, cfg, index),
            Invariant::Hostile => hostile::hostile(history, cfg, index),
            Invariant::DeadLetter => dead_letter::dead_letter(history, cfg, index),
            Invariant::Transaction => transaction::transaction(history, cfg, index),
            Invariant::Delay => delay::delay(history, cfg, index),
            Invariant::Failover => failover::failover(history, cfg, index),
            Invariant::Offsets => offsets::offsets(history, cfg, index),
            Invariant::Reset => reset::reset(history, cfg, index),
            Invariant::Pop => pop::pop(history, cfg, index),
            Invariant::Reply => reply::reply(history, cfg, index),
        }
    }
}

/// Runs every invariant and composes the results, worst validity winning.
/// The history is indexed once for all of them.
pub fn check_all(history: &[Event], cfg: &CheckConfig) -> Verdict {
    let index = Index::build(history, cfg);
    Verdict::compose(
        Invariant::ALL
            .iter()
            .map(|inv| inv.check_indexed(history, cfg, &index))
            .collect(),
    )
}

/// A hashed map's entries in key order: the checks count in hashed maps
/// and list their anomalies in key order.
pub(crate) fn sorted<K: Ord, V>(map: &rustc_hash::FxHashMap<K, V>) -> Vec<(&K, &V)> {
    let mut entries: Vec<(&K, &V)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    entries
}

/// The result of a check the scenario does not expect.
fn not_expected(invariant: Invariant) -> CheckResult {
    let mut result = CheckResult::new(invariant.name());
    result.note = Some(NOT_EXPECTED.to_owned());
    result
}
