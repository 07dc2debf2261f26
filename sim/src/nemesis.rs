//! The nemesis: each fault of a scenario applied to a [`Cluster`],
//! recorded, and undone by its heal; partitions counted per link, latency
//! and loss layered per link or network-wide. It knows no simulator: the
//! cluster carries the faults out.

use crate::cluster::{Cluster, LinkFault};
use crate::recorder::{harness_marks, Recorder};
use checker::history::{Event, Kind, Op};
use scenarios::{DiskFaultKind, Fault, PartitionKind, ScheduledFault};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// What heals one injected fault, built by [`Nemesis::inject`] from
/// exactly what the fault did.
pub type Heal = Box<dyn FnOnce(&Nemesis, &dyn Cluster) + Send>;

/// The directed links a partition cuts: `side` to `from`, and back unless
/// `one_way`.
fn partition_links<'a>(side: &'a [String], from: &'a [String], one_way: bool) -> Vec<(&'a str, &'a str)> {
    let mut links = Vec::new();
    for a in side {
        for b in from {
            links.push((a.as_str(), b.as_str()));
            if !one_way {
                links.push((b.as_str(), a.as_str()));
            }
        }
    }
    links
}

/// The faults in force on a cluster, and the history they go into.
pub struct Nemesis {
    recorder: Recorder,
    /// Directed links (from, to) held cut, with how many partitions hold
    /// each.
    cut: Mutex<BTreeMap<(String, String), u32>>,
    /// Latency and loss faults of the whole network in force, in the
    /// order they started.
    net_layers: Mutex<Vec<Fault<String>>>,
    /// Latency and loss faults of single links in force, per directed link
    /// (`from`, `to`), in the order they started.
    link_layers: Mutex<BTreeMap<(String, String), Vec<Fault<String>>>>,
}

impl Nemesis {
    /// A nemesis with no fault in force, recording into `recorder`.
    pub fn new(recorder: Recorder) -> Nemesis {
        Nemesis { recorder, cut: Mutex::default(), net_layers: Mutex::default(), link_layers: Mutex::default() }
    }

