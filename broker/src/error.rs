//! The crate's error type.

use crate::protocol::ResponseCode;

/// Everything a caller of the broker library may need to handle.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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
    /// A structure derived from the commit log (a consume queue, the index)
    /// disagrees with it; the store rebuilds it from the log.
    #[error("inconsistent {0}")]
    Inconsistent(String),
    /// A frame or payload on the wire could not be decoded.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Input the broker refuses, with the code sent to the client.
    #[error("{code:?}: {message}")]
    Rejected {
        /// The response code a client sees.
        code: ResponseCode,
        /// A sentence saying why.
        message: String,
    },
    /// A request got no answer in time.
    #[error("timeout after {0} ms")]
    Timeout(u64),
    /// No connection to the peer could be made or it broke.
    #[error("connection to {addr}: {reason}")]
    Connection {
        /// The peer.
        addr: String,
        /// The cause.
        reason: String,
    },
    /// No route is known for the topic.
    #[error("no route for topic {0}")]
    NoRoute(String),
}

impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Error {
        use crate::store::StoreError;
        match e {
            StoreError::Io(e) => Error::Io(e),
            StoreError::Corrupt { offset, reason } => Error::Corrupt { offset, reason },
            StoreError::Inconsistent(why) => Error::Inconsistent(why),
            refused @ StoreError::NotWritable(_) => Error::rejected(ResponseCode::SystemError, refused.to_string()),
            refused @ StoreError::NotMaster => Error::rejected(ResponseCode::NotMaster, refused.to_string()),
            StoreError::Illegal(why) => Error::rejected(ResponseCode::MessageIllegal, why),
        }
    }
}

impl Error {
    /// A rejection with a code and message.
    pub fn rejected(code: ResponseCode, message: impl Into<String>) -> Error {
        Error::Rejected { code, message: message.into() }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
