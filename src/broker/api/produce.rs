//! Produce: validate and append each partition's record set, then answer per `acks`:
//! 0 (no answer), 1 (once written), all (once synced, unless `write.caching` is on). The flush
//! policy (`flush.messages`) can make any append wait for a sync.

use super::super::Broker;
use super::super::replicas::LedPartition;
use super::super::topics::ensure_topic;
use super::{Reply, ReplyTo, decode, respond, str_bytes};
use crate::env::probe::{BatchId, ProbeEvent};
use crate::log::producer_state::ProducerError;
use crate::log::{AppendError, PartitionLog};
use crate::protocol::RequestFrame;
use crate::record::batch::BatchError;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use std::sync::Arc;
use std::time::Duration;

/// The Kafka error for an invalid batch.
pub fn batch_error_code(e: &BatchError) -> ResponseError {
    match e {
        BatchError::TooLarge { .. } => ResponseError::MessageTooLarge,
        BatchError::Truncated { .. }
        | BatchError::LengthTooSmall(_)
        | BatchError::BadMagic(_)
        | BatchError::CrcMismatch { .. }
        | BatchError::TrailingBytes(_)
        | BatchError::UnknownCompression(_)
        | BatchError::Decompression { .. }
        | BatchError::DecompressedTooLarge => ResponseError::CorruptMessage,
        BatchError::BadTimestamp(_)
        | BatchError::MaxTimestampMismatch { .. }
        | BatchError::RecordTimestamps(_) => ResponseError::InvalidTimestamp,
        BatchError::Empty
        | BatchError::CountMismatch { .. }
        | BatchError::BadRecord { .. }
        | BatchError::ControlBatch
        | BatchError::Transactional
        | BatchError::BadOffset(_) => ResponseError::InvalidRecord,
    }
}

/// What an answer waits for.
enum Wait {
    /// This log synced up to this offset.
    Sync(Arc<PartitionLog>, i64),
    /// The high watermark of a replicated partition past this offset (acks=all), after the
    /// leader's own sync if the flush policy asks for one (with write caching the high
    /// watermark does not imply it); with the batches appended, for the probe.
    HighWatermark(Arc<LedPartition>, i64, bool, Vec<BatchId>),
}

/// One partition's outcome so far.
struct Outcome {
    topic: usize,
    response: PartitionProduceResponse,
    /// Set when the answer must wait.
    wait: Option<Wait>,
}

fn failed(index: i32, code: ResponseError, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(str_bytes))
}

