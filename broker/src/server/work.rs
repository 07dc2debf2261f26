//! The broker's work as an observer sees it: each request, each reply,
//! each fsync. A broker given a [`WorkHook`] tells it of each before doing
//! it and waits for it, so a simulation can charge the time a real broker
//! would spend (the testbed's cost model); a broker without one calls
//! nothing and waits for nothing.

use futures::future::BoxFuture;

/// A request's kind of work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// A send, with its body's length.
    Send {
        /// Bytes of message body.
        body_bytes: usize,
    },
    /// A pull.
    Pull,
    /// Anything else.
    Other,
}

/// Told of the broker's work as it happens.
pub trait WorkHook: Send + Sync + 'static {
    /// Whether to take a request now: false answers it busy at once.
    fn admit(&self, work: Work) -> bool;

    /// A request taken, before it is carried out.
    fn on_request(&self, work: Work) -> BoxFuture<'_, ()>;

    /// A reply carrying `message_bytes` of messages or log, before it goes.
    fn on_response(&self, message_bytes: usize) -> BoxFuture<'_, ()>;

    /// A commit log fsync, before it runs.
    fn on_fsync(&self) -> BoxFuture<'_, ()>;
}
