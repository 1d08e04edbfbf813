//! Reading a simulated disk's image (its files by path, as turmoil holds them) the way recovery
//! must: the chain of valid record batches of a partition, checked independently of runnel's
//! own code (Kafka's RecordBatch v2 header and its CRC-32C, nothing more).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A host's files by path.
pub type Image = BTreeMap<PathBuf, Vec<u8>>;

/// One valid batch in a partition's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    /// -1 for a batch without an idempotent producer.
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Sequence number of the batch's last record.
    pub last_seq: i32,
    /// The header's CRC-32C and `partitionLeaderEpoch`.
    pub crc: u32,
    pub leader_epoch: i32,
}

/// The fixed part of a v2 batch header: up to and including the record count.
const HEADER_LEN: usize = 61;

/// The batch at the start of `bytes`, if whole and valid: Ok(batch, length), or why not.
fn batch_at(bytes: &[u8]) -> Result<(ImageBatch, usize), String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!("{} bytes are too few for a header", bytes.len()));
    }
    let i64_at = |p: usize| i64::from_be_bytes(bytes[p..p + 8].try_into().expect("8 bytes"));
    let i32_at = |p: usize| i32::from_be_bytes(bytes[p..p + 4].try_into().expect("4 bytes"));
    let base_offset = i64_at(0);
    let batch_len = i32_at(8);
    if batch_len < (HEADER_LEN - 12) as i32 {
        return Err(format!("batch length {batch_len}"));
    }
    let total = 12 + batch_len as usize;
    if total > bytes.len() {
        return Err(format!("batch of {total} bytes, {} remain", bytes.len()));
    }
    if bytes[16] != 2 {
        return Err(format!("magic {}", bytes[16]));
    }
    let crc = u32::from_be_bytes(bytes[17..21].try_into().expect("4 bytes"));
    if crc32c::crc32c(&bytes[21..total]) != crc {
        return Err("CRC mismatch".into());
    }
    let last_delta = i32_at(23);
    let base_seq = i32_at(53);
    Ok((
        ImageBatch {
            base_offset,
            last_offset: base_offset + i64::from(last_delta),
            producer_id: i64_at(43),
            producer_epoch: i16::from_be_bytes(bytes[51..53].try_into().expect("2 bytes")),
            crc,
            leader_epoch: i32_at(12),
            last_seq: if base_seq < 0 {
                base_seq
            } else {
                // Sequences wrap at i32::MAX, as producers number them.
                ((i64::from(base_seq) + i64::from(last_delta)) % (i64::from(i32::MAX) + 1)) as i32
            },
        },
        total,
    ))
}

/// A partition's valid batches in an image: segments in base-offset order, each read from its
/// start, the chain ending at the first batch that is torn, damaged or out of sequence, or at
/// a segment that does not start where the last one ended. (The chain is what a correct
/// recovery may keep; everything after it must go.)
#[derive(Debug, Clone, Default)]
pub struct Chain {
    pub batches: Vec<ImageBatch>,
    /// Base offset of the first segment (None: no segment at all).
    pub first_base: Option<i64>,
    /// Offset after the last valid batch (the first segment's base if it has none).
    pub end: Option<i64>,
    /// Why the chain ended before the last file did, if it did.
    pub stopped: Option<String>,
}

