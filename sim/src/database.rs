//! The consumers' business database: a node of its own (`db-0`) with its own
//! simulated disk, which the nemesis can kill and power off like a broker.
//!
//! An idempotent consumer applies a message's business effect and records
//! its business key in one transaction, and acknowledges the message only
//! after that transaction committed (was fsynced). A non-idempotent
//! (control) group applies every delivery. At the end of a run the harness
//! reads the effects from the database's durable contents, so the
//! exactly-once check judges what a real database would hold, not what the
//! harness meant to do.
//!
//! On disk the database is one append-only log, `effects.log`, of records
//! `| len u32 BE | crc32 u32 BE | JSON of an Effect |`. Opening it replays
//! the log and cuts a torn or corrupt tail, as the broker's commit log does.

use broker::store::Disk;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io;
use std::sync::Arc;

/// The log's file name.
const LOG: &str = "effects.log";
/// Bytes before each record's JSON.
const RECORD_HEADER_LEN: usize = 8;
/// Largest record accepted when replaying, so a corrupt length cannot make
/// the replay allocate without bound.
const RECORD_LEN_MAX: usize = 64 * 1024;

/// One committed transaction: the business effect of `key` for `group`,
/// applied on delivery of `msg_id`. For an idempotent group the same record
/// is the key's deduplication entry: effect and key commit together.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Effect {
    /// Consumer group.
    pub group: String,
    /// Business key.
    pub key: String,
    /// The delivered message that caused it.
    pub msg_id: String,
}

/// A request to the database, one JSON line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyRequest {
    /// The effect to apply.
    pub effect: Effect,
    /// Skip the effect when the key already took effect in the group.
    pub idempotent: bool,
    /// Only ask whether the key already took effect (a consumer that
    /// deduplicates on receipt); nothing is written.
    #[serde(default)]
    pub check_only: bool,
}

/// What an apply did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Applied {
    /// The effect was applied and committed.
    New,
    /// An idempotent group had applied this key already: nothing written.
    Duplicate,
    /// Answer to `check_only`: the key has not taken effect yet.
    NotYet,
}

/// The database's state over its disk.
pub struct Database {
    disk: Arc<dyn Disk>,
    /// (group, key) pairs that took effect, for idempotent applies.
    keys: BTreeSet<(String, String)>,
}

impl Database {
    /// Opens the database, replaying its log and cutting (durably) a torn
    /// or corrupt tail.
    pub fn open(disk: Arc<dyn Disk>) -> io::Result<Database> {
        let (effects, valid_len) = replay(disk.as_ref())?;
        if disk.len(LOG)?.is_some_and(|len| len > valid_len) {
            disk.truncate(LOG, valid_len)?;
            disk.sync(LOG)?;
        }
        let keys = effects.into_iter().map(|e| (e.group, e.key)).collect();
        Ok(Database { disk, keys })
    }

    /// Applies `effect` in one transaction (one record, then an fsync). An
    /// error means the transaction may or may not be durable; the caller
    /// must not acknowledge the message.
    pub fn apply(&mut self, request: &ApplyRequest) -> io::Result<Applied> {
        let effect = &request.effect;
        let pair = (effect.group.clone(), effect.key.clone());
        if request.idempotent && self.keys.contains(&pair) {
            return Ok(Applied::Duplicate);
        }
        if request.check_only {
            return Ok(Applied::NotYet);
        }
        let json = serde_json::to_vec(effect).map_err(io::Error::other)?;
        let mut record = Vec::with_capacity(RECORD_HEADER_LEN + json.len());
        record.extend_from_slice(&(json.len() as u32).to_be_bytes());
        record.extend_from_slice(&crc32fast::hash(&json).to_be_bytes());
        record.extend_from_slice(&json);
        self.disk.append(LOG, &record)?;
        self.disk.sync(LOG)?;
        self.keys.insert(pair);
        Ok(Applied::New)
    }
}

/// Every effect in the log's intact prefix, and that prefix's length.
pub fn replay(disk: &dyn Disk) -> io::Result<(Vec<Effect>, u64)> {
    let Some(len) = disk.len(LOG)? else { return Ok((Vec::new(), 0)) };
    let data = disk.read(LOG, 0, len as usize)?;
    let mut effects = Vec::new();
    let mut pos = 0;
    while pos + RECORD_HEADER_LEN <= data.len() {
        let word = |at: usize| u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        let (body_len, crc) = (word(pos) as usize, word(pos + 4));
        let end = pos + RECORD_HEADER_LEN + body_len;
        if body_len > RECORD_LEN_MAX || end > data.len() {
            break;
        }
        let body = &data[pos + RECORD_HEADER_LEN..end];
        if crc32fast::hash(body) != crc {
            break;
        }
        let Ok(effect) = serde_json::from_slice(body) else { break };
        effects.push(effect);
        pos = end;
    }
    Ok((effects, pos as u64))
}

pub use node::{serve, DbClient, DB_PORT};

mod node {
    use super::{Applied, ApplyRequest, Database};
    use futures::{SinkExt, StreamExt};
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::net::{TcpListener, TcpStream};
    use tokio_util::codec::{Framed, LinesCodec};

