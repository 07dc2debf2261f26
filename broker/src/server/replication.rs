//! Master/slave replication (RocketMQ's HA service).
//!
//! A slave pulls its master's commit log from its own end, over its own
//! connection, and appends the bytes at the same offsets (its consume
//! queues and index are built from them as a local put would), then makes
//! them durable and says so in its next pull. A SYNC_MASTER acknowledges a
//! send only once a slave holds it durably (FLUSH_SLAVE_TIMEOUT after
//! `slaveTimeout`; SLAVE_NOT_AVAILABLE when no slave has pulled lately); an
//! ASYNC_MASTER does not wait. A slave refuses writes and serves reads.

use super::{Broker, ReplicationRole};
use crate::marks::{self, Mark};
use crate::model::TopicConfig;
use crate::protocol::{BrokerRole, ReplicaChunk, ReplicaConfig, Request, Response, ResponseBody, ResponseCode, SendStatus};
use std::collections::BTreeMap;
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

/// What a master knows of its slaves.
#[derive(Debug, Default)]
pub struct Slaves {
    /// Slave id -> (offset it holds durably, when it last pulled).
    slaves: BTreeMap<u64, (u64, Instant)>,
}

impl Slaves {
    /// A pull from slave `id`, which holds the log durably up to `durable`.
    pub fn pulled(&mut self, id: u64, durable: u64, now: Instant) {
        self.slaves.insert(id, (durable, now));
    }

    /// The furthest durable offset of the slaves heard from within
    /// `silent`, or `None` when none was.
    pub fn acked(&self, now: Instant, silent: Duration) -> Option<u64> {
        self.slaves.values().filter(|(_, seen)| now.saturating_duration_since(*seen) < silent).map(|(acked, _)| *acked).max()
    }
}

