//! Transactional messages: half messages, their end (commit or rollback),
//! and the check-back service that asks a producer about halves left open.
//!
//! A half is stored in [`HALF_TOPIC`] with its real topic and queue as its
//! destination, invisible to consumers. Its end writes an op record to
//! [`OP_TOPIC`] whose body is the half's queue offset; a commit first
//! writes the real message (same id, key and properties, plus the half's
//! offset in [`PROPERTY_HALF_OFFSET`]). A half with no op record older than
//! `transactionTimeOut` is checked back: the broker asks one live producer
//! of its group, over that producer's own connection, and the producer
//! answers with an end. After `transactionCheckMax` checks the half is
//! moved aside to [`CHECK_MAX_TOPIC`] and reported.
//!
//! What survives a restart: halves and op records are in the commit log
//! (durable as the flush mode promises), and the set of ended halves is
//! rebuilt from the op records at open. Check counts are persisted in
//! `config/transactionCheck.json` after each round that changed them.
//!
//! Field defects of Apache RocketMQ avoided: an error during one check does
//! not end the round (#9500); a half is never checked once its end arrived
//! (#8158), and an end that arrives twice writes one message; a check
//! counts only when a producer took it (#8311).

use super::Broker;
use crate::bugs::{self, Bug};
use crate::marks::{self, Mark};
use crate::model::{
    Delayed, Message, MessageExt, TransactionState, CHECK_MAX_TOPIC, HALF_TOPIC, OP_TOPIC, PROPERTY_HALF_OFFSET,
    PROPERTY_PRODUCER_GROUP,
};
use crate::command::{CheckTransactionState, EndTransaction, Outcome, Refusal, Refused, SendStatus};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

/// Where the check counts of open halves are persisted.
pub(super) const CHECKS_PATH: &str = "config/transactionCheck.json";

/// The tag of op records (RocketMQ's `REMOVETAG`).
const OP_TAG: &str = "d";

/// The property of an op record naming how the half ended.
const PROPERTY_OUTCOME: &str = "TRAN_OUTCOME";

/// Halves read per batch while scanning.
const SCAN_BATCH: usize = 64;

/// Checks sent at once within a round.
const CHECKS_AT_ONCE: usize = 8;

/// Live producers of each producer group, from their heartbeats.
#[derive(Debug, Default)]
pub struct ProducerGroups {
    /// group -> client id -> (its connection, last heartbeat on the broker's clock).
    groups: BTreeMap<String, BTreeMap<String, (SocketAddr, u64)>>,
}

impl ProducerGroups {
    /// Records a heartbeat of `client_id` in `group` that came from `peer`.
    pub fn heartbeat(&mut self, client_id: &str, group: &str, peer: SocketAddr, now_ms: u64) {
        self.groups.entry(group.to_string()).or_default().insert(client_id.to_string(), (peer, now_ms));
    }

    /// The connection from `peer` closed: its producers leave their groups.
    pub fn connection_closed(&mut self, peer: SocketAddr) {
        for members in self.groups.values_mut() {
            members.retain(|_, (p, _)| *p != peer);
        }
    }

    /// Drops producers silent for `expiry_ms`.
    pub fn expire(&mut self, now_ms: u64, expiry_ms: u64) {
        for members in self.groups.values_mut() {
            members.retain(|_, (_, seen)| now_ms.saturating_sub(*seen) < expiry_ms);
        }
    }

    /// The connection a client heartbeats on, in any producer group.
    pub fn connection_of(&self, client_id: &str) -> Option<SocketAddr> {
        self.groups.values().find_map(|m| m.get(client_id)).map(|(peer, _)| *peer)
    }

    /// A group's live producers, as `mqadmin producerConnection` shows them.
    pub fn connections(&self, group: &str) -> Vec<crate::command::ProducerConnection> {
        let members = self.groups.get(group).into_iter().flatten();
        members
            .map(|(id, (peer, seen))| crate::command::ProducerConnection { client_id: id.clone(), addr: peer.to_string(), last_heartbeat_ms: *seen })
            .collect()
    }

    /// The connections of a group's live producers, by client id.
    pub fn members(&self, group: &str) -> Vec<(String, SocketAddr)> {
        self.groups.get(group).map(|m| m.iter().map(|(id, (peer, _))| (id.clone(), *peer)).collect()).unwrap_or_default()
    }
}

