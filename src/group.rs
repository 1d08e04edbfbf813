//! Consumer groups: the group coordinator and its log, `__consumer_offsets`.
//!
//! - [`records`]: the topic's records in Kafka's binary schemas.
//! - [`coordinator`]: the classic group protocol as a pure state machine (`step`, `tick`,
//!   `ready`, `advance`).
//! - [`service`]: the async shell that drives it over the seam and the partition logs.

pub mod coordinator;
pub mod records;
pub mod service;

pub use coordinator::{Config, Coordinator, GroupState, Request, Response, partition_for};
pub use service::{Call, GroupService, OFFSETS_TOPIC, OffsetsReplication};
