//! Turning a partition's fetched bytes into records.
//!
//! A fetch returns whole batches, starting with the one that holds the fetch position (which
//! may begin before it), and possibly a last batch cut short by the byte limits. Every whole
//! batch is checked (header and CRC) before anything in it is trusted; records before the
//! position are skipped; control batches (transaction markers) carry no user records.

use super::ConsumerRecord;
use crate::client::error::ClientError;
use crate::client::{RecordHeader, TopicPartition};
use crate::record::batch::{BatchError, BatchHeader, RecordIter, check_integrity, records_body};
use bytes::Bytes;
use std::borrow::Cow;
use std::sync::Arc;

/// What decoding one partition's data gave.
#[derive(Debug)]
pub struct Decoded {
    /// The records at or after the position, in offset order.
    pub records: Vec<ConsumerRecord>,
    /// Where the next fetch starts: after the last whole batch read (the position itself if
    /// there was none).
    pub next_offset: i64,
    /// The leader epoch of the last batch read (`None` if none was, or it had none).
    pub next_epoch: Option<i32>,
}

/// Decodes `data`, the record batches a fetch returned for `tp` at `position`.
pub fn decode(
    topic: &Arc<str>,
    partition: i32,
    data: &Bytes,
    position: i64,
) -> Result<Decoded, ClientError> {
    let corrupt = |offset: i64, reason: BatchError| ClientError::Corrupt {
        partition: TopicPartition::new(&**topic, partition),
        offset,
        reason,
    };
    let mut out = Decoded {
        records: Vec::new(),
        next_offset: position,
        next_epoch: None,
    };
    let mut at = 0;
    while at < data.len() {
        let header = match BatchHeader::parse(&data[at..]) {
            Ok(h) => h,
            // A last batch cut short by the response's size limit: fetched again next time.
            Err(BatchError::Truncated { .. }) => break,
            Err(e) => return Err(corrupt(out.next_offset, e)),
        };
        let len = header.total_len();
        if data.len() - at < len {
            break;
        }
        let batch = data.slice(at..at + len);
        at += len;
        check_integrity(&batch).map_err(|e| corrupt(header.base_offset, e))?;
        if header.next_offset() <= out.next_offset {
            continue;
        }
        if !header.is_control() {
            read_batch(
                topic,
                partition,
                &header,
                &batch,
                out.next_offset,
                &mut out.records,
            )
            .map_err(|e| corrupt(header.base_offset, e))?;
        }
        out.next_offset = header.next_offset();
        out.next_epoch = epoch_of(&header);
    }
    Ok(out)
}

/// A batch's leader epoch, if it has one (-1 means none: written before KIP-101 or by a
/// broker that does not stamp them).
fn epoch_of(header: &BatchHeader) -> Option<i32> {
    Some(header.partition_leader_epoch).filter(|e| *e >= 0)
}