/// What the broker knows of its halves.
#[derive(Debug, Default)]
pub struct TransactionTable {
    /// Half queue offsets with an op record.
    ended: BTreeSet<u64>,
    /// Half queue offsets whose end is being written now.
    ending: BTreeSet<u64>,
    /// Checks sent per open half.
    checks: BTreeMap<u64, u32>,
    /// Open halves whose producer group had no live producer at their
    /// last check: nobody can answer for them until one comes back.
    orphans: BTreeSet<u64>,
    /// Every half below this offset has ended.
    low: u64,
    /// Halves moved aside since the broker started.
    moved_aside: u64,
    /// Rounds of checks since the broker started (rotates the producer asked).
    rounds: u64,
    dirty: bool,
}

#[derive(Serialize, Deserialize)]
struct Persisted {
    /// Half queue offset -> checks sent.
    checks: BTreeMap<u64, u32>,
}

impl TransactionTable {
    /// The table at open: `ended` from the op records, `checks` from
    /// [`CHECKS_PATH`] if it exists, `low` the half queue's first offset.
    pub fn new(ended: BTreeSet<u64>, persisted: Option<&[u8]>, low: u64) -> Result<TransactionTable, String> {
        let checks = match persisted {
            None => BTreeMap::new(),
            Some(bytes) => serde_json::from_slice::<Persisted>(bytes).map_err(|e| format!("{CHECKS_PATH}: {e}"))?.checks,
        };
        let mut table = TransactionTable { ended, checks, low, ..TransactionTable::default() };
        table.advance_low();
        Ok(table)
    }

    fn advance_low(&mut self) {
        while self.ended.remove(&self.low) {
            self.checks.remove(&self.low);
            self.low += 1;
        }
    }

    /// Whether the half at `offset` has ended.
    pub fn has_ended(&self, offset: u64) -> bool {
        offset < self.low || self.ended.contains(&offset)
    }

    /// Claims the end of the half at `offset`: false when it has ended or
    /// another end of it is being written.
    fn begin_end(&mut self, offset: u64) -> bool {
        !self.has_ended(offset) && self.ending.insert(offset)
    }

    /// The end claimed at `offset` is written (`done`) or failed.
    fn finish_end(&mut self, offset: u64, done: bool) {
        self.ending.remove(&offset);
        if done {
            self.ended(offset);
        }
    }

    /// Records that the half at `offset` has ended.
    pub fn ended(&mut self, offset: u64) {
        self.orphans.remove(&offset);
        if offset >= self.low {
            self.ended.insert(offset);
            if self.checks.remove(&offset).is_some() {
                self.dirty = true;
            }
            self.advance_low();
        }
    }

    /// Checks sent for the half at `offset`.
    pub fn checks(&self, offset: u64) -> u32 {
        self.checks.get(&offset).copied().unwrap_or(0)
    }

    /// A producer took a check of the half at `offset`.
    pub fn checked(&mut self, offset: u64) {
        *self.checks.entry(offset).or_default() += 1;
        self.dirty = true;
    }

    /// Open halves with no live producer to ask, at their last check.
    pub fn orphaned(&self) -> u64 {
        self.orphans.len() as u64
    }

    /// Open halves below the half queue's end `end`.
    pub fn open(&self, end: u64) -> u64 {
        let ended = self.ended.range(self.low..end).count() as u64;
        end.saturating_sub(self.low).saturating_sub(ended)
    }

    /// The JSON to persist when check counts changed since the last call.
    pub fn take_snapshot(&mut self) -> Option<Vec<u8>> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        Some(serde_json::to_vec_pretty(&Persisted { checks: self.checks.clone() }).expect("checks encode"))
    }

    /// Halves moved aside since start.
    pub fn moved_aside(&self) -> u64 {
        self.moved_aside
    }
}

/// The half queue offsets that op records name, read from every op record
/// in `store`.
pub(super) fn ended_halves(store: &mut crate::store::MessageStore) -> crate::error::Result<BTreeSet<u64>> {
    let mut ended = BTreeSet::new();
    let (mut offset, end) = store.queue_offsets(OP_TOPIC, 0);
    while offset < end {
        let got = store.get_or_rebuild(OP_TOPIC, 0, offset, SCAN_BATCH, u64::MAX, &|_| true)?;
        for op in &got.messages {
            if let Some(half) = std::str::from_utf8(&op.message.body).ok().and_then(|b| b.parse::<u64>().ok()) {
                ended.insert(half);
            }
        }
        if got.next_offset <= offset {
            break;
        }
        offset = got.next_offset;
    }
    Ok(ended)
}

