//! Latency and throughput measured from a history: samples, percentiles
//! (via hdrhistogram) and per-second series for the charts.

use checker::history::{ConsumeOutcome, Event, Kind, Op, TxState};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One latency observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sample {
    /// When the operation finished (simulated ms): the bucket it falls in.
    pub t_ms: u64,
    /// How long it took, in ms.
    pub latency_ms: u64,
    /// How long it took, in µs: finer than `latency_ms` when the history
    /// records µs times (send and end-to-end latency), else it in µs.
    pub latency_us: u64,
}

impl Sample {
    /// A sample known to the millisecond.
    fn ms(t_ms: u64, latency_ms: u64) -> Sample {
        Sample { t_ms, latency_ms, latency_us: latency_ms * 1000 }
    }
}

/// Percentiles of a set of latencies, in ms; all zero when `count` is 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Number of samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
}

impl Percentiles {
    /// Percentiles of `values` (ms). hdrhistogram keeps 3 significant
    /// digits, so a percentile is within 0.1% of the exact one (and never
    /// above the exact maximum, which is reported as is).
    pub fn of(values: impl IntoIterator<Item = u64>) -> Percentiles {
        // Auto-resizing histograms accept any u64, so recording cannot fail.
        let mut histogram = Histogram::<u64>::new(3).expect("3 significant digits is valid");
        // hdrhistogram reports the highest value of a bucket; the exact
        // maximum is kept apart so that no percentile exceeds it.
        let mut max = 0;
        for value in values {
            histogram
                .record(value)
                .expect("an auto-resizing histogram takes any value");
            max = max.max(value);
        }
        if histogram.is_empty() {
            return Percentiles::default();
        }
        let at = |quantile: f64| histogram.value_at_quantile(quantile).min(max);
        Percentiles {
            count: histogram.len(),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
            max,
        }
    }

    /// Percentiles of the samples' latencies.
    pub fn of_samples(samples: &[Sample]) -> Percentiles {
        Percentiles::of(samples.iter().map(|s| s.latency_ms))
    }
}

/// End-to-end latency per message: its first successful delivery (any
/// group, any process) minus its first send invoke. Sorted by delivery time.
pub fn end_to_end_samples(history: &[Event]) -> Vec<Sample> {
    let mut sent: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut delivered: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for event in history {
        let Some(msg_id) = event.msg_id.as_deref() else {
            continue;
        };
        let at = (event.t_ms, event.time_us());
        if event.op == Op::Send && event.kind == Kind::Invoke {
            sent.entry(msg_id).or_insert(at);
        } else if is_success(event) {
            let first = delivered.entry(msg_id).or_insert(at);
            *first = (*first).min(at);
        }
    }
    let mut samples: Vec<Sample> = delivered
        .iter()
        .filter_map(|(msg_id, &(t_ms, t_us))| {
            let (sent_ms, sent_us) = *sent.get(msg_id)?;
            Some(Sample {
                t_ms,
                latency_ms: t_ms.saturating_sub(sent_ms),
                latency_us: t_us.saturating_sub(sent_us),
            })
        })
        .collect();
    samples.sort();
    samples
}

/// Timer lateness per timed message (a send carrying `deliver_at_ms`):
/// its first delivery minus its delivery time, 0 when early (the delay
/// check reports those). Sorted by delivery time.
pub fn timer_lateness_samples(history: &[Event]) -> Vec<Sample> {
    let mut due_ms: BTreeMap<&str, u64> = BTreeMap::new();
    let mut delivered_ms: BTreeMap<&str, u64> = BTreeMap::new();
    for event in history {
        let Some(msg_id) = event.msg_id.as_deref() else { continue };
        if event.op == Op::Send && event.kind == Kind::Invoke {
            if let Some(at) = event.deliver_at_ms {
                due_ms.entry(msg_id).or_insert(at);
            }
        } else if event.op == Op::Deliver && event.kind == Kind::Ok {
            let first = delivered_ms.entry(msg_id).or_insert(event.t_ms);
            *first = (*first).min(event.t_ms);
        }
    }
    let mut samples: Vec<Sample> = due_ms
        .iter()
        .filter_map(|(msg_id, &at)| {
            let t_ms = *delivered_ms.get(msg_id)?;
            Some(Sample::ms(t_ms, t_ms.saturating_sub(at)))
        })
        .collect();
    samples.sort();
    samples
}

