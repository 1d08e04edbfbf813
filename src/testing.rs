//! Harnesses shared by the fuzz targets in `fuzz/` and the corpus replay test in `tests/`, so
//! the stable toolchain re-runs every saved fuzz input as a normal test. Each takes arbitrary
//! bytes and panics only when runnel breaks a promise.

use crate::env::disk::{Disk, FileMode};
use crate::env::{Env, MemDisk, RealNetwork, SharedRng};
use crate::log::{LogConfig, PartitionLog, index, time_index};
use crate::record::batch::{self, NewRecord, ProducerFields};
use std::path::Path;
use std::sync::Arc;

/// Record batch validation: never panics; whatever it accepts is internally consistent.
pub fn fuzz_record_batch(data: &[u8]) {
    if let Ok(batches) = batch::validate_record_set(data, 1 << 20) {
        let mut end = 0;
        for b in &batches {
            assert_eq!(b.position, end, "batches are contiguous");
            let bytes = &data[b.position..b.position + b.header.total_len()];
            let h =
                batch::check_integrity(bytes).expect("a valid batch passes its integrity check");
            let body = batch::records_body(&h, bytes).expect("a valid batch decompresses");
            assert_eq!(
                batch::RecordIter::new(&h, &body).count(),
                h.records_count as usize
            );
            end += h.total_len();
        }
        assert_eq!(end, data.len(), "the whole record set is accounted for");
        // What a leader does to it before appending (recompression, LogAppendTime, timestamp
        // bounds), with rules drawn from the last byte: the result is again a valid record
        // set with the same records, or an error; never a panic.
        let pick = data.last().copied().unwrap_or(0);
        let codecs = crate::record::compression::Compression::ALL;
        let rules = crate::record::validator::Rules {
            compression: (pick & 0x08 != 0).then(|| codecs[usize::from(pick & 0x07) % 5]),
            gzip_level: 1,
            log_append_time: pick & 0x10 != 0,
            timestamp_before_max_ms: if pick & 0x20 != 0 { 1000 } else { i64::MAX },
            timestamp_after_max_ms: i64::MAX,
        };
        let counts: Vec<i32> = batches.iter().map(|b| b.header.records_count).collect();
        let mut set = data.to_vec();
        if let Ok(out) =
            crate::record::validator::apply(&mut set, batches, &rules, 1_700_000_000_000, 1 << 21)
        {
            let again = batch::validate_record_set(&set, 1 << 21).expect("the result is valid");
            assert_eq!(again, out);
            let after: Vec<i32> = out.iter().map(|b| b.header.records_count).collect();
            assert_eq!(after, counts, "the same records");
        }
    }
    // The cheap checks used by reads and recovery must never panic either.
    let _ = batch::check_integrity(data);
    if let Ok(h) = batch::BatchHeader::parse(data) {
        if data.len() >= h.total_len() {
            if let Ok(body) = batch::records_body(&h, &data[..h.total_len()]) {
                for r in batch::RecordIter::new(&h, &body) {
                    let _ = r;
                }
            }
        }
    }
}

/// Index file decoding: never panics; what it accepts is strictly increasing and in bounds.
pub fn fuzz_index_files(data: &[u8]) {
    let (limits, bytes) = data.split_at(data.len().min(8));
    let mut l = [0u8; 8];
    l[..limits.len()].copy_from_slice(limits);
    let log_size = u64::from(u32::from_le_bytes(l[..4].try_into().expect("4 bytes")));
    let rel_limit = u32::from_le_bytes(l[4..].try_into().expect("4 bytes"));
    if let Ok(entries) = index::decode_entries(bytes, log_size, rel_limit) {
        for w in entries.windows(2) {
            assert!(w[1].relative_offset > w[0].relative_offset && w[1].position > w[0].position);
        }
        assert!(
            entries
                .iter()
                .all(|e| u64::from(e.position) < log_size && e.relative_offset <= rel_limit)
        );
    }
    if let Ok(entries) = time_index::decode_entries(bytes, rel_limit) {
        for w in entries.windows(2) {
            assert!(
                w[1].timestamp > w[0].timestamp && w[1].relative_offset >= w[0].relative_offset
            );
        }
    }
    let _ = crate::log::checkpoint::decode(bytes);
}

/// Splits fuzz input into pieces: a length byte pair before each piece.
fn pieces(mut data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        if i + 1 == n || data.len() < 2 {
            out.push(data);
            data = &[];
            continue;
        }
        let len = usize::from(u16::from_le_bytes([data[0], data[1]])).min(data.len() - 2);
        out.push(&data[2..2 + len]);
        data = &data[2 + len..];
    }
    out
}

