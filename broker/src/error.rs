//! The crate's error type: what a caller of the broker library (a client,
//! a server starting up) may need to handle. It speaks no protocol: a
//! refusal carries its [`Refused`] kind, which
//! each front maps to its own code.

use crate::command::{Refusal, Refused};
use crate::store::StoreError;

/// Everything a caller of the broker library may need to handle.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store, or a file beside it, failed: the disk, or corrupt data.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A frame or payload on the wire could not be decoded, or a peer
    /// answered with a reply of another command.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A server refused the request.
    #[error(transparent)]
    Refused(#[from] Refusal),
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

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Store(StoreError::Io(e))
    }
}

impl Error {
    /// A refusal of a kind, with its reason.
    pub fn refused(kind: Refused, reason: impl Into<String>) -> Error {
        Error::Refused(Refusal::new(kind, reason))
    }

    /// A file of the broker's (beside the store) that does not parse.
    pub fn corrupt_file(path: &str, reason: impl Into<String>) -> Error {
        Error::Store(StoreError::CorruptFile { path: path.to_string(), reason: reason.into() })
    }
}

/// A failure inside a server, as the refusal a caller gets: a refusal
/// stays one, anything else is a system failure.
impl From<Error> for Refusal {
    fn from(e: Error) -> Refusal {
        match e {
            Error::Refused(refusal) => refusal,
            Error::Store(e) => e.into(),
            other => Refusal::new(Refused::System, other.to_string()),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
