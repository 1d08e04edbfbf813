//! The quorum's log as the core holds it: entries at dense offsets from 0, each stamped with
//! the epoch of the leader that wrote it, and the epoch cache (epoch → start offset) derived
//! from them, which Kafka keeps as `leader-epoch-checkpoint` and cuts back with truncation.
//!
//! The core keeps the log in memory from its start: offset 0, or the end offset of the latest
//! snapshot (KIP-630), below which the entries are gone and the snapshot stands for them. The
//! driver holds the durable copy and hands it back at start.

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
    /// The log must start at its snapshot's end offset (or at 0 without a snapshot).
    #[error("the log starts at offset {start}, but its snapshot ends at {snapshot_end}")]
    Gap {
        /// The first entry's offset.
        start: Offset,
        /// Where the snapshot ends (0 without one).
        snapshot_end: Offset,
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
    /// The offset of the first entry kept: 0, or the end offset of the snapshot that stands
    /// for everything below it.
    start: Offset,
    /// The epoch of the entry just below `start` (the snapshot's epoch; 0 when `start` is 0).
    start_epoch: Epoch,
    /// Every entry from `start`; `entries[i].offset == start + i`.
    entries: Vec<Entry>,
    /// (epoch, start offset) for each epoch present, in increasing order of both.
    epochs: Vec<(Epoch, Offset)>,
}

impl RaftLog {
    /// A log of `entries`, checked: dense offsets from 0 and non-decreasing epochs.
    pub fn from_entries(entries: Vec<Entry>) -> Result<RaftLog, LogError> {
        RaftLog::starting_at(
            OffsetAndEpoch {
                offset: 0,
                epoch: 0,
            },
            entries,
        )
    }

