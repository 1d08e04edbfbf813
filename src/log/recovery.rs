//! Opening a partition directory after a clean shutdown, a crash or a power loss.
//!
//! 1. Leftover temporary files (`*.tmp`, and Kafka's `*.deleted`, `*.cleaned`, `*.swap`) are
//!    removed; index files without a `.log` are removed.
//! 2. The checkpoint gives the recovery point and the log start offset. A missing or damaged
//!    checkpoint means "check everything".
//! 3. Segments wholly below the log start offset are deleted (retention had deleted them).
//! 4. Each segment is opened in order ([`Segment::open`]): batches below the recovery point are
//!    trusted up to the last index entry before it; everything after is checked batch by batch
//!    (header, length, CRC, offsets) and the file is cut at the first invalid batch. Damaged
//!    index files are rebuilt.
//! 5. Offsets must be dense: a segment must start where the one before it ends. After a cut,
//!    or at a gap, every later segment is deleted: its records were never synced (a sync
//!    covers every earlier segment first), so nothing acknowledged as durable is lost.
//! 6. What remains is synced, and becomes the new recovery point.
//!
//! Everything found and done is logged. No file content can cause a panic: damage is data.

use super::checkpoint::{self, LogCheckpoint};
use super::config::LogConfig;
use super::segment::{self, Segment};
use crate::env::disk::{Disk, TMP_SUFFIX};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

/// Suffixes of files that only exist mid-operation; a crash can leave them behind.
const LEFTOVER_SUFFIXES: [&str; 4] = [TMP_SUFFIX, ".deleted", ".cleaned", ".swap"];

/// What recovery produced.
pub struct Recovered {
    /// The segments, by base offset; never empty.
    pub segments: BTreeMap<i64, Segment>,
    /// The first offset in the log.
    pub log_start_offset: i64,
    /// The offset after the last batch.
    pub next_offset: i64,
    /// The high watermark the checkpoint kept (a replicated log's), within the log.
    pub high_watermark: Option<i64>,
    /// What recovery found, for logs and tests.
    pub report: RecoveryReport,
}

/// A summary of what recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The recovery point the checkpoint gave (0 without one).
    pub checkpoint_recovery_point: i64,
    /// Whether the checkpoint was damaged.
    pub checkpoint_damaged: bool,
    /// Batches checked in full.
    pub batches_scanned: u64,
    /// Bytes cut off segment ends.
    pub bytes_truncated: u64,
    /// Segments deleted because they were below the log start, after a cut, or past a gap.
    pub segments_deleted: usize,
    /// Leftover and orphan files removed.
    pub files_removed: usize,
}

