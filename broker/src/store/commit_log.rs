//! The commit log: every message of every topic, appended in order, split
//! into segment files named by their first offset.

use super::entry::{self, HEADER_LEN};
use super::Disk;
use crate::bugs::{self, Bug};
use crate::marks::{self, Mark};
use super::error::{Result, StoreError};
use crate::model::MessageExt;
use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

/// Folder of the segment files.
const DIR: &str = "commitlog";

fn segment_path(start: u64) -> String {
    format!("{DIR}/{start:020}")
}

/// What recovery found in the commit log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Entries found valid past the starting point.
    pub entries: u64,
    /// Bytes cut off the end because they were torn or corrupt.
    pub truncated_bytes: u64,
    /// Corrupt entries in the middle of the log (valid entries follow them)
    /// that were passed over: their messages are lost, the rest is kept.
    pub corrupt_skipped: u64,
}

/// The append-only log of all messages on one broker.
pub struct CommitLog {
    disk: Arc<dyn Disk>,
    /// A new segment starts when an entry would not fit in this many bytes.
    segment_bytes: u64,
    /// Segment start offset -> its length in bytes.
    segments: BTreeMap<u64, u64>,
    /// Where the next entry goes.
    write_offset: u64,
    /// Everything before this is durable.
    flushed_offset: u64,
}

/// The segments one flush syncs, and the offset that is durable once it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushPlan {
    paths: Vec<String>,
    target: u64,
}

impl FlushPlan {
    /// True when everything appended is already durable.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Runs the fsyncs. A segment deleted since the plan was taken needs
    /// none (syncing a missing file is a no-op).
    pub fn sync(&self, disk: &dyn Disk) -> io::Result<()> {
        self.paths.iter().try_for_each(|path| disk.sync(path))
    }
}

impl CommitLog {
    /// Opens the segments on disk without validating them; call
    /// [`CommitLog::recover`] before appending.
    pub fn open(disk: Arc<dyn Disk>, segment_bytes: u64) -> Result<CommitLog> {
        let mut segments = BTreeMap::new();
        for name in disk.list(DIR)? {
            let Ok(start) = name.parse::<u64>() else { continue };
            let len = disk.len(&segment_path(start))?.unwrap_or(0);
            segments.insert(start, len);
        }
        let write_offset = segments.iter().next_back().map(|(s, l)| s + l).unwrap_or(0);
        // What a crashed process wrote may still sit in the page cache only:
        // nothing counts as durable until this process has synced it.
        let flushed_offset = segments.keys().next().copied().unwrap_or(0);
        Ok(CommitLog { disk, segment_bytes, segments, write_offset, flushed_offset })
    }

    /// Offset of the first byte still kept.
    pub fn min_offset(&self) -> u64 {
        self.segments.keys().next().copied().unwrap_or(self.write_offset)
    }

    /// Offset the next entry will get.
    pub fn write_offset(&self) -> u64 {
        self.write_offset
    }

    /// Everything before this offset is durable.
    pub fn flushed_offset(&self) -> u64 {
        self.flushed_offset
    }

    /// Validates entries from `start` to the end, hands each valid one to
    /// `dispatch`, and cuts the log at the first torn or corrupt entry
    /// (deleting any later segments) that no valid entry follows. A corrupt
    /// entry that valid entries do follow is a flipped bit, not a torn
    /// tail: it is passed over (its message is lost; no single copy can
    /// bring it back) and the entries after it are kept. Returns `None`
    /// when `start` is not inside the log, so the caller can rebuild from
    /// the beginning.
    pub fn recover(&mut self, start: u64, mut dispatch: impl FnMut(&MessageExt) -> Result<()>) -> Result<Option<ScanStats>> {
        // Each valid entry is dispatched once the next one is read, so the
        // planted recovery bug below can drop the last one cleanly.
        let mut pending: Option<MessageExt> = None;
        let walked = self.walk(start, |msg| match pending.replace(msg) {
            Some(previous) => dispatch(&previous),
            None => Ok(()),
        })?;
        let Some((mut stats, mut cut)) = walked else { return Ok(None) };
        if let Some(last) = pending {
            if bugs::active(Bug::RecoveryTruncatesExtra) {
                // The planted defect: the last valid entry is cut as if torn.
                cut = Some(last.commit_log_offset);
                stats.entries -= 1;
            } else {
                dispatch(&last)?;
            }
        }
        if let Some(cut) = cut {
            stats.truncated_bytes = self.write_offset - cut;
            self.truncate(cut)?;
        }
        Ok(Some(stats))
    }

