//! The quorum's messages and entries in Kafka's own formats, as KRaft puts them on the wire:
//! [`Message`]s to and from `kafka-protocol`'s Vote, BeginQuorumEpoch, EndQuorumEpoch and Fetch
//! requests and responses of the partition `__cluster_metadata-0`, and [`Entry`]s to and from
//! RecordBatch v2 batches (one batch per entry: base offset = the entry's offset, partition
//! leader epoch = its epoch; a LeaderChange entry is a control batch whose one record is
//! Kafka's `LeaderChangeMessage`, control type 2).
//!
//! Fields a Kafka response does not carry but the core matches answers by (`pre_vote` and
//! `candidate_epoch` of a vote, `fetch_offset` and `last_fetched_epoch` of a fetch) come from
//! the request the response answers, which the caller passes in. Built for Vote v2 (pre-vote,
//! KIP-996), BeginQuorumEpoch v1, EndQuorumEpoch v1 and Fetch v18 (topic ids, and the fetcher's
//! high watermark, which the leader needs to decide whether to hold a fetch): the fields of
//! those versions are set, so the caller encodes at them.
//!
//! Nothing here trusts the bytes it decodes: a response about another partition, a batch that
//! fails its CRC or offsets that do not follow each other is a [`WireError`], never a panic.

use super::NodeId;
use super::log::OffsetAndEpoch;
use super::log::{Entry, EntryKind};
use super::message::{
    BeginQuorumEpoch, DivergingEpoch, EndQuorumEpoch, EpochResponse, Fetch, FetchResponse,
    FetchSnapshot, FetchSnapshotResponse, LeaderAndEpoch, RaftError, Vote, VoteResponse,
};
use crate::record::batch::{self, NewRecord, ProducerFields};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    self, BeginQuorumEpochRequest, BeginQuorumEpochResponse, BrokerId, EndQuorumEpochRequest,
    EndQuorumEpochResponse, FetchRequest, LeaderChangeMessage, TopicName, VoteRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use thiserror::Error;
use uuid::Uuid;

/// The metadata log's topic.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// Its topic id, fixed by Kafka (`Uuid.METADATA_TOPIC_ID`).
pub const METADATA_TOPIC_ID: Uuid = Uuid::from_u64_pair(0, 1);
/// Its one partition.
pub const METADATA_PARTITION: i32 = 0;
/// The control record type of a `LeaderChangeMessage`.
const LEADER_CHANGE: i16 = 2;
/// Batch attribute: a control batch.
const ATTR_CONTROL: i16 = 0x20;

/// What cannot be read from the wire.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// The message says nothing of `__cluster_metadata-0`.
    #[error("the {0} says nothing of __cluster_metadata-0")]
    NoPartition(&'static str),
    /// An error code the quorum does not answer with.
    #[error("the {api} carries error {code}, which the quorum does not use")]
    UnexpectedError { api: &'static str, code: i16 },
    /// The records do not decode as the quorum's batches.
    #[error("bad quorum records: {0}")]
    Records(String),
}

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(METADATA_TOPIC))
}

fn broker(id: Option<NodeId>) -> BrokerId {
    BrokerId(id.unwrap_or(-1))
}

fn node(id: BrokerId) -> Option<NodeId> {
    (id.0 >= 0).then_some(id.0)
}

fn error_code(e: Option<RaftError>) -> i16 {
    match e {
        None => 0,
        Some(RaftError::FencedLeaderEpoch) => ResponseError::FencedLeaderEpoch.code(),
        Some(RaftError::UnknownLeaderEpoch) => ResponseError::UnknownLeaderEpoch.code(),
        Some(RaftError::NotLeaderOrFollower) => ResponseError::NotLeaderOrFollower.code(),
        Some(RaftError::InconsistentVoterSet) => ResponseError::InconsistentVoterSet.code(),
        Some(RaftError::SnapshotNotFound) => ResponseError::SnapshotNotFound.code(),
        Some(RaftError::PositionOutOfRange) => ResponseError::PositionOutOfRange.code(),
    }
}

fn raft_error(api: &'static str, code: i16) -> Result<Option<RaftError>, WireError> {
    match ResponseError::try_from_code(code) {
        None => Ok(None),
        Some(ResponseError::FencedLeaderEpoch) => Ok(Some(RaftError::FencedLeaderEpoch)),
        Some(ResponseError::UnknownLeaderEpoch) => Ok(Some(RaftError::UnknownLeaderEpoch)),
        Some(ResponseError::NotLeaderOrFollower) => Ok(Some(RaftError::NotLeaderOrFollower)),
        Some(ResponseError::InconsistentVoterSet) => Ok(Some(RaftError::InconsistentVoterSet)),
        Some(ResponseError::SnapshotNotFound) => Ok(Some(RaftError::SnapshotNotFound)),
        Some(ResponseError::PositionOutOfRange) => Ok(Some(RaftError::PositionOutOfRange)),
        Some(_) => Err(WireError::UnexpectedError { api, code }),
    }
}

