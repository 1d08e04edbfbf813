//! The metadata state: what replaying the metadata log produces.
//!
//! Everything is kept in `BTreeMap`s so iteration (and so every decision the controller takes
//! from the state) is the same on every node and in every replay.

use super::records::{Endpoint, MetadataRecord, NO_LEADER};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version of a snapshot's state. Version 1 holds the [`ClusterState`] alone; version 2
/// adds its [`DynamicConfigs`] after it, and is written only when there are some (so a cluster
/// that never altered a broker config writes what earlier versions read).
const SNAPSHOT_STATE_VERSION: u16 = 2;

/// A topic id in a snapshot: its 16 bytes.
mod uuid_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(id: &uuid::Uuid, s: S) -> Result<S::Ok, S::Error> {
        id.as_bytes().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<uuid::Uuid, D::Error> {
        <[u8; 16]>::deserialize(d).map(uuid::Uuid::from_bytes)
    }
}

/// A topic as the metadata knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// The topic's name.
    pub name: String,
    /// Its id.
    #[serde(with = "uuid_bytes")]
    pub id: uuid::Uuid,
    /// Number of partitions, numbered from 0.
    pub partitions: i32,
    /// Replicas per partition.
    pub replication_factor: i16,
    /// Topic-level config overrides.
    pub configs: BTreeMap<String, String>,
    /// Each partition's replicas, ISR, leader and epochs, for partitions `0..partitions`.
    pub parts: BTreeMap<i32, PartitionMeta>,
}

/// One partition's replicas, ISR, leader and epochs (Kafka's PartitionRegistration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// The brokers holding a replica; the first is the preferred leader.
    pub replicas: Vec<i32>,
    /// The in-sync replicas, a subset of `replicas`; never empty (the last member stays).
    pub isr: Vec<i32>,
    /// The leader, or [`NO_LEADER`].
    pub leader: i32,
    /// Bumped on every election.
    pub leader_epoch: i32,
    /// Bumped on every change.
    pub partition_epoch: i32,
}

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerMeta {
    /// Its `node.id`.
    pub id: i32,
    /// The process run that registered (a restart registers a new one).
    pub incarnation_id: [u8; 16],
    /// Its broker epoch, unique across the cluster and growing with each registration.
    pub epoch: i64,
    /// Where clients reach it.
    pub endpoints: Vec<Endpoint>,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
    /// Fenced: it may not lead, and leaves every ISR it is not the last member of.
    pub fenced: bool,
    /// In controlled shutdown: still unfenced, but no longer eligible to lead or join an ISR.
    pub in_controlled_shutdown: bool,
    /// Offset of its registration record, or of the record that last fenced it, when the
    /// state was built with [`ClusterState::apply_at`]: the broker is unfenced only once it
    /// has applied that far.
    pub registered_offset: Option<i64>,
    /// Offset of its controlled-shutdown record (likewise): it may shut down once it has
    /// applied that far, so it knows it leads nothing.
    pub controlled_shutdown_offset: Option<i64>,
}

impl BrokerMeta {
    /// Unfenced and not shutting down: may lead and be in an ISR (Kafka's `isActive`).
    pub fn is_active(&self) -> bool {
        !self.fenced && !self.in_controlled_shutdown
    }
}

/// The cluster's metadata (serialised whole, with serde, in a metadata snapshot).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The cluster id, once the log has its first record.
    pub cluster_id: Option<String>,
    /// The node that created the cluster (`ClusterCreated`): it holds the single replica of
    /// every partition created before partitions had records of their own.
    pub creator_node_id: Option<i32>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicMeta>,
    /// Topic names by id (not in snapshots: rebuilt from `topics`).
    #[serde(skip)]
    pub topic_names: BTreeMap<uuid::Uuid, String>,
    /// The next producer id to hand out.
    pub next_producer_id: i64,
    /// Registered brokers by id.
    pub brokers: BTreeMap<i32, BrokerMeta>,
    /// The epoch the next broker registration gets: one more than any broker epoch applied,
    /// so broker epochs are unique and increase (Kafka uses the registration record's offset).
    pub next_broker_epoch: i64,
    /// Dynamic broker configs (in snapshots from version 2, after the rest).
    #[serde(skip)]
    pub dynamic: DynamicConfigs,
}

