//! Data replication, as Kafka does it (KIP-101, KIP-279, KIP-497, KIP-841): followers fetch
//! from the leader, the leader keeps the in-sync replicas and the high watermark.
//!
//! - [`leader`]: a partition leader's view of its followers (high watermark over the maximal
//!   ISR, ISR expansion and shrinking, `min.insync.replicas`), as a pure state machine in
//!   raft-rs's `tick`/`step`/`ready`/`advance` shape.
//!
//! In progress (issue "Data replication"): the follower's fetcher, the leader's answers to
//! replica fetches, and acks=all and consumer reads bounded by the high watermark are wired
//! in next; until then a partition's leader serves what it alone holds.

pub mod follower;
pub mod leader;
