//! Replays every saved fuzz input (`fuzz/corpus/<target>/*`, and crash reproducers in
//! `fuzz/regressions/<target>/*`) through the same harness the fuzz target runs, on the stable
//! toolchain, so a fixed fuzz finding stays fixed.

use runnel::testing;
use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        if let Ok(rd) = std::fs::read_dir(root.join(dir).join(target)) {
            out.extend(
                rd.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.is_file()),
            );
        }
    }
    out.sort();
    out
}

fn replay(target: &str, harness: fn(&[u8]), at_least: usize) {
    let files = inputs(target);
    assert!(
        files.len() >= at_least,
        "{target}: only {} corpus inputs",
        files.len()
    );
    for f in files {
        let data = std::fs::read(&f).unwrap();
        let result = std::panic::catch_unwind(|| harness(&data));
        assert!(result.is_ok(), "{target}: input {} fails", f.display());
    }
}

#[test]
fn record_batch_corpus() {
    replay("record_batch", testing::fuzz_record_batch, 3);
}

#[test]
fn index_files_corpus() {
    replay("index_files", testing::fuzz_index_files, 2);
}

#[test]
fn segment_recovery_corpus() {
    replay("segment_recovery", testing::fuzz_segment_recovery, 2);
}

#[test]
fn request_decode_corpus() {
    replay("request_decode", testing::fuzz_request_decode, 3);
}

#[test]
fn group_records_corpus() {
    replay("group_records", testing::fuzz_group_records, 3);
}

#[test]
fn checkpoint_files_corpus() {
    replay("checkpoint_files", testing::fuzz_checkpoint_files, 5);
    // The seeds are valid files, taken from a real cluster's data directory, so the fuzzer
    // starts from inputs that get past the parsers' first checks.
    let seed = |name: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/checkpoint_files")
            .join(name);
        std::fs::read(path).unwrap()[1..].to_vec()
    };
    assert_eq!(
        runnel::log::leader_epoch::decode(&seed("leader_epoch_three"))
            .unwrap()
            .len(),
        3
    );
    runnel::log::leader_epoch::decode(&seed("leader_epoch")).unwrap();
    runnel::log::checkpoint::decode(&seed("partition_checkpoint")).unwrap();
    runnel::log::snapshot::decode(&seed("producer_snapshot")).unwrap();
    assert!(
        !runnel::raft::wire::decode_entries(&seed("metadata_batches"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn client_response_corpus() {
    replay("client_response", testing::fuzz_client_response, 2);
}

/// Writes the seed corpus: valid inputs for the fuzzers to mutate. Run with
/// `cargo test --test fuzz_corpus -- --ignored write_seed_corpus` after a format change.
#[test]
#[ignore]
fn write_seed_corpus() {
    use runnel::record::batch::{NewRecord, ProducerFields, encode_batch};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let rec = |v: &str, ts: i64| NewRecord {
        timestamp: ts,
        key: Some(b"key".to_vec()),
        value: Some(v.as_bytes().to_vec()),
        headers: vec![(b"h".to_vec(), Some(b"v".to_vec()))],
    };
    let one = encode_batch(&[rec("a", 10)], ProducerFields::NONE);
    let three = encode_batch(
        &[rec("a", 10), rec("bb", 12), rec("", 11)],
        ProducerFields::NONE,
    );
    let mut two = one.clone();
    two.extend_from_slice(&three);
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let d = root.join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), bytes).unwrap();
    };
    write("record_batch", "one", &one);
    write("record_batch", "three", &three);
    write("record_batch", "two_batches", &two);
    let entry = |o: u32, p: u32| [o.to_be_bytes(), p.to_be_bytes()].concat();
    let mut ix = vec![0xff, 0xff, 0, 0, 0xff, 0xff, 0, 0];
    ix.extend(entry(1, 0));
    ix.extend(entry(4, 100));
    write("index_files", "offset_index", &ix);
    let mut tx = vec![0xff, 0xff, 0, 0, 0xff, 0xff, 0, 0];
    tx.extend(10i64.to_be_bytes());
    tx.extend(1u32.to_be_bytes());
    write("index_files", "time_index", &tx);
    // A segment of two batches, no indexes, a second segment of one batch, no checkpoint.
    let mut seg0 = one.clone();
    let mut b2 = three.clone();
    b2[..8].copy_from_slice(&1i64.to_be_bytes());
    seg0.extend_from_slice(&b2);
    let mut seg1 = one.clone();
    seg1[..8].copy_from_slice(&4i64.to_be_bytes());
    let piece = |b: &[u8]| [(b.len() as u16).to_le_bytes().to_vec(), b.to_vec()].concat();
    let mut input = piece(&seg0);
    input.extend(piece(&[]));
    input.extend(piece(&[]));
    input.extend(piece(&seg1));
    input.extend(piece(&[]));
    input.extend(piece(&[]));
    write("segment_recovery", "two_segments", &input);
    write_request_seeds(&|name, bytes| write("request_decode", name, bytes));
    let mut torn = piece(&seg0[..seg0.len() - 3]);
    torn.extend(piece(&[]));
    write("segment_recovery", "torn_tail", &torn);
    // Fetched records as a Fetch v12 body carries them, and the bare records.
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::protocol::Encodable;
    let fetch = kafka_protocol::messages::FetchResponse::default().with_responses(vec![
        FetchableTopicResponse::default().with_partitions(vec![
            PartitionData::default().with_records(Some(two.clone().into())),
        ]),
    ]);
    let mut body = bytes::BytesMut::new();
    fetch.encode(&mut body, 12).unwrap();
    write("client_response", "fetch_v12", &body);
    write("client_response", "records", &two);
}

/// Valid request frames of every supported API, for the request decoder to mutate.
fn write_request_seeds(write: &dyn Fn(&str, &[u8])) {
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    use runnel::protocol::encode_request;
    let header = |api: ApiKey, v: i16| {
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(v)
            .with_correlation_id(1)
            .with_client_id(Some(StrBytes::from_static_str("seed")))
    };
    let topic = || TopicName(StrBytes::from_static_str("t"));
    let batch = runnel::record::batch::encode_batch(
        &[runnel::record::batch::NewRecord {
            timestamp: 1,
            value: Some(b"v".to_vec()),
            ..Default::default()
        }],
        runnel::record::batch::ProducerFields::NONE,
    );
    for v in [3i16, 9] {
        let produce = ProduceRequest::default()
            .with_acks(-1)
            .with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(topic())
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_records(Some(batch.clone().into())),
                    ]),
            ]);
        write(
            &format!("produce_v{v}"),
            &encode_request(&header(ApiKey::Produce, v), &produce).unwrap(),
        );
    }
    for v in [4i16, 12] {
        let fetch = FetchRequest::default().with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(topic())
                .with_partitions(vec![fetch_request::FetchPartition::default()]),
        ]);
        write(
            &format!("fetch_v{v}"),
            &encode_request(&header(ApiKey::Fetch, v), &fetch).unwrap(),
        );
    }
    for v in [1i16, 12] {
        let md = MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(topic())),
        ]));
        write(
            &format!("metadata_v{v}"),
            &encode_request(&header(ApiKey::Metadata, v), &md).unwrap(),
        );
    }
    let ct = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(topic())
            .with_num_partitions(3),
    ]);
    write(
        "create_topics_v7",
        &encode_request(&header(ApiKey::CreateTopics, 7), &ct).unwrap(),
    );
    write(
        "api_versions_v3",
        &encode_request(
            &header(ApiKey::ApiVersions, 3),
            &ApiVersionsRequest::default(),
        )
        .unwrap(),
    );
}
