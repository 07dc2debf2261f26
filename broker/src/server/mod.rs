//! The broker node: owns the store, answers sends and pulls, keeps consumer
//! offsets and group membership, registers with the name servers, and runs
//! the flush, checkpoint, retention and expiry loops.
//!
//! Each family of [`crate::command`] has its handlers in the file of the
//! same name here (`send.rs`, `pull.rs`, `offsets.rs`, ...): public
//! methods of [`Broker`] that take a command and answer its reply or a
//! [`Refusal`](crate::command::Refusal). A front calls them: `front.rs` is
//! the house protocol's, a thin match from [`Request`] to handler.

mod admin;
mod config;
pub mod epochs;
mod failover;
mod front;
mod groups;
mod locks;
mod offsets;
mod peer;
mod pop;
mod pull;
mod query;
mod replication;
mod schedule;
mod send;
mod send_back;
mod send_queue;
mod timer;
mod transaction;
mod work;

pub use config::{BrokerConfig, FlushMode, ReplicationRole};
pub use groups::ConsumerGroups;
pub use offsets::OffsetTable;
pub use pop::PopTable;
pub use peer::Peer;
pub use locks::QueueLocks;
pub use epochs::Epochs;
pub use replication::{RoleState, Slaves};
pub use schedule::ScheduleProgress;
pub use timer::TimerWheel;
pub use transaction::{ProducerGroups, TransactionTable};
pub use work::{Work, WorkHook};
use crate::clock::Clock;
use crate::controller::ControllerClient;
use crate::marks::{self, Mark};
use crate::error::{Error, Result};
use crate::model::{DelayLevels, TopicConfig, HALF_TOPIC, SCHEDULE_TOPIC};
use crate::net::ConnectionPool;
use crate::protocol::Request;
use crate::command::{NotifyConsumerIdsChanged, RegisterBroker, ResetOffsetNotice};
use crate::store::{disk::read_all, Disk, MessageStore, RecoveryReport, StoreConfig};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};

const TOPICS_PATH: &str = "config/topics.json";
const OFFSETS_PATH: &str = "config/consumerOffset.json";
const DELAY_PATH: &str = "config/delayOffset.json";
const LOCKS_PATH: &str = "config/queueLocks.json";
const SUBSCRIPTION_GROUPS_PATH: &str = "config/subscriptionGroup.json";

/// (path, contents) of progress files, as a master hands them to slaves.
type ProgressFiles = Vec<(String, Vec<u8>)>;

/// How soon a registration a name server did not take is tried again.
const REGISTER_RETRY_MS: u64 = 1_000;

/// How often a broken store is tried again (reopened).
const STORE_REOPEN_INTERVAL_MS: u64 = 1_000;

/// How far the commit log is durable, published by the flush loop.
#[derive(Clone, Debug, Default)]
struct FlushState {
    offset: u64,
    error: Option<String>,
}

