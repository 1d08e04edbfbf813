//! The group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
//! OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete. Each decodes its
//! request in any supported version, asks the group coordinator ([`crate::group`]) and encodes
//! the answer for that version.

use super::super::Broker;
use super::super::topics::ensure_offsets_topic;
use super::{Reply, ReplyTo, decode, respond, str_bytes};
use crate::group::coordinator::{CommitOffset, GroupState};
use crate::group::{OFFSETS_TOPIC, Request, Response};
use crate::protocol::RequestFrame;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::net::SocketAddr;
use std::sync::Arc;

/// Partitions asked for, by topic and index; None: all a group has.
type Partitions = Option<Vec<(String, i32)>>;

fn s(x: &StrBytes) -> String {
    x.to_string()
}

fn opt(x: &Option<StrBytes>) -> Option<String> {
    x.as_ref().map(s)
}

fn name(x: String) -> StrBytes {
    str_bytes(x)
}

/// Answers a request whose answer comes from the coordinator, later.
fn later<F>(_req: &RequestFrame, fut: F) -> Reply
where
    F: std::future::Future<Output = Option<Bytes>> + Send + 'static,
{
    Reply::Later(Box::pin(fut))
}

// ---- FindCoordinator ----

pub async fn find_coordinator(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    let r: FindCoordinatorRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let v = req.api_version;
    let keys: Vec<StrBytes> = if v >= 4 {
        r.coordinator_keys.clone()
    } else {
        vec![r.key.clone()]
    };
    let ready = if r.key_type == 0 {
        ensure_offsets_topic(broker)
            .await
            .map_err(|e| e.to_string())
    } else {
        Ok(())
    };
    let state = broker.metadata.state();
    let brokers = super::metadata::live_brokers(broker, &state);
    let coordinators: Vec<find_coordinator_response::Coordinator> = keys
        .into_iter()
        .map(|key| {
            let c = find_coordinator_response::Coordinator::default().with_key(key.clone());
            // The coordinator of a group is the leader of its __consumer_offsets partition.
            let leader = || {
                let p = broker.groups.partition_for(key.as_str());
                let leader = state.leader_of(OFFSETS_TOPIC, p)?;
                brokers.iter().find(|b| b.id == leader)
            };
            let (found, code, message) = match (r.key_type, &ready) {
                (0, Ok(())) => match leader() {
                    // Named here before this broker serves the partition (its log not yet
                    // opened and loaded), a commit would get NOT_COORDINATOR, which librdkafka
                    // does not retry for a synchronous commit: not available yet instead.
                    Some(b)
                        if b.id == broker.config.node_id
                            && !broker
                                .groups
                                .serves(broker.groups.partition_for(key.as_str())) =>
                    {
                        (
                            None,
                            ResponseError::CoordinatorNotAvailable.code(),
                            Some("the group's __consumer_offsets partition is being opened".into()),
                        )
                    }
                    Some(b) => (Some(b), 0, None),
                    None => (
                        None,
                        ResponseError::CoordinatorNotAvailable.code(),
                        Some("the group's __consumer_offsets partition has no live leader".into()),
                    ),
                },
                (0, Err(e)) => (
                    None,
                    ResponseError::CoordinatorNotAvailable.code(),
                    Some(format!("cannot create __consumer_offsets: {e}")),
                ),
                (1, _) => (
                    None,
                    ResponseError::CoordinatorNotAvailable.code(),
                    Some("runnel has no transactions".to_string()),
                ),
                (t, _) => (
                    None,
                    ResponseError::InvalidRequest.code(),
                    Some(format!("unknown coordinator key type {t}")),
                ),
            };
            match found {
                Some(b) => c
                    .with_node_id(b.id.into())
                    .with_host(str_bytes(b.host.clone()))
                    .with_port(b.port),
                None => c
                    .with_node_id((-1).into())
                    .with_host(str_bytes(""))
                    .with_port(-1)
                    .with_error_code(code)
                    .with_error_message(message.map(str_bytes)),
            }
        })
        .collect();
    let resp = if v >= 4 {
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let c = coordinators.into_iter().next().unwrap_or_default();
        FindCoordinatorResponse::default()
            .with_error_code(c.error_code)
            .with_error_message(c.error_message)
            .with_node_id(c.node_id)
            .with_host(c.host)
            .with_port(c.port)
    };
    respond(req, &resp)
}

// ---- JoinGroup ----

