//! Every API at every advertised version, through the real dispatcher on an in-memory disk:
//! the request decodes, the handler runs, and the response encodes and decodes back.

use super::*;
use crate::config::BrokerConfig;
use crate::env::{Env, MemDisk, SharedRng};
use crate::protocol::{SUPPORTED_APIS, encode_request, parse_request, parse_response_header};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};

async fn broker() -> Arc<Broker> {
    let (broker, shutdown, _) = broker_on(MemDisk::new()).await;
    std::mem::forget(shutdown);
    broker
}

/// A broker on `disk`, with the sender that shuts it down and its lifecycle task (which ends
/// after the controlled shutdown).
async fn broker_on(
    disk: MemDisk,
) -> (
    Arc<Broker>,
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let env = Env {
        disk: Arc::new(disk),
        net: Arc::new(crate::env::RealNetwork),
        clock: Arc::new(crate::env::clock::ManualClock::new(1_700_000_000_000)),
        rng: SharedRng::seeded(5),
        probe: Arc::new(crate::env::NoProbe),
    };
    let cli = crate::config::CliOverrides {
        data_dir: Some("/data".into()),
        ..Default::default()
    };
    // No initial rebalance delay: nothing ticks the coordinator here, so a join is answered
    // in the step that makes it.
    let overrides = ["group.initial.rebalance.delay.ms=0".to_string()];
    let (config, _) = BrokerConfig::load(None, &overrides, &cli).unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let broker = Broker::open(env, config, rx).await.unwrap();
    broker.metadata.start();
    broker.load().await.unwrap();
    // Register with the (local) controller and wait to be unfenced, as a real start does.
    let lifecycle = tokio::spawn(crate::broker::controller::run_lifecycle(broker.clone()));
    assert!(
        broker.wait_ready().await,
        "the controller never unfenced the broker"
    );
    (broker, tx, lifecycle)
}

fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.into()))
}

