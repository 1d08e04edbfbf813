//! The sparse offset index (`<base offset>.index`): maps offsets to byte positions in the
//! segment's `.log`, one entry per `index.interval.bytes` of appended data.
//!
//! Each entry is 8 bytes, big-endian: the last offset of a batch relative to the segment's
//! base offset (u32), then the file position where that batch starts (u32). Entries strictly
//! increase in both fields. As in Kafka, an entry names a batch's *last* offset, so the largest
//! entry at or below a target offset points at or before the batch that holds the target.
//!
//! The entries live in memory; the file is only a cache of them (written at sync, roll and
//! close) that spares a scan of the segment when it is opened. A missing or damaged file is
//! rebuilt from the log.

use super::write_counter::WriteCounter;
use crate::env::disk::DiskFile;
use std::io;
use std::sync::Arc;

/// Bytes per entry on disk.
pub const ENTRY_LEN: usize = 8;

/// One index entry, relative to the segment's base offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Last offset of the batch, minus the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the `.log` file.
    pub position: u32,
}

/// Why an index file cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("size {0} is not a multiple of the entry size")]
    PartialEntry(usize),
    #[error("entry {0} does not increase over the one before it")]
    NotIncreasing(usize),
    #[error("entry {0} points at position {1}, past the end of the log ({2} bytes)")]
    PastEnd(usize, u32, u64),
    #[error("entry {0} names relative offset {1}, past the segment's end")]
    OffsetPastEnd(usize, u32),
}

/// Decodes and checks an index file's bytes against its segment: `log_size` is the `.log`
/// file's size and `relative_offset_limit` bounds the relative offsets (the segment's offset
/// span, or `u32::MAX` when unknown). Pure, so it can be fuzzed.
pub fn decode_entries(
    bytes: &[u8],
    log_size: u64,
    relative_offset_limit: u32,
) -> Result<Vec<IndexEntry>, IndexError> {
    if bytes.len() % ENTRY_LEN != 0 {
        return Err(IndexError::PartialEntry(bytes.len()));
    }
    let mut out: Vec<IndexEntry> = Vec::with_capacity(bytes.len() / ENTRY_LEN);
    for (i, chunk) in bytes.chunks_exact(ENTRY_LEN).enumerate() {
        let e = IndexEntry {
            relative_offset: u32::from_be_bytes(chunk[..4].try_into().expect("4 bytes")),
            position: u32::from_be_bytes(chunk[4..].try_into().expect("4 bytes")),
        };
        if let Some(prev) = out.last() {
            if e.relative_offset <= prev.relative_offset || e.position <= prev.position {
                return Err(IndexError::NotIncreasing(i));
            }
        }
        if u64::from(e.position) >= log_size {
            return Err(IndexError::PastEnd(i, e.position, log_size));
        }
        if e.relative_offset > relative_offset_limit {
            return Err(IndexError::OffsetPastEnd(i, e.relative_offset));
        }
        out.push(e);
    }
    Ok(out)
}

/// A segment's offset index.
pub struct OffsetIndex {
    /// The `.index` file.
    file: Arc<dyn DiskFile>,
    /// The segment's base offset.
    base_offset: i64,
    /// All entries, in order.
    entries: Vec<IndexEntry>,
    /// How many leading entries are written to the file.
    persisted: usize,
    /// Writes to the file against what syncs covered.
    writes: WriteCounter,
    /// Most entries the index may hold (`segment.index.bytes` / 8).
    entries_max: usize,
}

