//! The message index: business key (`topic#key`) and unique id to commit log
//! offsets, in files, so its memory does not grow with the messages stored.
//!
//! Like RocketMQ's index files: records are appended to numbered files of
//! at most [`RECORDS_PER_FILE`] records; each record links to the previous
//! record of its hash bucket in the same file. The newest file's bucket
//! heads are kept in memory ([`BUCKETS`] of them, 1 MiB); a full file is
//! sealed by writing its heads beside it, and a lookup follows each file's
//! chain from its head, newest file first.
//!
//! ```text
//! index/NNNNNNNNNN.rec    record: key hash u64 | commit log offset u64 | previous record u32 | crc32 u32
//! index/NNNNNNNNNN.slots  BUCKETS heads, u32 each (a record's position in its file, from 1; 0: none)
//! index/rebuilding        a rebuild began and has not finished; the index is rebuilt at the next open
//! ```
//!
//! Records hold the key's 64-bit FNV-1a hash, not the key: a lookup reads
//! each message it is led to and checks the key there, so a record that
//! leads astray is found (and the index rebuilt from the commit log).

use super::Disk;
use super::error::{Result, StoreError};
use crate::model::fnv1a;

/// Bytes per record.
pub const RECORD_LEN: usize = 24;
/// Records per index file (24 MiB).
pub const RECORDS_PER_FILE: u32 = 1 << 20;
/// Hash buckets per index file: four records per bucket when full.
pub const BUCKETS: usize = 1 << 18;
const DIR: &str = "index";
const REBUILDING: &str = "index/rebuilding";
/// What the first builds kept: one record file of keys in full.
const LEGACY: &str = "keys";

/// Index key for a business key of a topic.
pub fn key_of(topic: &str, key: &str) -> String {
    format!("k:{topic}#{key}")
}

/// Index key for a unique id.
pub fn uniq_of(id: &str) -> String {
    format!("u:{id}")
}

fn records_path(seq: u64) -> String {
    format!("{DIR}/{seq:010}.rec")
}

fn slots_path(seq: u64) -> String {
    format!("{DIR}/{seq:010}.slots")
}

