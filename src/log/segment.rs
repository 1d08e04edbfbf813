//! A segment: one `.log` file of record batches with its `.index` and `.timeindex`, all named
//! by the segment's base offset (20 digits).

use super::config::LogConfig;
use super::index::{self, OffsetIndex};
use super::time_index::{self, TimeIndex};
use super::write_counter::WriteCounter;
use crate::env::disk::{Disk, DiskFile, FileMode, read_exact_at};
use crate::record::batch::{self, BatchHeader, HEADER_LEN};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Extension of the data file.
pub const LOG_SUFFIX: &str = "log";
/// Extension of the offset index.
pub const INDEX_SUFFIX: &str = "index";
/// Extension of the time index.
pub const TIME_INDEX_SUFFIX: &str = "timeindex";

/// How many times a read that failed with an I/O error, or returned a batch whose CRC did not
/// match, is retried before the failure is believed. A transient error must never be mistaken
/// for a damaged log, which recovery would truncate.
const READ_ATTEMPTS: usize = 3;

/// `<base offset, 20 digits>.<suffix>`, Kafka's segment file name.
pub fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

/// Parses a segment file name into its base offset and suffix.
pub fn parse_file_name(name: &str) -> Option<(i64, &str)> {
    let (stem, suffix) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let base = stem.parse::<i64>().ok()?;
    matches!(suffix, LOG_SUFFIX | INDEX_SUFFIX | TIME_INDEX_SUFFIX).then_some((base, suffix))
}

/// A batch as the segment records it when it is appended.
#[derive(Debug, Clone, Copy)]
pub struct AppendedBatch {
    /// Offset of the batch's last record.
    pub last_offset: i64,
    /// The batch's max timestamp (-1 for none).
    pub max_timestamp: i64,
    /// Size in bytes.
    pub len: u64,
}

/// What a scan of the segment's bytes found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOutcome {
    /// Valid batches read.
    pub batches: u64,
    /// Bytes cut from the end of the file because they were not valid batches.
    pub truncated_bytes: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub stop_reason: Option<String>,
}

/// Where a scan starts and what it expects first.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The first batch must start at this offset.
    BaseOffset(i64),
    /// The first batch must end at this offset (resuming from an index entry).
    LastOffset(i64),
}

/// Why a located read failed.
#[derive(Debug, thiserror::Error)]
pub enum SegmentReadError {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("corrupt batch at position {position}: {reason}")]
    Corrupt { position: u64, reason: String },
}

/// One segment of a partition log.
pub struct Segment {
    /// Offset of the first batch (and the name of the files).
    pub base_offset: i64,
    /// The `.log` file's path.
    log_path: PathBuf,
    /// The `.log` file.
    log: Arc<dyn DiskFile>,
    /// Offsets to positions.
    index: OffsetIndex,
    /// Timestamps to offsets.
    time_index: TimeIndex,
    /// Bytes of valid batches; appends go here.
    size: u64,
    /// The offset after the last batch (the base offset while empty).
    next_offset: i64,
    /// Batch bytes appended since the last index entry.
    bytes_since_index: u64,
    /// Largest batch max timestamp in the segment, -1 if none.
    max_timestamp: i64,
    /// Last offset of the batch that holds `max_timestamp`.
    offset_of_max_timestamp: i64,
    /// Max timestamp of the first batch: `segment.ms` counts from it, as Kafka does.
    first_batch_timestamp: Option<i64>,
    /// When this process created or opened the segment (wall clock), the fallback for
    /// `segment.ms` when records carry no timestamps.
    created_ms: i64,
    /// Writes to `.log` against what syncs covered.
    log_writes: WriteCounter,
}

/// Which of a segment's files a sync covered, and the write count it started at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMark {
    Log(u64),
    Index(u64),
    TimeIndex(u64),
}

