//! The controllers: Raft among themselves, heartbeats and elections for the
//! broker groups.

use serde::{Deserialize, Serialize};

/// Controller -> controller: one of openraft's messages, as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Raft {
    /// Which message.
    pub rpc: RaftRpc,
    /// openraft's request, JSON encoded.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// openraft's messages between controllers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftRpc {
    /// Log replication and leader heartbeats.
    AppendEntries,
    /// A candidate asking for a vote.
    Vote,
    /// A snapshot chunk.
    InstallSnapshot,
}

/// Broker -> controller, every second: this replica is alive, in this
/// master term, with its log this long. Answered with its group's replica
/// info; the controller leader elects a new master when the master's
/// heartbeats stop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerHeartbeat {
    /// The broker group.
    pub broker_name: String,
    /// This replica's id in the group.
    pub broker_id: u64,
    /// Where it serves clients.
    pub addr: String,
    /// The latest master term it knows of.
    pub epoch: u64,
    /// Where its commit log ends.
    pub max_offset: u64,
    /// Whether it takes writes now.
    pub serving: bool,
    /// The last term its epoch file records (0: none). A replica named
    /// master of a term it already recorded, and not serving, is a master
    /// that restarted: it may have lost an unsynced tail, so it does not
    /// resume the term and the controller elects again.
    pub last_term: u64,
}

/// Anyone -> controller: a group's master, epoch and sync-state set, as
/// the controller leader knows them once it has confirmed it leads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetReplicaInfo {
    /// The broker group.
    pub broker_name: String,
}

/// Master -> controller: replace the group's sync-state set. Refused
/// unless the sender is the master of the current term and names the
/// set's current epoch (a deposed master is fenced here).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterSyncStateSet {
    /// The broker group.
    pub broker_name: String,
    /// The master asking.
    pub master_id: u64,
    /// The term it believes it masters.
    pub master_epoch: u64,
    /// The epoch of the set it is changing.
    pub sync_state_set_epoch: u64,
    /// The new set (it must hold the master).
    pub sync_state_set: Vec<u64>,
}

/// A broker group as the controller knows it: its replicas, the master of
/// the current term and the sync-state set (the replicas that hold every
/// acknowledged write, and the only ones that may be elected).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaInfo {
    /// The broker group.
    pub broker_name: String,
    /// Replica id -> address, as each last registered.
    pub replicas: Vec<(u64, String)>,
    /// The master of the current term, if the group has one.
    pub master_id: Option<u64>,
    /// Its address.
    pub master_addr: Option<String>,
    /// The current master term (0 before the first election).
    pub master_epoch: u64,
    /// Replicas in sync with the master.
    pub sync_state_set: Vec<u64>,
    /// Changes of the set so far (a master names it to change the set).
    pub sync_state_set_epoch: u64,
}

/// What `GetControllerState` answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerView {
    /// The controller answering.
    pub controller_id: u64,
    /// The leader it knows of.
    pub leader_id: Option<u64>,
    /// Its Raft term.
    pub term: u64,
    /// Its last applied log index.
    pub applied_index: Option<u64>,
    /// Every group, by name.
    pub groups: Vec<ReplicaInfo>,
}

/// Anyone -> controller: every group's replica info and the Raft state of
/// the controller asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetControllerState;
