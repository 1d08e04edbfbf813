//! Kafka RecordBatch v2 (magic 2): the unit runnel stores, byte for byte as a producer sent it.
//!
//! ```text
//! offset  size  field
//!      0     8  baseOffset            (written by the broker; not covered by the CRC)
//!      8     4  batchLength           (bytes after this field)
//!     12     4  partitionLeaderEpoch  (written by the broker; not covered by the CRC)
//!     16     1  magic = 2
//!     17     4  crc                   (CRC-32C of bytes 21..end)
//!     21     2  attributes            (bits 0-2 compression, 3 timestamp type,
//!                                      4 transactional, 5 control)
//!     23     4  lastOffsetDelta
//!     27     8  baseTimestamp
//!     35     8  maxTimestamp
//!     43     8  producerId
//!     51     2  producerEpoch
//!     53     4  baseSequence
//!     57     4  recordsCount
//!     61     -  records (compressed as a whole when the codec is not none)
//! ```
//!
//! All integers are big-endian. Records use zig-zag varints (see [`RecordIter`]).
//! `docs/formats.md` has the whole layout with the record format.

use super::compression;
pub use super::compression::Compression;
use std::borrow::Cow;

/// Bytes before the records: the fixed batch header.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength` counts: baseOffset and batchLength themselves.
pub const LOG_OVERHEAD: usize = 12;
/// The only record format runnel accepts.
pub const MAGIC_V2: i8 = 2;
/// The smallest legal `batchLength`: a header with no records.
pub const BATCH_LENGTH_MIN: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;
/// A timestamp of -1 means "none".
pub const NO_TIMESTAMP: i64 = -1;
/// Upper bound on a compressed batch's records once decompressed, so a small "zip bomb" cannot
/// make the broker allocate without limit.
pub const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

/// Byte positions of the header fields.
pub mod field {
    pub const BASE_OFFSET: usize = 0;
    pub const LENGTH: usize = 8;
    pub const PARTITION_LEADER_EPOCH: usize = 12;
    pub const MAGIC: usize = 16;
    pub const CRC: usize = 17;
    pub const ATTRIBUTES: usize = 21;
    pub const LAST_OFFSET_DELTA: usize = 23;
    pub const BASE_TIMESTAMP: usize = 27;
    pub const MAX_TIMESTAMP: usize = 35;
    pub const PRODUCER_ID: usize = 43;
    pub const PRODUCER_EPOCH: usize = 51;
    pub const BASE_SEQUENCE: usize = 53;
    pub const RECORDS_COUNT: usize = 57;
}

pub(crate) const ATTR_COMPRESSION_MASK: i16 = 0x07;
pub(crate) const ATTR_LOG_APPEND_TIME: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// Why a batch is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch truncated: needs {needed} bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("batch length {0} is below the minimum of {BATCH_LENGTH_MIN}")]
    LengthTooSmall(i32),
    #[error("unsupported magic byte {0}: only record batch v2 is accepted")]
    BadMagic(i8),
    #[error("CRC mismatch: the header says {stored:#010x}, the bytes give {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("the batch has no records")]
    Empty,
    #[error("records count {count} does not match last offset delta {last_offset_delta}")]
    CountMismatch { count: i32, last_offset_delta: i32 },
    #[error("record {index}: {reason}")]
    BadRecord { index: usize, reason: &'static str },
    #[error("{0} bytes after the last record")]
    TrailingBytes(usize),
    #[error("unknown compression codec {0}")]
    UnknownCompression(i16),
    #[error("{codec} decompression failed: {reason}")]
    Decompression { codec: &'static str, reason: String },
    #[error("decompressed records exceed {DECOMPRESSED_BYTES_MAX} bytes")]
    DecompressedTooLarge,
    #[error("invalid timestamp {0}")]
    BadTimestamp(i64),
    #[error("max timestamp {header} in the header, but the records' maximum is {records}")]
    MaxTimestampMismatch { header: i64, records: i64 },
    #[error("control batches cannot be produced")]
    ControlBatch,
    #[error("transactional batches are not supported")]
    Transactional,
    #[error("batch of {size} bytes exceeds the maximum of {max}")]
    TooLarge { size: usize, max: usize },
    #[error("base offset {0} is negative or overflows")]
    BadOffset(i64),
    #[error("{} record(s) rejected for their timestamps, the first: {}", .0.len(), .0.first().map_or("", |e| e.message.as_str()))]
    RecordTimestamps(Vec<RecordError>),
}

/// One record a per-record check refused (Produce's `record_errors`, as Kafka's validator
/// reports them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// The record's index in the record set the producer sent.
    pub index: usize,
    /// Why.
    pub message: String,
}