impl Segment {
    /// Creates the files of a new, empty segment. Their names are not durable until the
    /// directory is synced.
    pub fn create(
        disk: &dyn Disk,
        dir: &Path,
        base_offset: i64,
        cfg: &LogConfig,
        now_ms: i64,
    ) -> io::Result<Segment> {
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let log = disk.open(&log_path, FileMode::CreateTruncate)?;
        let ix = disk.open(
            &dir.join(file_name(base_offset, INDEX_SUFFIX)),
            FileMode::CreateTruncate,
        )?;
        let tx = disk.open(
            &dir.join(file_name(base_offset, TIME_INDEX_SUFFIX)),
            FileMode::CreateTruncate,
        )?;
        Ok(Segment {
            base_offset,
            log_path,
            log,
            index: OffsetIndex::new(ix, base_offset, Vec::new(), 0, cfg.segment_index_bytes),
            time_index: TimeIndex::new(tx, base_offset, Vec::new(), 0, cfg.segment_index_bytes),
            size: 0,
            next_offset: base_offset,
            bytes_since_index: 0,
            max_timestamp: batch::NO_TIMESTAMP,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp: None,
            created_ms: now_ms,
            log_writes: WriteCounter::dirty(),
        })
    }

    /// Opens an existing segment and checks it, as recovery does:
    ///
    /// - loads both index files, rebuilding them from the log if they are missing or fail
    ///   their checks;
    /// - trusts the batches below `trusted_below` (the recovery point: synced before the last
    ///   checkpoint) up to the last index entry before it, and scans everything after that with
    ///   full integrity checks, cutting the file at the first batch that is not valid.
    ///
    /// I/O errors are returned, never taken for damage.
    pub fn open(
        disk: &dyn Disk,
        dir: &Path,
        base_offset: i64,
        trusted_below: i64,
        cfg: &LogConfig,
        now_ms: i64,
    ) -> io::Result<(Segment, ScanOutcome)> {
        let keep_torn = disk.planted_bugs().keep_torn_batch;
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let log = disk.open(&log_path, FileMode::ReadWrite)?;
        let file_len = log.len()?;
        let ix_path = dir.join(file_name(base_offset, INDEX_SUFFIX));
        let tx_path = dir.join(file_name(base_offset, TIME_INDEX_SUFFIX));
        let ix_file = disk.open(&ix_path, FileMode::Create)?;
        let tx_file = disk.open(&tx_path, FileMode::Create)?;
        let ix_bytes = read_whole(&*ix_file)?;
        let tx_bytes = read_whole(&*tx_file)?;

        let loaded_index = index::decode_entries(&ix_bytes, file_len, u32::MAX);
        let loaded_time = time_index::decode_entries(&tx_bytes, u32::MAX);
        let (ix_entries, tx_entries, healthy) = match (loaded_index, loaded_time) {
            (Ok(i), Ok(t)) => {
                let n = (i.len(), t.len());
                (i, t, Some(n))
            }
            (i, t) => {
                if file_len > 0 {
                    tracing::warn!(
                        segment = %log_path.display(),
                        index = ?i.err(), time_index = ?t.err(),
                        "index files are damaged; rebuilding them from the log"
                    );
                }
                (Vec::new(), Vec::new(), None)
            }
        };
        let (ix_persisted, tx_persisted) = healthy.unwrap_or((0, 0));
        let mut seg = Segment {
            base_offset,
            log_path,
            log,
            index: OffsetIndex::new(
                ix_file,
                base_offset,
                ix_entries,
                ix_persisted,
                cfg.segment_index_bytes,
            ),
            time_index: TimeIndex::new(
                tx_file,
                base_offset,
                tx_entries,
                tx_persisted,
                cfg.segment_index_bytes,
            ),
            size: 0,
            next_offset: base_offset,
            bytes_since_index: 0,
            max_timestamp: batch::NO_TIMESTAMP,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp: None,
            created_ms: now_ms,
            log_writes: WriteCounter::clean(),
        };
        if healthy.is_none() {
            seg.index.clear()?;
            seg.time_index.clear()?;
            seg.index.file_set_len_zero()?;
            seg.time_index.file_set_len_zero()?;
        }
        // Resume from the last index entry whose batch lies wholly below the trusted point;
        // everything from there on is scanned and re-indexed.
        if let Some(e) = seg.index.last_entry_below(trusted_below) {
            let last = base_offset + i64::from(e.relative_offset);
            let resume_pos = u64::from(e.position);
            seg.rewind_to_entry(resume_pos, last, cfg)?;
            let outcome = seg.scan(
                resume_pos,
                file_len,
                Expect::LastOffset(last),
                cfg,
                false,
                keep_torn,
            )?;
            if outcome.batches > 0 {
                seg.load_first_batch_timestamp();
                return Ok((seg, outcome));
            }
            // The index disagrees with the log where it says a batch starts. The index is
            // the suspect, not the synced data: start over from the beginning.
            tracing::warn!(
                segment = %seg.log_path.display(),
                position = resume_pos,
                reason = outcome.stop_reason.as_deref().unwrap_or(""),
                "index entry does not match the log; rebuilding the indexes"
            );
            seg.index.clear()?;
            seg.time_index.clear()?;
        }
        seg.rewind_to_start()?;
        let outcome = seg.scan(
            0,
            file_len,
            Expect::BaseOffset(base_offset),
            cfg,
            true,
            keep_torn,
        )?;
        seg.load_first_batch_timestamp();
        Ok((seg, outcome))
    }

