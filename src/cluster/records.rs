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
    /// A broker registered (Kafka's RegisterBrokerRecord): a new incarnation gets a new
    /// `broker_epoch`; a repeated registration of the same incarnation keeps its epoch.
    BrokerRegistered {
        /// `node.id` of the broker.
        broker_id: i32,
        /// Random id of this run of the broker process (a UUID): a restart has a new one.
        incarnation_id: [u8; 16],
        /// The broker's epoch: from the state's monotone counter (`next_broker_epoch`), so it
        /// is unique and increasing across the cluster (Kafka uses the record's offset).
        broker_epoch: i64,
        /// The listeners it serves clients on.
        endpoints: Vec<Endpoint>,
        /// `broker.rack`, if set.
        rack: Option<String>,
        /// Whether it starts fenced (a new incarnation always does).
        fenced: bool,
    },
    /// A broker was fenced: it may lead nothing and is out of every ISR it could leave.
    BrokerFenced { broker_id: i32, broker_epoch: i64 },
    /// A broker was unfenced: it caught up with the metadata and heartbeats in time.
    BrokerUnfenced { broker_id: i32, broker_epoch: i64 },
    /// A broker's registration was removed (Kafka's UnregisterBrokerRecord).
    BrokerUnregistered { broker_id: i32, broker_epoch: i64 },
    /// A partition's full state (Kafka's PartitionRecord): written when it is created.
    PartitionRecord {
        /// The topic's id.
        topic_id: [u8; 16],
        /// The partition number.
        partition: i32,
        /// The brokers holding a replica, the preferred leader first.
        replicas: Vec<i32>,
        /// The in-sync replicas: a subset of `replicas`, never empty.
        isr: Vec<i32>,
        /// The leader's broker id, or [`NO_LEADER`].
        leader: i32,
        /// Bumped on every change of leader.
        leader_epoch: i32,
        /// Bumped on every change of the partition (Kafka's partition epoch).
        partition_epoch: i32,
    },
    /// A change to a partition (Kafka's PartitionChangeRecord). Applying it bumps the
    /// partition epoch; a `leader` (even the same one) is an election and bumps the leader
    /// epoch. Fields left `None` are unchanged.
    PartitionChange {
        /// The topic's id.
        topic_id: [u8; 16],
        /// The partition number.
        partition: i32,
        /// The new ISR.
        isr: Option<Vec<i32>>,
        /// The new leader, or [`NO_LEADER`].
        leader: Option<i32>,
        /// The new replica list.
        replicas: Option<Vec<i32>>,
    },
    /// A broker asked to shut down and its leaderships are being moved away (KIP-631's
    /// controlled shutdown; Kafka's BrokerRegistrationChangeRecord `inControlledShutdown`).
    BrokerControlledShutdown { broker_id: i32, broker_epoch: i64 },
    /// Dynamic broker configs were replaced (Kafka's ConfigRecord on a BROKER resource): one
    /// broker's (`Some(id)`) or the cluster-wide defaults every broker takes (`None`, Kafka's
    /// `--entity-default`, the resource named "").
    BrokerConfigsSet {
        broker_id: Option<i32>,
        configs: BTreeMap<String, String>,
    },
}

/// No leader: a partition's `leader` when no eligible replica is alive (Kafka's -1).
pub const NO_LEADER: i32 = -1;

/// One listener of a broker, as in Kafka's BrokerRegistration `Listeners`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Endpoint {
    /// The listener's name (`PLAINTEXT`, ...).
    pub name: String,
    /// The advertised host.
    pub host: String,
    /// The advertised port.
    pub port: u16,
    /// Kafka's security protocol id (0 = PLAINTEXT).
    pub security_protocol: i16,
}
