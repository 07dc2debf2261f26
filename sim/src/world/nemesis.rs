//! The nemesis's side of the world: each fault applied, recorded, and
//! undone by its heal; latency and loss layered per link or network-wide.

use super::World;
use super::Heal;
use crate::disk::SimDisk;
use crate::draw::draw;
use crate::recorder::harness_marks;
use checker::history::{Event, Kind, Op};
use madsim::net::NetSim;
use scenarios::{DiskFaultKind, Fault, PartitionKind, ScheduledFault};
use std::time::Duration;

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

impl World {
    /// Applies one fault now, records it, and returns how to heal it: each
    /// fault is defined here once, what it does next to what undoes it, so
    /// a heal takes back exactly what its fault did and nothing else. The
    /// history names the fault as the scenario file does (`fault` events
    /// start one, `heal` events end it). `None` for a fault with nothing to
    /// undo (a flipped byte, a clock jump that persists).
    pub fn inject(&self, scheduled: &ScheduledFault) -> Option<Heal> {
        let name = scheduled.fault.name();
        let target = scheduled.targets().join(",");
        let started = |detail: Option<String>| {
            self.recorder.nemesis(Op::Fault, name, &target, detail);
        };
        let heal_target = target.clone();
        let ended = move |w: &World, detail: Option<String>| {
            w.recorder.nemesis(Op::Heal, name, &heal_target, detail);
        };
        let heal: Heal = match scheduled.fault.clone() {
            Fault::Kill { target: node } => {
                started(None);
                if self.disks.get(&node).is_some_and(|d| d.unsynced_bytes() > 0) {
                    self.recorder.reach(harness_marks::CRASH_WITH_UNSYNCED_BYTES, "nemesis");
                }
                self.handle.kill(self.ids[&node]);
                Box::new(move |w| w.restart(&node, ended))
            }
            Fault::ConsumerCrash { target: node, step: None } => {
                started(None);
                self.handle.kill(self.ids[&node]);
                Box::new(move |w| w.restart(&node, ended))
            }
            Fault::ConsumerCrash { target: node, step: Some(step) } => {
                started(Some(format!("at {} of its next delivery", step.as_str())));
                self.triggers[&node].arm(step);
                Box::new(move |w| {
                    if w.triggers[&node].disarm() {
                        w.restart(&node, ended);
                    } else {
                        // No delivery reached the step: the consumer never went down.
                        ended(w, Some("the armed crash never struck".into()));
                    }
                })
            }
            Fault::PowerLoss { target: node } => {
                let unsynced = self.disks.get(&node).map(SimDisk::unsynced_bytes).unwrap_or(0);
                self.recorder.nemesis_with(Op::Fault, name, &target, |e| e.unsynced_bytes(unsynced));
                if unsynced > 0 {
                    self.recorder.reach(harness_marks::CRASH_WITH_UNSYNCED_BYTES, "nemesis");
                }
                self.handle.kill(self.ids[&node]);
                if let Some(disk) = self.disks.get(&node) {
                    disk.power_loss(|n| (draw() % (n as u64 + 1)) as usize);
                }
                Box::new(move |w| w.restart(&node, ended))
            }
            Fault::Pause { target: node } => {
                started(None);
                self.handle.pause(self.ids[&node]);
                Box::new(move |w| {
                    ended(w, None);
                    w.handle.resume(w.ids[&node]);
                })
            }
            Fault::Partition { partition, targets: side, from } => {
                let one_way = partition == PartitionKind::OneWay;
                let detail = if one_way { "one way" } else { "both ways" };
                let other_side: Vec<String> = from.iter().map(|n| n.to_string()).collect();
                let sides = other_side.clone();
                self.recorder.nemesis_with(Op::Fault, name, &target, |e| e.from(sides).detail(detail));
                self.recorder.partition(true);
                self.clog(&partition_links(&side, &from, one_way), true);
                let heal_target = target.clone();
                Box::new(move |w| {
                    w.recorder.nemesis_with(Op::Heal, name, &heal_target, |e| e.from(other_side).detail(detail));
                    w.recorder.partition(false);
                    w.clog(&partition_links(&side, &from, one_way), false);
                })
            }
            layer @ (Fault::Latency { .. } | Fault::Loss { .. } | Fault::LinkLatency { .. }) if !self.network_wide(&layer) => {
                // Only the links of the faulted nodes (or the one link).
                let links = self.links_of(&layer);
                let other_end = match &layer {
                    Fault::LinkLatency { from, .. } => Some(from.clone()),
                    _ => None,
                };
                let detail = format!("{layer}: {} directed links", links.len());
                let record = move |w: &World, op: Op| {
                    let (other_end, detail) = (other_end.clone(), detail.clone());
                    w.recorder.nemesis_with(op, name, &target, move |e| match other_end {
                        Some(from) => e.from(from).detail(detail),
                        None => e.detail(detail),
                    });
                };
                record(self, Op::Fault);
                self.link_layer(&layer, &links, true);
                Box::new(move |w| {
                    record(w, Op::Heal);
                    w.link_layer(&layer, &links, false);
                })
            }
            layer @ (Fault::Latency { .. } | Fault::Loss { .. } | Fault::LinkLatency { .. }) => {
                // madsim's latency and loss are each one setting for the
                // whole network: the layers in force are combined.
                started(Some(match &layer {
                    Fault::Latency { latency_ms: [min_ms, max_ms], .. } => format!("{min_ms}..{max_ms} ms, network-wide"),
                    Fault::Loss { loss_rate, .. } => format!("rate={loss_rate}, network-wide"),
                    _ => String::new(),
                }));
                self.net_layer(&layer, true);
                Box::new(move |w| {
                    let layers = w.net_layer(&layer, false);
                    ended(w, Some(format!("{layer} ({layers} network faults remain)")));
                })
            }
            Fault::ClockSkew { target: node, skew_ms } => {
                // Skews and jumps add up; each heal takes back only its own.
                self.recorder.nemesis_with(Op::Fault, name, &target, |e| e.clock_ms(skew_ms).detail(format!("{skew_ms:+} ms")));
                self.clocks[&node].jump_ms(skew_ms);
                let heal_target = target.clone();
                Box::new(move |w| {
                    w.recorder.nemesis_with(Op::Heal, name, &heal_target, |e| e.clock_ms(-skew_ms).detail(format!("{skew_ms:+} ms taken back")));
                    w.clocks[&node].jump_ms(-skew_ms);
                })
            }
            Fault::ClockJump { target: node, jump_ms } => {
                self.recorder.nemesis_with(Op::Fault, name, &target, |e| e.clock_ms(jump_ms).detail(format!("{jump_ms:+} ms")));
                self.clocks[&node].jump_ms(jump_ms);
                scheduled.heal_at_ms?;
                let heal_target = target.clone();
                Box::new(move |w| {
                    w.recorder.nemesis_with(Op::Heal, name, &heal_target, |e| e.clock_ms(-jump_ms).detail(format!("{jump_ms:+} ms stepped back")));
                    w.clocks[&node].jump_ms(-jump_ms);
                })
            }
            Fault::DiskFault { target: node, disk } => {
                let sim_disk = self.disks.get(&node)?;
                if disk == DiskFaultKind::FlipByte {
                    let mut event = Event::new(0, "nemesis", Kind::Info, Op::Fault).fault(name).target(node.as_str());
                    match sim_disk.flip_byte(|n| draw() % n.max(1)) {
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
                started(Some(format!("{disk:?}")));
                sim_disk.set(disk, true);
                Box::new(move |w| {
                    ended(w, Some(format!("{disk:?}")));
                    w.disks[&node].set(disk, false);
                })
            }
        };
        Some(heal)
    }

    /// Restarts a killed, crashed or powered-off node; `record` writes the
    /// heal into the history first.
    fn restart(&self, node: &str, record: impl FnOnce(&World, Option<String>)) {
        record(self, None);
        self.handle.restart(self.ids[node]);
    }

    /// Clogs (`on`) or unclogs directed links. Links are counted, so when
    /// partitions overlap a link opens only once no partition holds it.
    fn clog(&self, links: &[(&str, &str)], on: bool) {
        let net = NetSim::current();
        let mut clogged = self.clogged.lock().expect("clogged links");
        for &(a, b) in links {
            let count = clogged.entry((a.to_string(), b.to_string())).or_insert(0);
            if on {
                *count += 1;
                if *count == 1 {
                    net.clog_link(self.ids[a], self.ids[b]);
                }
            } else {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    net.unclog_link(self.ids[a], self.ids[b]);
                }
            }
        }
        clogged.retain(|_, count| *count > 0);
    }

    /// The network without faults: madsim's defaults (1-10 ms a packet), or
    /// the cost model's link latency.
    pub(super) fn base_net_config(&self) -> madsim::net::Config {
        let mut config = madsim::net::Config::default();
        if let Some(cost) = &self.resolved.scenario.topology.cost {
            let [lo, hi] = cost.link_latency_ms.map(|ms| Duration::from_secs_f64(ms / 1000.0));
            // madsim draws from a half-open range: never an empty one.
            config.send_latency = lo..hi.max(lo + Duration::from_nanos(1));
        }
        config
    }

    /// True for a latency or loss fault over every node: madsim's network
    /// settings take it. (A link latency is never network-wide.)
    fn network_wide(&self, fault: &Fault<String>) -> bool {
        match fault {
            Fault::Latency { targets, .. } | Fault::Loss { targets, .. } => self.ids.keys().all(|node| targets.contains(node)),
            _ => false,
        }
    }

    /// The directed links a latency or loss fault acts on: to and from each
    /// target node, or both ways between the two ends of a link latency.
    fn links_of(&self, fault: &Fault<String>) -> Vec<(String, String)> {
        let (ends, others): (&[String], Vec<String>) = match fault {
            Fault::Latency { targets, .. } | Fault::Loss { targets, .. } => (targets, self.ids.keys().cloned().collect()),
            Fault::LinkLatency { targets, from, .. } => (targets, from.clone()),
            _ => return Vec::new(),
        };
        let mut links = std::collections::BTreeSet::new();
        for a in ends {
            for b in others.iter().filter(|b| *b != a) {
                links.insert((a.clone(), b.clone()));
                links.insert((b.clone(), a.clone()));
            }
        }
        links.into_iter().collect()
    }

    /// Adds (`on`) or removes a fault of single links and sets each of
    /// `links` to what the faults still on it make: the widest extra
    /// latency and the combined loss, or nothing once none is left.
    fn link_layer(&self, fault: &Fault<String>, links: &[(String, String)], on: bool) {
        let mut layers = self.link_layers.lock().expect("link faults");
        for link in links {
            let on_link = layers.entry(link.clone()).or_default();
            if on {
                on_link.push(fault.clone());
            } else if let Some(i) = on_link.iter().position(|f| f == fault) {
                on_link.remove(i);
            }
            let (Some(&src), Some(&dst)) = (self.ids.get(&link.0), self.ids.get(&link.1)) else { continue };
            let mut latency: Option<(u64, u64)> = None;
            let mut delivered = 1.0;
            for layer in on_link.iter() {
                match layer {
                    Fault::Latency { latency_ms: [min_ms, max_ms], .. } | Fault::LinkLatency { latency_ms: [min_ms, max_ms], .. } => {
                        let (lo, hi) = latency.unwrap_or((0, 0));
                        latency = Some((lo.max(*min_ms), hi.max(*max_ms)));
                    }
                    Fault::Loss { loss_rate, .. } => delivered *= 1.0 - loss_rate,
                    _ => {}
                }
            }
            let link_fault = (!on_link.is_empty()).then(|| madsim::net::LinkFault {
                extra_latency: latency.map(|(lo, hi)| Duration::from_millis(lo)..Duration::from_millis(hi.max(lo + 1))),
                loss_rate: 1.0 - delivered,
            });
            NetSim::current().set_link_fault(src, dst, link_fault);
        }
        layers.retain(|_, on_link| !on_link.is_empty());
    }

    /// Adds (`on`) or removes a latency or loss fault and sets the network
    /// to what the faults still in force make: the widest latency range and
    /// the combined loss, or madsim's defaults when none is left. Returns
    /// how many remain.
    fn net_layer(&self, fault: &Fault<String>, on: bool) -> usize {
        let mut layers = self.net_layers.lock().expect("network faults");
        if on {
            layers.push(fault.clone());
        } else if let Some(i) = layers.iter().position(|f| f == fault) {
            layers.remove(i);
        }
        let mut config = self.base_net_config();
        let mut latency: Option<(u64, u64)> = None;
        let mut delivered = 1.0;
        for layer in layers.iter() {
            match layer {
                Fault::Latency { latency_ms: [min_ms, max_ms], .. } => {
                    let (lo, hi) = latency.unwrap_or((0, 0));
                    latency = Some((lo.max(*min_ms), hi.max(*max_ms)));
                }
                Fault::Loss { loss_rate, .. } => delivered *= 1.0 - loss_rate,
                _ => {}
            }
        }
        if let Some((lo, hi)) = latency {
            config.send_latency = Duration::from_millis(lo)..Duration::from_millis(hi.max(lo + 1));
        }
        config.packet_loss_rate = 1.0 - delivered;
        NetSim::current().update_config(|c| *c = config);
        layers.len()
    }
}
