//! The connection against a scripted broker on an in-memory pipe: pipelining, version
//! negotiation, and every way the other end can misbehave.

use super::*;
use crate::protocol::{RequestFrame, SUPPORTED_APIS, encode_response, parse_request};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use tokio::io::{AsyncRead, DuplexStream};

fn config() -> ClientConfig {
    ClientConfig {
        request_timeout_ms: 1000,
        response_bytes_max: 1 << 16,
        ..ClientConfig::default()
    }
}

fn api_keys(apiversions_max: i16) -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|(k, lo, hi)| {
            let hi = if *k == ApiKey::ApiVersions {
                apiversions_max
            } else {
                *hi
            };
            ApiVersion::default()
                .with_api_key(*k as i16)
                .with_min_version(*lo)
                .with_max_version(hi)
        })
        .collect()
}

async fn next_request(rd: &mut (impl AsyncRead + Unpin)) -> RequestFrame {
    let frame = read_frame(rd, 1 << 20).await.unwrap().unwrap();
    parse_request(frame.freeze()).unwrap()
}

/// A connection over a pipe whose broker end has answered the handshake.
async fn connected() -> (BrokerConnection, DuplexStream) {
    let (client, mut server) = tokio::io::duplex(1 << 16);
    let mut conn = BrokerConnection::over("fake:1", Box::new(client), &config());
    let broker = async {
        let req = next_request(&mut server).await;
        let resp = ApiVersionsResponse::default().with_api_keys(api_keys(4));
        let bytes = encode_response(
            ApiKey::ApiVersions,
            req.api_version,
            req.correlation_id,
            &resp,
        );
        server.write_all(&bytes.unwrap()).await.unwrap();
    };
    let (versions, ()) = tokio::join!(conn.negotiate(), broker);
    conn.versions = versions.unwrap();
    (conn, server)
}

fn metadata_for(topic: &str) -> MetadataRequest {
    MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(topic.into())))),
    ]))
}

/// Answers a Metadata request naming the topic it asked about.
fn metadata_answer(req: &RequestFrame) -> Bytes {
    let mut body = req.body.clone();
    let asked = MetadataRequest::decode(&mut body, req.api_version).unwrap();
    let name = asked.topics.unwrap()[0].name.clone();
    let resp = MetadataResponse::default()
        .with_topics(vec![MetadataResponseTopic::default().with_name(name)]);
    encode_response(ApiKey::Metadata, req.api_version, req.correlation_id, &resp).unwrap()
}

fn topic_of(resp: &MetadataResponse) -> String {
    resp.topics[0].name.as_ref().unwrap().0.to_string()
}

#[tokio::test]
async fn pipelined_requests_are_matched_by_correlation_id() {
    let (conn, mut server) = connected().await;
    assert_eq!(conn.version_for(ApiKey::Metadata).unwrap(), 12);
    let a = conn.start(&metadata_for("a")).await.unwrap();
    let b = conn.start(&metadata_for("b")).await.unwrap();
    let c = conn.start(&metadata_for("c")).await.unwrap();
    // The broker answers in reverse order; each answer still reaches its request.
    let mut reqs = Vec::new();
    for _ in 0..3 {
        reqs.push(next_request(&mut server).await);
    }
    for r in reqs.iter().rev() {
        server.write_all(&metadata_answer(r)).await.unwrap();
    }
    assert_eq!(topic_of(&c.wait().await.unwrap()), "c");
    assert_eq!(topic_of(&a.wait().await.unwrap()), "a");
    assert_eq!(topic_of(&b.wait().await.unwrap()), "b");
    assert!(conn.is_alive());
}

#[tokio::test]
async fn an_unknown_api_versions_version_is_retried_in_the_brokers() {
    let (client, mut server) = tokio::io::duplex(1 << 16);
    let mut conn = BrokerConnection::over("fake:1", Box::new(client), &config());
    let broker = async {
        // KIP-511: UNSUPPORTED_VERSION, in v0, with the broker's list (ApiVersions up to v2).
        let first = next_request(&mut server).await;
        assert_eq!(first.api_version, 4);
        let no = ApiVersionsResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code())
            .with_api_keys(api_keys(2));
        let bytes = encode_response(ApiKey::ApiVersions, 0, first.correlation_id, &no).unwrap();
        server.write_all(&bytes).await.unwrap();
        let second = next_request(&mut server).await;
        assert_eq!(second.api_version, 2);
        let yes = ApiVersionsResponse::default().with_api_keys(api_keys(2));
        let bytes = encode_response(ApiKey::ApiVersions, 2, second.correlation_id, &yes).unwrap();
        server.write_all(&bytes).await.unwrap();
    };
    let (versions, ()) = tokio::join!(conn.negotiate(), broker);
    conn.versions = versions.unwrap();
    assert_eq!(conn.version_for(ApiKey::Produce).unwrap(), 11);
    assert!(matches!(
        conn.version_for(ApiKey::AddPartitionsToTxn),
        Err(ClientError::UnsupportedVersion { .. })
    ));
}