/// A broker node.
pub struct Broker {
    config: BrokerConfig,
    clock: Clock,
    disk: Arc<dyn Disk>,
    store: Mutex<MessageStore>,
    topics: Mutex<BTreeMap<String, TopicConfig>>,
    offsets: Mutex<OffsetTable>,
    groups: Mutex<ConsumerGroups>,
    /// How far each delay level's queue has been delivered.
    schedule: Mutex<ScheduleProgress>,
    /// Due times of delayed messages stored before the clock was set back:
    /// (level, schedule queue offset) -> due on the broker's clock.
    corrected: Mutex<BTreeMap<(u32, u64), u64>>,
    /// Orderly consumers' queue locks.
    locks: Mutex<QueueLocks>,
    /// POP consumers' leases and progress, rebuilt from the POP log. Taken
    /// before the store and offset locks.
    pops: Mutex<PopTable>,
    /// The POP state of the durable log, written as its snapshot.
    pop_durable: Mutex<Option<pop::snapshot::Replayed>>,
    /// Subscription groups an operator configured (`updateSubGroup`).
    subscription_groups: Mutex<BTreeMap<String, crate::model::SubscriptionGroup>>,
    /// Live producers per producer group (asked on check-back).
    producers: Mutex<ProducerGroups>,
    /// Connected clients by address, through whichever front: how the
    /// broker calls a client back.
    links: Mutex<BTreeMap<SocketAddr, Arc<dyn Peer>>>,
    /// Half messages: which ended, check counts.
    transactions: Mutex<TransactionTable>,
    /// Pending timer messages.
    timers: Mutex<TimerWheel>,
    /// Wakes the timer service when a timer is added.
    timer_wake: Notify,
    /// Woken when a registration some name server did not take (after a
    /// role change, a new topic) should be retried soon.
    register_retry: Notify,
    /// Wakes the registration loop at once: a topic was created.
    register_now: Notify,
    /// A master's slaves and how far they hold the log.
    slaves: Mutex<Slaves>,
    /// Master or slave now, in which term (changes in controller mode).
    role: Mutex<RoleState>,
    /// Bumped on every change of role or master: wakes the slave loop.
    role_changed: watch::Sender<u64>,
    /// The terms of this broker's log.
    epochs: Mutex<Epochs>,
    /// The controllers, in controller mode.
    controller: Option<ControllerClient>,
    /// A slave: the master's progress files and the log end they need.
    pending_progress: Mutex<Option<(u64, ProgressFiles)>>,
    /// The furthest offset a live slave holds durably.
    replicated: watch::Sender<u64>,
    /// The commit log's end, moved on every write (wakes slaves' pulls).
    written: watch::Sender<u64>,
    /// Per queue: bumped on every put, so held pulls wake up.
    arrivals: Mutex<BTreeMap<(String, u32), watch::Sender<u64>>>,
    /// Wakes the SYNC_FLUSH flusher.
    flush_request: Notify,
    /// Told of each request, reply and fsync, when one is given (the
    /// simulation's cost model); nothing is called without one.
    hook: Option<Arc<dyn WorkHook>>,
    flushed: watch::Sender<FlushState>,
    pool: ConnectionPool,
    put_count: AtomicU64,
    get_count: AtomicU64,
    /// Producers' sends waiting for their turn to write.
    send_queue: send_queue::SendQueue,
    /// Commit log fsyncs since start.
    flush_count: AtomicU64,
    recovery: RecoveryReport,
    /// Held from taking a snapshot of a progress or config file to its
    /// write being done, so concurrent writers of one file land in the
    /// order of their snapshots: without it a handler that snapshotted
    /// first could write last, leaving an older state on disk with the
    /// dirty flag already cleared. Taken before any state lock, never
    /// while one is held (the epochs file is ordered by its own lock).
    persisting: Mutex<()>,
    /// Set once the background loops run.
    started: std::sync::Once,
}

impl Broker {
    /// Opens the store (recovering from any crash) and the persisted
    /// topics and offsets.
    pub fn open(config: BrokerConfig, disk: Arc<dyn Disk>, clock: Clock) -> Result<Arc<Broker>> {
        Broker::open_with(config, disk, clock, None)
    }