    /// Forgets everything from the batch at `position` (ending at `last_offset`, named by an
    /// index entry) on, so a scan from there rebuilds it.
    fn rewind_to_entry(
        &mut self,
        position: u64,
        last_offset: i64,
        cfg: &LogConfig,
    ) -> io::Result<()> {
        self.index.truncate_to_position(position)?;
        self.time_index.truncate_to_offset(last_offset)?;
        // The entry at `position` was made because the bytes before it passed the interval.
        self.bytes_since_index = cfg.index_interval_bytes + 1;
        self.reset_counters(position);
        Ok(())
    }

    /// Forgets all batches, so a scan from position 0 rebuilds everything.
    fn rewind_to_start(&mut self) -> io::Result<()> {
        self.index.clear()?;
        self.time_index.clear()?;
        self.bytes_since_index = 0;
        self.first_batch_timestamp = None;
        self.reset_counters(0);
        Ok(())
    }

    /// Sets the size and the timestamp maximum from what the indexes still hold.
    fn reset_counters(&mut self, size: u64) {
        self.size = size;
        self.next_offset = self.base_offset;
        (self.max_timestamp, self.offset_of_max_timestamp) = self
            .time_index
            .last()
            .unwrap_or((batch::NO_TIMESTAMP, self.base_offset));
    }

    /// Reads and checks batches from `pos` to `file_len`, indexing each; cuts the file at the
    /// first batch that is not valid.
    fn scan(
        &mut self,
        mut pos: u64,
        file_len: u64,
        mut expect: Expect,
        cfg: &LogConfig,
        truncate_invalid: bool,
        keep_torn: bool,
    ) -> io::Result<ScanOutcome> {
        let mut buf = Vec::new();
        let mut batches = 0;
        let mut stop_reason = None;
        while pos < file_len {
            match self.read_checked_batch(pos, file_len, &mut buf, keep_torn)? {
                Err(reason) => {
                    stop_reason = Some(reason);
                    break;
                }
                Ok(h) => {
                    let in_sequence = match expect {
                        Expect::BaseOffset(b) => h.base_offset == b,
                        Expect::LastOffset(l) => h.last_offset() == l,
                    };
                    let count_ok = h.records_count > 0
                        && i64::from(h.records_count) == i64::from(h.last_offset_delta) + 1
                        && h.base_offset >= 0;
                    if !in_sequence || !count_ok {
                        stop_reason = Some(format!(
                            "batch at position {pos} has offsets {}..={}, expected {expect:?}",
                            h.base_offset,
                            h.last_offset()
                        ));
                        break;
                    }
                    self.index_batch(
                        pos,
                        AppendedBatch {
                            last_offset: h.last_offset(),
                            max_timestamp: h.max_timestamp,
                            len: h.total_len() as u64,
                        },
                        cfg,
                    );
                    pos += h.total_len() as u64;
                    self.size = pos;
                    expect = Expect::BaseOffset(h.next_offset());
                    batches += 1;
                }
            }
        }
        if !truncate_invalid && batches == 0 {
            return Ok(ScanOutcome {
                batches,
                truncated_bytes: 0,
                stop_reason,
            });
        }
        let truncated_bytes = file_len - pos;
        if truncated_bytes > 0 {
            tracing::warn!(
                segment = %self.log_path.display(),
                position = pos,
                truncated_bytes,
                reason = stop_reason.as_deref().unwrap_or("unknown"),
                "truncating the log at the first invalid batch"
            );
            self.log.set_len(pos)?;
            self.log_writes.touch();
        }
        Ok(ScanOutcome {
            batches,
            truncated_bytes,
            stop_reason,
        })
    }

