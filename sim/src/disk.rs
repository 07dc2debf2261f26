//! The simulated disk: a [`MemDisk`] per broker that survives restarts,
//! plus injectable faults.

use broker::model::MessageExt;
use crate::cost::{clock_step_us, worth_waiting, Servers};
use broker::store::{commit_log, entry, Disk, MemDisk};
use scenarios::DiskFaultKind;
use std::io;
use std::sync::{Arc, Mutex};

/// How long one fsync takes under a slow-fsync fault: longer than
/// FLUSH_DISK_TIMEOUT (5 s), so SYNC_FLUSH sends answer that status while
/// the disk catches up, and a power loss in the meantime tears the
/// unsynced tail.
pub const SLOW_FSYNC_MS: u64 = 6_000;

/// Faults currently switched on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskFaults {
    /// Every append fails.
    pub write_error: bool,
    /// Every fsync fails.
    pub fsync_error: bool,
    /// Appends fail with "no space left".
    pub full: bool,
    /// Each fsync takes this long in simulated time.
    pub slow_fsync_ms: u64,
}

/// What a flipped bit hit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlippedBit {
    /// The commit log segment.
    pub path: String,
    /// The byte's offset in it.
    pub at: u64,
    /// The message whose entry held the byte: destroyed, since its entry no
    /// longer checks out and there is no other copy. `None` when the byte
    /// was past the last whole entry.
    pub msg_id: Option<String>,
}

/// One broker's disk. Clones share contents and faults.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    mem: MemDisk,
    faults: Arc<Mutex<DiskFaults>>,
    cost: Arc<Mutex<Option<DiskCost>>>,
}

/// What the disk's work costs (a capacity experiment's model): an fsync
/// takes a log-normal latency plus the bytes written since the last one
/// over the bandwidth, one after another on the device.
#[derive(Debug)]
struct DiskCost {
    mib_s: f64,
    /// An fsync's latency, ms.
    fsync_ms: scenarios::LogNormal,
    /// The draws, seeded from the run.
    rng: scenarios::Rng,
    /// The device, made at the first fsync (the clock runs by then).
    device: Option<Servers>,
    /// Bytes appended since the last fsync was costed.
    written: u64,
}

impl DiskCost {
    /// One fsync's latency, µs.
    fn fsync_us(&mut self) -> f64 {
        self.fsync_ms.draw(&mut self.rng) * 1000.0
    }

    /// Reserves the device for an fsync now; returns the µs to wait, in
    /// whole clock steps, or 0 when under half a step is owed.
    fn fsync_owed_us(&mut self) -> u64 {
        let us = self.fsync_us() + self.written as f64 / (self.mib_s * 1024.0 * 1024.0) * 1e6;
        self.written = 0;
        let device = self.device.get_or_insert_with(|| Servers::new(1));
        let owed = device.reserve(us);
        if worth_waiting(owed) {
            owed.div_ceil(clock_step_us()) * clock_step_us()
        } else {
            0
        }
    }
}

impl SimDisk {
    /// An empty, healthy disk.
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    /// Gives the disk a cost model: write bandwidth in MiB/s, and fsync
    /// latency in ms as [median, 99th percentile] of a log-normal
    /// distribution drawn from `rng`.
    pub fn set_cost(&self, mib_s: f64, fsync_ms: [f64; 2], rng: scenarios::Rng) {
        let fsync_ms = scenarios::LogNormal::from_percentiles(fsync_ms);
        *self.cost.lock().expect("disk cost") = Some(DiskCost { mib_s, fsync_ms, rng, device: None, written: 0 });
    }

    /// The faults in force.
    pub fn faults(&self) -> DiskFaults {
        *self.faults.lock().expect("faults")
    }