pub fn join_group(broker: &Arc<Broker>, req: &RequestFrame, peer: SocketAddr) -> Reply {
    let r: JoinGroupRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let v = req.api_version;
    let client_id = req.client_id.clone().unwrap_or_default();
    // A version-4 UUID from the seam's randomness, as Kafka's member ids carry.
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&broker.env.rng.next_u64().to_be_bytes());
    bytes[8..].copy_from_slice(&broker.env.rng.next_u64().to_be_bytes());
    let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let request = Request::Join {
        group: s(&r.group_id),
        member_id: s(&r.member_id),
        group_instance_id: opt(&r.group_instance_id),
        client_id: client_id.clone(),
        client_host: format!("/{}", peer.ip()),
        session_timeout_ms: r.session_timeout_ms,
        rebalance_timeout_ms: r.rebalance_timeout_ms,
        protocol_type: s(&r.protocol_type),
        protocols: r
            .protocols
            .iter()
            .map(|p| (s(&p.name), p.metadata.to_vec()))
            .collect(),
        require_known_member_id: v >= 4,
        new_member_id: format!("{}-{uuid}", id_prefix(&client_id)),
    };
    // Stepped now, in the connection's order; only the answer is awaited.
    let call = broker.groups.submit(request);
    let broker = broker.clone();
    let to = ReplyTo::of(req);
    later(req, async move {
        let resp = match broker.groups.complete(call).await {
            Response::Join(j) => {
                // Before v9 there is no skip_assignment: the old leader id alone keeps a
                // restarted static leader from assigning, and it needs no member list.
                let members = if j.skip_assignment && v < 9 {
                    Vec::new()
                } else {
                    j.members
                };
                let members = members
                    .into_iter()
                    .map(|(id, inst, md)| {
                        join_group_response::JoinGroupResponseMember::default()
                            .with_member_id(name(id))
                            .with_group_instance_id(inst.map(name))
                            .with_metadata(Bytes::from(md))
                    })
                    .collect();
                // Before v7 the protocol name is not nullable.
                let protocol_name = match j.protocol_name {
                    Some(p) => Some(name(p)),
                    None if v < 7 => Some(str_bytes("")),
                    None => None,
                };
                JoinGroupResponse::default()
                    .with_error_code(j.error)
                    .with_generation_id(j.generation)
                    .with_protocol_type(j.protocol_type.map(name))
                    .with_protocol_name(protocol_name)
                    .with_leader(name(j.leader))
                    .with_member_id(name(j.member_id))
                    .with_skip_assignment(v >= 9 && j.skip_assignment)
                    .with_members(members)
            }
            other => JoinGroupResponse::default()
                .with_error_code(error_of(&other))
                .with_generation_id(-1)
                .with_protocol_name((v < 7).then(|| str_bytes(""))),
        };
        to.encode(&resp)
    })
}

/// The client id as the start of a member id, cut (at a character boundary) so the id fits
/// the string of a `__consumer_offsets` record.
fn id_prefix(client_id: &str) -> &str {
    let mut end = client_id.len().min(16_384);
    while !client_id.is_char_boundary(end) {
        end -= 1;
    }
    &client_id[..end]
}

/// The error of an answer of the wrong kind (the coordinator was not reachable).
fn error_of(r: &Response) -> i16 {
    match r {
        Response::Heartbeat(e) => *e,
        _ => ResponseError::UnknownServerError.code(),
    }
}

// ---- SyncGroup ----

pub fn sync_group(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    let r: SyncGroupRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let request = Request::Sync {
        group: s(&r.group_id),
        generation: r.generation_id,
        member_id: s(&r.member_id),
        group_instance_id: opt(&r.group_instance_id),
        protocol_type: opt(&r.protocol_type),
        protocol_name: opt(&r.protocol_name),
        assignments: r
            .assignments
            .iter()
            .map(|a| (s(&a.member_id), a.assignment.to_vec()))
            .collect(),
    };
    // Stepped now, in the connection's order; only the answer is awaited.
    let call = broker.groups.submit(request);
    let broker = broker.clone();
    let to = ReplyTo::of(req);
    later(req, async move {
        let resp = match broker.groups.complete(call).await {
            Response::Sync(r) => SyncGroupResponse::default()
                .with_error_code(r.error)
                .with_protocol_type(r.protocol_type.map(name))
                .with_protocol_name(r.protocol_name.map(name))
                .with_assignment(Bytes::from(r.assignment)),
            other => SyncGroupResponse::default().with_error_code(error_of(&other)),
        };
        to.encode(&resp)
    })
}

// ---- Heartbeat ----

