//! The admin client's group operations, as Kafka's admin client does them: find the group's
//! coordinator (FindCoordinator), then ask it; retried while the coordinator moves or loads.

use super::{Admin, topic_name};
use crate::client::TopicPartition;
use crate::client::connection::BrokerConnection;
use crate::client::error::{ClientError, check_code};
use crate::group::records;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId,
    ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A group as ListGroups lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Kafka's state name (`Stable`, `Empty`...).
    pub state: String,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// The partitions assigned to it (consumer protocol groups).
    pub assignment: Vec<TopicPartition>,
}

/// A group as DescribeGroups describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    /// The assignor in use, when the group is Stable.
    pub protocol: String,
    pub members: Vec<GroupMember>,
}

fn group_id(g: &str) -> GroupId {
    GroupId(StrBytes::from_string(g.to_string()))
}

impl Admin {
    /// The connection to `group`'s coordinator.
    async fn coordinator(&self, group: &str) -> Result<Arc<BrokerConnection>, ClientError> {
        let conn = self.cluster.any_broker().await?;
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
        self.cluster.connect(&format!("{host}:{port}")).await
    }

    /// Every group the brokers coordinate, sorted by id.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, ClientError> {
        let resp = self
            .cluster
            .retrying("listing groups", true, || async {
                self.cluster
                    .any_broker()
                    .await?
                    .send(&ListGroupsRequest::default())
                    .await
            })
            .await?;
        check_code(resp.error_code, || "listing groups".into(), None)?;
        let mut groups: Vec<GroupListing> = resp
            .groups
            .into_iter()
            .map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
            })
            .collect();
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(groups)
    }

    /// A group's state and members with their assignments.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, ClientError> {
        let what = format!("describing group '{group}'");
        let resp = self
            .cluster
            .retrying(&what, true, || async {
                let conn = self.coordinator(group).await?;
                let d = conn
                    .send(&DescribeGroupsRequest::default().with_groups(vec![group_id(group)]))
                    .await?;
                if let Some(g) = d.groups.first() {
                    check_code(
                        g.error_code,
                        || format!("group '{group}'"),
                        g.error_message.as_deref(),
                    )?;
                }
                Ok(d)
            })
            .await?;
        let g = resp
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Protocol {
                addr: "the coordinator".into(),
                reason: format!("the DescribeGroups response does not mention '{group}'"),
            })?;
        let consumer = g.protocol_type.as_str() == "consumer";
        Ok(GroupDescription {
            group_id: group.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members: g
                .members
                .into_iter()
                .map(|m| GroupMember {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.map(|i| i.to_string()),
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                    assignment: if consumer {
                        records::assigned_partitions(&m.member_assignment)
                            .unwrap_or_default()
                            .into_iter()
                            .flat_map(|(t, ps)| {
                                ps.into_iter()
                                    .map(move |p| TopicPartition::new(t.clone(), p))
                            })
                            .collect()
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
        })
    }

    /// Every offset a group has committed.
    pub async fn committed_offsets(
        &self,
        group: &str,
    ) -> Result<BTreeMap<TopicPartition, i64>, ClientError> {
        let what = format!("fetching the offsets of group '{group}'");
        let resp: OffsetFetchResponse = self
            .cluster
            .retrying(&what, true, || async {
                let conn = self.coordinator(group).await?;
                let version = conn.version_for(ApiKey::OffsetFetch)?.max(2);
                let mut req = OffsetFetchRequest::default();
                if version >= 8 {
                    req.groups = vec![
                        OffsetFetchRequestGroup::default()
                            .with_group_id(group_id(group))
                            .with_topics(None),
                    ];
                } else {
                    req.group_id = group_id(group);
                    req.topics = None;
                }
                let r: OffsetFetchResponse = conn.start_at(&req, version).await?.wait().await?;
                let code = if version >= 8 {
                    r.groups.first().map_or(0, |g| g.error_code)
                } else {
                    r.error_code
                };
                check_code(code, || format!("group '{group}'"), None)?;
                Ok(r)
            })
            .await?;
        let mut out = BTreeMap::new();
        for g in &resp.groups {
            for t in &g.topics {
                for p in &t.partitions {
                    if p.error_code == 0 && p.committed_offset >= 0 {
                        out.insert(
                            TopicPartition::new(t.name.0.as_str(), p.partition_index),
                            p.committed_offset,
                        );
                    }
                }
            }
        }
        for t in &resp.topics {
            for p in &t.partitions {
                if p.error_code == 0 && p.committed_offset >= 0 {
                    out.insert(
                        TopicPartition::new(t.name.0.as_str(), p.partition_index),
                        p.committed_offset,
                    );
                }
            }
        }
        Ok(out)
    }

    /// Deletes a group (it must have no members) and its offsets.
    pub async fn delete_group(&self, group: &str) -> Result<(), ClientError> {
        let what = format!("deleting group '{group}'");
        let resp = self
            .cluster
            .retrying(&what, false, || async {
                let conn = self.coordinator(group).await?;
                let r = conn
                    .send(&DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]))
                    .await?;
                if let Some(x) = r.results.first() {
                    check_code(x.error_code, || format!("group '{group}'"), None)?;
                }
                Ok(r)
            })
            .await?;
        if resp.results.is_empty() {
            return Err(self.missing("DeleteGroups", group));
        }
        Ok(())
    }

    /// Commits offsets for a group outside group management (the group must have no
    /// members), as `kafka-consumer-groups --reset-offsets --execute` does.
    pub async fn commit_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<(), ClientError> {
        let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
        for (tp, offset) in offsets {
            let p = OffsetCommitRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_committed_offset(*offset)
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
        let req = OffsetCommitRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(topics);
        let what = format!("committing offsets of group '{group}'");
        let resp = self
            .cluster
            .retrying(&what, true, || async {
                let conn = self.coordinator(group).await?;
                let r = conn.send(&req).await?;
                for t in &r.topics {
                    for p in &t.partitions {
                        check_code(
                            p.error_code,
                            || {
                                format!(
                                    "group '{group}', partition {}-{}",
                                    t.name.0, p.partition_index
                                )
                            },
                            None,
                        )?;
                    }
                }
                Ok(r)
            })
            .await?;
        let _ = resp;
        Ok(())
    }
}
