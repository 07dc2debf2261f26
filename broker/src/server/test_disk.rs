//! A disk for the broker's tests in real mode: in memory, with fsyncs
//! that wait at a gate the test opens, and appends or writes that fail or
//! stall while the test says so.

use super::TOPICS_PATH;
use crate::store::{Disk, MemDisk};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A disk whose fsyncs wait at a gate the test opens, so a test can look at
/// the broker while an fsync is in progress.
#[derive(Clone, Default)]
pub(super) struct GatedDisk {
    mem: MemDisk,
    gate: Arc<(Mutex<Gate>, Condvar)>,
    /// While set, every append fails as on a full disk.
    pub(super) full: Arc<AtomicBool>,
    /// While set, the next atomic write of the topics file takes 300 ms
    /// (and clears it): a handler's write still running when another's
    /// comes.
    pub(super) slow_topics_write: Arc<AtomicBool>,
    /// While set, every commit log append takes 300 ms: a writer stuck in
    /// the page cache.
    pub(super) slow_appends: Arc<AtomicBool>,
}

#[derive(Default)]
struct Gate {
    closed: bool,
    waiting: u32,
}

impl GatedDisk {
    pub(super) fn close(&self) {
        self.gate.0.lock().unwrap().closed = true;
    }

    pub(super) fn open(&self) {
        self.gate.0.lock().unwrap().closed = false;
        self.gate.1.notify_all();
    }

    pub(super) fn waiting(&self) -> u32 {
        self.gate.0.lock().unwrap().waiting
    }
}

impl Disk for GatedDisk {
    fn read(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.mem.read(path, offset, len)
    }
    fn len(&self, path: &str) -> io::Result<Option<u64>> {
        self.mem.len(path)
    }
    fn append(&self, path: &str, data: &[u8]) -> io::Result<()> {
        if self.full.load(Ordering::Relaxed) {
            return Err(io::Error::other("no space left on device"));
        }
        if self.slow_appends.load(Ordering::SeqCst) && path.starts_with("commitlog") {
            std::thread::sleep(Duration::from_millis(300));
        }
        self.mem.append(path, data)
    }
    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        self.mem.truncate(path, len)
    }
    fn sync(&self, path: &str) -> io::Result<()> {
        let (lock, cvar) = &*self.gate;
        let mut gate = lock.lock().unwrap();
        gate.waiting += 1;
        while gate.closed {
            gate = cvar.wait(gate).unwrap();
        }
        gate.waiting -= 1;
        drop(gate);
        self.mem.sync(path)
    }
    fn remove(&self, path: &str) -> io::Result<()> {
        self.mem.remove(path)
    }
    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        self.mem.list(dir)
    }
    fn write_atomic(&self, path: &str, data: &[u8]) -> io::Result<()> {
        if self.full.load(Ordering::Relaxed) {
            return Err(io::Error::other("no space left on device"));
        }
        if path == TOPICS_PATH && self.slow_topics_write.swap(false, Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(300));
        }
        self.mem.write_atomic(path, data)
    }
}
