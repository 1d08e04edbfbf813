//! The quorum's log as the core holds it: entries at dense offsets from 0, each stamped with
//! the epoch of the leader that wrote it, and the epoch cache (epoch → start offset) derived
//! from them, which Kafka keeps as `leader-epoch-checkpoint` and cuts back with truncation.
//!
//! The core keeps the whole log in memory (a metadata log is small, and snapshots, which would
//! bound it, are not built yet); the driver holds the durable copy and hands it back at start.

use super::NodeId;
use bytes::Bytes;
use thiserror::Error;

/// A position in the log (Raft's index, Kafka's offset).
pub type Offset = i64;
/// A leader epoch (Raft's term, the batch's `partitionLeaderEpoch`). Epoch 0 has no leader: the
/// first election makes epoch 1, so every entry has an epoch of at least 1.
pub type Epoch = i32;

/// What an entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A record batch proposed by the application; the payload is opaque to the core.
    Data,
    /// The control record a new leader writes first in its epoch (Kafka's
    /// `LeaderChangeMessage`): the high watermark may pass the epoch's start only once it is
    /// committed, so a leader never commits an older epoch's entries by counting alone.
    LeaderChange {
        /// The leader that wrote it.
        leader_id: NodeId,
    },
}

/// One entry of the log; later a RecordBatch v2 of `__cluster_metadata-0` whose base offset is
/// `offset` and whose partition leader epoch is `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its position in the log.
    pub offset: Offset,
    /// The epoch of the leader that appended it.
    pub epoch: Epoch,
    /// Data or control.
    pub kind: EntryKind,
    /// The application's bytes (empty for control entries).
    pub payload: Bytes,
}

/// An offset with the epoch it belongs to: `end_offset_for_epoch`'s answer, and Kafka's
/// `OffsetAndEpoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAndEpoch {
    /// The offset.
    pub offset: Offset,
    /// The epoch.
    pub epoch: Epoch,
}

/// Why a log handed to the core at start cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LogError {
    /// Offsets must start at 0 and be dense.
    #[error("entry {index} has offset {offset}, expected {index}")]
    OffsetGap {
        /// Its position in the list.
        index: usize,
        /// The offset it carries.
        offset: Offset,
    },
    /// Epochs must be at least 1 and never decrease along the log.
    #[error("entry at offset {offset} has epoch {epoch} after epoch {previous}")]
    EpochOrder {
        /// The entry's offset.
        offset: Offset,
        /// Its epoch.
        epoch: Epoch,
        /// The epoch of the entry before it (0 for the first).
        previous: Epoch,
    },
}

/// The log and its epoch cache.
#[derive(Debug, Clone, Default)]
pub struct RaftLog {
    /// Every entry; `entries[i].offset == i`.
    entries: Vec<Entry>,
    /// (epoch, start offset) for each epoch present, in increasing order of both.
    epochs: Vec<(Epoch, Offset)>,
}

impl RaftLog {
    /// A log of `entries`, checked: dense offsets from 0 and non-decreasing epochs.
    pub fn from_entries(entries: Vec<Entry>) -> Result<RaftLog, LogError> {
        let mut log = RaftLog::default();
        for (index, entry) in entries.into_iter().enumerate() {
            if entry.offset != index as Offset {
                return Err(LogError::OffsetGap {
                    index,
                    offset: entry.offset,
                });
            }
            let previous = log.last_epoch();
            if entry.epoch < previous.max(1) {
                return Err(LogError::EpochOrder {
                    offset: entry.offset,
                    epoch: entry.epoch,
                    previous,
                });
            }
            log.append(entry);
        }
        Ok(log)
    }

    /// The offset the next entry gets (Kafka's log end offset).
    pub fn end_offset(&self) -> Offset {
        self.entries.len() as Offset
    }

    /// The epoch of the last entry, 0 if the log is empty.
    pub fn last_epoch(&self) -> Epoch {
        self.epochs.last().map_or(0, |&(e, _)| e)
    }

    /// The entry at `offset`.
    pub fn entry(&self, offset: Offset) -> Option<&Entry> {
        usize::try_from(offset)
            .ok()
            .and_then(|i| self.entries.get(i))
    }

    /// The entries in `[from, to)`, clamped to the log.
    pub fn slice(&self, from: Offset, to: Offset) -> &[Entry] {
        let end = self.entries.len();
        let from = usize::try_from(from).unwrap_or(0).min(end);
        let to = usize::try_from(to).unwrap_or(0).min(end);
        &self.entries[from..to.max(from)]
    }

    /// Entries from `from` whose payloads add up to at most `max_bytes`, but always at least one
    /// if there is one, so a fetch always makes progress.
    pub fn read(&self, from: Offset, max_bytes: usize) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for e in self.slice(from, self.end_offset()) {
            bytes = bytes.saturating_add(e.payload.len());
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(e.clone());
        }
        out
    }

    /// Appends `entry` at the end; it must carry the next offset and an epoch no lower than the
    /// last one (callers check entries from the network before they get here).
    pub fn append(&mut self, entry: Entry) {
        assert_eq!(entry.offset, self.end_offset(), "append at a wrong offset");
        assert!(entry.epoch >= self.last_epoch().max(1), "epoch went back");
        if entry.epoch > self.last_epoch() {
            self.epochs.push((entry.epoch, entry.offset));
        }
        self.entries.push(entry);
    }

    /// Cuts the log back so that `end` is its new end offset, and the epoch cache with it.
    pub fn truncate(&mut self, end: Offset) {
        let end = end.clamp(0, self.end_offset());
        self.entries.truncate(end as usize);
        while self.epochs.last().is_some_and(|&(_, start)| start >= end) {
            self.epochs.pop();
        }
    }

    /// Kafka's `endOffsetForEpoch`: the largest epoch in the log that is at most `epoch`, and the
    /// offset where it ends (the next epoch's start, or the log end for the last epoch). If the
    /// log holds no such epoch, epoch 0 ending where the log's first epoch starts (0).
    pub fn end_offset_for_epoch(&self, epoch: Epoch) -> OffsetAndEpoch {
        let i = self.epochs.partition_point(|&(e, _)| e <= epoch);
        if i == 0 {
            // The log starts at 0 (no snapshots yet), so the first epoch does too.
            return OffsetAndEpoch {
                offset: 0,
                epoch: 0,
            };
        }
        let end = self.epochs.get(i).map_or(self.end_offset(), |&(_, s)| s);
        OffsetAndEpoch {
            offset: end,
            epoch: self.epochs[i - 1].0,
        }
    }

    /// The epoch cache: (epoch, start offset) per epoch present.
    pub fn epochs(&self) -> &[(Epoch, Offset)] {
        &self.epochs
    }
}
