//! The client library against an in-process broker on an in-memory disk, both through the
//! seam: the admin calls, the producer's partitioning and offsets, the consumer's positions
//! and resets, and reconnection when the broker restarts.

use runnel::broker::RunningBroker;
use runnel::client::partitioner::partition_for_key;
use runnel::client::{
    Acks, Admin, ClientConfig, ClientError, ConfigResource, Consumer, ConsumerConfig,
    ConsumerRecord, NewTopic, OffsetReset, OffsetSpec, Producer, ProducerConfig, ProducerRecord,
    RecordHeader, TopicPartition,
};
use runnel::config::BrokerConfig;
use runnel::env::{Disk, Env, MemDisk, RealDisk};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A broker on `port` over `disk`, its data in `dir`.
async fn start_broker_on(disk: Arc<dyn Disk>, dir: &Path, port: u16) -> RunningBroker {
    let addr = format!("127.0.0.1:{port}");
    let cli = runnel::config::CliOverrides {
        listen: Some(addr.clone()),
        advertised: Some(addr),
        data_dir: Some(dir.to_path_buf()),
    };
    let (config, _) = BrokerConfig::load(None, &[], &cli).unwrap();
    runnel::broker::start(Env::with_disk(disk, 1), config)
        .await
        .unwrap()
}

/// A broker on an in-memory disk.
async fn start_broker(disk: &MemDisk, port: u16) -> RunningBroker {
    start_broker_on(Arc::new(disk.clone()), Path::new("/data"), port).await
}

fn client(port: u16) -> ClientConfig {
    ClientConfig::new([format!("127.0.0.1:{port}")])
}

fn producer(port: u16) -> Producer {
    let config = ProducerConfig {
        client: client(port),
        acks: Acks::All,
        linger_ms: 1,
        ..ProducerConfig::default()
    };
    Producer::new(Env::real(), config).unwrap()
}

fn consumer(port: u16, reset: OffsetReset) -> Consumer {
    let config = ConsumerConfig {
        client: client(port),
        auto_offset_reset: reset,
        ..ConsumerConfig::default()
    };
    Consumer::new(Env::real(), config).unwrap()
}

/// Polls until `n` records have arrived (or a minute passes).
async fn poll_n(c: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while got.len() < n && tokio::time::Instant::now() < deadline {
        got.extend(c.poll(Duration::from_millis(500)).await.unwrap());
    }
    got
}

fn value(r: &ConsumerRecord) -> &[u8] {
    r.value.as_deref().unwrap()
}