/// The fixed header of a v2 batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

impl BatchHeader {
    /// Parses the header at the start of `buf`, checking only what is needed to know the batch's
    /// extent: the length is sane and the magic is 2. `buf` may hold less than the whole batch.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        }
        let batch_length = be_i32(buf, field::LENGTH);
        if batch_length < BATCH_LENGTH_MIN {
            return Err(BatchError::LengthTooSmall(batch_length));
        }
        let magic = buf[field::MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::BadMagic(magic));
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, field::BASE_OFFSET),
            batch_length,
            partition_leader_epoch: be_i32(buf, field::PARTITION_LEADER_EPOCH),
            magic,
            crc: be_i32(buf, field::CRC) as u32,
            attributes: be_i16(buf, field::ATTRIBUTES),
            last_offset_delta: be_i32(buf, field::LAST_OFFSET_DELTA),
            base_timestamp: be_i64(buf, field::BASE_TIMESTAMP),
            max_timestamp: be_i64(buf, field::MAX_TIMESTAMP),
            producer_id: be_i64(buf, field::PRODUCER_ID),
            producer_epoch: be_i16(buf, field::PRODUCER_EPOCH),
            base_sequence: be_i32(buf, field::BASE_SEQUENCE),
            records_count: be_i32(buf, field::RECORDS_COUNT),
        })
    }

    /// The whole batch's size in bytes, header included.
    pub fn total_len(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }

    /// The offset of the batch's last record (as the base offset field says).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// The offset after the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// The batch's compression codec, if known.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_attributes(self.attributes)
    }

    /// Whether the timestamps are the broker's append time rather than the producer's.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// Whether the batch is a control batch (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
}

/// The CRC-32C a batch should carry: over everything from the attributes to the end.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[field::ATTRIBUTES..])
}

/// Checks a whole stored batch (`batch` is exactly one batch): header, extent and CRC. This is
/// what reads and recovery verify; it does not look inside the records.
pub fn check_integrity(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if batch.len() < header.total_len() {
        return Err(BatchError::Truncated {
            needed: header.total_len(),
            available: batch.len(),
        });
    }
    let computed = compute_crc(&batch[..header.total_len()]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(header)
}

/// What validation learned about a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidBatch {
    /// The parsed header.
    pub header: BatchHeader,
    /// Where the batch starts in the record set it came in.
    pub position: usize,
}

/// Validates everything a producer sent for one partition: a record set of one or more v2
/// batches, each within `batch_bytes_max`. Every batch is checked in full (header, CRC, count,
/// every record, timestamps); nothing is accepted unless all of it is valid.
pub fn validate_record_set(
    records: &[u8],
    batch_bytes_max: usize,
) -> Result<Vec<ValidBatch>, BatchError> {
    validate_set(records, batch_bytes_max, Origin::Producer)
}

/// Validates a record set a leader sent its follower: as [`validate_record_set`], except that
/// control and transactional batches, which only a broker writes, are accepted.
pub fn validate_replicated_set(records: &[u8]) -> Result<Vec<ValidBatch>, BatchError> {
    validate_set(records, usize::MAX, Origin::Leader)
}

/// Who wrote a record set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A client: no control or transactional batches.
    Producer,
    /// A partition leader, whose log may hold control batches.
    Leader,
}

fn validate_set(
    records: &[u8],
    batch_bytes_max: usize,
    origin: Origin,
) -> Result<Vec<ValidBatch>, BatchError> {
    let mut out = Vec::new();
    let mut pos = 0;
    if records.is_empty() {
        return Err(BatchError::Empty);
    }
    while pos < records.len() {
        let rest = &records[pos..];
        let header = BatchHeader::parse(rest)?;
        let len = header.total_len();
        // A length beyond the bytes sent is damage, whatever the size limit.
        if rest.len() < len {
            return Err(BatchError::Truncated {
                needed: len,
                available: rest.len(),
            });
        }
        if len > batch_bytes_max {
            return Err(BatchError::TooLarge {
                size: len,
                max: batch_bytes_max,
            });
        }
        let header = validate_one(&rest[..len], origin)?;
        out.push(ValidBatch {
            header,
            position: pos,
        });
        pos += len;
    }
    Ok(out)
}

