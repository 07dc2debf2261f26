//! Replication: a slave copies its master's log, topics, offsets and
//! progress files.

use serde::{Deserialize, Serialize};

/// Slave -> master: the commit log from `from_offset` (this slave's end),
/// waiting up to `wait_ms` for more; and this slave holds its log durably
/// up to `durable_offset` (what sync replication waits for).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaPull {
    /// The broker group; a master of another group refuses.
    pub broker_name: String,
    /// The slave's id in the group.
    pub broker_id: u64,
    /// The master term the slave follows (0 without a controller): a
    /// master of another term refuses the pull.
    pub epoch: u64,
    /// Where the slave's log ends.
    pub from_offset: u64,
    /// How far the slave's log is durable.
    pub durable_offset: u64,
    /// Most bytes wanted.
    pub max_bytes: u32,
    /// Longest the master holds the pull when it has nothing new.
    pub wait_ms: u64,
}

/// Slave -> master: the topics and committed consumer offsets to copy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetReplicaConfig {
    /// The broker group.
    pub broker_name: String,
}

/// Slave -> master, before it copies: the master's terms and log end, to
/// find where the slave's log parts from the master's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetEpochs {
    /// The broker group.
    pub broker_name: String,
}

/// A log's master terms: (term, offset of its first write), oldest first,
/// and where the log ends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochList {
    /// (term, start offset).
    pub terms: Vec<(u64, u64)>,
    /// The commit log's end.
    pub end: u64,
}

/// A master's topics and committed consumer offsets, for its slaves, and
/// its durable service progress (delay levels, timers, transaction check
/// counts) as the files it persisted, so a slave that takes over resumes
/// where its master got to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaConfig {
    /// Every topic the master serves.
    pub topics: Vec<crate::model::TopicConfig>,
    /// (group, topic, queue id, next offset to consume).
    pub offsets: Vec<(String, String, u32, u64)>,
    /// (path, contents) of the master's progress files.
    pub progress: Vec<(String, Vec<u8>)>,
    /// The master's durable log end when it read them: a slave writes them
    /// only once it holds its log that far.
    pub progress_end: u64,
    /// (group, topic, queue id, reset generation) of every queue whose
    /// offset an operator reset.
    pub generations: Vec<(String, String, u32, u64)>,
    /// Every subscription group the master keeps.
    pub subscription_groups: Vec<crate::model::SubscriptionGroup>,
}

/// A piece of a master's commit log for a slave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaChunk {
    /// Where the bytes start in the master's log.
    pub offset: u64,
    /// Whole entries (or a corrupt run), to append as they are.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
    /// Where the master's log ends.
    pub master_end: u64,
    /// The master's terms: (term, start offset).
    pub epochs: Vec<(u64, u64)>,
    /// How far the master's log is confirmed (held by every replica the
    /// controller may elect): a slave in controller mode shows consumers
    /// no further, since past it its log may yet be cut.
    pub confirmed: u64,
}
