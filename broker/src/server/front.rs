//! The house protocol's front of the broker: a [`Request`] frame becomes a
//! call of the command's handler, and its reply or refusal becomes a
//! [`Response`]. Nothing here decides anything: another front (RocketMQ's
//! gRPC) calls the same handlers with the same commands.

use super::{Broker, Peer, Work};
use crate::command::{
    CheckTransactionState, ConsumerRunningInfo, GetConsumerRunningInfo, NotifyConsumerIdsChanged, Outcome, PushReplyMessage, Refusal, Refused, ResetOffsetNotice, SendResult,
    SendStatus,
};
use crate::net::{Connection, Service};
use crate::protocol::{Request, Response, ResponseBody, ResponseCode};
use futures::future::BoxFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A send's outcome: stored but not durable as configured is answered
/// with the result and the code saying how far it got.
fn sent(outcome: Outcome<SendResult>) -> Response {
    let code = match &outcome {
        Ok(result) => match result.status {
            SendStatus::SendOk => ResponseCode::Success,
            SendStatus::FlushDiskTimeout => ResponseCode::FlushDiskTimeout,
            SendStatus::FlushSlaveTimeout => ResponseCode::FlushSlaveTimeout,
            SendStatus::SlaveNotAvailable => ResponseCode::SlaveNotAvailable,
        },
        Err(_) => return Response::answer(outcome),
    };
    Response { code, ..Response::answer(outcome) }
}

/// A batch's outcome, coded as a send's by the status its messages share.
fn sent_batch(outcome: Outcome<Vec<SendResult>>) -> Response {
    let status = match &outcome {
        Ok(results) => results.first().map_or(SendStatus::SendOk, |r| r.status),
        Err(_) => return Response::answer(outcome),
    };
    let code = match status {
        SendStatus::SendOk => ResponseCode::Success,
        SendStatus::FlushDiskTimeout => ResponseCode::FlushDiskTimeout,
        SendStatus::FlushSlaveTimeout => ResponseCode::FlushSlaveTimeout,
        SendStatus::SlaveNotAvailable => ResponseCode::SlaveNotAvailable,
    };
    Response { code, ..Response::answer(outcome) }
}

/// A request this broker does not serve: whom it is for.
fn not_served(request: &Request, whose: &str) -> Response {
    Refusal::new(Refused::NotSupported, format!("{} is {whose}; this is a broker", request.name())).into()
}

impl Broker {
    /// Carries out one request of the house protocol from `peer`.
    pub(super) async fn apply(&self, request: Request, peer: SocketAddr) -> Response {
        match request {
            Request::SendMessage(c) => sent(self.send(c, peer).await),
            Request::SendBatch(c) => sent_batch(self.send_batch(c, peer).await),
            Request::PullMessage(c) => Response::answer(self.pull(c).await),
            Request::PopMessage(c) => Response::answer(self.pop(c).await),
            Request::AckMessage(c) => Response::answer(self.ack_popped(c).await),
            Request::ChangeInvisibleTime(c) => Response::answer(self.change_invisible(c).await),
            Request::ConsumerSendMsgBack(c) => Response::answer(self.send_back(c).await),
            Request::EndTransaction(c) => Response::answer(self.end_transaction(c).await),
            Request::HeartbeatProducer(c) => Response::answer(self.heartbeat_producer(c, peer)),
            Request::Heartbeat(c) => Response::answer(self.heartbeat(c, peer).await),
            Request::UnregisterClient(c) => Response::answer(self.unregister_client(c)),
            Request::GetConsumerList(c) => Response::answer(self.consumer_list(c)),
            Request::LockBatchMq(c) => Response::answer(self.lock_queues(c)),
            Request::UnlockBatchMq(c) => Response::answer(self.unlock_queues(c)),
            Request::UpdateConsumerOffset(c) => Response::answer(self.update_offset(c)),
            Request::QueryConsumerOffset(c) => Response::answer(self.query_offset(c)),
            Request::GetQueueOffsets(c) => Response::answer(self.queue_offsets(c)),
            Request::SearchOffsetByTime(c) => Response::answer(self.search_offset(c)),
            Request::ResetOffset(c) => Response::answer(self.reset_offset(c)),
            Request::CreateTopic(c) => Response::answer(self.create_topic(c).await),
            Request::DeleteTopic(c) => Response::answer(self.delete_topic(c).await),
            Request::UpdateSubscriptionGroup(c) => Response::answer(self.update_subscription_group(c)),
            Request::DeleteSubscriptionGroup(c) => Response::answer(self.delete_subscription_group(c)),
            Request::GetSubscriptionGroups(_) => Response::answer(self.subscription_groups()),
            Request::GetTopicList(_) => Response::answer(self.topic_list()),
            Request::GetTopicStats(c) => Response::answer(self.topic_stats(c)),
            Request::GetConsumeStats(c) => Response::answer(self.consume_stats(c)),
            Request::GetBrokerRuntimeInfo(_) => Response::answer(self.runtime_info()),
            Request::GetBrokerConfig(_) => Response::answer(Ok::<_, Refusal>(self.config.as_properties())),
            Request::QueryMessageByKey(c) => Response::answer(self.query_by_key(c)),
            Request::QueryMessageByUniqueId(c) => Response::answer(self.query_by_unique_id(c)),
            Request::ViewMessage(c) => Response::answer(self.view_message(c)),
            Request::QueryMessageByQueueOffset(c) => Response::answer(self.query_by_queue_offset(c)),
            Request::GetProducerConnections(c) => Response::answer(self.producer_connections(c)),
            Request::GetConsumerRunningInfo(c) => Response::answer(self.consumer_running_info(c).await),
            Request::ReplicaPull(c) => Response::answer(self.replica_pull(c).await),
            Request::GetReplicaConfig(c) => Response::answer(self.replica_config(c)),
            Request::GetEpochs(c) => Response::answer(self.get_epochs(c)),
            ref other @ (Request::RegisterBroker(_) | Request::UnregisterBroker(_) | Request::GetRoute(_) | Request::GetClusterInfo(_)) => {
                not_served(other, "a name server request")
            }
            ref other @ (Request::CheckTransactionState(_)
            | Request::NotifyConsumerIdsChanged(_)
            | Request::ResetOffsetNotice(_)
            | Request::PushReplyMessage(_)) => {
                not_served(other, "a request brokers send to clients")
            }
            ref other @ (Request::Raft(_)
            | Request::ControllerHeartbeat(_)
            | Request::GetReplicaInfo(_)
            | Request::AlterSyncStateSet(_)
            | Request::GetControllerState(_)) => not_served(other, "a controller request"),
        }
    }
}