/// Appends one partition's records.
async fn append_one(
    broker: &Broker,
    topic: &str,
    index: i32,
    records: Option<bytes::Bytes>,
    acks: i16,
) -> (PartitionProduceResponse, Option<Wait>) {
    if let Err(e) = ensure_topic(broker, topic, true).await {
        return (failed(index, e.code(), Some(e.to_string())), None);
    }
    let (log, epoch) = match broker.leader_log(topic, index, -1) {
        Ok(l) => l,
        Err(e) => return (failed(index, e, None), None),
    };
    if topic == crate::group::OFFSETS_TOPIC {
        // As Kafka: only the group coordinator appends to its log.
        return (
            failed(
                index,
                ResponseError::InvalidTopicException,
                Some(format!("cannot append to internal topic {topic}")),
            ),
            None,
        );
    }
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return (
            failed(
                index,
                ResponseError::CorruptMessage,
                Some("no records".into()),
            ),
            None,
        );
    };
    // A partition with followers: replication decides when acks=all is answered, and
    // refuses it up front while the ISR is below min.insync.replicas.
    let led = broker
        .replicas
        .led(&crate::log::TopicPartition::new(topic, index))
        .filter(|l| l.is_current() && Arc::ptr_eq(&l.log, &log));
    if acks == -1 && led.as_ref().is_some_and(|l| !l.enough_replicas()) {
        return (
            failed(
                index,
                ResponseError::NotEnoughReplicas,
                Some("fewer in-sync replicas than min.insync.replicas".into()),
            ),
            None,
        );
    }
    // A partition without followers has an ISR of one: Kafka refuses acks=all there too when
    // min.insync.replicas asks for more.
    if acks == -1 && led.is_none() {
        let min_isr = broker.min_insync_replicas(topic);
        if min_isr > 1 && !broker.has_followers(topic, index) {
            return (
                failed(
                    index,
                    ResponseError::NotEnoughReplicas,
                    Some(format!(
                        "the partition's only replica is in sync, and min.insync.replicas is \
                         {min_isr}"
                    )),
                ),
                None,
            );
        }
    }
    let mut buf = records.to_vec();
    match log.append(&mut buf, log.sole_leader_epoch(epoch)) {
        Ok(info) => {
            crate::broker::sync_soon(&log);
            let resp = PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(info.first_offset)
                .with_log_append_time_ms(info.log_append_time)
                .with_log_start_offset(info.log_start_offset);
            // The planted bug answers acks=all at once; the sync still comes (the log syncs in
            // the background when write caching is off), but after the answer.
            let early = log.planted_bugs().early_ack;
            let upto = info.last_offset + 1;
            // The planted `ack-before-isr` answers once the leader's own part is done.
            let alone = log.planted_bugs().ack_before_isr;
            let wait = match led {
                Some(l) if acks == -1 && !early && !alone => {
                    let sync_first = log.must_sync(&info, false);
                    Some(Wait::HighWatermark(l, upto, sync_first, info.batches))
                }
                _ => (log.must_sync(&info, acks == -1) && !early).then(|| Wait::Sync(log, upto)),
            };
            (resp, wait)
        }
        Err(AppendError::InvalidBatch(e)) => {
            let code = batch_error_code(&e);
            // As Kafka's validator: `record_errors` names the records that failed a check of
            // their own; a batch refused as a whole (corrupt, too large) carries only the
            // partition's error, which clients would otherwise report twice.
            let record_error = |index: usize, message: String| {
                BatchIndexAndErrorMessage::default()
                    .with_batch_index(i32::try_from(index).unwrap_or(i32::MAX))
                    .with_batch_index_error_message(Some(str_bytes(message)))
            };
            let (message, record_errors) = match &e {
                BatchError::BadRecord { index, .. } => {
                    (e.to_string(), vec![record_error(*index, e.to_string())])
                }
                BatchError::RecordTimestamps(errors) => (
                    "One or more records have been rejected due to invalid timestamp".to_owned(),
                    errors
                        .iter()
                        .map(|r| record_error(r.index, r.message.clone()))
                        .collect(),
                ),
                _ => (e.to_string(), Vec::new()),
            };
            let mut resp = failed(index, code, Some(message));
            resp.record_errors = record_errors;
            (resp, None)
        }
        Err(AppendError::Producer(e)) => {
            let code = match e {
                ProducerError::InvalidEpoch { .. } => ResponseError::InvalidProducerEpoch,
                ProducerError::OutOfOrder { .. } => ResponseError::OutOfOrderSequenceNumber,
                ProducerError::UnknownProducer { .. } => ResponseError::UnknownProducerId,
                ProducerError::InvalidFields { .. } => ResponseError::InvalidRecord,
            };
            (failed(index, code, Some(e.to_string())), None)
        }
        Err(e @ AppendError::StaleLeaderEpoch { .. }) => (
            failed(index, ResponseError::FencedLeaderEpoch, Some(e.to_string())),
            None,
        ),
        Err(AppendError::Storage(why)) => {
            tracing::warn!(topic, partition = index, error = %why, "append failed");
            (
                failed(index, ResponseError::KafkaStorageError, Some(why)),
                None,
            )
        }
    }
}