impl Broker {
    /// Turns a transactional message into its half: stored in the half
    /// topic, bound for the topic and queue it names now.
    pub(super) fn make_half(&self, msg: &mut MessageExt, producer_group: &str) {
        msg.message.properties.insert(PROPERTY_PRODUCER_GROUP.to_string(), producer_group.to_string());
        let delayed = Delayed {
            topic: std::mem::replace(&mut msg.message.topic, HALF_TOPIC.to_string()),
            queue_id: std::mem::replace(&mut msg.queue_id, 0),
            level: 0,
            deliver_at_ms: 0,
        };
        msg.delayed = Some(delayed);
    }

    /// A producer ends a half (RocketMQ's `endTransaction`), after its
    /// executor or a check-back.
    pub async fn end_transaction(&self, command: EndTransaction) -> Outcome<()> {
        let EndTransaction { producer_group, commit_log_offset, msg_id, state, from_check } = command;
        self.refuse_on_slave("the end of a transaction")?;
        tracing::debug!(%msg_id, ?state, from_check, "end of a transaction");
        if from_check && state == TransactionState::Commit && bugs::active(Bug::CheckCommitIgnored) {
            // The planted defect: a check-back's commit is taken and dropped.
            return Ok(());
        }
        let half = self
            .store
            .lock()
            .expect("store")
            .read_at(commit_log_offset)
            .map_err(|e| Refusal::new(Refused::NotFound, format!("no half message at offset {commit_log_offset}: {e}")))?;
        if half.message.topic != HALF_TOPIC || half.msg_id() != msg_id {
            return Err(Refusal::new(Refused::Illegal, format!("the message at offset {commit_log_offset} is not the half message {msg_id}")));
        }
        let group = half.message.properties.get(PROPERTY_PRODUCER_GROUP).cloned().unwrap_or_default();
        if group != producer_group {
            return Err(Refusal::new(
                Refused::NoPermission,
                format!("half message {msg_id} belongs to producer group {group}, not {producer_group}"),
            ));
        }
        if state == TransactionState::Unknown {
            return Ok(());
        }
        let offset = half.queue_offset;
        let claimed = self.transactions.lock().expect("transactions").begin_end(offset);
        if !claimed {
            marks::reach(Mark::TransactionEndRepeated);
            if !(bugs::active(Bug::CommitTwice) && state == TransactionState::Commit) {
                return Ok(());
            }
            // The planted defect: the repeated commit writes the message
            // again, as if the half were still open.
            self.transactions.lock().expect("transactions").ending.insert(offset);
        }
        let result = self.write_end(&half, state).await;
        // The planted defect: a rollback is written, its half left open.
        let forgotten = bugs::active(Bug::RollbackRechecked) && state == TransactionState::Rollback;
        self.transactions.lock().expect("transactions").finish_end(offset, result.is_ok() && !forgotten);
        result
    }

    /// Writes a half's end: for a commit the real message (unless a copy
    /// of this half is already stored: a commit whose op record a crash
    /// took), then the op record.
    async fn write_end(&self, half: &MessageExt, state: TransactionState) -> Outcome<()> {
        let deliver = state == TransactionState::Commit || bugs::active(Bug::RollbackDelivered);
        if deliver && (bugs::active(Bug::CommitTwice) || self.committed_copy(half).is_none()) {
            let real = committed(half);
            let now = self.clock.now_ms();
            durable(self.store_message(real, now, None).await)?;
        }
        self.write_op(half, state.name()).await
    }

    /// The stored copy a commit of `half` made, if any: the index finds it
    /// by the half's id, in the real topic, with the half's offset.
    fn committed_copy(&self, half: &MessageExt) -> Option<MessageExt> {
        let topic = half.delayed.as_ref()?.topic.clone();
        let offset = half.queue_offset.to_string();
        let found = self.store.lock().expect("store").with_index_rebuild(|s| s.query_by_unique_id(&half.msg_id())).ok()?;
        found.into_iter().find(|m| m.message.topic == topic && m.message.properties.get(PROPERTY_HALF_OFFSET) == Some(&offset))
    }

    async fn write_op(&self, half: &MessageExt, outcome: &str) -> Outcome<()> {
        let op = MessageExt {
            message: Message::new(OP_TOPIC, half.queue_offset.to_string()).with_tags(OP_TAG).with_property(PROPERTY_OUTCOME, outcome),
            broker_name: self.config.broker_name.clone(),
            store_host: self.config.advertise_addr.clone(),
            born_host: self.config.advertise_addr.clone(),
            born_timestamp_ms: self.clock.now_ms(),
            ..MessageExt::default()
        };
        let now = self.clock.now_ms();
        durable(self.store_message(op, now, None).await)
    }