    /// [`Broker::open`], telling `hook` of the broker's work.
    pub fn open_with(config: BrokerConfig, disk: Arc<dyn Disk>, clock: Clock, hook: Option<Arc<dyn WorkHook>>) -> Result<Arc<Broker>> {
        let (mut store, recovery) = MessageStore::open(disk.clone(), config.store.clone())?;
        let topics: BTreeMap<String, TopicConfig> = match read_all(disk.as_ref(), TOPICS_PATH)? {
            None => BTreeMap::new(),
            Some(bytes) => serde_json::from_slice::<Vec<TopicConfig>>(&bytes)
                .map_err(|e| Error::corrupt_file(TOPICS_PATH, e.to_string()))?
                .into_iter()
                .map(|t| (t.name.clone(), t))
                .collect(),
        };
        let mut offsets = match read_all(disk.as_ref(), OFFSETS_PATH)? {
            None => OffsetTable::default(),
            Some(bytes) => OffsetTable::from_json(&bytes).map_err(|reason| Error::corrupt_file(OFFSETS_PATH, reason))?,
        };
        let clamped = offsets.clamp(|topic, queue_id| store.queue_offsets(topic, queue_id).1);
        if clamped > 0 {
            tracing::warn!(clamped, "consumer offsets past the recovered queue ends were moved back");
        }
        let (schedule, timers, transactions) = load_services(&mut store, disk.as_ref())?;
        let pops = PopTable::rebuild(&mut store, &offsets, pop::snapshot::load(disk.as_ref()))?;
        let subscription_groups: BTreeMap<String, crate::model::SubscriptionGroup> = match read_all(disk.as_ref(), SUBSCRIPTION_GROUPS_PATH)? {
            None => BTreeMap::new(),
            Some(bytes) => serde_json::from_slice::<Vec<crate::model::SubscriptionGroup>>(&bytes)
                .map_err(|e| Error::corrupt_file(SUBSCRIPTION_GROUPS_PATH, e.to_string()))?
                .into_iter()
                .map(|g| (g.group_name.clone(), g))
                .collect(),
        };
        let epochs = match read_all(disk.as_ref(), epochs::EPOCHS_PATH)? {
            None => Epochs::default(),
            Some(bytes) => Epochs::from_json(&bytes).map_err(|reason| Error::corrupt_file(epochs::EPOCHS_PATH, reason))?,
        };
        let lease = Duration::from_millis(config.lock_lease_ms);
        let locks = match read_all(disk.as_ref(), LOCKS_PATH)? {
            None => QueueLocks::new(lease),
            Some(bytes) => QueueLocks::from_json(&bytes, lease, clock.instant()).map_err(|reason| Error::corrupt_file(LOCKS_PATH, reason))?,
        };
        let flushed_offset = store.flushed_offset();
        tracing::info!(broker = %config.broker_name, ?recovery, timers = timers.len(), "store opened");
        let role = RoleState::at_start(&config);
        store.set_follower(!role.master);
        let pool = ConnectionPool::new();
        let controller = (!config.controller_addrs.is_empty()).then(|| {
            // A call per heartbeat period at most, so one silent controller
            // does not hold up the rounds.
            let timeout = config.request_timeout_ms.min(config.controller_heartbeat_ms.max(100));
            ControllerClient::new(config.controller_addrs.clone(), Arc::new(ConnectionPool::new()), Duration::from_millis(timeout))
        });
        let send_queue =
            send_queue::SendQueue::new(config.send_workers, config.send_queue_capacity, Duration::from_millis(config.send_queue_wait_ms));
        Ok(Arc::new(Broker {
            config,
            clock,
            disk,
            store: Mutex::new(store),
            topics: Mutex::new(topics),
            offsets: Mutex::new(offsets),
            groups: Mutex::new(ConsumerGroups::default()),
            schedule: Mutex::new(schedule),
            corrected: Mutex::new(BTreeMap::new()),
            locks: Mutex::new(locks),
            pops: Mutex::new(pops),
            pop_durable: Mutex::new(None),
            subscription_groups: Mutex::new(subscription_groups),
            producers: Mutex::new(ProducerGroups::default()),
            links: Mutex::new(BTreeMap::new()),
            transactions: Mutex::new(transactions),
            timers: Mutex::new(timers),
            timer_wake: Notify::new(),
            register_retry: Notify::new(),
            register_now: Notify::new(),
            slaves: Mutex::new(Slaves::default()),
            role: Mutex::new(role),
            role_changed: watch::Sender::new(0),
            epochs: Mutex::new(epochs),
            controller,
            pending_progress: Mutex::new(None),
            replicated: watch::Sender::new(0),
            written: watch::Sender::new(flushed_offset),
            arrivals: Mutex::new(BTreeMap::new()),
            flush_request: Notify::new(),
            hook,
            flushed: watch::Sender::new(FlushState { offset: flushed_offset, error: None }),
            pool,
            put_count: AtomicU64::new(0),
            send_queue,
            flush_count: AtomicU64::new(0),
            get_count: AtomicU64::new(0),
            recovery,
            persisting: Mutex::new(()),
            started: std::sync::Once::new(),
        }))
    }

    /// What recovery did at open.
    pub fn recovery(&self) -> RecoveryReport {
        self.recovery
    }

    /// The configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Starts the background loops (flush, registration, delivery of
    /// delays and timers, check-backs, expiry) once; a front then calls
    /// the handlers. [`Broker::serve`] starts them itself.
    pub fn start(self: &Arc<Self>) {
        self.started.call_once(|| self.spawn_loops());
    }