    /// Applies one fault now, records it, and returns how to heal it: each
    /// fault is defined here once, what it does next to what undoes it, so
    /// a heal takes back exactly what its fault did and nothing else. The
    /// history names the fault as the scenario file does (`fault` events
    /// start one, `heal` events end it). `None` for a fault with nothing to
    /// undo (a flipped byte, a clock jump that persists).
    pub fn inject(&self, cluster: &dyn Cluster, scheduled: &ScheduledFault) -> Option<Heal> {
        let name = scheduled.fault.name();
        let target = scheduled.targets().join(",");
        let started = |detail: Option<String>| {
            self.recorder.nemesis(Op::Fault, name, &target, detail);
        };
        let heal_target = target.clone();
        let ended = move |n: &Nemesis, detail: Option<String>| {
            n.recorder.nemesis(Op::Heal, name, &heal_target, detail);
        };
        let heal: Heal = match scheduled.fault.clone() {
            Fault::Kill { target: node } => {
                started(None);
                if cluster.unsynced_bytes(&node).is_some_and(|n| n > 0) {
                    self.recorder.reach(harness_marks::CRASH_WITH_UNSYNCED_BYTES, "nemesis");
                }
                cluster.kill(&node);
                Box::new(move |n, c| restart(n, c, &node, ended))
            }
            Fault::ConsumerCrash { target: node, step: None } => {
                started(None);
                cluster.kill(&node);
                Box::new(move |n, c| restart(n, c, &node, ended))
            }
            Fault::ConsumerCrash { target: node, step: Some(step) } => {
                started(Some(format!("at {} of its next delivery", step.as_str())));
                cluster.arm_crash(&node, step);
                Box::new(move |n, c| {
                    if c.disarm_crash(&node) {
                        restart(n, c, &node, ended);
                    } else {
                        // No delivery reached the step: the consumer never went down.
                        ended(n, Some("the armed crash never struck".into()));
                    }
                })
            }
            Fault::PowerLoss { target: node } => {
                let unsynced = cluster.unsynced_bytes(&node).unwrap_or(0);
                self.recorder.nemesis_with(Op::Fault, name, &target, |e| e.unsynced_bytes(unsynced));
                if unsynced > 0 {
                    self.recorder.reach(harness_marks::CRASH_WITH_UNSYNCED_BYTES, "nemesis");
                }
                cluster.power_off(&node);
                Box::new(move |n, c| restart(n, c, &node, ended))
            }
            Fault::Pause { target: node } => {
                started(None);
                cluster.pause(&node);
                Box::new(move |n, c| {
                    ended(n, None);
                    c.resume(&node);
                })
            }
            Fault::Partition { partition, targets: side, from } => {
                let one_way = partition == PartitionKind::OneWay;
                let detail = if one_way { "one way" } else { "both ways" };
                let other_side: Vec<String> = from.iter().map(|n| n.to_string()).collect();
                let sides = other_side.clone();
                self.recorder.nemesis_with(Op::Fault, name, &target, |e| e.from(sides).detail(detail));
                self.recorder.partition(true);
                self.cut(cluster, &partition_links(&side, &from, one_way), true);
                let heal_target = target.clone();
                Box::new(move |n, c| {
                    n.recorder.nemesis_with(Op::Heal, name, &heal_target, |e| e.from(other_side).detail(detail));
                    n.recorder.partition(false);
                    n.cut(c, &partition_links(&side, &from, one_way), false);
                })
            }
            layer @ (Fault::Latency { .. } | Fault::Loss { .. } | Fault::LinkLatency { .. }) if !network_wide(cluster, &layer) => {
                // Only the links of the faulted nodes (or the one link).
                let links = links_of(cluster, &layer);
                let other_end = match &layer {
                    Fault::LinkLatency { from, .. } => Some(from.clone()),
                    _ => None,
                };
                let detail = format!("{layer}: {} directed links", links.len());
                let record = move |n: &Nemesis, op: Op| {
                    let (other_end, detail) = (other_end.clone(), detail.clone());
                    n.recorder.nemesis_with(op, name, &target, move |e| match other_end {
                        Some(from) => e.from(from).detail(detail),
                        None => e.detail(detail),
                    });
                };
                record(self, Op::Fault);
                self.link_layer(cluster, &layer, &links, true);
                Box::new(move |n, c| {
                    record(n, Op::Heal);
                    n.link_layer(c, &layer, &links, false);
                })
            }
            layer @ (Fault::Latency { .. } | Fault::Loss { .. } | Fault::LinkLatency { .. }) => {
                // Faults of every node are one setting of the whole
                // network: the layers in force are combined.
                started(Some(match &layer {
                    Fault::Latency { latency_ms: [min_ms, max_ms], .. } => format!("{min_ms}..{max_ms} ms, network-wide"),
                    Fault::Loss { loss_rate, .. } => format!("rate={loss_rate}, network-wide"),
                    _ => String::new(),
                }));
                self.net_layer(cluster, &layer, true);
                Box::new(move |n, c| {
                    let layers = n.net_layer(c, &layer, false);
                    ended(n, Some(format!("{layer} ({layers} network faults remain)")));
                })
            }
            Fault::ClockSkew { target: node, skew_ms } => {
                // Skews and jumps add up; each heal takes back only its own.
                self.recorder.nemesis_with(Op::Fault, name, &target, |e| e.clock_ms(skew_ms).detail(format!("{skew_ms:+} ms")));
                cluster.shift_clock(&node, skew_ms);
                let heal_target = target.clone();
                Box::new(move |n, c| {
                    n.recorder.nemesis_with(Op::Heal, name, &heal_target, |e| e.clock_ms(-skew_ms).detail(format!("{skew_ms:+} ms taken back")));
                    c.shift_clock(&node, -skew_ms);
                })
            }
            Fault::ClockJump { target: node, jump_ms } => {
                self.recorder.nemesis_with(Op::Fault, name, &target, |e| e.clock_ms(jump_ms).detail(format!("{jump_ms:+} ms")));
                cluster.shift_clock(&node, jump_ms);
                scheduled.heal_at_ms?;
                let heal_target = target.clone();
                Box::new(move |n, c| {
                    n.recorder.nemesis_with(Op::Heal, name, &heal_target, |e| e.clock_ms(-jump_ms).detail(format!("{jump_ms:+} ms stepped back")));
                    c.shift_clock(&node, -jump_ms);
                })
            }
            Fault::DiskFault { target: node, disk } => {
                if disk == DiskFaultKind::FlipByte {
                    let flipped = cluster.flip_bit(&node)?;
                    let mut event = Event::new(0, "nemesis", Kind::Info, Op::Fault).fault(name).target(node.as_str());
                    match flipped {
                        Some(flipped) => {
                            event = event.flip(flipped.path, flipped.at);
                            // The checker excuses exactly this message.
                            if let Some(msg_id) = flipped.msg_id {
                                event = event.msg_id(msg_id);
                            }
                        }
                        None => event = event.detail(format!("{disk:?}: no commit log yet")),
                    }
                    self.recorder.record(event);
                    return None;
                }
                if !cluster.disk_fault(&node, disk, true) {
                    return None;
                }
                started(Some(format!("{disk:?}")));
                Box::new(move |n, c| {
                    ended(n, Some(format!("{disk:?}")));
                    c.disk_fault(&node, disk, false);
                })
            }
        };
        Some(heal)
    }