/// A plausible request body for `api` at `version`, encoded.
fn request(api: ApiKey, version: i16, correlation_id: i32) -> bytes::Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("test")));
    let batch = one_record_batch();
    let frame = match api {
        ApiKey::Produce => encode_request(
            &header,
            &ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(1000)
                .with_topic_data(vec![
                    produce_request::TopicProduceData::default()
                        .with_name(topic("t"))
                        .with_partition_data(vec![
                            produce_request::PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(batch.into())),
                        ]),
                ]),
        ),
        ApiKey::Fetch => encode_request(
            &header,
            &FetchRequest::default()
                .with_max_wait_ms(0)
                .with_max_bytes(1 << 20)
                .with_topics(vec![
                    fetch_request::FetchTopic::default()
                        .with_topic(topic("t"))
                        .with_partitions(vec![
                            fetch_request::FetchPartition::default()
                                .with_partition(0)
                                .with_partition_max_bytes(1 << 20),
                        ]),
                ]),
        ),
        ApiKey::ListOffsets => encode_request(
            &header,
            &ListOffsetsRequest::default().with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(topic("t"))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1),
                    ]),
            ]),
        ),
        ApiKey::OffsetForLeaderEpoch => encode_request(
            &header,
            &OffsetForLeaderEpochRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![
                    offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                        .with_topic(topic("t"))
                        .with_partitions(vec![
                            offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                                .with_current_leader_epoch(-1)
                                .with_leader_epoch(0),
                        ]),
                ]),
        ),
        ApiKey::Metadata => encode_request(&header, &MetadataRequest::default().with_topics(None)),
        ApiKey::ApiVersions => encode_request(&header, &ApiVersionsRequest::default()),
        ApiKey::CreateTopics => encode_request(
            &header,
            &CreateTopicsRequest::default()
                .with_timeout_ms(1000)
                .with_topics(vec![
                    create_topics_request::CreatableTopic::default()
                        .with_name(topic(&format!("c{version}")))
                        .with_num_partitions(2)
                        .with_replication_factor(1),
                ]),
        ),
        ApiKey::DeleteTopics if version >= 6 => encode_request(
            &header,
            &DeleteTopicsRequest::default().with_topics(vec![
                delete_topics_request::DeleteTopicState::default().with_name(Some(topic("nope"))),
            ]),
        ),
        ApiKey::DeleteTopics => encode_request(
            &header,
            &DeleteTopicsRequest::default().with_topic_names(vec![topic("nope")]),
        ),
        ApiKey::DescribeConfigs => encode_request(
            &header,
            &DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("t")),
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(StrBytes::from_static_str("0")),
            ]),
        ),
        ApiKey::AlterConfigs => encode_request(
            &header,
            &AlterConfigsRequest::default().with_resources(vec![
                alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("nope"))
                    .with_configs(vec![
                        alter_configs_request::AlterableConfig::default()
                            .with_name(StrBytes::from_static_str("retention.ms"))
                            .with_value(Some(StrBytes::from_static_str("1000"))),
                    ]),
            ]),
        ),
        ApiKey::IncrementalAlterConfigs => encode_request(
            &header,
            &IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("nope"))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(StrBytes::from_static_str("retention.ms"))
                            .with_config_operation(1),
                    ]),
            ]),
        ),
        ApiKey::CreatePartitions => encode_request(
            &header,
            &CreatePartitionsRequest::default().with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(topic("t"))
                    .with_count(1),
            ]),
        ),
        ApiKey::DescribeCluster => encode_request(&header, &DescribeClusterRequest::default()),
        ApiKey::DescribeQuorum => encode_request(
            &header,
            &DescribeQuorumRequest::default().with_topics(vec![
                describe_quorum_request::TopicData::default()
                    .with_topic_name(topic("__cluster_metadata"))
                    .with_partitions(vec![
                        describe_quorum_request::PartitionData::default().with_partition_index(0),
                    ]),
            ]),
        ),
        ApiKey::InitProducerId => encode_request(
            &header,
            &InitProducerIdRequest::default()
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ),
        ApiKey::FindCoordinator if version >= 4 => encode_request(
            &header,
            &FindCoordinatorRequest::default()
                .with_coordinator_keys(vec![StrBytes::from_static_str("g")]),
        ),
        ApiKey::FindCoordinator => encode_request(
            &header,
            &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")),
        ),
        ApiKey::JoinGroup => encode_request(
            &header,
            &JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(format!("join-{version}"))))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(if version >= 1 { 10_000 } else { -1 })
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![
                    join_group_request::JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_static_str("range"))
                        .with_metadata(bytes::Bytes::from_static(b"m")),
                ]),
        ),
        ApiKey::SyncGroup => encode_request(
            &header,
            &SyncGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_generation_id(1)
                .with_member_id(StrBytes::from_static_str("m"))
                .with_protocol_type((version >= 5).then(|| StrBytes::from_static_str("consumer")))
                .with_protocol_name((version >= 5).then(|| StrBytes::from_static_str("range"))),
        ),
        ApiKey::Heartbeat => encode_request(
            &header,
            &HeartbeatRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_generation_id(1)
                .with_member_id(StrBytes::from_static_str("m")),
        ),
        ApiKey::LeaveGroup if version >= 3 => encode_request(
            &header,
            &LeaveGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_members(vec![
                    leave_group_request::MemberIdentity::default()
                        .with_member_id(StrBytes::from_static_str("m")),
                ]),
        ),
        ApiKey::LeaveGroup => encode_request(
            &header,
            &LeaveGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_member_id(StrBytes::from_static_str("m")),
        ),
        ApiKey::OffsetCommit => encode_request(
            &header,
            &OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("simple")))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(topic("t"))
                        .with_partitions(vec![
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(i64::from(version)),
                        ]),
                ]),
        ),
        ApiKey::OffsetFetch if version >= 8 => encode_request(
            &header,
            &OffsetFetchRequest::default().with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("simple")))
                    .with_topics(None),
            ]),
        ),
        ApiKey::OffsetFetch => encode_request(
            &header,
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("simple")))
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(topic("t"))
                        .with_partition_indexes(vec![0]),
                ])),
        ),
        ApiKey::ListGroups => encode_request(&header, &ListGroupsRequest::default()),
        ApiKey::DescribeGroups => encode_request(
            &header,
            &DescribeGroupsRequest::default().with_groups(vec![
                GroupId(StrBytes::from_static_str("simple")),
                GroupId(StrBytes::from_static_str("none")),
            ]),
        ),
        ApiKey::DeleteGroups => encode_request(
            &header,
            &DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(StrBytes::from_static_str("none"))]),
        ),
        ApiKey::OffsetDelete => encode_request(
            &header,
            &OffsetDeleteRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("simple")))
                .with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(topic("t"))
                        .with_partitions(vec![
                            offset_delete_request::OffsetDeleteRequestPartition::default()
                                .with_partition_index(0),
                        ]),
                ]),
        ),
        other => panic!("no request for {other:?}"),
    };
    frame.unwrap().slice(4..)
}

