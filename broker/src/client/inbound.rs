//! What brokers ask of a client over the client's own connections: the
//! check-backs of its transactional producers' halves, notices that a
//! consumer group's members changed or its offsets were reset, and replies
//! to its requests.

use super::check_back::CheckListeners;
use crate::net::{Connection, Inbound};
use crate::protocol::{Request, Response, ResponseBody, ResponseCode};
use crate::command::{CheckTransactionState, ConsumerRunningInfo, GetConsumerRunningInfo, NotifyConsumerIdsChanged, PushReplyMessage, ResetOffsetNotice};
use crate::model::{MessageExt, PROPERTY_CORRELATION_ID};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::Notify;

/// A consumer brokers call on: told that an operator reset its group's
/// offsets, asked how it runs.
pub trait ResetListener: Send + Sync {
    /// `topic`'s queues on `broker_name` were reset: take them again.
    fn offsets_reset(self: Arc<Self>, topic: &str, broker_name: &str);

    /// How it runs now (`mqadmin consumerStatus`).
    fn running_info(&self) -> ConsumerRunningInfo;
}

/// The rebalance wakers of this client's consumers, by group: a broker's
/// notice that a group's members changed wakes each of its consumers here,
/// and one that its offsets were reset reaches each one's listener.
#[derive(Default)]
pub struct Rebalancers {
    groups: Mutex<BTreeMap<String, Vec<Weak<Notify>>>>,
    resets: Mutex<BTreeMap<String, Vec<Weak<dyn ResetListener>>>>,
}

impl Rebalancers {
    /// `wake` is notified whenever a broker says `group`'s members changed,
    /// until it is dropped.
    pub fn register(&self, group: &str, wake: &Arc<Notify>) {
        self.groups.lock().expect("rebalancers").entry(group.to_string()).or_default().push(Arc::downgrade(wake));
    }

    /// `listener` hears of every reset of `group`'s offsets until it is
    /// dropped.
    pub fn register_reset(&self, group: &str, listener: Weak<dyn ResetListener>) {
        self.resets.lock().expect("reset listeners").entry(group.to_string()).or_default().push(listener);
    }

    /// Tells every live consumer of `group` of a reset; returns how many.
    pub fn reset(&self, group: &str, topic: &str, broker_name: &str) -> usize {
        let live: Vec<Arc<dyn ResetListener>> = {
            let mut resets = self.resets.lock().expect("reset listeners");
            let Some(listeners) = resets.get_mut(group) else { return 0 };
            listeners.retain(|l| l.strong_count() > 0);
            listeners.iter().filter_map(Weak::upgrade).collect()
        };
        for listener in &live {
            listener.clone().offsets_reset(topic, broker_name);
        }
        live.len()
    }

    /// How this client's live consumers of `group` run.
    pub fn running_info(&self, group: &str) -> Vec<ConsumerRunningInfo> {
        let resets = self.resets.lock().expect("reset listeners");
        resets.get(group).into_iter().flatten().filter_map(Weak::upgrade).map(|c| c.running_info()).collect()
    }

    /// Wakes every live consumer of `group`; one busy rebalancing keeps the
    /// wake for when it is done. Returns how many were woken.
    pub fn wake(&self, group: &str) -> usize {
        let mut groups = self.groups.lock().expect("rebalancers");
        let Some(wakers) = groups.get_mut(group) else { return 0 };
        // Wakes the live ones and forgets the dropped.
        wakers.retain(|w| match w.upgrade() {
            Some(wake) => {
                wake.notify_one();
                true
            }
            None => false,
        });
        let woken = wakers.len();
        if woken == 0 {
            groups.remove(group);
        }
        woken
    }
}

/// Requests of this client waiting for their replies, by correlation id.
#[derive(Default)]
pub struct Replies {
    waiting: Mutex<BTreeMap<String, tokio::sync::oneshot::Sender<MessageExt>>>,
}

