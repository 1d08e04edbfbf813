//! The producer against a scripted broker on localhost: what it retries, what it does not,
//! and how it recovers from a request that is never answered.

use super::*;
use crate::protocol::{RequestFrame, encode_response, parse_request, read_frame};
use crate::record::batch::BatchHeader;
use bytes::Bytes;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, BrokerId, MetadataResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::AsyncWriteExt;

/// What the scripted broker does with the n-th produce request (counting from 0).
#[derive(Clone, Copy)]
enum Answer {
    /// Append and answer with offsets.
    Ok,
    /// Answer with this error code.
    Error(ResponseError),
    /// Never answer.
    Swallow,
}

/// A broker that speaks just enough Kafka: one topic "t" with one partition it leads.
struct Scripted {
    /// Where it listens.
    addr: String,
    /// Metadata requests seen.
    metadata: Arc<AtomicUsize>,
    /// Produce requests seen.
    produces: Arc<AtomicUsize>,
}

async fn scripted(script: Vec<Answer>) -> Scripted {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let metadata = Arc::new(AtomicUsize::new(0));
    let produces = Arc::new(AtomicUsize::new(0));
    let next_offset = Arc::new(AtomicUsize::new(0));
    let (m, p, port) = (
        metadata.clone(),
        produces.clone(),
        listener.local_addr().unwrap().port(),
    );
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (m, p, o, script) = (m.clone(), p.clone(), next_offset.clone(), script.clone());
            tokio::spawn(async move {
                let (mut rd, mut wr) = stream.into_split();
                while let Ok(Some(frame)) = read_frame(&mut rd, 1 << 24).await {
                    let req = parse_request(frame.freeze()).unwrap();
                    let reply = match req.api_key {
                        ApiKey::ApiVersions => Some(api_versions(&req)),
                        ApiKey::Metadata => {
                            m.fetch_add(1, Ordering::SeqCst);
                            Some(metadata_answer(&req, port))
                        }
                        ApiKey::Produce => {
                            let n = p.fetch_add(1, Ordering::SeqCst);
                            produce_answer(&req, script.get(n).copied().unwrap_or(Answer::Ok), &o)
                        }
                        other => panic!("unexpected {other:?}"),
                    };
                    if let Some(bytes) = reply {
                        if wr.write_all(&bytes).await.is_err() {
                            break;
                        }
                    }
                }
            });
        }
    });
    Scripted {
        addr,
        metadata,
        produces,
    }
}

/// The real broker's ApiVersions answer.
fn api_versions(req: &RequestFrame) -> Bytes {
    match crate::broker::api::api_versions::handle(req) {
        crate::broker::api::Reply::Ready(b) => b,
        _ => panic!("ApiVersions answers at once"),
    }
}

/// Topic "t" with one partition led by broker 0 at 127.0.0.1:`port`.
fn one_partition_metadata(port: u16) -> MetadataResponse {
    MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(0))
                .with_host(StrBytes::from_static_str("127.0.0.1"))
                .with_port(i32::from(port)),
        ])
        .with_controller_id(BrokerId(0))
        .with_topics(vec![
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                .with_partitions(vec![
                    MetadataResponsePartition::default()
                        .with_partition_index(0)
                        .with_leader_id(BrokerId(0))
                        .with_replica_nodes(vec![BrokerId(0)])
                        .with_isr_nodes(vec![BrokerId(0)]),
                ]),
        ])
}

fn metadata_answer(req: &RequestFrame, port: u16) -> Bytes {
    let resp = one_partition_metadata(port);
    encode_response(ApiKey::Metadata, req.api_version, req.correlation_id, &resp).unwrap()
}

fn produce_answer(req: &RequestFrame, answer: Answer, next: &AtomicUsize) -> Option<Bytes> {
    let mut body = req.body.clone();
    let r = ProduceRequest::decode(&mut body, req.api_version).unwrap();
    let part = &r.topic_data[0].partition_data[0];
    let count = BatchHeader::parse(part.records.as_ref().unwrap())
        .unwrap()
        .records_count;
    let base = match answer {
        Answer::Swallow => return None,
        Answer::Ok => next.fetch_add(count as usize, Ordering::SeqCst) as i64,
        Answer::Error(_) => -1,
    };
    if r.acks == 0 {
        return None;
    }
    let code = match answer {
        Answer::Error(e) => e.code(),
        _ => 0,
    };
    let resp = ProduceResponse::default().with_responses(vec![
        TopicProduceResponse::default()
            .with_name(r.topic_data[0].name.clone())
            .with_partition_responses(vec![
                PartitionProduceResponse::default()
                    .with_index(part.index)
                    .with_error_code(code)
                    .with_base_offset(base)
                    .with_log_append_time_ms(-1),
            ]),
    ]);
    Some(encode_response(ApiKey::Produce, req.api_version, req.correlation_id, &resp).unwrap())
}

/// A producer for the scripted broker. Only the test of a swallowed request uses a short
/// request timeout: elsewhere a slow machine must not cause retries the test does not expect.
fn producer(b: &Scripted, acks: Acks, request_timeout_ms: u64) -> Producer {
    let config = ProducerConfig {
        client: ClientConfig {
            request_timeout_ms,
            retry_backoff_ms: 10,
            ..ClientConfig::new([b.addr.clone()])
        },
        acks,
        linger_ms: 0,
        delivery_timeout_ms: 60_000,
        // The scripted broker answers Metadata and Produce only.
        enable_idempotence: false,
        ..ProducerConfig::default()
    };
    Producer::new(
        Env::with_disk(Arc::new(crate::env::MemDisk::new()), 3),
        config,
    )
    .unwrap()
}

