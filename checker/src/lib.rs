//! Pure functions from a client-observed history to a verdict, in the manner
//! of Jepsen's checkers: each invariant returns a validity, counts and the
//! first anomalies with the event ids that prove them; [`check_all`] keeps
//! the worst validity. The checker never knows the broker's internals.
//!
//! # Layout
//!
//! - [`history`]: the [`Event`] type, JSON-lines reading and writing, a
//!   builder for hand-written histories, and the stable trace [`digest`].
//! - [`config`]: [`CheckConfig`], the groups, FIFO topics and expectations
//!   of a scenario; RocketMQ tag-expression matching.
//! - [`verdict`]: [`Validity`], [`CheckResult`], [`Anomaly`], [`Verdict`].
//! - [`invariant`]: one file per invariant behind the [`Invariant`] enum
//!   (lost, unexpected, integrity, duplicated, recovered, exactly-once,
//!   order, liveness), and [`check_all`]. Dead-letter, transaction and delay
//!   checks have their place reserved there.
//! - [`reached`]: [`reached_marks`], how often a run reached each
//!   "sometimes" mark; not an invariant.
//! - [`synth`]: a generator of large valid histories, for the
//!   `checker-bench` binary and for tests of the checker's own speed.
//! - `index` (private): the per-history index the invariants share.

#![warn(missing_docs)]

pub mod config;
pub mod history;
mod index;
pub mod invariant;
pub mod reached;
pub mod synth;
pub mod verdict;

pub use config::{tag_matches, CheckConfig, Expect, GroupSpec};
pub use history::{
    digest, digest_hex, parse_jsonl, to_jsonl, ConsumeOutcome, Event, HistoryError, Kind, Op, TxState,
};
pub use invariant::{
    check_all, check_duplicated, check_exactly_once, check_integrity, check_liveness, check_lost,
    check_dead_letter, check_delay, check_hostile, check_order, check_progress, check_recovered, check_transaction, check_unexpected, Invariant, DEDUPE_UNAVAILABLE, LOCAL_RETRY,
    NOT_EXPECTED,
};
pub use reached::reached_marks;
pub use verdict::{Anomaly, CheckResult, SummaryCounts, Validity, Verdict, ANOMALIES_MAX};