    /// Cuts (`on`) or mends directed links. Links are counted, so when
    /// partitions overlap a link opens only once no partition holds it.
    fn cut(&self, cluster: &dyn Cluster, links: &[(&str, &str)], on: bool) {
        let mut cut = self.cut.lock().expect("cut links");
        for &(a, b) in links {
            let count = cut.entry((a.to_string(), b.to_string())).or_insert(0);
            if on {
                *count += 1;
                if *count == 1 {
                    cluster.cut(a, b, true);
                }
            } else {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    cluster.cut(a, b, false);
                }
            }
        }
        cut.retain(|_, count| *count > 0);
    }

    /// Adds (`on`) or removes a fault of single links and sets each of
    /// `links` to what the faults still on it make: the widest extra
    /// latency and the combined loss, or nothing once none is left.
    fn link_layer(&self, cluster: &dyn Cluster, fault: &Fault<String>, links: &[(String, String)], on: bool) {
        let mut layers = self.link_layers.lock().expect("link faults");
        for link in links {
            let on_link = layers.entry(link.clone()).or_default();
            if on {
                on_link.push(fault.clone());
            } else if let Some(i) = on_link.iter().position(|f| f == fault) {
                on_link.remove(i);
            }
            let combined = (!on_link.is_empty()).then(|| combine(on_link));
            cluster.set_link(&link.0, &link.1, combined);
        }
        layers.retain(|_, on_link| !on_link.is_empty());
    }

    /// Adds (`on`) or removes a latency or loss fault of the whole network
    /// and sets the network to what the faults still in force make: the
    /// widest latency range and the combined loss, or no fault once none is
    /// left. Returns how many remain.
    fn net_layer(&self, cluster: &dyn Cluster, fault: &Fault<String>, on: bool) -> usize {
        let mut layers = self.net_layers.lock().expect("network faults");
        if on {
            layers.push(fault.clone());
        } else if let Some(i) = layers.iter().position(|f| f == fault) {
            layers.remove(i);
        }
        cluster.set_network((!layers.is_empty()).then(|| combine(&layers)));
        layers.len()
    }
}

/// Restarts a killed, crashed or powered-off node; `record` writes the heal
/// into the history first.
fn restart(nemesis: &Nemesis, cluster: &dyn Cluster, node: &str, record: impl FnOnce(&Nemesis, Option<String>)) {
    record(nemesis, None);
    cluster.restart(node);
}

/// Latency and loss faults in force together: the widest latency range and
/// the combined loss.
fn combine(layers: &[Fault<String>]) -> LinkFault {
    let mut latency: Option<(u64, u64)> = None;
    let mut delivered = 1.0;
    for layer in layers {
        match layer {
            Fault::Latency { latency_ms: [min_ms, max_ms], .. } | Fault::LinkLatency { latency_ms: [min_ms, max_ms], .. } => {
                let (lo, hi) = latency.unwrap_or((0, 0));
                latency = Some((lo.max(*min_ms), hi.max(*max_ms)));
            }
            Fault::Loss { loss_rate, .. } => delivered *= 1.0 - loss_rate,
            _ => {}
        }
    }
    LinkFault { latency_ms: latency, loss_rate: 1.0 - delivered }
}

/// True for a latency or loss fault over every node: one setting of the
/// whole network takes it. (A link latency is never network-wide.)
fn network_wide(cluster: &dyn Cluster, fault: &Fault<String>) -> bool {
    match fault {
        Fault::Latency { targets, .. } | Fault::Loss { targets, .. } => cluster.nodes().iter().all(|node| targets.contains(node)),
        _ => false,
    }
}

/// The directed links a latency or loss fault acts on: to and from each
/// target node, or both ways between the two ends of a link latency.
fn links_of(cluster: &dyn Cluster, fault: &Fault<String>) -> Vec<(String, String)> {
    let (ends, others): (&[String], Vec<String>) = match fault {
        Fault::Latency { targets, .. } | Fault::Loss { targets, .. } => (targets, cluster.nodes()),
        Fault::LinkLatency { targets, from, .. } => (targets, from.clone()),
        _ => return Vec::new(),
    };
    let mut links = BTreeSet::new();
    for a in ends {
        for b in others.iter().filter(|b| *b != a) {
            links.insert((a.clone(), b.clone()));
            links.insert((b.clone(), a.clone()));
        }
    }
    links.into_iter().collect()
}
