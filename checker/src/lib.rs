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
//!   order, liveness, progress, hostile, dead-letter, transaction, delay,
//!   failover, offsets), and [`check_all`].
//! - [`reached`]: [`reached_marks`], how often a run reached each
//!   "sometimes" mark; not an invariant.
//! - [`synth`]: a generator of large valid histories, for the
//!   `checker-bench` binary and for tests of the checker's own speed.
//! - `index` (private): the per-history index the invariants share.
//! - `faults` (private): the nemesis's faults as spans of time.
//! - `clock` (private): each broker's clock offset over time, and what a
//!   message it held may be forgiven for arriving early.

#![warn(missing_docs)]

mod clock;
pub mod config;
mod faults;
pub mod history;
mod index;
pub mod invariant;
pub mod reached;
pub mod sql;
pub mod synth;
pub mod verdict;

pub use config::{tag_matches, CheckConfig, Expect, GroupSpec};
pub use history::{
    digest, digest_hex, parse_jsonl, to_jsonl, ConsumeOutcome, Event, Flip, HistoryError, Kind, Op, TxState,
};
pub use invariant::{
    check_all, check_duplicated, check_exactly_once, check_failover, check_integrity, check_liveness, check_lost, check_offsets,
    check_dead_letter, check_delay, check_hostile, check_order, check_pop, check_progress, check_recovered, check_reply, check_reset, reply_body, check_transaction, check_unexpected, Invariant, DEDUPE_UNAVAILABLE, LOCAL_RETRY,
    NOT_EXPECTED,
};
pub use reached::reached_marks;
pub use verdict::{Anomaly, CheckResult, SummaryCounts, Validity, Verdict, ANOMALIES_MAX};
