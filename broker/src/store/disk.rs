//! The store's only way to the disk, so the simulation can supply its own.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A flat namespace of files addressed by `/`-separated relative paths.
///
/// Writes go to a volatile view first; only [`Disk::sync`] makes them durable.
/// Implementations: [`FsDisk`] over real files, [`super::MemDisk`] in memory
/// with crash semantics, and the simulator's fault-injecting disk.
pub trait Disk: Send + Sync {
    /// Reads up to `len` bytes at `offset`; fewer at the end of the file.
    fn read(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// The file's length, or `None` when it does not exist.
    fn len(&self, path: &str) -> io::Result<Option<u64>>;
    /// Appends bytes, creating the file if needed.
    fn append(&self, path: &str, data: &[u8]) -> io::Result<()>;
    /// Cuts the file to `len` bytes.
    fn truncate(&self, path: &str, len: u64) -> io::Result<()>;
    /// Makes everything written to the file so far durable. Syncing a file
    /// that does not exist (deleted since the caller looked) does nothing.
    fn sync(&self, path: &str) -> io::Result<()>;
    /// Deletes the file; deleting a missing file is not an error.
    fn remove(&self, path: &str) -> io::Result<()>;
    /// Names of the files directly under `dir`, sorted.
    fn list(&self, dir: &str) -> io::Result<Vec<String>>;
    /// Replaces the whole file durably and atomically (temp file, fsync, rename).
    fn write_atomic(&self, path: &str, data: &[u8]) -> io::Result<()>;
    /// Extra time an fsync takes right now, in µs. Real disks take their
    /// time inside `sync`; a simulated one reports it here so the flusher
    /// can wait in simulated time (a slow-fsync fault, a cost model).
    fn sync_delay_us(&self) -> u64 {
        0
    }
}

/// Reads a whole file, or `None` when it does not exist.
pub fn read_all(disk: &dyn Disk, path: &str) -> io::Result<Option<Vec<u8>>> {
    match disk.len(path)? {
        None => Ok(None),
        Some(len) => disk.read(path, 0, len as usize).map(Some),
    }
}

/// Real files under a root directory, with fsync.
#[derive(Debug)]
pub struct FsDisk {
    root: PathBuf,
    /// Open handles, so appends do not reopen the file each time.
    files: Mutex<BTreeMap<String, File>>,
    /// Held through a whole [`Disk::write_atomic`]: the writes of one file
    /// share its temp file's name.
    atomic_writes: Mutex<()>,
}

impl FsDisk {
    /// Uses (and creates) `root` as the store directory.
    pub fn new(root: impl AsRef<Path>) -> io::Result<FsDisk> {
        std::fs::create_dir_all(root.as_ref())?;
        Ok(FsDisk { root: root.as_ref().to_path_buf(), files: Mutex::new(BTreeMap::new()), atomic_writes: Mutex::new(()) })
    }

    fn full(&self, path: &str) -> io::Result<PathBuf> {
        if path.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad store path {path:?}")));
        }
        Ok(self.root.join(path))
    }

    fn with_file<T>(&self, path: &str, create: bool, f: impl FnOnce(&File) -> io::Result<T>) -> io::Result<T> {
        let mut files = self.files.lock().expect("fs disk lock");
        if !files.contains_key(path) {
            let full = self.full(path)?;
            if create {
                if let Some(parent) = full.parent() {
                    std::fs::create_dir_all(parent)?;
                }
            }
            let file = OpenOptions::new().read(true).append(true).create(create).open(&full)?;
            files.insert(path.to_string(), file);
        }
        f(&files[path])
    }
}

impl Disk for FsDisk {
    fn read(&self, path: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.with_file(path, false, |file| {
            let mut buf = vec![0u8; len];
            let mut done = 0;
            while done < len {
                let n = file.read_at(&mut buf[done..], offset + done as u64)?;
                if n == 0 {
                    break;
                }
                done += n;
            }
            buf.truncate(done);
            Ok(buf)
        })
    }

    fn len(&self, path: &str) -> io::Result<Option<u64>> {
        match std::fs::metadata(self.full(path)?) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn append(&self, path: &str, data: &[u8]) -> io::Result<()> {
        self.with_file(path, true, |mut file| file.write_all(data))
    }

    fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        self.with_file(path, false, |file| file.set_len(len))
    }

