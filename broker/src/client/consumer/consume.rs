//! Running the listener: a batch of a concurrent queue, or one message of
//! an orderly queue at a time, and sending failed messages back.

use crate::command::ConsumerSendMsgBack;

use super::*;

impl Inner {
    /// Runs the listener on a batch; a call past the consume timeout counts
    /// as failed (and is dropped).
    pub(super) async fn call_listener(&self, batch: Vec<MessageExt>, ctx: ConsumeContext) -> ConsumeResult {
        let call = self.listener.consume(batch, ctx);
        let outcome = match tokio::time::timeout(Duration::from_millis(self.config.consume_timeout_ms), call).await {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::warn!(group = %self.config.group, "the listener ran past the consume timeout; the batch counts as failed");
                ConsumeResult::RetryLater
            }
        };
        if outcome == ConsumeResult::RetryLater && bugs::active(Bug::RetryLaterAcked) {
            // The planted defect: the failure is dropped as if consumed.
            return ConsumeResult::Success;
        }
        outcome
    }

    pub(super) async fn consume(&self, q: &QueueState, batch: Vec<MessageExt>) {
        let mut ctx = ConsumeContext { queue: q.mq.clone(), attempt: 0 };
        let mut batch: Vec<MessageExt> = batch.into_iter().map(|m| as_delivered(m, &q.mq)).collect();
        loop {
            if q.dropped.load(Ordering::Relaxed) {
                // The queue's new owner redelivers from the committed offset.
                return;
            }
            let outcome = self.call_listener(batch.clone(), ctx.clone()).await;
            let done: Vec<u64> = match outcome {
                ConsumeResult::Success => batch.iter().map(|m| m.queue_offset).collect(),
                ConsumeResult::RetryLater if self.config.broadcast => {
                    // As RocketMQ does: a broadcasting group has no retry
                    // topic, and a failed message is dropped.
                    tracing::warn!(group = %self.config.group, queue = %q.mq, count = batch.len(), "a broadcast consumer's failed messages are dropped");
                    let offsets = batch.iter().map(|m| m.queue_offset).collect();
                    batch.clear();
                    offsets
                }
                ConsumeResult::RetryLater => {
                    // Each failed message goes back to its broker; those the
                    // broker could not take stay here, in flight (so the
                    // offset never passes them), and are retried in place.
                    let mut sent_back = Vec::new();
                    let mut kept = Vec::new();
                    for m in batch {
                        if self.send_back(&q.mq, &m, 0).await {
                            sent_back.push(m.queue_offset);
                        } else if ctx.attempt >= 2 && bugs::active(Bug::LocalRetryGivesUp) {
                            // The planted defect: given up as if sent back.
                            sent_back.push(m.queue_offset);
                        } else {
                            kept.push(m);
                        }
                    }
                    batch = kept;
                    for m in &mut batch {
                        // As RocketMQ's client does: the local retry counts
                        // as a reconsumption too.
                        m.reconsume_times = m.reconsume_times.saturating_add(1);
                    }
                    sent_back
                }
            };
            {
                let mut pq = q.pq.lock().expect("pq");
                for &offset in &done {
                    pq.done(offset);
                }
            }
            if outcome == ConsumeResult::Success || batch.is_empty() {
                return;
            }
            ctx.attempt += 1;
            tokio::time::sleep(Duration::from_millis(self.config.retry_delay_ms)).await;
        }
    }

    /// Processes one message of an orderly queue, holding the queue's
    /// consume lock: a failure suspends the queue and retries the message in
    /// place (never skipping ahead), up to the group's max reconsume times,
    /// then sends it to the dead-letter queue and moves on (Apache RocketMQ
    /// #6163 re-queued it to the retry topic for ever). Nothing is processed
    /// without a trusted queue lock. False when the queue was dropped (its
    /// new owner takes over from the committed offset).
    pub(super) async fn consume_orderly(&self, q: &QueueState, m: MessageExt) -> bool {
        let _processing = q.consume_lock.lock().await;
        let mut m = as_delivered(m, &q.mq);
        let mut ctx = ConsumeContext { queue: q.mq.clone(), attempt: 0 };
        let suspend = Duration::from_millis(self.config.retry_delay_ms);
        loop {
            if q.dropped.load(Ordering::Relaxed) || self.stopped.load(Ordering::Relaxed) {
                return false;
            }
            if !q.lock_valid() {
                self.renew_locks(&[q]).await;
                if !q.lock_valid() {
                    tokio::time::sleep(suspend).await;
                    continue;
                }
            }
            let moved_on = match self.call_listener(vec![m.clone()], ctx.clone()).await {
                ConsumeResult::Success => true,
                // The planted defect: the failure goes to the retry topic
                // and the queue moves on past it.
                ConsumeResult::RetryLater if bugs::active(Bug::OrderlyRetryRequeued) => self.send_back(&q.mq, &m, 0).await,
                ConsumeResult::RetryLater if m.reconsume_times >= self.config.max_reconsume_times => self.send_back(&q.mq, &m, -1).await,
                ConsumeResult::RetryLater => false,
            };
            if moved_on {
                q.pq.lock().expect("pq").done(m.queue_offset);
                return true;
            }
            m.reconsume_times = m.reconsume_times.saturating_add(1);
            ctx.attempt += 1;
            tokio::time::sleep(suspend).await;
        }
    }

    /// Sends a failed message back to the broker it came from; true when
    /// the broker stored its retry copy (`delay_level` 0: the broker picks
    /// the level) or, for a negative level, its dead-letter copy.
    pub(super) async fn send_back(&self, mq: &MessageQueue, m: &MessageExt, delay_level: i32) -> bool {
        let Some(addr) = self.client.master_addr(&mq.broker_name) else { return false };
        let back = ConsumerSendMsgBack {
            group: self.config.group.clone(),
            commit_log_offset: m.commit_log_offset,
            delay_level,
            max_reconsume_times: self.config.max_reconsume_times,
        };
        match self.client.call(&addr, back, self.client.timeout()).await {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(queue = %mq, msg_id = %m.msg_id(), error = %e, "send-back failed; retrying in place");
                false
            }
        }
    }
}
