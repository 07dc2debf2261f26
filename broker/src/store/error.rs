//! The store's own errors: what went wrong on the disk or in the data, and
//! what the store refuses. They carry no wire code: each front maps them to
//! its own.

/// Everything the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk failed underneath the store.
    #[error("disk: {0}")]
    Io(#[from] std::io::Error),
    /// Stored bytes failed their CRC or could not be decoded.
    #[error("corrupt data at commit log offset {offset}: {reason}")]
    Corrupt {
        /// Where the bad entry starts.
        offset: u64,
        /// What was wrong with it.
        reason: String,
    },
    /// A file kept beside the log (topics, offsets, progress) does not
    /// parse.
    #[error("corrupt file {path}: {reason}")]
    CorruptFile {
        /// The file.
        path: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A structure derived from the commit log (a consume queue, the index)
    /// disagrees with it; the store rebuilds it from the log.
    #[error("inconsistent {0}")]
    Inconsistent(String),
    /// The store broke (a failed write or fsync) and takes no writes until
    /// it is repaired; the reason it broke.
    #[error("store is not writable: {0}")]
    NotWritable(String),
    /// A slave's store takes only its master's log, no writes of its own.
    #[error("a slave's store takes no writes of its own, only its master's log")]
    NotMaster,
    /// A message the store refuses (past a size limit, a bad property).
    #[error("{0}")]
    Illegal(String),
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
