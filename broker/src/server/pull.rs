//! Pulling ([`crate::command::pull`]): a consumer reads a queue, through
//! its tag filter, held by long polling until something new is visible.

use super::Broker;
use crate::bugs::{self, Bug};
use crate::command::{Outcome, PullMessage, PullResult, Refusal, Refused};
use crate::marks::{self, Mark};
use crate::model::{Filter, MessageExt, PROPERTY_UNIQ_KEY};
use crate::store::GetStatus;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Most messages one pull returns.
const PULL_BATCH_MAX: u32 = 1024;

impl Broker {
    /// Reads a queue for a consumer group (RocketMQ's `PULL_MESSAGE`).
    pub async fn pull(&self, command: PullMessage) -> Outcome<PullResult> {
        let PullMessage { group, topic, queue_id, offset, max_msgs, expression, expression_type, suspend_ms, generation } = command;
        super::offsets::stale_reset(&self.offsets.lock().expect("offsets"), &group, &topic, queue_id, generation)?;
        self.refuse_disabled_group(&group)?;
        if self.subscription_group(&group).is_some_and(|g| !g.consume_broadcast_enable) && self.groups.lock().expect("groups").broadcasting(&group) {
            return Err(Refusal::new(
                Refused::NoPermission,
                format!("the consumer group {group} may not consume by broadcasting on {} (consumeBroadcastEnable=false)", self.config.broker_name),
            ));
        }
        let Some(config) = self.topics.lock().expect("topics").get(&topic).cloned() else {
            return Err(Refusal::new(Refused::TopicNotExist, format!("topic {topic} does not exist on {}", self.config.broker_name)));
        };
        if !config.readable() {
            return Err(Refusal::new(Refused::NoPermission, format!("topic {topic} is not readable")));
        }
        let filter = Filter::parse(expression_type, &expression).map_err(|e| Refusal::new(Refused::SubscriptionIllegal, e))?;
        if matches!(filter, Filter::Sql(_)) && !self.config.enable_property_filter {
            return Err(Refusal::new(
                Refused::SubscriptionIllegal,
                format!("{} does not filter by SQL92: its enablePropertyFilter is false", self.config.broker_name),
            ));
        }
        let hashes = if bugs::active(Bug::FilterSkipsMatch) { None } else { filter.hashes() };
        let accept = |h: u64| hashes.as_ref().is_none_or(|set| set.contains(&h));
        let max_msgs = max_msgs.clamp(1, PULL_BATCH_MAX) as usize;
        let hold = Duration::from_millis(suspend_ms.min(self.config.long_polling_max_ms));
        // Checked: a hold too long to add to the clock waits an hour at most.
        let now = self.clock.instant();
        let deadline = now.checked_add(hold).unwrap_or_else(|| now + Duration::from_secs(3_600));
        let mut arrivals = self.arrivals_rx(&topic, queue_id);
        let mut replicated = self.replicated.subscribe();
        loop {
            let got = {
                let mut store = self.store.lock().expect("store");
                let visible_end = self.visible_end(&store);
                store.get_or_rebuild(&topic, queue_id, offset, max_msgs, visible_end, &accept)
            };
            let mut got = got?;
            if let Filter::Sql(sql) = &filter {
                // Read past the tag check; the condition needs the message.
                got.messages.retain(|m| sql.matches(&m.message.properties, m.message.tags.as_deref()));
            }
            let now = self.clock.instant();
            if got.status == GetStatus::NoNew && now < deadline {
                if bugs::active(Bug::LongPollMiss) {
                    // The planted defect: the arrival goes unheard and the
                    // pull sleeps out its whole hold.
                    tokio::time::sleep(deadline - now).await;
                } else {
                    // In controller mode a message becomes visible when the
                    // sync-state set holds it, which a slave's ack says.
                    let heard = async {
                        if self.controller.is_some() {
                            tokio::select! {
                                arrived = arrivals.changed() => arrived.is_ok(),
                                _ = replicated.changed() => false,
                            }
                        } else {
                            arrivals.changed().await.is_ok()
                        }
                    };
                    if tokio::time::timeout(deadline - now, heard).await == Ok(true) {
                        marks::reach(Mark::LongPollWoken);
                    }
                }
                continue;
            }
            if got.status == GetStatus::OffsetOverflow {
                // Past the end (the queue lost its tail in a power loss):
                // resume at the group's committed offset, clamped at open,
                // rather than at the end, which would skip new messages.
                if let Some(committed) = self.offsets.lock().expect("offsets").get(&group, &topic, queue_id) {
                    got.next_offset = committed.min(got.max_offset);
                }
            }
            if bugs::active(Bug::FilterSkipsMatch) && hashes.is_none() && !filter.is_all() {
                // The planted defect: filtering moved client-side and the
                // first matching message of every batch is skipped.
                if let Some(i) = got.messages.iter().position(|m| filter.matches(&m.message)) {
                    got.messages.remove(i);
                }
            }
            if self.is_slave() && !got.messages.is_empty() {
                marks::reach(Mark::SlaveServedPull);
            }
            self.get_count.fetch_add(got.messages.len() as u64, Ordering::Relaxed);
            return Ok(PullResult {
                status: got.status,
                next_offset: got.next_offset,
                min_offset: got.min_offset,
                max_offset: got.max_offset,
                messages: self.stamp(got.messages),
            });
        }
    }

    /// Fills in what the store does not keep per message.
    pub(super) fn stamp(&self, mut msgs: Vec<MessageExt>) -> Vec<MessageExt> {
        for m in &mut msgs {
            m.broker_name = self.config.broker_name.clone();
            m.store_host = self.config.advertise_addr.clone();
            if bugs::active(Bug::PullDropsProperties) && m.queue_offset % 5 == 4 {
                // The planted defect: user properties lost on the way out;
                // the unique id survives, so the message is still recognised.
                m.message.properties.retain(|name, _| name == PROPERTY_UNIQ_KEY);
            }
            if bugs::active(Bug::PullOffsetSkew) && m.queue_offset % 5 == 3 {
                // The planted defect: labelled with its predecessor's offset.
                m.queue_offset -= 1;
            }
        }
        msgs
    }
}