pub fn heartbeat(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    let r: HeartbeatRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let request = Request::Heartbeat {
        group: s(&r.group_id),
        generation: r.generation_id,
        member_id: s(&r.member_id),
        group_instance_id: opt(&r.group_instance_id),
    };
    // Stepped now, in the connection's order; only the answer is awaited.
    let call = broker.groups.submit(request);
    let broker = broker.clone();
    let to = ReplyTo::of(req);
    later(req, async move {
        let code = error_of(&broker.groups.complete(call).await);
        to.encode(&HeartbeatResponse::default().with_error_code(code))
    })
}

// ---- LeaveGroup ----

pub fn leave_group(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    let r: LeaveGroupRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let v = req.api_version;
    let members: Vec<(String, Option<String>)> = if v >= 3 {
        r.members
            .iter()
            .map(|m| (s(&m.member_id), opt(&m.group_instance_id)))
            .collect()
    } else {
        vec![(s(&r.member_id), None)]
    };
    let request = Request::Leave {
        group: s(&r.group_id),
        members,
    };
    // Stepped now, in the connection's order; only the answer is awaited.
    let call = broker.groups.submit(request);
    let broker = broker.clone();
    let to = ReplyTo::of(req);
    later(req, async move {
        let resp = match broker.groups.complete(call).await {
            Response::Leave(top, per) => {
                if v >= 3 {
                    LeaveGroupResponse::default()
                        .with_error_code(top)
                        .with_members(
                            per.into_iter()
                                .map(|(m, i, e)| {
                                    leave_group_response::MemberResponse::default()
                                        .with_member_id(name(m))
                                        .with_group_instance_id(i.map(name))
                                        .with_error_code(e)
                                })
                                .collect(),
                        )
                } else {
                    // One member: its error is the answer's.
                    let e = if top != 0 {
                        top
                    } else {
                        per.first().map_or(0, |p| p.2)
                    };
                    LeaveGroupResponse::default().with_error_code(e)
                }
            }
            other => LeaveGroupResponse::default().with_error_code(error_of(&other)),
        };
        to.encode(&resp)
    })
}

// ---- OffsetCommit ----