    /// Starts the background loops and serves the house protocol on
    /// `listener` forever.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        self.start();
        crate::net::serve(listener, self).await
    }

    fn spawn_loops(self: &Arc<Self>) {
        let me = self.clone();
        match self.config.flush {
            FlushMode::Sync => {
                tokio::spawn(async move {
                    loop {
                        // Woken by a waiting send, or every flush interval as
                        // a backstop (a no-op when nothing is unflushed).
                        let period = Duration::from_millis(me.config.flush_interval_ms);
                        let _ = tokio::time::timeout(period, me.flush_request.notified()).await;
                        me.flush_now().await;
                    }
                });
            }
            FlushMode::Async => {
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(me.config.flush_interval_ms)).await;
                        me.flush_now().await;
                    }
                });
            }
        }
        self.every(self.config.checkpoint_interval_ms, |b| {
            if let Err(e) = b.store.lock().expect("store").checkpoint() {
                tracing::warn!(error = %e, "checkpoint failed");
            }
        });
        self.every(self.config.offset_persist_interval_ms, |b| {
            let _ = b.persist_offsets();
            b.persist_schedule();
            b.persist_timers();
            b.persist_pops();
        });
        // A slave copies; the master alone delivers delays and timers and
        // checks back on halves. Both loops run; each idles in the other
        // role (in controller mode a broker changes role as it runs).
        let me = self.clone();
        tokio::spawn(async move { me.run_slave().await });
        self.spawn_master_loops();
        if self.controller.is_some() {
            tokio::spawn(self.clone().run_controller_mode());
        }
        self.every(STORE_REOPEN_INTERVAL_MS, |b| b.reopen_store_if_broken());
        // Checked three times per expiry period (at most every 10 s), so a
        // silent client leaves its groups soon after it expires.
        self.every((self.config.client_expiry_ms / 3).clamp(1_000, 10_000), |b| {
            let changed = b.groups.lock().expect("groups").expire(b.clock.now_ms(), b.config.client_expiry_ms);
            for group in &changed {
                b.notify_consumers_changed(group);
            }
            b.producers.lock().expect("producers").expire(b.clock.now_ms(), b.config.client_expiry_ms);
        });
        self.every(self.config.retention_check_interval_ms, |b| {
            let now = b.clock.now_ms();
            if let Err(e) = b.store.lock().expect("store").delete_expired(now) {
                tracing::warn!(error = %e, "retention failed");
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                // A name server that did not take a registration (down,
                // restarting, cut off) is tried again within a second, not
                // a whole period later: until then it routes nobody to this
                // broker, or routes writes to a master deposed meanwhile.
                // (A failed `register_all`, here or elsewhere, leaves the
                // wake-up that cuts the period short.)
                let retry = me.config.register_interval_ms.min(REGISTER_RETRY_MS);
                let _ = me.register_all().await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(me.config.register_interval_ms)) => {}
                    _ = me.register_retry.notified() => tokio::time::sleep(Duration::from_millis(retry)).await,
                    _ = me.register_now.notified() => {}
                }
            }
        });
    }

    /// The services only a master runs: delays, timers, check-backs.
    fn spawn_master_loops(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(schedule::SCHEDULE_INTERVAL_MS)).await;
                if !me.is_slave() {
                    me.deliver_due().await;
                }
            }
        });
        let me = self.clone();
        tokio::spawn(async move { me.run_timers().await });
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(me.config.transaction_check_interval_ms.max(1))).await;
                if !me.is_slave() {
                    me.check_round().await;
                }
            }
        });
    }

    fn every(self: &Arc<Self>, period_ms: u64, f: impl Fn(&Broker) + Send + 'static) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(period_ms.max(1))).await;
                f(&me);
            }
        });
    }

    /// Flushes the commit log. The fsync runs without the store lock (only
    /// planning and recording it take the lock), so a slow disk holds up
    /// the sends that wait for it and nothing else. A simulated disk's
    /// slow-fsync delay is spent at the same place.
    async fn flush_now(&self) {
        let plan = self.store.lock().expect("store").flush_plan();
        if !plan.is_empty() {
            self.flush_count.fetch_add(1, Ordering::Relaxed);
            // The fsync's CPU (the kernel's writeback, waking the flusher
            // and the sends it covers) is the workers' too.
            if let Some(hook) = &self.hook {
                hook.on_fsync().await;
            }
            let delay = self.disk.sync_delay_us();
            if delay > 0 {
                tokio::time::sleep(Duration::from_micros(delay)).await;
            }
        }
        let synced = plan.sync(self.disk.as_ref());
        let result = self.store.lock().expect("store").flush_done(&plan, synced);
        let state = match result {
            Ok(offset) => FlushState { offset, error: None },
            Err(e) => FlushState { offset: self.flushed.borrow().offset, error: Some(e.to_string()) },
        };
        self.flushed.send_replace(state);
    }

    /// A store broken by a failed write or fsync refuses every write until
    /// it is reopened. Rather than stay down until an operator restarts it,
    /// the broker reopens it itself, running recovery on what the disk
    /// holds as a restart would, once the disk lets it (opening flushes and
    /// checkpoints, so it fails while the disk still does).
    fn reopen_store_if_broken(&self) {
        let mut store = self.store.lock().expect("store");
        let Some(why) = store.broken().map(str::to_string) else { return };
        match MessageStore::open(self.disk.clone(), self.config.store.clone()) {
            Ok((reopened, recovery)) => {
                *store = reopened;
                store.set_follower(self.is_slave());
                let offset = store.flushed_offset();
                drop(store);
                // Deliveries not yet durable may be gone with the cut tail.
                self.schedule.lock().expect("schedule").rewind_to_durable();
                self.rebuild_timers();
                self.rebuild_transactions();
                self.forget_pop_progress();
                self.rebuild_pops();
                marks::reach(Mark::StoreReopened);
                tracing::info!(broker = %self.config.broker_name, why = %why, ?recovery, "store reopened after a disk failure");
                self.flushed.send_replace(FlushState { offset, error: None });
            }
            Err(e) => tracing::debug!(error = %e, "the store is still broken"),
        }
    }

    /// Writes the committed offsets when they changed; false when the disk
    /// did not take them (they are written again next time).
    fn persist_offsets(&self) -> bool {
        let _order = self.persisting.lock().expect("persisting");
        let snapshot = self.offsets.lock().expect("offsets").take_snapshot();
        if let Some(bytes) = snapshot {
            if let Err(e) = self.disk.write_atomic(OFFSETS_PATH, &bytes) {
                self.offsets.lock().expect("offsets").mark_dirty();
                tracing::warn!(error = %e, "persisting consumer offsets failed");
                return false;
            }
        }
        true
    }

    /// Persists the delay levels' progress, as far as the copies it
    /// delivered are durable.
    fn persist_schedule(&self) {
        let _order = self.persisting.lock().expect("persisting");
        let flushed = self.store.lock().expect("store").flushed_offset();
        let snapshot = {
            let mut schedule = self.schedule.lock().expect("schedule");
            schedule.flushed(flushed);
            schedule.take_snapshot()
        };
        if let Some(bytes) = snapshot {
            if let Err(e) = self.disk.write_atomic(DELAY_PATH, &bytes) {
                tracing::warn!(error = %e, "persisting delay progress failed");
            }
        }
    }

    fn persist_subscription_groups(&self) -> Result<()> {
        let _order = self.persisting.lock().expect("persisting");
        let groups: Vec<crate::model::SubscriptionGroup> = self.subscription_groups.lock().expect("subscription groups").values().cloned().collect();
        let bytes = serde_json::to_vec_pretty(&groups).expect("subscription groups encode");
        self.disk.write_atomic(SUBSCRIPTION_GROUPS_PATH, &bytes)?;
        Ok(())
    }

    /// The group's subscription settings: an operator's, else the defaults.
    pub(crate) fn subscription_group(&self, group: &str) -> Option<crate::model::SubscriptionGroup> {
        self.subscription_groups.lock().expect("subscription groups").get(group).cloned()
    }

    fn persist_topics(&self) -> Result<()> {
        let _order = self.persisting.lock().expect("persisting");
        let topics: Vec<TopicConfig> = self.topics.lock().expect("topics").values().cloned().collect();
        let bytes = serde_json::to_vec_pretty(&topics).expect("topics encode");
        self.disk.write_atomic(TOPICS_PATH, &bytes)?;
        Ok(())
    }

    /// Registers with every name server, concurrently; failures are logged
    /// and the registration loop retries within a second. True when every
    /// name server took it.
    pub async fn register_all(&self) -> bool {
        let topics: Vec<TopicConfig> = self.topics.lock().expect("topics").values().cloned().collect();
        let request = Request::RegisterBroker(RegisterBroker {
            cluster: self.config.cluster.clone(),
            broker_name: self.config.broker_name.clone(),
            broker_id: self.config.broker_id,
            addr: self.config.advertise_addr.clone(),
            topics,
            role: self.broker_role(),
            epoch: self.role.lock().expect("role").epoch,
        });
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        let calls = self.config.namesrv_addrs.iter().map(|addr| {
            let request = &request;
            async move {
                // One request for every name server: a broker's topics may be many.
                match self.pool.request(addr, request, timeout).await.and_then(|r| r.into_reply::<()>(request.name())) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::debug!(namesrv = %addr, error = %e, "registration failed");
                        false
                    }
                }
            }
        });
        let all = futures::future::join_all(calls).await.into_iter().all(|ok| ok);
        if !all {
            self.register_retry.notify_one();
        }
        all
    }

    /// Registers with the name servers soon, from the registration loop,
    /// without waiting for them: a request that created a topic (a send to
    /// a new topic, a retry or dead letter of a new group) is answered
    /// whether a name server is up or not, as RocketMQ registers one-way
    /// there.
    pub(super) fn register_soon(&self) {
        self.register_now.notify_one();
    }

    /// Waits until the commit log is durable up to `end_offset`.
    async fn wait_flushed(&self, end_offset: u64) -> std::result::Result<(), Option<String>> {
        let mut rx = self.flushed.subscribe();
        self.flush_request.notify_one();
        let wait = async {
            loop {
                {
                    let state = rx.borrow_and_update();
                    if state.offset >= end_offset {
                        return Ok(());
                    }
                    if let Some(e) = &state.error {
                        return Err(Some(e.clone()));
                    }
                }
                if rx.changed().await.is_err() {
                    return Err(Some("flusher stopped".to_string()));
                }
            }
        };
        match tokio::time::timeout(Duration::from_millis(self.config.sync_flush_timeout_ms), wait).await {
            Ok(result) => result,
            Err(_) => Err(None),
        }
    }

    /// How far pulls (and the services that copy messages) may read the
    /// commit log: under SYNC_FLUSH only what is durable; and a master in
    /// controller mode only what every member of its sync-state set holds
    /// (RocketMQ's confirm offset). A master cut off from its slaves may
    /// store writes it cannot acknowledge; were they read, a group could
    /// move its offset past queue offsets the next master gives to other
    /// messages, and skip those (Apache RocketMQ #7689). A slave in
    /// controller mode shows only what its master last said is confirmed.
    fn visible_end(&self, store: &MessageStore) -> u64 {
        let end = match self.config.flush {
            FlushMode::Sync => store.flushed_offset(),
            FlushMode::Async => store.write_offset(),
        };
        if self.controller.is_none() {
            return end;
        }
        let role = self.role.lock().expect("role");
        if !role.master {
            return end.min(role.confirm_offset);
        }
        let slaves = self.slaves.lock().expect("slaves");
        role.waited_for()
            .iter()
            .filter(|id| **id != self.config.broker_id)
            .map(|id| slaves.get(*id).map_or(0, |s| s.durable))
            .fold(end, u64::min)
    }

    /// Wakes the pulls held on the queues the schedule or timer service
    /// copied messages into, the copies written up to `end`: under
    /// SYNC_FLUSH once they are durable, since pulls see only that.
    async fn wake_after_copies(&self, mut woken: Vec<(String, u32)>, end: u64) {
        if woken.is_empty() {
            return;
        }
        self.written.send_replace(end);
        if self.config.flush == FlushMode::Sync {
            let _ = self.wait_flushed(end).await;
        }
        woken.sort();
        woken.dedup();
        for (topic, queue_id) in woken {
            self.notify_arrival(&topic, queue_id);
        }
    }

    fn arrivals_rx(&self, topic: &str, queue_id: u32) -> watch::Receiver<u64> {
        let mut arrivals = self.arrivals.lock().expect("arrivals");
        arrivals.entry((topic.to_string(), queue_id)).or_insert_with(|| watch::Sender::new(0)).subscribe()
    }

    fn notify_arrival(&self, topic: &str, queue_id: u32) {
        let arrivals = self.arrivals.lock().expect("arrivals");
        if let Some(tx) = arrivals.get(&(topic.to_string(), queue_id)) {
            tx.send_modify(|n| *n += 1);
        }
    }
}