/// On a real temporary directory: MemDisk cannot rename directories, which topic deletion
/// does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_producer_and_consumer_against_a_broker() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker_on(Arc::new(RealDisk), dir.path(), port).await;
    let admin = Admin::new(Env::real(), client(port)).unwrap();

    let cluster = admin.describe_cluster().await.unwrap();
    assert_eq!(cluster.brokers.len(), 1);
    assert_eq!(cluster.brokers[0].port, i32::from(port));
    let mut topic = NewTopic::new("events");
    topic.partitions = 2;
    topic.replication_factor = 1;
    admin.create_topic(&topic).await.unwrap();
    let e = admin.create_topic(&topic).await.unwrap_err();
    assert_eq!(
        e.code(),
        Some(kafka_protocol::error::ResponseError::TopicAlreadyExists)
    );
    let listed = admin.list_topics().await.unwrap();
    assert!(listed.iter().any(|t| t.name == "events"));
    let d = admin.describe_topic("events").await.unwrap();
    assert_eq!(d.partitions.len(), 2);
    assert!(
        d.partitions
            .iter()
            .all(|p| p.leader == Some(0) && p.isr == vec![0])
    );
    admin
        .describe_configs(&ConfigResource::Broker(0))
        .await
        .unwrap();

    // Ten records to partition 0, pipelined, with timestamps 1000.. and a header.
    let p = producer(port);
    let mut deliveries = Vec::new();
    for i in 0..10i64 {
        let mut r = ProducerRecord::new("events", format!("v{i}")).with_partition(0);
        r.timestamp = Some(1000 + i);
        r.headers = vec![RecordHeader {
            key: "n".into(),
            value: Some(i.to_string().into()),
        }];
        deliveries.push(p.submit(r).await.unwrap());
    }
    for (i, d) in deliveries.into_iter().enumerate() {
        let m = d.wait().await.unwrap();
        assert_eq!(
            (m.partition, m.offset, m.timestamp),
            (0, i as i64, 1000 + i as i64)
        );
    }
    // A partition's only replica is led like any other: replication, not the log, set the
    // high watermark that acks=all waited for and consumers read below.
    let tp = runnel::log::TopicPartition::new("events", 0);
    assert!(broker.broker.replicas.led(&tp).is_some());
    let log = broker.broker.logs.get(&tp).unwrap();
    assert_eq!(log.high_watermark(), Some(10));
    assert_eq!(log.visible_end_offset(), 10);
    // min.insync.replicas above the replica count refuses acks=all but, as Kafka's
    // effectiveMinIsr, still lets acks=1 records become visible.
    let mut strict = NewTopic::new("strict");
    strict.partitions = 1;
    strict.replication_factor = 1;
    strict
        .configs
        .insert("min.insync.replicas".into(), "2".into());
    admin.create_topic(&strict).await.unwrap();
    let one = Producer::new(
        Env::real(),
        ProducerConfig {
            client: client(port),
            acks: Acks::Leader,
            enable_idempotence: false,
            linger_ms: 1,
            ..ProducerConfig::default()
        },
    )
    .unwrap();
    let rec = ProducerRecord::new("strict", "v").with_partition(0);
    one.submit(rec).await.unwrap().wait().await.unwrap();
    let strict_log = broker
        .broker
        .logs
        .get(&runnel::log::TopicPartition::new("strict", 0))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while strict_log.visible_end_offset() < 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(strict_log.visible_end_offset(), 1);
    // A keyed record goes where Java's partitioner sends it.
    let m = p
        .send(
            "events",
            None,
            Some(b"hello".to_vec()),
            Some(b"k".to_vec()),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(m.partition, partition_for_key(b"hello", 2));

    let tp0 = TopicPartition::new("events", 0);
    let end = 10 + i64::from(m.partition == 0);
    for (spec, want) in [
        (OffsetSpec::Latest, end),
        (OffsetSpec::Earliest, 0),
        (OffsetSpec::Timestamp(1005), 5),
    ] {
        let found = admin.list_offsets(&[(tp0.clone(), spec)]).await.unwrap();
        assert_eq!(found[&tp0].offset, want, "{spec:?}");
    }

    // Read from the middle: the first record is exactly the one asked for.
    let mut c = consumer(port, OffsetReset::None);
    c.assign([tp0.clone()]);
    c.seek(&tp0, 3).unwrap();
    let got = poll_n(&mut c, 7).await;
    let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (3..10).collect::<Vec<_>>());
    assert_eq!(value(&got[0]), b"v3");
    assert_eq!(got[0].timestamp, 1003);
    assert_eq!(got[0].headers[0].value.as_deref(), Some(&b"3"[..]));
    assert_eq!(&*got[0].topic, "events");
    c.seek_to_end(&[]).unwrap();
    assert_eq!(c.position(&tp0).await.unwrap(), end);
    c.seek_to_beginning(std::slice::from_ref(&tp0)).unwrap();
    assert_eq!(c.position(&tp0).await.unwrap(), 0);

    // Out of range: an error without a reset policy, a reset with one.
    c.seek(&tp0, 500).unwrap();
    let e = c.poll(Duration::from_secs(10)).await.unwrap_err();
    assert_eq!(
        e.code(),
        Some(kafka_protocol::error::ResponseError::OffsetOutOfRange),
        "{e}"
    );
    let mut c = consumer(port, OffsetReset::Earliest);
    c.assign([tp0.clone()]);
    c.seek(&tp0, 500).unwrap();
    let got = poll_n(&mut c, 1).await;
    assert_eq!(got[0].offset, 0);

    admin.create_partitions("events", 3).await.unwrap();
    assert_eq!(
        admin
            .describe_topic("events")
            .await
            .unwrap()
            .partitions
            .len(),
        3
    );
    admin.delete_topic("events").await.unwrap();
    let e = admin.describe_topic("events").await.unwrap_err();
    assert_eq!(
        e.code(),
        Some(kafka_protocol::error::ResponseError::UnknownTopicOrPartition)
    );
    p.close().await;
    broker.shutdown().await;
}

