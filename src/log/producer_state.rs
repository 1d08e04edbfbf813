//! Idempotent producers' state in one partition: per producer id, the epoch and the last
//! [`BATCHES_PER_PRODUCER`] batches' sequence numbers and offsets. It decides, before an
//! append, whether a batch is the next in sequence, a retry of one already written (answered
//! with the offsets it was first given), or an error:
//!
//! - a batch from an epoch older than the producer's current one: INVALID_PRODUCER_EPOCH;
//! - the first batch of a newer epoch must have sequence 0: else OUT_OF_ORDER_SEQUENCE_NUMBER;
//! - a sequence that is not the last one plus one: OUT_OF_ORDER_SEQUENCE_NUMBER;
//! - a producer this partition does not know, with a sequence other than 0: UNKNOWN_PRODUCER_ID
//!   (its state expired, or retention deleted its batches).
//!
//! The state is rebuilt on recovery from a snapshot (`<offset>.snapshot`) plus the batches
//! after it; see [`ProducerStates::replay`].

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Batches remembered per producer: Kafka's window for `max.in.flight.requests.per.connection=5`.
pub const BATCHES_PER_PRODUCER: usize = 5;

/// One appended batch of an idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// What the partition knows of one producer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    /// The producer's current epoch.
    pub epoch: i16,
    /// The last batches, oldest first.
    pub batches: VecDeque<BatchMeta>,
    /// Wall-clock time of the last append, for `producer.id.expiration.ms`.
    pub last_timestamp_ms: i64,
}

impl ProducerEntry {
    fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }

    fn last_offset(&self) -> Option<i64> {
        self.batches.back().map(|b| b.last_offset)
    }
}

/// Why a batch of an idempotent producer is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    InvalidEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error(
        "producer {producer_id} epoch {epoch}: sequence {first_seq} does not follow {expected}"
    )]
    OutOfOrder {
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        expected: String,
    },
    #[error(
        "producer {producer_id} is unknown to this partition (expired or deleted by retention); sequence {first_seq} is not 0"
    )]
    UnknownProducer { producer_id: i64, first_seq: i32 },
    #[error(
        "producer {producer_id} sent epoch {epoch} and sequence {first_seq}: both must be non-negative"
    )]
    InvalidFields {
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
    },
}

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Append it.
    Append,
    /// It was already written: answer with these offsets, write nothing.
    Duplicate(BatchMeta),
}

/// The sequence number `delta` after `seq`, wrapping at `i32::MAX` as Kafka does.
pub fn seq_add(seq: i32, delta: i32) -> i32 {
    if seq > i32::MAX - delta {
        delta - (i32::MAX - seq) - 1
    } else {
        seq + delta
    }
}

/// Every producer's state in one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStates {
    /// By producer id.
    producers: BTreeMap<i64, ProducerEntry>,
}

impl ProducerStates {
    /// Number of producers known.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is known.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The entry of one producer.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Each producer's last batch, by producer id (what the probe declares after recovery).
    pub fn summary(&self) -> Vec<crate::env::probe::ProducerSummary> {
        self.producers
            .iter()
            .filter_map(|(id, e)| {
                let last = e.batches.back()?;
                Some(crate::env::probe::ProducerSummary {
                    producer_id: *id,
                    epoch: e.epoch,
                    last_seq: last.last_seq,
                    last_offset: last.last_offset,
                })
            })
            .collect()
    }