/// What the master's services start from, read from the store and the
/// persisted progress: delay levels' progress (clamped to the queues'
/// ends), the timer wheel, the transaction table. Used at open and when a
/// slave takes over as master (its files are the master's, copied).
fn load_services(store: &mut MessageStore, disk: &dyn Disk) -> Result<(ScheduleProgress, TimerWheel, TransactionTable)> {
    let schedule = match read_all(disk, DELAY_PATH)? {
        None => ScheduleProgress::default(),
        Some(bytes) => ScheduleProgress::from_json(&bytes, |level| store.queue_offsets(SCHEDULE_TOPIC, level.saturating_sub(1)).1)
            .map_err(|reason| Error::corrupt_file(DELAY_PATH, reason))?,
    };
    let transactions = {
        let ended = transaction::ended_halves(store)?;
        let checks = read_all(disk, transaction::CHECKS_PATH)?;
        let low = store.queue_offsets(HALF_TOPIC, 0).0;
        TransactionTable::new(ended, checks.as_deref(), low).map_err(|reason| Error::corrupt_file(transaction::CHECKS_PATH, reason))?
    };
    let timers = timer::open_wheel(store, read_all(disk, timer::TIMER_PATH)?.as_deref())?;
    Ok((schedule, timers, transactions))
}

impl Broker {
    /// A client connected from `addr` through some front; `peer` calls it
    /// back.
    pub fn peer_connected(&self, addr: SocketAddr, peer: Arc<dyn Peer>) {
        let mut links = self.links.lock().expect("links");
        links.retain(|_, p| p.is_live());
        links.insert(addr, peer);
    }