pub fn offset_commit(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    let r: OffsetCommitRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let v = req.api_version;
    let state = broker.metadata.state();
    let mut offsets = Vec::new();
    for t in &r.topics {
        let topic = s(&t.name);
        let partitions = state.topics.get(&topic).map_or(0, |m| m.partitions);
        for p in &t.partitions {
            let error = if p.partition_index < 0 || p.partition_index >= partitions {
                ResponseError::UnknownTopicOrPartition.code()
            } else {
                0
            };
            offsets.push(CommitOffset {
                topic: topic.clone(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: opt(&p.committed_metadata),
                error,
            });
        }
    }
    let request = Request::Commit {
        group: s(&r.group_id),
        generation: r.generation_id_or_member_epoch,
        member_id: s(&r.member_id),
        group_instance_id: opt(&r.group_instance_id),
        retention_ms: if (2..=4).contains(&v) {
            r.retention_time_ms
        } else {
            -1
        },
        offsets,
    };
    // Stepped now, in the connection's order; only the answer is awaited.
    let call = broker.groups.submit(request);
    let broker = broker.clone();
    let to = ReplyTo::of(req);
    later(req, async move {
        let results = match broker.groups.complete(call).await {
            Response::Commit(results) => results,
            _ => Vec::new(),
        };
        let mut topics: Vec<offset_commit_response::OffsetCommitResponseTopic> = Vec::new();
        for (topic, partition, error) in results {
            let p = offset_commit_response::OffsetCommitResponsePartition::default()
                .with_partition_index(partition)
                .with_error_code(error);
            match topics.last_mut() {
                Some(t) if t.name.0.as_str() == topic => t.partitions.push(p),
                _ => topics.push(
                    offset_commit_response::OffsetCommitResponseTopic::default()
                        .with_name(TopicName(name(topic)))
                        .with_partitions(vec![p]),
                ),
            }
        }
        to.encode(&OffsetCommitResponse::default().with_topics(topics))
    })
}

// ---- OffsetFetch ----

pub fn offset_fetch(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    let r: OffsetFetchRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let v = req.api_version;
    // (group, partitions asked for: None for all)
    let asks: Vec<(String, Partitions)> = if v >= 8 {
        r.groups
            .iter()
            .map(|g| {
                let ps = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .flat_map(|t| t.partition_indexes.iter().map(|p| (s(&t.name), *p)))
                        .collect()
                });
                (s(&g.group_id), ps)
            })
            .collect()
    } else {
        let ps = r.topics.as_ref().map(|ts| {
            ts.iter()
                .flat_map(|t| t.partition_indexes.iter().map(|p| (s(&t.name), *p)))
                .collect()
        });
        vec![(s(&r.group_id), ps)]
    };
    // Stepped now, in the connection's order; only the answers are awaited.
    let calls: Vec<_> = asks
        .into_iter()
        .map(|(group, partitions)| {
            let asked = partitions.clone();
            let call = broker.groups.submit(Request::FetchOffsets {
                group: group.clone(),
                partitions,
            });
            (group, asked, call)
        })
        .collect();
    let broker = broker.clone();
    let to = ReplyTo::of(req);
    later(req, async move {
        let mut groups = Vec::with_capacity(calls.len());
        for (group, asked, call) in calls {
            let (error, offsets) = match broker.groups.complete(call).await {
                Response::FetchOffsets(e, o) => (e, o),
                other => (error_of(&other), Vec::new()),
            };
            groups.push((group, error, offsets, asked));
        }
        let resp = if v >= 8 {
            let groups = groups
                .into_iter()
                .map(|(group, error, offsets, _)| {
                    let mut topics: Vec<offset_fetch_response::OffsetFetchResponseTopics> =
                        Vec::new();
                    for o in offsets {
                        let p = offset_fetch_response::OffsetFetchResponsePartitions::default()
                            .with_partition_index(o.partition)
                            .with_committed_offset(o.offset)
                            .with_committed_leader_epoch(o.leader_epoch)
                            .with_metadata(o.metadata.map(name))
                            .with_error_code(o.error);
                        match topics.last_mut() {
                            Some(t) if t.name.0.as_str() == o.topic => t.partitions.push(p),
                            _ => topics.push(
                                offset_fetch_response::OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(name(o.topic)))
                                    .with_partitions(vec![p]),
                            ),
                        }
                    }
                    offset_fetch_response::OffsetFetchResponseGroup::default()
                        .with_group_id(GroupId(name(group)))
                        .with_error_code(error)
                        .with_topics(topics)
                })
                .collect();
            OffsetFetchResponse::default().with_groups(groups)
        } else {
            let (_, error, offsets, asked) = groups.into_iter().next().unwrap_or_default();
            let mut topics: Vec<offset_fetch_response::OffsetFetchResponseTopic> = Vec::new();
            let mut push =
                |topic: String, p: offset_fetch_response::OffsetFetchResponsePartition| match topics
                    .last_mut()
                {
                    Some(t) if t.name.0.as_str() == topic => t.partitions.push(p),
                    _ => topics.push(
                        offset_fetch_response::OffsetFetchResponseTopic::default()
                            .with_name(TopicName(name(topic)))
                            .with_partitions(vec![p]),
                    ),
                };
            if error != 0 && v < 2 {
                // No group-level error before v2: each partition carries it.
                for (t, p) in asked.unwrap_or_default() {
                    push(
                        t,
                        offset_fetch_response::OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(-1)
                            .with_metadata(Some(str_bytes("")))
                            .with_error_code(error),
                    );
                }
            }
            for o in offsets {
                push(
                    o.topic,
                    offset_fetch_response::OffsetFetchResponsePartition::default()
                        .with_partition_index(o.partition)
                        .with_committed_offset(o.offset)
                        .with_committed_leader_epoch(o.leader_epoch)
                        .with_metadata(o.metadata.map(name))
                        .with_error_code(o.error),
                );
            }
            OffsetFetchResponse::default()
                .with_error_code(error)
                .with_topics(topics)
        };
        to.encode(&resp)
    })
}

// ---- ListGroups, DescribeGroups ----

pub fn list_groups(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    let r: ListGroupsRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let request = Request::List {
        states: r.states_filter.iter().map(s).collect(),
        types: r.types_filter.iter().map(s).collect(),
    };
    // Stepped now, in the connection's order; only the answer is awaited.
    let call = broker.groups.submit(request);
    let broker = broker.clone();
    let to = ReplyTo::of(req);
    later(req, async move {
        let groups = match broker.groups.complete(call).await {
            Response::List(gs) => gs,
            _ => Vec::new(),
        };
        let groups = groups
            .into_iter()
            .map(|g| {
                list_groups_response::ListedGroup::default()
                    .with_group_id(GroupId(name(g.group)))
                    .with_protocol_type(name(g.protocol_type))
                    .with_group_state(str_bytes(g.state.name()))
                    .with_group_type(str_bytes("classic"))
            })
            .collect();
        to.encode(&ListGroupsResponse::default().with_groups(groups))
    })
}

