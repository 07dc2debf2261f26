//! Master/slave replication (RocketMQ's HA service).
//!
//! A slave pulls its master's commit log from its own end, over its own
//! connection, and appends the bytes at the same offsets (its consume
//! queues and index are built from them as a local put would), then makes
//! them durable and says so in its next pull. A SYNC_MASTER acknowledges a
//! send only once a slave holds it durably (FLUSH_SLAVE_TIMEOUT after
//! `slaveTimeout`; SLAVE_NOT_AVAILABLE when no slave has pulled lately); an
//! ASYNC_MASTER does not wait. A slave refuses writes and serves reads.

use super::{Broker, Epochs, ReplicationRole};
use crate::bugs::{self, Bug};
use crate::marks::{self, Mark};
use crate::model::{is_broker_own_topic, TopicConfig};
use crate::Error;
use crate::command::{BrokerRole, EpochList, GetClusterInfo, GetEpochs, GetReplicaConfig, Outcome, Refusal, Refused, ReplicaChunk, ReplicaConfig, ReplicaPull, SendStatus};
use crate::store::disk::read_all;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::time::Instant;

/// Bytes a slave asks for at once.
const CHUNK_BYTES: u32 = 1024 * 1024;

/// How long a master holds a slave's pull when it has nothing new.
const PULL_WAIT_MS: u64 = 1_000;

/// A slave that has not pulled for this long is not available for sync
/// replication.
pub(super) const SLAVE_SILENT_MS: u64 = 10_000;

/// How soon a slave tries again after a failed pull.
const RETRY_MS: u64 = 500;

/// How often a slave copies its master's topics and consumer offsets
/// (RocketMQ's slave synchronisation runs every 10 s).
const CONFIG_SYNC_MS: u64 = 1_000;

/// What a master knows of one slave.
#[derive(Clone, Copy, Debug)]
pub struct SlaveState {
    /// How far it holds the log durably.
    pub durable: u64,
    /// When it last pulled.
    pub seen: Instant,
    /// The master's log end when it answered the slave's previous pull.
    pub master_end: u64,
    /// When the slave last held everything the master had written by its
    /// previous pull (RocketMQ's `lastCatchupTimeMs`).
    pub caught_up: Option<Instant>,
}

/// What a master knows of its slaves.
#[derive(Debug, Default)]
pub struct Slaves {
    /// Slave id -> what it said last.
    slaves: BTreeMap<u64, SlaveState>,
}

impl Slaves {
    /// A pull from slave `id`, which holds the log durably up to `durable`,
    /// answered while the master's log ends at `master_end`.
    pub fn pulled(&mut self, id: u64, durable: u64, master_end: u64, now: Instant) {
        let entry = self.slaves.entry(id).or_insert(SlaveState { durable, seen: now, master_end, caught_up: None });
        if durable >= entry.master_end {
            entry.caught_up = Some(now);
        }
        *entry = SlaveState { durable, seen: now, master_end, caught_up: entry.caught_up };
    }

    /// The furthest durable offset of the slaves heard from within
    /// `silent`, or `None` when none was.
    pub fn acked(&self, now: Instant, silent: Duration) -> Option<u64> {
        self.slaves.values().filter(|s| now.saturating_duration_since(s.seen) < silent).map(|s| s.durable).max()
    }

    /// What slave `id` said last.
    pub fn get(&self, id: u64) -> Option<SlaveState> {
        self.slaves.get(&id).copied()
    }

    /// Every slave heard from.
    pub fn all(&self) -> impl Iterator<Item = (u64, SlaveState)> + '_ {
        self.slaves.iter().map(|(id, s)| (*id, *s))
    }

    /// Forgets every slave (the broker stopped being master).
    pub fn clear(&mut self) {
        self.slaves.clear();
    }
}