/// Broker configs changed at run time (IncrementalAlterConfigs and AlterConfigs on BROKER
/// resources), by Kafka key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicConfigs {
    /// The cluster-wide defaults (Kafka's DYNAMIC_DEFAULT_BROKER_CONFIG).
    pub default: BTreeMap<String, String>,
    /// Each broker's own (Kafka's DYNAMIC_BROKER_CONFIG), over the defaults.
    pub brokers: BTreeMap<i32, BTreeMap<String, String>>,
}

impl DynamicConfigs {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.default.is_empty() && self.brokers.values().all(BTreeMap::is_empty)
    }

    /// The configs `broker_id` has beyond the defaults.
    pub fn of(&self, broker_id: i32) -> &BTreeMap<String, String> {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        self.brokers.get(&broker_id).unwrap_or(&NONE)
    }
}

impl ClusterState {
    /// The state a snapshot's bytes hold (a frame of [`ClusterState::to_snapshot`]).
    pub fn from_snapshot(bytes: &[u8]) -> Result<ClusterState, String> {
        let frame =
            crate::codec::read_frame(bytes, bytes.len().max(1)).map_err(|e| e.to_string())?;
        if frame.version > SNAPSHOT_STATE_VERSION {
            return Err(format!(
                "the snapshot has version {}, newer than this runnel knows ({SNAPSHOT_STATE_VERSION}); upgrade runnel",
                frame.version
            ));
        }
        let mut state: ClusterState = if frame.version >= 2 {
            let (mut state, dynamic): (ClusterState, DynamicConfigs) =
                crate::codec::decode_payload(&frame).map_err(|e| e.to_string())?;
            state.dynamic = dynamic;
            state
        } else {
            crate::codec::decode_payload(&frame).map_err(|e| e.to_string())?
        };
        state.topic_names = state
            .topics
            .values()
            .map(|t| (t.id, t.name.clone()))
            .collect();
        Ok(state)
    }

    /// The state as a snapshot's bytes.
    pub fn to_snapshot(&self) -> Vec<u8> {
        if self.dynamic.is_empty() {
            crate::codec::encode(1, self)
        } else {
            crate::codec::encode(SNAPSHOT_STATE_VERSION, &(self, &self.dynamic))
        }
    }

    /// Applies one record. Records that contradict the state (a topic created twice, a change
    /// to a topic that does not exist) are logged and skipped: the writer checks before
    /// appending, so they only appear if the log was written by something else.
    pub fn apply(&mut self, record: &MetadataRecord) {
        self.apply_record(None, record);
    }

    /// Applies the record found at `offset` of the metadata log; the offsets of broker
    /// registrations and controlled shutdowns are kept, for the controller's catch-up checks.
    pub fn apply_at(&mut self, offset: i64, record: &MetadataRecord) {
        self.apply_record(Some(offset), record);
    }