    /// One round of the check-back service: every open half older than
    /// `transactionTimeOut` is checked, or moved aside past
    /// `transactionCheckMax` checks.
    pub(super) async fn check_round(&self) {
        let now = self.clock.now_ms();
        let round = {
            let mut t = self.transactions.lock().expect("transactions");
            t.rounds += 1;
            t.rounds
        };
        let mut due = Vec::new();
        let mut aside = Vec::new();
        let mut offset = self.transactions.lock().expect("transactions").low;
        loop {
            let got = {
                let mut store = self.store.lock().expect("store");
                let visible_end = self.visible_end(&store);
                store.get_or_rebuild(HALF_TOPIC, 0, offset, SCAN_BATCH, visible_end, &|_| true)
            };
            let got = match got {
                Ok(got) => got,
                Err(e) => {
                    tracing::warn!(offset, error = %e, "half messages unreadable; the check round goes on with those read");
                    break;
                }
            };
            {
                let t = self.transactions.lock().expect("transactions");
                for half in got.messages {
                    if t.has_ended(half.queue_offset) || now.saturating_sub(half.store_timestamp_ms) < self.config.transaction_timeout_ms {
                        continue;
                    }
                    if t.checks(half.queue_offset) >= self.config.transaction_check_max {
                        aside.push(half);
                    } else {
                        due.push(half);
                    }
                }
            }
            if got.next_offset <= offset || got.next_offset >= got.max_offset {
                break;
            }
            offset = got.next_offset;
        }
        for half in aside {
            self.move_aside(&half).await;
        }
        for chunk in due.chunks(CHECKS_AT_ONCE) {
            let sent = futures::future::join_all(chunk.iter().map(|half| self.check(half, round))).await;
            if bugs::active(Bug::CheckRoundAborts) && sent.iter().any(|ok| !ok) {
                // The planted defect (Apache RocketMQ #9500): the first
                // failed check ends the round.
                break;
            }
        }
        self.persist_checks();
    }

    /// Asks one live producer of the half's group about it; true when one
    /// took the question (only then does the half's check count grow).
    async fn check(&self, half: &MessageExt, round: u64) -> bool {
        let group = half.message.properties.get(PROPERTY_PRODUCER_GROUP).cloned().unwrap_or_default();
        let members = self.producers.lock().expect("producers").members(&group);
        let live = self.live_peers(members.iter().map(|(_, addr)| addr));
        if live.is_empty() {
            tracing::debug!(group, offset = half.queue_offset, "no live producer of the group to check back with");
            self.transactions.lock().expect("transactions").orphans.insert(half.queue_offset);
            return false;
        }
        self.transactions.lock().expect("transactions").orphans.remove(&half.queue_offset);
        // A different producer each round, so one that stopped answering
        // without closing its connection does not keep every check.
        let peer = &live[((half.queue_offset + round) % live.len() as u64) as usize];
        let check = CheckTransactionState {
            producer_group: group,
            half: real_view(half),
            check_times: self.transactions.lock().expect("transactions").checks(half.queue_offset),
        };
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        match peer.check_transaction(check, timeout).await {
            Ok(()) => {
                let mut t = self.transactions.lock().expect("transactions");
                if !t.has_ended(half.queue_offset) {
                    t.checked(half.queue_offset);
                }
                marks::reach(Mark::TransactionChecked);
                true
            }
            Err(e) => {
                tracing::debug!(peer = peer.name(), error = %e, "check-back failed");
                false
            }
        }
    }

    /// Moves a half checked too often aside: a copy in
    /// [`CHECK_MAX_TOPIC`], then an op record ending it.
    async fn move_aside(&self, half: &MessageExt) {
        if !self.transactions.lock().expect("transactions").begin_end(half.queue_offset) {
            return;
        }
        let result = async {
            self.system_topic(CHECK_MAX_TOPIC)?;
            // It keeps its destination, so an operator can see where it
            // was bound.
            let copy = MessageExt {
                message: Message { topic: CHECK_MAX_TOPIC.to_string(), ..half.message.clone() },
                queue_id: 0,
                ..half.clone()
            };
            let now = self.clock.now_ms();
            durable(self.store_message(copy, now, None).await)?;
            self.write_op(half, "moved-aside").await
        }
        .await;
        let done = result.is_ok();
        let mut t = self.transactions.lock().expect("transactions");
        t.finish_end(half.queue_offset, done);
        if done {
            t.moved_aside += 1;
            marks::reach(Mark::TransactionMovedAside);
            tracing::warn!(
                msg_id = %half.msg_id(),
                checks = self.config.transaction_check_max,
                "a half message was checked back too often without an answer; moved aside to {CHECK_MAX_TOPIC}"
            );
        }
    }