/// Master or slave, now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleState {
    /// Whether this broker takes writes.
    pub master: bool,
    /// The master term it serves in (a master) or follows (a slave); 0
    /// without a controller.
    pub epoch: u64,
    /// A slave's master, when it knows it (else the name servers say).
    pub master_addr: Option<String>,
    /// Controller mode, a master: the sync-state set as the controller
    /// last confirmed it (every member must hold a write before a
    /// SYNC_MASTER acknowledges it).
    pub sync_state_set: BTreeSet<u64>,
    /// Its epoch at the controller.
    pub sync_state_set_epoch: u64,
    /// Controller mode, a master: slaves about to join the set, with the
    /// log end they must reach first. Writes already wait for them.
    pub joining: BTreeMap<u64, u64>,
    /// Controller mode, a master: the set it last asked the controller for
    /// and the set epoch it named, while the answer is unknown (the
    /// request may still be applied). Writes wait for its members too,
    /// until a set of a later epoch is known.
    pub asked: Option<(u64, BTreeSet<u64>)>,
    /// Controller mode, a slave: how far its log is known confirmed (its
    /// master's confirm offset as last heard, or, deposed, its own when it
    /// stepped down). Consumers reading from it see no further: past it the
    /// log may be a tail the new master never had, which the slave cuts
    /// once it joins the new master (the HA swarm caught a deposed master
    /// serving such a tail; its consumers' offsets then skipped the new
    /// master's messages at the same queue offsets).
    pub confirm_offset: u64,
}

impl RoleState {
    /// Whom a SYNC master's writes wait for: every member of the set the
    /// controller may hold now (the confirmed one, one asked for without
    /// an answer) and every slave about to join, so the set the controller
    /// elects from never lacks an acknowledged write.
    pub fn waited_for(&self) -> BTreeSet<u64> {
        let mut all = self.sync_state_set.clone();
        all.extend(self.joining.keys());
        if let Some((_, asked)) = &self.asked {
            all.extend(asked);
        }
        all
    }

    /// A set of epoch `set_epoch` is confirmed: it replaces the set, and an
    /// unanswered request of an earlier epoch can no longer apply.
    pub fn confirmed(&mut self, set: BTreeSet<u64>, set_epoch: u64) {
        if set_epoch < self.sync_state_set_epoch {
            return;
        }
        self.sync_state_set = set;
        self.sync_state_set_epoch = set_epoch;
        if self.asked.as_ref().is_some_and(|(asked_epoch, _)| *asked_epoch < set_epoch) {
            self.asked = None;
        }
        let members = self.sync_state_set.clone();
        self.joining.retain(|id, _| !members.contains(id));
    }
}

impl RoleState {
    /// The role a broker starts in: as configured without a controller; a
    /// slave that knows no master yet with one (the controller decides).
    pub fn at_start(config: &super::BrokerConfig) -> RoleState {
        if config.controller_addrs.is_empty() {
            RoleState { master: config.role != ReplicationRole::Slave, master_addr: config.ha_master_addr.clone(), ..RoleState::default() }
        } else {
            RoleState::default()
        }
    }
}

/// Paths of the progress files a master hands its slaves.
const PROGRESS_FILES: [&str; 3] = [super::DELAY_PATH, super::timer::TIMER_PATH, super::transaction::CHECKS_PATH];

impl Broker {
    /// Whether this broker is a slave (now).
    pub(super) fn is_slave(&self) -> bool {
        !self.role.lock().expect("role").master
    }

    /// The role this broker registers with.
    pub(super) fn broker_role(&self) -> BrokerRole {
        if self.is_slave() {
            BrokerRole::Slave
        } else {
            BrokerRole::Master
        }
    }

    /// The refusal of a write on a slave.
    pub(super) fn refuse_on_slave(&self, what: &str) -> Outcome<()> {
        if !self.is_slave() {
            return Ok(());
        }
        Err(Refusal::new(
            Refused::NotMaster,
            format!("{}/{} is a slave: {what} goes to the master of {}", self.config.broker_name, self.config.broker_id, self.config.broker_name),
        ))
    }

    /// The terms of this broker's log as the protocol carries them.
    fn epoch_list(&self) -> Vec<(u64, u64)> {
        self.epochs.lock().expect("epochs").entries.iter().map(|e| (e.epoch, e.start)).collect()
    }

    /// A slave asks for this master's terms before it copies.
    pub fn get_epochs(&self, command: GetEpochs) -> Outcome<EpochList> {
        self.master_of(&command.broker_name)?;
        let end = self.store.lock().expect("store").write_offset();
        Ok(EpochList { terms: self.epoch_list(), end })
    }

    fn master_of(&self, broker_name: &str) -> Outcome<()> {
        if self.is_slave() || broker_name != self.config.broker_name {
            return Err(Refusal::new(Refused::NoPermission, format!("this is not the master of {broker_name}")));
        }
        Ok(())
    }