pub async fn handle(broker: &Arc<Broker>, req: &RequestFrame) -> Reply {
    let r: ProduceRequest = match decode(req) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let acks = r.acks;
    let mut topics: Vec<TopicProduceResponse> = Vec::with_capacity(r.topic_data.len());
    let mut outcomes: Vec<Outcome> = Vec::new();
    for (ti, t) in r.topic_data.into_iter().enumerate() {
        let name = t.name.0.to_string();
        topics.push(TopicProduceResponse::default().with_name(t.name.clone()));
        for p in t.partition_data {
            let (response, wait) = if !matches!(acks, -1..=1) {
                (
                    failed(p.index, ResponseError::InvalidRequiredAcks, None),
                    None,
                )
            } else if r.transactional_id.is_some() {
                (
                    failed(
                        p.index,
                        ResponseError::InvalidRequest,
                        Some("transactions are not supported".into()),
                    ),
                    None,
                )
            } else {
                append_one(broker, &name, p.index, p.records, acks).await
            };
            outcomes.push(Outcome {
                topic: ti,
                response,
                wait,
            });
        }
    }
    if acks == 0 {
        // No response; an error is signalled the only way Kafka can: by closing.
        return match outcomes.iter().find(|o| o.response.error_code != 0) {
            Some(o) => Reply::Close(format!(
                "acks=0 produce failed with error {}",
                o.response.error_code
            )),
            None => Reply::None,
        };
    }
    let build = |topics: Vec<TopicProduceResponse>, outcomes: Vec<Outcome>| {
        let mut topics = topics;
        for o in outcomes {
            topics[o.topic].partition_responses.push(o.response);
        }
        ProduceResponse::default().with_responses(topics)
    };
    if outcomes.iter().all(|o| o.wait.is_none()) {
        return respond(req, &build(topics, outcomes));
    }
    let reply_to = ReplyTo::of(req);
    let timeout = Duration::from_millis(r.timeout_ms.max(0) as u64);
    let probe = broker.env.probe.clone();
    Reply::Later(Box::pin(async move {
        let mut outcomes = outcomes;
        let probe = &probe;
        let waits = outcomes.iter_mut().filter_map(|o| {
            let wait = o.wait.take()?;
            Some(async move {
                let done = match wait {
                    Wait::Sync(log, upto) => {
                        tokio::time::timeout(timeout, async {
                            log.sync_to(upto).await.map_err(|e| e.to_string())
                        })
                        .await
                    }
                    Wait::HighWatermark(led, upto, sync_first, batches) => {
                        let both = async {
                            if sync_first {
                                led.log.sync_to(upto).await.map_err(|e| {
                                    (ResponseError::KafkaStorageError, e.to_string())
                                })?;
                            }
                            led.wait_for_high_watermark(upto).await.map_err(|c| {
                                (
                                    c,
                                    "leadership moved before the in-sync replicas had the records"
                                        .to_string(),
                                )
                            })?;
                            // Kafka's answer when the ISR shrank below min.insync.replicas
                            // after the append: the records are written, the client cannot
                            // count on the durability it asked for (it retries; an idempotent
                            // producer's retry is deduplicated).
                            if led.enough_replicas_after_append() {
                                Ok(())
                            } else {
                                Err((
                                    ResponseError::NotEnoughReplicasAfterAppend,
                                    "the records were written, but the in-sync replicas are \
                                     now fewer than min.insync.replicas"
                                        .to_string(),
                                ))
                            }
                        };
                        match tokio::time::timeout(timeout, both).await {
                            Ok(Err((code, why))) => {
                                o.response = failed(o.response.index, code, Some(why));
                                return;
                            }
                            Ok(Ok(())) => {
                                if !batches.is_empty() {
                                    probe.event(ProbeEvent::AcksAllAnswered {
                                        dir: led.log.dir(),
                                        batches: &batches,
                                    });
                                }
                                Ok(Ok(()))
                            }
                            Err(e) => Err(e),
                        }
                    }
                };
                match done {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        o.response =
                            failed(o.response.index, ResponseError::KafkaStorageError, Some(e));
                    }
                    Err(_) => {
                        o.response = failed(
                            o.response.index,
                            ResponseError::RequestTimedOut,
                            Some("not replicated and synced within the request timeout".into()),
                        );
                    }
                }
            })
        });
        futures_util::future::join_all(waits).await;
        reply_to.encode(&build(topics, outcomes))
    }))
}