/// The broker goes away and comes back on the same port with the same disk: the producer and
/// the consumer reconnect on their own, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_reconnect_after_the_broker_restarts() {
    let port = free_port();
    let disk = MemDisk::new();
    let broker = start_broker(&disk, port).await;
    let admin = Admin::new(Env::real(), client(port)).unwrap();
    let mut topic = NewTopic::new("r");
    topic.partitions = 1;
    admin.create_topic(&topic).await.unwrap();
    let p = producer(port);
    let first = p
        .send("r", None, None, Some(b"before".to_vec()), vec![])
        .await;
    assert_eq!(first.unwrap().offset, 0);
    let tp = TopicPartition::new("r", 0);
    let mut c = consumer(port, OffsetReset::Earliest);
    c.assign([tp.clone()]);
    assert_eq!(value(&poll_n(&mut c, 1).await[0]), b"before");

    broker.shutdown().await;
    // While it is down, polls come back empty rather than failing.
    assert!(c.poll(Duration::from_millis(300)).await.unwrap().is_empty());
    let broker = start_broker(&disk, port).await;

    let second = p
        .send("r", None, None, Some(b"after".to_vec()), vec![])
        .await;
    assert_eq!(second.unwrap().offset, 1);
    let got = poll_n(&mut c, 1).await;
    assert_eq!((got[0].offset, value(&got[0])), (1, &b"after"[..]));
    p.close().await;
    broker.shutdown().await;
}

/// Records that can never be delivered fail with the reason, within the delivery timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_fails_sends_with_the_reason() {
    let port = free_port();
    let config = ProducerConfig {
        client: ClientConfig {
            default_api_timeout_ms: 1000,
            ..client(port)
        },
        max_block_ms: 1000,
        ..ProducerConfig::default()
    };
    let p = Producer::new(Env::real(), config).unwrap();
    let e = p
        .send("t", None, None, Some(b"x".to_vec()), vec![])
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Connect { .. }), "{e}");
}

/// KIP-320 on the client side: a fetched record carries its batch's leader epoch, the
/// position remembers it, and a commit stores it with the offset, so whoever resumes from
/// the commit knows which leader epoch the offset belongs to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_and_commits_carry_the_leader_epoch() {
    use runnel::client::cluster::Cluster;
    use runnel::client::coordinator::{self, CommittedOffset, Committer};
    let port = free_port();
    let disk = MemDisk::new();
    let broker = start_broker(&disk, port).await;
    let admin = Admin::new(Env::real(), client(port)).unwrap();
    let mut topic = NewTopic::new("e");
    topic.partitions = 1;
    admin.create_topic(&topic).await.unwrap();
    let p = producer(port);
    p.send("e", None, None, Some(b"x".to_vec()), vec![])
        .await
        .unwrap();
    let tp = TopicPartition::new("e", 0);
    let mut c = consumer(port, OffsetReset::Earliest);
    c.assign([tp.clone()]);
    let got = poll_n(&mut c, 1).await;
    assert_eq!(got[0].leader_epoch, Some(0));
    assert_eq!(c.position_and_epoch(&tp), Some((1, Some(0))));

    let cluster = Cluster::new(Env::real(), client(port), false).unwrap();
    // The offsets topic is created on first use; its coordinator may take a moment.
    let conn = cluster
        .retrying("finding the coordinator", true, || {
            coordinator::find(&cluster, "g")
        })
        .await
        .unwrap();
    let committed = CommittedOffset {
        offset: 1,
        leader_epoch: Some(0),
    };
    let offsets = [(tp.clone(), committed)].into_iter().collect();
    coordinator::commit_offsets(&conn, "g", &Committer::standalone(), &offsets)
        .await
        .unwrap();
    let found = coordinator::fetch_offsets(&conn, "g", Some(std::slice::from_ref(&tp)))
        .await
        .unwrap();
    assert_eq!(found.get(&tp), Some(&committed));
    p.close().await;
    broker.shutdown().await;
}

