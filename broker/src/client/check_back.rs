//! Check-backs: the broker asks a producer of a group what became of a
//! half's local transaction, over the producer's own connection; the
//! application's [`TransactionListener`] answers.

use crate::model::{Message, MessageExt, TransactionState};
use crate::net::{Connection, Inbound};
use crate::protocol::{Request, Response, ResponseBody, ResponseCode};
use crate::command::{CheckTransactionState, EndTransaction, SendResult};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a transactional producer's application supplies (RocketMQ's
/// `TransactionListener`).
pub trait TransactionListener: Send + Sync + 'static {
    /// Runs the local transaction of a half the broker stored.
    fn execute(&self, msg: &Message, half: &SendResult) -> BoxFuture<'static, TransactionState>;

    /// Answers a check-back: what became of this half's local transaction?
    /// `check_times` counts the checks of it before this one.
    fn check(&self, half: MessageExt, check_times: u32) -> BoxFuture<'static, TransactionState>;
}

/// Check listeners by producer group, serving the check-backs brokers send
/// over this client's connections.
#[derive(Default)]
pub struct CheckListeners {
    groups: Mutex<BTreeMap<String, Arc<dyn TransactionListener>>>,
    timeout: Mutex<Duration>,
}

impl CheckListeners {
    /// Serves check-backs of `group` with `listener`.
    pub fn register(&self, group: &str, listener: Arc<dyn TransactionListener>, timeout: Duration) {
        self.groups.lock().expect("listeners").insert(group.to_string(), listener);
        *self.timeout.lock().expect("timeout") = timeout;
    }

    /// Stops serving `group`.
    pub fn unregister(&self, group: &str) {
        self.groups.lock().expect("listeners").remove(group);
    }

    /// The producer groups served.
    pub fn groups(&self) -> Vec<String> {
        self.groups.lock().expect("listeners").keys().cloned().collect()
    }
}

impl Inbound for CheckListeners {
    /// A check-back is taken at once and answered later with an end over
    /// the same connection, so a slow listener holds up nothing.
    fn handle(self: Arc<Self>, request: Request, conn: Arc<Connection>) -> BoxFuture<'static, Response> {
        let response = match request {
            Request::CheckTransactionState(CheckTransactionState { producer_group, half, check_times }) => {
                let listener = self.groups.lock().expect("listeners").get(&producer_group).cloned();
                match listener {
                    None => Response::error(ResponseCode::NoPermission, format!("no producer of group {producer_group} here")),
                    Some(listener) => {
                        let timeout = *self.timeout.lock().expect("timeout");
                        tokio::spawn(async move {
                            let state = listener.check(half.clone(), check_times).await;
                            if state == TransactionState::Unknown {
                                return;
                            }
                            let end = Request::EndTransaction(EndTransaction {
                                producer_group,
                                commit_log_offset: half.commit_log_offset,
                                msg_id: half.msg_id(),
                                state,
                                from_check: true,
                            });
                            if let Err(e) = conn.request(&end, timeout).await {
                                tracing::debug!(error = %e, "the answer to a check-back did not reach the broker");
                            }
                        });
                        Response::ok(ResponseBody::None)
                    }
                }
            }
            other => Response::error(ResponseCode::RequestNotSupported, format!("{} is not served by clients", other.name())),
        };
        Box::pin(async move { response })
    }
}