    /// Switches a fault on (`on`) or off. `flip-byte` is instantaneous: use
    /// [`SimDisk::flip_byte`].
    pub fn set(&self, kind: DiskFaultKind, on: bool) {
        let mut f = self.faults.lock().expect("faults");
        match kind {
            DiskFaultKind::SlowFsync => f.slow_fsync_ms = if on { SLOW_FSYNC_MS } else { 0 },
            DiskFaultKind::WriteError => f.write_error = on,
            DiskFaultKind::FsyncError => f.fsync_error = on,
            DiskFaultKind::Full => f.full = on,
            DiskFaultKind::FlipByte => {}
        }
    }

    /// Clears every fault.
    pub fn heal(&self) {
        *self.faults.lock().expect("faults") = DiskFaults::default();
    }

    /// Power loss: unsynced bytes dropped, the last write torn where
    /// `torn(n)` says (0..=n bytes of it survive).
    pub fn power_loss(&self, torn: impl FnMut(usize) -> usize) {
        self.mem.power_loss(torn);
    }

    /// Flips one bit in a commit log segment, at a position picked by
    /// `pick(len)`. Returns what it hit, or `None` with no log yet.
    pub fn flip_byte(&self, mut pick: impl FnMut(u64) -> u64) -> Option<FlippedBit> {
        let segments = self.mem.list("commitlog").ok()?;
        let total: u64 = segments.iter().filter_map(|s| self.mem.len(&format!("commitlog/{s}")).ok().flatten()).sum();
        if total == 0 {
            return None;
        }
        let mut at = pick(total) % total;
        for s in segments {
            let path = format!("commitlog/{s}");
            let len = self.mem.len(&path).ok().flatten().unwrap_or(0);
            if at < len {
                // Read the message before its bytes stop checking out.
                let msg_id = self.message_at(&path, at).map(|m| m.msg_id());
                self.mem.flip_bit(&path, at, (at % 8) as u8);
                return Some(FlippedBit { path, at, msg_id });
            }
            at -= len;
        }
        None
    }

    /// The message whose commit log entry holds byte `at` of segment
    /// `path` (named by its base offset), when that entry decodes.
    fn message_at(&self, path: &str, at: u64) -> Option<MessageExt> {
        let base: u64 = path.rsplit('/').next()?.parse().ok()?;
        let len = self.mem.len(path).ok()??;
        let data = self.mem.read(path, 0, usize::try_from(len).ok()?).ok()?;
        let at = usize::try_from(at).ok()?;
        let mut pos = 0usize;
        while pos + entry::HEADER_LEN <= data.len() {
            // Each entry is checked whole, CRC included, as recovery does: a
            // header an earlier flip spoiled may still give a plausible
            // length, and trusting it would walk out of step.
            let valid = entry::parse_header(&data[pos..])
                .ok()
                .filter(|header| pos + header.total_len <= data.len())
                .and_then(|header| {
                    let end = pos + header.total_len;
                    entry::decode(header, &data[pos + entry::HEADER_LEN..end], base + pos as u64).ok().map(|m| (end, m))
                });
            match valid {
                Some((end, msg)) => {
                    if at < end {
                        return Some(msg);
                    }
                    pos = end;
                }
                // An entry an earlier flip spoiled: that message was named
                // then; walk on from the next valid entry.
                None => {
                    let next = commit_log::next_valid_entry(&data, pos + 1, base)?;
                    if at < next {
                        return None;
                    }
                    pos = next;
                }
            }
        }
        None
    }

    /// Bytes written and not yet synced.
    pub fn unsynced_bytes(&self) -> u64 {
        self.mem.unsynced_bytes()
    }

    fn check_write(&self) -> io::Result<()> {
        let f = self.faults();
        if f.full {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "simulated: no space left on device"));
        }
        if f.write_error {
            return Err(io::Error::other("simulated: write error"));
        }
        Ok(())
    }
}

impl Disk for SimDisk {
    fn read(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.mem.read(path, offset, len)
    }

    fn len(&self, path: &str) -> io::Result<Option<u64>> {
        self.mem.len(path)
    }

