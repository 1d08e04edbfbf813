use super::*;
use crate::record::batch::{
    NewRecord, ProducerFields, encode_batch, records_body, validate_batch, validate_record_set,
};

const NOW: i64 = 1_700_000_000_000;

fn records(n: usize, ts: i64) -> Vec<NewRecord> {
    (0..n)
        .map(|i| NewRecord {
            timestamp: ts + i as i64,
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(format!("value {i} ").repeat(20).into_bytes()),
            headers: vec![(b"h".to_vec(), Some(vec![i as u8]))],
        })
        .collect()
}

const IDEMPOTENT: ProducerFields = ProducerFields {
    producer_id: 4242,
    producer_epoch: 3,
    base_sequence: 17,
};

/// A batch of `recs` compressed with `codec`, built independently of the validator: the
/// producer's encoding, its body compressed, the header patched as a client patches it.
fn batch_with(codec: Compression, recs: &[NewRecord]) -> Vec<u8> {
    let plain = encode_batch(recs, IDEMPOTENT);
    let packed = compression::compress(codec, &plain[HEADER_LEN..], -1);
    let mut b = plain[..HEADER_LEN].to_vec();
    b.extend_from_slice(&packed);
    let len = (b.len() - LOG_OVERHEAD) as i32;
    b[field::LENGTH..field::LENGTH + 4].copy_from_slice(&len.to_be_bytes());
    b[field::ATTRIBUTES + 1] |= codec.attribute_bits() as u8;
    set_crc(&mut b);
    b
}

/// Every record's (offset delta, timestamp, key, value, headers), owned.
type Flat = Vec<(i32, i64, Vec<u8>, Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>)>;

fn flat(batch: &[u8]) -> Flat {
    let h = validate_batch(batch).unwrap();
    let body = records_body(&h, batch).unwrap();
    RecordIter::new(&h, &body)
        .map(|r| {
            let r = r.unwrap();
            let headers = r
                .headers
                .iter()
                .map(|(k, v)| (k.to_vec(), v.unwrap_or_default().to_vec()))
                .collect();
            (
                r.offset_delta,
                r.timestamp,
                r.key.unwrap_or_default().to_vec(),
                r.value.unwrap_or_default().to_vec(),
                headers,
            )
        })
        .collect()
}

fn run(set: &mut Vec<u8>, rules: &Rules) -> Result<Vec<ValidBatch>, BatchError> {
    let batches = validate_record_set(set, usize::MAX)?;
    apply(set, batches, rules, NOW, usize::MAX)
}

#[test]
fn every_codec_pair_recompresses_keeping_records_and_producer_fields() {
    let recs = records(50, NOW - 10);
    let want = flat(&encode_batch(&recs, IDEMPOTENT));
    for source in Compression::ALL {
        for target in Compression::ALL {
            let original = batch_with(source, &recs);
            let mut set = original.clone();
            let rules = Rules {
                compression: Some(target),
                ..Rules::DEFAULT
            };
            let out =
                run(&mut set, &rules).unwrap_or_else(|e| panic!("{source:?}->{target:?}: {e}"));
            assert_eq!(out.len(), 1);
            let h = validate_batch(&set).unwrap();
            assert_eq!(out[0].header, h);
            assert_eq!(h.compression().unwrap(), target, "{source:?}->{target:?}");
            if source == target {
                assert_eq!(
                    set, original,
                    "{source:?}: a batch already in the codec is kept"
                );
            }
            assert_eq!(flat(&set), want, "{source:?}->{target:?}");
            let was = validate_batch(&original).unwrap();
            assert_eq!(
                (
                    h.producer_id,
                    h.producer_epoch,
                    h.base_sequence,
                    h.records_count
                ),
                (
                    was.producer_id,
                    was.producer_epoch,
                    was.base_sequence,
                    was.records_count
                )
            );
            assert_eq!(
                (h.base_timestamp, h.max_timestamp, h.last_offset_delta),
                (was.base_timestamp, was.max_timestamp, was.last_offset_delta)
            );
            assert!(!h.is_log_append_time());
        }
    }
}

#[test]
fn producer_compression_keeps_the_bytes_as_sent() {
    let mut set = batch_with(Compression::Lz4, &records(3, NOW));
    let sent = set.clone();
    run(&mut set, &Rules::DEFAULT).unwrap();
    assert_eq!(set, sent);
}

