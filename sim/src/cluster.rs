//! The cluster a run hurts, as the nemesis sees it: the operations a fault
//! is made of, named as a real cluster of processes can honour them
//! (SIGKILL, SIGSTOP, firewall rules, a per-link delay, a shifted clock, a
//! faulty disk). The madsim world implements it; a cluster of real
//! processes is the next implementation.

use crate::disk::FlippedBit;
use scenarios::{CrashStep, DiskFaultKind};

/// Extra latency and loss on one directed link, or on every link.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkFault {
    /// Extra latency drawn per packet from `lo..=hi` ms, if any.
    pub latency_ms: Option<(u64, u64)>,
    /// Share of packets lost, `0.0..=1.0`.
    pub loss_rate: f64,
}

/// A running cluster of named nodes.
pub trait Cluster: Send + Sync {
    /// Every node's name.
    fn nodes(&self) -> Vec<String>;

    /// Stops a node at once (SIGKILL): what it wrote but did not sync
    /// survives, as a machine's page cache keeps it.
    fn kill(&self, node: &str);

    /// Stops a node as a power loss does: its disk keeps only what was
    /// synced, and a torn tail of what was not.
    fn power_off(&self, node: &str);

    /// Starts a stopped node again, on its own disk.
    fn restart(&self, node: &str);

    /// Freezes a node (SIGSTOP): it keeps its connections and runs no code.
    fn pause(&self, node: &str);

    /// Thaws a frozen node (SIGCONT).
    fn resume(&self, node: &str);

    /// Drops everything `from` sends to `to` (`cut`), or lets it through
    /// again.
    fn cut(&self, from: &str, to: &str, cut: bool);

    /// Sets, or clears, the extra latency and loss of the link `from` to
    /// `to`.
    fn set_link(&self, from: &str, to: &str, fault: Option<LinkFault>);

    /// Sets, or clears, the latency and loss of every link.
    fn set_network(&self, fault: Option<LinkFault>);

    /// Moves a node's clock by `ms` (back when negative).
    fn shift_clock(&self, node: &str, ms: i64);

    /// Bytes a node has written and not synced; `None` for a node with no
    /// disk of the cluster's.
    fn unsynced_bytes(&self, node: &str) -> Option<u64>;

    /// Turns a fault of a node's disk on or off; false for a node with no
    /// disk of the cluster's.
    fn disk_fault(&self, node: &str, fault: DiskFaultKind, on: bool) -> bool;

    /// Flips one bit of a node's commit log; `None` for a node with no disk
    /// of the cluster's, `Some(None)` when it has no commit log yet.
    fn flip_bit(&self, node: &str) -> Option<Option<FlippedBit>>;

    /// Arms a consumer to crash at `step` of its next delivery.
    fn arm_crash(&self, node: &str, step: CrashStep);

    /// Disarms a consumer's crash; true when it struck (the consumer is
    /// down and wants a restart).
    fn disarm_crash(&self, node: &str) -> bool;
}
