//! The controller's Raft storage on a [`Disk`]: the log as checksummed
//! records appended and synced before openraft hears they are written, the
//! vote and the committed id replaced atomically, and the state machine in
//! memory, rebuilt at start by applying the log up to the committed id
//! (openraft replays it). Nothing is ever snapshotted or purged: the log of
//! a controller grows with elections and set changes only, a few records a
//! minute at most.

use super::state::{Command, ControllerState, Outcome};
use super::TypeConfig;
use crate::store::Disk;
use openraft::storage::{LogState, Snapshot};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder, RaftStorage, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership, Vote,
};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};

const LOG_PATH: &str = "raft/log";
const VOTE_PATH: &str = "raft/vote";
const COMMITTED_PATH: &str = "raft/committed";
const PURGED_PATH: &str = "raft/purged";

type NodeId = u64;
type Result<T> = std::result::Result<T, StorageError<NodeId>>;

fn io(make: fn(AnyError) -> StorageIOError<NodeId>, e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    make(AnyError::new(&e)).into()
}

/// A record: length u32 | crc32 u32 of the JSON | JSON.
fn record(entry: &Entry<TypeConfig>) -> Vec<u8> {
    let json = serde_json::to_vec(entry).expect("log entries encode");
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&json).to_be_bytes());
    out.extend_from_slice(&json);
    out
}

/// The records of a log file in order, and how many bytes of it they
/// take: reading stops at the first torn or corrupt record.
fn parse_records(bytes: &[u8]) -> (Vec<Entry<TypeConfig>>, usize) {
    let mut entries = Vec::new();
    let mut pos = 0;
    while let Some(header) = bytes.get(pos..pos + 8) {
        let len = u32::from_be_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_be_bytes(header[4..].try_into().expect("4 bytes"));
        let Some(json) = bytes.get(pos + 8..pos + 8 + len) else { break };
        if crc32fast::hash(json) != crc {
            break;
        }
        let Ok(entry) = serde_json::from_slice(json) else { break };
        entries.push(entry);
        pos += 8 + len;
    }
    (entries, pos)
}

fn read_json<T: DeserializeOwned>(disk: &dyn Disk, path: &str) -> std::io::Result<Option<T>> {
    let Some(bytes) = crate::store::disk::read_all(disk, path)? else { return Ok(None) };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{path}: {e}")))
}

fn write_json<T: Serialize>(disk: &dyn Disk, path: &str, value: &T) -> std::io::Result<()> {
    disk.write_atomic(path, &serde_json::to_vec(value).expect("raft state encodes"))
}

struct LogInner {
    disk: Arc<dyn Disk>,
    log: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
}

impl LogInner {
    /// Rewrites the log file with what the map holds, in one durable step.
    fn rewrite(&self) -> std::io::Result<()> {
        let bytes: Vec<u8> = self.log.values().flat_map(record).collect();
        self.disk.write_atomic(LOG_PATH, &bytes)
    }
}

/// The Raft log, vote and committed id of one controller, with its state
/// machine: openraft's (v1) storage, which it splits with its `Adaptor`.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Mutex<LogInner>>,
    /// What was applied, shared with the controller that reads it.
    pub machine: StateMachine,
}

impl Storage {
    /// Opens the log on `disk`, cutting a torn or corrupt tail (a record
    /// that never finished before a crash was never acknowledged to the
    /// leader, so dropping it is safe).
    pub fn open(disk: Arc<dyn Disk>) -> std::io::Result<Storage> {
        let bytes = crate::store::disk::read_all(disk.as_ref(), LOG_PATH)?.unwrap_or_default();
        let (entries, used) = parse_records(&bytes);
        if used != bytes.len() {
            tracing::warn!(kept = entries.len(), cut_bytes = bytes.len() - used, "controller log: torn tail cut");
            disk.truncate(LOG_PATH, used as u64)?;
            disk.sync(LOG_PATH)?;
        }
        let last_purged = read_json(disk.as_ref(), PURGED_PATH)?;
        let log = entries.into_iter().map(|e| (e.log_id.index, e)).collect();
        Ok(Storage { inner: Arc::new(Mutex::new(LogInner { disk, log, last_purged })), machine: StateMachine::default() })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner.lock().expect("raft log")
    }

    /// Whether the log holds nothing (a controller never initialized).
    pub fn is_empty(&self) -> bool {
        let inner = self.lock();
        inner.log.is_empty() && inner.last_purged.is_none()
    }
}