    /// A log that starts where the snapshot `start` ends (offset 0, epoch 0 without one),
    /// from `entries` read back from disk: those below the start are dropped (the snapshot
    /// stands for them), the rest must start at `start.offset`, be dense, and have epochs no
    /// lower than the snapshot's and never decreasing.
    pub fn starting_at(start: OffsetAndEpoch, entries: Vec<Entry>) -> Result<RaftLog, LogError> {
        let mut log = RaftLog {
            start: start.offset,
            start_epoch: start.epoch,
            ..RaftLog::default()
        };
        let mut kept = entries
            .into_iter()
            .skip_while(|e| e.offset < start.offset)
            .peekable();
        if let Some(first) = kept.peek()
            && first.offset != start.offset
        {
            return Err(LogError::Gap {
                start: first.offset,
                snapshot_end: start.offset,
            });
        }
        for (index, entry) in kept.enumerate() {
            let expected = start.offset + index as Offset;
            if entry.offset != expected {
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

    /// The first offset the log holds (0, or its snapshot's end offset).
    pub fn start_offset(&self) -> Offset {
        self.start
    }

    /// The log's start with the epoch of the entry below it (the snapshot's id).
    pub fn start(&self) -> OffsetAndEpoch {
        OffsetAndEpoch {
            offset: self.start,
            epoch: self.start_epoch,
        }
    }

    /// The offset the next entry gets (Kafka's log end offset).
    pub fn end_offset(&self) -> Offset {
        self.start + self.entries.len() as Offset
    }

    /// The epoch of the last entry (the snapshot's, if the log holds none past it; 0 if the
    /// log is empty).
    pub fn last_epoch(&self) -> Epoch {
        self.epochs.last().map_or(self.start_epoch, |&(e, _)| e)
    }

    /// The epoch of the entry at `offset - 1`, if the log knows it (the snapshot's at the
    /// start).
    pub fn epoch_before(&self, offset: Offset) -> Option<Epoch> {
        if offset == self.start {
            return Some(self.start_epoch);
        }
        self.entry(offset - 1).map(|e| e.epoch)
    }

    /// The entry at `offset`.
    pub fn entry(&self, offset: Offset) -> Option<&Entry> {
        usize::try_from(offset - self.start)
            .ok()
            .and_then(|i| self.entries.get(i))
    }

    /// The entries in `[from, to)`, clamped to the log.
    pub fn slice(&self, from: Offset, to: Offset) -> &[Entry] {
        let end = self.entries.len();
        let index = |o: Offset| usize::try_from(o - self.start).unwrap_or(0).min(end);
        let (from, to) = (index(from), index(to));
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
        // The first entry past a snapshot starts the cache again, even in the snapshot's
        // epoch: the cache covers the entries the log holds.
        if entry.epoch > self.last_epoch() || self.epochs.is_empty() {
            self.epochs.push((entry.epoch, entry.offset));
        }
        self.entries.push(entry);
    }

    /// Cuts the log back so that `end` is its new end offset, and the epoch cache with it
    /// (never below the start: the snapshot's entries are committed).
    pub fn truncate(&mut self, end: Offset) {
        let end = end.clamp(self.start, self.end_offset());
        self.entries.truncate((end - self.start) as usize);
        while self.epochs.last().is_some_and(|&(_, start)| start >= end) {
            self.epochs.pop();
        }
    }

    /// Drops the entries below `to` (inside the log), which a snapshot now stands for.
    pub fn compact(&mut self, to: Offset) {
        let to = to.clamp(self.start, self.end_offset());
        let Some(epoch) = self.epoch_before(to) else {
            return;
        };
        self.entries.drain(..(to - self.start) as usize);
        self.start = to;
        self.start_epoch = epoch;
        // The epoch holding `to` now starts there; epochs wholly below it are gone.
        let first_kept = self.epochs.partition_point(|&(_, s)| s <= to);
        self.epochs.drain(..first_kept.saturating_sub(1));
        if self.entries.is_empty() {
            self.epochs.clear();
        } else if let Some(first) = self.epochs.first_mut() {
            first.1 = first.1.max(to);
        }
    }

    /// Replaces everything with an empty log starting at the end of snapshot `start` (a
    /// follower installing a snapshot fetched from its leader).
    pub fn reset(&mut self, start: OffsetAndEpoch) {
        *self = RaftLog {
            start: start.offset,
            start_epoch: start.epoch,
            ..RaftLog::default()
        };
    }

    /// Kafka's `endOffsetForEpoch`: the largest epoch in the log that is at most `epoch`, and the
    /// offset where it ends (the next epoch's start, or the log end for the last epoch). If the
    /// log holds no such epoch past its start, the snapshot's epoch ending at the start when
    /// `epoch` is at least that (epoch 0 ending at 0 without a snapshot). Callers check first
    /// that the position is not below the start ([`RaftLog::below_start`]).
    pub fn end_offset_for_epoch(&self, epoch: Epoch) -> OffsetAndEpoch {
        let i = self.epochs.partition_point(|&(e, _)| e <= epoch);
        if i == 0 {
            return OffsetAndEpoch {
                offset: self.start,
                epoch: if epoch >= self.start_epoch {
                    self.start_epoch
                } else {
                    0
                },
            };
        }
        let end = self.epochs.get(i).map_or(self.end_offset(), |&(_, s)| s);
        OffsetAndEpoch {
            offset: end,
            epoch: self.epochs[i - 1].0,
        }
    }

    /// Kafka's `validateOffsetAndEpoch` snapshot case: a fetch position (`offset`, and the
    /// epoch of the entry before it) that this log cannot answer from its entries because it
    /// lies at or below the start in another history, so the fetcher needs the snapshot.
    pub fn below_start(&self, offset: Offset, epoch: Epoch) -> bool {
        self.start > 0
            && (offset < self.start
                || (offset == self.start && epoch != self.start_epoch)
                || epoch < self.start_epoch)
    }

    /// The epoch cache: (epoch, start offset) per epoch present.
    pub fn epochs(&self) -> &[(Epoch, Offset)] {
        &self.epochs
    }
}

/// A snapshot of the application's state (KIP-630): everything the log held below `id.offset`,
/// whose last entry had epoch `id.epoch`, as the application serialised it. Opaque to the
/// core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Its end offset and epoch (Kafka's `OffsetAndEpoch` snapshot id).
    pub id: OffsetAndEpoch,
    /// The application's bytes.
    pub data: Bytes,
}
