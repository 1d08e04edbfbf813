//! The admin client's group operations, as Kafka's admin client does them: find the group's
//! coordinator (FindCoordinator), then ask it; retried while the coordinator moves or loads.

use super::Admin;
use crate::client::TopicPartition;
use crate::client::connection::BrokerConnection;
use crate::client::coordinator::{self, CommittedOffset, Committer, group_id};
use crate::client::error::{ClientError, check_code};
use crate::group::records;
use kafka_protocol::messages::{DeleteGroupsRequest, DescribeGroupsRequest, ListGroupsRequest};
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

impl Admin {
    /// The connection to `group`'s coordinator.
    async fn coordinator(&self, group: &str) -> Result<Arc<BrokerConnection>, ClientError> {
        coordinator::find(&self.cluster, group).await
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
        self.cluster
            .retrying(&what, true, || async {
                let conn = self.coordinator(group).await?;
                let found = coordinator::fetch_offsets(&conn, group, None).await?;
                Ok(found.into_iter().map(|(tp, c)| (tp, c.offset)).collect())
            })
            .await
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
        let what = format!("committing offsets of group '{group}'");
        let offsets: BTreeMap<TopicPartition, CommittedOffset> = offsets
            .iter()
            .map(|(tp, o)| (tp.clone(), (*o).into()))
            .collect();
        self.cluster
            .retrying(&what, true, || async {
                let conn = self.coordinator(group).await?;
                coordinator::commit_offsets(&conn, group, &Committer::standalone(), &offsets).await
            })
            .await
    }
}
