//! An in-memory disk that remembers which bytes are durable, for crash tests
//! and for the simulator.

use super::Disk;
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

/// One file: what a reader sees now, and what survives a power loss.
#[derive(Clone, Debug, Default)]
struct MemFile {
    data: Vec<u8>,
    durable: Vec<u8>,
}

/// A disk in memory. Cloning shares the contents, so a restarted node can
/// reopen the same disk. A process crash loses nothing (the page cache
/// survives); [`MemDisk::power_loss`] drops what was not synced.
#[derive(Clone, Debug, Default)]
pub struct MemDisk {
    files: Arc<Mutex<BTreeMap<String, MemFile>>>,
}

impl MemDisk {
    /// An empty disk.
    pub fn new() -> MemDisk {
        MemDisk::default()
    }

    /// Power loss: every file falls back to its durable bytes. Where unsynced
    /// bytes were appended past the durable end, `torn(n)` chooses how many of
    /// those `n` bytes reached the platter anyway (0..=n), which tears the
    /// last write when it stops inside an entry.
    pub fn power_loss(&self, mut torn: impl FnMut(usize) -> usize) {
        let mut files = self.files.lock().expect("mem disk lock");
        for file in files.values_mut() {
            let extends = file.data.len() > file.durable.len() && file.data.starts_with(&file.durable);
            let kept = if extends {
                let n = file.data.len() - file.durable.len();
                let k = torn(n).min(n);
                file.data[..file.durable.len() + k].to_vec()
            } else {
                file.durable.clone()
            };
            file.data = kept.clone();
            file.durable = kept;
        }
    }

    /// Total bytes written and not yet synced, over all files.
    pub fn unsynced_bytes(&self) -> u64 {
        let files = self.files.lock().expect("mem disk lock");
        files.values().map(|f| f.data.len().abs_diff(f.durable.len()) as u64).sum()
    }

    /// Flips one bit of a durable byte, as a failing disk would: the store's
    /// CRC must catch it. Returns false when the file is too short.
    pub fn flip_bit(&self, path: &str, offset: u64, bit: u8) -> bool {
        let mut files = self.files.lock().expect("mem disk lock");
        let Some(file) = files.get_mut(path) else { return false };
        let i = offset as usize;
        if i >= file.data.len() {
            return false;
        }
        file.data[i] ^= 1 << (bit % 8);
        if i < file.durable.len() {
            file.durable[i] ^= 1 << (bit % 8);
        }
        true
    }

    /// Every path on the disk, sorted.
    pub fn paths(&self) -> Vec<String> {
        self.files.lock().expect("mem disk lock").keys().cloned().collect()
    }
}

fn not_found(path: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{path}: no such file"))
}

impl Disk for MemDisk {
    fn read(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let files = self.files.lock().expect("mem disk lock");
        let file = files.get(path).ok_or_else(|| not_found(path))?;
        let start = (offset as usize).min(file.data.len());
        let end = start.saturating_add(len).min(file.data.len());
        Ok(file.data[start..end].to_vec())
    }

    fn len(&self, path: &str) -> io::Result<Option<u64>> {
        Ok(self.files.lock().expect("mem disk lock").get(path).map(|f| f.data.len() as u64))
    }

    fn append(&self, path: &str, data: &[u8]) -> io::Result<()> {
        let mut files = self.files.lock().expect("mem disk lock");
        files.entry(path.to_string()).or_default().data.extend_from_slice(data);
        Ok(())
    }

    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        let mut files = self.files.lock().expect("mem disk lock");
        let file = files.get_mut(path).ok_or_else(|| not_found(path))?;
        file.data.truncate(len as usize);
        Ok(())
    }

    fn sync(&self, path: &str) -> io::Result<()> {
        if let Some(file) = self.files.lock().expect("mem disk lock").get_mut(path) {
            file.durable = file.data.clone();
        }
        Ok(())
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        self.files.lock().expect("mem disk lock").remove(path);
        Ok(())
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let files = self.files.lock().expect("mem disk lock");
        let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        let mut names: Vec<String> = files
            .keys()
            .filter_map(|p| p.strip_prefix(&prefix))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .collect();
        names.dedup();
        Ok(names)
    }

    fn write_atomic(&self, path: &str, data: &[u8]) -> io::Result<()> {
        let mut files = self.files.lock().expect("mem disk lock");
        files.insert(path.to_string(), MemFile { data: data.to_vec(), durable: data.to_vec() });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_loss_drops_unsynced_and_may_tear() {
        let disk = MemDisk::new();
        disk.append("f", b"abc").unwrap();
        disk.sync("f").unwrap();
        disk.append("f", b"defgh").unwrap();
        assert_eq!(disk.unsynced_bytes(), 5);
        disk.power_loss(|n| n / 2);
        assert_eq!(disk.read("f", 0, 100).unwrap(), b"abcde");
        disk.append("f", b"zz").unwrap();
        disk.power_loss(|_| 0);
        assert_eq!(disk.read("f", 0, 100).unwrap(), b"abcde");
    }

    #[test]
    fn list_shows_one_level() {
        let disk = MemDisk::new();
        disk.append("cq/t/0", b"x").unwrap();
        disk.append("cq/t/1", b"x").unwrap();
        disk.append("cq/u/0", b"x").unwrap();
        assert_eq!(disk.list("cq").unwrap(), vec!["t", "u"]);
        assert_eq!(disk.list("cq/t").unwrap(), vec!["0", "1"]);
    }
}