fn bucket(hash: u64) -> usize {
    (hash % BUCKETS as u64) as usize
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Record {
    hash: u64,
    offset: u64,
    /// The previous record of the bucket in the same file, from 1; 0: none.
    prev: u32,
}

impl Record {
    fn to_bytes(self) -> [u8; RECORD_LEN] {
        let mut out = [0u8; RECORD_LEN];
        out[..8].copy_from_slice(&self.hash.to_be_bytes());
        out[8..16].copy_from_slice(&self.offset.to_be_bytes());
        out[16..20].copy_from_slice(&self.prev.to_be_bytes());
        let crc = crc32fast::hash(&out[..20]);
        out[20..].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// `None` when torn or corrupt.
    fn from_bytes(b: &[u8]) -> Option<Record> {
        let b = b.get(..RECORD_LEN)?;
        let crc = u32::from_be_bytes(b[20..24].try_into().ok()?);
        if crc32fast::hash(&b[..20]) != crc {
            return None;
        }
        Some(Record {
            hash: u64::from_be_bytes(b[..8].try_into().ok()?),
            offset: u64::from_be_bytes(b[8..16].try_into().ok()?),
            prev: u32::from_be_bytes(b[16..20].try_into().ok()?),
        })
    }
}

/// The index: the sealed files' numbers and the open file's bucket heads.
#[derive(Debug)]
pub struct KeyIndex {
    /// Sealed files, oldest first.
    sealed: Vec<u64>,
    /// The file records are appended to.
    active: u64,
    /// Records in the active file.
    count: u32,
    /// The active file's bucket heads.
    heads: Vec<u32>,
}

impl Default for KeyIndex {
    fn default() -> KeyIndex {
        KeyIndex { sealed: Vec::new(), active: 0, count: 0, heads: vec![0; BUCKETS] }
    }
}

impl KeyIndex {
    /// Opens the index, keeping records that point before `durable_until`
    /// and cutting the files where the first later (or torn) record starts.
    /// True beside it when the index must be rebuilt from the commit log: a
    /// rebuild was cut short, or the files are of the first builds' format
    /// (both are removed; the caller rebuilds once the log is open).
    pub fn load(disk: &dyn Disk, durable_until: u64) -> Result<(KeyIndex, bool)> {
        let names = disk.list(DIR)?;
        if names.iter().any(|n| n == LEGACY || format!("{DIR}/{n}") == REBUILDING) {
            for name in &names {
                if format!("{DIR}/{name}") != REBUILDING {
                    disk.remove(&format!("{DIR}/{name}"))?;
                }
            }
            return Ok((KeyIndex::default(), true));
        }
        let mut seqs: Vec<u64> = names.iter().filter_map(|n| n.strip_suffix(".rec")?.parse().ok()).collect();
        seqs.sort_unstable();
        // Records are in log order, across files too: whole files past the
        // durable end go first.
        while let Some(&last) = seqs.last() {
            match read_record(disk, last, 1)? {
                Some(first) if first.offset < durable_until => break,
                _ => {
                    disk.remove(&slots_path(last))?;
                    disk.remove(&records_path(last))?;
                    seqs.pop();
                }
            }
        }
        let Some(&newest) = seqs.last() else { return Ok((KeyIndex::default(), false)) };
        let mut index = KeyIndex { sealed: seqs[..seqs.len() - 1].to_vec(), active: newest, ..KeyIndex::default() };
        let full = disk.len(&records_path(newest))? == Some(RECORDS_PER_FILE as u64 * RECORD_LEN as u64);
        let last_ok = read_record(disk, newest, RECORDS_PER_FILE)?.is_some_and(|r| r.offset < durable_until);
        if full && last_ok && disk.len(&slots_path(newest))? == Some(BUCKETS as u64 * 4) {
            index.sealed.push(newest);
            index.active = newest + 1;
        } else {
            // Open again for appends: its heads are rebuilt from its records.
            disk.remove(&slots_path(newest))?;
            let (heads, count) = scan(disk, newest, durable_until)?;
            index.heads = heads;
            index.count = count;
            let keep = count as u64 * RECORD_LEN as u64;
            if disk.len(&records_path(newest))? != Some(keep) {
                // Durably, for the same reason as consume queues.
                disk.truncate(&records_path(newest), keep)?;
                disk.sync(&records_path(newest))?;
            }
        }
        // A file filled and not sealed (a crash between the two) is sealed now.
        for &seq in &index.sealed {
            if disk.len(&slots_path(seq))? != Some(BUCKETS as u64 * 4) {
                let (heads, _) = scan(disk, seq, u64::MAX)?;
                disk.write_atomic(&slots_path(seq), &heads_bytes(&heads))?;
            }
        }
        Ok((index, false))
    }

    /// Records that `key` is found at `offset`.
    pub fn add(&mut self, disk: &dyn Disk, key: &str, offset: u64) -> Result<()> {
        if self.count == RECORDS_PER_FILE {
            self.seal(disk)?;
        }
        let hash = fnv1a(key.as_bytes());
        let b = bucket(hash);
        let record = Record { hash, offset, prev: self.heads[b] };
        disk.append(&records_path(self.active), &record.to_bytes())?;
        self.count += 1;
        self.heads[b] = self.count;
        Ok(())
    }

    /// Makes the full active file durable, writes its heads beside it and
    /// starts the next file.
    fn seal(&mut self, disk: &dyn Disk) -> Result<()> {
        disk.sync(&records_path(self.active))?;
        disk.write_atomic(&slots_path(self.active), &heads_bytes(&self.heads))?;
        self.sealed.push(self.active);
        self.active += 1;
        self.count = 0;
        self.heads.fill(0);
        Ok(())
    }

    /// Commit log offsets recorded for a key, newest first, handed to
    /// `visit` until it answers false. A record that cannot be read is an
    /// [`StoreError::Inconsistent`]: the index is to be rebuilt.
    pub fn walk(&self, disk: &dyn Disk, key: &str, mut visit: impl FnMut(u64) -> Result<bool>) -> Result<()> {
        let hash = fnv1a(key.as_bytes());
        let b = bucket(hash);
        if !walk_chain(disk, self.active, self.heads[b], hash, &mut visit)? {
            return Ok(());
        }
        for &seq in self.sealed.iter().rev() {
            let head = disk.read(&slots_path(seq), b as u64 * 4, 4)?;
            let head: [u8; 4] = head
                .try_into()
                .map_err(|_| StoreError::Inconsistent(format!("index: {} is shorter than its buckets", slots_path(seq))))?;
            if !walk_chain(disk, seq, u32::from_be_bytes(head), hash, &mut visit)? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Commit log offsets recorded for a key, oldest first.
    pub fn lookup(&self, disk: &dyn Disk, key: &str) -> Result<Vec<u64>> {
        let mut offsets = Vec::new();
        self.walk(disk, key, |offset| {
            offsets.push(offset);
            Ok(true)
        })?;
        offsets.reverse();
        Ok(offsets)
    }

    /// Makes the active file durable (sealed files were made durable when
    /// they were sealed).
    pub fn sync(&self, disk: &dyn Disk) -> Result<()> {
        disk.sync(&records_path(self.active))?;
        Ok(())
    }

    /// Begins a rebuild: records durably that one is under way, so a crash
    /// before [`Self::finish_rebuild`] makes the next open rebuild again
    /// rather than trust a part of the records, and removes every file.
    pub fn begin_rebuild(disk: &dyn Disk) -> Result<KeyIndex> {
        disk.write_atomic(REBUILDING, b"1")?;
        for name in disk.list(DIR)? {
            let path = format!("{DIR}/{name}");
            if path != REBUILDING {
                disk.remove(&path)?;
            }
        }
        Ok(KeyIndex::default())
    }

    /// Ends a rebuild: the records are made durable, then the mark goes.
    pub fn finish_rebuild(&self, disk: &dyn Disk) -> Result<()> {
        self.sync(disk)?;
        disk.remove(REBUILDING)?;
        Ok(())
    }

    /// Removes the sealed files whose every record points below `min`
    /// (retention deleted those messages); returns how many.
    pub fn delete_before(&mut self, disk: &dyn Disk, min: u64) -> Result<usize> {
        let mut deleted = 0;
        while let Some(&oldest) = self.sealed.first() {
            match read_record(disk, oldest, RECORDS_PER_FILE)? {
                Some(last) if last.offset >= min => break,
                _ => {
                    disk.remove(&slots_path(oldest))?;
                    disk.remove(&records_path(oldest))?;
                    self.sealed.remove(0);
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }
}

/// The record at a position (from 1) of a file; `None` when the file is
/// shorter or the record is torn or corrupt.
fn read_record(disk: &dyn Disk, seq: u64, position: u32) -> Result<Option<Record>> {
    let Some(at) = (position as u64).checked_sub(1) else { return Ok(None) };
    let path = records_path(seq);
    if disk.len(&path)?.is_none_or(|len| len < (at + 1) * RECORD_LEN as u64) {
        return Ok(None);
    }
    Ok(Record::from_bytes(&disk.read(&path, at * RECORD_LEN as u64, RECORD_LEN)?))
}

/// A file's bucket heads and how many of its records lead the good run:
/// the scan stops at a torn or corrupt record, at one pointing at or past
/// `durable_until`, and at one whose link does not point back.
fn scan(disk: &dyn Disk, seq: u64, durable_until: u64) -> Result<(Vec<u32>, u32)> {
    /// Records read at a time, so a scan holds 96 KiB of the file, not 24 MiB.
    const BATCH: u32 = 4096;
    let path = records_path(seq);
    let mut heads = vec![0u32; BUCKETS];
    let mut count = 0u32;
    while count < RECORDS_PER_FILE {
        let bytes = disk.read(&path, u64::from(count) * RECORD_LEN as u64, BATCH as usize * RECORD_LEN)?;
        let before = count;
        for chunk in bytes.chunks_exact(RECORD_LEN) {
            match Record::from_bytes(chunk) {
                Some(r) if r.offset < durable_until && r.prev <= count && r.prev == heads[bucket(r.hash)] => {
                    count += 1;
                    heads[bucket(r.hash)] = count;
                }
                _ => return Ok((heads, count)),
            }
        }
        if count - before < BATCH {
            break;
        }
    }
    Ok((heads, count))
}

fn heads_bytes(heads: &[u32]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.to_be_bytes()).collect()
}

/// Follows one file's chain from `head`; false once `visit` said stop.
fn walk_chain(disk: &dyn Disk, seq: u64, head: u32, hash: u64, visit: &mut impl FnMut(u64) -> Result<bool>) -> Result<bool> {
    let mut position = head;
    while position != 0 {
        let record = read_record(disk, seq, position)?
            .ok_or_else(|| StoreError::Inconsistent(format!("index: record {position} of {} cannot be read", records_path(seq))))?;
        if record.prev >= position {
            return Err(StoreError::Inconsistent(format!("index: record {position} of {} links forward", records_path(seq))));
        }
        if record.hash == hash && !visit(record.offset)? {
            return Ok(false);
        }
        position = record.prev;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemDisk;

    #[test]
    fn records_survive_reload_and_torn_tail_is_cut() {
        let disk = MemDisk::new();
        let mut idx = KeyIndex::default();
        idx.add(&disk, &key_of("t", "a"), 10).unwrap();
        idx.add(&disk, &key_of("t", "a"), 20).unwrap();
        idx.add(&disk, &uniq_of("x"), 30).unwrap();
        disk.append(&records_path(0), &[0, 9, 1]).unwrap();
        let (loaded, rebuild) = KeyIndex::load(&disk, 25).unwrap();
        assert!(!rebuild);
        assert_eq!(loaded.lookup(&disk, &key_of("t", "a")).unwrap(), [10, 20]);
        assert!(loaded.lookup(&disk, &uniq_of("x")).unwrap().is_empty());
        let (mut again, _) = KeyIndex::load(&disk, u64::MAX).unwrap();
        assert_eq!(again.lookup(&disk, &key_of("t", "a")).unwrap(), [10, 20]);
        // Appends after a reload extend the same chains.
        again.add(&disk, &key_of("t", "a"), 40).unwrap();
        assert_eq!(again.lookup(&disk, &key_of("t", "a")).unwrap(), [10, 20, 40]);
    }

    /// Keys fill several files: lookups cross sealed files, a reload finds
    /// them sealed, and a cut back below a sealed file's end opens it again.
    #[test]
    fn lookups_cross_sealed_files_and_a_cut_reopens_one() {
        let disk = MemDisk::new();
        let mut idx = KeyIndex::default();
        let n = 2 * RECORDS_PER_FILE as u64 + 10;
        for i in 0..n {
            idx.add(&disk, &format!("k{}", i % 1000), i).unwrap();
        }
        assert_eq!(idx.sealed, [0, 1]);
        let want = |upto: u64| (0..upto).filter(|i| i % 1000 == 7).collect::<Vec<u64>>();
        assert_eq!(idx.lookup(&disk, "k7").unwrap(), want(n));
        let (loaded, _) = KeyIndex::load(&disk, u64::MAX).unwrap();
        assert_eq!((loaded.sealed.as_slice(), loaded.active, loaded.count), (&[0, 1][..], 2, 10));
        assert_eq!(loaded.lookup(&disk, "k7").unwrap(), want(n));
        let cut = RECORDS_PER_FILE as u64 + 500;
        let (mut cut_back, _) = KeyIndex::load(&disk, cut).unwrap();
        assert_eq!((cut_back.sealed.as_slice(), cut_back.active, cut_back.count), (&[0][..], 1, 500));
        assert!(disk.len(&records_path(2)).unwrap().is_none(), "the file past the cut is gone");
        assert_eq!(cut_back.lookup(&disk, "k7").unwrap(), want(cut));
        cut_back.add(&disk, "k7", cut).unwrap();
        assert_eq!(cut_back.lookup(&disk, "k7").unwrap().last(), Some(&cut));
        // Retention: the first file's records all point below 2^20.
        assert_eq!(cut_back.delete_before(&disk, RECORDS_PER_FILE as u64).unwrap(), 1);
        let first_kept = (RECORDS_PER_FILE as u64..).find(|i| i % 1000 == 7);
        assert_eq!(cut_back.lookup(&disk, "k7").unwrap().first().copied(), first_kept);
    }

    /// A rebuild cut short (or the first builds' index) is redone at open.
    #[test]
    fn an_unfinished_rebuild_and_the_old_format_ask_for_a_rebuild() {
        let disk = MemDisk::new();
        let mut idx = KeyIndex::begin_rebuild(&disk).unwrap();
        idx.add(&disk, "a", 1).unwrap();
        let (loaded, rebuild) = KeyIndex::load(&disk, u64::MAX).unwrap();
        assert!(rebuild);
        assert!(loaded.lookup(&disk, "a").unwrap().is_empty());
        let mut idx = KeyIndex::begin_rebuild(&disk).unwrap();
        idx.add(&disk, "a", 1).unwrap();
        idx.finish_rebuild(&disk).unwrap();
        let (loaded, rebuild) = KeyIndex::load(&disk, u64::MAX).unwrap();
        assert!(!rebuild);
        assert_eq!(loaded.lookup(&disk, "a").unwrap(), [1]);
        disk.append("index/keys", b"old").unwrap();
        assert!(KeyIndex::load(&disk, u64::MAX).unwrap().1);
        assert_eq!(disk.list(DIR).unwrap(), Vec::<String>::new());
    }

    /// A corrupt record in a chain is an inconsistency, not a wrong answer.
    #[test]
    fn a_corrupt_record_in_a_chain_is_inconsistent() {
        let disk = MemDisk::new();
        let mut idx = KeyIndex::default();
        idx.add(&disk, "a", 1).unwrap();
        idx.add(&disk, "a", 2).unwrap();
        assert!(disk.flip_bit(&records_path(0), 3, 1));
        assert!(matches!(idx.lookup(&disk, "a"), Err(StoreError::Inconsistent(_))));
    }
}