/// Sends one request, lets the broker write `reply` (and then close if `close`), and
/// returns what the request got.
async fn answered_with(
    reply: Vec<u8>,
    close: bool,
) -> (Result<MetadataResponse, ClientError>, BrokerConnection) {
    let (conn, mut server) = connected().await;
    let pending = conn.start(&metadata_for("t")).await.unwrap();
    next_request(&mut server).await;
    server.write_all(&reply).await.unwrap();
    if close {
        drop(server);
        return (pending.wait().await, conn);
    }
    let result = pending.wait().await;
    drop(server);
    (result, conn)
}

#[tokio::test]
async fn garbage_from_the_broker_fails_cleanly() {
    // A negative frame size.
    let (r, conn) = answered_with(vec![0xff, 0xff, 0xff, 0xf0, 1, 2], false).await;
    assert!(r.unwrap_err().outcome_unknown());
    assert!(!conn.is_alive());
    // A frame larger than the limit, refused before it is read.
    let (r, _) = answered_with(vec![0x7f, 0, 0, 0], false).await;
    assert!(r.is_err());
    // An answer to a request never sent.
    let (r, conn) = answered_with(vec![0, 0, 0, 5, 0, 0, 0x30, 0x39, 0], false).await;
    assert!(matches!(r, Err(ClientError::Protocol { .. })), "{r:?}");
    assert!(!conn.is_alive());
    // Later requests fail at once instead of hanging.
    assert!(conn.start(&metadata_for("u")).await.is_err());
    // The right correlation id (the handshake used 0) but a body that does not decode.
    let (r, _) = answered_with(vec![0, 0, 0, 7, 0, 0, 0, 1, 0xff, 0xff, 0xff], false).await;
    assert!(matches!(r, Err(ClientError::Protocol { .. })), "{r:?}");
    // Every prefix of every junk pattern: never a panic, always an error.
    for n in 0..24u8 {
        let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(97).wrapping_add(n)).collect();
        let (r, _) = answered_with(junk, true).await;
        assert!(r.is_err());
    }
}

#[tokio::test]
async fn a_truncated_frame_fails_the_request_with_an_unknown_outcome() {
    let mut reply = vec![0, 0, 0, 100];
    reply.extend([0, 0, 0, 1, 9, 9, 9, 9, 9, 9]);
    let (r, conn) = answered_with(reply, true).await;
    let e = r.unwrap_err();
    assert!(matches!(e, ClientError::Disconnected { .. }), "{e}");
    assert!(e.outcome_unknown() && e.is_retriable());
    assert!(!conn.is_alive());
}

#[tokio::test]
async fn a_timeout_breaks_the_connection_and_fails_everything_in_flight() {
    let (mut conn, mut server) = connected().await;
    conn.request_timeout = Duration::from_millis(100);
    let a = conn.start(&metadata_for("a")).await.unwrap();
    let b = conn.start(&metadata_for("b")).await.unwrap();
    next_request(&mut server).await;
    next_request(&mut server).await;
    // The broker never answers.
    let ea = a.wait().await.unwrap_err();
    assert!(
        matches!(
            ea,
            ClientError::Timeout {
                api: ApiKey::Metadata,
                ..
            }
        ),
        "{ea}"
    );
    let eb = b.wait().await.unwrap_err();
    assert!(eb.outcome_unknown(), "{eb}");
    assert!(!conn.is_alive());
    drop(server);
}

#[tokio::test]
async fn an_abandoned_request_does_not_confuse_the_next() {
    let (conn, mut server) = connected().await;
    let a = conn.start(&metadata_for("a")).await.unwrap();
    drop(a);
    let b = conn.start(&metadata_for("b")).await.unwrap();
    let ra = next_request(&mut server).await;
    let rb = next_request(&mut server).await;
    server.write_all(&metadata_answer(&ra)).await.unwrap();
    server.write_all(&metadata_answer(&rb)).await.unwrap();
    assert_eq!(topic_of(&b.wait().await.unwrap()), "b");
    assert!(conn.is_alive());
}

#[tokio::test]
async fn in_flight_requests_are_bounded() {
    let (client, _server) = tokio::io::duplex(1 << 16);
    let cfg = ClientConfig {
        max_in_flight: 2,
        ..config()
    };
    let mut conn = BrokerConnection::over("fake:1", Box::new(client), &cfg);
    conn.versions = api_keys(4)
        .iter()
        .map(|k| (k.api_key, (k.min_version, k.max_version)))
        .collect();
    let _a = conn.start(&metadata_for("a")).await.unwrap();
    let _b = conn.start(&metadata_for("b")).await.unwrap();
    assert!(!conn.has_capacity());
    let third =
        tokio::time::timeout(Duration::from_millis(50), conn.start(&metadata_for("c"))).await;
    assert!(third.is_err(), "a third request waits for a slot");
}
