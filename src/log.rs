//! Storage: the partition log, in Kafka's on-disk layout.
//!
//! A partition is a directory `<log dir>/<topic>-<partition>/` holding segments
//! (`<base offset>.log` with record batches, a sparse `.index` and a `.timeindex`), a
//! `partition.checkpoint` and a `leader-epoch-checkpoint`. `docs/formats.md` documents every
//! byte.
//!
//! - [`index`], [`time_index`]: the sparse indexes, kept in memory, cached in files.
//! - [`segment`]: one `.log` file with its indexes; scanning and truncation.
//! - [`recovery`]: opening a directory after a crash.
//! - [`checkpoint`]: the recovery point and log start offset, written atomically.
//! - [`leader_epoch`]: the leader epoch cache (epoch -> start offset) and Kafka's
//!   `leader-epoch-checkpoint` file.
//! - [`partition_log`]: append (as leader, or as follower at the leader's offsets), read,
//!   truncation of the tail, roll, retention, flush policy, group commit.
//! - [`producer_state`], [`snapshot`]: idempotent producers' sequence state and its snapshots.
//! - [`manager`]: all the partition logs of a data directory and their background work.

pub mod checkpoint;
pub mod config;
pub mod index;
pub mod leader_epoch;
pub mod manager;
pub mod partition_log;
pub mod producer_state;
pub mod recovery;
pub mod segment;
pub mod snapshot;
pub mod time_index;
pub mod write_counter;

pub use config::LogConfig;
pub use manager::{LogManager, TopicPartition};
pub use partition_log::{
    AppendError, AppendInfo, FollowerAppendError, LogError, LogOffsets, PartitionLog, ReadError,
    ReadResult, TruncateError,
};
