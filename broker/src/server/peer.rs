//! A connected client as the broker sees it: the handle it calls the
//! client back on. Each front implements it over its own connections (the
//! house protocol over the client's TCP connection, a streaming front over
//! its stream), so the broker's check-backs and notices reach a client
//! whichever protocol it speaks.

use crate::command::{CheckTransactionState, ConsumerRunningInfo, GetConsumerRunningInfo, NotifyConsumerIdsChanged, PushReplyMessage, ResetOffsetNotice};
use futures::future::BoxFuture;
use std::time::Duration;

/// A client connected to the broker through some front.
pub trait Peer: Send + Sync + 'static {
    /// Names the client in logs.
    fn name(&self) -> String;

    /// Whether the client's connection still stands.
    fn is_live(&self) -> bool;

    /// Asks a producer what became of a half's local transaction. Done
    /// once the producer took the question (it answers later with an
    /// `EndTransaction`); an error when it refused or did not take it
    /// within `timeout`.
    fn check_transaction(&self, check: CheckTransactionState, timeout: Duration) -> BoxFuture<'static, crate::Result<()>>;

    /// Tells a consumer that its group's members changed, so it rebalances
    /// now. Sent without waiting for an answer; an error when it could not
    /// be sent.
    fn consumers_changed(&self, notice: NotifyConsumerIdsChanged) -> BoxFuture<'static, crate::Result<()>>;

    /// Tells a consumer that an operator reset its group's offsets on a
    /// topic here, so it takes those queues again. Sent without waiting for
    /// an answer; an error when it could not be sent.
    fn offsets_reset(&self, notice: ResetOffsetNotice) -> BoxFuture<'static, crate::Result<()>>;

    /// Hands a requester the reply to its request; done once the client
    /// took it, an error when it refused (nobody waits for it any more) or
    /// did not answer within `timeout`.
    fn push_reply(&self, reply: PushReplyMessage, timeout: Duration) -> BoxFuture<'static, crate::Result<()>>;

    /// Asks a client how its consumers of a group run; an error when it
    /// did not answer within `timeout`.
    fn running_info(&self, ask: GetConsumerRunningInfo, timeout: Duration) -> BoxFuture<'static, crate::Result<Vec<ConsumerRunningInfo>>>;
}