/// Segment recovery from arbitrary bytes: a partition directory holding two segments (the
/// second based at the offset the first claims to end at), their index files and a
/// checkpoint, all from the input. Opening never panics, every offset in the recovered range
/// reads back with valid CRCs, and the log takes a new append at its end.
pub fn fuzz_segment_recovery(data: &[u8]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let disk = MemDisk::new();
        let dir = Path::new("/data/f-0");
        disk.create_dir_all(dir).expect("mkdir");
        let parts = pieces(data, 7);
        let second_base =
            batch::BatchHeader::parse(parts[0]).map_or(5, |h| h.next_offset().clamp(1, 1 << 40));
        let files = [
            (crate::log::segment::file_name(0, "log"), parts[0]),
            (crate::log::segment::file_name(0, "index"), parts[1]),
            (crate::log::segment::file_name(0, "timeindex"), parts[2]),
            (crate::log::segment::file_name(second_base, "log"), parts[3]),
            (
                crate::log::segment::file_name(second_base, "index"),
                parts[4],
            ),
            (
                crate::log::segment::file_name(second_base, "timeindex"),
                parts[5],
            ),
            (crate::log::checkpoint::FILE_NAME.to_string(), parts[6]),
        ];
        for (name, bytes) in files {
            let f = disk
                .open(&dir.join(name), FileMode::Create)
                .expect("create");
            f.write_at(bytes, 0).expect("write");
        }
        let env = Env {
            disk: Arc::new(disk.clone()),
            net: Arc::new(RealNetwork),
            clock: Arc::new(crate::env::clock::ManualClock::new(1_700_000_000_000)),
            rng: SharedRng::seeded(0),
            probe: Arc::new(crate::env::NoProbe),
        };
        let cfg = LogConfig {
            index_interval_bytes: 64,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(&env, dir, cfg)
            .await
            .expect("recovery succeeds on any bytes");
        let start = log.log_start_offset();
        let end = log.log_end_offset();
        assert!(start <= end);
        let mut off = start;
        while off < end {
            let r = log
                .read(off, 1 << 16, i64::MAX, true)
                .expect("recovered data reads back");
            assert!(
                !r.records.is_empty(),
                "offset {off} below the end {end} reads nothing"
            );
            let mut p = 0;
            while p < r.records.len() {
                let h =
                    batch::check_integrity(&r.records[p..]).expect("reads return valid batches");
                assert!(h.next_offset() > off);
                off = h.next_offset();
                p += h.total_len();
            }
        }
        let rec = NewRecord {
            timestamp: 1,
            key: None,
            value: Some(b"after".to_vec()),
            headers: vec![],
        };
        let info = log
            .append(
                &mut batch::encode_batch(&[rec], ProducerFields::NONE),
                log.sole_leader_epoch(0),
            )
            .expect("the recovered log takes appends");
        assert_eq!(info.first_offset, end);
    });
}

/// Request decoding, as the broker does it: frame (size checked against a limit), header, then
/// the body for the API and version the header names, if runnel supports them. Never panics;
/// a frame that decodes re-encodes to a frame that decodes the same.
pub fn fuzz_request_decode(data: &[u8]) {
    use crate::protocol::{parse_request, read_frame, supported_range};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Decodable;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let mut input = data;
    while let Ok(Some(frame)) = rt.block_on(read_frame(&mut input, 1 << 16)) {
        let Ok(req) = parse_request(frame.freeze()) else {
            continue;
        };
        let Some((lo, hi)) = supported_range(req.api_key) else {
            continue;
        };
        if req.api_version < lo || req.api_version > hi {
            continue;
        }
        let v = req.api_version;
        let mut b = req.body.clone();
        let _ = match req.api_key {
            ApiKey::Produce => ProduceRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::Fetch => FetchRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::ListOffsets => ListOffsetsRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::OffsetForLeaderEpoch => {
                OffsetForLeaderEpochRequest::decode(&mut b, v).map(|_| ())
            }
            ApiKey::Metadata => MetadataRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::ApiVersions => ApiVersionsRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::CreateTopics => CreateTopicsRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::DeleteTopics => DeleteTopicsRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::DescribeConfigs => DescribeConfigsRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::AlterConfigs => AlterConfigsRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::IncrementalAlterConfigs => {
                IncrementalAlterConfigsRequest::decode(&mut b, v).map(|_| ())
            }
            ApiKey::CreatePartitions => CreatePartitionsRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::DescribeCluster => DescribeClusterRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::InitProducerId => InitProducerIdRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::FindCoordinator => FindCoordinatorRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::JoinGroup => JoinGroupRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::SyncGroup => SyncGroupRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::Heartbeat => HeartbeatRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::LeaveGroup => LeaveGroupRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::OffsetCommit => OffsetCommitRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::OffsetFetch => OffsetFetchRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::ListGroups => ListGroupsRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::DescribeGroups => DescribeGroupsRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::DeleteGroups => DeleteGroupsRequest::decode(&mut b, v).map(|_| ()),
            ApiKey::OffsetDelete => OffsetDeleteRequest::decode(&mut b, v).map(|_| ()),
            _ => Ok(()),
        };
    }
}

