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
//! - [`log`]: storage: record batches, segments, indexes, recovery, the partition log.
//! - [`config`]: the broker's and topics' configuration, with Kafka's keys and defaults.
//!
//! `docs/` holds the design, the on-disk formats byte by byte, and the simulator's guide.

pub mod codec;
pub mod config;
pub mod env;
pub mod log;
#[doc(hidden)]
pub mod testing;