    /// Port the database listens on.
    pub const DB_PORT: u16 = 5432;
    /// How long a client waits for one transaction before giving up.
    const APPLY_TIMEOUT: Duration = Duration::from_secs(2);
    /// Connections a client keeps open for reuse.
    const POOL_MAX: usize = 8;
    /// Longest request line the server reads.
    const LINE_MAX: usize = 64 * 1024;

    /// Serves `db` on `listener` until the node is killed.
    pub async fn serve(listener: TcpListener, db: Database) {
        let db = Arc::new(Mutex::new(db));
        while let Ok((stream, _)) = listener.accept().await {
            let db = db.clone();
            tokio::spawn(async move {
                let mut lines = Framed::new(stream, LinesCodec::new_with_max_length(LINE_MAX));
                while let Some(Ok(line)) = lines.next().await {
                    let answer = match serde_json::from_str::<ApplyRequest>(&line) {
                        Ok(request) => match db.lock().expect("database").apply(&request) {
                            Ok(applied) => serde_json::to_string(&applied).expect("an Applied serializes"),
                            Err(e) => format!("error: {e}"),
                        },
                        Err(e) => format!("error: bad request: {e}"),
                    };
                    if lines.send(answer).await.is_err() {
                        break;
                    }
                }
            });
        }
    }

    /// A consumer's connections to the database.
    #[derive(Clone)]
    pub struct DbClient {
        addr: SocketAddr,
        pool: Arc<Mutex<Vec<Framed<TcpStream, LinesCodec>>>>,
    }

    impl DbClient {
        /// A client of the database at `addr`; connects lazily.
        pub fn new(addr: SocketAddr) -> DbClient {
            DbClient { addr, pool: Arc::new(Mutex::new(Vec::new())) }
        }

        /// Runs one transaction. `Err` when it may not have committed (the
        /// database is down, slow, or failed its fsync).
        pub async fn apply(&self, request: &ApplyRequest) -> Result<Applied, String> {
            let line = serde_json::to_string(request).map_err(|e| e.to_string())?;
            let pooled = self.pool.lock().expect("pool").pop();
            let attempt = async {
                let mut conn = match pooled {
                    Some(conn) => conn,
                    None => Framed::new(TcpStream::connect(self.addr).await.map_err(|e| e.to_string())?, LinesCodec::new_with_max_length(LINE_MAX)),
                };
                conn.send(line).await.map_err(|e| e.to_string())?;
                let answer = match conn.next().await {
                    Some(Ok(answer)) => answer,
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("the database closed the connection".to_string()),
                };
                let applied = serde_json::from_str::<Applied>(&answer).map_err(|_| answer.clone())?;
                Ok((applied, conn))
            };
            match tokio::time::timeout(APPLY_TIMEOUT, attempt).await {
                Ok(Ok((applied, conn))) => {
                    let mut pool = self.pool.lock().expect("pool");
                    if pool.len() < POOL_MAX {
                        pool.push(conn);
                    }
                    Ok(applied)
                }
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("no answer from the database in {APPLY_TIMEOUT:?}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker::store::MemDisk;

    fn request(group: &str, key: &str, msg_id: &str, idempotent: bool) -> ApplyRequest {
        ApplyRequest { effect: Effect { group: group.into(), key: key.into(), msg_id: msg_id.into() }, idempotent, check_only: false }
    }

    #[test]
    fn idempotent_groups_apply_a_key_once_and_control_groups_every_time() {
        let disk = Arc::new(MemDisk::default());
        assert_eq!(replay(disk.as_ref()).unwrap(), (Vec::new(), 0), "a new database is empty");
        let mut db = Database::open(disk.clone()).unwrap();
        let check = |key: &str| ApplyRequest { check_only: true, ..request("billing", key, "m0", true) };
        assert_eq!(db.apply(&check("k1")).unwrap(), Applied::NotYet);
        assert_eq!(db.apply(&request("billing", "k1", "m1", true)).unwrap(), Applied::New);
        assert_eq!(db.apply(&check("k1")).unwrap(), Applied::Duplicate);
        assert_eq!(db.apply(&request("billing", "k1", "m1-again", true)).unwrap(), Applied::Duplicate);
        assert_eq!(db.apply(&request("ledger", "k1", "m1", false)).unwrap(), Applied::New);
        assert_eq!(db.apply(&request("ledger", "k1", "m1", false)).unwrap(), Applied::New);
        let (effects, _) = replay(disk.as_ref()).unwrap();
        assert_eq!(effects.len(), 3);
        // The dedupe state survives a restart: it is the log itself.
        let mut db = Database::open(disk).unwrap();
        assert_eq!(db.apply(&request("billing", "k1", "m1", true)).unwrap(), Applied::Duplicate);
    }

    #[test]
    fn a_power_loss_keeps_committed_effects_and_cuts_a_torn_tail() {
        let disk = Arc::new(MemDisk::default());
        let mut db = Database::open(disk.clone()).unwrap();
        db.apply(&request("billing", "k1", "m1", true)).unwrap();
        // A record written but never synced, torn by the power loss.
        disk.append(LOG, &[0, 0, 0, 40, 1, 2, 3]).unwrap();
        disk.power_loss(|n| n);
        let db = Database::open(disk.clone()).unwrap();
        assert!(db.keys.contains(&("billing".into(), "k1".into())));
        let (effects, len) = replay(disk.as_ref()).unwrap();
        assert_eq!(effects.len(), 1);
        assert_eq!(disk.len(LOG).unwrap(), Some(len));
    }
}