/// Decodes the response body for `api` at `version` (a typed decode, to prove it parses).
fn decode_response(api: ApiKey, version: i16, mut body: bytes::Bytes) {
    let ok = match api {
        ApiKey::Produce => ProduceResponse::decode(&mut body, version).is_ok(),
        ApiKey::Fetch => FetchResponse::decode(&mut body, version).is_ok(),
        ApiKey::ListOffsets => ListOffsetsResponse::decode(&mut body, version).is_ok(),
        ApiKey::Metadata => MetadataResponse::decode(&mut body, version).is_ok(),
        ApiKey::OffsetForLeaderEpoch => {
            OffsetForLeaderEpochResponse::decode(&mut body, version).is_ok()
        }
        ApiKey::ApiVersions => ApiVersionsResponse::decode(&mut body, version).is_ok(),
        ApiKey::CreateTopics => CreateTopicsResponse::decode(&mut body, version).is_ok(),
        ApiKey::DeleteTopics => DeleteTopicsResponse::decode(&mut body, version).is_ok(),
        ApiKey::DescribeConfigs => DescribeConfigsResponse::decode(&mut body, version).is_ok(),
        ApiKey::AlterConfigs => AlterConfigsResponse::decode(&mut body, version).is_ok(),
        ApiKey::IncrementalAlterConfigs => {
            IncrementalAlterConfigsResponse::decode(&mut body, version).is_ok()
        }
        ApiKey::CreatePartitions => CreatePartitionsResponse::decode(&mut body, version).is_ok(),
        ApiKey::DescribeCluster => DescribeClusterResponse::decode(&mut body, version).is_ok(),
        ApiKey::DescribeQuorum => DescribeQuorumResponse::decode(&mut body, version).is_ok(),
        ApiKey::InitProducerId => InitProducerIdResponse::decode(&mut body, version).is_ok(),
        ApiKey::FindCoordinator => FindCoordinatorResponse::decode(&mut body, version).is_ok(),
        ApiKey::JoinGroup => JoinGroupResponse::decode(&mut body, version).is_ok(),
        ApiKey::SyncGroup => SyncGroupResponse::decode(&mut body, version).is_ok(),
        ApiKey::Heartbeat => HeartbeatResponse::decode(&mut body, version).is_ok(),
        ApiKey::LeaveGroup => LeaveGroupResponse::decode(&mut body, version).is_ok(),
        ApiKey::OffsetCommit => OffsetCommitResponse::decode(&mut body, version).is_ok(),
        ApiKey::OffsetFetch => OffsetFetchResponse::decode(&mut body, version).is_ok(),
        ApiKey::ListGroups => ListGroupsResponse::decode(&mut body, version).is_ok(),
        ApiKey::DescribeGroups => DescribeGroupsResponse::decode(&mut body, version).is_ok(),
        ApiKey::DeleteGroups => DeleteGroupsResponse::decode(&mut body, version).is_ok(),
        ApiKey::OffsetDelete => OffsetDeleteResponse::decode(&mut body, version).is_ok(),
        _ => false,
    };
    assert!(ok, "{api:?} v{version} response does not decode");
    assert!(
        body.is_empty(),
        "{api:?} v{version} response has trailing bytes"
    );
}

#[tokio::test]
async fn every_api_at_every_advertised_version() {
    let b = broker().await;
    let peer: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let mut correlation = 0;
    for (api, lo, hi) in SUPPORTED_APIS {
        for version in *lo..=*hi {
            correlation += 1;
            let req = parse_request(request(*api, version, correlation)).unwrap();
            let bytes = match dispatch(&b, req, peer, ListenerRole::Client).await {
                Reply::Ready(bytes) => bytes,
                Reply::Later(f) => f.await.expect("a late response"),
                Reply::None => panic!("{api:?} v{version}: no response"),
                Reply::Close(why) => panic!("{api:?} v{version}: closed: {why}"),
            };
            let (corr, body) = parse_response_header(bytes.slice(4..), *api, version).unwrap();
            assert_eq!(corr, correlation, "{api:?} v{version}");
            decode_response(*api, version, body);
        }
    }
}

