//! The cluster's metadata: brokers, topics, ids, partition counts, configs, and each
//! partition's replicas, ISR, leader and epochs; and the controller that decides changes to it.
//!
//! It lives in a metadata log (`<data dir>/__cluster_metadata-0/`, as in Kafka's KRaft mode),
//! written with the same partition log code as topic data and replayed at start. One node is a
//! cluster of one that writes this log locally; the Raft quorum replicates the same log.
//!
//! - [`records`]: the log's records; [`state`]: what replaying them gives.
//! - [`controller`]: the active controller's decisions (registration, heartbeats, fencing,
//!   elections, topic creation, AlterPartition) as pure functions of the state.
//! - [`placement`]: where new partitions' replicas go (KRaft's striped placer).
//! - [`invariants`]: checks of a state and of successive states, for tests and the simulator.
//! - [`metadata_log`]: the log itself.

pub mod controller;
pub mod invariants;
pub mod metadata_log;
pub mod placement;
pub mod records;
pub mod state;

pub use controller::{Controller, ControllerConfig, ControllerError, PlantedBug};
pub use invariants::{LeaderLedger, check_transition};
pub use metadata_log::{METADATA_TOPIC, MetadataError, MetadataLog};
pub use records::{Endpoint, MetadataRecord, NO_LEADER};
pub use state::{BrokerMeta, ClusterState, DynamicConfigs, PartitionMeta, TopicMeta};