impl Broker {
    /// Whether this broker is a slave.
    pub(super) fn is_slave(&self) -> bool {
        self.config.role == ReplicationRole::Slave
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
    pub(super) fn refuse_on_slave(&self, what: &str) -> Option<Response> {
        self.is_slave().then(|| {
            Response::error(
                ResponseCode::NoPermission,
                format!("{}/{} is a slave: {what} goes to the master of {}", self.config.broker_name, self.config.broker_id, self.config.broker_name),
            )
        })
    }

    /// A slave's pull: records how far it holds the log, then answers with
    /// the log from its end, holding the pull up to `wait_ms` when there is
    /// nothing new.
    pub(super) async fn replica_pull(&self, broker_name: &str, broker_id: u64, from: u64, durable: u64, max: u32, wait_ms: u64) -> Response {
        if self.is_slave() {
            return Response::error(ResponseCode::RequestNotSupported, "a slave does not serve replicas");
        }
        if broker_name != self.config.broker_name {
            return Response::error(
                ResponseCode::NoPermission,
                format!("this is the master of {}, not of {broker_name}", self.config.broker_name),
            );
        }
        {
            let mut slaves = self.slaves.lock().expect("slaves");
            slaves.pulled(broker_id, durable, self.clock.instant());
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
                    return Response::error(
                        ResponseCode::SystemError,
                        format!("the slave's log ends at {from}, past this master's end {end}: it must be cut back first"),
                    );
                }
                store.replica_chunk(from, max.clamp(1, CHUNK_BYTES) as usize).map(|bytes| (bytes, end))
            };
            match read {
                Err(e) => return e.into(),
                Ok((bytes, master_end)) if !bytes.is_empty() || self.clock.instant() >= deadline => {
                    return Response::ok(ResponseBody::Replica(ReplicaChunk { offset: from, bytes, master_end }));
                }
                Ok(_) => {
                    let left = deadline.saturating_duration_since(self.clock.instant());
                    let _ = tokio::time::timeout(left, written.changed()).await;
                }
            }
        }
    }

    /// What a slave copies besides the log: topics and consumer offsets.
    pub(super) fn replica_config(&self, broker_name: &str) -> Response {
        if self.is_slave() || broker_name != self.config.broker_name {
            return Response::error(ResponseCode::NoPermission, format!("this is not the master of {broker_name}"));
        }
        let topics = self.topics.lock().expect("topics").values().cloned().collect();
        let offsets = self.offsets.lock().expect("offsets").entries();
        Response::ok(ResponseBody::ReplicaConfig(ReplicaConfig { topics, offsets }))
    }

    /// A slave takes its master's topics (registering again when they
    /// changed) and consumer offsets (never past its own queue ends).
    async fn copy_config(&self, master: &str) {
        let request = Request::ReplicaConfig { broker_name: self.config.broker_name.clone() };
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        let Ok(Response { body: ResponseBody::ReplicaConfig(config), .. }) = self.pool.request(master, &request, timeout).await else {
            return;
        };
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
        let store = self.store.lock().expect("store");
        let mut offsets = self.offsets.lock().expect("offsets");
        for (group, topic, queue_id, offset) in config.offsets {
            let end = store.queue_offsets(&topic, queue_id).1;
            if offsets.get(&group, &topic, queue_id) != Some(offset.min(end)) {
                offsets.commit(&group, &topic, queue_id, offset.min(end));
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
        {
            let mut store = self.store.lock().expect("store");
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
        self.persist_offsets();
        self.schedule.lock().expect("schedule").rewind_to_durable();
        self.rebuild_timers();
        self.rebuild_transactions();
        Ok(())
    }

    /// A SYNC_MASTER's wait for a slave to hold the log durably up to `end`.
    pub(super) async fn wait_replicated(&self, end: u64) -> SendStatus {
        let silent = Duration::from_millis(SLAVE_SILENT_MS);
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

    /// Where a slave's master is: `haMasterAddress`, else the master of
    /// the latest term the name servers list for this group.
    async fn master_addr(&self) -> Option<String> {
        if let Some(addr) = &self.config.ha_master_addr {
            return Some(addr.clone());
        }
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        for namesrv in &self.config.namesrv_addrs {
            let Ok(response) = self.pool.request(namesrv, &Request::GetClusterInfo, timeout).await else { continue };
            let ResponseBody::Cluster(brokers) = response.body else { continue };
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

    /// A slave's replication loop: pull from the master's end, append,
    /// make durable, wake the pulls held here, and say how far it holds
    /// the log in the next pull.
    pub(super) async fn run_slave(&self) {
        let mut synced_at: Option<Instant> = None;
        let mut caught_up = false;
        loop {
            let Some(master) = self.master_addr().await else {
                tokio::time::sleep(Duration::from_millis(RETRY_MS)).await;
                continue;
            };
            if synced_at.is_none_or(|at| at.elapsed() >= Duration::from_millis(CONFIG_SYNC_MS)) {
                self.copy_config(&master).await;
                synced_at = Some(Instant::now());
            }
            let (from, durable) = {
                let store = self.store.lock().expect("store");
                (store.write_offset(), store.flushed_offset())
            };
            let request = Request::ReplicaPull {
                broker_name: self.config.broker_name.clone(),
                broker_id: self.config.broker_id,
                from_offset: from,
                durable_offset: durable,
                max_bytes: CHUNK_BYTES,
                wait_ms: PULL_WAIT_MS,
            };
            let timeout = Duration::from_millis(PULL_WAIT_MS + self.config.request_timeout_ms);
            let chunk = match self.pool.request(&master, &request, timeout).await {
                Ok(Response { code: ResponseCode::Success, body: ResponseBody::Replica(chunk), .. }) => chunk,
                Ok(refused) => {
                    tracing::warn!(master, code = ?refused.code, remark = %refused.remark, "the master refused a replica pull");
                    tokio::time::sleep(Duration::from_millis(RETRY_MS)).await;
                    continue;
                }
                Err(e) => {
                    tracing::debug!(master, error = %e, "replica pull failed");
                    tokio::time::sleep(Duration::from_millis(RETRY_MS)).await;
                    continue;
                }
            };
            if chunk.bytes.is_empty() {
                continue;
            }
            let appended = self.store.lock().expect("store").append_replicated(chunk.offset, &chunk.bytes);
            match appended {
                Ok((_, touched)) => {
                    // Durable before it is reported, and before pulls here
                    // see it under SYNC_FLUSH.
                    self.flush_now().await;
                    if !caught_up && chunk.offset + chunk.bytes.len() as u64 >= chunk.master_end {
                        caught_up = true;
                        marks::reach(Mark::ReplicaCaughtUp);
                    }
                    // Messages of a topic this slave does not know yet: take
                    // the master's topics now, not at the next sync, so the
                    // slave can serve them if the master goes down first.
                    let unknown = {
                        let topics = self.topics.lock().expect("topics");
                        touched.iter().any(|(topic, _)| !topics.contains_key(topic))
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
        s.pulled(1, 100, t0);
        s.pulled(2, 300, t0 + Duration::from_secs(5));
        assert_eq!(s.acked(t0 + Duration::from_secs(6), silent), Some(300));
        assert_eq!(s.acked(t0 + Duration::from_secs(14), silent), Some(300), "slave 1 went silent");
        assert_eq!(s.acked(t0 + Duration::from_secs(16), silent), None);
    }
}
