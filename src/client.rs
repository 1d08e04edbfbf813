//! runnel's own Kafka client: an admin client, a producer and a consumer, used by the CLI, the
//! benchmarks and the simulator's workloads. It speaks the Kafka protocol, so it works against
//! any Kafka broker in the versions runnel implements, and it reaches the network only through
//! the seam ([`crate::env::Network`]), so it runs unchanged inside the simulator.
//!
//! - [`connection`]: one connection to one broker: version negotiation, pipelined requests
//!   matched by correlation id, timeouts.
//! - [`metadata`]: what a Metadata response says (brokers, partition leaders), as plain data.
//! - [`cluster`]: bootstrap, connections by broker, and the metadata cache with its refreshes.
//! - [`admin`]: topics, partitions, configs, offsets, the cluster's shape.
//! - [`partitioner`]: murmur2 and the Java client's partitioning rules.
//! - [`producer`]: batching per partition, `acks`, pipelining, retries, delivery timeouts.
//! - [`consumer`]: assigned partitions, positions, fetching and decoding batches.
//! - [`error`]: [`ClientError`], and whether a failed request's outcome is known.
//!
//! Configuration fields are named after Kafka's client configs, given in each field's doc.

pub mod admin;
pub mod cluster;
pub mod connection;
pub mod consumer;
pub mod coordinator;
pub mod error;
pub mod metadata;
pub mod partitioner;
pub mod producer;

pub use crate::log::TopicPartition;
pub use admin::{
    Admin, ClusterDescription, ConfigEntry, ConfigResource, GroupDescription, GroupListing,
    GroupMember, ListedOffset, NewTopic, OffsetSpec, QuorumDescription, QuorumReplica,
    TopicDescription, TopicListing,
};
pub use cluster::Cluster;
pub use connection::BrokerConnection;
pub use consumer::assignor::Assignor;
pub use consumer::group::{Generation, GroupConfig, GroupConsumer, RebalanceListener};
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};
pub use error::{ClientError, error_name};
pub use metadata::{BrokerInfo, ClusterMetadata, PartitionMetadata, TopicMetadata};
pub use producer::{Acks, Delivery, Producer, ProducerConfig, ProducerRecord, RecordMetadata};

/// `partitions` grouped by topic, as Kafka's requests and consumer-protocol structs list
/// them: topics in name order, each topic's partitions in the order given.
pub fn partitions_by_topic(
    partitions: &[TopicPartition],
) -> std::collections::BTreeMap<&str, Vec<i32>> {
    let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    by_topic
}

/// A record header: Kafka header keys are strings, values bytes (or null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    /// The header's name.
    pub key: String,
    /// Its value; `None` is Kafka's null.
    pub value: Option<bytes::Bytes>,
}

/// Settings every client shares: where the cluster is and how patient to be with it.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `bootstrap.servers`: `host:port` addresses to ask for the cluster's metadata; after that
    /// the client talks to whichever brokers the metadata names.
    pub bootstrap_servers: Vec<String>,
    /// `client.id`: sent in every request, for the broker's logs.
    pub client_id: String,
    /// `request.timeout.ms`: how long a request may wait for its answer before the connection
    /// is closed and the request fails (outcome unknown). Default 30000.
    pub request_timeout_ms: u64,
    /// `socket.connection.setup.timeout.ms`: how long a connect may take. Default 10000.
    pub connect_timeout_ms: u64,
    /// `retry.backoff.ms`: the pause before retrying a failed request. Default 100.
    pub retry_backoff_ms: u64,
    /// `reconnect.backoff.ms`: the pause before dialling a broker that just failed. Default 50.
    pub reconnect_backoff_ms: u64,
    /// `metadata.max.age.ms`: metadata older than this is refreshed even without errors.
    /// Default 300000.
    pub metadata_max_age_ms: u64,
    /// `default.api.timeout.ms`: the overall limit of an operation that retries (admin calls,
    /// offset lookups, waiting for metadata). Default 60000.
    pub default_api_timeout_ms: u64,
    /// `max.in.flight.requests.per.connection`: requests written and not yet answered, per
    /// connection. Default 5.
    pub max_in_flight: usize,
    /// Largest response frame accepted, checked before allocating. Default 100 MiB, above
    /// the default `fetch.max.bytes` (50 MiB) plus a full partition's batch.
    pub response_bytes_max: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            bootstrap_servers: vec!["localhost:9092".into()],
            client_id: "runnel".into(),
            request_timeout_ms: 30_000,
            connect_timeout_ms: 10_000,
            retry_backoff_ms: 100,
            reconnect_backoff_ms: 50,
            metadata_max_age_ms: 300_000,
            default_api_timeout_ms: 60_000,
            max_in_flight: 5,
            response_bytes_max: 100 << 20,
        }
    }
}

impl ClientConfig {
    /// The defaults with these bootstrap servers.
    pub fn new(bootstrap_servers: impl IntoIterator<Item = impl Into<String>>) -> ClientConfig {
        ClientConfig {
            bootstrap_servers: bootstrap_servers.into_iter().map(Into::into).collect(),
            ..ClientConfig::default()
        }
    }

    /// Checks what cannot work at all.
    pub fn validate(&self) -> Result<(), ClientError> {
        if self.bootstrap_servers.is_empty() {
            return Err(ClientError::Config("bootstrap.servers is empty".into()));
        }
        if let Some(bad) = self.bootstrap_servers.iter().find(|s| {
            !s.rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        }) {
            return Err(ClientError::Config(format!(
                "bootstrap server '{bad}' is not host:port"
            )));
        }
        if self.request_timeout_ms == 0 || self.max_in_flight == 0 {
            return Err(ClientError::Config(
                "request.timeout.ms and max.in.flight.requests.per.connection must be positive"
                    .into(),
            ));
        }
        Ok(())
    }
}