/// librdkafka before 2.1.0 appends one extra byte (an empty tagged-field section) to
/// ListGroups v3 and v4 requests; the request is still answered.
#[tokio::test]
async fn list_groups_with_librdkafkas_extra_trailing_byte_is_answered() {
    let b = broker().await;
    let peer: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    for version in [3, 4] {
        let mut frame = request(ApiKey::ListGroups, version, 9).to_vec();
        frame.push(0);
        let req = parse_request(frame.into()).unwrap();
        let bytes = match dispatch(&b, req, peer, ListenerRole::Client).await {
            Reply::Ready(bytes) => bytes,
            Reply::Later(f) => f.await.expect("a late response"),
            _ => panic!("ListGroups v{version} with a trailing byte was not answered"),
        };
        let (corr, body) =
            parse_response_header(bytes.slice(4..), ApiKey::ListGroups, version).unwrap();
        assert_eq!(corr, 9);
        decode_response(ApiKey::ListGroups, version, body);
    }
}

#[tokio::test]
async fn unknown_api_versions_get_the_kip_511_answer() {
    let b = broker().await;
    let peer: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let mut frame = request(ApiKey::ApiVersions, 3, 77).to_vec();
    frame[2..4].copy_from_slice(&99i16.to_be_bytes());
    let req = parse_request(frame.into()).unwrap();
    let Reply::Ready(bytes) = dispatch(&b, req, peer, ListenerRole::Client).await else {
        panic!("no answer")
    };
    let (corr, mut body) = parse_response_header(bytes.slice(4..), ApiKey::ApiVersions, 0).unwrap();
    assert_eq!(corr, 77);
    let resp = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(resp.error_code, 35);
    assert_eq!(resp.api_keys.len(), SUPPORTED_APIS.len());
}

/// A batch refused as a whole (a CRC that does not match) gets the partition's error and no
/// `record_errors`: those name records that failed a check of their own, and clients report
/// them beside the partition's error (some as UNKNOWN_SERVER_ERROR).
#[tokio::test]
async fn a_batch_refused_whole_has_no_record_errors() {
    let b = broker().await;
    let mut batch = one_record_batch();
    let last = batch.len() - 1;
    batch[last] ^= 0xff;
    let produce = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(topic("corrupt"))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(bytes::Bytes::from(batch))),
                ]),
        ]);
    let resp: ProduceResponse = call(&b, ApiKey::Produce, 9, &produce).await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(
        p.error_code,
        kafka_protocol::error::ResponseError::CorruptMessage.code()
    );
    assert!(p.record_errors.is_empty(), "{:?}", p.record_errors);
}

/// KIP-320: a consumer asks where its epoch ends after a leader change; the leader answers
/// from its epoch cache, and an epoch past the cache ends at the log end; a stale or future
/// current epoch is refused as Fetch refuses it.
#[tokio::test]
async fn offset_for_leader_epoch_answers_where_an_epoch_ends() {
    let b = broker().await;
    let peer: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    // Two records in epoch 0 of a fresh single-replica topic.
    let log = loop {
        if let Ok((log, _)) = b.leader_log("t", 0, -1) {
            break log;
        }
        let _ = dispatch(
            &b,
            parse_request(request(ApiKey::Produce, 9, 1)).unwrap(),
            peer,
            ListenerRole::Client,
        )
        .await;
        tokio::task::yield_now().await;
    };
    let mut batch = one_record_batch();
    log.append(&mut batch, 0).unwrap();
    let end = log.log_end_offset();
    let ask = |current: i32, epoch: i32| {
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::OffsetForLeaderEpoch as i16)
            .with_request_api_version(4)
            .with_correlation_id(9)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        let body = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(topic("t"))
                    .with_partitions(vec![
                        offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(current)
                            .with_leader_epoch(epoch),
                    ]),
            ]);
        parse_request(encode_request(&header, &body).unwrap().slice(4..)).unwrap()
    };
    let answer = |req| {
        let b = b.clone();
        async move {
            let bytes = match dispatch(&b, req, peer, ListenerRole::Client).await {
                Reply::Ready(bytes) => bytes,
                Reply::Later(f) => f.await.expect("a late response"),
                _ => panic!("not answered"),
            };
            let (_, mut body) =
                parse_response_header(bytes.slice(4..), ApiKey::OffsetForLeaderEpoch, 4).unwrap();
            let r = OffsetForLeaderEpochResponse::decode(&mut body, 4).unwrap();
            let p = r.topics[0].partitions[0].clone();
            (p.error_code, p.leader_epoch, p.end_offset)
        }
    };
    assert_eq!(answer(ask(0, 0)).await, (0, 0, end));
    assert_eq!(answer(ask(-1, 0)).await, (0, 0, end));
    let fenced = kafka_protocol::error::ResponseError::UnknownLeaderEpoch.code();
    assert_eq!(answer(ask(1, 0)).await, (fenced, -1, -1));
    // An epoch past the leader's is not known.
    assert_eq!(answer(ask(0, 3)).await.2, -1);
}