    fn append(&self, path: &str, data: &[u8]) -> io::Result<()> {
        self.check_write()?;
        if let Some(cost) = self.cost.lock().expect("disk cost").as_mut() {
            cost.written += data.len() as u64;
        }
        self.mem.append(path, data)
    }

    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        self.check_write()?;
        self.mem.truncate(path, len)
    }

    fn sync(&self, path: &str) -> io::Result<()> {
        if self.faults().fsync_error {
            return Err(io::Error::other("simulated: fsync error"));
        }
        self.mem.sync(path)
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        self.mem.remove(path)
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        self.mem.list(dir)
    }

    fn write_atomic(&self, path: &str, data: &[u8]) -> io::Result<()> {
        self.check_write()?;
        self.mem.write_atomic(path, data)
    }

    fn sync_delay_us(&self) -> u64 {
        let modeled = self.cost.lock().expect("disk cost").as_mut().map_or(0, DiskCost::fsync_owed_us);
        self.faults().slow_fsync_ms * 1000 + modeled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fsync draws follow the configured median and 99th percentile.
    #[test]
    fn fsync_latency_draws_fit_their_percentiles() {
        let disk = SimDisk::new();
        disk.set_cost(100.0, [2.0, 8.0], scenarios::Rng::new(7, "test"));
        let mut cost = disk.cost.lock().unwrap();
        let cost = cost.as_mut().unwrap();
        let mut draws: Vec<f64> = (0..20_000).map(|_| cost.fsync_us() / 1000.0).collect();
        draws.sort_by(f64::total_cmp);
        let (p50, p99) = (draws[10_000], draws[19_800]);
        assert!((1.9..2.1).contains(&p50), "p50 {p50}");
        assert!((7.2..8.8).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn faults_fail_writes_until_healed() {
        let disk = SimDisk::new();
        disk.append("a", b"x").unwrap();
        disk.set(DiskFaultKind::Full, true);
        let err = disk.append("a", b"y").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        disk.set(DiskFaultKind::FsyncError, true);
        assert!(disk.sync("a").is_err());
        disk.set(DiskFaultKind::SlowFsync, true);
        assert_eq!(disk.sync_delay_us(), SLOW_FSYNC_MS * 1000);
        disk.heal();
        disk.append("a", b"y").unwrap();
        disk.sync("a").unwrap();
        assert_eq!(disk.read("a", 0, 10).unwrap(), b"xy");
    }

    #[test]
    fn flip_byte_names_the_message_it_destroys() {
        let disk = SimDisk::new();
        let mut store = broker::store::MessageStore::open(std::sync::Arc::new(disk.clone()), Default::default()).unwrap().0;
        let mut offsets = Vec::new();
        for n in 0..3 {
            let message = broker::model::Message::new("t", vec![7u8; 40]).with_property(broker::model::PROPERTY_UNIQ_KEY, format!("m{n}"));
            offsets.push(store.put(MessageExt { message, ..MessageExt::default() }, 0).unwrap().commit_log_offset);
        }
        // A byte inside the second entry destroys m1, and nothing else.
        let flipped = disk.flip_byte(|_| offsets[1] + 30).unwrap();
        assert_eq!(flipped.msg_id.as_deref(), Some("m1"));
    }

    #[test]
    fn flip_byte_hits_the_commit_log() {
        let disk = SimDisk::new();
        assert_eq!(disk.flip_byte(|_| 0), None);
        disk.append("commitlog/00000000000000000000", &[0u8; 10]).unwrap();
        let flipped = disk.flip_byte(|_| 13).unwrap();
        assert_eq!((flipped.path.as_str(), flipped.at, flipped.msg_id), ("commitlog/00000000000000000000", 3, None));
        assert_eq!(disk.read(&flipped.path, 3, 1).unwrap(), vec![1 << 3]);
    }
}
