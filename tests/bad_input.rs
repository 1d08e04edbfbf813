//! Hostile bytes at a running broker: garbage, lying and negative size prefixes, truncated
//! frames, unknown APIs and versions, malformed bodies, batches with a bad CRC or over
//! `message.max.bytes`. Each gets a Kafka error or a closed connection, nothing of a rejected
//! batch is appended, and afterwards a real client reads every earlier record and writes new
//! ones.

mod support;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use runnel::protocol::{encode_request, parse_response_header};
use runnel::record::batch::{self, NewRecord, ProducerFields};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;
use support::{BrokerProcess, check, kcat, run_python};

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Whether the broker closed the connection (EOF, or a reset) rather than answering.
fn closed_by_broker(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
    }
}

/// Sends a request and reads its response body.
fn call<Req: Encodable, Resp: Decodable>(
    s: &mut TcpStream,
    api: ApiKey,
    version: i16,
    body: &Req,
) -> Resp {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("bad-input-test")));
    s.write_all(&encode_request(&header, body).unwrap())
        .unwrap();
    let mut size = [0u8; 4];
    s.read_exact(&mut size).unwrap();
    let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut frame).unwrap();
    let (corr, mut body) = parse_response_header(Bytes::from(frame), api, version).unwrap();
    assert_eq!(corr, 7);
    Resp::decode(&mut body, version).unwrap()
}

fn alive(addr: &str) {
    let mut s = connect(addr);
    let r: ApiVersionsResponse = call(
        &mut s,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    );
    assert_eq!(r.error_code, 0, "the broker stopped answering");
}

fn end_offset(addr: &str, topic: &str) -> i64 {
    let mut s = connect(addr);
    let req = ListOffsetsRequest::default().with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1),
            ]),
    ]);
    let r: ListOffsetsResponse = call(&mut s, ApiKey::ListOffsets, 5, &req);
    r.topics[0].partitions[0].offset
}

fn produce(s: &mut TcpStream, topic: &str, records: Vec<u8>) -> i16 {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records.into())),
                ]),
        ]);
    let r: ProduceResponse = call(s, ApiKey::Produce, 8, &req);
    r.responses[0].partition_responses[0].error_code
}

fn good_batch(tag: &str, n: usize) -> Vec<u8> {
    let recs: Vec<NewRecord> = (0..n)
        .map(|i| NewRecord {
            timestamp: 1_700_000_000_000,
            value: Some(format!("{tag}-{i}").into_bytes()),
            ..NewRecord::default()
        })
        .collect();
    batch::encode_batch(&recs, ProducerFields::NONE)
}

/// Each hostile frame, sent on its own connection, ends with the connection closed.
#[test]
fn hostile_frames_close_only_their_connection() {
    let broker = BrokerProcess::start(&["socket.request.max.bytes=1048576"]);
    run_python("admin.py", &[&broker.addr, "t", "1"]);
    let header = |key: i16, version: i16| {
        let mut h = Vec::new();
        h.extend_from_slice(&key.to_be_bytes());
        h.extend_from_slice(&version.to_be_bytes());
        h.extend_from_slice(&9i32.to_be_bytes());
        h.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
        h
    };
    let framed = |body: Vec<u8>| {
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend(body);
        f
    };
    let mut body_garbage = header(3, 9);
    body_garbage.extend_from_slice(&[0xff; 40]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("negative size", (-5i32).to_be_bytes().to_vec()),
        (
            "size over socket.request.max.bytes",
            (i32::MAX).to_be_bytes().to_vec(),
        ),
        (
            "size of 2 MiB over a 1 MiB limit",
            (2i32 << 20).to_be_bytes().to_vec(),
        ),
        ("frame too short for a header", framed(vec![0, 1, 2])),
        ("unknown API key", framed(header(9999, 0))),
        ("unsupported Produce version", framed(header(0, 99))),
        ("unsupported Fetch version", framed(header(1, 0))),
        (
            "client id longer than the frame",
            framed([0, 3, 0, 1, 0, 0, 0, 9, 0x7f, 0x7f].to_vec()),
        ),
        ("malformed Metadata body", framed(body_garbage)),
        ("array length claiming 2^31 topics", {
            let mut b = header(3, 1);
            b.extend_from_slice(&i32::MAX.to_be_bytes());
            framed(b)
        }),
    ];
    for (what, bytes) in cases {
        let mut s = connect(&broker.addr);
        s.write_all(&bytes).unwrap();
        assert!(closed_by_broker(&mut s), "{what}: connection not closed");
        alive(&broker.addr);
    }
    // A lying size: the frame never arrives; the peer gives up. Others are unaffected.
    let mut s = connect(&broker.addr);
    s.write_all(&1000i32.to_be_bytes()).unwrap();
    s.write_all(&[1, 2, 3]).unwrap();
    alive(&broker.addr);
    drop(s);
    alive(&broker.addr);
    assert!(
        !broker.log().contains("panicked"),
        "the broker panicked:\n{}",
        broker.log()
    );
}

/// An ApiVersions request in a version the broker does not know gets the v0 answer with
/// UNSUPPORTED_VERSION and the supported list (KIP-511).
#[test]
fn unknown_api_versions_version_is_answered() {
    let broker = BrokerProcess::start(&[]);
    let mut s = connect(&broker.addr);
    let mut h = Vec::new();
    h.extend_from_slice(&18i16.to_be_bytes());
    h.extend_from_slice(&77i16.to_be_bytes());
    h.extend_from_slice(&5i32.to_be_bytes());
    h.extend_from_slice(&(-1i16).to_be_bytes());
    let mut f = (h.len() as i32).to_be_bytes().to_vec();
    f.extend(h);
    s.write_all(&f).unwrap();
    let mut size = [0u8; 4];
    s.read_exact(&mut size).unwrap();
    let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut frame).unwrap();
    let (corr, mut body) =
        parse_response_header(Bytes::from(frame), ApiKey::ApiVersions, 0).unwrap();
    assert_eq!(corr, 5);
    let r = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(r.error_code, 35);
    assert!(
        r.api_keys
            .iter()
            .any(|k| k.api_key == 0 && k.min_version <= 3 && k.max_version >= 3)
    );
}