    /// A slave's pull: records how far it holds the log, then answers with
    /// the log from its end, holding the pull up to `wait_ms` when there is
    /// nothing new.
    pub async fn replica_pull(&self, command: ReplicaPull) -> Outcome<ReplicaChunk> {
        let ReplicaPull { broker_name, broker_id, epoch, from_offset: from, durable_offset: durable, max_bytes: max, wait_ms } = command;
        if self.is_slave() {
            return Err(Refusal::new(Refused::NotSupported, "a slave does not serve replicas"));
        }
        let my_epoch = self.role.lock().expect("role").epoch;
        if epoch != my_epoch {
            // A replica of another term: what it holds is not this log
            // (one elected master meanwhile holds its own writes), so its
            // offsets must not count as copies of this master's.
            return Err(Refusal::new(
                Refused::NoPermission,
                format!("this master serves term {my_epoch}; a replica of term {epoch} must follow its own master"),
            ));
        }
        if broker_name != self.config.broker_name {
            return Err(Refusal::new(Refused::NoPermission, format!("this is the master of {}, not of {broker_name}", self.config.broker_name)));
        }
        {
            let end = self.store.lock().expect("store").write_offset();
            let mut slaves = self.slaves.lock().expect("slaves");
            slaves.pulled(broker_id, durable, end, self.clock.instant());
            let acked = slaves.acked(self.clock.instant(), Duration::from_millis(SLAVE_SILENT_MS)).unwrap_or(0);
            self.replicated.send_if_modified(|a| std::mem::replace(a, acked) != acked);
        }
        let mut written = self.written.subscribe();
        let deadline = self.clock.instant() + Duration::from_millis(wait_ms.min(self.config.long_polling_max_ms));
        loop {
            let read = {
                let store = self.store.lock().expect("store");
                let end = store.write_offset();
                if from > end {
                    return Err(Refusal::new(
                        Refused::System,
                        format!("the slave's log ends at {from}, past this master's end {end}: it must be cut back first"),
                    ));
                }
                let confirmed = self.visible_end(&store);
                store.replica_chunk(from, max.clamp(1, CHUNK_BYTES) as usize).map(|bytes| (bytes, end, confirmed))
            };
            match read? {
                (bytes, master_end, confirmed) if !bytes.is_empty() || self.clock.instant() >= deadline => {
                    let epochs = self.epoch_list();
                    return Ok(ReplicaChunk { offset: from, bytes, master_end, epochs, confirmed });
                }
                _ => {
                    let left = deadline.saturating_duration_since(self.clock.instant());
                    let _ = tokio::time::timeout(left, written.changed()).await;
                }
            }
        }
    }

    /// What a slave copies besides the log: topics, consumer offsets, and
    /// the progress files (durable as far as the log is flushed now).
    pub fn replica_config(&self, command: GetReplicaConfig) -> Outcome<ReplicaConfig> {
        self.master_of(&command.broker_name)?;
        let topics = self.topics.lock().expect("topics").values().cloned().collect();
        let (offsets, generations) = {
            let table = self.offsets.lock().expect("offsets");
            (table.entries(), table.generations())
        };
        let progress_end = self.store.lock().expect("store").flushed_offset();
        let mut progress = Vec::new();
        for path in PROGRESS_FILES {
            match read_all(self.disk.as_ref(), path) {
                Ok(Some(bytes)) => progress.push((path.to_string(), bytes)),
                Ok(None) => {}
                Err(e) => return Err(Refusal::new(Refused::System, format!("{path}: {e}"))),
            }
        }
        let subscription_groups = self.subscription_groups.lock().expect("subscription groups").values().cloned().collect();
        Ok(ReplicaConfig { topics, offsets, progress, progress_end, generations, subscription_groups })
    }