/// A scripted broker on `listener`: node 1 and the controller by its metadata, it refuses the
/// first `refusals` CreateTopics with NOT_CONTROLLER (a broker whose quorum is electing) and
/// creates the topic after. Counts the CreateTopics it was sent.
async fn not_controller_then_created(
    listener: tokio::net::TcpListener,
    refusals: usize,
    sent: Arc<std::sync::atomic::AtomicUsize>,
) {
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
    use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    use runnel::protocol::{SUPPORTED_APIS, encode_response, parse_request, read_frame};
    use tokio::io::AsyncWriteExt;
    let port = listener.local_addr().unwrap().port();
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let sent = sent.clone();
        tokio::spawn(async move {
            while let Ok(Some(frame)) = read_frame(&mut sock, 1 << 20).await {
                let req = parse_request(frame.freeze()).unwrap();
                let (v, id) = (req.api_version, req.correlation_id);
                let bytes = match req.api_key {
                    ApiKey::ApiVersions => {
                        let keys = SUPPORTED_APIS.iter().map(|(k, lo, hi)| {
                            ApiVersion::default()
                                .with_api_key(*k as i16)
                                .with_min_version(*lo)
                                .with_max_version(*hi)
                        });
                        let resp = ApiVersionsResponse::default().with_api_keys(keys.collect());
                        encode_response(req.api_key, v, id, &resp)
                    }
                    ApiKey::Metadata => {
                        let me = MetadataResponseBroker::default()
                            .with_node_id(BrokerId(1))
                            .with_host(StrBytes::from_static_str("127.0.0.1"))
                            .with_port(i32::from(port));
                        let resp = MetadataResponse::default()
                            .with_brokers(vec![me])
                            .with_controller_id(BrokerId(1));
                        encode_response(req.api_key, v, id, &resp)
                    }
                    ApiKey::CreateTopics => {
                        let n = sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let result = if n < refusals {
                            CreatableTopicResult::default()
                                .with_error_code(ResponseError::NotController.code())
                                .with_error_message(Some(StrBytes::from_static_str(
                                    "no active controller is known yet",
                                )))
                        } else {
                            CreatableTopicResult::default().with_topic_id(uuid::Uuid::from_u128(7))
                        };
                        let resp = CreateTopicsResponse::default().with_topics(vec![
                            result.with_name(TopicName(StrBytes::from_static_str("t"))),
                        ]);
                        encode_response(req.api_key, v, id, &resp)
                    }
                    other => panic!("the scripted broker was sent {other:?}"),
                };
                if sock.write_all(&bytes.unwrap()).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// NOT_CONTROLLER means the change did not happen (the broker asked knew no controller, or
/// was not it): the admin client asks for the controller again and retries, as Kafka's does.
/// A `runnel topic create` during a controller election failed with it in CI.
#[tokio::test]
async fn a_change_refused_with_not_controller_is_retried() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let broker = tokio::spawn(not_controller_then_created(listener, 2, sent.clone()));
    let config = ClientConfig {
        retry_backoff_ms: 10,
        ..client(port)
    };
    let admin = Admin::new(Env::real(), config).unwrap();
    let id = admin.create_topic(&NewTopic::new("t")).await.unwrap();
    assert_eq!(id, uuid::Uuid::from_u128(7));
    assert_eq!(sent.load(std::sync::atomic::Ordering::SeqCst), 3);
    broker.abort();
}
