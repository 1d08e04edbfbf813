//! The time index (`<base offset>.timeindex`): maps timestamps to offsets, for ListOffsets by
//! time and for time-based retention.
//!
//! Each entry is 12 bytes, big-endian: a timestamp (i64), then an offset relative to the
//! segment's base (u32). Entry `(T, o)` says: the largest timestamp among all records up to and
//! including the batch that ends at offset `base + o` is `T`. Timestamps strictly increase from
//! entry to entry, offsets never decrease. An entry is added with each offset-index entry when
//! the maximum timestamp has grown, and once more when the segment rolls.
//!
//! Like the offset index, it lives in memory and the file is a cache rebuilt from the log when
//! missing or damaged.

use super::write_counter::WriteCounter;
use crate::env::disk::DiskFile;
use std::io;
use std::sync::Arc;

/// Bytes per entry on disk.
pub const ENTRY_LEN: usize = 12;

/// One time index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// The largest record timestamp up to this point of the segment.
    pub timestamp: i64,
    /// Last offset of the batch where that maximum was reached, relative to the base.
    pub relative_offset: u32,
}

/// Why a time index file cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeIndexError {
    #[error("size {0} is not a multiple of the entry size")]
    PartialEntry(usize),
    #[error("entry {0} does not increase over the one before it")]
    NotIncreasing(usize),
    #[error("entry {0} has invalid timestamp {1}")]
    BadTimestamp(usize, i64),
    #[error("entry {0} names relative offset {1}, past the segment's end")]
    OffsetPastEnd(usize, u32),
}

/// Decodes and checks a time index file's bytes; relative offsets must not exceed
/// `relative_offset_limit`. Pure, so it can be fuzzed.
pub fn decode_entries(
    bytes: &[u8],
    relative_offset_limit: u32,
) -> Result<Vec<TimeEntry>, TimeIndexError> {
    if bytes.len() % ENTRY_LEN != 0 {
        return Err(TimeIndexError::PartialEntry(bytes.len()));
    }
    let mut out: Vec<TimeEntry> = Vec::with_capacity(bytes.len() / ENTRY_LEN);
    for (i, chunk) in bytes.chunks_exact(ENTRY_LEN).enumerate() {
        let e = TimeEntry {
            timestamp: i64::from_be_bytes(chunk[..8].try_into().expect("8 bytes")),
            relative_offset: u32::from_be_bytes(chunk[8..].try_into().expect("4 bytes")),
        };
        if e.timestamp < 0 {
            return Err(TimeIndexError::BadTimestamp(i, e.timestamp));
        }
        if let Some(prev) = out.last() {
            if e.timestamp <= prev.timestamp || e.relative_offset < prev.relative_offset {
                return Err(TimeIndexError::NotIncreasing(i));
            }
        }
        if e.relative_offset > relative_offset_limit {
            return Err(TimeIndexError::OffsetPastEnd(i, e.relative_offset));
        }
        out.push(e);
    }
    Ok(out)
}

/// A segment's time index.
pub struct TimeIndex {
    /// The `.timeindex` file.
    file: Arc<dyn DiskFile>,
    /// The segment's base offset.
    base_offset: i64,
    /// All entries, in order.
    entries: Vec<TimeEntry>,
    /// How many leading entries are written to the file.
    persisted: usize,
    /// Writes to the file against what syncs covered.
    writes: WriteCounter,
    /// Most entries the index may hold.
    entries_max: usize,
}

impl TimeIndex {
    /// A time index over `entries`, `persisted_entries` of which are already in `file`.
    pub fn new(
        file: Arc<dyn DiskFile>,
        base_offset: i64,
        entries: Vec<TimeEntry>,
        persisted_entries: usize,
        index_bytes_max: u64,
    ) -> TimeIndex {
        TimeIndex {
            file,
            base_offset,
            persisted: persisted_entries.min(entries.len()),
            entries,
            writes: WriteCounter::clean(),
            entries_max: ((index_bytes_max as usize) / ENTRY_LEN).max(1),
        }
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[TimeEntry] {
        &self.entries
    }

    /// Whether no more entries fit: the segment must roll.
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.entries_max
    }

    /// The last entry, if any.
    pub fn last(&self) -> Option<(i64, i64)> {
        self.entries
            .last()
            .map(|e| (e.timestamp, self.base_offset + i64::from(e.relative_offset)))
    }

