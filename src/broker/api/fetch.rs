//! Fetch: read whole batches from each partition, at most to the high watermark; wait up to
//! `max_wait_ms` for `min_bytes` (a long poll). runnel creates no fetch sessions (KIP-227
//! allows a broker to decline): it always answers with session id 0, so clients send full
//! requests.

use super::super::Broker;
use super::{Reply, ReplyTo, decode, respond};
use crate::log::{LogOffsets, PartitionLog, ReadError};
use crate::protocol::RequestFrame;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// One partition asked for.
struct Wanted {
    topic: usize,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    /// The leader's log, or why this broker cannot serve the partition.
    log: Result<Arc<PartitionLog>, ResponseError>,
    /// Asked by a follower: read up to the log end, not the high watermark.
    replica: bool,
    /// Where a follower's log parts from this one (epoch, end offset): answered instead of
    /// records, so it truncates.
    diverging: Option<(i32, i64)>,
    /// The synced end a follower's fetch carried, counted: echoed in the answer, so the
    /// follower knows this leader counts it (one that does not, an older runnel, would take
    /// its fetch offset for synced, and the follower must then sync before it fetches).
    synced_end_counted: Option<i64>,
}

/// Reads every wanted partition once: the response partitions, the bytes read, and whether
/// any partition has an error (which makes Kafka answer at once).
fn read_all(
    wanted: &[Wanted],
    max_bytes: usize,
    read_committed: bool,
) -> (Vec<PartitionData>, usize, bool) {
    let mut total = 0usize;
    let mut any_error = false;
    let mut out = Vec::with_capacity(wanted.len());
    for w in wanted {
        let mut pd = PartitionData::default()
            .with_partition_index(w.partition)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1)
            .with_preferred_read_replica(BrokerId(-1))
            .with_records(Some(Bytes::new()));
        if read_committed {
            pd.aborted_transactions = Some(Vec::new());
        }
        if let Some(synced) = w.synced_end_counted {
            pd.unknown_tagged_fields.insert(
                crate::replication::follower::SYNCED_END_TAG,
                crate::replication::follower::encode_synced_end(synced),
            );
        }
        let error = match &w.log {
            Err(e) => Some(*e),
            Ok(log) => {
                let hw = log.visible_end_offset();
                pd.high_watermark = hw;
                pd.last_stable_offset = hw;
                pd.log_start_offset = log.log_start_offset();
                let limit = w.max_bytes.min(max_bytes.saturating_sub(total));
                let min_one = total == 0;
                let upto = if w.replica { log.log_end_offset() } else { hw };
                if let Some((epoch, end_offset)) = w.diverging {
                    pd.diverging_epoch.epoch = epoch;
                    pd.diverging_epoch.end_offset = end_offset;
                    out.push(pd);
                    continue;
                }
                match log.read(w.offset, limit, upto, min_one) {
                    Ok(r) => {
                        total += r.records.len();
                        pd.records = Some(Bytes::from(r.records));
                        None
                    }
                    Err(ReadError::OffsetOutOfRange { .. }) => {
                        Some(ResponseError::OffsetOutOfRange)
                    }
                    Err(ReadError::Storage(why)) => {
                        tracing::warn!(partition = w.partition, error = %why, "fetch read failed");
                        Some(ResponseError::KafkaStorageError)
                    }
                }
            }
        };
        if let Some(e) = error {
            pd.error_code = e.code();
            any_error = true;
        }
        out.push(pd);
    }
    (out, total, any_error)
}

fn build(names: &[TopicName], parts: Vec<PartitionData>, wanted: &[Wanted]) -> FetchResponse {
    let mut topics: Vec<FetchableTopicResponse> = names
        .iter()
        .map(|n| FetchableTopicResponse::default().with_topic(n.clone()))
        .collect();
    for (pd, w) in parts.into_iter().zip(wanted) {
        topics[w.topic].partitions.push(pd);
    }
    FetchResponse::default()
        .with_session_id(0)
        .with_responses(topics)
}