    /// Reads the batch at `pos` and checks its header, extent and CRC. The outer error is an
    /// I/O error that persisted through retries; the inner one says why the bytes are not a
    /// valid batch.
    fn read_checked_batch(
        &self,
        pos: u64,
        file_len: u64,
        buf: &mut Vec<u8>,
        keep_torn: bool,
    ) -> io::Result<Result<BatchHeader, String>> {
        let available = file_len - pos;
        if available < HEADER_LEN as u64 {
            return Ok(Err(format!(
                "{available} trailing bytes are too few for a batch header"
            )));
        }
        let mut last_reason = String::new();
        for _ in 0..READ_ATTEMPTS {
            let mut hdr = [0u8; HEADER_LEN];
            read_with_retries(&*self.log, &mut hdr, pos)?;
            let h = match BatchHeader::parse(&hdr) {
                Ok(h) => h,
                Err(e) => {
                    last_reason = e.to_string();
                    continue;
                }
            };
            let len = h.total_len() as u64;
            if len > available {
                last_reason = format!("batch claims {len} bytes, {available} remain in the file");
                continue;
            }
            buf.resize(len as usize, 0);
            read_with_retries(&*self.log, buf, pos)?;
            match batch::check_integrity(buf) {
                Ok(h) => return Ok(Ok(h)),
                // The planted bug: a batch whose header is sane is kept whatever its CRC says.
                Err(_) if keep_torn => return Ok(Ok(h)),
                Err(e) => last_reason = e.to_string(),
            }
        }
        Ok(Err(format!("at position {pos}: {last_reason}")))
    }

    fn load_first_batch_timestamp(&mut self) {
        if self.size < HEADER_LEN as u64 {
            return;
        }
        let mut hdr = [0u8; HEADER_LEN];
        if read_exact_at(&*self.log, &mut hdr, 0).is_ok() {
            if let Ok(h) = BatchHeader::parse(&hdr) {
                self.first_batch_timestamp = Some(h.max_timestamp);
            }
        }
    }

