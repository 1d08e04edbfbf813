//! The partition's checkpoint file, `partition.checkpoint`: the recovery point (every batch
//! below it was synced, so recovery need not check it), the log start offset (records below
//! it were deleted by retention) and, for a replicated partition, the high watermark
//! replication had set (Kafka keeps it in `replication-offset-checkpoint`). One
//! [`crate::codec`] frame, version 2, written atomically; version 1 (no high watermark) is
//! still read.

use crate::codec;
use crate::env::disk::{Disk, FileMode, read_exact_at, write_atomic};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::Path;

/// The checkpoint's file name inside the partition directory.
pub const FILE_NAME: &str = "partition.checkpoint";
/// The schema version written.
const VERSION: u16 = 2;
/// Largest checkpoint file accepted.
const FILE_BYTES_MAX: usize = 4096;

/// What the checkpoint records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCheckpoint {
    /// Every batch below this offset had been synced when the checkpoint was written.
    pub recovery_point: i64,
    /// The first offset still in the log.
    pub log_start_offset: i64,
    /// The high watermark replication set, if it manages this log: every offset below it was
    /// committed (on the in-sync replicas), so a replica that restarts knows it at once
    /// instead of learning it again from its leader or followers.
    pub high_watermark: Option<i64>,
}

/// Version 1, before the high watermark.
#[derive(Deserialize)]
struct LogCheckpointV1 {
    recovery_point: i64,
    log_start_offset: i64,
}

/// Why a checkpoint file was not usable.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("damaged: {0}")]
    Damaged(String),
}

/// Decodes a checkpoint file's bytes. Pure, so it can be fuzzed.
pub fn decode(bytes: &[u8]) -> Result<LogCheckpoint, CheckpointError> {
    let frame = codec::read_frame(bytes, FILE_BYTES_MAX)
        .map_err(|e| CheckpointError::Damaged(e.to_string()))?;
    if frame.len != bytes.len() {
        return Err(CheckpointError::Damaged(format!(
            "{} bytes after the frame",
            bytes.len() - frame.len
        )));
    }
    let damaged = |e: codec::FrameError| CheckpointError::Damaged(e.to_string());
    let c: LogCheckpoint = match frame.version {
        1 => {
            let v1: LogCheckpointV1 = codec::decode_payload(&frame).map_err(damaged)?;
            LogCheckpoint {
                recovery_point: v1.recovery_point,
                log_start_offset: v1.log_start_offset,
                high_watermark: None,
            }
        }
        VERSION => codec::decode_payload(&frame).map_err(damaged)?,
        v => return Err(CheckpointError::Damaged(format!("unknown version {v}"))),
    };
    if c.recovery_point < 0 || c.log_start_offset < 0 || c.high_watermark.is_some_and(|h| h < 0) {
        return Err(CheckpointError::Damaged(format!(
            "negative offsets in {c:?}"
        )));
    }
    Ok(c)
}

/// Reads the checkpoint in `dir`; None if there is none.
pub fn read(disk: &dyn Disk, dir: &Path) -> Result<Option<LogCheckpoint>, CheckpointError> {
    let path = dir.join(FILE_NAME);
    if !disk.exists(&path) {
        return Ok(None);
    }
    let file = disk.open(&path, FileMode::Read)?;
    let len = file.len()?;
    if len as usize > FILE_BYTES_MAX {
        return Err(CheckpointError::Damaged(format!(
            "{len} bytes is too large"
        )));
    }
    let mut buf = vec![0u8; len as usize];
    read_exact_at(&*file, &mut buf, 0)?;
    decode(&buf).map(Some)
}

/// Writes the checkpoint in `dir` atomically and durably; returns the bytes written.
pub async fn write(disk: &dyn Disk, dir: &Path, c: &LogCheckpoint) -> io::Result<Vec<u8>> {
    let bytes = codec::encode(VERSION, c);
    write_atomic(disk, &dir.join(FILE_NAME), &bytes).await?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MemDisk;
    use crate::env::disk::create_dir_durable;

    #[tokio::test]
    async fn write_then_read() {
        let disk = MemDisk::new();
        let dir = Path::new("/p");
        create_dir_durable(&disk, dir).await.unwrap();
        assert!(read(&disk, dir).unwrap().is_none());
        let c = LogCheckpoint {
            recovery_point: 77,
            log_start_offset: 5,
            high_watermark: Some(70),
        };
        write(&disk, dir, &c).await.unwrap();
        disk.crash(None, 1);
        assert_eq!(read(&disk, dir).unwrap(), Some(c));
        disk.write_file_durable(&dir.join(FILE_NAME), b"garbage!garbage!");
        assert!(matches!(read(&disk, dir), Err(CheckpointError::Damaged(_))));
    }

    /// A version 1 checkpoint (written before the high watermark was kept) still reads, as
    /// one without a high watermark; a negative high watermark is damage.
    #[test]
    fn version_1_still_reads_and_a_negative_high_watermark_is_damage() {
        #[derive(Serialize)]
        struct V1 {
            recovery_point: i64,
            log_start_offset: i64,
        }
        let old = codec::encode(
            1,
            &V1 {
                recovery_point: 9,
                log_start_offset: 3,
            },
        );
        let c = decode(&old).unwrap();
        assert_eq!(
            c,
            LogCheckpoint {
                recovery_point: 9,
                log_start_offset: 3,
                high_watermark: None
            }
        );
        let bad = codec::encode(
            VERSION,
            &LogCheckpoint {
                recovery_point: 9,
                log_start_offset: 3,
                high_watermark: Some(-4),
            },
        );
        assert!(matches!(decode(&bad), Err(CheckpointError::Damaged(_))));
        assert!(matches!(
            decode(&codec::encode(3, &c)),
            Err(CheckpointError::Damaged(_))
        ));
    }
}