    /// Reads every valid entry from `start` to the end without changing
    /// the log, handing each to `visit` in order and passing over corrupt
    /// entries that valid ones follow, as [`CommitLog::recover`] does.
    /// Returns what it found and where recovery would cut (the first torn
    /// or corrupt entry no valid one follows), or `None` when `start` is
    /// not inside the log. Rebuilding a derived structure from the log
    /// uses it on a live store.
    pub fn walk(&self, start: u64, mut visit: impl FnMut(MessageExt) -> Result<()>) -> Result<Option<(ScanStats, Option<u64>)>> {
        let start = start.max(self.min_offset());
        if start > self.write_offset {
            return Ok(None);
        }
        let mut stats = ScanStats::default();
        let mut offset = start;
        let starts: Vec<u64> = self.segments.range(..=start).next_back().map(|(s, _)| *s).into_iter()
            .chain(self.segments.range(start + 1..).map(|(s, _)| *s))
            .collect();
        let mut cut: Option<u64> = None;
        for (i, &seg_start) in starts.iter().enumerate() {
            let seg_len = self.segments[&seg_start];
            // A later segment that starts right where this one ends: a
            // corrupt entry at this one's end may be passed over to it.
            // One that starts further on means this segment lost its tail
            // (a power loss tore it): nothing after the tear is trusted,
            // and the cut is at an entry's start, not in the gap.
            let contiguous_next = starts.get(i + 1).is_some_and(|&next| next == seg_start + seg_len);
            if offset < seg_start || offset > seg_start + seg_len {
                // A missing segment: nothing after the gap can be trusted.
                cut = Some(offset);
                break;
            }
            let from = offset - seg_start;
            let data = self.disk.read(&segment_path(seg_start), from, (seg_len - from) as usize)?;
            let mut pos = 0usize;
            while pos < data.len() {
                let valid = entry::parse_header(&data[pos..]).and_then(|header| {
                    let end = pos + header.total_len;
                    if end > data.len() {
                        return Err("entry runs past the end of the segment".to_string());
                    }
                    entry::decode(header, &data[pos + HEADER_LEN..end], offset).map(|m| (m, header.total_len))
                });
                let (msg, len) = match valid {
                    Ok(found) => found,
                    Err(reason) => {
                        let resume = next_valid_entry(&data, pos + 1, offset - pos as u64).or(contiguous_next.then_some(data.len()));
                        if let Some(resume) = resume {
                            // Valid entries (or a later segment) follow:
                            // pass over the corrupt bytes, keep the rest.
                            marks::reach(Mark::CorruptEntryCut);
                            tracing::warn!(offset, reason = %reason, skipped_bytes = resume - pos, "corrupt commit log entry passed over");
                            stats.corrupt_skipped += 1;
                            offset += (resume - pos) as u64;
                            pos = resume;
                            continue;
                        }
                        // A write cut short by a crash, or bytes that do not
                        // check out at the very end: recovery cuts here.
                        let torn = reason.contains("cut short") || reason.contains("runs past");
                        marks::reach(if torn { Mark::TornWriteCut } else { Mark::CorruptEntryCut });
                        break;
                    }
                };
                visit(msg)?;
                stats.entries += 1;
                pos += len;
                offset += len as u64;
            }
            if pos < data.len() {
                cut = Some(offset);
                break;
            }
        }
        Ok(Some((stats, cut)))
    }

    /// Cuts the log so that `offset` becomes its end, durably.
    pub(crate) fn truncate(&mut self, offset: u64) -> Result<()> {
        let later: Vec<u64> = self.segments.range(offset..).map(|(s, _)| *s).collect();
        for start in later {
            self.disk.remove(&segment_path(start))?;
            self.segments.remove(&start);
        }
        if let Some((start, len)) = self.segments.range_mut(..=offset).next_back() {
            if *start + *len > offset {
                *len = offset - *start;
                self.disk.truncate(&segment_path(*start), *len)?;
                self.disk.sync(&segment_path(*start))?;
            }
        }
        self.write_offset = offset;
        self.flushed_offset = self.flushed_offset.min(offset);
        Ok(())
    }