/// Sends `body` as `api` at `version` through the dispatcher and decodes the answer.
async fn call<Req, Resp>(b: &Arc<Broker>, api: ApiKey, version: i16, body: &Req) -> Resp
where
    Req: kafka_protocol::protocol::Encodable,
    Resp: Decodable,
{
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(11)
        .with_client_id(Some(StrBytes::from_static_str("test")));
    let frame = encode_request(&header, body).unwrap().slice(4..);
    let peer: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let bytes = match dispatch(b, parse_request(frame).unwrap(), peer, ListenerRole::Client).await {
        Reply::Ready(bytes) => bytes,
        Reply::Later(f) => f.await.expect("a late response"),
        Reply::Close(why) => panic!("the connection was closed: {why}"),
        Reply::None => panic!("{api:?} was not answered"),
    };
    let (_, mut body) = parse_response_header(bytes.slice(4..), api, version).unwrap();
    Resp::decode(&mut body, version).unwrap()
}

/// With no authorizer, Kafka reports every operation a resource supports when a client asks
/// (Metadata v8+, DescribeCluster), and "not requested" (i32::MIN) only when it does not.
#[tokio::test]
async fn authorized_operations_are_every_supported_one_when_asked() {
    let b = broker().await;
    // READ WRITE CREATE DELETE ALTER DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS: bits 3..=8, 10, 11.
    let topic_ops = 0b1101_1111_1000;
    // CREATE ALTER DESCRIBE CLUSTER_ACTION DESCRIBE_CONFIGS ALTER_CONFIGS IDEMPOTENT_WRITE.
    let cluster_ops = 0b1_1111_1010_0000;
    let ask = |v: i16, asked: bool| {
        let mut r = MetadataRequest::default()
            .with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(topic("ops"))),
            ]))
            .with_allow_auto_topic_creation(true)
            .with_include_topic_authorized_operations(asked);
        if v <= 10 {
            r.include_cluster_authorized_operations = asked;
        }
        r
    };
    for v in [8, 10, 12] {
        let r: MetadataResponse = call(&b, ApiKey::Metadata, v, &ask(v, true)).await;
        assert_eq!(r.topics[0].topic_authorized_operations, topic_ops, "v{v}");
        let cluster = if v <= 10 { cluster_ops } else { i32::MIN };
        assert_eq!(r.cluster_authorized_operations, cluster, "v{v}");
        let r: MetadataResponse = call(&b, ApiKey::Metadata, v, &ask(v, false)).await;
        assert_eq!(r.topics[0].topic_authorized_operations, i32::MIN, "v{v}");
        assert_eq!(r.cluster_authorized_operations, i32::MIN, "v{v}");
    }
    for asked in [true, false] {
        let req =
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(asked);
        let r: DescribeClusterResponse = call(&b, ApiKey::DescribeCluster, 1, &req).await;
        let want = if asked { cluster_ops } else { i32::MIN };
        assert_eq!(r.cluster_authorized_operations, want);
    }
}