impl RaftLogReader<TypeConfig> for Storage {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(&mut self, range: RB) -> Result<Vec<Entry<TypeConfig>>> {
        Ok(self.lock().log.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for Storage {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>> {
        let applied = self.machine.applied.lock().expect("state machine");
        let data = serde_json::to_vec(&SnapshotData { state: applied.state.clone() }).map_err(|e| io(StorageIOError::read_state_machine, e))?;
        let snapshot_id = applied.last_applied.map_or_else(|| "empty".to_string(), |id| format!("{}-{}", id.leader_id, id.index));
        let meta = SnapshotMeta { last_log_id: applied.last_applied, last_membership: applied.membership.clone(), snapshot_id };
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStorage<TypeConfig> for Storage {
    type LogReader = Self;
    type SnapshotBuilder = Self;

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<()> {
        let inner = self.lock();
        write_json(inner.disk.as_ref(), VOTE_PATH, vote).map_err(|e| io(StorageIOError::write_vote, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>> {
        let inner = self.lock();
        read_json(inner.disk.as_ref(), VOTE_PATH).map_err(|e| io(StorageIOError::read_vote, e))
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<()> {
        let inner = self.lock();
        write_json(inner.disk.as_ref(), COMMITTED_PATH, &committed).map_err(|e| io(StorageIOError::write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>> {
        let inner = self.lock();
        Ok(read_json::<Option<LogId<NodeId>>>(inner.disk.as_ref(), COMMITTED_PATH).map_err(|e| io(StorageIOError::read, e))?.flatten())
    }

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        let inner = self.lock();
        let last = inner.log.values().next_back().map(|e| e.log_id).or(inner.last_purged);
        Ok(LogState { last_purged_log_id: inner.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn append_to_log<I>(&mut self, entries: I) -> Result<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
    {
        let mut inner = self.lock();
        let mut bytes = Vec::new();
        for entry in entries {
            bytes.extend_from_slice(&record(&entry));
            inner.log.insert(entry.log_id.index, entry);
        }
        // Durable before openraft counts it written (and a follower says so).
        inner.disk.append(LOG_PATH, &bytes).and_then(|()| inner.disk.sync(LOG_PATH)).map_err(|e| io(StorageIOError::write_logs, e))
    }

    async fn delete_conflict_logs_since(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        let mut inner = self.lock();
        inner.log.split_off(&log_id.index);
        inner.rewrite().map_err(|e| io(StorageIOError::write_logs, e))
    }

    async fn purge_logs_upto(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        let mut inner = self.lock();
        write_json(inner.disk.as_ref(), PURGED_PATH, &log_id).map_err(|e| io(StorageIOError::write_logs, e))?;
        inner.last_purged = Some(log_id);
        inner.log = inner.log.split_off(&(log_id.index + 1));
        inner.rewrite().map_err(|e| io(StorageIOError::write_logs, e))
    }

    async fn last_applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>)> {
        let applied = self.machine.applied.lock().expect("state machine");
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply_to_state_machine(&mut self, entries: &[Entry<TypeConfig>]) -> Result<Vec<Outcome>> {
        let mut applied = self.machine.applied.lock().expect("state machine");
        let mut outcomes = Vec::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            outcomes.push(match &entry.payload {
                EntryPayload::Blank => Outcome::default(),
                EntryPayload::Normal(command) => apply_command(&mut applied.state, command),
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), membership.clone());
                    Outcome::default()
                }
            });
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta<NodeId, BasicNode>, snapshot: Box<Cursor<Vec<u8>>>) -> Result<()> {
        let data: SnapshotData = serde_json::from_slice(snapshot.get_ref())
            .map_err(|e| StorageError::from(StorageIOError::read_snapshot(Some(meta.signature()), AnyError::new(&e))))?;
        let mut applied = self.machine.applied.lock().expect("state machine");
        applied.state = data.state;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>> {
        Ok(None)
    }
}

/// The applied state: the groups, and where applying got to.
#[derive(Debug, Default)]
pub struct Applied {
    /// The groups.
    pub state: ControllerState,
    /// The last log id applied.
    pub last_applied: Option<LogId<NodeId>>,
    /// The membership last applied.
    pub membership: StoredMembership<NodeId, BasicNode>,
}

/// The state machine, in memory (rebuilt from the log at start).
#[derive(Clone, Default)]
pub struct StateMachine {
    /// What was applied.
    pub applied: Arc<Mutex<Applied>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotData {
    state: ControllerState,
}

fn apply_command(state: &mut ControllerState, command: &Command) -> Outcome {
    let outcome = state.apply(command);
    if let Some(why) = &outcome.refused {
        tracing::info!(?command, why = %why, "controller command refused");
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemDisk;
    use openraft::CommittedLeaderId;

    fn entry(index: u64, group: &str) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Normal(Command::Register { group: group.into(), id: index, addr: "a:1".into() }),
        }
    }

    #[test]
    fn the_log_survives_reopen_and_a_torn_tail_is_cut() {
        let disk = MemDisk::new();
        let bytes: Vec<u8> = (1..=3).flat_map(|i| record(&entry(i, "g"))).collect();
        disk.append(LOG_PATH, &bytes).unwrap();
        disk.append(LOG_PATH, &record(&entry(4, "g"))[..10]).unwrap();
        let store = Storage::open(Arc::new(disk.clone())).unwrap();
        assert_eq!(store.lock().log.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(disk.len(LOG_PATH).unwrap(), Some(bytes.len() as u64));
        // A flipped byte in the middle keeps what precedes it.
        let (_, used) = parse_records(&bytes[..bytes.len() - 3]);
        assert_eq!(parse_records(&bytes[..used]).0.len(), 2);
    }
}