    /// A slave takes its master's topics (registering again when they
    /// changed) and consumer offsets (never past its own queue ends), and
    /// keeps its progress files to write once its own log holds what they
    /// count as delivered.
    async fn copy_config(&self, master: &str) {
        let ask = GetReplicaConfig { broker_name: self.config.broker_name.clone() };
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        let Ok(config) = self.pool.call(master, ask, timeout).await else {
            return;
        };
        let groups: BTreeMap<String, crate::model::SubscriptionGroup> = if bugs::active(Bug::SubGroupsNotCopied) {
            // The planted defect: the master's groups are not taken.
            self.subscription_groups.lock().expect("subscription groups").clone()
        } else {
            config.subscription_groups.into_iter().map(|g| (g.group_name.clone(), g)).collect()
        };
        let groups_changed = {
            let mut mine = self.subscription_groups.lock().expect("subscription groups");
            let changed = *mine != groups;
            if changed {
                *mine = groups;
            }
            changed
        };
        if groups_changed {
            if let Err(e) = self.persist_subscription_groups() {
                tracing::warn!(error = %e, "persisting the master's subscription groups failed");
            }
        }
        let topics: BTreeMap<String, TopicConfig> = config.topics.into_iter().map(|t| (t.name.clone(), t)).collect();
        let changed = {
            let mut mine = self.topics.lock().expect("topics");
            let changed = *mine != topics;
            if changed {
                *mine = topics;
            }
            changed
        };
        if changed {
            if let Err(e) = self.persist_topics() {
                tracing::warn!(error = %e, "persisting the master's topics failed");
            }
            let _ = self.register_all().await;
        }
        {
            let store = self.store.lock().expect("store");
            let mut offsets = self.offsets.lock().expect("offsets");
            for (group, topic, queue_id, offset) in config.offsets {
                let end = store.queue_offsets(&topic, queue_id).1;
                if offsets.get(&group, &topic, queue_id) != Some(offset.min(end)) {
                    offsets.commit(&group, &topic, queue_id, offset.min(end));
                }
            }
            for (group, topic, queue_id, generation) in config.generations {
                if offsets.generation(&group, &topic, queue_id) != generation {
                    offsets.set_generation(&group, &topic, queue_id, generation);
                }
            }
        }
        *self.pending_progress.lock().expect("progress") = Some((config.progress_end, config.progress));
        self.write_progress_if_held();
    }

    /// Writes the master's progress files once this slave durably holds
    /// the log they were durable with: a delivery they count as done has
    /// its copy here, so a slave that takes over neither loses it nor
    /// delivers everything again.
    fn write_progress_if_held(&self) {
        let _order = self.persisting.lock().expect("persisting");
        let durable = self.store.lock().expect("store").flushed_offset();
        let mut pending = self.pending_progress.lock().expect("progress");
        if pending.as_ref().is_none_or(|(end, _)| durable < *end) {
            return;
        }
        let (_, files) = pending.take().expect("checked");
        for (path, bytes) in files {
            if !PROGRESS_FILES.contains(&path.as_str()) {
                continue;
            }
            let same = read_all(self.disk.as_ref(), &path).ok().flatten().is_some_and(|mine| mine == bytes);
            if !same {
                if let Err(e) = self.disk.write_atomic(&path, &bytes) {
                    tracing::warn!(path, error = %e, "copying the master's progress failed");
                }
            }
        }
    }

    /// Cuts this broker's log back to `offset` (a replica whose log parted
    /// from its new master's there): the store cuts its commit log, consume
    /// queues and index; consumer offsets past the new queue ends move back
    /// to them (Apache RocketMQ #4771 left them beyond a truncated log, and
    /// the group skipped what was written there next); delay, timer and
    /// transaction progress are read again from what remains.
    pub async fn truncate_log(&self, offset: u64) -> crate::error::Result<()> {
        self.cut_log(offset, None).map(|_| ())
    }