/// IncrementalAlterConfigs and AlterConfigs change a live topic's configs as Kafka does:
/// SET, DELETE, APPEND and SUBTRACT; validate_only changes nothing; a bad value, an unknown
/// topic, a list operation on a scalar key and compaction are refused with Kafka's codes; the
/// open log takes the new settings; AlterConfigs replaces the whole set.
#[tokio::test]
async fn topic_configs_change_live_as_kafka_alters_them() {
    use crate::log::PartitionLog;
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let b = broker().await;
    create_with(&b, "live", &[]).await;
    let log: Arc<PartitionLog> = b.partition("live", 0).unwrap();
    let alter = |name: &'static str,
                 ops: Vec<(&'static str, i8, Option<&'static str>)>,
                 validate_only: bool| {
        IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str(name))
                    .with_configs(
                        ops.into_iter()
                            .map(|(k, op, v)| {
                                AlterableConfig::default()
                                    .with_name(StrBytes::from_static_str(k))
                                    .with_config_operation(op)
                                    .with_value(v.map(StrBytes::from_static_str))
                            })
                            .collect(),
                    ),
            ])
    };
    let code = |b: Arc<Broker>, req: IncrementalAlterConfigsRequest| async move {
        let r: IncrementalAlterConfigsResponse =
            call(&b, ApiKey::IncrementalAlterConfigs, 1, &req).await;
        r.responses[0].error_code
    };
    let configs = |b: &Arc<Broker>| b.metadata.state().topics["live"].configs.clone();
    let err = |e: kafka_protocol::error::ResponseError| e.code();
    use kafka_protocol::error::ResponseError as E;

    // validate_only: checked, not applied.
    let set = alter("live", vec![("retention.ms", 0, Some("1000"))], true);
    assert_eq!(code(b.clone(), set).await, 0);
    assert!(configs(&b).is_empty());
    // SET, twice in one request is refused; then applied, and the open log has it.
    let set = alter(
        "live",
        vec![
            ("retention.ms", 0, Some("1000")),
            ("segment.bytes", 0, Some("1048576")),
        ],
        false,
    );
    assert_eq!(code(b.clone(), set).await, 0);
    assert_eq!(configs(&b)["retention.ms"], "1000");
    let mut applied = false;
    for _ in 0..1000 {
        if log.config().retention_ms == 1000 && log.config().segment_bytes == 1_048_576 {
            applied = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(
        applied,
        "the open log did not take the new configs: {:?}",
        log.config()
    );
    let twice = alter(
        "live",
        vec![("retention.ms", 0, Some("1")), ("retention.ms", 1, None)],
        false,
    );
    assert_eq!(code(b.clone(), twice).await, err(E::InvalidRequest));
    // Refused: a bad value, an unknown key, compaction, a list operation on a scalar, an
    // unknown topic.
    for (ops, want) in [
        (vec![("retention.ms", 0, Some("soon"))], E::InvalidConfig),
        (vec![("no.such.key", 0, Some("1"))], E::InvalidConfig),
        (
            vec![("cleanup.policy", 2, Some("compact"))],
            E::InvalidConfig,
        ),
        (vec![("retention.ms", 2, Some("5"))], E::InvalidConfig),
    ] {
        assert_eq!(
            code(b.clone(), alter("live", ops.clone(), false)).await,
            err(want),
            "{ops:?}"
        );
    }
    assert_eq!(
        code(
            b.clone(),
            alter("nope", vec![("retention.ms", 1, None)], false)
        )
        .await,
        err(E::UnknownTopicOrPartition)
    );
    assert_eq!(configs(&b)["retention.ms"], "1000");
    // APPEND to a list already holding the item leaves it; SUBTRACT empties it.
    let append = alter("live", vec![("cleanup.policy", 2, Some("delete"))], false);
    assert_eq!(code(b.clone(), append).await, 0);
    assert_eq!(configs(&b)["cleanup.policy"], "delete");
    // DELETE falls back to the default.
    let delete = alter(
        "live",
        vec![("retention.ms", 1, None), ("cleanup.policy", 1, None)],
        false,
    );
    assert_eq!(code(b.clone(), delete).await, 0);
    assert!(!configs(&b).contains_key("retention.ms"));
    // AlterConfigs replaces the whole set: segment.bytes goes, flush.messages comes.
    let replace = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("live"))
            .with_configs(vec![
                alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("flush.messages"))
                    .with_value(Some(StrBytes::from_static_str("1"))),
            ]),
    ]);
    let r: AlterConfigsResponse = call(&b, ApiKey::AlterConfigs, 2, &replace).await;
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(
        configs(&b).into_iter().collect::<Vec<_>>(),
        vec![("flush.messages".to_string(), "1".to_string())]
    );
    // A broker resource: the cluster-wide default of a topic default takes effect on the
    // live topic, which has no retention.ms of its own now.
    let broker_res = |name: &'static str, key: &'static str, value: &'static str| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(StrBytes::from_static_str(name))
                .with_configs(vec![
                    AlterableConfig::default()
                        .with_name(StrBytes::from_static_str(key))
                        .with_config_operation(0)
                        .with_value(Some(StrBytes::from_static_str(value))),
                ]),
        ])
    };
    let r: IncrementalAlterConfigsResponse = call(
        &b,
        ApiKey::IncrementalAlterConfigs,
        1,
        &broker_res("", "log.retention.ms", "1000"),
    )
    .await;
    assert_eq!(r.responses[0].error_code, 0, "{:?}", r.responses[0]);
    let tp = crate::log::TopicPartition::new("live", 0);
    assert_eq!(b.logs.get(&tp).unwrap().config().retention_ms, 1000);
    // Keys runnel changes only at start-up are refused with a message saying why.
    for (key, why) in [
        ("num.partitions", "read-only"),
        ("log.retention.hours", "read-only"),
        ("listeners", "restart"),
        ("unclean.leader.election.enable", "cluster-wide"),
        ("ssl.keystore.password", "password"),
    ] {
        let r: IncrementalAlterConfigsResponse = call(
            &b,
            ApiKey::IncrementalAlterConfigs,
            1,
            &broker_res("0", key, "1"),
        )
        .await;
        assert_eq!(r.responses[0].error_code, err(E::InvalidConfig), "{key}");
        let message = r.responses[0].error_message.as_ref().unwrap();
        assert!(message.contains(why), "{key}: {message}");
    }
}