/// Appends the records of one checked batch at or after `position`. Keys and values share
/// the fetched buffer (or the decompressed one); nothing is copied.
fn read_batch(
    topic: &Arc<str>,
    partition: i32,
    header: &BatchHeader,
    batch: &Bytes,
    position: i64,
    out: &mut Vec<ConsumerRecord>,
) -> Result<(), BatchError> {
    let body = match records_body(header, batch)? {
        Cow::Borrowed(b) => batch.slice_ref(b),
        Cow::Owned(v) => Bytes::from(v),
    };
    let share = |s: &[u8]| body.slice_ref(s);
    let mut previous = None;
    for (index, record) in RecordIter::new(header, &body).enumerate() {
        let r = record?;
        // A batch whose record offsets go backwards or past its end would break the
        // consumer's promise of offset order; the CRC cannot catch a broker that wrote it so.
        if previous.is_some_and(|p| r.offset_delta <= p)
            || r.offset_delta > header.last_offset_delta
        {
            return Err(BatchError::BadRecord {
                index,
                reason: "offset delta out of sequence",
            });
        }
        previous = Some(r.offset_delta);
        // Broker-supplied numbers: saturate rather than overflow.
        let offset = header.base_offset.saturating_add(i64::from(r.offset_delta));
        if offset < position {
            continue;
        }
        out.push(ConsumerRecord {
            topic: topic.clone(),
            partition,
            offset,
            leader_epoch: epoch_of(header),
            // LogAppendTime: every record has the time the leader stamped on its batch.
            timestamp: if header.is_log_append_time() {
                header.max_timestamp
            } else {
                r.timestamp
            },
            key: r.key.map(share),
            value: r.value.map(share),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| RecordHeader {
                    key: String::from_utf8_lossy(k).into_owned(),
                    value: v.map(share),
                })
                .collect(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::batch::{
        NewRecord, ProducerFields, encode_batch, field, set_base_offset_and_epoch,
    };

    fn batch(base: i64, values: &[&str]) -> Vec<u8> {
        let recs: Vec<NewRecord> = values
            .iter()
            .map(|v| NewRecord {
                timestamp: 1000,
                key: Some(b"k".to_vec()),
                value: Some(v.as_bytes().to_vec()),
                headers: vec![(b"h".to_vec(), Some(b"x".to_vec()))],
            })
            .collect();
        let mut b = encode_batch(&recs, ProducerFields::NONE);
        set_base_offset_and_epoch(&mut b, base, 0);
        b
    }

    fn values(d: &Decoded) -> Vec<(i64, String)> {
        d.records
            .iter()
            .map(|r| {
                (
                    r.offset,
                    String::from_utf8_lossy(r.value.as_deref().unwrap()).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn a_fetch_from_the_middle_of_a_batch_skips_the_records_before_it() {
        let mut data = batch(10, &["a", "b", "c"]);
        data.extend(batch(13, &["d"]));
        let t: Arc<str> = Arc::from("t");
        let d = decode(&t, 0, &Bytes::from(data), 11).unwrap();
        assert_eq!(
            values(&d),
            vec![(11, "b".into()), (12, "c".into()), (13, "d".into())]
        );
        assert_eq!(d.next_offset, 14);
        let r = &d.records[0];
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.headers[0].key, "h");
        assert_eq!(r.timestamp, 1000);
    }

    #[test]
    fn a_batch_cut_short_at_the_end_is_left_for_the_next_fetch() {
        let mut data = batch(0, &["a"]);
        let second = batch(1, &["b", "c"]);
        data.extend(&second[..second.len() - 3]);
        let t: Arc<str> = Arc::from("t");
        let d = decode(&t, 0, &Bytes::from(data.clone()), 0).unwrap();
        assert_eq!(values(&d), vec![(0, "a".into())]);
        assert_eq!(d.next_offset, 1);
        // Even a cut inside the header.
        let d = decode(
            &t,
            0,
            &Bytes::from(data[..batch(0, &["a"]).len() + 20].to_vec()),
            0,
        )
        .unwrap();
        assert_eq!(d.next_offset, 1);
        // Nothing at all.
        assert_eq!(decode(&t, 0, &Bytes::new(), 5).unwrap().next_offset, 5);
        // A base offset at the very end of the range saturates instead of overflowing.
        let d = decode(
            &t,
            0,
            &Bytes::from(batch(i64::MAX - 1, &["a", "b", "c"])),
            0,
        )
        .unwrap();
        assert_eq!(d.records.last().unwrap().offset, i64::MAX);
        assert_eq!(d.next_offset, i64::MAX);
    }

    #[test]
    fn corruption_is_an_error_not_a_record() {
        let t: Arc<str> = Arc::from("t");
        let mut data = batch(0, &["a", "b"]);
        let n = data.len();
        data[n - 1] ^= 0x40;
        let e = decode(&t, 3, &Bytes::from(data), 0).unwrap_err();
        assert!(
            matches!(
                e,
                ClientError::Corrupt {
                    reason: BatchError::CrcMismatch { .. },
                    ..
                }
            ),
            "{e}"
        );
        // A bad magic byte.
        let mut data = batch(0, &["a"]);
        data[field::MAGIC] = 7;
        assert!(matches!(
            decode(&t, 0, &Bytes::from(data), 0),
            Err(ClientError::Corrupt { .. })
        ));
        // Records whose offsets go backwards, under a valid CRC.
        let mut data = batch(0, &["a", "b"]);
        let second = crate::record::batch::HEADER_LEN
            + 1
            + (data[crate::record::batch::HEADER_LEN] as usize >> 1);
        data[second + 3] = 0; // offset delta 0 again
        let crc = crate::record::batch::compute_crc(&data);
        data[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            decode(&t, 0, &Bytes::from(data), 0),
            Err(ClientError::Corrupt {
                reason: BatchError::BadRecord { index: 1, .. },
                ..
            })
        ));
        // Garbage of every short length never panics.
        for n in 0..80 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            let _ = decode(&t, 0, &Bytes::from(junk), 0);
        }
    }
}