    /// Records a batch written at `position` in the indexes and counters.
    fn index_batch(&mut self, position: u64, b: AppendedBatch, cfg: &LogConfig) {
        if b.max_timestamp > self.max_timestamp {
            self.max_timestamp = b.max_timestamp;
            self.offset_of_max_timestamp = b.last_offset;
        }
        if self.first_batch_timestamp.is_none() && position == 0 {
            self.first_batch_timestamp = Some(b.max_timestamp);
        }
        if self.bytes_since_index > cfg.index_interval_bytes {
            self.index.append(b.last_offset, position);
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += b.len;
        self.next_offset = b.last_offset + 1;
    }

    /// Appends `bytes` (one or more whole batches, described by `batches`, offsets already
    /// assigned) at the end of the segment. On an I/O error nothing is recorded and the file is
    /// cut back to its previous size; the error says whether that succeeded.
    pub fn append(
        &mut self,
        bytes: &[u8],
        batches: &[AppendedBatch],
        cfg: &LogConfig,
    ) -> Result<(), AppendIoError> {
        if let Err(error) = self.log.write_at(bytes, self.size) {
            let trimmed = self.log.set_len(self.size).is_ok();
            return Err(AppendIoError { error, trimmed });
        }
        let mut pos = self.size;
        for b in batches {
            self.index_batch(pos, *b, cfg);
            pos += b.len;
        }
        debug_assert_eq!(pos, self.size + bytes.len() as u64);
        self.size = pos;
        self.log_writes.touch();
        Ok(())
    }

    /// Whether the segment must roll before taking `incoming_bytes` more, with the newest
    /// timestamp among them `incoming_max_timestamp` and the largest offset `incoming_last`.
    pub fn should_roll(
        &self,
        cfg: &LogConfig,
        incoming_bytes: u64,
        incoming_max_timestamp: i64,
        incoming_last: i64,
        now_ms: i64,
    ) -> bool {
        if self.size == 0 {
            return false;
        }
        let too_big = self.size + incoming_bytes > cfg.segment_bytes_effective();
        let waited = match self.first_batch_timestamp {
            Some(t) if t >= 0 && incoming_max_timestamp >= 0 => incoming_max_timestamp - t,
            _ => now_ms - self.created_ms,
        };
        let too_old = waited > cfg.segment_ms;
        let offsets_overflow = incoming_last - self.base_offset > i64::from(i32::MAX);
        too_big || too_old || offsets_overflow || self.index.is_full() || self.time_index.is_full()
    }

    /// Prepares the segment to stop being the active one: records the final time index entry
    /// and writes the index entries to their files. A failed write is retried at the next
    /// sync, so it is not an error here.
    pub fn seal(&mut self) {
        self.time_index
            .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
        if let Err(e) = self
            .index
            .flush_entries()
            .and(self.time_index.flush_entries())
        {
            tracing::warn!(segment = %self.log_path.display(), error = %e, "could not write index entries; will retry");
        }
    }

    /// Finds the batch that holds `offset`, or the first after it: its position and header.
    /// None when the segment has no batch at or after `offset`.
    pub fn locate(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, SegmentReadError> {
        let (_, pos) = self.index.lookup(offset);
        let mut headers = HeaderScan::new(&*self.log, pos, self.size);
        while let Some((pos, h)) = headers.next_header()? {
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
        }
        Ok(None)
    }

    /// Calls `visit` with the header of every batch that ends at or after `offset`, in order.
    pub fn for_each_header(
        &self,
        offset: i64,
        mut visit: impl FnMut(&BatchHeader),
    ) -> Result<(), SegmentReadError> {
        let Some((pos, _)) = self.locate(offset)? else {
            return Ok(());
        };
        let mut headers = HeaderScan::new(&*self.log, pos, self.size);
        while let Some((_, h)) = headers.next_header()? {
            visit(&h);
        }
        Ok(())
    }

    /// The first record at or after `timestamp` in this segment: its offset and timestamp.
    pub fn find_offset_by_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, SegmentReadError> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        let start = self
            .time_index
            .last_offset_before(timestamp)
            .map_or(self.base_offset, |o| o + 1);
        let Some((mut pos, _)) = self.locate(start)? else {
            return Ok(None);
        };
        let mut hdr = [0u8; HEADER_LEN];
        let mut buf = Vec::new();
        while pos + HEADER_LEN as u64 <= self.size {
            read_with_retries(&*self.log, &mut hdr, pos)?;
            let corrupt = |reason: String| SegmentReadError::Corrupt {
                position: pos,
                reason,
            };
            let h = BatchHeader::parse(&hdr).map_err(|e| corrupt(e.to_string()))?;
            if h.max_timestamp >= timestamp {
                buf.resize(h.total_len(), 0);
                read_with_retries(&*self.log, &mut buf, pos)?;
                let h = batch::check_integrity(&buf).map_err(|e| corrupt(e.to_string()))?;
                let body = batch::records_body(&h, &buf).map_err(|e| corrupt(e.to_string()))?;
                for r in batch::RecordIter::new(&h, &body) {
                    let r = r.map_err(|e| corrupt(e.to_string()))?;
                    if r.timestamp >= timestamp {
                        return Ok(Some((
                            h.base_offset + i64::from(r.offset_delta),
                            r.timestamp,
                        )));
                    }
                }
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Cuts the segment back so that it ends before `offset` (a batch boundary at or above the
    /// base). Returns the bytes removed.
    pub fn truncate_to_offset(
        &mut self,
        offset: i64,
        cfg: &LogConfig,
    ) -> Result<u64, SegmentReadError> {
        let pos = match self.locate(offset)? {
            Some((pos, h)) if h.base_offset >= offset => pos,
            Some((_, h)) => {
                return Err(SegmentReadError::Corrupt {
                    position: 0,
                    reason: format!(
                        "offset {offset} is inside batch {}..={}",
                        h.base_offset,
                        h.last_offset()
                    ),
                });
            }
            None => return Ok(0),
        };
        let removed = self.size - pos;
        self.log.set_len(pos)?;
        self.log_writes.touch();
        self.index.truncate_to_position(pos)?;
        self.time_index.truncate_to_offset(offset)?;
        // Recompute the counters by rescanning from the last remaining index entry.
        match self.index.entries().last().copied() {
            Some(e) => {
                let last = self.base_offset + i64::from(e.relative_offset);
                self.rewind_to_entry(u64::from(e.position), last, cfg)?;
                self.scan(
                    u64::from(e.position),
                    pos,
                    Expect::LastOffset(last),
                    cfg,
                    true,
                    false,
                )?;
            }
            None => {
                self.rewind_to_start()?;
                self.scan(
                    0,
                    pos,
                    Expect::BaseOffset(self.base_offset),
                    cfg,
                    true,
                    false,
                )?;
                self.load_first_batch_timestamp();
            }
        }
        Ok(removed)
    }

    /// Bytes of valid batches.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The offset after the last batch.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Whether the segment holds no batches.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Largest record timestamp in the segment, -1 if none.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// The `.log` file, for reads outside the log's lock.
    pub fn log_file(&self) -> Arc<dyn DiskFile> {
        self.log.clone()
    }

    /// The `.log` file's path.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The files with writes no completed sync covered: the `.log`, and the indexes if
    /// `with_indexes` (writing their pending entries first). Each comes with the mark to pass to
    /// [`Segment::mark_synced`] once it is synced.
    pub fn take_unsynced(
        &mut self,
        with_indexes: bool,
    ) -> io::Result<Vec<(Arc<dyn DiskFile>, SyncMark)>> {
        let mut out = Vec::new();
        if self.log_writes.is_dirty() {
            out.push((self.log.clone(), SyncMark::Log(self.log_writes.snapshot())));
        }
        if with_indexes {
            if let Some((f, snap)) = self.index.take_unsynced()? {
                out.push((f, SyncMark::Index(snap)));
            }
            if let Some((f, snap)) = self.time_index.take_unsynced()? {
                out.push((f, SyncMark::TimeIndex(snap)));
            }
        }
        Ok(out)
    }

    /// Records that a file handed out by [`Segment::take_unsynced`] was synced.
    pub fn mark_synced(&mut self, mark: SyncMark) {
        match mark {
            SyncMark::Log(s) => self.log_writes.mark_synced(s),
            SyncMark::Index(s) => self.index.mark_synced(s),
            SyncMark::TimeIndex(s) => self.time_index.mark_synced(s),
        }
    }

    /// Treats the `.log` as unsynced (after recovery, when it may hold page-cache data).
    pub fn mark_dirty(&mut self) {
        self.log_writes.touch();
    }

    /// Whether the `.log` has writes not yet synced.
    pub fn has_unsynced_data(&self) -> bool {
        self.log_writes.is_dirty()
    }

    /// The index (for tests and the fuzz targets).
    pub fn index(&self) -> &OffsetIndex {
        &self.index
    }

    /// The time index (for tests).
    pub fn time_index(&self) -> &TimeIndex {
        &self.time_index
    }
}

/// An append's write failed.
#[derive(Debug)]
pub struct AppendIoError {
    /// The write's error.
    pub error: io::Error,
    /// Whether the file was cut back to its previous size afterwards (if not, the log must
    /// stop taking writes until it is recovered).
    pub trimmed: bool,
}

/// Walks batch headers from a position, reading the file in chunks rather than one small read
/// per header (a header is 61 bytes; a chunk holds many).
struct HeaderScan<'a> {
    file: &'a dyn DiskFile,
    /// Position of the next header.
    pos: u64,
    /// End of the valid data.
    end: u64,
    /// Bytes read from `buf_pos` on.
    buf: Vec<u8>,
    buf_pos: u64,
}

impl<'a> HeaderScan<'a> {
    /// Bytes read at a time.
    const CHUNK: u64 = 16 << 10;

    fn new(file: &'a dyn DiskFile, pos: u64, end: u64) -> HeaderScan<'a> {
        HeaderScan {
            file,
            pos,
            end,
            buf: Vec::new(),
            buf_pos: pos,
        }
    }

    /// The next header and its position; None at the end of the data.
    fn next_header(&mut self) -> Result<Option<(u64, BatchHeader)>, SegmentReadError> {
        if self.pos + HEADER_LEN as u64 > self.end {
            return Ok(None);
        }
        let buffered_end = self.buf_pos + self.buf.len() as u64;
        if self.pos < self.buf_pos || self.pos + HEADER_LEN as u64 > buffered_end {
            let len = Self::CHUNK.min(self.end - self.pos).max(HEADER_LEN as u64) as usize;
            self.buf.resize(len, 0);
            read_with_retries(self.file, &mut self.buf, self.pos)?;
            self.buf_pos = self.pos;
        }
        let at = (self.pos - self.buf_pos) as usize;
        let h = BatchHeader::parse(&self.buf[at..at + HEADER_LEN]).map_err(|e| {
            SegmentReadError::Corrupt {
                position: self.pos,
                reason: e.to_string(),
            }
        })?;
        let here = self.pos;
        self.pos += h.total_len() as u64;
        Ok(Some((here, h)))
    }
}

/// Reads exactly `buf.len()` bytes, retrying I/O errors a few times.
fn read_with_retries(file: &dyn DiskFile, buf: &mut [u8], pos: u64) -> io::Result<()> {
    let mut last = None;
    for _ in 0..READ_ATTEMPTS {
        match read_exact_at(file, buf, pos) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("read failed")))
}

/// Reads a whole (index) file.
fn read_whole(file: &dyn DiskFile) -> io::Result<Vec<u8>> {
    let len = file.len()?;
    let len = usize::try_from(len).map_err(|_| io::Error::other("file too large"))?;
    let mut buf = vec![0u8; len];
    read_with_retries(file, &mut buf, 0)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        assert_eq!(file_name(42, LOG_SUFFIX), "00000000000000000042.log");
        assert_eq!(
            parse_file_name("00000000000000000042.log"),
            Some((42, "log"))
        );
        assert_eq!(
            parse_file_name("00000000000000000042.timeindex"),
            Some((42, "timeindex"))
        );
        assert_eq!(parse_file_name("0000000000000000042.log"), None);
        assert_eq!(parse_file_name("00000000000000000042.log.tmp"), None);
        assert_eq!(parse_file_name("0000000000000000004x.log"), None);
        assert_eq!(parse_file_name("99999999999999999999.log"), None);
    }
}