/// The entry of `__cluster_metadata-0` among a message's topics: `is_metadata` picks the
/// topic, `partitions` lists its partitions and `index` names each; `what` names the message
/// in the error when there is none.
fn metadata_partition<'a, T, P>(
    topics: &'a [T],
    is_metadata: impl Fn(&T) -> bool,
    partitions: impl Fn(&'a T) -> &'a [P],
    index: impl Fn(&P) -> i32,
    what: &'static str,
) -> Result<&'a P, WireError> {
    topics
        .iter()
        .filter(|t| is_metadata(t))
        .flat_map(partitions)
        .find(|p| index(p) == METADATA_PARTITION)
        .ok_or(WireError::NoPartition(what))
}

/// A Vote request from the candidate to voter `to`.
pub fn vote_request(cluster_id: &str, to: NodeId, v: &Vote) -> VoteRequest {
    VoteRequest::default()
        .with_cluster_id(Some(StrBytes::from_string(cluster_id.to_string())))
        .with_voter_id(BrokerId(to))
        .with_topics(vec![
            messages::vote_request::TopicData::default()
                .with_topic_name(topic_name())
                .with_partitions(vec![
                    messages::vote_request::PartitionData::default()
                        .with_partition_index(METADATA_PARTITION)
                        .with_replica_epoch(v.candidate_epoch)
                        .with_replica_id(BrokerId(v.candidate_id))
                        .with_last_offset_epoch(v.last_offset_epoch)
                        .with_last_offset(v.last_offset)
                        .with_pre_vote(v.pre_vote),
                ]),
        ])
}

/// The vote a Vote request asks for.
pub fn vote_from_request(req: &VoteRequest) -> Result<Vote, WireError> {
    let p = metadata_partition(
        &req.topics,
        |t| t.topic_name.0.as_str() == METADATA_TOPIC,
        |t| &t.partitions,
        |p| p.partition_index,
        "Vote request",
    )?;
    Ok(Vote {
        candidate_epoch: p.replica_epoch,
        candidate_id: p.replica_id.0,
        last_offset_epoch: p.last_offset_epoch,
        last_offset: p.last_offset,
        pre_vote: p.pre_vote,
    })
}

/// The Vote response of a voter's answer.
pub fn vote_response(r: &VoteResponse) -> messages::VoteResponse {
    messages::VoteResponse::default().with_topics(vec![
        messages::vote_response::TopicData::default()
            .with_topic_name(topic_name())
            .with_partitions(vec![
                messages::vote_response::PartitionData::default()
                    .with_partition_index(METADATA_PARTITION)
                    .with_error_code(error_code(r.error))
                    .with_leader_id(broker(r.leader_id))
                    .with_leader_epoch(r.leader_epoch)
                    .with_vote_granted(r.vote_granted),
            ]),
    ])
}

/// The voter's answer in a Vote response to `asked`.
pub fn vote_from_response(
    resp: &messages::VoteResponse,
    asked: &Vote,
) -> Result<VoteResponse, WireError> {
    if resp.error_code != 0 {
        return Err(WireError::UnexpectedError {
            api: "Vote response",
            code: resp.error_code,
        });
    }
    let p = metadata_partition(
        &resp.topics,
        |t| t.topic_name.0.as_str() == METADATA_TOPIC,
        |t| &t.partitions,
        |p| p.partition_index,
        "Vote response",
    )?;
    Ok(VoteResponse {
        error: raft_error("Vote response", p.error_code)?,
        leader_id: node(p.leader_id),
        leader_epoch: p.leader_epoch,
        vote_granted: p.vote_granted,
        pre_vote: asked.pre_vote,
        candidate_epoch: asked.candidate_epoch,
    })
}