async fn send(p: &Producer, v: &str) -> Result<RecordMetadata, ClientError> {
    p.send("t", None, None, Some(v.as_bytes().to_vec()), vec![])
        .await
}

#[tokio::test]
async fn not_leader_refreshes_metadata_and_retries() {
    let b = scripted(vec![
        Answer::Error(ResponseError::NotLeaderOrFollower),
        Answer::Error(ResponseError::NotLeaderOrFollower),
    ])
    .await;
    let p = producer(&b, Acks::All, 20_000);
    let m = send(&p, "a").await.unwrap();
    assert_eq!((m.partition, m.offset), (0, 0));
    assert_eq!(b.produces.load(Ordering::SeqCst), 3);
    assert!(
        b.metadata.load(Ordering::SeqCst) >= 2,
        "the leader was looked up again"
    );
    assert_eq!(send(&p, "b").await.unwrap().offset, 1);
}

#[tokio::test]
async fn a_fatal_error_fails_the_record_without_retrying() {
    let b = scripted(vec![Answer::Error(ResponseError::MessageTooLarge)]).await;
    let p = producer(&b, Acks::Leader, 20_000);
    let e = send(&p, "a").await.unwrap_err();
    assert_eq!(e.code(), Some(ResponseError::MessageTooLarge), "{e}");
    assert_eq!(b.produces.load(Ordering::SeqCst), 1);
    // The producer carries on.
    assert_eq!(send(&p, "b").await.unwrap().offset, 0);
}

#[tokio::test]
async fn an_unanswered_request_times_out_and_is_sent_again_on_a_new_connection() {
    let b = scripted(vec![Answer::Swallow]).await;
    let p = producer(&b, Acks::All, 300);
    let m = send(&p, "a").await.unwrap();
    // At least the swallowed attempt and the retry (a very slow machine may time out more).
    assert!(b.produces.load(Ordering::SeqCst) >= 2);
    assert!(m.offset >= 0);
}

#[tokio::test]
async fn acks_zero_completes_once_written_with_no_offset() {
    let b = scripted(vec![]).await;
    let p = producer(&b, Acks::None, 20_000);
    let m = send(&p, "a").await.unwrap();
    assert_eq!((m.partition, m.offset), (0, -1));
    p.flush().await;
    p.close().await;
}

#[tokio::test]
async fn pipelined_records_keep_their_order_and_offsets() {
    let b = scripted(vec![]).await;
    let p = producer(&b, Acks::Leader, 20_000);
    let mut pending = Vec::new();
    for i in 0..500 {
        pending.push(
            p.submit(ProducerRecord::new("t", format!("v{i}")))
                .await
                .unwrap(),
        );
    }
    p.flush().await;
    for (i, d) in pending.into_iter().enumerate() {
        assert_eq!(d.try_result().unwrap().unwrap().offset, i as i64);
    }
    assert!(
        b.produces.load(Ordering::SeqCst) < 500,
        "records were batched"
    );
}

/// Seed 9708657: a batch stamped by the old identity was still being retried when the
/// producer bumped its epoch; a newer batch sent at once as the new identity's sequence 0 was
/// written first. The partition now drains nothing new until the older batches are done.
#[test]
fn a_partition_waits_for_its_older_identity_batches_before_restarting_sequences() {
    use crate::client::metadata::ClusterMetadata;
    use accumulator::{Accumulator, Limits};
    let resp = one_partition_metadata(9092);
    let md = ClusterMetadata::from_response(&resp);
    let mut acc = Accumulator::new(Limits {
        batch_bytes: 16,
        linger: Duration::ZERO,
        delivery_timeout: Duration::from_secs(120),
        one_in_flight: false,
    });
    let record = || crate::record::batch::NewRecord {
        timestamp: 0,
        key: None,
        value: Some(b"v".to_vec()),
        headers: Vec::new(),
    };
    let now = tokio::time::Instant::now();
    let first_id = ProducerIdentity {
        producer_id: 1,
        producer_epoch: 0,
    };
    acc.set_identity(Some(first_id));
    acc.append("t", 0, record(), 10, || now).unwrap();
    let mut old = acc.drain(0, &md, 1 << 20, now);
    assert_eq!(old.len(), 1);
    old[0].seal();
    // The old batch is in flight (or backing off) when the producer gets a new identity.
    acc.set_identity(Some(ProducerIdentity {
        producer_id: 1,
        producer_epoch: 1,
    }));
    acc.append("t", 0, record(), 10, || now).unwrap();
    assert!(acc.ready(now, &md).brokers.is_empty());
    assert!(acc.drain(0, &md, 1 << 20, now).is_empty());
    // Retried, the old batch goes first with its old bytes; the new one still waits.
    acc.reenqueue(old.pop().unwrap(), now);
    let mut again = acc.drain(0, &md, 1 << 20, now);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].producer.producer_epoch, 0);
    assert!(acc.drain(0, &md, 1 << 20, now).is_empty());
    let ack = BatchAck {
        base_offset: 0,
        log_append_time_ms: -1,
    };
    acc.finish(again.pop().unwrap(), Ok(ack));
    let new = acc.drain(0, &md, 1 << 20, now);
    assert_eq!(new.len(), 1);
    assert_eq!(
        (
            new[0].producer.producer_epoch,
            new[0].producer.base_sequence
        ),
        (1, 0)
    );
}