/// Kafka enforces `min.insync.replicas` even on a partition with one replica: its ISR of one
/// is too small for acks=all when the topic asks for two, while acks=1 is taken.
#[tokio::test]
async fn acks_all_to_a_single_replica_below_min_insync_is_refused() {
    use kafka_protocol::error::ResponseError as E;
    let b = broker().await;
    create_with(&b, "strict", &[("min.insync.replicas", "2")]).await;
    let p = produce_batch(&b, "strict", -1, one_record_batch()).await;
    assert_eq!(p.error_code, E::NotEnoughReplicas.code(), "{p:?}");
    assert_eq!(b.partition("strict", 0).unwrap().offsets().log_end, 0);
    let p = produce_batch(&b, "strict", 1, one_record_batch()).await;
    assert_eq!((p.error_code, p.base_offset), (0, 0), "{p:?}");
}

/// A clean shutdown answers an acks=all produce as written once its records are synced, even
/// if the sync was still running when the shutdown began: the broker syncs the partitions it
/// leads before the controlled shutdown moves their leaderships. A partition's only replica
/// otherwise resigned first and answered NOT_LEADER_OR_FOLLOWER for records it kept, and a
/// producer without idempotence wrote them again after the restart (`tests/restart.rs` saw a
/// duplicate one run in three).
#[tokio::test]
async fn a_clean_shutdown_answers_acks_all_whose_sync_was_under_way() {
    let disk = MemDisk::new();
    let (b, shutdown, lifecycle) = broker_on(disk.clone()).await;
    tokio::spawn(b.clone().follow_metadata());
    create_with(&b, "t", &[]).await;
    let tp = crate::log::TopicPartition::new("t", 0);
    while b.replicas.led(&tp).is_none() {
        tokio::task::yield_now().await;
    }
    let log = b.partition("t", 0).unwrap();
    disk.hold_syncs(Some(log.dir().to_path_buf()));
    let batch = one_record_batch();
    let produce = {
        let b = b.clone();
        tokio::spawn(async move { produce_batch_within(&b, "t", -1, batch, 60_000).await })
    };
    while log.offsets().log_end == 0 {
        tokio::task::yield_now().await;
    }
    shutdown.send_replace(true);
    // The controlled shutdown waits for the sync: the leadership stays, the answer waits.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        !produce.is_finished(),
        "answered before the records were synced"
    );
    assert!(b.replicas.led(&tp).is_some_and(|l| l.is_current()));
    disk.hold_syncs(None);
    let p = produce.await.unwrap();
    assert_eq!((p.error_code, p.base_offset), (0, 0), "{p:?}");
    tokio::time::timeout(std::time::Duration::from_secs(60), lifecycle)
        .await
        .expect("the controlled shutdown never finished")
        .unwrap();
    assert!(
        !matches!(
            b.leadership("t", 0),
            crate::broker::Leadership::Leader { .. }
        ),
        "the controlled shutdown moved no leadership"
    );
}

/// A batch of one record (value "v", timestamp 5), without producer fields.
fn one_record_batch() -> Vec<u8> {
    crate::record::batch::encode_batch(
        &[crate::record::batch::NewRecord {
            timestamp: 5,
            value: Some(b"v".to_vec()),
            ..Default::default()
        }],
        crate::record::batch::ProducerFields::NONE,
    )
}

