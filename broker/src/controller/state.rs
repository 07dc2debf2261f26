//! What the controllers agree on: per broker group, its replicas, the
//! master of the current term (epoch) and the sync-state set. Changed only
//! by [`Command`]s applied in Raft log order, so every controller holds the
//! same state; each command re-checks its preconditions when applied, so a
//! decision taken on a stale view (an election proposed twice, a set change
//! from a deposed master) is refused rather than applied.

use crate::bugs::{self, Bug};
use crate::command::ReplicaInfo;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One broker group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Replica id -> address.
    pub replicas: BTreeMap<u64, String>,
    /// The master of the current term.
    pub master: Option<u64>,
    /// The current term (0: never had a master).
    pub epoch: u64,
    /// Replicas that hold every acknowledged write; only these may be
    /// elected.
    pub sync_state_set: BTreeSet<u64>,
    /// Changes of the set so far.
    pub sync_state_set_epoch: u64,
}

impl Group {
    /// Who may be elected: any replica for a group's first master; after
    /// that only a member of the sync-state set, which holds every
    /// acknowledged write.
    pub fn eligible(&self) -> BTreeSet<u64> {
        if self.epoch == 0 || bugs::active(Bug::ElectOutOfSync) {
            // (The planted defect: any replica, in sync or not.)
            self.replicas.keys().copied().collect()
        } else {
            self.sync_state_set.clone()
        }
    }
}

/// A change the controllers agree on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A replica registered (new, or at a new address).
    Register {
        /// The group.
        group: String,
        /// The replica.
        id: u64,
        /// Its address.
        addr: String,
    },
    /// Make `master` the master of a new term, if the group is still in
    /// term `epoch` (so an election proposed twice happens once).
    Elect {
        /// The group.
        group: String,
        /// The term the election ends.
        epoch: u64,
        /// The replica elected.
        master: u64,
    },
    /// The master of term `master_epoch` replaces the sync-state set of
    /// epoch `set_epoch` with `set`.
    AlterSyncStateSet {
        /// The group.
        group: String,
        /// The master asking.
        master: u64,
        /// Its term.
        master_epoch: u64,
        /// The epoch of the set it changes.
        set_epoch: u64,
        /// The new set.
        set: BTreeSet<u64>,
    },
}

/// What applying a command did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Why it was refused, if it was.
    pub refused: Option<String>,
    /// The group after the command.
    pub info: Option<ReplicaInfo>,
}

/// Every group, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerState {
    /// The groups.
    pub groups: BTreeMap<String, Group>,
}

impl ControllerState {
    /// Applies one command.
    pub fn apply(&mut self, command: &Command) -> Outcome {
        let refused = match command {
            Command::Register { group, id, addr } => {
                self.groups.entry(group.clone()).or_default().replicas.insert(*id, addr.clone());
                None
            }
            Command::Elect { group, epoch, master } => self.elect(group, *epoch, *master),
            Command::AlterSyncStateSet { group, master, master_epoch, set_epoch, set } => {
                self.alter(group, *master, *master_epoch, *set_epoch, set)
            }
        };
        let group = match command {
            Command::Register { group, .. } | Command::Elect { group, .. } | Command::AlterSyncStateSet { group, .. } => group,
        };
        Outcome { refused, info: self.info(group) }
    }

    fn elect(&mut self, name: &str, epoch: u64, master: u64) -> Option<String> {
        let Some(group) = self.groups.get_mut(name) else { return Some(format!("no group {name}")) };
        if group.epoch != epoch {
            return Some(format!("{name} is in term {}, not {epoch}: the election was already held", group.epoch));
        }
        if !group.replicas.contains_key(&master) {
            return Some(format!("{name} has no replica {master}"));
        }
        if !group.eligible().contains(&master) {
            return Some(format!("replica {master} of {name} is not in the sync-state set {:?}", group.sync_state_set));
        }
        group.master = Some(master);
        group.epoch += 1;
        group.sync_state_set = BTreeSet::from([master]);
        group.sync_state_set_epoch += 1;
        None
    }

