//! The leader epoch cache: for each leader epoch present in a partition's log, the offset of its
//! first batch (Kafka's `LeaderEpochFileCache`, KIP-101). It answers the diverging-epoch
//! question a follower asks after a leader change ([`LeaderEpochCache::end_offset_for`]) and is
//! cut back whenever the log is (from the end by truncation, from the start by retention).
//!
//! Persisted per partition as Kafka's `leader-epoch-checkpoint` text file, byte for byte:
//!
//! ```text
//! 0            <- version
//! 2            <- number of entries
//! 0 0          <- epoch, start offset
//! 3 120
//! ```
//!
//! written atomically through the seam. A file that does not parse, or whose entries are not
//! strictly increasing in both epoch and offset, is reported as damaged (never a panic); the log
//! then rebuilds the cache from its batches' headers, each of which carries the epoch
//! (`partitionLeaderEpoch`) of the leader that wrote it.

use crate::env::disk::{Disk, FileMode, read_exact_at, write_atomic};
use std::io;
use std::path::Path;

/// The checkpoint's file name inside the partition directory (Kafka's).
pub const FILE_NAME: &str = "leader-epoch-checkpoint";
/// Kafka's `UNDEFINED_EPOCH`: no epoch (OffsetsForLeaderEpoch answers it when it knows none).
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's `UNDEFINED_EPOCH_OFFSET`: no end offset.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;
/// The file format version written and accepted.
const VERSION: i32 = 0;
/// Largest checkpoint file accepted (a line is at most 32 bytes: some 130,000 epochs).
const FILE_BYTES_MAX: usize = 4 << 20;

/// One epoch and the offset of its first batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// Offset of the first batch written in this epoch.
    pub start_offset: i64,
}

/// The cache. Entries are strictly increasing in both epoch and start offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    /// Oldest first.
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// A cache holding `entries`, assigned in order (so entries that break monotonicity are
    /// dropped exactly as [`LeaderEpochCache::assign`] drops them).
    pub fn from_entries(entries: &[EpochEntry]) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::default();
        for e in entries {
            cache.assign(e.epoch, e.start_offset);
        }
        cache
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The newest entry.
    pub fn latest_entry(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The newest epoch (the one being written to), if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// The epoch of the batch holding `offset`: the newest entry starting at or below it.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let i = self.entries.partition_point(|e| e.start_offset <= offset);
        i.checked_sub(1).map(|i| self.entries[i].epoch)
    }

    /// Records that `epoch` starts at `start_offset`, with Kafka's rules: nothing changes if
    /// `epoch` is the latest epoch and `start_offset` is not below its start. Otherwise every
    /// entry from the end whose epoch is at or above `epoch`, or whose start is at or above
    /// `start_offset`, is removed (it contradicts the new entry), and the entry is added.
    /// Returns whether the cache changed. Both values must be non-negative (callers check what
    /// comes from the network or a file).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        assert!(
            epoch >= 0 && start_offset >= 0,
            "invalid leader epoch entry: epoch {epoch} at offset {start_offset}"
        );
        let needed = self
            .latest_entry()
            .is_none_or(|l| epoch != l.epoch || start_offset < l.start_offset);
        if !needed {
            return false;
        }
        let keep = self
            .entries
            .iter()
            .rposition(|e| e.epoch < epoch && e.start_offset < start_offset)
            .map_or(0, |i| i + 1);
        let removed = &self.entries[keep..];
        // Removing one entry that starts where the new one does is the ordinary case of an
        // epoch that wrote nothing before the next took over; anything else is worth a warning.
        if removed.len() > 1
            || removed
                .first()
                .is_some_and(|e| e.start_offset != start_offset)
        {
            tracing::warn!(
                epoch,
                start_offset,
                removed = ?removed,
                "a new leader epoch entry removes conflicting entries"
            );
        }
        self.entries.truncate(keep);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Kafka's `endOffsetFor`: the largest epoch at most `requested_epoch` and the offset where
    /// it ends (the start of the next epoch), for a log ending at `log_end`:
    ///
    /// - `UNDEFINED_EPOCH` requested, or an epoch above every entry (or an empty cache):
    ///   `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`;
    /// - the latest epoch: `(latest, log_end)`;
    /// - an epoch below the first entry: `(requested_epoch, first entry's start)` (retention
    ///   removed the older epochs; the follower replicates from there);
    /// - otherwise: `(largest epoch <= requested, start of the next epoch above requested)`.
    pub fn end_offset_for(&self, requested_epoch: i32, log_end: i64) -> (i32, i64) {
        let undefined = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        if requested_epoch == UNDEFINED_EPOCH {
            return undefined;
        }
        if self.latest_epoch() == Some(requested_epoch) {
            return (requested_epoch, log_end);
        }
        let higher = self.entries.partition_point(|e| e.epoch <= requested_epoch);
        let Some(next) = self.entries.get(higher) else {
            return undefined;
        };
        match higher.checked_sub(1) {
            None => (requested_epoch, next.start_offset),
            Some(floor) => (self.entries[floor].epoch, next.start_offset),
        }
    }

    /// Removes every entry starting at or after `end_offset` (the log was cut there). Returns
    /// whether the cache changed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        if end_offset < 0 {
            return false;
        }
        let keep = self
            .entries
            .partition_point(|e| e.start_offset < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// Forgets what lies below `start_offset` (the log start moved up): entries starting at or
    /// below it go, except the newest of them, which is moved to start at `start_offset`.
    /// Returns whether the cache changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let at_or_below = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        let Some(newest) = at_or_below.checked_sub(1) else {
            return false;
        };
        let before = self.entries.len();
        let moved = EpochEntry {
            epoch: self.entries[newest].epoch,
            start_offset,
        };
        let changed = newest > 0 || self.entries[newest] != moved;
        self.entries.drain(..newest);
        self.entries[0] = moved;
        debug_assert!(self.entries.len() <= before);
        changed
    }
}