    fn apply_record(&mut self, offset: Option<i64>, record: &MetadataRecord) {
        match record {
            MetadataRecord::ClusterCreated {
                cluster_id,
                node_id,
            } => {
                if self.cluster_id.is_none() {
                    self.cluster_id = Some(cluster_id.clone());
                    self.creator_node_id = Some(*node_id);
                }
            }
            MetadataRecord::TopicCreated {
                name,
                topic_id,
                partitions,
                replication_factor,
                configs,
            } => {
                let id = uuid::Uuid::from_bytes(*topic_id);
                if self.topics.contains_key(name) || self.topic_names.contains_key(&id) {
                    tracing::warn!(topic = %name, "metadata log creates a topic that exists; skipped");
                    return;
                }
                let mut meta = TopicMeta {
                    name: name.clone(),
                    id,
                    partitions: 0,
                    replication_factor: *replication_factor,
                    configs: configs.clone(),
                    parts: BTreeMap::new(),
                };
                self.grow(&mut meta, *partitions);
                self.topic_names.insert(id, name.clone());
                self.topics.insert(name.clone(), meta);
            }
            MetadataRecord::PartitionsCreated { name, partitions } => {
                match self.topics.remove(name) {
                    Some(mut t) => {
                        if *partitions > t.partitions {
                            self.grow(&mut t, *partitions);
                        } else {
                            tracing::warn!(topic = %name, partitions, "metadata log shrinks a topic; skipped")
                        }
                        self.topics.insert(name.clone(), t);
                    }
                    None => {
                        tracing::warn!(topic = %name, partitions, "metadata log grows a missing topic; skipped")
                    }
                }
            }
            MetadataRecord::TopicConfigsSet { name, configs } => match self.topics.get_mut(name) {
                Some(t) => t.configs = configs.clone(),
                None => {
                    tracing::warn!(topic = %name, "metadata log configures a missing topic; skipped")
                }
            },
            MetadataRecord::BrokerConfigsSet { broker_id, configs } => match broker_id {
                None => self.dynamic.default = configs.clone(),
                Some(id) if configs.is_empty() => {
                    self.dynamic.brokers.remove(id);
                }
                Some(id) => {
                    self.dynamic.brokers.insert(*id, configs.clone());
                }
            },
            MetadataRecord::TopicDeleted { name, topic_id } => match self.topics.get(name) {
                Some(t) if t.id.as_bytes() == topic_id => {
                    self.topic_names.remove(&t.id);
                    self.topics.remove(name);
                }
                _ => tracing::warn!(topic = %name, "metadata log deletes a missing topic; skipped"),
            },
            MetadataRecord::ProducerIdsAllocated { next } => {
                self.next_producer_id = self.next_producer_id.max(*next);
            }
            MetadataRecord::BrokerRegistered {
                broker_id,
                incarnation_id,
                broker_epoch,
                endpoints,
                rack,
                fenced,
            } => {
                let same_run = self
                    .brokers
                    .get(broker_id)
                    .filter(|b| b.incarnation_id == *incarnation_id && b.epoch == *broker_epoch);
                let registered_offset = match same_run {
                    // An amended registration keeps the offset its catch-up is measured from.
                    Some(b) => b.registered_offset,
                    None => offset,
                };
                let in_controlled_shutdown = same_run.is_some_and(|b| b.in_controlled_shutdown);
                let controlled_shutdown_offset =
                    same_run.and_then(|b| b.controlled_shutdown_offset);
                self.brokers.insert(
                    *broker_id,
                    BrokerMeta {
                        id: *broker_id,
                        incarnation_id: *incarnation_id,
                        epoch: *broker_epoch,
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                        fenced: *fenced,
                        in_controlled_shutdown,
                        registered_offset,
                        controlled_shutdown_offset,
                    },
                );
                self.next_broker_epoch = self.next_broker_epoch.max(broker_epoch + 1);
            }
            MetadataRecord::BrokerFenced {
                broker_id,
                broker_epoch,
            } => match self.broker_at_epoch(*broker_id, *broker_epoch) {
                Some(b) => {
                    b.fenced = true;
                    // Unfenced again only once it has applied this record, and so the
                    // leadership moves made with it: a broker fenced while cut off that was
                    // unfenced on its stale metadata still served as coordinator of
                    // partitions it no longer led (seed 31631).
                    if let Some(o) = offset {
                        b.registered_offset = Some(b.registered_offset.map_or(o, |r| r.max(o)));
                    }
                }
                None => tracing::warn!(
                    broker_id,
                    broker_epoch,
                    "fence of an unknown broker epoch; skipped"
                ),
            },
            MetadataRecord::BrokerUnfenced {
                broker_id,
                broker_epoch,
            } => match self.broker_at_epoch(*broker_id, *broker_epoch) {
                Some(b) => {
                    b.fenced = false;
                    b.in_controlled_shutdown = false;
                    b.controlled_shutdown_offset = None;
                }
                None => tracing::warn!(
                    broker_id,
                    broker_epoch,
                    "unfence of an unknown broker epoch; skipped"
                ),
            },
            MetadataRecord::BrokerControlledShutdown {
                broker_id,
                broker_epoch,
            } => match self.broker_at_epoch(*broker_id, *broker_epoch) {
                Some(b) => {
                    b.in_controlled_shutdown = true;
                    b.controlled_shutdown_offset = offset;
                }
                None => tracing::warn!(
                    broker_id,
                    broker_epoch,
                    "shutdown of an unknown broker epoch; skipped"
                ),
            },
            MetadataRecord::BrokerUnregistered {
                broker_id,
                broker_epoch,
            } => {
                if self.broker_at_epoch(*broker_id, *broker_epoch).is_some() {
                    self.brokers.remove(broker_id);
                } else {
                    tracing::warn!(
                        broker_id,
                        broker_epoch,
                        "unregister of an unknown broker epoch; skipped"
                    )
                }
            }
            MetadataRecord::PartitionRecord {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
            } => match self.part_mut(*topic_id, *partition) {
                Some(p) => {
                    *p = PartitionMeta {
                        replicas: replicas.clone(),
                        isr: isr.clone(),
                        leader: *leader,
                        leader_epoch: *leader_epoch,
                        partition_epoch: *partition_epoch,
                    }
                }
                None => tracing::warn!(partition, "record of an unknown partition; skipped"),
            },
            MetadataRecord::PartitionChange {
                topic_id,
                partition,
                isr,
                leader,
                replicas,
            } => match self.part_mut(*topic_id, *partition) {
                Some(p) => {
                    if let Some(isr) = isr {
                        p.isr = isr.clone();
                    }
                    if let Some(replicas) = replicas {
                        p.replicas = replicas.clone();
                    }
                    if let Some(leader) = leader {
                        p.leader = *leader;
                        p.leader_epoch += 1;
                    }
                    p.partition_epoch += 1;
                }
                None => tracing::warn!(partition, "change of an unknown partition; skipped"),
            },
        }
    }