    /// Appends one entry made by [`entry::encode`]; returns its offset and
    /// size.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(u64, u32)> {
        let active = self.segments.iter().next_back().map(|(s, l)| (*s, *l));
        let start = match active {
            Some((start, len)) if len == 0 || len + bytes.len() as u64 <= self.segment_bytes => start,
            _ => {
                self.segments.insert(self.write_offset, 0);
                self.write_offset
            }
        };
        self.disk.append(&segment_path(start), bytes)?;
        let offset = self.write_offset;
        *self.segments.get_mut(&start).expect("active segment") += bytes.len() as u64;
        self.write_offset += bytes.len() as u64;
        Ok((offset, bytes.len() as u32))
    }

    /// The bytes of the log from `from`, an entry's start, for a replica
    /// to copy: whole entries of one segment, about `max` bytes (at least
    /// one entry); empty at the end of the log. A corrupt entry (a flipped
    /// bit) goes along as the opaque bytes up to the next valid entry, so a
    /// replica's offsets stay the master's; the replica passes over it as
    /// recovery does.
    pub fn read_raw(&self, from: u64, max: usize) -> Result<Vec<u8>> {
        let corrupt = |reason: String| StoreError::Corrupt { offset: from, reason };
        if from >= self.write_offset {
            return Ok(Vec::new());
        }
        if from < self.min_offset() {
            return Err(corrupt(format!("offset {from} is before the log's first kept offset {}", self.min_offset())));
        }
        let (start, len) = self
            .segments
            .range(..=from)
            .rev()
            .map(|(s, l)| (*s, *l))
            .find(|(s, l)| from < s + l)
            .ok_or_else(|| corrupt("offset inside no segment".into()))?;
        let path = segment_path(start);
        let available = (start + len - from) as usize;
        let first = self.disk.read(&path, from - start, HEADER_LEN.min(available))?;
        let first_len = entry::parse_header(&first).map(|h| h.total_len).unwrap_or(available);
        let want = max.max(first_len).min(available);
        let data = self.disk.read(&path, from - start, want)?;
        let mut pos = 0;
        while pos < data.len() {
            let whole = entry::parse_header(&data[pos..]).is_ok_and(|h| {
                pos + h.total_len <= data.len() && entry::decode(h, &data[pos + HEADER_LEN..pos + h.total_len], from + pos as u64).is_ok()
            });
            if whole {
                pos += entry::parse_header(&data[pos..]).map(|h| h.total_len).unwrap_or(0);
                continue;
            }
            if pos > 0 {
                // Whatever follows goes in the next chunk, whole.
                break;
            }
            // The chunk starts at a corrupt entry: send it up to the next
            // valid one of the segment as it is.
            let rest = self.disk.read(&path, from - start, available)?;
            let next = next_valid_entry(&rest, 1, from).unwrap_or(rest.len());
            return Ok(rest[..next].to_vec());
        }
        Ok(data[..pos].to_vec())
    }

    /// Appends bytes a master's log holds at this log's end (whole entries
    /// or a corrupt run); returns their offset.
    pub fn append_raw(&mut self, bytes: &[u8]) -> Result<u64> {
        self.append(bytes).map(|(offset, _)| offset)
    }

    /// What a flush must sync to make every entry appended so far durable.
    /// Taken under the store lock; the fsync itself runs outside it, as
    /// RocketMQ's flush service runs outside the put lock, so a slow disk
    /// delays acknowledgements but not pulls or other puts.
    pub fn flush_plan(&self) -> FlushPlan {
        if self.flushed_offset == self.write_offset {
            return FlushPlan { paths: Vec::new(), target: self.write_offset };
        }
        let first = self.segments.range(..=self.flushed_offset).next_back().map(|(s, _)| *s).unwrap_or(0);
        let paths = self.segments.range(first..).map(|(s, _)| segment_path(*s)).collect();
        FlushPlan { paths, target: self.write_offset }
    }

    /// Records a plan's fsync as done; returns the flushed offset.
    pub fn flush_done(&mut self, plan: &FlushPlan) -> u64 {
        self.flushed_offset = self.flushed_offset.max(plan.target);
        self.flushed_offset
    }

    /// Makes every appended entry durable; returns the flushed offset.
    pub fn flush(&mut self) -> Result<u64> {
        let plan = self.flush_plan();
        plan.sync(self.disk.as_ref())?;
        Ok(self.flush_done(&plan))
    }

    /// Reads and verifies the entry at `offset`.
    pub fn read(&self, offset: u64) -> Result<MessageExt> {
        let corrupt = |reason: String| StoreError::Corrupt { offset, reason };
        let (start, len) = self
            .segments
            .range(..=offset)
            .next_back()
            .map(|(s, l)| (*s, *l))
            .ok_or_else(|| corrupt("offset before the log's start".into()))?;
        if offset >= start + len {
            return Err(corrupt("offset past the end of its segment".into()));
        }
        let path = segment_path(start);
        let head = self.disk.read(&path, offset - start, HEADER_LEN)?;
        let header = entry::parse_header(&head).map_err(corrupt)?;
        let body = self.disk.read(&path, offset - start + HEADER_LEN as u64, header.total_len - HEADER_LEN)?;
        entry::decode(header, &body, offset).map_err(corrupt)
    }

    /// Deletes whole segments, oldest first, whose every message was stored
    /// before `cutoff_ms`. The active segment is never deleted. A segment's
    /// newest message is older than the next segment's first, which is what
    /// is read. Returns how many segments went.
    pub fn delete_before(&mut self, cutoff_ms: u64) -> Result<usize> {
        let starts: Vec<u64> = self.segments.keys().copied().collect();
        let mut deleted = 0;
        for pair in starts.windows(2) {
            let next_first = self.read(pair[1]).map(|m| m.store_timestamp_ms).unwrap_or(u64::MAX);
            if next_first >= cutoff_ms {
                break;
            }
            self.disk.remove(&segment_path(pair[0]))?;
            self.segments.remove(&pair[0]);
            deleted += 1;
        }
        Ok(deleted)
    }
}

/// The position, at or after `from` in `data` (a segment's bytes from
/// commit log offset `base`), of the next entry whose header, length and CRC
/// all check out; `None` when there is none. Recovery resumes there after a
/// corrupt entry.
pub fn next_valid_entry(data: &[u8], from: usize, base: u64) -> Option<usize> {
    (from..data.len().saturating_sub(HEADER_LEN - 1)).find(|&p| {
        entry::is_magic(&data[p + 4..p + 8])
            && entry::parse_header(&data[p..]).is_ok_and(|header| {
                let end = p + header.total_len;
                end <= data.len() && entry::decode(header, &data[p + HEADER_LEN..end], base + p as u64).is_ok()
            })
    })
}