    /// After the store was reopened: which halves ended is read again from
    /// the op records (those not durable may be gone, and their halves are
    /// checked again).
    pub(super) fn rebuild_transactions(&self) {
        let mut store = self.store.lock().expect("store");
        match ended_halves(&mut store) {
            Ok(ended) => {
                let low = store.queue_offsets(HALF_TOPIC, 0).0;
                let mut t = self.transactions.lock().expect("transactions");
                t.ended = ended;
                t.low = low;
                t.advance_low();
            }
            Err(e) => tracing::warn!(error = %e, "op records could not be read back"),
        }
    }

    pub(super) fn persist_checks(&self) {
        let _order = self.persisting.lock().expect("persisting");
        let snapshot = self.transactions.lock().expect("transactions").take_snapshot();
        if let Some(bytes) = snapshot {
            if let Err(e) = self.disk.write_atomic(CHECKS_PATH, &bytes) {
                self.transactions.lock().expect("transactions").dirty = true;
                tracing::warn!(error = %e, "persisting transaction check counts failed");
            }
        }
    }
}

/// The message a commit stores: the half's content in its real topic and
/// queue, with the half's offset.
fn committed(half: &MessageExt) -> MessageExt {
    let mut real = real_view(half);
    real.message.properties.insert(PROPERTY_HALF_OFFSET.to_string(), half.queue_offset.to_string());
    real.commit_log_offset = 0;
    real.store_size = 0;
    real.queue_offset = 0;
    real
}

/// A half as its producer sent it: its real topic and queue.
fn real_view(half: &MessageExt) -> MessageExt {
    let mut real = half.clone();
    if let Some(dest) = real.delayed.take() {
        real.message.topic = dest.topic;
        real.queue_id = dest.queue_id;
    }
    real
}

/// A store result as the end of a transaction needs it: durable as
/// configured, or why not.
pub(super) fn durable(stored: Outcome<(crate::store::PutResult, SendStatus)>) -> Outcome<()> {
    match stored? {
        (_, SendStatus::SendOk) => Ok(()),
        (_, status) => Err(Refusal::new(Refused::NotDurable, format!("stored but not durable: {status:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_halves_move_the_low_mark_and_forget_their_checks() {
        let mut t = TransactionTable::new(BTreeSet::from([1, 3]), None, 0).unwrap();
        assert_eq!(t.low, 0);
        assert_eq!(t.open(5), 3, "0, 2 and 4 are open");
        t.checked(0);
        t.checked(2);
        t.checked(2);
        assert_eq!(t.checks(2), 2);
        let snapshot = t.take_snapshot().unwrap();
        assert!(t.take_snapshot().is_none());
        t.ended(0);
        assert_eq!(t.low, 2, "0 and 1 ended");
        assert!(t.has_ended(1) && !t.has_ended(2));
        assert!(t.begin_end(2));
        assert!(!t.begin_end(2), "one end at a time");
        t.finish_end(2, false);
        assert!(t.begin_end(2), "a failed end may be tried again");
        t.finish_end(2, true);
        assert_eq!(t.low, 4);
        assert!(!t.begin_end(3), "an ended half is not ended twice");
        assert_eq!(t.open(5), 1);
        let back = TransactionTable::new(BTreeSet::new(), Some(&snapshot), 0).unwrap();
        assert_eq!((back.checks(0), back.checks(2)), (1, 2), "check counts survive a restart");
        assert!(TransactionTable::new(BTreeSet::new(), Some(b"{"), 0).unwrap_err().contains(CHECKS_PATH));
    }

    #[test]
    fn producers_leave_with_their_connection_or_their_silence() {
        let mut g = ProducerGroups::default();
        let (a, b): (SocketAddr, SocketAddr) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
        g.heartbeat("p1", "tx", a, 0);
        g.heartbeat("p2", "tx", b, 10_000);
        assert_eq!(g.members("tx").len(), 2);
        g.connection_closed(a);
        assert_eq!(g.members("tx"), [("p2".to_string(), b)]);
        g.expire(130_000, 120_000);
        assert!(g.members("tx").is_empty());
    }
}