    /// The client connected from `addr` went away (its connection closed or
    /// broke). A consumer leaves its groups now, so the others rebalance
    /// its queues without waiting for the expiry. Its queue locks stay
    /// until their lease runs out: a client whose connection broke may
    /// still be processing.
    pub fn peer_closed(&self, addr: SocketAddr) {
        {
            let mut links = self.links.lock().expect("links");
            if links.get(&addr).is_some_and(|p| p.is_live()) {
                // The client connected again from the same address before
                // this close was noticed: the live connection keeps its
                // link and memberships.
                return;
            }
            links.remove(&addr);
        }
        self.producers.lock().expect("producers").connection_closed(addr);
        let changed = self.groups.lock().expect("groups").connection_closed(addr);
        if !changed.is_empty() {
            tracing::debug!(%addr, ?changed, "a consumer's connection closed; it left its groups");
        }
        for group in &changed {
            self.notify_consumers_changed(group);
        }
    }

    /// Tells each member of `group` that its offsets on `topic` here were
    /// reset, as RocketMQ's broker sends `RESET_CONSUMER_CLIENT_OFFSET`.
    /// Oneway and in the background: a member that misses it learns at its
    /// next pull or commit, which the new generation refuses.
    fn notify_offsets_reset(&self, group: &str, topic: &str) {
        let members = self.groups.lock().expect("groups").member_peers(group);
        for peer in self.live_peers(&members) {
            let notice = ResetOffsetNotice { group: group.to_string(), topic: topic.to_string(), broker_name: self.config.broker_name.clone() };
            tokio::spawn(async move {
                if let Err(e) = peer.offsets_reset(notice).await {
                    tracing::debug!(peer = peer.name(), error = %e, "a reset notice was not sent");
                }
            });
        }
    }