/// Opens the partition in `dir` (which must exist), recovering it as the module docs say.
pub fn recover(disk: &dyn Disk, dir: &Path, cfg: &LogConfig, now_ms: i64) -> io::Result<Recovered> {
    let mut report = RecoveryReport::default();
    let listing = disk.list_dir(dir)?;
    let mut bases: BTreeSet<i64> = BTreeSet::new();
    let mut index_files: Vec<(i64, String)> = Vec::new();
    for entry in &listing {
        if entry.is_dir {
            continue;
        }
        if LEFTOVER_SUFFIXES.iter().any(|s| entry.name.ends_with(s)) {
            tracing::info!(dir = %dir.display(), file = %entry.name, "removing leftover file");
            disk.remove_file(&dir.join(&entry.name))?;
            report.files_removed += 1;
            continue;
        }
        match segment::parse_file_name(&entry.name) {
            Some((base, segment::LOG_SUFFIX)) => {
                bases.insert(base);
            }
            Some((base, _)) => index_files.push((base, entry.name.clone())),
            None if entry.name == checkpoint::FILE_NAME => {}
            None if entry.name == super::leader_epoch::FILE_NAME => {}
            None => {
                tracing::debug!(dir = %dir.display(), file = %entry.name, "ignoring unknown file")
            }
        }
    }
    for (base, name) in index_files {
        if !bases.contains(&base) {
            tracing::info!(dir = %dir.display(), file = %name, "removing index without a segment");
            disk.remove_file(&dir.join(&name))?;
            report.files_removed += 1;
        }
    }

    let ckpt = match checkpoint::read(disk, dir) {
        Ok(c) => c,
        Err(checkpoint::CheckpointError::Io(e)) => return Err(e),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "checkpoint is damaged; checking the whole log");
            report.checkpoint_damaged = true;
            None
        }
    };
    let LogCheckpoint {
        recovery_point,
        log_start_offset: mut log_start,
        high_watermark,
    } = ckpt.unwrap_or(LogCheckpoint {
        recovery_point: 0,
        log_start_offset: 0,
        high_watermark: None,
    });
    report.checkpoint_recovery_point = recovery_point;

    // Segments wholly below the log start: each one's successor starts at or below it.
    let ordered: Vec<i64> = bases.iter().copied().collect();
    for pair in ordered.windows(2) {
        if pair[1] <= log_start {
            tracing::info!(dir = %dir.display(), base = pair[0], log_start, "deleting segment below the log start");
            delete_segment_files(disk, dir, pair[0])?;
            bases.remove(&pair[0]);
            report.segments_deleted += 1;
        }
    }

    let mut segments: BTreeMap<i64, Segment> = BTreeMap::new();
    let mut expected_next: Option<i64> = None;
    let mut cut = false;
    for base in bases.iter().copied() {
        let broken_chain = match expected_next {
            Some(next) => next != base,
            None => false,
        };
        if cut || broken_chain {
            tracing::warn!(
                dir = %dir.display(), base, expected = ?expected_next,
                "deleting segment after a cut or a gap in offsets"
            );
            delete_segment_files(disk, dir, base)?;
            report.segments_deleted += 1;
            cut = true;
            continue;
        }
        let (seg, outcome) = Segment::open(disk, dir, base, recovery_point, cfg, now_ms)?;
        report.batches_scanned += outcome.batches;
        report.bytes_truncated += outcome.truncated_bytes;
        if outcome.truncated_bytes > 0 {
            cut = true;
            if seg.next_offset() < recovery_point {
                tracing::error!(
                    dir = %dir.display(), base, recovery_point, end = seg.next_offset(),
                    "data below the recovery point was damaged and cut: it had been synced"
                );
            }
        }
        expected_next = Some(seg.next_offset());
        segments.insert(base, seg);
    }

    // An empty segment past a cut is useless; an empty first segment is fine.
    if let Some(first) = segments.keys().next().copied() {
        if first > log_start {
            tracing::info!(dir = %dir.display(), log_start, first, "log start moves to the first segment");
            log_start = first;
        }
    }
    let mut next_offset = segments
        .values()
        .next_back()
        .map_or(log_start, Segment::next_offset);
    if next_offset < log_start || segments.is_empty() {
        if !segments.is_empty() {
            tracing::warn!(dir = %dir.display(), log_start, next_offset, "log ends below its start; starting empty at the log start");
        }
        for base in segments.keys().copied().collect::<Vec<_>>() {
            segments.remove(&base);
            delete_segment_files(disk, dir, base)?;
            report.segments_deleted += 1;
        }
        segments.insert(
            log_start,
            Segment::create(disk, dir, log_start, cfg, now_ms)?,
        );
        next_offset = log_start;
    }
    if recovery_point > next_offset {
        tracing::error!(
            dir = %dir.display(), recovery_point, next_offset,
            "the log ends below its recovery point: data that was synced is gone (a truncation the replication asked for and a crash interrupted, or a disk that lied about fsync)"
        );
    }
    if report != RecoveryReport::default() || recovery_point != next_offset {
        tracing::info!(dir = %dir.display(), ?report, log_start, next_offset, "recovered partition log");
    }
    Ok(Recovered {
        segments,
        log_start_offset: log_start,
        next_offset,
        // A power loss may have taken back records below it (write caching): never past
        // what the log holds.
        high_watermark: high_watermark.map(|h| h.clamp(log_start, next_offset)),
        report,
    })
}

/// Removes a segment's three files, whichever exist.
pub fn delete_segment_files(disk: &dyn Disk, dir: &Path, base: i64) -> io::Result<()> {
    for suffix in [
        segment::LOG_SUFFIX,
        segment::INDEX_SUFFIX,
        segment::TIME_INDEX_SUFFIX,
    ] {
        let path = dir.join(segment::file_name(base, suffix));
        match disk.remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if !disk.exists(&path) => {
                tracing::debug!(path = %path.display(), error = %e, "already gone");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