/// A BeginQuorumEpoch request from the new leader to voter `to`.
pub fn begin_request(
    cluster_id: &str,
    to: NodeId,
    b: &BeginQuorumEpoch,
) -> BeginQuorumEpochRequest {
    BeginQuorumEpochRequest::default()
        .with_cluster_id(Some(StrBytes::from_string(cluster_id.to_string())))
        .with_voter_id(BrokerId(to))
        .with_topics(vec![
            messages::begin_quorum_epoch_request::TopicData::default()
                .with_topic_name(topic_name())
                .with_partitions(vec![
                    messages::begin_quorum_epoch_request::PartitionData::default()
                        .with_partition_index(METADATA_PARTITION)
                        .with_leader_id(BrokerId(b.leader_id))
                        .with_leader_epoch(b.leader_epoch),
                ]),
        ])
}

/// The announcement a BeginQuorumEpoch request carries.
pub fn begin_from_request(req: &BeginQuorumEpochRequest) -> Result<BeginQuorumEpoch, WireError> {
    let p = metadata_partition(
        &req.topics,
        |t| t.topic_name.0.as_str() == METADATA_TOPIC,
        |t| &t.partitions,
        |p| p.partition_index,
        "BeginQuorumEpoch request",
    )?;
    Ok(BeginQuorumEpoch {
        leader_id: p.leader_id.0,
        leader_epoch: p.leader_epoch,
    })
}

/// An EndQuorumEpoch request from the resigning leader.
pub fn end_request(cluster_id: &str, e: &EndQuorumEpoch) -> EndQuorumEpochRequest {
    EndQuorumEpochRequest::default()
        .with_cluster_id(Some(StrBytes::from_string(cluster_id.to_string())))
        .with_topics(vec![
            messages::end_quorum_epoch_request::TopicData::default()
                .with_topic_name(topic_name())
                .with_partitions(vec![
                    messages::end_quorum_epoch_request::PartitionData::default()
                        .with_partition_index(METADATA_PARTITION)
                        .with_leader_id(BrokerId(e.leader_id))
                        .with_leader_epoch(e.leader_epoch)
                        .with_preferred_candidates(
                            e.preferred_successors
                                .iter()
                                .map(|id| {
                                    messages::end_quorum_epoch_request::ReplicaInfo::default()
                                        .with_candidate_id(BrokerId(*id))
                                })
                                .collect(),
                        ),
                ]),
        ])
}

/// The resignation an EndQuorumEpoch request carries (v0's `preferred_successors` or v1's
/// `preferred_candidates`).
pub fn end_from_request(req: &EndQuorumEpochRequest) -> Result<EndQuorumEpoch, WireError> {
    let p = metadata_partition(
        &req.topics,
        |t| t.topic_name.0.as_str() == METADATA_TOPIC,
        |t| &t.partitions,
        |p| p.partition_index,
        "EndQuorumEpoch request",
    )?;
    let preferred_successors = if p.preferred_candidates.is_empty() {
        p.preferred_successors.clone()
    } else {
        p.preferred_candidates
            .iter()
            .map(|c| c.candidate_id.0)
            .collect()
    };
    Ok(EndQuorumEpoch {
        leader_id: p.leader_id.0,
        leader_epoch: p.leader_epoch,
        preferred_successors,
    })
}

/// BeginQuorumEpoch and EndQuorumEpoch answer alike, in two types of the same shape.
macro_rules! epoch_response {
    ($to:ident, $from:ident, $resp:ident, $module:ident, $api:literal) => {
        #[doc = concat!("The ", $api, " response of a voter's answer.")]
        pub fn $to(r: &EpochResponse) -> $resp {
            $resp::default().with_topics(vec![
                messages::$module::TopicData::default()
                    .with_topic_name(topic_name())
                    .with_partitions(vec![
                        messages::$module::PartitionData::default()
                            .with_partition_index(METADATA_PARTITION)
                            .with_error_code(error_code(r.error))
                            .with_leader_id(broker(r.leader_id))
                            .with_leader_epoch(r.leader_epoch),
                    ]),
            ])
        }

        #[doc = concat!("The voter's answer in a ", $api, " response.")]
        pub fn $from(resp: &$resp) -> Result<EpochResponse, WireError> {
            if resp.error_code != 0 {
                return Err(WireError::UnexpectedError {
                    api: $api,
                    code: resp.error_code,
                });
            }
            let p = metadata_partition(
        &resp.topics,
        |t| t.topic_name.0.as_str() == METADATA_TOPIC,
        |t| &t.partitions,
        |p| p.partition_index,
        $api,
    )?;
            Ok(EpochResponse {
                error: raft_error($api, p.error_code)?,
                leader_id: node(p.leader_id),
                leader_epoch: p.leader_epoch,
            })
        }
    };
}

