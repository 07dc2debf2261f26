//! Results: one [`CheckResult`] per invariant and the [`Verdict`] that
//! composes them, keeping the worst validity (as Jepsen's `compose` does).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// How many anomalies a check keeps; the counts hold the full totals.
pub const ANOMALIES_MAX: usize = 10;

/// Outcome of a check. Ordered so that the worst is the greatest:
/// `Valid < Unknown < Invalid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validity {
    /// The invariant holds.
    Valid,
    /// The history cannot tell (for example it was cut short).
    Unknown,
    /// The invariant is violated.
    Invalid,
}

impl Validity {
    /// The lowercase name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Validity::Valid => "valid",
            Validity::Unknown => "unknown",
            Validity::Invalid => "invalid",
        }
    }
}

impl fmt::Display for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One offending element, with the event ids that prove it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Short kebab-case class, such as "lost" or "out-of-order".
    pub kind: String,
    /// One sentence naming the message, group and what went wrong.
    pub detail: String,
    /// Events of the history that show it.
    pub event_ids: Vec<u64>,
}

/// The result of one invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Invariant name, see [`crate::Invariant::name`].
    pub name: String,
    /// Whether it holds.
    pub validity: Validity,
    /// Named totals (always complete, unlike `anomalies`).
    pub counts: BTreeMap<String, u64>,
    /// The first [`ANOMALIES_MAX`] anomalies, in history order.
    pub anomalies: Vec<Anomaly>,
    /// Why the validity is what it is when the counts do not say it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl CheckResult {
    /// A valid result with no counts yet.
    pub fn new(name: &str) -> CheckResult {
        CheckResult {
            name: name.to_owned(),
            validity: Validity::Valid,
            counts: BTreeMap::new(),
            anomalies: Vec::new(),
            note: None,
        }
    }

    /// Sets a count.
    pub fn set(&mut self, count: &str, value: u64) {
        self.counts.insert(count.to_owned(), value);
    }

    /// A count, 0 when absent.
    pub fn count(&self, count: &str) -> u64 {
        self.counts.get(count).copied().unwrap_or(0)
    }

    /// Keeps the anomaly if fewer than [`ANOMALIES_MAX`] are kept already.
    pub fn push_anomaly(&mut self, kind: &str, detail: String, event_ids: Vec<u64>) {
        if self.anomalies.len() < ANOMALIES_MAX {
            self.anomalies.push(Anomaly {
                kind: kind.to_owned(),
                detail,
                event_ids,
            });
        }
    }

    /// Raises the validity to `validity` if that is worse.
    pub fn worsen(&mut self, validity: Validity) {
        self.validity = self.validity.max(validity);
    }
}

/// All check results of a run and their worst validity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The worst validity of `checks`.
    pub validity: Validity,
    /// One result per invariant, in [`crate::Invariant::ALL`] order.
    pub checks: Vec<CheckResult>,
}

/// The headline numbers of a verdict, printed on a failing seed's line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryCounts {
    /// Lost acknowledged messages.
    pub lost: u64,
    /// Deliveries, dead letters or effects of messages never sent.
    pub unexpected: u64,
    /// Messages delivered successfully more than once to one group.
    pub duplicated: u64,
    /// Deliveries that overtook an unconsumed predecessor, or that began
    /// while another consumer processed the same sharding key.
    pub order: u64,
    /// Double, missing and phantom effects.
    pub exactly_once: u64,
    /// Corrupted deliveries and filter leaks. Defaults to 0 so that counts
    /// serialized before integrity existed still parse.
    #[serde(default)]
    pub integrity: u64,
    /// Late and never delivered tail messages, and drains that gave up.
    /// Defaults to 0 like `integrity`.
    #[serde(default)]
    pub late: u64,
    /// 1 when the cluster stalled (progress below its floor). Defaults to
    /// 0 like `integrity`.
    #[serde(default)]
    pub stalled: u64,
    /// Hostile requests answered wrongly: accepted past a limit, refused at
    /// one, or unanswered in the tail. Defaults to 0 like `integrity`.
    #[serde(default)]
    pub hostile: u64,
    /// Retries and dead letters against the group's rules: early retries,
    /// dead letters too early or missing, consumed and dead-lettered.
    /// Defaults to 0 like `integrity`.
    #[serde(default)]
    pub dead_letter: u64,
    /// Transactions against their local outcome: rolled back but
    /// delivered, committed but not delivered, committed twice. Defaults
    /// to 0 like `integrity`.
    #[serde(default)]
    pub transaction: u64,
    /// Timers and delayed messages delivered early or not at all. Defaults
    /// to 0 like `integrity`.
    #[serde(default)]
    pub delay: u64,
    /// Stopped masters that no replica replaced within the bound. Defaults
    /// to 0 like `integrity`.
    #[serde(default)]
    pub failover: u64,
    /// Queue offsets delivered as two different messages. Defaults to 0
    /// like `integrity`.
    #[serde(default)]
    pub offsets: u64,
    /// Messages an operator's offset reset should have brought back to its
    /// group and did not. Defaults to 0 like `integrity`.
    #[serde(default)]
    pub reset: u64,
    /// POP attempts held twice, received while invisible, received again
    /// after their ack, or past the most attempts. Defaults to 0 like
    /// `integrity`.
    #[serde(default)]
    pub pop: u64,
    /// Replies a requester got that answer another request, or that no
    /// responder had sent. Defaults to 0 like `integrity`.
    #[serde(default)]
    pub reply: u64,
}

