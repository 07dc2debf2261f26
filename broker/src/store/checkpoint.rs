//! The checkpoint (how far the consume queues and the index are durable)
//! and the truncation record that makes cutting the log back crash-safe.

use super::error::{Result, StoreError};
use super::*;

/// Records, durably, that the log is to be cut back to `offset`.
pub(super) fn begin_truncation(disk: &dyn Disk, offset: u64) -> Result<()> {
    disk.write_atomic(TRUNCATE_PATH, &offset.to_be_bytes())?;
    Ok(())
}

/// Finishes a truncation a crash interrupted (or [`MessageStore::truncate_to`]
/// began): cuts the commit log, moves the checkpoint back so the consume
/// queues and the index drop what pointed past the cut when they load, and
/// only then forgets the truncation. Each step may be done again.
pub(super) fn finish_truncation(shared: &Arc<dyn Disk>, segment_bytes: u64) -> Result<()> {
    let disk = shared.as_ref();
    let Some(bytes) = disk::read_all(disk, TRUNCATE_PATH)? else { return Ok(()) };
    let Ok(raw) = <[u8; 8]>::try_from(bytes.as_slice()) else {
        return Err(StoreError::Corrupt { offset: 0, reason: format!("{TRUNCATE_PATH}: {} bytes, not an offset", bytes.len()) });
    };
    let offset = u64::from_be_bytes(raw);
    let mut log = CommitLog::open(shared.clone(), segment_bytes)?;
    if log.write_offset() > offset {
        log.truncate(offset)?;
    }
    let checkpoint = read_checkpoint(disk)?.unwrap_or(0).min(offset);
    disk.write_atomic(CHECKPOINT_PATH, &checkpoint_record(checkpoint))?;
    disk.remove(TRUNCATE_PATH)?;
    Ok(())
}

/// The checkpoint file's bytes: magic, offset, CRC.
pub(super) fn checkpoint_record(offset: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(16);
    bytes.extend_from_slice(&CHECKPOINT_MAGIC.to_be_bytes());
    bytes.extend_from_slice(&offset.to_be_bytes());
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    bytes
}

pub(super) fn read_checkpoint(disk: &dyn Disk) -> Result<Option<u64>> {
    let Some(bytes) = disk::read_all(disk, CHECKPOINT_PATH)? else { return Ok(None) };
    if bytes.len() != 16 || u32::from_be_bytes(bytes[..4].try_into().expect("4")) != CHECKPOINT_MAGIC {
        return Ok(None);
    }
    let crc = u32::from_be_bytes(bytes[12..16].try_into().expect("4"));
    if crc32fast::hash(&bytes[..12]) != crc {
        return Ok(None);
    }
    Ok(Some(u64::from_be_bytes(bytes[4..12].try_into().expect("8"))))
}