epoch_response!(
    begin_response,
    begin_from_response,
    BeginQuorumEpochResponse,
    begin_quorum_epoch_response,
    "BeginQuorumEpoch response"
);
epoch_response!(
    end_response,
    end_from_response,
    EndQuorumEpochResponse,
    end_quorum_epoch_response,
    "EndQuorumEpoch response"
);

/// A Fetch request of `__cluster_metadata-0` (by topic id, as Fetch v13+ names topics),
/// held by the leader up to `max_wait_ms` when there is nothing new.
pub fn fetch_request(cluster_id: &str, f: &Fetch, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_cluster_id(Some(StrBytes::from_string(cluster_id.to_string())))
        .with_replica_state(
            messages::fetch_request::ReplicaState::default()
                .with_replica_id(BrokerId(f.replica_id))
                .with_replica_epoch(-1),
        )
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(0)
        .with_max_bytes(8 << 20)
        .with_topics(vec![
            messages::fetch_request::FetchTopic::default()
                .with_topic_id(METADATA_TOPIC_ID)
                .with_partitions(vec![
                    messages::fetch_request::FetchPartition::default()
                        .with_partition(METADATA_PARTITION)
                        .with_current_leader_epoch(f.current_leader_epoch)
                        .with_fetch_offset(f.fetch_offset)
                        .with_last_fetched_epoch(f.last_fetched_epoch)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(8 << 20)
                        .with_high_watermark(f.high_watermark),
                ]),
        ])
}

/// The fetch a Fetch request of `__cluster_metadata-0` asks for (the replica id from v15's
/// `replica_state` or the older field).
pub fn fetch_from_request(req: &FetchRequest) -> Result<Fetch, WireError> {
    let p = metadata_partition(
        &req.topics,
        |t| t.topic_id == METADATA_TOPIC_ID || t.topic.0.as_str() == METADATA_TOPIC,
        |t| &t.partitions,
        |p| p.partition,
        "Fetch request",
    )?;
    let replica_id = if req.replica_state.replica_id.0 >= 0 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    Ok(Fetch {
        replica_id,
        current_leader_epoch: p.current_leader_epoch,
        fetch_offset: p.fetch_offset,
        last_fetched_epoch: p.last_fetched_epoch,
        high_watermark: p.high_watermark,
    })
}

/// The Fetch response of the leader's answer.
pub fn fetch_response(r: &FetchResponse) -> messages::FetchResponse {
    let diverging = r.diverging_epoch.map_or_else(
        || {
            messages::fetch_response::EpochEndOffset::default()
                .with_epoch(-1)
                .with_end_offset(-1)
        },
        |d| {
            messages::fetch_response::EpochEndOffset::default()
                .with_epoch(d.epoch)
                .with_end_offset(d.end_offset)
        },
    );
    messages::FetchResponse::default().with_responses(vec![
        messages::fetch_response::FetchableTopicResponse::default()
            .with_topic_id(METADATA_TOPIC_ID)
            .with_partitions(vec![
                messages::fetch_response::PartitionData::default()
                    .with_partition_index(METADATA_PARTITION)
                    .with_error_code(error_code(r.error))
                    .with_high_watermark(r.high_watermark)
                    .with_last_stable_offset(r.high_watermark)
                    .with_log_start_offset(0)
                    .with_diverging_epoch(diverging)
                    .with_snapshot_id(r.snapshot_id.map_or_else(
                        || {
                            messages::fetch_response::SnapshotId::default()
                                .with_end_offset(-1)
                                .with_epoch(-1)
                        },
                        |id| {
                            messages::fetch_response::SnapshotId::default()
                                .with_end_offset(id.offset)
                                .with_epoch(id.epoch)
                        },
                    ))
                    .with_current_leader(
                        messages::fetch_response::LeaderIdAndEpoch::default()
                            .with_leader_id(broker(r.current_leader.leader_id))
                            .with_leader_epoch(r.current_leader.leader_epoch),
                    )
                    .with_records(Some(encode_entries(&r.records))),
            ]),
    ])
}

