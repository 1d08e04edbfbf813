//! Talking to a group's coordinator: finding it, and fetching and committing the group's
//! offsets. One attempt each; the admin client and the group consumer decide how to retry.

use super::TopicPartition;
use super::cluster::Cluster;
use super::connection::BrokerConnection;
use super::error::{ClientError, check_code};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, GroupId, OffsetCommitRequest, OffsetFetchRequest,
    OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A committed offset (the next one to read) and the leader epoch of the record before it,
/// if known (OffsetCommit v6+ and OffsetFetch v5+ carry it, KIP-320), as Kafka's
/// `OffsetAndMetadata` holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset to read.
    pub offset: i64,
    /// The leader epoch of the record before it.
    pub leader_epoch: Option<i32>,
}

impl From<i64> for CommittedOffset {
    fn from(offset: i64) -> Self {
        CommittedOffset {
            offset,
            leader_epoch: None,
        }
    }
}

/// A group id on the wire.
pub fn group_id(g: &str) -> GroupId {
    GroupId(StrBytes::from_string(g.to_string()))
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// The connection to `group`'s coordinator, asked of any broker.
pub async fn find(cluster: &Cluster, group: &str) -> Result<Arc<BrokerConnection>, ClientError> {
    let conn = cluster.any_broker().await?;
    let version = conn.version_for(ApiKey::FindCoordinator)?;
    let mut req = FindCoordinatorRequest::default();
    if version >= 4 {
        req.coordinator_keys = vec![StrBytes::from_string(group.to_string())];
    } else {
        req.key = StrBytes::from_string(group.to_string());
    }
    let resp = conn.start_at(&req, version).await?.wait().await?;
    let (code, message, host, port) = match resp.coordinators.first() {
        Some(c) if version >= 4 => (
            c.error_code,
            c.error_message.clone(),
            c.host.to_string(),
            c.port,
        ),
        _ => (
            resp.error_code,
            resp.error_message.clone(),
            resp.host.to_string(),
            resp.port,
        ),
    };
    check_code(
        code,
        || format!("the coordinator of group '{group}'"),
        message.as_deref(),
    )?;
    cluster.connect(&format!("{host}:{port}")).await
}

/// A group's committed offsets: of `partitions`, or of every partition when `None`. A
/// partition with no commit is absent from the answer.
pub async fn fetch_offsets(
    conn: &BrokerConnection,
    group: &str,
    partitions: Option<&[TopicPartition]>,
) -> Result<BTreeMap<TopicPartition, CommittedOffset>, ClientError> {
    let version = conn.version_for(ApiKey::OffsetFetch)?.max(2);
    let topics: Option<Vec<(String, Vec<i32>)>> = partitions.map(|tps| {
        super::partitions_by_topic(tps)
            .into_iter()
            .map(|(t, ps)| (t.to_string(), ps))
            .collect()
    });
    let mut req = OffsetFetchRequest::default();
    if version >= 8 {
        req.groups = vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(group_id(group))
                .with_topics(topics.map(|ts| {
                    ts.into_iter()
                        .map(|(t, ps)| {
                            OffsetFetchRequestTopics::default()
                                .with_name(topic_name(&t))
                                .with_partition_indexes(ps)
                        })
                        .collect()
                })),
        ];
    } else {
        req.group_id = group_id(group);
        req.topics = topics.map(|ts| {
            ts.into_iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(topic_name(&t))
                        .with_partition_indexes(ps)
                })
                .collect()
        });
    }
    let resp: OffsetFetchResponse = conn.start_at(&req, version).await?.wait().await?;
    let code = if version >= 8 {
        resp.groups.first().map_or(0, |g| g.error_code)
    } else {
        resp.error_code
    };
    check_code(code, || format!("group '{group}'"), None)?;
    let mut out = BTreeMap::new();
    let mut found = |topic: &str, partition: i32, code: i16, offset: i64, epoch: i32| {
        let tp = TopicPartition::new(topic, partition);
        check_code(code, || format!("group '{group}', partition {tp}"), None)?;
        if offset >= 0 {
            let leader_epoch = Some(epoch).filter(|e| *e >= 0);
            out.insert(
                tp,
                CommittedOffset {
                    offset,
                    leader_epoch,
                },
            );
        }
        Ok::<(), ClientError>(())
    };
    for g in &resp.groups {
        for t in &g.topics {
            for p in &t.partitions {
                found(
                    t.name.0.as_str(),
                    p.partition_index,
                    p.error_code,
                    p.committed_offset,
                    p.committed_leader_epoch,
                )?;
            }
        }
    }
    for t in &resp.topics {
        for p in &t.partitions {
            found(
                t.name.0.as_str(),
                p.partition_index,
                p.error_code,
                p.committed_offset,
                p.committed_leader_epoch,
            )?;
        }
    }
    Ok(out)
}

/// Who commits: a member of the group's current generation, or no one (`generation` -1,
/// `member_id` empty: a commit outside group management, which needs an empty group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committer {
    pub generation: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

impl Committer {
    /// A commit outside group management.
    pub fn standalone() -> Committer {
        Committer {
            generation: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

/// Commits `offsets` (the next offset to read, per partition). The first partition's error,
/// if any, fails the whole commit, as Kafka's clients report it.
pub async fn commit_offsets(
    conn: &BrokerConnection,
    group: &str,
    by: &Committer,
    offsets: &BTreeMap<TopicPartition, CommittedOffset>,
) -> Result<(), ClientError> {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (tp, c) in offsets {
        let p = OffsetCommitRequestPartition::default()
            .with_partition_index(tp.partition)
            .with_committed_offset(c.offset)
            .with_committed_leader_epoch(c.leader_epoch.unwrap_or(-1))
            .with_committed_metadata(Some(StrBytes::from_static_str("")));
        match topics.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(topic_name(&tp.topic))
                    .with_partitions(vec![p]),
            ),
        }
    }
    let version = conn.version_for(ApiKey::OffsetCommit)?;
    let req = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(by.generation)
        .with_member_id(StrBytes::from_string(by.member_id.clone()))
        .with_group_instance_id(if version >= 7 {
            by.group_instance_id.clone().map(StrBytes::from_string)
        } else {
            None
        })
        .with_topics(topics);
    let resp = conn.start_at(&req, version).await?.wait().await?;
    for t in &resp.topics {
        for p in &t.partitions {
            check_code(
                p.error_code,
                || {
                    format!(
                        "committing for group '{group}', partition {}-{}",
                        t.name.0, p.partition_index
                    )
                },
                None,
            )?;
        }
    }
    Ok(())
}