/// Validates one whole batch as a producer sent it.
pub fn validate_batch(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    validate_one(batch, Origin::Producer)
}

fn validate_one(batch: &[u8], origin: Origin) -> Result<BatchHeader, BatchError> {
    let header = check_integrity(batch)?;
    if header.total_len() != batch.len() {
        return Err(BatchError::TrailingBytes(batch.len() - header.total_len()));
    }
    if origin == Origin::Producer && header.is_control() {
        return Err(BatchError::ControlBatch);
    }
    if origin == Origin::Producer && header.is_transactional() {
        return Err(BatchError::Transactional);
    }
    if header.records_count <= 0 {
        return Err(BatchError::Empty);
    }
    if i64::from(header.records_count) != i64::from(header.last_offset_delta) + 1 {
        return Err(BatchError::CountMismatch {
            count: header.records_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    for ts in [header.base_timestamp, header.max_timestamp] {
        if ts < NO_TIMESTAMP {
            return Err(BatchError::BadTimestamp(ts));
        }
    }
    let body = records_body(&header, batch)?;
    let mut max_ts = NO_TIMESTAMP;
    let mut iter = RecordIter::new(&header, &body);
    for (index, record) in (&mut iter).enumerate() {
        let record = record?;
        if record.offset_delta != index as i32 {
            return Err(BatchError::BadRecord {
                index,
                reason: "offset delta out of sequence",
            });
        }
        if record.timestamp < NO_TIMESTAMP {
            return Err(BatchError::BadTimestamp(record.timestamp));
        }
        max_ts = max_ts.max(record.timestamp);
    }
    if iter.remaining() != 0 {
        return Err(BatchError::TrailingBytes(iter.remaining()));
    }
    if !header.is_log_append_time() && header.max_timestamp != max_ts {
        return Err(BatchError::MaxTimestampMismatch {
            header: header.max_timestamp,
            records: max_ts,
        });
    }
    Ok(header)
}

/// The records of a batch, decompressed if need be (bounded by [`DECOMPRESSED_BYTES_MAX`]).
/// `batch` must be exactly one batch whose header is `header`.
pub fn records_body<'a>(
    header: &BatchHeader,
    batch: &'a [u8],
) -> Result<Cow<'a, [u8]>, BatchError> {
    compression::decompress(header.compression()?, &batch[HEADER_LEN..])
}

/// One record inside a batch, borrowing from the (decompressed) records body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Position in the batch: offset = base offset + delta.
    pub offset_delta: i32,
    /// Absolute timestamp (base timestamp + delta), or -1.
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// Header keys (UTF-8 in Kafka, bytes here) and values.
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

/// Iterates the records of a batch body:
///
/// ```text
/// length: varint | attributes: int8 | timestampDelta: varlong | offsetDelta: varint |
/// keyLength: varint | key | valueLength: varint | value |
/// headerCount: varint | [headerKeyLength: varint | headerKey | headerValueLength: varint | value]
/// ```
///
/// It yields at most `recordsCount` records, then stops; [`RecordIter::remaining`] tells whether
/// bytes were left over. A malformed record yields an error and ends the iteration.
pub struct RecordIter<'a> {
    body: &'a [u8],
    base_timestamp: i64,
    count: i32,
    index: usize,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    /// Iterates `body`, the (decompressed) records of the batch with `header`.
    pub fn new(header: &BatchHeader, body: &'a [u8]) -> RecordIter<'a> {
        RecordIter {
            body,
            base_timestamp: header.base_timestamp,
            count: header.records_count,
            index: 0,
            failed: false,
        }
    }

    /// Bytes not consumed by the records read so far.
    pub fn remaining(&self) -> usize {
        self.body.len()
    }

    fn parse_one(&mut self) -> Result<Record<'a>, &'static str> {
        let mut cur = Cursor { buf: self.body };
        let len = cur.varint().ok_or("bad length")?;
        if len < 6 {
            return Err("record length too small");
        }
        let len = len as usize;
        if cur.buf.len() < len {
            return Err("record extends past the batch");
        }
        let (inner, rest) = cur.buf.split_at(len);
        let mut r = Cursor { buf: inner };
        let _attributes = r.byte().ok_or("truncated attributes")?;
        let ts_delta = r.varlong().ok_or("bad timestamp delta")?;
        let offset_delta = r.varint().ok_or("bad offset delta")?;
        let key = r.nullable_bytes().ok_or("bad key")?;
        let value = r.nullable_bytes().ok_or("bad value")?;
        let n_headers = r.varint().ok_or("bad header count")?;
        if n_headers < 0 {
            return Err("negative header count");
        }
        let mut headers = Vec::with_capacity((n_headers as usize).min(inner.len()));
        for _ in 0..n_headers {
            let k = r
                .nullable_bytes()
                .ok_or("bad header key")?
                .ok_or("null header key")?;
            let v = r.nullable_bytes().ok_or("bad header value")?;
            headers.push((k, v));
        }
        if !r.buf.is_empty() {
            return Err("record length does not match its fields");
        }
        let timestamp = if self.base_timestamp == NO_TIMESTAMP {
            NO_TIMESTAMP
        } else {
            self.base_timestamp
                .checked_add(ts_delta)
                .ok_or("timestamp overflows")?
        };
        self.body = rest;
        Ok(Record {
            offset_delta,
            timestamp,
            key,
            value,
            headers,
        })
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.index >= self.count.max(0) as usize {
            return None;
        }
        let index = self.index;
        self.index += 1;
        if self.body.is_empty() {
            self.failed = true;
            return Some(Err(BatchError::BadRecord {
                index,
                reason: "fewer records than the count says",
            }));
        }
        match self.parse_one() {
            Ok(r) => Some(Ok(r)),
            Err(reason) => {
                self.failed = true;
                Some(Err(BatchError::BadRecord { index, reason }))
            }
        }
    }
}

/// A reader of Kafka's zig-zag varints over a byte slice.
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.buf.split_first()?;
        self.buf = rest;
        Some(*b)
    }

    fn unsigned(&mut self, max_bytes: usize) -> Option<u64> {
        let mut v: u64 = 0;
        for i in 0..max_bytes {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn varint(&mut self) -> Option<i32> {
        let u = self.unsigned(5)?;
        let u = u32::try_from(u).ok()?;
        Some(((u >> 1) as i32) ^ -((u & 1) as i32))
    }

    fn varlong(&mut self) -> Option<i64> {
        let u = self.unsigned(10)?;
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A varint length then that many bytes; -1 is null.
    fn nullable_bytes(&mut self) -> Option<Option<&'a [u8]>> {
        let n = self.varint()?;
        if n == -1 {
            return Some(None);
        }
        let n = usize::try_from(n).ok()?;
        if self.buf.len() < n {
            return None;
        }
        let (v, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(Some(v))
    }
}

/// Appends a zig-zag varint.
pub fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_unsigned(out, ((v << 1) ^ (v >> 31)) as u32 as u64);
}

/// Appends a zig-zag varlong.
pub fn put_varlong(out: &mut Vec<u8>, v: i64) {
    put_unsigned(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_unsigned(out: &mut Vec<u8>, mut u: u64) {
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

fn put_nullable(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

/// A record to encode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewRecord {
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Who produced a batch, for idempotent producers; `NONE` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerFields {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl ProducerFields {
    /// A non-idempotent producer.
    pub const NONE: ProducerFields = ProducerFields {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
}

/// Encodes an uncompressed v2 batch with base offset 0 and a correct CRC, as a producer would.
/// `records` must not be empty.
pub fn encode_batch(records: &[NewRecord], producer: ProducerFields) -> Vec<u8> {
    assert!(!records.is_empty(), "a batch needs at least one record");
    let base_ts = records
        .iter()
        .map(|r| r.timestamp)
        .min()
        .unwrap_or(NO_TIMESTAMP);
    let max_ts = records
        .iter()
        .map(|r| r.timestamp)
        .max()
        .unwrap_or(NO_TIMESTAMP);
    // Sized up front (records add at most 40 bytes beyond their contents): a producer's
    // batch is up to a megabyte, and growing by doubling would copy it repeatedly.
    let contents: usize = records
        .iter()
        .map(|r| {
            let headers: usize = r
                .headers
                .iter()
                .map(|(k, v)| 10 + k.len() + v.as_ref().map_or(0, Vec::len))
                .sum();
            40 + r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len) + headers
        })
        .sum();
    let mut out = Vec::with_capacity(HEADER_LEN + contents);
    out.resize(HEADER_LEN, 0);
    let mut rec = Vec::new();
    for (i, r) in records.iter().enumerate() {
        rec.clear();
        rec.push(0); // attributes
        put_varlong(&mut rec, r.timestamp - base_ts);
        put_varint(&mut rec, i as i32);
        put_nullable(&mut rec, r.key.as_deref());
        put_nullable(&mut rec, r.value.as_deref());
        put_varint(&mut rec, r.headers.len() as i32);
        for (k, v) in &r.headers {
            put_nullable(&mut rec, Some(k));
            put_nullable(&mut rec, v.as_deref());
        }
        put_varint(&mut out, rec.len() as i32);
        out.extend_from_slice(&rec);
    }
    let batch_length = (out.len() - LOG_OVERHEAD) as i32;
    out[field::LENGTH..field::LENGTH + 4].copy_from_slice(&batch_length.to_be_bytes());
    out[field::PARTITION_LEADER_EPOCH..field::PARTITION_LEADER_EPOCH + 4]
        .copy_from_slice(&(-1i32).to_be_bytes());
    out[field::MAGIC] = MAGIC_V2 as u8;
    out[field::LAST_OFFSET_DELTA..field::LAST_OFFSET_DELTA + 4]
        .copy_from_slice(&(records.len() as i32 - 1).to_be_bytes());
    out[field::BASE_TIMESTAMP..field::BASE_TIMESTAMP + 8].copy_from_slice(&base_ts.to_be_bytes());
    out[field::MAX_TIMESTAMP..field::MAX_TIMESTAMP + 8].copy_from_slice(&max_ts.to_be_bytes());
    out[field::PRODUCER_ID..field::PRODUCER_ID + 8]
        .copy_from_slice(&producer.producer_id.to_be_bytes());
    out[field::PRODUCER_EPOCH..field::PRODUCER_EPOCH + 2]
        .copy_from_slice(&producer.producer_epoch.to_be_bytes());
    out[field::BASE_SEQUENCE..field::BASE_SEQUENCE + 4]
        .copy_from_slice(&producer.base_sequence.to_be_bytes());
    out[field::RECORDS_COUNT..field::RECORDS_COUNT + 4]
        .copy_from_slice(&(records.len() as i32).to_be_bytes());
    let crc = compute_crc(&out);
    out[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Sets the broker-owned header fields of a batch in place. Neither is covered by the CRC.
pub fn set_base_offset_and_epoch(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[field::BASE_OFFSET..field::BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    batch[field::PARTITION_LEADER_EPOCH..field::PARTITION_LEADER_EPOCH + 4]
        .copy_from_slice(&leader_epoch.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ts: i64, v: &str) -> NewRecord {
        NewRecord {
            timestamp: ts,
            key: Some(b"k".to_vec()),
            value: Some(v.as_bytes().to_vec()),
            headers: vec![(b"h".to_vec(), None)],
        }
    }

    fn good() -> Vec<u8> {
        encode_batch(
            &[rec(1000, "a"), rec(1005, "bb"), rec(999, "")],
            ProducerFields::NONE,
        )
    }

    fn patch_crc(b: &mut [u8]) {
        let crc = compute_crc(b);
        b[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn encoded_batch_validates_and_iterates() {
        let b = good();
        let h = validate_batch(&b).unwrap();
        assert_eq!(h.records_count, 3);
        assert_eq!(h.max_timestamp, 1005);
        assert_eq!(h.base_timestamp, 999);
        let body = records_body(&h, &b).unwrap();
        let recs: Vec<_> = RecordIter::new(&h, &body).map(|r| r.unwrap()).collect();
        assert_eq!(recs[1].value, Some(&b"bb"[..]));
        assert_eq!(recs[2].timestamp, 999);
        assert_eq!(recs[0].headers, vec![(&b"h"[..], None)]);
    }

    #[test]
    fn base_offset_and_epoch_are_outside_the_crc() {
        let mut b = good();
        set_base_offset_and_epoch(&mut b, 1 << 40, 7);
        let h = check_integrity(&b).unwrap();
        assert_eq!(h.base_offset, 1 << 40);
        assert_eq!(h.partition_leader_epoch, 7);
        assert_eq!(h.last_offset(), (1 << 40) + 2);
    }

    #[test]
    fn each_way_a_batch_can_be_wrong() {
        let g = good();
        // Truncated header and truncated body.
        assert!(matches!(
            validate_batch(&g[..20]),
            Err(BatchError::Truncated { .. })
        ));
        assert!(matches!(
            validate_batch(&g[..g.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        // Length field below the minimum, and a lying length beyond the bytes.
        let mut b = g.clone();
        b[field::LENGTH..field::LENGTH + 4].copy_from_slice(&10i32.to_be_bytes());
        assert_eq!(validate_batch(&b), Err(BatchError::LengthTooSmall(10)));
        let mut b = g.clone();
        b[field::LENGTH..field::LENGTH + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            validate_batch(&b),
            Err(BatchError::Truncated { .. })
        ));
        // Magic.
        let mut b = g.clone();
        b[field::MAGIC] = 1;
        assert_eq!(validate_batch(&b), Err(BatchError::BadMagic(1)));
        // CRC: a flipped payload byte.
        let mut b = g.clone();
        *b.last_mut().unwrap() ^= 1;
        assert!(matches!(
            validate_batch(&b),
            Err(BatchError::CrcMismatch { .. })
        ));
        // Count against last offset delta.
        let mut b = g.clone();
        b[field::LAST_OFFSET_DELTA..field::LAST_OFFSET_DELTA + 4]
            .copy_from_slice(&5i32.to_be_bytes());
        patch_crc(&mut b);
        assert!(matches!(
            validate_batch(&b),
            Err(BatchError::CountMismatch { .. })
        ));
        // Count larger than the records present (delta kept consistent).
        let mut b = g.clone();
        b[field::LAST_OFFSET_DELTA..field::LAST_OFFSET_DELTA + 4]
            .copy_from_slice(&3i32.to_be_bytes());
        b[field::RECORDS_COUNT..field::RECORDS_COUNT + 4].copy_from_slice(&4i32.to_be_bytes());
        patch_crc(&mut b);
        assert!(matches!(
            validate_batch(&b),
            Err(BatchError::BadRecord { index: 3, .. })
        ));
        // Zero records.
        let mut b = g.clone();
        b[field::LAST_OFFSET_DELTA..field::LAST_OFFSET_DELTA + 4]
            .copy_from_slice(&(-1i32).to_be_bytes());
        b[field::RECORDS_COUNT..field::RECORDS_COUNT + 4].copy_from_slice(&0i32.to_be_bytes());
        patch_crc(&mut b);
        assert_eq!(validate_batch(&b), Err(BatchError::Empty));
        // Max timestamp that disagrees with the records.
        let mut b = g.clone();
        b[field::MAX_TIMESTAMP..field::MAX_TIMESTAMP + 8].copy_from_slice(&5000i64.to_be_bytes());
        patch_crc(&mut b);
        assert!(matches!(
            validate_batch(&b),
            Err(BatchError::MaxTimestampMismatch { .. })
        ));
        // Negative timestamps other than -1.
        let mut b = g.clone();
        b[field::BASE_TIMESTAMP..field::BASE_TIMESTAMP + 8].copy_from_slice(&(-7i64).to_be_bytes());
        patch_crc(&mut b);
        assert_eq!(validate_batch(&b), Err(BatchError::BadTimestamp(-7)));
        // Control and transactional batches.
        let mut b = g.clone();
        b[field::ATTRIBUTES + 1] |= 0x20;
        patch_crc(&mut b);
        assert_eq!(validate_batch(&b), Err(BatchError::ControlBatch));
        let mut b = g.clone();
        b[field::ATTRIBUTES + 1] |= 0x10;
        patch_crc(&mut b);
        assert_eq!(validate_batch(&b), Err(BatchError::Transactional));
        // Unknown codec, and a codec whose bytes are not compressed data.
        let mut b = g.clone();
        b[field::ATTRIBUTES + 1] |= 0x07;
        patch_crc(&mut b);
        assert_eq!(validate_batch(&b), Err(BatchError::UnknownCompression(7)));
        for codec in 1..=4u8 {
            let mut b = g.clone();
            b[field::ATTRIBUTES + 1] |= codec;
            patch_crc(&mut b);
            assert!(
                matches!(
                    validate_batch(&b),
                    Err(BatchError::Decompression { .. } | BatchError::BadRecord { .. })
                ),
                "codec {codec}"
            );
        }
        // A record whose declared length runs past the batch.
        let mut b = g.clone();
        b[HEADER_LEN] = 0x7e; // length varint 63
        patch_crc(&mut b);
        assert!(matches!(
            validate_batch(&b),
            Err(BatchError::BadRecord { index: 0, .. })
        ));
        // A record whose offset delta is out of sequence.
        let mut b = encode_batch(&[rec(1, "x"), rec(1, "y")], ProducerFields::NONE);
        let second = HEADER_LEN + 1 + (b[HEADER_LEN] as usize >> 1);
        b[second + 3] = 4; // offset delta varint 2 instead of 1
        patch_crc(&mut b);
        assert!(matches!(
            validate_batch(&b),
            Err(BatchError::BadRecord { index: 1, .. })
        ));
        // Trailing garbage inside the batch after the last record.
        let mut b = g.clone();
        b.extend_from_slice(&[0, 0]);
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[field::LENGTH..field::LENGTH + 4].copy_from_slice(&len.to_be_bytes());
        patch_crc(&mut b);
        assert_eq!(validate_batch(&b), Err(BatchError::TrailingBytes(2)));
    }

    #[test]
    fn record_sets_are_all_or_nothing() {
        let mut set = good();
        set.extend_from_slice(&good());
        assert_eq!(validate_record_set(&set, 1 << 20).unwrap().len(), 2);
        assert_eq!(
            validate_record_set(&set, 1 << 20).unwrap()[1].position,
            good().len()
        );
        assert!(matches!(
            validate_record_set(&set, 10),
            Err(BatchError::TooLarge { .. })
        ));
        let n = set.len();
        set[n - 1] ^= 0xff;
        assert!(validate_record_set(&set, 1 << 20).is_err());
        assert_eq!(validate_record_set(&[], 1 << 20), Err(BatchError::Empty));
    }

    fn compressed(codec: u8, body: Vec<u8>) -> Vec<u8> {
        let plain = good();
        let mut b = plain[..HEADER_LEN].to_vec();
        b.extend_from_slice(&body);
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[field::LENGTH..field::LENGTH + 4].copy_from_slice(&len.to_be_bytes());
        b[field::ATTRIBUTES + 1] |= codec;
        patch_crc(&mut b);
        b
    }

    #[test]
    fn compressed_batches_validate() {
        use std::io::Write;
        let plain = good();
        let body = plain[HEADER_LEN..].to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&body).unwrap();
        let gz = gz.finish().unwrap();
        let mut lz = lz4_flex::frame::FrameEncoder::new(Vec::new());
        lz.write_all(&body).unwrap();
        let lz = lz.finish().unwrap();
        let raw_snappy = snap::raw::Encoder::new().compress_vec(&body).unwrap();
        let mut xerial = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
        xerial.extend_from_slice(&(raw_snappy.len() as u32).to_be_bytes());
        xerial.extend_from_slice(&raw_snappy);
        let zstd = ruzstd::encoding::compress_to_vec(
            &body[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        for (codec, bytes) in [(1, gz), (3, lz), (2, raw_snappy), (2, xerial), (4, zstd)] {
            let b = compressed(codec, bytes);
            let h = validate_batch(&b).unwrap_or_else(|e| panic!("codec {codec}: {e}"));
            let body = records_body(&h, &b).unwrap();
            assert_eq!(RecordIter::new(&h, &body).count(), 3);
        }
    }

    #[test]
    fn zip_bombs_are_refused() {
        use std::io::Write;
        let zeros = vec![0u8; DECOMPRESSED_BYTES_MAX + 10];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&zeros).unwrap();
        let b = compressed(1, gz.finish().unwrap());
        assert!(matches!(
            validate_batch(&b),
            Err(BatchError::Decompression { .. })
        ));
    }

    #[test]
    fn varints_round_trip() {
        for v in [0i32, 1, -1, 63, -64, 64, i32::MAX, i32::MIN] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(Cursor { buf: &out }.varint(), Some(v));
        }
        for v in [0i64, -1, i64::MAX, i64::MIN, 1 << 40] {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            assert_eq!(Cursor { buf: &out }.varlong(), Some(v));
        }
        // Over-long varints are refused rather than wrapped.
        assert_eq!(Cursor { buf: &[0xff; 6] }.varint(), None);
    }
}
