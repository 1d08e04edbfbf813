//! Producer state snapshots: `<offset, 20 digits>.snapshot` holds the idempotent producers'
//! state as it was after every batch below that offset (Kafka's file name and meaning), so
//! recovery replays only the batches after the newest snapshot instead of the whole log.
//!
//! A snapshot is a cache, like the indexes: written to a temp file at roll (and at close), then
//! published under its name by the log's next sync, which syncs it with the data it describes
//! and renames it before syncing the directory; checked by its frame CRC when loaded, and thrown
//! away if damaged or if it claims more of the log than recovery found. A crash before the
//! publish leaves only the temp file, which recovery removes. One [`crate::codec`] frame,
//! version 1, of [`ProducerStates`].

use super::producer_state::ProducerStates;
use crate::codec;
use crate::env::disk::{Disk, DiskFile, FileMode, TMP_SUFFIX, read_exact_at};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The extension of snapshot files.
pub const SUFFIX: &str = "snapshot";
/// The frame version written.
const VERSION: u16 = 1;
/// Largest snapshot file accepted.
const FILE_BYTES_MAX: usize = 256 << 20;
/// Snapshots kept besides the newest (older ones are deleted after a new one is written).
const KEEP: usize = 2;

/// `<offset, 20 digits>.snapshot`.
pub fn file_name(offset: i64) -> String {
    format!("{offset:020}.{SUFFIX}")
}

/// The offset a snapshot file name stands for.
pub fn parse_file_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".snapshot")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Decodes a snapshot file's bytes. Pure, so it can be fuzzed.
pub fn decode(bytes: &[u8]) -> Result<ProducerStates, String> {
    let frame = codec::read_frame(bytes, FILE_BYTES_MAX).map_err(|e| e.to_string())?;
    if frame.len != bytes.len() {
        return Err(format!("{} bytes after the frame", bytes.len() - frame.len));
    }
    if frame.version != VERSION {
        return Err(format!("unknown version {}", frame.version));
    }
    codec::decode_payload(&frame).map_err(|e| e.to_string())
}

/// A snapshot written to its temp file, waiting to be synced and published.
pub struct PendingSnapshot {
    /// The temp file, to sync.
    pub file: Arc<dyn DiskFile>,
    tmp: PathBuf,
    path: PathBuf,
    /// What was written (declared to the probe once published and synced).
    bytes: Vec<u8>,
}

impl PendingSnapshot {
    /// The snapshot's final name.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The snapshot's contents.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The offset the snapshot stands for.
    pub fn offset(&self) -> Option<i64> {
        parse_file_name(&self.path.file_name()?.to_string_lossy())
    }

    /// Drops a snapshot that will not be published (the log was cut below its offset): its
    /// temp file goes (recovery would remove a leftover anyway).
    pub fn discard(self, disk: &dyn Disk) {
        if let Err(e) = disk.remove_file(&self.tmp) {
            tracing::debug!(path = %self.tmp.display(), error = %e, "could not remove a discarded snapshot");
        }
    }
}

/// Writes the snapshot for `offset` to a temp file beside its final name. Not synced here: the
/// caller syncs [`PendingSnapshot::file`] with the next sync of the log, then calls
/// [`publish`], so the snapshot appears under its name only once it is durable.
pub fn write(
    disk: &dyn Disk,
    dir: &Path,
    offset: i64,
    states: &ProducerStates,
) -> io::Result<PendingSnapshot> {
    let path = dir.join(file_name(offset));
    let tmp = dir.join(format!("{}{TMP_SUFFIX}", file_name(offset)));
    let file = disk.open(&tmp, FileMode::CreateTruncate)?;
    let bytes = codec::encode(VERSION, states);
    file.write_at(&bytes, 0)?;
    Ok(PendingSnapshot {
        file,
        tmp,
        path,
        bytes,
    })
}

/// Publishes a synced snapshot under its name (the caller syncs the directory next).
pub fn publish(disk: &dyn Disk, snapshot: &PendingSnapshot) -> io::Result<()> {
    disk.rename(&snapshot.tmp, &snapshot.path)
}

/// Deletes all but the newest few snapshots in `dir`, once newer ones are published and
/// durable (the next directory sync makes the deletions durable; a crash before it only
/// leaves an old cache behind).
pub fn remove_old(disk: &dyn Disk, dir: &Path) -> io::Result<()> {
    let all = list(disk, dir)?;
    for old in all.iter().rev().skip(KEEP + 1) {
        let _ = disk.remove_file(&dir.join(file_name(*old)));
    }
    Ok(())
}

/// The snapshot offsets present in `dir`, ascending.
pub fn list(disk: &dyn Disk, dir: &Path) -> io::Result<Vec<i64>> {
    let mut out: Vec<i64> = disk
        .list_dir(dir)?
        .into_iter()
        .filter(|e| !e.is_dir)
        .filter_map(|e| parse_file_name(&e.name))
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// For recovery of a log that ends at `log_end`: deletes snapshots past the end (they describe
/// batches the log no longer has) and damaged ones, and returns the newest usable snapshot at
/// or after `log_start`, with its offset.
pub fn load_for_recovery(
    disk: &dyn Disk,
    dir: &Path,
    log_start: i64,
    log_end: i64,
) -> io::Result<Option<(i64, ProducerStates)>> {
    let all = list(disk, dir)?;
    for offset in all.iter().filter(|o| **o > log_end) {
        tracing::info!(dir = %dir.display(), offset, log_end, "deleting a producer snapshot past the log end");
        disk.remove_file(&dir.join(file_name(*offset)))?;
    }
    for offset in all.iter().rev().filter(|o| **o <= log_end) {
        if *offset < log_start {
            break;
        }
        let path = dir.join(file_name(*offset));
        let file = disk.open(&path, FileMode::Read)?;
        let len = file.len()?;
        if len as usize > FILE_BYTES_MAX {
            tracing::warn!(path = %path.display(), len, "producer snapshot too large; deleting it");
            disk.remove_file(&path)?;
            continue;
        }
        let mut buf = vec![0u8; len as usize];
        read_exact_at(&*file, &mut buf, 0)?;
        match decode(&buf) {
            Ok(states) => return Ok(Some((*offset, states))),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "producer snapshot is damaged; deleting it");
                disk.remove_file(&path)?;
            }
        }
    }
    Ok(None)
}