/// Check-back resolution per transaction whose producer's end did not
/// reach the broker: from its half's acknowledgement to the first
/// check-back answered with commit or rollback. Sorted by that answer.
pub fn check_back_samples(history: &[Event]) -> Vec<Sample> {
    let invoked: BTreeMap<u64, &str> = history
        .iter()
        .filter(|e| e.op == Op::Send && e.kind == Kind::Invoke && e.tx.is_some())
        .filter_map(|e| Some((e.id, e.msg_id.as_deref()?)))
        .collect();
    let mut acked_ms: BTreeMap<&str, u64> = BTreeMap::new();
    let mut ended: BTreeSet<&str> = BTreeSet::new();
    let mut resolved_ms: BTreeMap<&str, u64> = BTreeMap::new();
    for e in history {
        match (e.op, e.kind) {
            (Op::Send, Kind::Ok) => {
                if let Some(id) = e.of.and_then(|of| invoked.get(&of)) {
                    acked_ms.entry(id).or_insert(e.t_ms);
                }
            }
            (Op::TxEnd, Kind::Ok) => {
                if let Some(id) = e.msg_id.as_deref() {
                    ended.insert(id);
                }
            }
            (Op::TxCheck, _) if matches!(e.tx, Some(TxState::Commit | TxState::Rollback)) => {
                if let Some(id) = e.msg_id.as_deref() {
                    resolved_ms.entry(id).or_insert(e.t_ms);
                }
            }
            _ => {}
        }
    }
    let mut samples: Vec<Sample> = resolved_ms
        .iter()
        .filter(|(id, _)| !ended.contains(*id))
        .filter_map(|(id, &t_ms)| Some(Sample::ms(t_ms, t_ms.saturating_sub(*acked_ms.get(id)?))))
        .collect();
    samples.sort();
    samples
}

/// Send latency: `ok` completion time minus invoke time. Sorted by
/// completion time.
pub fn send_samples(history: &[Event]) -> Vec<Sample> {
    let invoked: BTreeMap<u64, (u64, u64)> = history
        .iter()
        .filter(|e| e.op == Op::Send && e.kind == Kind::Invoke)
        .map(|e| (e.id, (e.t_ms, e.time_us())))
        .collect();
    let mut samples: Vec<Sample> = history
        .iter()
        .filter(|e| e.op == Op::Send && e.kind == Kind::Ok)
        .filter_map(|e| {
            let (invoked_ms, invoked_us) = *invoked.get(&e.of?)?;
            Some(Sample {
                t_ms: e.t_ms,
                latency_ms: e.t_ms.saturating_sub(invoked_ms),
                latency_us: e.time_us().saturating_sub(invoked_us),
            })
        })
        .collect();
    samples.sort();
    samples
}

/// Events per one-second bucket of simulated time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Throughput {
    /// Acknowledged sends completed in second i.
    pub acked_per_s: Vec<u64>,
    /// Successful deliveries (duplicates included) in second i.
    pub delivered_per_s: Vec<u64>,
}

/// Number of one-second buckets covering `[0, end_ms]`: at least 1, and an
/// event at exactly `end_ms` falls in the last one.
pub fn bucket_count(end_ms: u64) -> u64 {
    end_ms.div_ceil(1000).max(1)
}

/// The bucket of an event at `t_ms`, clamped to the last of `buckets`.
fn bucket(t_ms: u64, buckets: u64) -> u64 {
    (t_ms / 1000).min(buckets - 1)
}

/// Counts acknowledged sends and successful deliveries per second over
/// `[0, end_ms]` ([`bucket_count`] buckets; later events count in the last).
pub fn throughput(history: &[Event], end_ms: u64) -> Throughput {
    let buckets = bucket_count(end_ms);
    let len = usize::try_from(buckets).expect("simulated seconds fit in usize");
    let mut out = Throughput {
        acked_per_s: vec![0; len],
        delivered_per_s: vec![0; len],
    };
    for event in history {
        let series = if event.op == Op::Send && event.kind == Kind::Ok {
            &mut out.acked_per_s
        } else if is_success(event) {
            &mut out.delivered_per_s
        } else {
            continue;
        };
        let second = usize::try_from(bucket(event.t_ms, buckets)).expect("bucket < len");
        series[second] += 1;
    }
    out
}