    fn sync(&self, path: &str) -> io::Result<()> {
        // The fsync runs on a second handle, outside the map's lock, so a
        // slow disk does not hold up reads and appends to other files.
        let file = match self.with_file(path, false, File::try_clone) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        file.sync_data()
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        self.files.lock().expect("fs disk lock").remove(path);
        match std::fs::remove_file(self.full(path)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let full = if dir.is_empty() { self.root.clone() } else { self.full(dir)? };
        let mut names = Vec::new();
        match std::fs::read_dir(&full) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry?;
                    if let Some(name) = entry.file_name().to_str() {
                        if !name.ends_with(".tmp") {
                            names.push(name.to_string());
                        }
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        names.sort();
        Ok(names)
    }

    fn write_atomic(&self, path: &str, data: &[u8]) -> io::Result<()> {
        let full = self.full(path)?;
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let _one_at_a_time = self.atomic_writes.lock().expect("fs disk atomic writes");
        let tmp = full.with_extension("tmp");
        {
            let mut file = File::create(&tmp)?;
            file.write_all(data)?;
            file.sync_all()?;
        }
        {
            // Renamed and forgotten under the handles' lock, so no read
            // caches the replaced file in between and keeps reading it.
            let mut files = self.files.lock().expect("fs disk lock");
            std::fs::rename(&tmp, &full)?;
            files.remove(path);
        }
        if let Some(parent) = full.parent() {
            File::open(parent)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fs_disk_basics() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FsDisk::new(dir.path()).unwrap();
        assert_eq!(disk.len("a/b").unwrap(), None);
        disk.append("a/b", b"hello").unwrap();
        disk.append("a/b", b" world").unwrap();
        disk.sync("a/b").unwrap();
        assert_eq!(disk.read("a/b", 6, 100).unwrap(), b"world");
        disk.truncate("a/b", 5).unwrap();
        assert_eq!(read_all(&disk, "a/b").unwrap().unwrap(), b"hello");
        disk.write_atomic("a/c", b"x").unwrap();
        assert_eq!(disk.list("a").unwrap(), vec!["b", "c"]);
        disk.remove("a/b").unwrap();
        disk.remove("a/b").unwrap();
        assert_eq!(disk.list("a").unwrap(), vec!["c"]);
        assert!(disk.append("../escape", b"x").is_err());
    }

    /// Regression (CI, broker_sigkill_during_sends_loses_no_acknowledged_message):
    /// two handlers creating topics at once wrote config/topics.json through
    /// one temp file; the shorter write landed over the longer one's start,
    /// the rename published the mix, and the broker refused to start again
    /// ("trailing characters"). Every read must see one whole version.
    #[test]
    fn concurrent_atomic_writes_of_one_file_leave_one_whole_version() {
        let dir = tempfile::tempdir().unwrap();
        let disk = std::sync::Arc::new(FsDisk::new(dir.path()).unwrap());
        let versions: Vec<Vec<u8>> = (1..=4).map(|n| vec![b'0' + n as u8; 64 * n]).collect();
        let writers: Vec<_> = versions
            .iter()
            .cloned()
            .map(|version| {
                let disk = disk.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        disk.write_atomic("config/topics.json", &version).unwrap();
                    }
                })
            })
            .collect();
        let full = dir.path().join("config/topics.json");
        while writers.iter().any(|w| !w.is_finished()) {
            // A whole file as one open sees it (read_all's length and read
            // are two looks and may straddle a rename).
            if let Ok(bytes) = std::fs::read(&full) {
                assert!(versions.contains(&bytes), "a read saw a mix of writes: {:?}", String::from_utf8_lossy(&bytes));
            }
            if let Ok(bytes) = disk.read("config/topics.json", 0, 1 << 20) {
                assert!(versions.contains(&bytes), "a read through the disk saw a mix: {:?}", String::from_utf8_lossy(&bytes));
            }
        }
        for w in writers {
            w.join().unwrap();
        }
        let last = read_all(disk.as_ref(), "config/topics.json").unwrap().unwrap();
        assert!(versions.contains(&last), "the file ended as a mix of writes: {:?}", String::from_utf8_lossy(&last));
    }
}