/// The leader's answer in a Fetch response to `asked`.
pub fn fetch_from_response(
    resp: &messages::FetchResponse,
    asked: &Fetch,
) -> Result<FetchResponse, WireError> {
    if resp.error_code != 0 {
        return Err(WireError::UnexpectedError {
            api: "Fetch response",
            code: resp.error_code,
        });
    }
    let p = metadata_partition(
        &resp.responses,
        |t| t.topic_id == METADATA_TOPIC_ID || t.topic.0.as_str() == METADATA_TOPIC,
        |t| &t.partitions,
        |p| p.partition_index,
        "Fetch response",
    )?;
    let diverging_epoch = (p.diverging_epoch.epoch >= 0 && p.diverging_epoch.end_offset >= 0)
        .then_some(DivergingEpoch {
            epoch: p.diverging_epoch.epoch,
            end_offset: p.diverging_epoch.end_offset,
        });
    let snapshot_id =
        (p.snapshot_id.end_offset >= 0 && p.snapshot_id.epoch >= 0).then_some(OffsetAndEpoch {
            offset: p.snapshot_id.end_offset,
            epoch: p.snapshot_id.epoch,
        });
    let records = match &p.records {
        Some(b) => decode_entries(b)?,
        None => Vec::new(),
    };
    if let Some(first) = records.first()
        && first.offset != asked.fetch_offset
    {
        return Err(WireError::Records(format!(
            "the first entry is at offset {}, the fetch asked from {}",
            first.offset, asked.fetch_offset
        )));
    }
    Ok(FetchResponse {
        error: raft_error("Fetch response", p.error_code)?,
        current_leader: LeaderAndEpoch {
            leader_id: node(p.current_leader.leader_id),
            leader_epoch: p.current_leader.leader_epoch,
        },
        high_watermark: p.high_watermark,
        diverging_epoch,
        snapshot_id,
        records,
        fetch_offset: asked.fetch_offset,
        last_fetched_epoch: asked.last_fetched_epoch,
    })
}

/// A FetchSnapshot request of `__cluster_metadata-0`.
pub fn fetch_snapshot_request(
    cluster_id: &str,
    f: &FetchSnapshot,
) -> messages::FetchSnapshotRequest {
    use messages::fetch_snapshot_request as fs;
    messages::FetchSnapshotRequest::default()
        .with_cluster_id(Some(StrBytes::from_string(cluster_id.to_string())))
        .with_replica_id(BrokerId(f.replica_id))
        .with_max_bytes(f.max_bytes)
        .with_topics(vec![
            fs::TopicSnapshot::default()
                .with_name(topic_name())
                .with_partitions(vec![
                    fs::PartitionSnapshot::default()
                        .with_partition(METADATA_PARTITION)
                        .with_current_leader_epoch(f.current_leader_epoch)
                        .with_snapshot_id(
                            fs::SnapshotId::default()
                                .with_end_offset(f.snapshot_id.offset)
                                .with_epoch(f.snapshot_id.epoch),
                        )
                        .with_position(f.position),
                ]),
        ])
}

/// The chunk a FetchSnapshot request of `__cluster_metadata-0` asks for.
pub fn fetch_snapshot_from_request(
    req: &messages::FetchSnapshotRequest,
) -> Result<FetchSnapshot, WireError> {
    let p = metadata_partition(
        &req.topics,
        |t| t.name.0.as_str() == METADATA_TOPIC,
        |t| &t.partitions,
        |p| p.partition,
        "FetchSnapshot request",
    )?;
    Ok(FetchSnapshot {
        replica_id: req.replica_id.0,
        current_leader_epoch: p.current_leader_epoch,
        snapshot_id: OffsetAndEpoch {
            offset: p.snapshot_id.end_offset,
            epoch: p.snapshot_id.epoch,
        },
        position: p.position,
        max_bytes: req.max_bytes,
    })
}

/// The FetchSnapshot response of the leader's answer.
pub fn fetch_snapshot_response(r: &FetchSnapshotResponse) -> messages::FetchSnapshotResponse {
    use messages::fetch_snapshot_response as fs;
    messages::FetchSnapshotResponse::default().with_topics(vec![
        fs::TopicSnapshot::default()
            .with_name(topic_name())
            .with_partitions(vec![
                fs::PartitionSnapshot::default()
                    .with_index(METADATA_PARTITION)
                    .with_error_code(error_code(r.error))
                    .with_snapshot_id(
                        fs::SnapshotId::default()
                            .with_end_offset(r.snapshot_id.offset)
                            .with_epoch(r.snapshot_id.epoch),
                    )
                    .with_current_leader(
                        fs::LeaderIdAndEpoch::default()
                            .with_leader_id(broker(r.current_leader.leader_id))
                            .with_leader_epoch(r.current_leader.leader_epoch),
                    )
                    .with_size(r.size)
                    .with_position(r.position)
                    .with_unaligned_records(r.bytes.clone()),
            ]),
    ])
}