impl Service for Broker {
    fn handle(self: Arc<Self>, request: Request, peer: SocketAddr) -> BoxFuture<'static, Response> {
        self.handle_at(request, peer, tokio::time::Instant::now())
    }

    fn handle_at(self: Arc<Self>, request: Request, peer: SocketAddr, arrived: tokio::time::Instant) -> BoxFuture<'static, Response> {
        Box::pin(async move {
            // A send waits in the send queue from when its request was
            // read until its handling starts here. Under the simulation's
            // cost model (the hook) the model's queue plays this part.
            if self.hook.is_none() && matches!(request, Request::SendMessage(_) | Request::SendBatch(_)) {
                if let Err(refusal) = self.send_queue.started(arrived) {
                    return refusal.into();
                }
            }
            let Some(hook) = self.hook.clone() else { return self.apply(request, peer).await };
            let work = match &request {
                Request::SendMessage(send) => Work::Send { body_bytes: send.message.body.len() },
                Request::SendBatch(batch) => Work::Send { body_bytes: batch.messages.iter().map(|m| m.body.len()).sum() },
                Request::PullMessage(_) | Request::PopMessage(_) => Work::Pull,
                _ => Work::Other,
            };
            if !hook.admit(work) {
                return Refusal::new(Refused::Busy, "[TIMEOUT_CLEAN_QUEUE] broker busy: a send would wait over 200 ms for a worker").into();
            }
            hook.on_request(work).await;
            let response = self.apply(request, peer).await;
            hook.on_response(message_bytes(&response)).await;
            response
        })
    }

    fn opened(&self, peer: SocketAddr, conn: &Arc<Connection>) {
        self.peer_connected(peer, Arc::new(HousePeer(conn.clone())));
    }

    fn closed(&self, peer: SocketAddr) {
        self.peer_closed(peer);
    }
}

/// The messages or log a reply carries, in bytes.
fn message_bytes(response: &Response) -> usize {
    match &response.body {
        ResponseBody::Pull(pull) => pull.messages.iter().map(|m| m.store_size as usize).sum(),
        ResponseBody::Popped(popped) => popped.messages.iter().map(|p| p.message.store_size as usize).sum(),
        ResponseBody::Replica(chunk) => chunk.bytes.len(),
        _ => 0,
    }
}

/// A client on the house protocol: the broker calls it back with requests
/// over the client's own connection.
struct HousePeer(Arc<Connection>);

impl Peer for HousePeer {
    fn name(&self) -> String {
        self.0.peer().to_string()
    }

    fn is_live(&self) -> bool {
        !self.0.is_closed()
    }

    fn check_transaction(&self, check: CheckTransactionState, timeout: Duration) -> BoxFuture<'static, crate::Result<()>> {
        let conn = self.0.clone();
        Box::pin(async move {
            conn.request(&check.into(), timeout).await?.into_reply("CheckTransactionState")
        })
    }

    fn consumers_changed(&self, notice: NotifyConsumerIdsChanged) -> BoxFuture<'static, crate::Result<()>> {
        let conn = self.0.clone();
        Box::pin(async move { conn.oneway(&notice.into()).await })
    }

    fn offsets_reset(&self, notice: ResetOffsetNotice) -> BoxFuture<'static, crate::Result<()>> {
        let conn = self.0.clone();
        Box::pin(async move { conn.oneway(&notice.into()).await })
    }

    fn push_reply(&self, reply: PushReplyMessage, timeout: Duration) -> BoxFuture<'static, crate::Result<()>> {
        let conn = self.0.clone();
        Box::pin(async move { conn.request(&reply.into(), timeout).await?.into_reply("PushReplyMessage") })
    }

    fn running_info(&self, ask: GetConsumerRunningInfo, timeout: Duration) -> BoxFuture<'static, crate::Result<Vec<ConsumerRunningInfo>>> {
        let conn = self.0.clone();
        Box::pin(async move { conn.request(&ask.into(), timeout).await?.into_reply("GetConsumerRunningInfo") })
    }
}
