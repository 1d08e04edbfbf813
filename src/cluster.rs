//! The cluster's metadata: which topics exist, their ids, partition counts and configs.
//!
//! It lives in a metadata log (`<data dir>/__cluster_metadata-0/`, as in Kafka's KRaft mode),
//! written with the same partition log code as topic data and replayed at start. One node is a
//! cluster of one that writes this log locally; the Raft quorum that comes later replicates the
//! same log.

pub mod metadata_log;
pub mod records;
pub mod state;

pub use metadata_log::{METADATA_TOPIC, MetadataError, MetadataLog};
pub use records::MetadataRecord;
pub use state::{ClusterState, TopicMeta};
