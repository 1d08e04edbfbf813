//! The metadata state: what replaying the metadata log produces.

use super::records::MetadataRecord;
use std::collections::BTreeMap;

/// A topic as the metadata knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMeta {
    /// The topic's name.
    pub name: String,
    /// Its id.
    pub id: uuid::Uuid,
    /// Number of partitions, numbered from 0.
    pub partitions: i32,
    /// Replicas per partition.
    pub replication_factor: i16,
    /// Topic-level config overrides.
    pub configs: BTreeMap<String, String>,
}

/// The cluster's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterState {
    /// The cluster id, once the log has its first record.
    pub cluster_id: Option<String>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicMeta>,
    /// The next producer id to hand out.
    pub next_producer_id: i64,
}

impl ClusterState {
    /// Applies one record. Records that contradict the state (a topic created twice, a change
    /// to a topic that does not exist) are logged and skipped: the writer checks before
    /// appending, so they only appear if the log was written by something else.
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::ClusterCreated { cluster_id, .. } => {
                if self.cluster_id.is_none() {
                    self.cluster_id = Some(cluster_id.clone());
                }
            }
            MetadataRecord::TopicCreated {
                name,
                topic_id,
                partitions,
                replication_factor,
                configs,
            } => {
                if self.topics.contains_key(name) {
                    tracing::warn!(topic = %name, "metadata log creates a topic that exists; skipped");
                    return;
                }
                self.topics.insert(
                    name.clone(),
                    TopicMeta {
                        name: name.clone(),
                        id: uuid::Uuid::from_bytes(*topic_id),
                        partitions: *partitions,
                        replication_factor: *replication_factor,
                        configs: configs.clone(),
                    },
                );
            }
            MetadataRecord::PartitionsCreated { name, partitions } => {
                match self.topics.get_mut(name) {
                    Some(t) if *partitions > t.partitions => t.partitions = *partitions,
                    _ => {
                        tracing::warn!(topic = %name, partitions, "metadata log grows a topic it cannot; skipped")
                    }
                }
            }
            MetadataRecord::TopicConfigsSet { name, configs } => match self.topics.get_mut(name) {
                Some(t) => t.configs = configs.clone(),
                None => {
                    tracing::warn!(topic = %name, "metadata log configures a missing topic; skipped")
                }
            },
            MetadataRecord::TopicDeleted { name, topic_id } => match self.topics.get(name) {
                Some(t) if t.id.as_bytes() == topic_id => {
                    self.topics.remove(name);
                }
                _ => tracing::warn!(topic = %name, "metadata log deletes a missing topic; skipped"),
            },
            MetadataRecord::ProducerIdsAllocated { next } => {
                self.next_producer_id = self.next_producer_id.max(*next);
            }
        }
    }

    /// The topic with id `id`.
    pub fn topic_by_id(&self, id: uuid::Uuid) -> Option<&TopicMeta> {
        self.topics.values().find(|t| t.id == id)
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
}