/// Percentiles of the samples per one-second bucket (by `t_ms`, bucketed as
/// in [`throughput`]); seconds without samples are left out.
pub fn per_second(samples: &[Sample], end_ms: u64) -> BTreeMap<u64, Percentiles> {
    let count = bucket_count(end_ms);
    let mut buckets: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for sample in samples {
        buckets
            .entry(bucket(sample.t_ms, count))
            .or_default()
            .push(sample.latency_ms);
    }
    buckets
        .into_iter()
        .map(|(second, values)| (second, Percentiles::of(values)))
        .collect()
}

fn is_success(event: &Event) -> bool {
    event.op == Op::Deliver
        && event.kind == Kind::Ok
        && event.result == Some(ConsumeOutcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::history::HistoryBuilder;

    #[test]
    fn percentiles_of_one_to_a_thousand() {
        let p = Percentiles::of(1..=1000);
        assert_eq!(p.count, 1000);
        assert_eq!(p.p50, 500);
        assert_eq!(p.p90, 900);
        assert_eq!(p.p99, 990);
        assert_eq!(p.p999, 999);
        assert_eq!(p.max, 1000);
    }

    #[test]
    fn percentiles_stay_within_a_tenth_of_a_percent_and_below_the_max() {
        let p = Percentiles::of([3200, 3200, 100_003]);
        assert_eq!(p.p50, 3201);
        assert!(p.p99 <= 100_003 && p.p99 >= 99_903, "{p:?}");
        assert_eq!(p.max, 100_003);
        assert_eq!(Percentiles::of([3200]).p50, 3200);
    }

    #[test]
    fn percentiles_of_nothing_and_of_zero() {
        assert_eq!(Percentiles::of([]), Percentiles::default());
        let p = Percentiles::of([0, 0, 7]);
        assert_eq!((p.count, p.p50, p.max), (3, 0, 7));
    }

    #[test]
    fn latencies_come_from_first_success_and_ok_completion() {
        let mut h = HistoryBuilder::new();
        let draft = Event::new(0, "producer-1", Kind::Invoke, Op::Send)
            .msg_id("m1")
            .topic("t");
        h.send(100, draft, Some((104, Kind::Ok)));
        h.deliver(1150, "c-1", "g", "m1", ConsumeOutcome::RetryLater);
        h.deliver(1200, "c-1", "g", "m1", ConsumeOutcome::Success);
        h.deliver(2300, "c-2", "g2", "m1", ConsumeOutcome::Success);
        let draft = Event::new(0, "producer-1", Kind::Invoke, Op::Send)
            .msg_id("m2")
            .topic("t");
        h.send(200, draft, Some((3000, Kind::Info)));

        assert_eq!(
            end_to_end_samples(h.events()),
            vec![Sample {
                t_ms: 1200,
                latency_ms: 1100,
                latency_us: 1_100_000
            }]
        );
        assert_eq!(
            send_samples(h.events()),
            vec![Sample {
                t_ms: 104,
                latency_ms: 4,
                latency_us: 4_000
            }]
        );
        // 2300 ms lies past the end: it counts in the last bucket.
        let tp = throughput(h.events(), 2000);
        assert_eq!(tp.acked_per_s, vec![1, 0]);
        assert_eq!(tp.delivered_per_s, vec![0, 2]);
        let buckets = per_second(&end_to_end_samples(h.events()), 2000);
        assert_eq!(buckets[&1].p50, 1100);
        assert_eq!(
            (bucket_count(0), bucket_count(1000), bucket_count(1001)),
            (1, 1, 2)
        );
    }

    /// A history recorded with µs times (a clock finer than 1 ms) gives
    /// send and end-to-end latencies to the µs; the ms ones are unchanged.
    #[test]
    fn microsecond_times_give_sub_millisecond_latencies() {
        let at_us = |e: Event, t_us: u64| Event { t_ms: t_us / 1000, t_us: Some(t_us), ..e };
        let history = vec![
            at_us(Event { msg_id: Some("m1".into()), topic: Some("t".into()), ..Event::new(0, "p", Kind::Invoke, Op::Send).id(1) }, 1_900),
            at_us(Event::new(0, "p", Kind::Ok, Op::Send).id(2).of(1), 2_170),
            at_us(
                Event { msg_id: Some("m1".into()), group: Some("g".into()), result: Some(ConsumeOutcome::Success), ..Event::new(0, "c", Kind::Ok, Op::Deliver).id(3) },
                2_450,
            ),
        ];
        assert_eq!(send_samples(&history), vec![Sample { t_ms: 2, latency_ms: 1, latency_us: 270 }]);
        assert_eq!(end_to_end_samples(&history), vec![Sample { t_ms: 2, latency_ms: 1, latency_us: 550 }]);
    }
}