    /// The live clients among `addrs`, in their order.
    fn live_peers<'a>(&self, addrs: impl IntoIterator<Item = &'a SocketAddr>) -> Vec<Arc<dyn Peer>> {
        let links = self.links.lock().expect("links");
        addrs.into_iter().filter_map(|addr| links.get(addr).filter(|p| p.is_live()).cloned()).collect()
    }

    /// Tells each member of `group`, over the connection it heartbeats on,
    /// that the group's members changed, as RocketMQ's broker sends
    /// `NOTIFY_CONSUMER_IDS_CHANGED`: each rebalances at once instead of at
    /// its next period, so a queue is not left unread, or read by two
    /// members, for a whole period after one joins or leaves. Oneway and in
    /// the background: a member that misses it rebalances at its period.
    fn notify_consumers_changed(&self, group: &str) {
        let members = self.groups.lock().expect("groups").member_peers(group);
        for peer in self.live_peers(&members) {
            let notice = NotifyConsumerIdsChanged { group: group.to_string() };
            tokio::spawn(async move {
                if let Err(e) = peer.consumers_changed(notice).await {
                    tracing::debug!(peer = peer.name(), error = %e, "a group change notice was not sent");
                }
            });
        }
    }
}

#[cfg(test)]
mod test_disk;
#[cfg(test)]
mod tests;