    /// Decides what to do with a batch of `records` records from an idempotent producer.
    pub fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        records: i32,
    ) -> Result<Verdict, ProducerError> {
        if epoch < 0 || first_seq < 0 {
            return Err(ProducerError::InvalidFields {
                producer_id,
                epoch,
                first_seq,
            });
        }
        let last_seq = seq_add(first_seq, records - 1);
        let Some(entry) = self.producers.get(&producer_id) else {
            return if first_seq == 0 {
                Ok(Verdict::Append)
            } else {
                Err(ProducerError::UnknownProducer {
                    producer_id,
                    first_seq,
                })
            };
        };
        if epoch < entry.epoch {
            return Err(ProducerError::InvalidEpoch {
                producer_id,
                epoch,
                current: entry.epoch,
            });
        }
        if epoch > entry.epoch {
            return if first_seq == 0 {
                Ok(Verdict::Append)
            } else {
                Err(ProducerError::OutOfOrder {
                    producer_id,
                    epoch,
                    first_seq,
                    expected: "0 (the first batch of a new epoch)".into(),
                })
            };
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Ok(Verdict::Duplicate(*dup));
        }
        match entry.last_seq() {
            Some(last) if seq_add(last, 1) == first_seq => Ok(Verdict::Append),
            // An entry whose batches are gone (never here: entries keep at least one).
            None => Ok(Verdict::Append),
            Some(last) => Err(ProducerError::OutOfOrder {
                producer_id,
                epoch,
                first_seq,
                expected: format!("{}", seq_add(last, 1)),
            }),
        }
    }

    /// Records an appended batch (checked by [`ProducerStates::check`], or replayed from the
    /// log on recovery, where it is trusted).
    pub fn record(&mut self, producer_id: i64, epoch: i16, meta: BatchMeta, now_ms: i64) {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_timestamp_ms: now_ms,
            });
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(meta);
        while entry.batches.len() > BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.last_timestamp_ms = entry.last_timestamp_ms.max(now_ms);
    }

    /// Replays one stored batch header into the state (recovery).
    pub fn replay(&mut self, header: &crate::record::batch::BatchHeader, now_ms: i64) {
        if header.producer_id < 0 || header.base_sequence < 0 || header.producer_epoch < 0 {
            return;
        }
        let meta = BatchMeta {
            first_seq: header.base_sequence,
            last_seq: seq_add(header.base_sequence, header.last_offset_delta),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
        };
        self.record(header.producer_id, header.producer_epoch, meta, now_ms);
    }

    /// Forgets producers whose last batch lies below `log_start` (retention deleted it), as
    /// Kafka does: their next batch with a sequence other than 0 gets UNKNOWN_PRODUCER_ID.
    pub fn expire_below(&mut self, log_start: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| e.last_offset().is_some_and(|o| o >= log_start));
        before - self.producers.len()
    }

    /// Forgets producers idle for longer than `expiration_ms` (`producer.id.expiration.ms`).
    pub fn expire_idle(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_timestamp_ms) <= expiration_ms);
        before - self.producers.len()
    }

    /// Forgets batches at or past `offset` (the log was cut there), and producers left with
    /// none.
    pub fn truncate_to(&mut self, offset: i64) {
        for e in self.producers.values_mut() {
            e.batches.retain(|b| b.last_offset < offset);
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(first_seq: i32, n: i32, first_offset: i64) -> BatchMeta {
        BatchMeta {
            first_seq,
            last_seq: seq_add(first_seq, n - 1),
            first_offset,
            last_offset: first_offset + i64::from(n) - 1,
        }
    }

    #[test]
    fn sequence_rules() {
        let mut s = ProducerStates::default();
        assert_eq!(s.check(7, 0, 0, 3), Ok(Verdict::Append));
        assert!(matches!(
            s.check(7, 0, 5, 3),
            Err(ProducerError::UnknownProducer { .. })
        ));
        s.record(7, 0, meta(0, 3, 100), 1);
        // Next in sequence, a gap, a retry of the last batch.
        assert_eq!(s.check(7, 0, 3, 2), Ok(Verdict::Append));
        assert!(matches!(
            s.check(7, 0, 4, 2),
            Err(ProducerError::OutOfOrder { .. })
        ));
        assert_eq!(s.check(7, 0, 0, 3), Ok(Verdict::Duplicate(meta(0, 3, 100))));
        // A retry with a different batch boundary is not the same batch.
        assert!(matches!(
            s.check(7, 0, 0, 2),
            Err(ProducerError::OutOfOrder { .. })
        ));
        // Epochs: older is fenced, newer must start at 0.
        assert!(matches!(
            s.check(7, -1, 0, 1),
            Err(ProducerError::InvalidFields { .. })
        ));
        s.record(7, 2, meta(0, 1, 110), 2);
        assert!(matches!(
            s.check(7, 1, 3, 1),
            Err(ProducerError::InvalidEpoch { current: 2, .. })
        ));
        assert!(matches!(
            s.check(7, 3, 1, 1),
            Err(ProducerError::OutOfOrder { .. })
        ));
        assert_eq!(s.check(7, 3, 0, 1), Ok(Verdict::Append));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        for i in 0..8 {
            s.record(1, 0, meta(i, 1, i64::from(i)), 0);
        }
        assert_eq!(s.get(1).unwrap().batches.len(), BATCHES_PER_PRODUCER);
        assert!(matches!(s.check(1, 0, 7, 1), Ok(Verdict::Duplicate(_))));
        assert!(matches!(s.check(1, 0, 3, 1), Ok(Verdict::Duplicate(_))));
        assert!(matches!(
            s.check(1, 0, 2, 1),
            Err(ProducerError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(seq_add(i32::MAX, 1), 0);
        assert_eq!(seq_add(i32::MAX - 1, 3), 1);
        let mut s = ProducerStates::default();
        s.record(1, 0, meta(i32::MAX - 2, 3, 0), 0);
        assert_eq!(s.check(1, 0, 0, 1), Ok(Verdict::Append));
    }

    #[test]
    fn expiry_and_truncation() {
        let mut s = ProducerStates::default();
        s.record(1, 0, meta(0, 2, 10), 100);
        s.record(2, 0, meta(0, 2, 50), 200);
        assert_eq!(s.expire_below(20), 1);
        assert!(s.get(1).is_none() && s.get(2).is_some());
        assert_eq!(s.expire_idle(250, 60), 0);
        assert_eq!(s.expire_idle(261, 60), 1);
        s.record(3, 0, meta(0, 1, 70), 0);
        s.record(3, 0, meta(1, 1, 71), 0);
        s.truncate_to(71);
        assert_eq!(s.get(3).unwrap().batches.len(), 1);
        s.truncate_to(60);
        assert!(s.is_empty());
    }
}