impl fmt::Display for SummaryCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lost={} unexpected={} dup={} order={} eo={} corrupt={} late={} stalled={} hostile={} dl={} tx={} delay={} failover={} offsets={} reset={} pop={} reply={}",
            self.lost,
            self.unexpected,
            self.duplicated,
            self.order,
            self.exactly_once,
            self.integrity,
            self.late,
            self.stalled,
            self.hostile,
            self.dead_letter,
            self.transaction,
            self.delay,
            self.failover,
            self.offsets,
            self.reset,
            self.pop,
            self.reply
        )
    }
}

impl Verdict {
    /// Composes results, keeping the worst validity.
    pub fn compose(checks: Vec<CheckResult>) -> Verdict {
        let validity = checks
            .iter()
            .map(|c| c.validity)
            .max()
            .unwrap_or(Validity::Valid);
        Verdict { validity, checks }
    }

    /// The result of the check named `name`, if present.
    pub fn check(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// True when every check is valid.
    pub fn is_valid(&self) -> bool {
        self.validity == Validity::Valid
    }

    /// The headline numbers; a check that is absent or not expected counts 0.
    pub fn summary_counts(&self) -> SummaryCounts {
        let count = |check: &str, count: &str| self.check(check).map_or(0, |c| c.count(count));
        SummaryCounts {
            lost: count("lost", "lost"),
            unexpected: count("unexpected", "unexpected"),
            duplicated: count("duplicated", "duplicated"),
            order: count("order", "out-of-order") + count("order", "concurrent"),
            exactly_once: count("exactly-once", "double-effect")
                + count("exactly-once", "missing-effect")
                + count("exactly-once", "phantom-effect"),
            integrity: count("integrity", "corrupted") + count("integrity", "filter-leak"),
            late: count("liveness", "late")
                + count("liveness", "never")
                + count("liveness", "drain-gave-up"),
            stalled: count("progress", "stalled"),
            hostile: count("hostile", "accepted-past-limit")
                + count("hostile", "refused-at-limit")
                + count("hostile", "unanswered"),
            dead_letter: [
                "retry-early",
                "retried-without-failure",
                "dead-lettered-early",
                "not-dead-lettered",
                "consumed-and-dead-lettered",
                "retried-past-max",
                "dead-lettered-late",
            ]
                .iter()
                .map(|n| count("dead-letter", n))
                .sum(),
            transaction: ["rollback-delivered", "committed-not-delivered", "committed-twice", "committed-moved-aside", "checked-after-end"]
                .iter()
                .map(|n| count("transaction", n))
                .sum(),
            delay: count("delay", "early") + count("delay", "not-delivered"),
            failover: count("failover", "no-failover"),
            offsets: count("offsets", "inconsistent-offset") + count("offsets", "commit-went-back"),
            reset: count("reset", "not-replayed"),
            pop: ["attempt-received-twice", "received-while-invisible", "acknowledged-received-again", "received-past-max-attempts"]
                .iter()
                .map(|n| count("pop", n))
                .sum(),
            reply: count("reply", "wrong-reply") + count("reply", "reply-not-sent"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_validity_wins() {
        assert!(Validity::Invalid > Validity::Unknown);
        assert!(Validity::Unknown > Validity::Valid);
        let mut unknown = CheckResult::new("b");
        unknown.worsen(Validity::Unknown);
        let verdict = Verdict::compose(vec![CheckResult::new("a"), unknown.clone()]);
        assert_eq!(verdict.validity, Validity::Unknown);
        let mut invalid = CheckResult::new("c");
        invalid.worsen(Validity::Invalid);
        invalid.worsen(Validity::Valid);
        let verdict = Verdict::compose(vec![invalid, unknown]);
        assert_eq!(verdict.validity, Validity::Invalid);
        assert_eq!(Verdict::compose(vec![]).validity, Validity::Valid);
    }

    #[test]
    fn anomalies_are_capped() {
        let mut result = CheckResult::new("lost");
        for i in 0..25 {
            result.push_anomaly("lost", format!("m{i}"), vec![i]);
        }
        assert_eq!(result.anomalies.len(), ANOMALIES_MAX);
        assert_eq!(result.anomalies[0].detail, "m0");
    }

    #[test]
    fn summary_counts_add_integrity_late_and_stalled() {
        let mut integrity = CheckResult::new("integrity");
        integrity.set("checked", 9);
        integrity.set("corrupted", 2);
        integrity.set("filter-leak", 1);
        let mut liveness = CheckResult::new("liveness");
        liveness.set("late", 1);
        liveness.set("never", 2);
        liveness.set("drain-gave-up", 4);
        liveness.set("pending", 8);
        let mut progress = CheckResult::new("progress");
        progress.set("attempted", 10);
        progress.set("stalled", 1);
        let summary = Verdict::compose(vec![integrity, liveness, progress]).summary_counts();
        assert_eq!((summary.integrity, summary.late, summary.stalled), (3, 7, 1));
        assert_eq!(
            summary.to_string(),
            "lost=0 unexpected=0 dup=0 order=0 eo=0 corrupt=3 late=7 stalled=1 hostile=0 dl=0 tx=0 delay=0 failover=0 offsets=0 reset=0 pop=0 reply=0"
        );
        let old: SummaryCounts = serde_json::from_str(
            r#"{"lost":1,"unexpected":0,"duplicated":0,"order":0,"exactly_once":0}"#,
        )
        .unwrap();
        assert_eq!((old.lost, old.integrity, old.late), (1, 0, 0));
    }

    #[test]
    fn validity_serializes_lowercase() {
        assert_eq!(
            serde_json::to_string(&Validity::Invalid).unwrap(),
            "\"invalid\""
        );
    }
}