pub fn describe_groups(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    let r: DescribeGroupsRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let v = req.api_version;
    let ops =
        super::authorized::if_asked(r.include_authorized_operations, super::authorized::GROUP);
    let request = Request::Describe {
        groups: r.groups.iter().map(|g| s(&g.0)).collect(),
    };
    // Stepped now, in the connection's order; only the answer is awaited.
    let call = broker.groups.submit(request);
    let broker = broker.clone();
    let to = ReplyTo::of(req);
    later(req, async move {
        let groups = match broker.groups.complete(call).await {
            Response::Describe(gs) => gs,
            _ => Vec::new(),
        };
        let groups = groups
            .into_iter()
            .map(|g| {
                // v6 (KIP-1043) reports a group that does not exist as an error.
                let missing = v >= 6 && g.error == 0 && g.state == GroupState::Dead;
                let (error, message) = if missing {
                    (
                        ResponseError::GroupIdNotFound.code(),
                        Some(str_bytes(format!("group {} not found", g.group))),
                    )
                } else {
                    (g.error, None)
                };
                describe_groups_response::DescribedGroup::default()
                    .with_error_code(error)
                    .with_error_message(message)
                    .with_group_id(GroupId(name(g.group)))
                    .with_group_state(str_bytes(g.state.name()))
                    .with_protocol_type(name(g.protocol_type))
                    .with_protocol_data(name(g.protocol))
                    .with_authorized_operations(ops)
                    .with_members(
                        g.members
                            .into_iter()
                            .map(|m| {
                                describe_groups_response::DescribedGroupMember::default()
                                    .with_member_id(name(m.member_id))
                                    .with_group_instance_id(m.group_instance_id.map(name))
                                    .with_client_id(name(m.client_id))
                                    .with_client_host(name(m.client_host))
                                    .with_member_metadata(Bytes::from(m.metadata))
                                    .with_member_assignment(Bytes::from(m.assignment))
                            })
                            .collect(),
                    )
            })
            .collect();
        to.encode(&DescribeGroupsResponse::default().with_groups(groups))
    })
}

// ---- DeleteGroups, OffsetDelete ----

pub fn delete_groups(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    let r: DeleteGroupsRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let request = Request::Delete {
        groups: r.groups_names.iter().map(|g| s(&g.0)).collect(),
    };
    // Stepped now, in the connection's order; only the answer is awaited.
    let call = broker.groups.submit(request);
    let broker = broker.clone();
    let to = ReplyTo::of(req);
    later(req, async move {
        let results = match broker.groups.complete(call).await {
            Response::Delete(rs) => rs,
            _ => Vec::new(),
        };
        let results = results
            .into_iter()
            .map(|(g, e)| {
                delete_groups_response::DeletableGroupResult::default()
                    .with_group_id(GroupId(name(g)))
                    .with_error_code(e)
            })
            .collect();
        to.encode(&DeleteGroupsResponse::default().with_results(results))
    })
}

pub fn offset_delete(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    let r: OffsetDeleteRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let request = Request::DeleteOffsets {
        group: s(&r.group_id),
        partitions: r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (s(&t.name), p.partition_index)))
            .collect(),
    };
    // Stepped now, in the connection's order; only the answer is awaited.
    let call = broker.groups.submit(request);
    let broker = broker.clone();
    let to = ReplyTo::of(req);
    later(req, async move {
        let (error, results) = match broker.groups.complete(call).await {
            Response::DeleteOffsets(e, rs) => (e, rs),
            other => (error_of(&other), Vec::new()),
        };
        let mut topics: Vec<offset_delete_response::OffsetDeleteResponseTopic> = Vec::new();
        for (topic, partition, e) in results {
            let p = offset_delete_response::OffsetDeleteResponsePartition::default()
                .with_partition_index(partition)
                .with_error_code(e);
            match topics.last_mut() {
                Some(t) if t.name.0.as_str() == topic => t.partitions.push(p),
                _ => topics.push(
                    offset_delete_response::OffsetDeleteResponseTopic::default()
                        .with_name(TopicName(name(topic)))
                        .with_partitions(vec![p]),
                ),
            }
        }
        to.encode(
            &OffsetDeleteResponse::default()
                .with_error_code(error)
                .with_topics(topics),
        )
    })
}