/// The leader's answer in a FetchSnapshot response to `asked`.
pub fn fetch_snapshot_from_response(
    resp: &messages::FetchSnapshotResponse,
    asked: &FetchSnapshot,
) -> Result<FetchSnapshotResponse, WireError> {
    if resp.error_code != 0 {
        return Err(WireError::UnexpectedError {
            api: "FetchSnapshot response",
            code: resp.error_code,
        });
    }
    let p = metadata_partition(
        &resp.topics,
        |t| t.name.0.as_str() == METADATA_TOPIC,
        |t| &t.partitions,
        |p| p.index,
        "FetchSnapshot response",
    )?;
    let snapshot_id = OffsetAndEpoch {
        offset: p.snapshot_id.end_offset,
        epoch: p.snapshot_id.epoch,
    };
    let error = raft_error("FetchSnapshot response", p.error_code)?;
    if error.is_none() && (snapshot_id != asked.snapshot_id || p.position != asked.position) {
        return Err(WireError::Records(format!(
            "the answer is for snapshot {snapshot_id:?} at {}, the request asked for {:?} at {}",
            p.position, asked.snapshot_id, asked.position
        )));
    }
    Ok(FetchSnapshotResponse {
        error,
        current_leader: LeaderAndEpoch {
            leader_id: node(p.current_leader.leader_id),
            leader_epoch: p.current_leader.leader_epoch,
        },
        snapshot_id: asked.snapshot_id,
        size: p.size,
        position: asked.position,
        bytes: p.unaligned_records.clone(),
    })
}

/// Entries as RecordBatch v2 batches, one per entry.
pub fn encode_entries(entries: &[Entry]) -> Bytes {
    let mut out = BytesMut::new();
    for e in entries {
        out.extend_from_slice(&encode_entry(e));
    }
    out.freeze()
}