    /// Cuts the log back to `offset`. With `follower_of: Some(term)` only
    /// while this broker is still a slave following term `term`, checked
    /// under the store lock a take-over also holds: the HA swarm caught a
    /// slave elected master while it waited for its old master's terms,
    /// which, once they came, cut away the new master's own acknowledged
    /// writes. False when it did not cut.
    pub(super) fn cut_log(&self, offset: u64, follower_of: Option<u64>) -> crate::error::Result<bool> {
        {
            let mut store = self.store.lock().expect("store");
            if let Some(term) = follower_of {
                let role = self.role.lock().expect("role");
                if role.master || role.epoch != term {
                    return Ok(false);
                }
            }
            let report = store.truncate_to(offset)?;
            tracing::warn!(broker = %self.config.broker_name, offset, ?report, "commit log cut back");
            let clamped = self.offsets.lock().expect("offsets").clamp(|topic, queue_id| store.queue_offsets(topic, queue_id).1);
            if clamped > 0 {
                tracing::warn!(clamped, "consumer offsets past the cut queue ends moved back");
            }
            self.written.send_replace(store.write_offset());
            let flushed = store.flushed_offset();
            self.flushed.send_replace(super::FlushState { offset: flushed, error: None });
        }
        {
            let mut epochs = self.epochs.lock().expect("epochs");
            epochs.cut(offset);
            self.persist_epochs(&epochs)?;
        }
        let _ = self.persist_offsets();
        self.schedule.lock().expect("schedule").rewind_to_durable();
        self.rebuild_timers();
        self.rebuild_transactions();
        self.forget_pop_progress_past(offset);
        self.rebuild_pops();
        Ok(true)
    }

    /// Writes the epoch file.
    pub(super) fn persist_epochs(&self, epochs: &Epochs) -> crate::error::Result<()> {
        self.disk.write_atomic(super::epochs::EPOCHS_PATH, &epochs.to_json())?;
        Ok(())
    }

