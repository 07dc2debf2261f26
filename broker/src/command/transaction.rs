//! Transactions: a half message's end, and the broker's check-back.

use crate::model::{MessageExt, TransactionState};
use serde::{Deserialize, Serialize};

/// Producer -> broker: the local transaction of a half message ended
/// (RocketMQ's `END_TRANSACTION`), after its executor or a check-back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndTransaction {
    /// The half's producer group.
    pub producer_group: String,
    /// Where the half is in this broker's commit log.
    pub commit_log_offset: u64,
    /// The half's unique id, checked against the stored half.
    pub msg_id: String,
    /// Commit, rollback, or unknown (ignored: the broker asks again).
    pub state: TransactionState,
    /// Whether a check-back asked for this answer.
    pub from_check: bool,
}

/// Broker -> producer, over the producer's connection: what became of the
/// local transaction of this half? The producer acknowledges at once and
/// answers later with an [`EndTransaction`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckTransactionState {
    /// The producer group asked.
    pub producer_group: String,
    /// The half, with its real topic and queue.
    pub half: MessageExt,
    /// Checks of this half before this one.
    pub check_times: u32,
}