impl Replies {
    /// Waits for the reply to the request of `correlation_id`.
    pub fn wait(&self, correlation_id: &str) -> tokio::sync::oneshot::Receiver<MessageExt> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiting.lock().expect("replies").insert(correlation_id.to_string(), tx);
        rx
    }

    /// Stops waiting (the request failed or timed out).
    pub fn forget(&self, correlation_id: &str) {
        self.waiting.lock().expect("replies").remove(correlation_id);
    }

    /// Hands a reply to its waiting request; false when none waits.
    pub fn deliver(&self, reply: MessageExt) -> bool {
        let Some(correlation_id) = reply.message.properties.get(PROPERTY_CORRELATION_ID).cloned() else { return false };
        let mut waiting = self.waiting.lock().expect("replies");
        let waiting = if crate::bugs::active(crate::bugs::Bug::ReplyCrossed) {
            // The planted defect: the request that waited longest takes it.
            waiting.pop_first().map(|(_, tx)| tx)
        } else {
            waiting.remove(&correlation_id)
        };
        waiting.is_some_and(|tx| tx.send(reply).is_ok())
    }
}

/// Serves what brokers ask of this client.
pub struct BrokerCalls {
    /// Transaction check-backs.
    pub checks: Arc<CheckListeners>,
    /// Group change notices.
    pub rebalancers: Arc<Rebalancers>,
    /// Requests waiting for their replies.
    pub replies: Arc<Replies>,
}

impl Inbound for BrokerCalls {
    fn handle(self: Arc<Self>, request: Request, conn: Arc<Connection>) -> BoxFuture<'static, Response> {
        match request {
            Request::NotifyConsumerIdsChanged(NotifyConsumerIdsChanged { group }) => {
                let woken = self.rebalancers.wake(&group);
                tracing::debug!(group, woken, "a broker says the group's members changed");
                Box::pin(async { Response::ok(ResponseBody::None) })
            }
            Request::ResetOffsetNotice(ResetOffsetNotice { group, topic, broker_name }) => {
                let told = self.rebalancers.reset(&group, &topic, &broker_name);
                tracing::debug!(group, topic, broker_name, told, "a broker says the group's offsets were reset");
                Box::pin(async { Response::ok(ResponseBody::None) })
            }
            Request::PushReplyMessage(PushReplyMessage { message }) => {
                let response = if self.replies.deliver(message) {
                    Response::ok(ResponseBody::None)
                } else {
                    Response::error(ResponseCode::QueryNotFound, "no request here waits for this reply (it timed out)")
                };
                Box::pin(async move { response })
            }
            Request::GetConsumerRunningInfo(GetConsumerRunningInfo { group, .. }) => {
                let running = self.rebalancers.running_info(&group);
                let response = if running.is_empty() {
                    Response::error(ResponseCode::QueryNotFound, format!("no consumer of {group} runs here"))
                } else {
                    Response::ok(ResponseBody::RunningInfo(running))
                };
                Box::pin(async move { response })
            }
            request @ Request::CheckTransactionState(CheckTransactionState { .. }) => self.checks.clone().handle(request, conn),
            other => {
                let refusal = Response::error(ResponseCode::RequestNotSupported, format!("{} is not served by clients", other.name()));
                Box::pin(async move { refusal })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A notice wakes the group's live consumers, each once even if it was
    /// not waiting yet, and no other group's; a dropped consumer is
    /// forgotten.
    #[tokio::test]
    async fn a_notice_wakes_the_groups_live_consumers() {
        let rebalancers = Rebalancers::default();
        let (a, b, other) = (Arc::new(Notify::new()), Arc::new(Notify::new()), Arc::new(Notify::new()));
        rebalancers.register("g", &a);
        rebalancers.register("g", &b);
        rebalancers.register("h", &other);
        assert_eq!(rebalancers.wake("g"), 2);
        // The wakes were kept for consumers not yet waiting.
        tokio::time::timeout(std::time::Duration::from_secs(1), a.notified()).await.expect("a woken");
        tokio::time::timeout(std::time::Duration::from_secs(1), b.notified()).await.expect("b woken");
        assert!(tokio::time::timeout(std::time::Duration::from_millis(10), other.notified()).await.is_err(), "h not woken");
        drop(b);
        assert_eq!(rebalancers.wake("g"), 1);
        drop(a);
        assert_eq!(rebalancers.wake("g"), 0);
        assert_eq!(rebalancers.wake("nobody"), 0);
    }
}