    /// Grows `t` to `count` partitions. The new ones get the assignment partitions had before
    /// they had records of their own: one replica on the node that created the cluster,
    /// leading at epoch 0. A controller follows these records with a `PartitionRecord` for
    /// each new partition in the same batch, which replaces it; old one-node logs keep it.
    fn grow(&self, t: &mut TopicMeta, count: i32) {
        let node = self.creator_node_id.unwrap_or(0);
        for p in t.partitions..count {
            t.parts.insert(
                p,
                PartitionMeta {
                    replicas: vec![node],
                    isr: vec![node],
                    leader: node,
                    leader_epoch: 0,
                    partition_epoch: 0,
                },
            );
        }
        t.partitions = t.partitions.max(count);
    }

    fn broker_at_epoch(&mut self, id: i32, epoch: i64) -> Option<&mut BrokerMeta> {
        self.brokers.get_mut(&id).filter(|b| b.epoch == epoch)
    }

    fn part_mut(&mut self, topic_id: [u8; 16], partition: i32) -> Option<&mut PartitionMeta> {
        let name = self.topic_names.get(&uuid::Uuid::from_bytes(topic_id))?;
        self.topics.get_mut(name)?.parts.get_mut(&partition)
    }

    /// The topic with id `id`.
    pub fn topic_by_id(&self, id: uuid::Uuid) -> Option<&TopicMeta> {
        self.topics.get(self.topic_names.get(&id)?)
    }

    /// Partition `p` of the topic named `topic`.
    pub fn partition(&self, topic: &str, p: i32) -> Option<&PartitionMeta> {
        self.topics.get(topic)?.parts.get(&p)
    }

    /// Partition `p` of the topic with id `topic_id`.
    pub fn partition_by_id(&self, topic_id: uuid::Uuid, p: i32) -> Option<&PartitionMeta> {
        self.topic_by_id(topic_id)?.parts.get(&p)
    }

    /// The leader of partition `p` of `topic`, if it has one.
    pub fn leader_of(&self, topic: &str, p: i32) -> Option<i32> {
        self.partition(topic, p)
            .map(|p| p.leader)
            .filter(|l| *l != NO_LEADER)
    }

    /// The registered brokers that are not fenced (including those in controlled shutdown).
    pub fn brokers_alive(&self) -> impl Iterator<Item = &BrokerMeta> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Whether `id` is registered, unfenced and not shutting down: may lead, may be in an ISR.
    pub fn is_active(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(BrokerMeta::is_active)
    }

    /// Every partition with a replica on `broker`: (topic, partition number, partition).
    pub fn replicas_on(
        &self,
        broker: i32,
    ) -> impl Iterator<Item = (&TopicMeta, i32, &PartitionMeta)> {
        self.partitions()
            .filter(move |(_, _, p)| p.replicas.contains(&broker))
    }