/// Reads the chain of the partition in `dir` (e.g. `/data/t0-1`) from the log start `from`:
/// segments wholly below it (the next one starts at or below it) are not part of the log,
/// whatever state their bytes are in. (Retention makes the new log start durable before it
/// removes the files, so after a power loss their removal may not be.)
pub fn chain(image: &Image, dir: &Path, from: i64) -> Chain {
    let mut segments: Vec<(i64, &Vec<u8>)> = image
        .range(dir.to_path_buf()..)
        .take_while(|(p, _)| p.starts_with(dir))
        .filter(|(p, _)| p.parent() == Some(dir))
        .filter_map(|(p, bytes)| {
            let name = p.file_name()?.to_str()?;
            let stem = name.strip_suffix(".log")?;
            (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
                .then(|| (stem.parse().ok(), bytes))
                .and_then(|(base, bytes)| Some((base?, bytes)))
        })
        .collect();
    segments.sort_by_key(|(b, _)| *b);
    let below = segments.windows(2).take_while(|w| w[1].0 <= from).count();
    segments.drain(..below);
    let mut out = Chain {
        first_base: segments.first().map(|(b, _)| *b),
        end: segments.first().map(|(b, _)| *b),
        ..Chain::default()
    };
    for (base, bytes) in segments {
        let mut next = out.end.unwrap_or(base);
        if base != next {
            out.stopped = Some(format!("segment {base} does not start at {next}"));
            return out;
        }
        let mut pos = 0usize;
        while pos < bytes.len() {
            match batch_at(&bytes[pos..]) {
                Ok((b, len)) if b.base_offset == next && b.last_offset >= b.base_offset => {
                    next = b.last_offset + 1;
                    out.batches.push(b);
                    out.end = Some(next);
                    pos += len;
                }
                Ok((b, _)) => {
                    out.stopped = Some(format!(
                        "segment {base} position {pos}: batch {}..={} where {next} was due",
                        b.base_offset, b.last_offset
                    ));
                    return out;
                }
                Err(why) => {
                    out.stopped = Some(format!("segment {base} position {pos}: {why}"));
                    return out;
                }
            }
        }
    }
    out
}

impl Chain {
    /// Each idempotent producer's last batch among the chain's batches in `[from, to)`: the
    /// state a recovery of that range must rebuild.
    pub fn producers(&self, from: i64, to: i64) -> BTreeMap<i64, (i16, i32)> {
        let mut out = BTreeMap::new();
        for b in &self.batches {
            if b.producer_id >= 0 && b.base_offset >= from && b.last_offset < to {
                out.insert(b.producer_id, (b.producer_epoch, b.last_seq));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel::record::batch::{NewRecord, ProducerFields, encode_batch};

    fn batch(base: i64, n: usize, pid: i64, seq: i32) -> Vec<u8> {
        let records: Vec<NewRecord> = (0..n)
            .map(|i| NewRecord {
                key: None,
                value: Some(format!("v{i}").into_bytes()),
                timestamp: 1,
                headers: Vec::new(),
            })
            .collect();
        let producer = ProducerFields {
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: seq,
        };
        let mut b = encode_batch(&records, producer);
        b[..8].copy_from_slice(&base.to_be_bytes());
        b
    }

    #[test]
    fn the_chain_ends_at_the_first_damaged_batch() {
        let mut seg = batch(0, 2, 7, 0);
        seg.extend(batch(2, 3, 7, 2));
        let good_len = seg.len();
        let mut third = batch(5, 1, -1, -1);
        let last = third.len() - 1;
        third[last] ^= 1;
        seg.extend(third);
        let mut image = Image::new();
        image.insert("/data/t-0/00000000000000000000.log".into(), seg.clone());
        let c = chain(&image, Path::new("/data/t-0"), 0);
        assert_eq!(c.end, Some(5));
        assert_eq!(c.producers(0, 5), BTreeMap::from([(7, (0, 4))]));
        assert!(c.stopped.as_deref().unwrap_or("").contains("CRC"));
        // A torn tail (a prefix of a batch) ends it too; a segment after a cut is not read.
        image.insert(
            "/data/t-0/00000000000000000000.log".into(),
            seg[..good_len + 20].to_vec(),
        );
        image.insert(
            "/data/t-0/00000000000000000006.log".into(),
            batch(6, 1, -1, -1),
        );
        assert_eq!(chain(&image, Path::new("/data/t-0"), 0).end, Some(5));
        assert_eq!(chain(&image, Path::new("/data/t-1"), 0).end, None);
        // From a log start of 6 the damaged segment below it is not part of the log (seed
        // 5007615: retention's removals were not durable at a power loss).
        let c = chain(&image, Path::new("/data/t-0"), 6);
        assert_eq!((c.first_base, c.end), (Some(6), Some(7)));
    }
}
