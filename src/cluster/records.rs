//! The records of the metadata log. Each is one [`crate::codec`] frame (version
//! [`RECORD_VERSION`]) stored as the value of a Kafka record; records that must take effect
//! together go in one batch, which is appended (and survives a crash) whole or not at all.
//!
//! Evolution: new variants go at the end of the enum; a change to an existing variant's
//! fields needs a new frame version and a decoder for the old one.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The frame version of metadata records written now.
pub const RECORD_VERSION: u16 = 1;

/// One change to the cluster's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// The first record of a cluster's log: its id, and the node that created it.
    ClusterCreated {
        /// Kafka-style cluster id (22 characters of base64url).
        cluster_id: String,
        /// `node.id` of the creating node.
        node_id: i32,
    },
    /// A topic was created.
    TopicCreated {
        name: String,
        /// The topic id (a UUID, as Kafka's Metadata v10+ reports it).
        topic_id: [u8; 16],
        partitions: i32,
        replication_factor: i16,
        /// Topic-level config overrides, by Kafka name.
        configs: BTreeMap<String, String>,
    },
    /// A topic's partition count grew to `partitions`.
    PartitionsCreated { name: String, partitions: i32 },
    /// A topic's config overrides were replaced.
    TopicConfigsSet {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// A topic was deleted.
    TopicDeleted { name: String, topic_id: [u8; 16] },
    /// Producer ids below `next` have been handed out.
    ProducerIdsAllocated { next: i64 },
}