/// Creates topic `name` (one partition, one replica) with `configs`, and waits for its log.
async fn create_with(
    b: &Arc<Broker>,
    name: &'static str,
    configs: &[(&'static str, &'static str)],
) {
    let created: CreateTopicsResponse = call(
        b,
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(topic(name))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            create_topics_request::CreatableTopicConfig::default()
                                .with_name(StrBytes::from_static_str(k))
                                .with_value(Some(StrBytes::from_static_str(v)))
                        })
                        .collect(),
                ),
        ]),
    )
    .await;
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0]);
    while b.partition(name, 0).is_none() {
        tokio::task::yield_now().await;
    }
}

/// Produce v9 of one batch to partition 0 of `name` with `acks`.
async fn produce_batch(
    b: &Arc<Broker>,
    name: &'static str,
    acks: i16,
    batch: Vec<u8>,
) -> produce_response::PartitionProduceResponse {
    produce_batch_within(b, name, acks, batch, 1000).await
}

/// [`produce_batch`] with the request's `timeout_ms`.
async fn produce_batch_within(
    b: &Arc<Broker>,
    name: &'static str,
    acks: i16,
    batch: Vec<u8>,
    timeout_ms: i32,
) -> produce_response::PartitionProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(topic(name))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(bytes::Bytes::from(batch))),
                ]),
        ]);
    let resp: ProduceResponse = call(b, ApiKey::Produce, 9, &req).await;
    resp.responses[0].partition_responses[0].clone()
}

/// `compression.type` recompresses what the producer sent, keeping its producer fields;
/// `message.timestamp.type=LogAppendTime` stamps it and answers `log_append_time_ms`; the
/// timestamp bounds name each record outside them in `record_errors`.
#[tokio::test]
async fn topic_record_rules_recompress_stamp_and_bound_timestamps() {
    use crate::record::batch::{self, NewRecord, ProducerFields};
    use crate::record::compression::Compression;
    use kafka_protocol::error::ResponseError as E;
    let b = broker().await;
    let now = b.env.clock.now_ms();
    let records = |ts: &[i64]| -> Vec<NewRecord> {
        ts.iter()
            .map(|&t| NewRecord {
                timestamp: t,
                value: Some(b"value value value value".to_vec()),
                ..Default::default()
            })
            .collect()
    };
    let producer = ProducerFields {
        producer_id: 7,
        producer_epoch: 0,
        base_sequence: 0,
    };
    create_with(
        &b,
        "stamped",
        &[
            ("compression.type", "zstd"),
            ("message.timestamp.type", "LogAppendTime"),
        ],
    )
    .await;
    let p = produce_batch(
        &b,
        "stamped",
        1,
        batch::encode_batch(&records(&[1, 2, 3]), producer),
    )
    .await;
    assert_eq!((p.error_code, p.base_offset), (0, 0), "{p:?}");
    assert_eq!(p.log_append_time_ms, now);
    let log = b.partition("stamped", 0).unwrap();
    let read = log.read(0, 1 << 20, i64::MAX, true).unwrap();
    let h = batch::validate_batch(&read.records).unwrap();
    assert_eq!(h.compression().unwrap(), Compression::Zstd);
    assert!(h.is_log_append_time());
    assert_eq!(
        (h.max_timestamp, h.producer_id, h.records_count),
        (now, 7, 3)
    );

    create_with(
        &b,
        "bounded",
        &[
            ("message.timestamp.before.max.ms", "60000"),
            ("message.timestamp.after.max.ms", "1000"),
        ],
    )
    .await;
    let p = produce_batch(
        &b,
        "bounded",
        1,
        batch::encode_batch(
            &records(&[now, now - 120_000, now, now + 5_000]),
            ProducerFields::NONE,
        ),
    )
    .await;
    assert_eq!(p.error_code, E::InvalidTimestamp.code(), "{p:?}");
    assert_eq!(p.log_append_time_ms, -1);
    let named: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(named, vec![1, 3]);
    assert_eq!(b.partition("bounded", 0).unwrap().offsets().log_end, 0);
    let p = produce_batch(
        &b,
        "bounded",
        1,
        batch::encode_batch(&records(&[now - 1_000]), ProducerFields::NONE),
    )
    .await;
    assert_eq!((p.error_code, p.log_append_time_ms), (0, -1), "{p:?}");
}
