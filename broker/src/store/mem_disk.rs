//! An in-memory disk that remembers which bytes are durable, for crash tests
//! and for the simulator.

use super::Disk;
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

/// One file: what a reader sees now, and what survives a power loss. The
/// durable bytes are `data[..synced]` followed by `durable_tail`, so an
/// fsync of an appended file costs nothing (copying the whole file on
/// every fsync was a third of a SYNC_FLUSH simulation's time); only a
/// truncation below the synced prefix moves bytes to the tail.
#[derive(Clone, Debug, Default)]
struct MemFile {
    data: Vec<u8>,
    /// How many leading bytes of `data` are durable as they are.
    synced: usize,
    /// Durable bytes past `synced` that `data` no longer has (an unsynced
    /// truncation, or an overwrite after one).
    durable_tail: Vec<u8>,
}

impl MemFile {
    fn durable_len(&self) -> usize {
        self.synced + self.durable_tail.len()
    }

    /// Whether the file now is its durable bytes with more appended.
    fn extends_durable(&self) -> bool {
        self.data.len() > self.durable_len() && self.data[self.synced..].starts_with(&self.durable_tail)
    }
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
            if file.extends_durable() {
                let durable = file.durable_len();
                let n = file.data.len() - durable;
                let k = torn(n).min(n);
                file.data.truncate(durable + k);
            } else {
                file.data.truncate(file.synced);
                file.data.extend_from_slice(&file.durable_tail);
            }
            file.synced = file.data.len();
            file.durable_tail.clear();
        }
    }

    /// Total bytes written and not yet synced, over all files.
    pub fn unsynced_bytes(&self) -> u64 {
        let files = self.files.lock().expect("mem disk lock");
        files.values().map(|f| f.data.len().abs_diff(f.durable_len()) as u64).sum()
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
        // Below `synced` the byte is shared by both views.
        file.data[i] ^= 1 << (bit % 8);
        if let Some(b) = i.checked_sub(file.synced).and_then(|j| file.durable_tail.get_mut(j)) {
            *b ^= 1 << (bit % 8);
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
        let len = (len as usize).min(file.data.len());
        if len < file.synced {
            // The cut durable bytes survive a power loss until a sync.
            let mut tail = file.data[len..file.synced].to_vec();
            tail.append(&mut file.durable_tail);
            file.durable_tail = tail;
            file.synced = len;
        }
        file.data.truncate(len);
        Ok(())
    }

    fn sync(&self, path: &str) -> io::Result<()> {
        if let Some(file) = self.files.lock().expect("mem disk lock").get_mut(path) {
            file.synced = file.data.len();
            file.durable_tail.clear();
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
        files.insert(path.to_string(), MemFile { data: data.to_vec(), synced: data.len(), durable_tail: Vec::new() });
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
    fn an_unsynced_truncation_comes_back_after_a_power_loss() {
        let disk = MemDisk::new();
        disk.append("f", b"abcdef").unwrap();
        disk.sync("f").unwrap();
        disk.truncate("f", 2).unwrap();
        disk.append("f", b"XY").unwrap();
        assert_eq!(disk.read("f", 0, 100).unwrap(), b"abXY");
        assert_eq!(disk.unsynced_bytes(), 2, "6 durable bytes against 4 now");
        // A flipped bit hits the byte at its offset in both views.
        assert!(disk.flip_bit("f", 3, 0));
        assert_eq!(disk.read("f", 0, 100).unwrap(), b"abXX");
        disk.power_loss(|n| n);
        assert_eq!(disk.read("f", 0, 100).unwrap(), b"abceef");
        // Truncated and synced: the cut is durable.
        disk.truncate("f", 3).unwrap();
        disk.sync("f").unwrap();
        disk.append("f", b"zz").unwrap();
        disk.power_loss(|_| 0);
        assert_eq!(disk.read("f", 0, 100).unwrap(), b"abc");
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
