//! What the cluster looks like to a client: brokers, the controller, and each topic's
//! partitions with their leaders, as plain data built from Metadata responses.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

use super::TopicPartition;

/// A broker the metadata names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// `node.id`.
    pub id: i32,
    /// The advertised host.
    pub host: String,
    /// The advertised port.
    pub port: i32,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port`, for dialling (IPv6 hosts bracketed).
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// The partition's index.
    pub partition: i32,
    /// The leader's broker id; `None` while there is no leader (an election is under way).
    pub leader: Option<i32>,
    /// The leader epoch; -1 if the broker did not say.
    pub leader_epoch: i32,
    /// The brokers holding replicas.
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
    /// Replicas that are offline.
    pub offline: Vec<i32>,
    /// The partition's error, if the broker reported one.
    pub error: Option<ResponseError>,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// The topic's name.
    pub name: String,
    /// The topic id (nil before Metadata v10).
    pub topic_id: uuid::Uuid,
    /// Whether the topic is internal (such as `__consumer_offsets`).
    pub internal: bool,
    /// The partitions, sorted by index.
    pub partitions: Vec<PartitionMetadata>,
}

impl TopicMetadata {
    /// A partition by index.
    pub fn partition(&self, index: i32) -> Option<&PartitionMetadata> {
        self.partitions
            .binary_search_by_key(&index, |p| p.partition)
            .ok()
            .map(|i| &self.partitions[i])
    }
}

/// The cluster as the last Metadata responses described it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// The cluster id, if the broker sent one.
    pub cluster_id: Option<String>,
    /// The controller's broker id, if known.
    pub controller_id: Option<i32>,
    /// The brokers, by id.
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// Topics that exist, by name.
    pub topics: BTreeMap<String, TopicMetadata>,
    /// Topics asked for that came back with an error (unknown, being created, invalid).
    pub topic_errors: BTreeMap<String, ResponseError>,
}

impl ClusterMetadata {
    /// Reads a Metadata response.
    pub fn from_response(resp: &MetadataResponse) -> ClusterMetadata {
        let mut md = ClusterMetadata {
            cluster_id: resp.cluster_id.as_ref().map(|s| s.to_string()),
            controller_id: Some(resp.controller_id.0).filter(|id| *id >= 0),
            ..ClusterMetadata::default()
        };
        for b in &resp.brokers {
            md.brokers.insert(
                b.node_id.0,
                BrokerInfo {
                    id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                },
            );
        }
        for t in &resp.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            if let Some(e) = ResponseError::try_from_code(t.error_code) {
                md.topic_errors.insert(name, e);
                continue;
            }
            let mut partitions: Vec<PartitionMetadata> = t
                .partitions
                .iter()
                .map(|p| PartitionMetadata {
                    partition: p.partition_index,
                    leader: Some(p.leader_id.0).filter(|id| *id >= 0),
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    offline: p.offline_replicas.iter().map(|b| b.0).collect(),
                    error: ResponseError::try_from_code(p.error_code),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            partitions.dedup_by_key(|p| p.partition);
            md.topics.insert(
                name.clone(),
                TopicMetadata {
                    name,
                    topic_id: t.topic_id,
                    internal: t.is_internal,
                    partitions,
                },
            );
        }
        md
    }

    /// Folds a newer response into this view. Brokers and the controller are replaced; the
    /// topics in `newer` replace ours; with `all_topics` (the request asked for every topic)
    /// topics missing from `newer` are dropped too.
    pub fn merge(&mut self, newer: ClusterMetadata, all_topics: bool) {
        self.cluster_id = newer.cluster_id.or(self.cluster_id.take());
        self.controller_id = newer.controller_id;
        self.brokers = newer.brokers;
        if all_topics {
            self.topics.clear();
            self.topic_errors.clear();
        }
        for name in newer.topics.keys().chain(newer.topic_errors.keys()) {
            self.topics.remove(name);
            self.topic_errors.remove(name);
        }
        self.topics.extend(newer.topics);
        self.topic_errors.extend(newer.topic_errors);
    }

    /// Drops what this (newer) answer says of partitions whose leader epoch is older than one
    /// already seen (`seen`, updated here), as Kafka's `Metadata.updateLatestMetadata` does: a
    /// broker cut off from the controller still names itself leader of an epoch that has
    /// ended, and a client taking that would read a log the new leader has moved past. Such a
    /// partition keeps what `current` says if that is not older than what was seen, else it is
    /// taken with no leader (so the client waits and asks again). A topic whose id changed was
    /// deleted and created again: its epochs start over. Returns whether anything was dropped.
    pub fn keep_newest_epochs(
        &mut self,
        current: &ClusterMetadata,
        seen: &mut BTreeMap<TopicPartition, i32>,
    ) -> bool {
        let mut outdated = false;
        for t in self.topics.values_mut() {
            let old = current.topics.get(&t.name);
            let recreated = old.is_some_and(|o| {
                !o.topic_id.is_nil() && !t.topic_id.is_nil() && o.topic_id != t.topic_id
            });
            if recreated {
                seen.retain(|tp, _| tp.topic != t.name);
            }
            for p in &mut t.partitions {
                let tp = TopicPartition::new(t.name.as_str(), p.partition);
                if p.leader_epoch < 0 {
                    // A broker that does not say, or an error: nothing to compare.
                    seen.remove(&tp);
                    continue;
                }
                match seen.get(&tp) {
                    Some(&s) if p.leader_epoch < s => {
                        outdated = true;
                        let kept = old
                            .filter(|_| !recreated)
                            .and_then(|o| o.partition(p.partition))
                            .filter(|o| o.leader_epoch >= s);
                        match kept {
                            Some(o) => *p = o.clone(),
                            None => p.leader = None,
                        }
                    }
                    _ => {
                        seen.insert(tp, p.leader_epoch);
                    }
                }
            }
        }
        outdated
    }

    /// A partition's metadata.
    pub fn partition(&self, tp: &TopicPartition) -> Option<&PartitionMetadata> {
        self.topics.get(&tp.topic)?.partition(tp.partition)
    }

    /// The broker leading a partition, if known.
    pub fn leader(&self, tp: &TopicPartition) -> Option<&BrokerInfo> {
        let id = self.partition(tp)?.leader?;
        self.brokers.get(&id)
    }

    /// The leader's id, if the leader is known and its address too.
    pub fn leader_id(&self, tp: &TopicPartition) -> Option<i32> {
        self.leader(tp).map(|b| b.id)
    }

    /// The leader epoch to send with requests (Fetch v9+, ListOffsets v4+), -1 if unknown.
    pub fn leader_epoch(&self, tp: &TopicPartition) -> i32 {
        self.partition(tp).map_or(-1, |p| p.leader_epoch)
    }

    /// The number of partitions of a topic, if it is known.
    pub fn partition_count(&self, topic: &str) -> Option<i32> {
        let n = self.topics.get(topic)?.partitions.len();
        i32::try_from(n).ok().filter(|n| *n > 0)
    }
}

/// A Metadata request for `topics` (`None`: every topic) in `version`.
pub fn metadata_request(
    version: i16,
    topics: Option<&[String]>,
    allow_auto_create: bool,
) -> MetadataRequest {
    let names = |ts: &[String]| -> Vec<MetadataRequestTopic> {
        ts.iter()
            .map(|t| {
                MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
            })
            .collect()
    };
    let topics = match topics {
        // v0 has no null: an empty list means every topic.
        None if version == 0 => Some(Vec::new()),
        None => None,
        Some(ts) => Some(names(ts)),
    };
    MetadataRequest::default()
        .with_topics(topics)
        // The field exists from v4; before, brokers always auto-create.
        .with_allow_auto_topic_creation(allow_auto_create || version < 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::BrokerId;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };

    /// A topic in a test response: name, error code, (partition, leader) pairs.
    type TopicSpec<'a> = (&'a str, i16, &'a [(i32, i32)]);

    fn response(topics: &[TopicSpec]) -> MetadataResponse {
        let topics = topics
            .iter()
            .map(|(name, err, parts)| {
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
                    .with_error_code(*err)
                    .with_partitions(
                        parts
                            .iter()
                            .map(|(p, leader)| {
                                MetadataResponsePartition::default()
                                    .with_partition_index(*p)
                                    .with_leader_id(BrokerId(*leader))
                                    .with_leader_epoch(3)
                                    .with_replica_nodes(vec![BrokerId(1), BrokerId(2)])
                                    .with_isr_nodes(vec![BrokerId(1)])
                            })
                            .collect(),
                    )
            })
            .collect();
        MetadataResponse::default()
            .with_controller_id(BrokerId(2))
            .with_brokers(vec![
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(1))
                    .with_host(StrBytes::from_static_str("a"))
                    .with_port(9092),
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(2))
                    .with_host(StrBytes::from_static_str("::1"))
                    .with_port(9093),
            ])
            .with_topics(topics)
    }

    #[test]
    fn leaders_are_read_from_the_response_not_assumed() {
        let md = ClusterMetadata::from_response(&response(&[
            ("t", 0, &[(1, 2), (0, 1), (2, -1)]),
            ("gone", 3, &[]),
        ]));
        assert_eq!(md.controller_id, Some(2));
        assert_eq!(md.partition_count("t"), Some(3));
        assert_eq!(md.leader_id(&TopicPartition::new("t", 0)), Some(1));
        assert_eq!(
            md.leader(&TopicPartition::new("t", 1)).unwrap().addr(),
            "[::1]:9093"
        );
        assert_eq!(md.leader(&TopicPartition::new("t", 2)), None);
        assert_eq!(md.leader_epoch(&TopicPartition::new("t", 0)), 3);
        assert_eq!(
            md.topic_errors.get("gone"),
            Some(&ResponseError::UnknownTopicOrPartition)
        );
        assert_eq!(md.partition_count("gone"), None);
    }

    #[test]
    fn merging_replaces_what_the_newer_response_covers() {
        let mut md =
            ClusterMetadata::from_response(&response(&[("a", 0, &[(0, 1)]), ("b", 0, &[(0, 1)])]));
        md.merge(
            ClusterMetadata::from_response(&response(&[("a", 3, &[])])),
            false,
        );
        assert!(!md.topics.contains_key("a") && md.topic_errors.contains_key("a"));
        assert!(md.topics.contains_key("b"));
        md.merge(
            ClusterMetadata::from_response(&response(&[("c", 0, &[(0, 2)])])),
            true,
        );
        assert_eq!(md.topics.keys().collect::<Vec<_>>(), vec!["c"]);
        assert!(md.topic_errors.is_empty());
    }

    /// A broker cut off from the controller still names itself leader of an ended epoch:
    /// its answer must not replace what a newer one said, nor what a fetched batch showed.
    #[test]
    fn metadata_older_than_an_epoch_seen_is_not_taken() {
        let tp = TopicPartition::new("t", 0);
        let with = |leader: i32, epoch: i32| {
            let mut md = ClusterMetadata::from_response(&response(&[("t", 0, &[(0, leader)])]));
            md.topics.get_mut("t").unwrap().partitions[0].leader_epoch = epoch;
            md
        };
        let mut seen = BTreeMap::new();
        let mut current = ClusterMetadata::default();
        let take = |current: &mut ClusterMetadata, mut newer: ClusterMetadata, seen: &mut _| {
            let outdated = newer.keep_newest_epochs(current, seen);
            current.merge(newer, false);
            outdated
        };
        assert!(!take(&mut current, with(1, 4), &mut seen));
        // The stale broker 2 answers epoch 3: the epoch 4 leader stays.
        assert!(take(&mut current, with(2, 3), &mut seen));
        assert_eq!(
            (current.leader_id(&tp), current.leader_epoch(&tp)),
            (Some(1), 4)
        );
        // A batch of epoch 5 was seen: epoch 4 metadata is too old, and nothing newer is known,
        // so the partition has no leader until a newer answer comes.
        seen.insert(tp.clone(), 5);
        assert!(take(&mut current, with(1, 4), &mut seen));
        assert_eq!(current.leader_id(&tp), None);
        assert!(!take(&mut current, with(2, 5), &mut seen));
        assert_eq!(
            (current.leader_id(&tp), current.leader_epoch(&tp)),
            (Some(2), 5)
        );
        // The topic deleted and created again starts its epochs over.
        let mut again = with(1, 0);
        again.topics.get_mut("t").unwrap().topic_id = uuid::Uuid::from_u128(9);
        current.topics.get_mut("t").unwrap().topic_id = uuid::Uuid::from_u128(8);
        assert!(!take(&mut current, again, &mut seen));
        assert_eq!(
            (current.leader_id(&tp), current.leader_epoch(&tp)),
            (Some(1), 0)
        );
    }

    #[test]
    fn requests_fit_their_version() {
        use kafka_protocol::protocol::Encodable;
        for v in 0..=12 {
            let mut buf = bytes::BytesMut::new();
            metadata_request(v, None, false)
                .encode(&mut buf, v)
                .unwrap();
            metadata_request(v, Some(&["t".into()]), false)
                .encode(&mut buf, v)
                .unwrap();
        }
    }
}