#[test]
fn several_batches_are_rebuilt_at_their_new_positions() {
    let mut set = batch_with(Compression::None, &records(5, NOW));
    set.extend(batch_with(Compression::Gzip, &records(7, NOW)));
    set.extend(batch_with(Compression::Zstd, &records(2, NOW)));
    let rules = Rules {
        compression: Some(Compression::Snappy),
        ..Rules::DEFAULT
    };
    let out = run(&mut set, &rules).unwrap();
    let again = validate_record_set(&set, usize::MAX).unwrap();
    assert_eq!(out, again);
    let counts: Vec<i32> = out.iter().map(|b| b.header.records_count).collect();
    assert_eq!(counts, vec![5, 7, 2]);
    assert!(
        out.iter()
            .all(|b| b.header.compression().unwrap() == Compression::Snappy)
    );
}

#[test]
fn log_append_time_stamps_the_batch_in_place_or_while_recompressing() {
    for (source, target) in [
        (Compression::None, None),
        (Compression::Gzip, None),
        (Compression::None, Some(Compression::Zstd)),
        (Compression::Lz4, Some(Compression::None)),
    ] {
        let recs = records(4, 1_000);
        let mut set = batch_with(source, &recs);
        let before = flat(&set);
        let rules = Rules {
            compression: target,
            log_append_time: true,
            ..Rules::DEFAULT
        };
        let out = run(&mut set, &rules).unwrap();
        let h = validate_batch(&set).unwrap();
        assert_eq!(out[0].header, h);
        assert!(h.is_log_append_time(), "{source:?}->{target:?}");
        assert_eq!(h.max_timestamp, NOW);
        assert_eq!(h.compression().unwrap(), target.unwrap_or(source));
        assert_eq!(h.base_sequence, IDEMPOTENT.base_sequence);
        // The records are untouched; readers take the batch's max timestamp for each.
        assert_eq!(flat(&set), before);
    }
}

#[test]
fn create_time_bounds_name_every_record_outside_them() {
    let mut recs = records(5, NOW);
    recs[1].timestamp = NOW - 5_000; // too old
    recs[3].timestamp = NOW + 5_000; // too new
    let rules = Rules {
        timestamp_before_max_ms: 1_000,
        timestamp_after_max_ms: 1_000,
        ..Rules::DEFAULT
    };
    let mut set = batch_with(Compression::Gzip, &recs);
    let sent = set.clone();
    match run(&mut set, &rules) {
        Err(BatchError::RecordTimestamps(errors)) => {
            let indexes: Vec<usize> = errors.iter().map(|e| e.index).collect();
            assert_eq!(indexes, vec![1, 3]);
            assert!(errors[0].message.contains("is out of range"), "{errors:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(set, sent, "a refused set is left as it came");
    // Within bounds, or with LogAppendTime (the broker's clock replaces them), it is taken.
    let mut ok = batch_with(Compression::None, &records(3, NOW - 500));
    run(&mut ok, &rules).unwrap();
    let mut stamped = batch_with(Compression::None, &recs);
    let append = Rules {
        log_append_time: true,
        ..rules
    };
    run(&mut stamped, &append).unwrap();
}

#[test]
fn a_producer_cannot_mark_its_batch_log_append_time() {
    let mut set = batch_with(Compression::None, &records(2, NOW));
    let attributes = i16::from_be_bytes([set[field::ATTRIBUTES], set[field::ATTRIBUTES + 1]])
        | ATTR_LOG_APPEND_TIME;
    set[field::ATTRIBUTES..field::ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    set_crc(&mut set);
    for rules in [
        Rules::DEFAULT,
        Rules {
            log_append_time: true,
            ..Rules::DEFAULT
        },
    ] {
        let mut s = set.clone();
        match run(&mut s, &rules) {
            Err(BatchError::RecordTimestamps(errors)) => assert_eq!(errors.len(), 2),
            other => panic!("{rules:?}: {other:?}"),
        }
    }
}

#[test]
fn a_batch_that_grows_past_the_limit_when_recompressed_is_refused() {
    // Random-looking bytes do not compress; gzip's framing makes them larger.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..4000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let recs = vec![NewRecord {
        timestamp: NOW,
        value: Some(noise),
        ..Default::default()
    }];
    let mut set = batch_with(Compression::None, &recs);
    let limit = set.len();
    let batches = validate_record_set(&set, limit).unwrap();
    let rules = Rules {
        compression: Some(Compression::Gzip),
        ..Rules::DEFAULT
    };
    assert!(matches!(
        apply(&mut set, batches, &rules, NOW, limit),
        Err(BatchError::TooLarge { .. })
    ));
}
