//! runnel: a distributed commit log that speaks the Kafka wire protocol and is tested by
//! deterministic simulation.
//!
//! # Layout
//!
//! Each layer depends only on those above it.
//!
//! - [`env`]: the I/O seam (disk, network, clock, randomness) and its real implementations.
//!   The simulated ones live in the `runnel-sim` crate.
//! - [`codec`]: runnel's own framed, checksummed, versioned encoding for its files and RPCs.
//! - [`record`]: Kafka's RecordBatch v2: its codec, compression, and the broker's validation
//!   of what producers send (shared by the log, the broker and the client).
//! - [`log`]: storage: segments, indexes, recovery, the partition log.
//! - [`protocol`]: Kafka wire framing, headers, supported API versions.
//! - [`cluster`]: the metadata log (brokers, topics, partitions, leaders, ISRs, epochs), its
//!   state, and the controller's decisions on it (pure functions, driven by the broker).
//! - [`config`]: broker and topic configuration, with Kafka's names and defaults.
//! - [`group`]: consumer groups: the group coordinator and `__consumer_offsets`.
//! - [`raft`]: the metadata quorum's Raft (KRaft-style): a pure state machine and its driver.
//! - [`replication`]: data replication: followers, the ISR and the high watermark.
//! - [`broker`]: connections, request dispatch, one module per Kafka API.
//! - [`client`]: runnel's own Kafka client (admin, producer, consumer), through the seam.
//! - [`cli`]: the client commands of the `runnel` binary (topic, produce, consume, perf).
//!
//! `docs/` holds the design, the on-disk formats byte by byte, and the simulator's guide.

pub mod broker;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod env;
pub mod group;
pub mod log;
pub mod protocol;
pub mod raft;
pub mod record;
pub mod replication;
#[doc(hidden)]
pub mod testing;
