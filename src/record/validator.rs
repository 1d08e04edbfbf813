//! What a leader does to a producer's batches before it appends them, as Kafka's
//! `LogValidator` does for magic v2:
//!
//! - with `message.timestamp.type=CreateTime`, every record's timestamp must lie within
//!   `message.timestamp.before.max.ms` before and `message.timestamp.after.max.ms` after the
//!   broker's clock; each record outside is named (INVALID_TIMESTAMP, `record_errors`), and a
//!   batch a producer marked LogAppendTime is refused;
//! - a `compression.type` other than `producer` recompresses each batch whose codec differs,
//!   keeping its records byte for byte (offsets deltas, timestamps, headers) and its producer
//!   id, epoch and sequence, so idempotence holds across it;
//! - with `LogAppendTime`, each batch is marked so and its max timestamp set to the broker's
//!   clock, which consumers then report for every record.
//!
//! Everything is checked before anything is changed: a refused set is left as it came.

use super::batch::{
    self, ATTR_COMPRESSION_MASK, ATTR_LOG_APPEND_TIME, BatchError, BatchHeader, HEADER_LEN,
    LOG_OVERHEAD, NO_TIMESTAMP, RecordError, RecordIter, ValidBatch, field,
};
use super::compression::{self, Compression};

/// A topic's rules for what its leader stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// `compression.type`: the codec stored batches have; None keeps the producer's.
    pub compression: Option<Compression>,
    /// `compression.gzip.level` (-1: the codec's default).
    pub gzip_level: i32,
    /// `message.timestamp.type=LogAppendTime`.
    pub log_append_time: bool,
    /// `message.timestamp.before.max.ms`.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`.
    pub timestamp_after_max_ms: i64,
}

impl Rules {
    /// Kafka's defaults: batches kept as sent, any CreateTime timestamp.
    pub const DEFAULT: Rules = Rules {
        compression: None,
        gzip_level: -1,
        log_append_time: false,
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: i64::MAX,
    };
}

impl Default for Rules {
    fn default() -> Self {
        Rules::DEFAULT
    }
}

/// Applies `rules` to `records`, a record set already checked whole by
/// [`batch::validate_record_set`] into `batches`, at broker time `now_ms`. Returns the batches
/// as they now lie in `records` (rebuilt when a batch was recompressed). `batch_bytes_max` is
/// checked again on recompressed batches, which may grow.
pub fn apply(
    records: &mut Vec<u8>,
    batches: Vec<ValidBatch>,
    rules: &Rules,
    now_ms: i64,
    batch_bytes_max: usize,
) -> Result<Vec<ValidBatch>, BatchError> {
    check_timestamps(records, &batches, rules, now_ms)?;
    let recompress = |h: &BatchHeader| -> Result<Option<Compression>, BatchError> {
        let source = h.compression()?;
        Ok(rules.compression.filter(|target| *target != source))
    };
    let mut any_recompressed = false;
    for b in &batches {
        any_recompressed |= recompress(&b.header)?.is_some();
    }
    if !any_recompressed {
        if !rules.log_append_time {
            return Ok(batches);
        }
        // In place: attributes and max timestamp, then the CRC they are under.
        let mut out = Vec::with_capacity(batches.len());
        for b in batches {
            let len = b.header.total_len();
            let bytes = &mut records[b.position..b.position + len];
            stamp_log_append_time(bytes, now_ms);
            out.push(ValidBatch {
                header: BatchHeader::parse(bytes)?,
                position: b.position,
            });
        }
        return Ok(out);
    }
    let mut rebuilt = Vec::with_capacity(records.len());
    let mut out = Vec::with_capacity(batches.len());
    for b in &batches {
        let bytes = &records[b.position..b.position + b.header.total_len()];
        let position = rebuilt.len();
        match recompress(&b.header)? {
            None => rebuilt.extend_from_slice(bytes),
            Some(target) => {
                let body = batch::records_body(&b.header, bytes)?;
                let packed = compression::compress(target, &body, rules.gzip_level);
                rebuilt.extend_from_slice(&bytes[..HEADER_LEN]);
                rebuilt.extend_from_slice(&packed);
                let new = &mut rebuilt[position..];
                let length =
                    i32::try_from(new.len() - LOG_OVERHEAD).map_err(|_| BatchError::TooLarge {
                        size: new.len(),
                        max: batch_bytes_max,
                    })?;
                new[field::LENGTH..field::LENGTH + 4].copy_from_slice(&length.to_be_bytes());
                let attributes =
                    (b.header.attributes & !ATTR_COMPRESSION_MASK) | target.attribute_bits();
                new[field::ATTRIBUTES..field::ATTRIBUTES + 2]
                    .copy_from_slice(&attributes.to_be_bytes());
                set_crc(new);
            }
        }
        let new = &mut rebuilt[position..];
        if new.len() > batch_bytes_max {
            return Err(BatchError::TooLarge {
                size: new.len(),
                max: batch_bytes_max,
            });
        }
        if rules.log_append_time {
            stamp_log_append_time(new, now_ms);
        }
        out.push(ValidBatch {
            header: BatchHeader::parse(new)?,
            position,
        });
    }
    *records = rebuilt;
    Ok(out)
}

/// Kafka's `validateTimestamp` for every record: CreateTime within the bounds; no producer
/// may mark a batch LogAppendTime.
fn check_timestamps(
    records: &[u8],
    batches: &[ValidBatch],
    rules: &Rules,
    now_ms: i64,
) -> Result<(), BatchError> {
    let unbounded =
        rules.timestamp_before_max_ms == i64::MAX && rules.timestamp_after_max_ms == i64::MAX;
    let marked = batches.iter().any(|b| b.header.is_log_append_time());
    if (unbounded || rules.log_append_time) && !marked {
        return Ok(());
    }
    let min = now_ms.saturating_sub(rules.timestamp_before_max_ms);
    let max = now_ms.saturating_add(rules.timestamp_after_max_ms);
    let mut errors = Vec::new();
    let mut index = 0;
    for b in batches {
        let bytes = &records[b.position..b.position + b.header.total_len()];
        let body = batch::records_body(&b.header, bytes)?;
        for r in RecordIter::new(&b.header, &body) {
            let r = r?;
            let out_of_range = !rules.log_append_time
                && r.timestamp != NO_TIMESTAMP
                && (r.timestamp < min || r.timestamp > max);
            if out_of_range {
                errors.push(RecordError {
                    index,
                    message: format!(
                        "Timestamp {} of message with offset {} is out of range. The \
                             timestamp should be within [{min}, {max}]",
                        r.timestamp, r.offset_delta
                    ),
                });
            } else if b.header.is_log_append_time() {
                errors.push(RecordError {
                    index,
                    message: format!(
                        "Invalid timestamp type in message with offset {}. Producer should \
                         not set timestamp type to LogAppendTime.",
                        r.offset_delta
                    ),
                });
            }
            index += 1;
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(BatchError::RecordTimestamps(errors))
    }
}

/// Marks one whole batch LogAppendTime at `now_ms` and fixes its CRC.
fn stamp_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = i16::from_be_bytes([batch[field::ATTRIBUTES], batch[field::ATTRIBUTES + 1]])
        | ATTR_LOG_APPEND_TIME;
    batch[field::ATTRIBUTES..field::ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[field::MAX_TIMESTAMP..field::MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    set_crc(batch);
}

fn set_crc(batch: &mut [u8]) {
    let crc = batch::compute_crc(batch);
    batch[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests;