    /// A SYNC_MASTER's wait for its slaves to hold the log durably up to
    /// `end`: without a controller, any slave heard from lately; with one,
    /// every other member of the sync-state set (and every slave about to
    /// join it).
    pub(super) async fn wait_replicated(&self, end: u64) -> SendStatus {
        if bugs::active(Bug::AckBeforeSlaveAck) {
            // The planted defect: acknowledged before any slave has it.
            return SendStatus::SendOk;
        }
        let silent = Duration::from_millis(SLAVE_SILENT_MS);
        if self.controller.is_some() {
            return self.wait_sync_state_set(end).await;
        }
        if self.slaves.lock().expect("slaves").acked(self.clock.instant(), silent).is_none() {
            return SendStatus::SlaveNotAvailable;
        }
        let mut acked = self.replicated.subscribe();
        let wait = async {
            loop {
                if *acked.borrow_and_update() >= end {
                    return;
                }
                if acked.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        };
        match tokio::time::timeout(Duration::from_millis(self.config.slave_timeout_ms), wait).await {
            Ok(()) => SendStatus::SendOk,
            Err(_) => SendStatus::FlushSlaveTimeout,
        }
    }

    /// Controller mode: waits until every member of the sync-state set but
    /// this broker, and every slave joining it, holds the log up to `end`.
    async fn wait_sync_state_set(&self, end: u64) -> SendStatus {
        let mut acked = self.replicated.subscribe();
        let me = self.config.broker_id;
        let wait = async {
            loop {
                let held = {
                    let role = self.role.lock().expect("role");
                    if !role.master {
                        // Deposed while waiting: never acknowledged.
                        return false;
                    }
                    let slaves = self.slaves.lock().expect("slaves");
                    role.waited_for()
                        .iter()
                        .filter(|id| **id != me)
                        .all(|id| slaves.get(*id).is_some_and(|s| s.durable >= end))
                };
                if held {
                    return true;
                }
                if acked.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        };
        match tokio::time::timeout(Duration::from_millis(self.config.slave_timeout_ms), wait).await {
            Ok(true) => SendStatus::SendOk,
            Ok(false) | Err(_) => SendStatus::FlushSlaveTimeout,
        }
    }

    /// Where a slave's master is: the one it was told (by the controller,
    /// or `haMasterAddress`), else the master of the latest term the name
    /// servers list for this group.
    async fn master_addr(&self) -> Option<String> {
        if let Some(addr) = self.role.lock().expect("role").master_addr.clone() {
            return Some(addr);
        }
        if self.controller.is_some() {
            return None;
        }
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        for namesrv in &self.config.namesrv_addrs {
            let Ok(brokers) = self.pool.call(namesrv, GetClusterInfo, timeout).await else { continue };
            let master = brokers
                .into_iter()
                .filter(|b| b.broker_name == self.config.broker_name && b.role == BrokerRole::Master)
                .max_by_key(|b| b.epoch);
            if let Some(master) = master {
                return Some(master.addr);
            }
        }
        None
    }

    /// Controller mode, before copying from a new master: asks for its
    /// terms and cuts this log back to where the two agree (an old master
    /// drops its divergent tail). True when done.
    async fn join_master(&self, master: &str, epoch: u64) -> bool {
        let ask = GetEpochs { broker_name: self.config.broker_name.clone() };
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        let theirs = match self.pool.call(master, ask, timeout).await {
            Ok(list) => list,
            Err(Error::Refused(refused)) => {
                tracing::debug!(master, remark = %refused.reason, "the master would not give its terms");
                return false;
            }
            Err(e) => {
                tracing::debug!(master, error = %e, "asking the master for its terms failed");
                return false;
            }
        };
        let their_epochs = Epochs { entries: theirs.terms.iter().map(|&(epoch, start)| super::epochs::Epoch { epoch, start }).collect() };
        let my_end = self.store.lock().expect("store").write_offset();
        let point = self.epochs.lock().expect("epochs").consistent_point(my_end, &their_epochs, theirs.end);
        if my_end > point {
            if bugs::active(Bug::SkipTruncation) {
                // The planted defect: the divergent tail stays, and this
                // replica copies on from its own end.
                return true;
            }
            match self.cut_log(point, Some(epoch)) {
                Ok(true) => {
                    tracing::warn!(broker = %self.config.broker_name, my_end, point, "cut the log back to where it agrees with the new master");
                    marks::note(&self.replica_name(), &format!("cut {my_end} to {point}"));
                    marks::reach(Mark::DivergentTailCut);
                }
                // Promoted, or following another term, meanwhile.
                Ok(false) => return false,
                Err(e) => {
                    tracing::warn!(error = %e, "cutting the log back failed");
                    return false;
                }
            }
        }
        true
    }

    /// Appends a chunk of the master's log and takes the master's terms for
    /// what this log then holds, under the store lock a take-over also
    /// holds, and only while this broker still follows term `epoch` (None
    /// otherwise). The HA swarm caught a slave promoted during the flush
    /// after an append, whose copy of the old master's terms then erased
    /// the term it had just begun; a deposed master, seeing no newer term
    /// there, kept its divergent tail and served it.
    pub(super) fn take_chunk(&self, chunk: &ReplicaChunk, epoch: u64) -> Option<crate::error::Result<crate::store::Replicated>> {
        let mut store = self.store.lock().expect("store");
        {
            let role = self.role.lock().expect("role");
            if role.master || role.epoch != epoch {
                return None;
            }
        }
        let appended = store.append_replicated(chunk.offset, &chunk.bytes);
        if appended.is_ok() && self.controller.is_some() {
            let master_terms = Epochs { entries: chunk.epochs.iter().map(|&(epoch, start)| super::epochs::Epoch { epoch, start }).collect() };
            let mut epochs = self.epochs.lock().expect("epochs");
            let before = epochs.clone();
            epochs.copy_from(&master_terms, store.write_offset());
            if *epochs != before {
                if let Err(e) = self.persist_epochs(&epochs) {
                    tracing::warn!(error = %e, "persisting the terms failed");
                }
            }
        }
        Some(appended.map_err(crate::error::Error::from))
    }

    /// A slave's replication loop: pull from the master's end, append,
    /// make durable, wake the pulls held here, and say how far it holds
    /// the log in the next pull. Idles while this broker is master.
    pub(super) async fn run_slave(&self) {
        let mut synced_at: Option<Instant> = None;
        let mut caught_up = false;
        // (master, term) this replica cut its log for.
        let mut joined: Option<(String, u64)> = None;
        let mut changes = self.role_changed.subscribe();
        loop {
            if !self.is_slave() {
                joined = None;
                let _ = changes.changed().await;
                continue;
            }
            let Some(master) = self.master_addr().await else {
                let _ = tokio::time::timeout(Duration::from_millis(RETRY_MS), changes.changed()).await;
                continue;
            };
            let epoch = self.role.lock().expect("role").epoch;
            if self.controller.is_some() && joined.as_ref() != Some(&(master.clone(), epoch)) {
                if !self.join_master(&master, epoch).await {
                    tokio::time::sleep(Duration::from_millis(RETRY_MS)).await;
                    continue;
                }
                joined = Some((master.clone(), epoch));
                synced_at = None;
            }
            if synced_at.is_none_or(|at| at.elapsed() >= Duration::from_millis(CONFIG_SYNC_MS)) {
                self.copy_config(&master).await;
                synced_at = Some(Instant::now());
            }
            // The planted defect reports what was appended as durable and
            // leaves the flush to the periodic flusher.
            let lies = bugs::active(Bug::SlaveOffsetLies);
            let (from, durable) = {
                let store = self.store.lock().expect("store");
                (store.write_offset(), if lies { store.write_offset() } else { store.flushed_offset() })
            };
            if !self.is_slave() || self.role.lock().expect("role").epoch != epoch {
                // Promoted, or told to follow another master, meanwhile.
                continue;
            }
            let pull = ReplicaPull {
                broker_name: self.config.broker_name.clone(),
                broker_id: self.config.broker_id,
                epoch,
                from_offset: from,
                durable_offset: durable,
                max_bytes: CHUNK_BYTES,
                wait_ms: PULL_WAIT_MS,
            };
            let timeout = Duration::from_millis(PULL_WAIT_MS + self.config.request_timeout_ms);
            let chunk = match self.pool.call(&master, pull, timeout).await {
                Ok(chunk) => chunk,
                Err(Error::Refused(refused)) => {
                    tracing::warn!(master, kind = ?refused.kind, remark = %refused.reason, "the master refused a replica pull");
                    // Its terms may have changed under us: ask again.
                    joined = None;
                    tokio::time::sleep(Duration::from_millis(RETRY_MS)).await;
                    continue;
                }
                Err(e) => {
                    tracing::debug!(master, error = %e, "replica pull failed");
                    tokio::time::sleep(Duration::from_millis(RETRY_MS)).await;
                    continue;
                }
            };
            {
                let mut role = self.role.lock().expect("role");
                if role.master || role.epoch != epoch {
                    // Promoted, or told to follow another master, meanwhile.
                    continue;
                }
                if self.controller.is_some() && chunk.confirmed != role.confirm_offset {
                    role.confirm_offset = chunk.confirmed;
                    drop(role);
                    // Pulls held here wait on this to see more (in
                    // controller mode its value is only a signal).
                    self.replicated.send_replace(chunk.confirmed);
                }
            }
            if chunk.bytes.is_empty() {
                continue;
            }
            let Some(appended) = self.take_chunk(&chunk, epoch) else {
                // Promoted, or told to follow another master, meanwhile.
                continue;
            };
            match appended {
                Ok((_, touched)) => {
                    // Durable before it is reported, and before pulls here
                    // see it under SYNC_FLUSH.
                    if !lies {
                        self.flush_now().await;
                    }
                    if !caught_up && chunk.offset + chunk.bytes.len() as u64 >= chunk.master_end {
                        caught_up = true;
                        marks::reach(Mark::ReplicaCaughtUp);
                    }
                    self.write_progress_if_held();
                    // Messages of a topic this slave does not know yet: take
                    // the master's topics now, not at the next sync, so the
                    // slave can serve them if the master goes down first.
                    // The broker's own topics are never in the table (asking
                    // for them after every chunk of timers or transactions
                    // copied the whole config each time).
                    let unknown = {
                        let topics = self.topics.lock().expect("topics");
                        touched.iter().any(|(topic, _)| !is_broker_own_topic(topic) && !topics.contains_key(topic))
                    };
                    if unknown {
                        self.copy_config(&master).await;
                        synced_at = Some(Instant::now());
                    }
                    for (topic, queue_id) in touched {
                        self.notify_arrival(&topic, queue_id);
                    }
                }
                Err(e) => {
                    tracing::warn!(master, offset = chunk.offset, error = %e, "a replica chunk could not be appended");
                    joined = None;
                    tokio::time::sleep(Duration::from_millis(RETRY_MS)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_slaves_heard_from_lately_count() {
        let mut s = Slaves::default();
        let t0 = Instant::now();
        let silent = Duration::from_secs(10);
        assert_eq!(s.acked(t0, silent), None);
        s.pulled(1, 100, 100, t0);
        s.pulled(2, 300, 300, t0 + Duration::from_secs(5));
        assert_eq!(s.acked(t0 + Duration::from_secs(6), silent), Some(300));
        assert_eq!(s.acked(t0 + Duration::from_secs(14), silent), Some(300), "slave 1 went silent");
        assert_eq!(s.acked(t0 + Duration::from_secs(16), silent), None);
    }
}