    fn alter(&mut self, name: &str, master: u64, master_epoch: u64, set_epoch: u64, set: &BTreeSet<u64>) -> Option<String> {
        let Some(group) = self.groups.get_mut(name) else { return Some(format!("no group {name}")) };
        if group.master != Some(master) || group.epoch != master_epoch {
            return Some(format!(
                "replica {master} of term {master_epoch} is not the master of {name} (term {}, master {:?})",
                group.epoch, group.master
            ));
        }
        if group.sync_state_set_epoch != set_epoch {
            return Some(format!("{name}'s sync-state set is at epoch {}, not {set_epoch}", group.sync_state_set_epoch));
        }
        if !set.contains(&master) {
            return Some(format!("a sync-state set must hold its master {master}"));
        }
        if let Some(unknown) = set.iter().find(|id| !group.replicas.contains_key(id)) {
            return Some(format!("{name} has no replica {unknown}"));
        }
        group.sync_state_set = set.clone();
        group.sync_state_set_epoch += 1;
        None
    }

    /// A group as the protocol shows it.
    pub fn info(&self, name: &str) -> Option<ReplicaInfo> {
        let group = self.groups.get(name)?;
        Some(ReplicaInfo {
            broker_name: name.to_string(),
            replicas: group.replicas.iter().map(|(id, addr)| (*id, addr.clone())).collect(),
            master_id: group.master,
            master_addr: group.master.and_then(|m| group.replicas.get(&m).cloned()),
            master_epoch: group.epoch,
            sync_state_set: group.sync_state_set.iter().copied().collect(),
            sync_state_set_epoch: group.sync_state_set_epoch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(state: &mut ControllerState, id: u64) {
        let out = state.apply(&Command::Register { group: "g".into(), id, addr: format!("10.0.0.{id}:10911") });
        assert_eq!(out.refused, None);
    }

    #[test]
    fn the_first_master_is_any_replica_then_only_the_sync_state_set_is_eligible() {
        let mut state = ControllerState::default();
        register(&mut state, 0);
        register(&mut state, 1);
        register(&mut state, 2);
        let out = state.apply(&Command::Elect { group: "g".into(), epoch: 0, master: 1 });
        let info = out.info.unwrap();
        assert_eq!((info.master_id, info.master_epoch, info.sync_state_set.clone()), (Some(1), 1, vec![1]));
        assert_eq!(info.master_addr.as_deref(), Some("10.0.0.1:10911"));
        // The same election proposed again is refused: the term moved on.
        assert!(state.apply(&Command::Elect { group: "g".into(), epoch: 0, master: 2 }).refused.unwrap().contains("already held"));
        // Replica 2 is not in sync: it cannot be elected.
        assert!(state.apply(&Command::Elect { group: "g".into(), epoch: 1, master: 2 }).refused.unwrap().contains("not in the sync-state set"));
        let out = state.apply(&Command::AlterSyncStateSet {
            group: "g".into(),
            master: 1,
            master_epoch: 1,
            set_epoch: 1,
            set: BTreeSet::from([1, 2]),
        });
        assert_eq!(out.refused, None);
        assert_eq!(out.info.unwrap().sync_state_set_epoch, 2);
        let out = state.apply(&Command::Elect { group: "g".into(), epoch: 1, master: 2 });
        assert_eq!(out.refused, None);
        let info = out.info.unwrap();
        assert_eq!((info.master_id, info.master_epoch, info.sync_state_set), (Some(2), 2, vec![2]));
    }

    #[test]
    fn a_deposed_master_and_a_stale_set_are_fenced() {
        let mut state = ControllerState::default();
        register(&mut state, 0);
        register(&mut state, 1);
        state.apply(&Command::Elect { group: "g".into(), epoch: 0, master: 0 });
        let grow = |master, master_epoch, set_epoch, set: &[u64]| Command::AlterSyncStateSet {
            group: "g".into(),
            master,
            master_epoch,
            set_epoch,
            set: set.iter().copied().collect(),
        };
        assert_eq!(state.apply(&grow(0, 1, 1, &[0, 1])).refused, None);
        state.apply(&Command::Elect { group: "g".into(), epoch: 1, master: 1 });
        // The old master, still in term 1, tries to shrink the set to itself.
        let refused = state.apply(&grow(0, 1, 3, &[0])).refused.unwrap();
        assert!(refused.contains("not the master"), "{refused}");
        // The new master with a stale set epoch.
        assert!(state.apply(&grow(1, 2, 2, &[0, 1])).refused.unwrap().contains("epoch"));
        // A set without its master, or with an unknown replica.
        assert!(state.apply(&grow(1, 2, 3, &[0])).refused.unwrap().contains("must hold"));
        assert!(state.apply(&grow(1, 2, 3, &[1, 7])).refused.unwrap().contains("no replica 7"));
        assert_eq!(state.apply(&grow(1, 2, 3, &[0, 1])).refused, None);
    }
}
