//! Controller mode: the broker heartbeats the controllers every second and
//! does what their answer says. Named master of a newer term, it takes
//! over: it records the term's start in its epoch file (durably, before it
//! takes a write), reads the progress files its master handed it, and
//! registers as master. Told another replica is master, it follows it: the
//! slave loop cuts its log back to where the two agree and copies on. As
//! master it keeps the sync-state set: a slave that has not caught up for
//! `haMaxTimeSlaveNotCatchup` leaves it, one that has caught up joins it,
//! each change confirmed by the controller, which refuses a master of an
//! old term (a deposed master can then no longer acknowledge alone).

use super::{load_services, Broker};
use crate::bugs::{self, Bug};
use crate::marks::{self, Mark};
use crate::command::{AlterSyncStateSet, ControllerHeartbeat, Refused, ReplicaInfo};
use std::collections::BTreeSet;
use std::time::Duration;

impl Broker {
    /// The heartbeat loop, and beside it the master's round over its
    /// sync-state set (so a controller that does not answer holds up
    /// neither).
    pub(super) async fn run_controller_mode(self: std::sync::Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(me.config.controller_heartbeat_ms.max(1))).await;
                if !me.is_slave() {
                    me.manage_sync_state_set().await;
                }
            }
        });
        loop {
            self.controller_round().await;
            tokio::time::sleep(Duration::from_millis(self.config.controller_heartbeat_ms.max(1))).await;
        }
    }

    async fn controller_round(&self) {
        let Some(controller) = &self.controller else { return };
        let (epoch, serving) = {
            let role = self.role.lock().expect("role");
            (role.epoch, role.master)
        };
        let max_offset = self.store.lock().expect("store").write_offset();
        let last_term = self.epochs.lock().expect("epochs").last_term();
        let heartbeat = ControllerHeartbeat {
            broker_name: self.config.broker_name.clone(),
            broker_id: self.config.broker_id,
            addr: self.config.advertise_addr.clone(),
            epoch,
            max_offset,
            serving,
            last_term,
        };
        match controller.call(heartbeat).await {
            Ok(info) => self.follow(info).await,
            Err(crate::Error::Refused(refused)) => tracing::debug!(kind = ?refused.kind, remark = %refused.reason, "controller heartbeat refused"),
            Err(e) => tracing::debug!(error = %e, "no controller answered the heartbeat"),
        }
    }

    /// Does what the controller's view of the group says.
    async fn follow(&self, info: ReplicaInfo) {
        let me = self.config.broker_id;
        let Some(master) = info.master_id else { return };
        let current = self.role.lock().expect("role").clone();
        if master == me {
            let recorded = self.epochs.lock().expect("epochs").last_term();
            if !current.master && recorded >= info.master_epoch && !bugs::active(Bug::ResumeAfterRestart) {
                // Master of this term before a restart: the tail it
                // acknowledged may be gone (a power loss takes unsynced
                // bytes) while its slaves hold it. Resuming would write
                // different bytes at the same offsets of the same term; the
                // controller elects again instead (the replica whose log
                // reaches furthest, once every in-sync one is heard from).
                tracing::info!(epoch = info.master_epoch, "restarted as master of this term: waiting for a new election");
                return;
            }
            if !current.master || current.epoch < info.master_epoch {
                self.become_master(&info).await;
            } else if info.sync_state_set_epoch > current.sync_state_set_epoch {
                self.role.lock().expect("role").confirmed(info.sync_state_set.iter().copied().collect(), info.sync_state_set_epoch);
            }
        } else if info.master_epoch >= current.epoch
            && (current.master || current.epoch < info.master_epoch || current.master_addr != info.master_addr)
        {
            self.become_slave(&info).await;
        }
    }

    /// Takes over as master of term `info.master_epoch`.
    async fn become_master(&self, info: &ReplicaInfo) {
        let was_slave = self.is_slave();
        // Under the store lock from reading the log's end to taking the
        // role, so the slave loop cannot cut the log in between.
        // The POP state is rebuilt from the log before the role is taken,
        // under the POP lock a receive takes first, so no receive of the
        // new term sees a table of an earlier one.
        let (end, loaded) = {
            let mut pops = self.pops.lock().expect("pops");
            let mut store = self.store.lock().expect("store");
            let end = store.write_offset();
            {
                let mut epochs = self.epochs.lock().expect("epochs");
                let mut next = epochs.clone();
                next.begin(info.master_epoch, end);
                // Durable before the first write of the term.
                if let Err(e) = self.persist_epochs(&next) {
                    tracing::warn!(error = %e, "the new term could not be recorded; not taking over yet");
                    return;
                }
                *epochs = next;
            }
            // Delays, timers and check-backs resume from the progress the
            // old master handed over (or this broker's own).
            let loaded = was_slave.then(|| load_services(&mut store, self.disk.as_ref()));
            if was_slave {
                match super::pop::PopTable::rebuild(&mut store, &self.offsets.lock().expect("offsets"), super::pop::snapshot::load(self.disk.as_ref())) {
                    Ok(table) => *pops = table,
                    Err(e) => tracing::warn!(error = %e, "the POP log could not be read back at take-over"),
                }
            }
            store.set_follower(false);
            let mut role = self.role.lock().expect("role");
            role.master = true;
            role.epoch = info.master_epoch;
            role.master_addr = None;
            role.sync_state_set = info.sync_state_set.iter().copied().collect();
            role.sync_state_set_epoch = info.sync_state_set_epoch;
            role.joining.clear();
            role.asked = None;
            (end, loaded)
        };
        if let Some(loaded) = loaded {
            match loaded {
                Ok((schedule, timers, transactions)) => {
                    *self.schedule.lock().expect("schedule") = schedule;
                    *self.timers.lock().expect("timers") = timers;
                    *self.transactions.lock().expect("transactions") = transactions;
                }
                Err(e) => tracing::warn!(error = %e, "progress files unreadable; services start from the log alone"),
            }
            self.slaves.lock().expect("slaves").clear();
            marks::reach(Mark::MasterElected);
        }
        tracing::warn!(broker = %self.config.broker_name, id = self.config.broker_id, epoch = info.master_epoch, start = end, "took over as master");
        marks::note(&self.replica_name(), &format!("master epoch={} start={end}", info.master_epoch));
        self.role_changed.send_modify(|n| *n += 1);
        self.timer_wake.notify_one();
        let _ = self.register_all().await;
    }

    /// Follows `info`'s master (a deposed master stops taking writes now).
    async fn become_slave(&self, info: &ReplicaInfo) {
        // What this broker showed consumers as master is confirmed (the new
        // master holds it); past it, its log may be cut.
        let confirmed = {
            let mut store = self.store.lock().expect("store");
            store.set_follower(true);
            self.visible_end(&store)
        };
        {
            let mut role = self.role.lock().expect("role");
            role.confirm_offset = confirmed;
            if role.master {
                tracing::warn!(broker = %self.config.broker_name, id = self.config.broker_id, epoch = role.epoch, new_epoch = info.master_epoch, "deposed: following the new master");
            }
            role.master = false;
            role.epoch = info.master_epoch;
            role.master_addr = info.master_addr.clone();
            role.sync_state_set.clear();
            role.joining.clear();
            role.asked = None;
        }
        self.slaves.lock().expect("slaves").clear();
        self.role_changed.send_modify(|n| *n += 1);
        marks::note(
            &self.replica_name(),
            &format!("slave of {} epoch={}", info.master_addr.as_deref().unwrap_or("?"), info.master_epoch),
        );
        let _ = self.register_all().await;
    }

    /// `<broker name>/<broker id>`, as role notes name a replica.
    pub(super) fn replica_name(&self) -> String {
        format!("{}/{}", self.config.broker_name, self.config.broker_id)
    }

    /// A master's round over its sync-state set: drops members that have
    /// not caught up for too long, admits slaves that have, and asks the
    /// controller to confirm. A slave about to join is waited for by writes
    /// from the moment it is chosen, and joins once it holds everything
    /// written before that moment, so no acknowledged write is missing
    /// from a member.
    async fn manage_sync_state_set(&self) {
        let Some(controller) = &self.controller else { return };
        let me = self.config.broker_id;
        let now = self.clock.instant();
        let lag = Duration::from_millis(self.config.ha_max_time_slave_not_catchup_ms);
        let end = self.store.lock().expect("store").write_offset();
        let slaves: Vec<_> = self.slaves.lock().expect("slaves").all().collect();
        let caught_up = |id: u64| {
            slaves.iter().find(|(s, _)| *s == id).and_then(|(_, s)| s.caught_up).is_some_and(|at| now.saturating_duration_since(at) < lag)
        };
        let (proposal, set_epoch, epoch) = {
            let mut role = self.role.lock().expect("role");
            if !role.master {
                return;
            }
            // Slaves that caught up start to be waited for now, with the
            // end they must reach before they join.
            for (id, _) in &slaves {
                if *id != me && !role.sync_state_set.contains(id) && caught_up(*id) {
                    role.joining.entry(*id).or_insert(end);
                }
            }
            // One that falls behind before it was asked for is let go; one
            // already asked for stays waited for until an answer is known.
            let asked = role.asked.as_ref().map(|(_, set)| set.clone()).unwrap_or_default();
            role.joining.retain(|id, _| caught_up(*id) || asked.contains(id));
            let ready: BTreeSet<u64> = role
                .joining
                .iter()
                .filter(|(id, target)| slaves.iter().any(|(s, st)| s == *id && st.durable >= **target))
                .map(|(id, _)| *id)
                .collect();
            let mut proposal: BTreeSet<u64> = role.sync_state_set.iter().copied().filter(|id| *id == me || caught_up(*id)).collect();
            proposal.insert(me);
            proposal.extend(ready);
            if proposal == role.sync_state_set {
                return;
            }
            role.asked = Some((role.sync_state_set_epoch, proposal.clone()));
            (proposal, role.sync_state_set_epoch, role.epoch)
        };
        let alter = AlterSyncStateSet {
            broker_name: self.config.broker_name.clone(),
            master_id: me,
            master_epoch: epoch,
            sync_state_set_epoch: set_epoch,
            sync_state_set: proposal.iter().copied().collect(),
        };
        match controller.call(alter).await {
            Ok(info) => {
                let mut role = self.role.lock().expect("role");
                if role.master && role.epoch == info.master_epoch {
                    tracing::info!(broker = %self.config.broker_name, from = ?role.sync_state_set, to = ?info.sync_state_set, "sync-state set changed");
                    role.confirmed(info.sync_state_set.iter().copied().collect(), info.sync_state_set_epoch);
                    marks::note(&self.replica_name(), &format!("sync-state-set {:?} set-epoch={}", info.sync_state_set, info.sync_state_set_epoch));
                }
            }
            Err(crate::Error::Refused(refused)) if refused.kind == Refused::ControllerFenced => {
                // Refused, so not applied: the request no longer counts.
                tracing::info!(remark = %refused.reason, "sync-state set change refused");
                let mut role = self.role.lock().expect("role");
                if role.asked.as_ref().is_some_and(|(asked_epoch, _)| *asked_epoch == set_epoch) {
                    role.asked = None;
                }
            }
            unconfirmed => {
                tracing::debug!(?unconfirmed, "sync-state set change not confirmed");
                if bugs::active(Bug::NoFencing) {
                    // The planted defect: without the controller's word the
                    // master shrinks its set itself and acknowledges alone.
                    let mut role = self.role.lock().expect("role");
                    if role.master {
                        role.sync_state_set = proposal;
                        role.asked = None;
                        role.joining.clear();
                    }
                }
            }
        }
    }
}