/// Why a checkpoint file was not usable.
#[derive(Debug, thiserror::Error)]
pub enum EpochFileError {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("damaged leader-epoch-checkpoint: {0}")]
    Damaged(String),
}

/// The file's bytes for `entries`.
pub fn encode(entries: &[EpochEntry]) -> Vec<u8> {
    let mut out = format!("{VERSION}\n{}\n", entries.len());
    for e in entries {
        out.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
    }
    out.into_bytes()
}

/// Decodes a checkpoint file's bytes. Pure and bounded, so it can be fuzzed. As Kafka reads
/// it: an empty file, or one with only the version line, holds no entries; lines end with
/// `\n` or `\r\n`; an entry line is two whitespace-separated numbers. Beyond Kafka, entries
/// must be valid (non-negative) and strictly increasing in epoch and offset.
pub fn decode(bytes: &[u8]) -> Result<Vec<EpochEntry>, EpochFileError> {
    let damaged = |why: String| EpochFileError::Damaged(why);
    if bytes.len() > FILE_BYTES_MAX {
        return Err(damaged(format!("{} bytes is too large", bytes.len())));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| damaged(format!("not text: {e}")))?;
    let mut lines = text.lines();
    let Some(version) = lines.next() else {
        return Ok(Vec::new());
    };
    match version.parse::<i32>() {
        Ok(VERSION) => {}
        Ok(v) => return Err(damaged(format!("unknown version {v}"))),
        Err(_) => return Err(damaged(format!("malformed version line {version:?}"))),
    }
    let Some(count) = lines.next() else {
        return Ok(Vec::new());
    };
    let count: usize = count
        .parse()
        .map_err(|_| damaged(format!("malformed count line {count:?}")))?;
    // Not allocated from `count`: the lines themselves bound the entries.
    let mut entries: Vec<EpochEntry> = Vec::new();
    for line in lines {
        let mut parts = line.split_whitespace();
        let (Some(epoch), Some(offset), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(damaged(format!("malformed line {line:?}")));
        };
        let (Ok(epoch), Ok(start_offset)) = (epoch.parse::<i32>(), offset.parse::<i64>()) else {
            return Err(damaged(format!("malformed line {line:?}")));
        };
        let e = EpochEntry {
            epoch,
            start_offset,
        };
        if epoch < 0 || start_offset < 0 {
            return Err(damaged(format!("negative values in {e:?}")));
        }
        if let Some(prev) = entries.last() {
            if e.epoch <= prev.epoch || e.start_offset <= prev.start_offset {
                return Err(damaged(format!("{e:?} does not follow {prev:?}")));
            }
        }
        entries.push(e);
    }
    if entries.len() != count {
        return Err(damaged(format!(
            "expected {count} entries, found {}",
            entries.len()
        )));
    }
    Ok(entries)
}

/// Reads the checkpoint in `dir`; None if there is none.
pub fn read(disk: &dyn Disk, dir: &Path) -> Result<Option<Vec<EpochEntry>>, EpochFileError> {
    let path = dir.join(FILE_NAME);
    if !disk.exists(&path) {
        return Ok(None);
    }
    let file = disk.open(&path, FileMode::Read)?;
    let len = file.len()?;
    if len > FILE_BYTES_MAX as u64 {
        return Err(EpochFileError::Damaged(format!("{len} bytes is too large")));
    }
    let mut buf = vec![0u8; len as usize];
    read_exact_at(&*file, &mut buf, 0)?;
    decode(&buf).map(Some)
}

/// Writes the checkpoint in `dir` atomically and durably; returns the bytes written.
pub async fn write(disk: &dyn Disk, dir: &Path, entries: &[EpochEntry]) -> io::Result<Vec<u8>> {
    let bytes = encode(entries);
    write_atomic(disk, &dir.join(FILE_NAME), &bytes).await?;
    Ok(bytes)
}

#[cfg(test)]
mod tests;