/// Bad batches get Kafka's error codes and append nothing; then real clients still read every
/// earlier record and write new ones.
#[test]
fn bad_batches_are_refused_and_nothing_else_is_harmed() {
    let broker = BrokerProcess::start(&["message.max.bytes=10000"]);
    run_python("admin.py", &[&broker.addr, "t", "1"]);
    let mut s = connect(&broker.addr);
    assert_eq!(produce(&mut s, "t", good_batch("before", 50)), 0);
    let end = end_offset(&broker.addr, "t");
    assert_eq!(end, 50);

    let mut bad_crc = good_batch("x", 5);
    let n = bad_crc.len();
    bad_crc[n - 2] ^= 0xff;
    let mut wrong_magic = good_batch("x", 5);
    wrong_magic[batch::field::MAGIC] = 1;
    let mut lying_length = good_batch("x", 5);
    lying_length[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
    let mut good_then_bad = good_batch("y", 3);
    good_then_bad.extend_from_slice(&bad_crc);
    let cases: Vec<(&str, Vec<u8>, i16)> = vec![
        ("wrong CRC", bad_crc, 2),
        ("wrong magic", wrong_magic, 2),
        ("length beyond the bytes", lying_length, 2),
        ("a good batch then a bad one", good_then_bad, 2),
        (
            "over message.max.bytes",
            good_batch(&"z".repeat(200), 100),
            10,
        ),
        ("truncated header", vec![0; 30], 2),
    ];
    for (what, records, code) in cases {
        let mut s = connect(&broker.addr);
        assert_eq!(produce(&mut s, "t", records), code, "{what}");
        assert_eq!(
            end_offset(&broker.addr, "t"),
            end,
            "{what}: something was appended"
        );
    }

    // kcat reads every earlier record and writes new ones.
    let out = Command::new(kcat())
        .args([
            "-b",
            &broker.addr,
            "-C",
            "-t",
            "t",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%s\n",
        ])
        .output()
        .unwrap();
    let values: Vec<String> = check("kcat -C", &out).lines().map(str::to_string).collect();
    assert_eq!(
        values,
        (0..50).map(|i| format!("before-{i}")).collect::<Vec<_>>()
    );
    let mut p = Command::new(kcat())
        .args(["-b", &broker.addr, "-P", "-t", "t", "-X", "acks=all"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    p.stdin
        .take()
        .unwrap()
        .write_all(b"after-1\nafter-2\n")
        .unwrap();
    assert!(p.wait().unwrap().success());
    assert_eq!(end_offset(&broker.addr, "t"), 52);
}

/// The broker's resident memory (VmRSS) in bytes, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kb * 1024
}

/// Slow readers: connections that send many large fetches and never read an answer. The
/// broker reads a connection's next request only once it has written the answer to the one
/// before, so each holds at most one answer while its socket is full: its memory stays
/// bounded (here 16 connections ask for 1,600 answers of 4 MiB, 6.4 GiB, and the broker grows
/// by a small fraction of that), and it goes on serving others.
#[test]
fn slow_readers_that_never_read_their_fetches_do_not_grow_the_broker() {
    let broker = BrokerProcess::start(&[]);
    run_python("admin.py", &[&broker.addr, "wide", "1"]);
    let mut s = connect(&broker.addr);
    let value = vec![b'x'; 1024];
    for _ in 0..40 {
        let recs: Vec<NewRecord> = (0..512)
            .map(|_| NewRecord {
                timestamp: 1_700_000_000_000,
                value: Some(value.clone()),
                ..NewRecord::default()
            })
            .collect();
        let code = produce(
            &mut s,
            "wide",
            batch::encode_batch(&recs, ProducerFields::NONE),
        );
        assert_eq!(code, 0);
    }
    let pid = broker.pid().unwrap();
    let before = rss_bytes(pid);
    let fetch = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(4 << 20)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("wide")))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(4 << 20),
                ]),
        ]);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(4)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("slow-reader")));
    let frame = encode_request(&header, &fetch).unwrap();
    let mut slow: Vec<TcpStream> = Vec::new();
    for _ in 0..16 {
        let mut c = connect(&broker.addr);
        c.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        for _ in 0..100 {
            // A full socket makes the write wait: the broker is not reading it. Stop there.
            if c.write_all(&frame).is_err() {
                break;
            }
        }
        slow.push(c);
    }
    std::thread::sleep(Duration::from_secs(3));
    let during = rss_bytes(pid);
    std::thread::sleep(Duration::from_secs(3));
    let later = rss_bytes(pid);
    let grown = later.saturating_sub(before) as f64 / f64::from(1 << 20);
    eprintln!(
        "broker RSS: {} MiB before, {} MiB with 16 slow readers, {} MiB 3 s later (+{grown:.0} MiB for 6400 MiB asked)",
        before >> 20,
        during >> 20,
        later >> 20
    );
    assert!(
        grown < 256.0,
        "the broker grew by {grown:.0} MiB for readers that never read"
    );
    alive(&broker.addr);
    assert!(end_offset(&broker.addr, "wide") >= 40 * 512);
    drop(slow);
}