    /// Every partition of every topic, in topic name then partition order.
    pub fn partitions(&self) -> impl Iterator<Item = (&TopicMeta, i32, &PartitionMeta)> {
        self.topics
            .values()
            .flat_map(|t| t.parts.iter().map(move |(n, p)| (t, *n, p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_builds_the_state() {
        let mut s = ClusterState::default();
        let id = [7u8; 16];
        for r in [
            MetadataRecord::ClusterCreated {
                cluster_id: "c".into(),
                node_id: 0,
            },
            MetadataRecord::TopicCreated {
                name: "t".into(),
                topic_id: id,
                partitions: 2,
                replication_factor: 1,
                configs: BTreeMap::new(),
            },
            MetadataRecord::PartitionsCreated {
                name: "t".into(),
                partitions: 5,
            },
            MetadataRecord::PartitionsCreated {
                name: "t".into(),
                partitions: 3,
            },
            MetadataRecord::ProducerIdsAllocated { next: 1000 },
        ] {
            s.apply(&r);
        }
        assert_eq!(s.cluster_id.as_deref(), Some("c"));
        assert_eq!(s.topics["t"].partitions, 5);
        assert_eq!(s.next_producer_id, 1000);
        s.apply(&MetadataRecord::TopicDeleted {
            name: "t".into(),
            topic_id: [1; 16],
        });
        assert!(
            s.topics.contains_key("t"),
            "a delete with the wrong id is skipped"
        );
        s.apply(&MetadataRecord::TopicDeleted {
            name: "t".into(),
            topic_id: id,
        });
        assert!(s.topics.is_empty());
    }

    /// Records written before the broker and partition records existed keep their encoding
    /// (variant numbers), and every new record survives a round trip.
    #[test]
    fn records_keep_their_encoding() {
        use crate::codec;
        let old = MetadataRecord::ProducerIdsAllocated { next: 7 };
        let frame = codec::encode(super::super::records::RECORD_VERSION, &old);
        assert_eq!(
            &frame[10..],
            &[5, 14],
            "variant 5, then 7 as a zigzag varint"
        );
        let records = [
            MetadataRecord::BrokerRegistered {
                broker_id: 1,
                incarnation_id: [9; 16],
                broker_epoch: 4,
                endpoints: vec![Endpoint {
                    name: "PLAINTEXT".into(),
                    host: "h".into(),
                    port: 9092,
                    security_protocol: 0,
                }],
                rack: Some("r".into()),
                fenced: true,
            },
            MetadataRecord::BrokerFenced {
                broker_id: 1,
                broker_epoch: 4,
            },
            MetadataRecord::BrokerUnfenced {
                broker_id: 1,
                broker_epoch: 4,
            },
            MetadataRecord::BrokerUnregistered {
                broker_id: 1,
                broker_epoch: 4,
            },
            MetadataRecord::PartitionRecord {
                topic_id: [2; 16],
                partition: 3,
                replicas: vec![1, 2],
                isr: vec![2],
                leader: 2,
                leader_epoch: 5,
                partition_epoch: 6,
            },
            MetadataRecord::PartitionChange {
                topic_id: [2; 16],
                partition: 3,
                isr: Some(vec![1, 2]),
                leader: Some(NO_LEADER),
                replicas: None,
            },
            MetadataRecord::BrokerControlledShutdown {
                broker_id: 1,
                broker_epoch: 4,
            },
        ];
        for r in records {
            let frame = codec::encode(1, &r);
            let f = codec::read_frame(&frame, 1 << 20).unwrap();
            assert_eq!(codec::decode_payload::<MetadataRecord>(&f).unwrap(), r);
        }
    }

    #[test]
    fn partition_changes_bump_the_epochs() {
        let mut s = ClusterState::default();
        s.apply(&MetadataRecord::ClusterCreated {
            cluster_id: "c".into(),
            node_id: 4,
        });
        s.apply(&MetadataRecord::TopicCreated {
            name: "t".into(),
            topic_id: [1; 16],
            partitions: 1,
            replication_factor: 1,
            configs: BTreeMap::new(),
        });
        let p = s.partition("t", 0).unwrap().clone();
        assert_eq!((p.replicas, p.leader), (vec![4], 4), "the creating node");
        let change = |isr: Option<Vec<i32>>, leader| MetadataRecord::PartitionChange {
            topic_id: [1; 16],
            partition: 0,
            isr,
            leader,
            replicas: None,
        };
        s.apply(&change(Some(vec![4]), None));
        let p = s.partition("t", 0).unwrap();
        assert_eq!((p.leader_epoch, p.partition_epoch), (0, 1));
        s.apply(&change(None, Some(NO_LEADER)));
        let p = s.partition("t", 0).unwrap();
        assert_eq!(
            (p.leader, p.leader_epoch, p.partition_epoch),
            (NO_LEADER, 1, 2)
        );
        assert_eq!(s.leader_of("t", 0), None);
        s.apply(&MetadataRecord::TopicDeleted {
            name: "t".into(),
            topic_id: [1; 16],
        });
        s.apply(&change(None, Some(4)));
        assert!(
            s.topic_names.is_empty(),
            "a change to a deleted topic is skipped"
        );
    }
}