/// One entry as a batch: a data entry's payload is its record's value; a LeaderChange is a
/// control batch of one `LeaderChangeMessage` record.
fn encode_entry(e: &Entry) -> Vec<u8> {
    let (key, value, control) = match e.kind {
        EntryKind::Data => (None, e.payload.to_vec(), false),
        EntryKind::LeaderChange { leader_id } => {
            let mut key = BytesMut::new();
            key.put_i16(0);
            key.put_i16(LEADER_CHANGE);
            let msg = LeaderChangeMessage::default()
                .with_version(0)
                .with_leader_id(BrokerId(leader_id));
            let mut value = BytesMut::new();
            // Fields of version 0 only: encoding cannot fail.
            let _ = msg.encode(&mut value, 0);
            (Some(key.to_vec()), value.to_vec(), true)
        }
    };
    let mut b = batch::encode_batch(
        &[NewRecord {
            timestamp: 0,
            key,
            value: Some(value),
            headers: Vec::new(),
        }],
        ProducerFields::NONE,
    );
    b[batch::field::BASE_OFFSET..batch::field::BASE_OFFSET + 8]
        .copy_from_slice(&e.offset.to_be_bytes());
    b[batch::field::PARTITION_LEADER_EPOCH..batch::field::PARTITION_LEADER_EPOCH + 4]
        .copy_from_slice(&e.epoch.to_be_bytes());
    if control {
        let at = batch::field::ATTRIBUTES;
        let attributes = i16::from_be_bytes([b[at], b[at + 1]]) | ATTR_CONTROL;
        b[at..at + 2].copy_from_slice(&attributes.to_be_bytes());
        // The CRC covers the attributes onward.
        let crc = crc32c::crc32c(&b[batch::field::ATTRIBUTES..]);
        b[batch::field::CRC..batch::field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
    b
}

/// The entries of a run of batches, checked: whole, valid (CRC), one record each, offsets
/// dense and epochs never decreasing.
pub fn decode_entries(mut bytes: &[u8]) -> Result<Vec<Entry>, WireError> {
    let bad = |m: String| WireError::Records(m);
    let mut out: Vec<Entry> = Vec::new();
    while !bytes.is_empty() {
        let header = batch::check_integrity(bytes).map_err(|e| bad(e.to_string()))?;
        let len = header.total_len();
        let (one, rest) = bytes.split_at(len);
        bytes = rest;
        if let Some(prev) = out.last() {
            if header.base_offset != prev.offset + 1 {
                return Err(bad(format!(
                    "a batch at offset {} follows offset {}",
                    header.base_offset, prev.offset
                )));
            }
            if header.partition_leader_epoch < prev.epoch {
                return Err(bad(format!(
                    "epoch {} at offset {} after epoch {}",
                    header.partition_leader_epoch, header.base_offset, prev.epoch
                )));
            }
        }
        if header.records_count != 1 {
            return Err(bad(format!(
                "the batch at offset {} holds {} records, not one",
                header.base_offset, header.records_count
            )));
        }
        let body = batch::records_body(&header, one).map_err(|e| bad(e.to_string()))?;
        let record = batch::RecordIter::new(&header, &body)
            .next()
            .ok_or_else(|| {
                bad(format!(
                    "the batch at offset {} is empty",
                    header.base_offset
                ))
            })?
            .map_err(|e| bad(e.to_string()))?;
        let value = record.value.unwrap_or_default();
        let kind = if header.is_control() {
            let mut key = record.key.unwrap_or_default();
            if key.len() < 4 {
                return Err(bad("a control record without its type".into()));
            }
            key.advance(2);
            let kind = key.get_i16();
            if kind != LEADER_CHANGE {
                return Err(bad(format!(
                    "control record type {kind} in the quorum's log"
                )));
            }
            let mut v = Bytes::copy_from_slice(value);
            let msg = LeaderChangeMessage::decode(&mut v, 0).map_err(|e| bad(e.to_string()))?;
            EntryKind::LeaderChange {
                leader_id: msg.leader_id.0,
            }
        } else {
            EntryKind::Data
        };
        out.push(Entry {
            offset: header.base_offset,
            epoch: header.partition_leader_epoch,
            kind,
            payload: if header.is_control() {
                Bytes::new()
            } else {
                Bytes::copy_from_slice(value)
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::{Decodable, Encodable};

    fn round_trip<T: Encodable + Decodable>(v: &T, version: i16) -> T {
        let mut buf = BytesMut::new();
        v.encode(&mut buf, version).expect("encodes");
        T::decode(&mut buf.freeze(), version).expect("decodes")
    }

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                offset: 0,
                epoch: 1,
                kind: EntryKind::LeaderChange { leader_id: 2 },
                payload: Bytes::new(),
            },
            Entry {
                offset: 1,
                epoch: 1,
                kind: EntryKind::Data,
                payload: Bytes::from_static(b"topic t"),
            },
            Entry {
                offset: 2,
                epoch: 3,
                kind: EntryKind::Data,
                payload: Bytes::new(),
            },
        ]
    }

    #[test]
    fn votes_cross_the_wire_at_v2() {
        let v = Vote {
            candidate_epoch: 7,
            candidate_id: 3,
            last_offset_epoch: 6,
            last_offset: 120,
            pre_vote: true,
        };
        let req = round_trip(&vote_request("c", 1, &v), 2);
        assert_eq!(req.voter_id.0, 1);
        assert_eq!(vote_from_request(&req).unwrap(), v);
        let answer = VoteResponse {
            error: None,
            leader_id: None,
            leader_epoch: 6,
            vote_granted: true,
            pre_vote: true,
            candidate_epoch: 7,
        };
        let resp = round_trip(&vote_response(&answer), 2);
        assert_eq!(vote_from_response(&resp, &v).unwrap(), answer);
        let fenced = VoteResponse {
            error: Some(RaftError::FencedLeaderEpoch),
            leader_id: Some(2),
            vote_granted: false,
            ..answer
        };
        let resp = round_trip(&vote_response(&fenced), 2);
        assert_eq!(vote_from_response(&resp, &v).unwrap(), fenced);
    }

    #[test]
    fn epoch_announcements_cross_the_wire_at_v1() {
        let b = BeginQuorumEpoch {
            leader_id: 2,
            leader_epoch: 9,
        };
        let req = round_trip(&begin_request("c", 3, &b), 1);
        assert_eq!(begin_from_request(&req).unwrap(), b);
        let e = EndQuorumEpoch {
            leader_id: 2,
            leader_epoch: 9,
            preferred_successors: vec![3, 1],
        };
        let req = round_trip(&end_request("c", &e), 1);
        assert_eq!(end_from_request(&req).unwrap(), e);
        let answer = EpochResponse {
            error: Some(RaftError::UnknownLeaderEpoch),
            leader_id: Some(1),
            leader_epoch: 8,
        };
        let resp = round_trip(&begin_response(&answer), 1);
        assert_eq!(begin_from_response(&resp).unwrap(), answer);
        let resp = round_trip(&end_response(&answer), 1);
        assert_eq!(end_from_response(&resp).unwrap(), answer);
    }

    #[test]
    fn fetches_cross_the_wire_with_entries_and_diverging_epochs() {
        let f = Fetch {
            replica_id: 3,
            current_leader_epoch: 3,
            fetch_offset: 0,
            last_fetched_epoch: 0,
            high_watermark: 0,
        };
        let req = round_trip(&fetch_request("c", &f, 500), 18);
        assert_eq!(fetch_from_request(&req).unwrap(), f);
        let answer = FetchResponse {
            error: None,
            current_leader: LeaderAndEpoch {
                leader_id: Some(2),
                leader_epoch: 3,
            },
            high_watermark: 2,
            diverging_epoch: None,
            snapshot_id: None,
            records: entries(),
            fetch_offset: 0,
            last_fetched_epoch: 0,
        };
        let resp = round_trip(&fetch_response(&answer), 18);
        assert_eq!(fetch_from_response(&resp, &f).unwrap(), answer);
        let diverging = FetchResponse {
            diverging_epoch: Some(DivergingEpoch {
                epoch: 1,
                end_offset: 2,
            }),
            records: Vec::new(),
            ..answer.clone()
        };
        let resp = round_trip(&fetch_response(&diverging), 18);
        assert_eq!(fetch_from_response(&resp, &f).unwrap(), diverging);
        let snapshot = FetchResponse {
            snapshot_id: Some(OffsetAndEpoch {
                offset: 40,
                epoch: 2,
            }),
            records: Vec::new(),
            ..answer.clone()
        };
        let resp = round_trip(&fetch_response(&snapshot), 18);
        assert_eq!(fetch_from_response(&resp, &f).unwrap(), snapshot);
        // Entries that do not start where the fetch asked are refused.
        let asked_later = Fetch {
            fetch_offset: 1,
            ..f
        };
        let resp = round_trip(&fetch_response(&answer), 18);
        assert!(fetch_from_response(&resp, &asked_later).is_err());
    }

    #[test]
    fn entries_are_batches_the_log_accepts() {
        let bytes = encode_entries(&entries());
        let mut rest = &bytes[..];
        let mut bases = Vec::new();
        while !rest.is_empty() {
            let h = batch::check_integrity(rest).unwrap();
            bases.push((h.base_offset, h.partition_leader_epoch, h.is_control()));
            rest = &rest[h.total_len()..];
        }
        assert_eq!(bases, vec![(0, 1, true), (1, 1, false), (2, 3, false)]);
        assert_eq!(decode_entries(&bytes).unwrap(), entries());
    }

    #[test]
    fn bad_records_are_errors_not_panics() {
        let good = encode_entries(&entries()).to_vec();
        // Every truncation and every single flipped byte.
        for cut in 0..good.len() {
            let _ = decode_entries(&good[..cut]);
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x5a;
            if let Ok(found) = decode_entries(&bad) {
                // Only bytes outside the CRC (offsets, epochs, length) can change unnoticed,
                // and then the order checks hold.
                for w in found.windows(2) {
                    assert_eq!(w[1].offset, w[0].offset + 1);
                    assert!(w[1].epoch >= w[0].epoch);
                }
            }
        }
        // A gap between batches.
        let mut gap = entries();
        gap[2].offset = 5;
        assert!(decode_entries(&encode_entries(&gap)).is_err());
    }

    #[test]
    fn fetch_snapshot_round_trips_and_refuses_an_answer_to_another_chunk() {
        let f = FetchSnapshot {
            replica_id: 3,
            current_leader_epoch: 5,
            snapshot_id: OffsetAndEpoch {
                offset: 40,
                epoch: 4,
            },
            position: 8,
            max_bytes: 1024,
        };
        for version in 0..=1 {
            let req = round_trip(&fetch_snapshot_request("c", &f), version);
            assert_eq!(fetch_snapshot_from_request(&req).unwrap(), f);
            let answer = FetchSnapshotResponse {
                error: None,
                current_leader: LeaderAndEpoch {
                    leader_id: Some(1),
                    leader_epoch: 5,
                },
                snapshot_id: f.snapshot_id,
                size: 20,
                position: 8,
                bytes: Bytes::from_static(b"abcd"),
            };
            let resp = round_trip(&fetch_snapshot_response(&answer), version);
            assert_eq!(fetch_snapshot_from_response(&resp, &f).unwrap(), answer);
            let elsewhere = FetchSnapshot {
                position: 0,
                ..f.clone()
            };
            assert!(fetch_snapshot_from_response(&resp, &elsewhere).is_err());
            let refused = FetchSnapshotResponse {
                error: Some(RaftError::SnapshotNotFound),
                size: -1,
                bytes: Bytes::new(),
                ..answer
            };
            let resp = round_trip(&fetch_snapshot_response(&refused), version);
            assert_eq!(fetch_snapshot_from_response(&resp, &f).unwrap(), refused);
        }
    }
}