/// `__consumer_offsets` records as a coordinator replays them from disk: the first byte picks
/// the key or a value schema, the rest is the record. Never panics; a record that decodes
/// re-encodes (in the version runnel writes) to one that decodes the same.
pub fn fuzz_group_records(data: &[u8]) {
    use crate::group::records::*;
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            if let Ok(Key::Offset {
                group,
                topic,
                partition,
            }) = decode_key(rest)
            {
                let again = decode_key(&offset_key(&group, &topic, partition));
                assert_eq!(
                    again,
                    Ok(Key::Offset {
                        group,
                        topic,
                        partition
                    })
                );
            }
        }
        1 => {
            if let Ok(v) = decode_offset_value(rest)
                && v.metadata.len() <= i16::MAX as usize
            {
                let again =
                    decode_offset_value(&offset_value(&v)).expect("re-encoded value decodes");
                assert_eq!(again.offset, v.offset);
                assert_eq!(again.metadata, v.metadata);
            }
        }
        2 => {
            if let Ok(v) = decode_group_value(rest) {
                let again = decode_group_value(&group_value(&v)).expect("re-encoded group decodes");
                assert_eq!(again.members.len(), v.members.len());
            }
        }
        _ => {
            let _ = subscribed_topics(rest);
        }
    }
}

/// The client's handling of broker bytes: every response body it decodes, in every version it
/// speaks, fails cleanly on garbage; fetched record bytes decode into records in strictly
/// increasing offset order, or into an error.
pub fn fuzz_client_response(data: &[u8]) {
    use crate::client::connection::decode_body;
    use kafka_protocol::messages::*;
    let bytes = bytes::Bytes::copy_from_slice(data);
    let topic: Arc<str> = Arc::from("t");
    check_fetched(&topic, &bytes);
    fn all<T: kafka_protocol::protocol::Decodable>(api: ApiKey, b: &bytes::Bytes) -> Vec<T> {
        let (lo, hi) = crate::protocol::supported_range(api).expect("a supported API");
        (lo..=hi)
            .filter_map(|v| decode_body::<T>("fuzz", api, b.clone(), v).ok())
            .collect()
    }
    let _ = all::<ApiVersionsResponse>(ApiKey::ApiVersions, &bytes);
    let _ = all::<MetadataResponse>(ApiKey::Metadata, &bytes);
    let _ = all::<ProduceResponse>(ApiKey::Produce, &bytes);
    let _ = all::<ListOffsetsResponse>(ApiKey::ListOffsets, &bytes);
    let _ = all::<CreateTopicsResponse>(ApiKey::CreateTopics, &bytes);
    let _ = all::<DeleteTopicsResponse>(ApiKey::DeleteTopics, &bytes);
    let _ = all::<DescribeConfigsResponse>(ApiKey::DescribeConfigs, &bytes);
    let _ = all::<CreatePartitionsResponse>(ApiKey::CreatePartitions, &bytes);
    let _ = all::<DescribeClusterResponse>(ApiKey::DescribeCluster, &bytes);
    for fetch in all::<FetchResponse>(ApiKey::Fetch, &bytes) {
        for t in fetch.responses {
            for p in t.partitions {
                check_fetched(&topic, &p.records.unwrap_or_default());
            }
        }
    }
}

/// Decodes fetched record bytes and checks what comes out.
fn check_fetched(topic: &Arc<str>, bytes: &bytes::Bytes) {
    let Ok(d) = crate::client::consumer::records::decode(topic, 0, bytes, 0) else {
        return;
    };
    for w in d.records.windows(2) {
        assert!(w[0].offset < w[1].offset, "records out of offset order");
    }
    if let Some(last) = d.records.last() {
        assert!(
            last.offset >= 0 && d.next_offset >= last.offset,
            "next offset before a record"
        );
    }
}

/// Small files and records runnel reads back from disk or from a peer: the first byte picks
/// the parser, the rest is its input. 0: a `leader-epoch-checkpoint` (what decodes re-encodes
/// to the same entries); 1: a `partition.checkpoint`; 2: a producer-state snapshot; 3: the
/// metadata quorum's batches as a Fetch from another voter carries them. Never panics.
pub fn fuzz_checkpoint_files(data: &[u8]) {
    let Some((which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            if let Ok(entries) = crate::log::leader_epoch::decode(rest) {
                let again =
                    crate::log::leader_epoch::decode(&crate::log::leader_epoch::encode(&entries));
                assert_eq!(again.ok(), Some(entries), "a decoded file re-encodes alike");
            }
        }
        1 => {
            let _ = crate::log::checkpoint::decode(rest);
        }
        2 => {
            let _ = crate::log::snapshot::decode(rest);
        }
        _ => {
            let _ = crate::raft::wire::decode_entries(rest);
        }
    }
}
