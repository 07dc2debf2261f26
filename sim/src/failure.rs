//! How a run, a sweep or a command failed, one exit code per class (as
//! TigerBeetle's simulator does), so a script or CI can tell a safety
//! violation from a stall, a replay that differed, a mark never reached or
//! a crash of the harness without reading the output.

use std::collections::BTreeSet;

/// A class of failure. Ordered from the gravest: where several are met,
/// the exit code is the first's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    /// The harness itself crashed: a panic inside a seed's run, a seed
    /// process that died, an error that is not bad input. There is no
    /// verdict to trust.
    Crash,
    /// Two runs of one seed gave different histories: a failure found
    /// there could not be replayed from its seed.
    Nondeterministic,
    /// Something bad happened: an invariant other than liveness, progress
    /// and failover failed (or a planted bug went uncaught).
    Safety,
    /// Something good did not happen in time: liveness, progress or
    /// failover failed.
    Liveness,
    /// No seed reached a mark the scenario requires (`expect.reached`): the
    /// runs never explored what the scenario exists for.
    MarkMissed,
}

/// What stands in a sweep entry's `invalid_checks` for a panic.
pub const PANIC: &str = "panic";
/// What stands in a sweep entry's `invalid_checks` for a run that did not
/// end within the simulation's time limit (a drain or shutdown that never
/// finished): a liveness failure, not a crash.
pub const TIME_LIMIT: &str = "time-limit";
/// What stands in a sweep entry's `invalid_checks` for a seed whose two
/// runs differed.
pub const NONDETERMINISTIC: &str = "nondeterministic";

impl Failure {
    /// Every class, gravest first.
    pub const ALL: [Failure; 5] = [Failure::Crash, Failure::Nondeterministic, Failure::Safety, Failure::Liveness, Failure::MarkMissed];

    /// The process exit code (2 is bad input, 0 success).
    pub fn code(self) -> u8 {
        match self {
            Failure::Safety => 1,
            Failure::Liveness => 3,
            Failure::Nondeterministic => 4,
            Failure::MarkMissed => 5,
            Failure::Crash => 6,
        }
    }

    /// The name printed on a failing seed's line (`class=...`).
    pub fn name(self) -> &'static str {
        match self {
            Failure::Safety => "safety",
            Failure::Liveness => "liveness",
            Failure::Nondeterministic => "nondeterministic",
            Failure::MarkMissed => "mark-missed",
            Failure::Crash => "crash",
        }
    }

    /// The class of a failed check as a sweep entry names it: a checker
    /// invariant, [`PANIC`] or [`NONDETERMINISTIC`].
    pub fn of_check(name: &str) -> Failure {
        match name {
            PANIC => Failure::Crash,
            TIME_LIMIT => Failure::Liveness,
            NONDETERMINISTIC => Failure::Nondeterministic,
            _ => match checker::Invariant::from_name(name) {
                Some(invariant) if invariant.is_liveness() => Failure::Liveness,
                _ => Failure::Safety,
            },
        }
    }
}

/// The failures a command met; none is success.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Failures(BTreeSet<Failure>);

impl Failures {
    /// No failure.
    pub fn none() -> Failures {
        Failures::default()
    }

    /// Just `failure`.
    pub fn of(failure: Failure) -> Failures {
        Failures([failure].into())
    }

    /// The classes of the failed checks `names` (as [`Failure::of_check`]).
    pub fn of_checks<'a>(names: impl IntoIterator<Item = &'a str>) -> Failures {
        Failures(names.into_iter().map(Failure::of_check).collect())
    }

    /// Adds `failure`.
    pub fn add(&mut self, failure: Failure) {
        self.0.insert(failure);
    }

    /// Adds every failure of `other`.
    pub fn merge(&mut self, other: &Failures) {
        self.0.extend(other.0.iter().copied());
    }

    /// True when nothing failed.
    pub fn passed(&self) -> bool {
        self.0.is_empty()
    }

    /// The gravest failure, if any.
    pub fn gravest(&self) -> Option<Failure> {
        self.0.iter().next().copied()
    }

    /// The exit code: 0, or the gravest failure's.
    pub fn exit_code(&self) -> u8 {
        self.gravest().map_or(0, Failure::code)
    }

    /// The classes' names, gravest first, joined by commas.
    pub fn names(&self) -> String {
        self.0.iter().map(|f| f.name()).collect::<Vec<_>>().join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_has_its_own_code_and_bad_input_keeps_two() {
        let codes: BTreeSet<u8> = Failure::ALL.iter().map(|f| f.code()).collect();
        assert_eq!(codes.len(), Failure::ALL.len());
        assert!(!codes.contains(&0) && !codes.contains(&2));
    }

    #[test]
    fn checks_are_classed_by_what_they_promise() {
        assert_eq!(Failure::of_check("lost"), Failure::Safety);
        assert_eq!(Failure::of_check("dead-letter"), Failure::Safety);
        assert_eq!(Failure::of_check("liveness"), Failure::Liveness);
        assert_eq!(Failure::of_check("progress"), Failure::Liveness);
        assert_eq!(Failure::of_check("failover"), Failure::Liveness);
        assert_eq!(Failure::of_check(PANIC), Failure::Crash);
        assert_eq!(Failure::of_check(TIME_LIMIT), Failure::Liveness);
        assert_eq!(Failure::of_check(NONDETERMINISTIC), Failure::Nondeterministic);
    }

    #[test]
    fn the_gravest_failure_decides_the_code() {
        assert_eq!(Failures::none().exit_code(), 0);
        let mut f = Failures::of_checks(["liveness", "progress"]);
        assert_eq!((f.exit_code(), f.names().as_str()), (3, "liveness"));
        f.add(Failure::MarkMissed);
        assert_eq!(f.exit_code(), 3);
        f.merge(&Failures::of_checks(["lost"]));
        assert_eq!((f.exit_code(), f.names().as_str()), (1, "safety,liveness,mark-missed"));
        f.add(Failure::Nondeterministic);
        assert_eq!(f.exit_code(), 4);
        f.add(Failure::Crash);
        assert_eq!(f.exit_code(), 6);
    }
}