/// A follower's fetch of a partition this broker leads: where its log diverges (Kafka's
/// `validateOffsetAndEpoch`), or else its fetch counted: its fetch offset as its log end, and
/// as its synced end unless the fetch says its synced end
/// ([`crate::replication::follower::SYNCED_END_TAG`]). Returns the divergence, else the
/// synced end counted if the fetch said it.
fn replica_fetch(
    broker: &Broker,
    topic: &str,
    p: &kafka_protocol::messages::fetch_request::FetchPartition,
    log: &Arc<PartitionLog>,
    replica_id: i32,
    replica_epoch: i64,
    now_ms: i64,
) -> Result<Result<Option<i64>, (i32, i64)>, ResponseError> {
    let tp = crate::log::TopicPartition::new(topic, p.partition);
    let led = broker
        .replicas
        .led(&tp)
        .filter(|l| l.is_current())
        .ok_or(ResponseError::NotLeaderOrFollower)?;
    let log_end = log.log_end_offset();
    let diverging = crate::replication::follower::diverging(
        p.last_fetched_epoch,
        p.fetch_offset,
        log.end_offset_for_epoch(p.last_fetched_epoch),
        log.latest_epoch(),
        log_end,
    );
    if let Some(d) = diverging {
        return Ok(Err(d));
    }
    let said = crate::replication::follower::decode_synced_end(&p.unknown_tagged_fields)
        .map_err(|why| {
            tracing::debug!(partition = %tp, replica_id, %why, "a replica fetch with a malformed synced end");
            ResponseError::InvalidRequest
        })?;
    // Out of range is answered by the read, with the log start the follower restarts from.
    if p.fetch_offset >= log.log_start_offset() && p.fetch_offset <= log_end {
        // The planted bug `synced-end-ignored`: the fetch offset counted as synced.
        let synced_end = said
            .filter(|_| !log.planted_bugs().synced_end_ignored)
            .unwrap_or(p.fetch_offset);
        led.follower_fetched(
            replica_id,
            replica_epoch,
            p.fetch_offset,
            synced_end,
            now_ms,
        )?;
        return Ok(Ok(said));
    }
    Ok(Ok(None))
}

pub fn handle(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    let r: FetchRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    if r.session_id != 0 || r.session_epoch > 0 {
        let resp =
            FetchResponse::default().with_error_code(ResponseError::FetchSessionIdNotFound.code());
        return respond(req, &resp);
    }
    // A follower names itself: in `replica_state` from v15, in `replica_id` before.
    let (replica_id, replica_epoch) = if req.api_version >= 15 {
        (r.replica_state.replica_id.0, r.replica_state.replica_epoch)
    } else {
        (r.replica_id.0, -1)
    };
    let now = broker.env.clock.now_ms();
    let mut names = Vec::with_capacity(r.topics.len());
    let mut wanted = Vec::new();
    for (ti, t) in r.topics.iter().enumerate() {
        names.push(t.topic.clone());
        for p in &t.partitions {
            let mut log = broker
                .leader_log(&t.topic.0, p.partition, p.current_leader_epoch)
                .map(|(log, _)| log);
            let mut diverging = None;
            let mut synced_end_counted = None;
            if replica_id >= 0
                && let Ok(l) = &log
            {
                match replica_fetch(broker, &t.topic.0, p, l, replica_id, replica_epoch, now) {
                    Ok(Ok(counted)) => synced_end_counted = counted,
                    Ok(Err(d)) => diverging = Some(d),
                    Err(e) => log = Err(e),
                }
            }
            wanted.push(Wanted {
                topic: ti,
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: usize::try_from(p.partition_max_bytes.max(0)).unwrap_or(0),
                log,
                replica: replica_id >= 0,
                diverging,
                synced_end_counted,
            });
        }
    }
    let max_bytes = if r.max_bytes <= 0 {
        usize::MAX
    } else {
        r.max_bytes as usize
    };
    let min_bytes = r.min_bytes.max(0) as usize;
    let read_committed = r.isolation_level == 1;
    let mut receivers: Vec<watch::Receiver<LogOffsets>> = wanted
        .iter()
        .filter_map(|w| w.log.as_ref().ok().map(|l| l.subscribe()))
        .collect();
    for rx in &mut receivers {
        rx.borrow_and_update();
    }
    let (parts, bytes, any_error) = read_all(&wanted, max_bytes, read_committed);
    if bytes >= min_bytes.max(1) || any_error || r.max_wait_ms <= 0 {
        return respond(req, &build(&names, parts, &wanted));
    }
    let reply_to = ReplyTo::of(req);
    let wait = Duration::from_millis(r.max_wait_ms as u64);
    let mut stop = broker.stop_serving.clone();
    Reply::Later(Box::pin(async move {
        let deadline = crate::env::monotonic_now() + wait;
        loop {
            let changed = async {
                if receivers.is_empty() {
                    std::future::pending::<()>().await;
                }
                let futs = receivers.iter_mut().map(|rx| Box::pin(rx.changed()));
                let (result, index, _) = futures_util::future::select_all(futs).await;
                // A closed channel (the partition was deleted) would wake us forever: drop it.
                result.is_err().then_some(index)
            };
            let timed_out = tokio::select! {
                biased;
                _ = stop.changed() => true,
                _ = tokio::time::sleep_until(deadline) => true,
                closed = changed => {
                    if let Some(i) = closed {
                        receivers.swap_remove(i);
                    }
                    false
                }
            };
            for rx in &mut receivers {
                rx.borrow_and_update();
            }
            let (parts, bytes, any_error) = read_all(&wanted, max_bytes, read_committed);
            if timed_out || bytes >= min_bytes || any_error {
                return reply_to.encode(&build(&names, parts, &wanted));
            }
        }
    }))
}