    /// Adds `(timestamp, offset)` if the timestamp is larger than the last entry's. Entries
    /// with no timestamp (-1) are never added.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) {
        if timestamp < 0 {
            return;
        }
        if let Some(last) = self.entries.last() {
            if timestamp <= last.timestamp {
                return;
            }
        }
        let relative = u32::try_from(offset - self.base_offset)
            .expect("relative offsets fit in u32: the segment rolls first");
        if let Some(last) = self.entries.last() {
            assert!(
                relative >= last.relative_offset,
                "time index offsets never decrease"
            );
        }
        self.entries.push(TimeEntry {
            timestamp,
            relative_offset: relative,
        });
    }

    /// The offset of the last batch all of whose records (and all before it in this segment)
    /// have timestamps strictly below `timestamp`; the search for the first record at or after
    /// `timestamp` starts after it. None when the search starts at the segment's beginning.
    pub fn last_offset_before(&self, timestamp: i64) -> Option<i64> {
        let n = self.entries.partition_point(|e| e.timestamp < timestamp);
        n.checked_sub(1)
            .map(|i| self.base_offset + i64::from(self.entries[i].relative_offset))
    }

    /// Drops the entries at or past `offset` (the log was truncated there).
    pub fn truncate_to_offset(&mut self, offset: i64) -> io::Result<()> {
        let keep = self
            .entries
            .partition_point(|e| self.base_offset + i64::from(e.relative_offset) < offset);
        self.truncate_entries(keep)
    }

    /// Drops all entries.
    pub fn clear(&mut self) -> io::Result<()> {
        self.truncate_entries(0)
    }

    /// Empties the file whatever it holds (it was found damaged).
    pub fn file_set_len_zero(&mut self) -> io::Result<()> {
        self.persisted = 0;
        self.file.set_len(0)?;
        self.writes.touch();
        Ok(())
    }

    fn truncate_entries(&mut self, keep: usize) -> io::Result<()> {
        self.entries.truncate(keep);
        if self.persisted > keep {
            self.persisted = keep;
            self.file.set_len((keep * ENTRY_LEN) as u64)?;
            self.writes.touch();
        }
        Ok(())
    }

    /// Writes the entries not yet in the file.
    pub fn flush_entries(&mut self) -> io::Result<bool> {
        if self.persisted == self.entries.len() {
            return Ok(false);
        }
        let mut buf = Vec::with_capacity((self.entries.len() - self.persisted) * ENTRY_LEN);
        for e in &self.entries[self.persisted..] {
            buf.extend_from_slice(&e.timestamp.to_be_bytes());
            buf.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        self.file
            .write_at(&buf, (self.persisted * ENTRY_LEN) as u64)?;
        self.file.set_len((self.entries.len() * ENTRY_LEN) as u64)?;
        self.persisted = self.entries.len();
        self.writes.touch();
        Ok(true)
    }

    /// Writes pending entries and, if the file has writes no sync covered, hands it back with
    /// the snapshot to pass to [`Self::mark_synced`] once it is synced.
    pub fn take_unsynced(&mut self) -> io::Result<Option<(Arc<dyn DiskFile>, u64)>> {
        self.flush_entries()?;
        Ok(self
            .writes
            .is_dirty()
            .then(|| (self.file.clone(), self.writes.snapshot())))
    }

    /// Records that a sync which started at `snapshot` completed.
    pub fn mark_synced(&mut self, snapshot: u64) {
        self.writes.mark_synced(snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{Disk, FileMode, MemDisk};
    use std::path::Path;

    fn tindex() -> TimeIndex {
        let disk = MemDisk::new();
        let f = disk.open(Path::new("/t"), FileMode::Create).unwrap();
        TimeIndex::new(f, 1000, Vec::new(), 0, 120)
    }

    #[test]
    fn only_growing_timestamps_are_kept() {
        let mut t = tindex();
        t.maybe_append(-1, 1000);
        t.maybe_append(50, 1002);
        t.maybe_append(50, 1004);
        t.maybe_append(40, 1006);
        t.maybe_append(70, 1008);
        assert_eq!(t.entries().len(), 2);
        assert_eq!(t.last(), Some((70, 1008)));
    }

    #[test]
    fn lookup_before_a_timestamp() {
        let mut t = tindex();
        t.maybe_append(50, 1002);
        t.maybe_append(70, 1008);
        assert_eq!(t.last_offset_before(10), None);
        assert_eq!(t.last_offset_before(50), None);
        assert_eq!(t.last_offset_before(51), Some(1002));
        assert_eq!(t.last_offset_before(70), Some(1002));
        assert_eq!(t.last_offset_before(71), Some(1008));
        t.flush_entries().unwrap();
        t.truncate_to_offset(1008).unwrap();
        assert_eq!(t.last(), Some((50, 1002)));
        assert_eq!(t.file.len().unwrap(), 12);
    }

    #[test]
    fn damaged_time_index_files_are_refused() {
        let e = |t: i64, o: u32| [t.to_be_bytes().to_vec(), o.to_be_bytes().to_vec()].concat();
        let good = [e(5, 1), e(9, 1)].concat();
        assert!(decode_entries(&good, 1).is_ok());
        assert_eq!(
            decode_entries(&good[..5], 9),
            Err(TimeIndexError::PartialEntry(5))
        );
        assert_eq!(
            decode_entries(&[e(9, 1), e(5, 2)].concat(), 9),
            Err(TimeIndexError::NotIncreasing(1))
        );
        assert_eq!(
            decode_entries(&[e(5, 3), e(9, 2)].concat(), 9),
            Err(TimeIndexError::NotIncreasing(1))
        );
        assert_eq!(
            decode_entries(&e(-3, 0), 9),
            Err(TimeIndexError::BadTimestamp(0, -3))
        );
        assert_eq!(
            decode_entries(&good, 0),
            Err(TimeIndexError::OffsetPastEnd(0, 1))
        );
    }
}