impl OffsetIndex {
    /// An index over `entries` already present in `file` (`persisted_entries` of them).
    pub fn new(
        file: Arc<dyn DiskFile>,
        base_offset: i64,
        entries: Vec<IndexEntry>,
        persisted_entries: usize,
        index_bytes_max: u64,
    ) -> OffsetIndex {
        OffsetIndex {
            file,
            base_offset,
            persisted: persisted_entries.min(entries.len()),
            entries,
            writes: WriteCounter::clean(),
            entries_max: ((index_bytes_max as usize) / ENTRY_LEN).max(1),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether no more entries fit: the segment must roll.
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.entries_max
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// Adds an entry for the batch ending at `last_offset` that starts at `position`.
    pub fn append(&mut self, last_offset: i64, position: u64) {
        let relative = u32::try_from(last_offset - self.base_offset)
            .expect("relative offsets fit in u32: the segment rolls first");
        let position = u32::try_from(position).expect("segment positions fit in u32");
        if let Some(last) = self.entries.last() {
            assert!(
                relative > last.relative_offset && position > last.position,
                "index entries must increase"
            );
        }
        self.entries.push(IndexEntry {
            relative_offset: relative,
            position,
        });
    }

    /// The start position of the scan for `target`: the position of the largest entry whose
    /// offset is at most `target`, or 0. Also returns that entry's absolute last offset.
    pub fn lookup(&self, target: i64) -> (Option<i64>, u64) {
        let Ok(rel) = u32::try_from(target - self.base_offset) else {
            // Below the base (or beyond u32): the scan starts at the segment's beginning.
            if target < self.base_offset {
                return (None, 0);
            }
            return self
                .entries
                .last()
                .map(|e| (Some(self.absolute(e)), u64::from(e.position)))
                .unwrap_or((None, 0));
        };
        let n = self.entries.partition_point(|e| e.relative_offset <= rel);
        match n.checked_sub(1).map(|i| self.entries[i]) {
            Some(e) => (Some(self.absolute(&e)), u64::from(e.position)),
            None => (None, 0),
        }
    }

    /// The scan start for offsets strictly after the durable prefix ending before `offset`:
    /// the largest entry whose batch ends below `offset`.
    pub fn last_entry_below(&self, offset: i64) -> Option<IndexEntry> {
        let n = self.entries.partition_point(|e| self.absolute(e) < offset);
        n.checked_sub(1).map(|i| self.entries[i])
    }

    fn absolute(&self, e: &IndexEntry) -> i64 {
        self.base_offset + i64::from(e.relative_offset)
    }

    /// Drops the entries for batches at or past `position` (the log was truncated there).
    pub fn truncate_to_position(&mut self, position: u64) -> io::Result<()> {
        let keep = self
            .entries
            .partition_point(|e| u64::from(e.position) < position);
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
        if keep < self.entries.len() || keep < self.persisted {
            self.entries.truncate(keep);
            if self.persisted > keep {
                self.persisted = keep;
                self.file.set_len((keep * ENTRY_LEN) as u64)?;
                self.writes.touch();
            }
        }
        Ok(())
    }

    /// Writes the entries not yet in the file. Returns whether anything was written.
    pub fn flush_entries(&mut self) -> io::Result<bool> {
        if self.persisted == self.entries.len() {
            return Ok(false);
        }
        let mut buf = Vec::with_capacity((self.entries.len() - self.persisted) * ENTRY_LEN);
        for e in &self.entries[self.persisted..] {
            buf.extend_from_slice(&e.relative_offset.to_be_bytes());
            buf.extend_from_slice(&e.position.to_be_bytes());
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

    fn index(entries: &[(i64, u64)]) -> OffsetIndex {
        let disk = MemDisk::new();
        let f = disk.open(Path::new("/i"), FileMode::Create).unwrap();
        let mut ix = OffsetIndex::new(f, 100, Vec::new(), 0, 80);
        for (o, p) in entries {
            ix.append(*o, *p);
        }
        ix
    }

    #[test]
    fn lookup_finds_the_largest_entry_at_or_below() {
        let ix = index(&[(104, 100), (110, 300), (120, 900)]);
        assert_eq!(ix.lookup(99), (None, 0));
        assert_eq!(ix.lookup(100), (None, 0));
        assert_eq!(ix.lookup(103), (None, 0));
        assert_eq!(ix.lookup(104), (Some(104), 100));
        assert_eq!(ix.lookup(109), (Some(104), 100));
        assert_eq!(ix.lookup(110), (Some(110), 300));
        assert_eq!(ix.lookup(500), (Some(120), 900));
        assert_eq!(ix.lookup(i64::MAX), (Some(120), 900));
        assert_eq!(ix.last_entry_below(110).map(|e| e.position), Some(100));
        assert_eq!(ix.last_entry_below(104), None);
    }

    #[test]
    fn full_after_max_entries() {
        let mut ix = index(&[]);
        for i in 0..10 {
            assert!(!ix.is_full());
            ix.append(100 + i, (i as u64 + 1) * 10);
        }
        assert!(ix.is_full());
    }

    #[test]
    fn persisted_entries_decode_back_and_truncate() {
        let mut ix = index(&[(104, 100), (110, 300), (120, 900)]);
        ix.flush_entries().unwrap();
        let mut bytes = vec![0u8; 24];
        crate::env::disk::read_exact_at(&*ix.file, &mut bytes, 0).unwrap();
        let decoded = decode_entries(&bytes, 1000, 100).unwrap();
        assert_eq!(decoded, ix.entries());
        ix.truncate_to_position(300).unwrap();
        assert_eq!(ix.len(), 1);
        assert_eq!(ix.file.len().unwrap(), 8);
    }

    #[test]
    fn damaged_index_files_are_refused() {
        let e = |o: u32, p: u32| [o.to_be_bytes(), p.to_be_bytes()].concat();
        let good = [e(1, 0), e(5, 10)].concat();
        assert!(decode_entries(&good, 11, 5).is_ok());
        assert_eq!(
            decode_entries(&good[..12], 11, 5),
            Err(IndexError::PartialEntry(12))
        );
        assert_eq!(
            decode_entries(&[e(5, 10), e(1, 20)].concat(), 30, 9),
            Err(IndexError::NotIncreasing(1))
        );
        assert_eq!(
            decode_entries(&[e(1, 10), e(5, 10)].concat(), 30, 9),
            Err(IndexError::NotIncreasing(1))
        );
        assert_eq!(
            decode_entries(&good, 10, 5),
            Err(IndexError::PastEnd(1, 10, 10))
        );
        assert_eq!(
            decode_entries(&good, 11, 4),
            Err(IndexError::OffsetPastEnd(1, 5))
        );
        assert_eq!(decode_entries(&[], 0, 0), Ok(vec![]));
    }
}
