//! The sender task: takes ready batches from the accumulator, sends them to their leaders
//! (pipelined, up to `max.in.flight.requests.per.connection` per broker), and settles each
//! batch from the answer: done, retried after `retry.backoff.ms`, or failed.

use super::accumulator::{ProducerBatch, ProducerIdentity};
use super::{BatchAck, Shared};
use crate::client::connection::{BrokerConnection, InFlight};
use crate::client::error::ClientError;
use crate::client::metadata::ClusterMetadata;
use crate::env::{BoxFuture, monotonic_now};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, ProduceRequest, ProduceResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A produce request's batches and how it ended.
struct Answered {
    /// The batches it carried.
    batches: Vec<ProducerBatch>,
    /// The broker's answer, or why there is none.
    result: Result<ProduceResponse, ClientError>,
}

/// The sender's state.
pub(super) struct Sender {
    /// Shared with the producer handles.
    shared: Arc<Shared>,
    /// Requests written and not yet answered.
    in_flight: FuturesUnordered<BoxFuture<'static, Answered>>,
    /// When metadata was last requested, so a cluster without leaders is not asked in a loop.
    last_refresh: Option<Instant>,
    /// An idempotent producer lost its place in a partition's sequence: before sending more,
    /// it bumps its epoch (sequences restart at 0).
    bump_epoch: bool,
}

impl Sender {
    pub(super) fn new(shared: Arc<Shared>) -> Sender {
        Sender {
            shared,
            in_flight: FuturesUnordered::new(),
            last_refresh: None,
            bump_epoch: false,
        }
    }

    /// Runs until the producer is closed and everything is settled.
    pub(super) async fn run(mut self) {
        loop {
            let next_check = self.round().await;
            if self.in_flight.is_empty() && self.shared.acc().is_closed_and_empty() {
                break;
            }
            let sleep_until =
                next_check.unwrap_or_else(|| monotonic_now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                Some(answered) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    self.settle(answered);
                }
                _ = self.shared.wake.notified() => {}
                _ = tokio::time::sleep_until(sleep_until) => {}
            }
        }
        tracing::debug!("producer sender stopped");
    }

    /// One pass: expire, refresh metadata if needed, send what is ready. Returns when to look
    /// again if nothing else happens first.
    async fn round(&mut self) -> Option<Instant> {
        let now = monotonic_now();
        let expired = self.shared.acc().expire(now);
        for b in expired {
            let e = ClientError::TimedOut {
                what: format!("delivery of {} record(s) to {}", b.record_count, b.tp),
                timeout_ms: self.shared.config.delivery_timeout_ms,
            };
            self.fail(b, e);
        }
        if let Err(e) = self.ensure_identity().await {
            tracing::debug!(error = %e, "InitProducerId failed; retrying");
            return Some(monotonic_now() + self.backoff());
        }
        let md = self.shared.cluster.metadata();
        let readiness = self.shared.acc().ready(now, &md);
        let mut next_check = readiness.next_check;
        if readiness.unknown_leaders || self.shared.cluster.needs_refresh() {
            let again = self.refresh_metadata(now).await;
            if readiness.unknown_leaders {
                next_check = Some(next_check.map_or(again, |n| n.min(again)));
            }
        }
        let md = self.shared.cluster.metadata();
        for broker in readiness.brokers {
            if let Err(e) = self.send_to(broker, &md).await {
                tracing::debug!(broker, error = %e, "cannot send to broker");
                self.shared.cluster.mark_stale();
                let retry = monotonic_now() + self.backoff();
                next_check = Some(next_check.map_or(retry, |n| n.min(retry)));
            }
        }
        next_check
    }

    /// An idempotent producer needs an id before its first batch is drained (a batch drained
    /// without one would carry no sequence numbers), and a new epoch after losing its place.
    async fn ensure_identity(&mut self) -> Result<(), ClientError> {
        if !self.shared.config.enable_idempotence {
            return Ok(());
        }
        let current = self.shared.acc().identity();
        if current.is_some() && !self.bump_epoch {
            return Ok(());
        }
        let conn = self.shared.cluster.any_broker().await?;
        let mut req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        // KIP-360: from v3 the producer asks for its own id with the epoch bumped.
        if let (Some(id), true) = (current, conn.version_for(ApiKey::InitProducerId)? >= 3) {
            req.producer_id = ProducerId(id.producer_id);
            req.producer_epoch = id.producer_epoch;
        }
        let resp = conn.send(&req).await?;
        crate::client::error::check_code(resp.error_code, || "InitProducerId".to_string(), None)?;
        let identity = ProducerIdentity {
            producer_id: resp.producer_id.0,
            producer_epoch: resp.producer_epoch,
        };
        tracing::debug!(?identity, bumped = self.bump_epoch, "producer identity");
        self.shared.acc().set_identity(Some(identity));
        self.bump_epoch = false;
        Ok(())
    }

    /// Refreshes metadata unless that was tried within `retry.backoff.ms`; returns when the
    /// next attempt may be made.
    async fn refresh_metadata(&mut self, now: Instant) -> Instant {
        let backoff = self.backoff();
        if let Some(last) = self.last_refresh.filter(|t| *t + backoff > now) {
            return last + backoff;
        }
        self.last_refresh = Some(now);
        if let Err(e) = self.shared.cluster.refresh(&[]).await {
            tracing::debug!(error = %e, "metadata refresh failed");
        }
        now + backoff
    }

    /// Sends requests to `broker` while it has in-flight capacity and batches are ready.
    async fn send_to(&mut self, broker: i32, md: &ClusterMetadata) -> Result<(), ClientError> {
        let conn = self.shared.cluster.broker(broker).await?;
        let version = conn.version_for(ApiKey::Produce)?;
        while conn.has_capacity() {
            let max = self.shared.config.max_request_size;
            let mut batches = self.shared.acc().drain(broker, md, max, monotonic_now());
            if batches.is_empty() {
                break;
            }
            for b in &mut batches {
                b.seal();
            }
            self.send_request(&conn, version, batches).await;
        }
        Ok(())
    }

    /// Writes one produce request; its answer is awaited with the others in flight.
    async fn send_request(
        &mut self,
        conn: &BrokerConnection,
        version: i16,
        mut batches: Vec<ProducerBatch>,
    ) {
        for b in &mut batches {
            b.attempts += 1;
            tracing::trace!(partition = %b.tp, epoch = b.producer.producer_epoch, seq = b.producer.base_sequence, attempt = b.attempts, "sending batch");
        }
        let req = produce_request(
            &batches,
            self.shared.config.acks as i16,
            self.shared.config.client.request_timeout_ms,
        );
        if self.shared.config.acks == super::Acks::None {
            let result = conn.send_oneway(&req, version).await;
            self.settle_unanswered(batches, result);
            return;
        }
        match conn.start_at(&req, version).await {
            Ok(in_flight) => self.in_flight.push(Box::pin(answer(in_flight, batches))),
            Err(e) => self.settle(Answered {
                batches,
                result: Err(e),
            }),
        }
    }

    /// Settles an `acks=0` send: written means done, with no offset (-1), as in Kafka.
    fn settle_unanswered(&mut self, batches: Vec<ProducerBatch>, written: Result<(), ClientError>) {
        match written {
            Ok(()) => {
                for b in batches {
                    self.finish(
                        b,
                        Ok(BatchAck {
                            base_offset: -1,
                            log_append_time_ms: -1,
                        }),
                    );
                }
            }
            Err(e) => self.settle(Answered {
                batches,
                result: Err(e),
            }),
        }
    }

    /// Settles every batch of an answered (or failed) request.
    fn settle(&mut self, answered: Answered) {
        let resp = match answered.result {
            Ok(r) => r,
            Err(e) => {
                for b in answered.batches {
                    self.retry_or_fail(b, e.clone());
                }
                return;
            }
        };
        let mut by_partition = BTreeMap::new();
        for t in resp.responses {
            for p in t.partition_responses {
                by_partition.insert((t.name.0.to_string(), p.index), p);
            }
        }
        for b in answered.batches {
            let key = (b.tp.topic.clone(), b.tp.partition);
            let outcome = match by_partition.remove(&key) {
                None => Err(ClientError::Protocol {
                    addr: format!("leader of {}", b.tp),
                    reason: format!("the produce response has no entry for {}", b.tp),
                }),
                Some(p) => match ResponseError::try_from_code(p.error_code) {
                    None => Ok(BatchAck {
                        base_offset: p.base_offset,
                        log_append_time_ms: p.log_append_time_ms,
                    }),
                    Some(code) => Err(ClientError::kafka(
                        code,
                        format!("producing to {}", b.tp),
                        p.error_message.as_deref(),
                    )),
                },
            };
            tracing::trace!(partition = %b.tp, epoch = b.producer.producer_epoch, seq = b.producer.base_sequence, ok = outcome.is_ok(), error = ?outcome.as_ref().err().map(|e| e.to_string()), "produce answer");
            match outcome {
                Ok(ack) => self.finish(b, Ok(ack)),
                Err(e) => self.settle_error(b, e),
            }
        }
    }

    /// Handles a partition's error, with the idempotent producer's sequence errors first:
    /// out of order while an earlier batch of the partition is unresolved means that one must
    /// land first (retry); otherwise the producer lost its place and bumps its epoch.
    fn settle_error(&mut self, batch: ProducerBatch, error: ClientError) {
        match error.code() {
            Some(ResponseError::OutOfOrderSequenceNumber)
                if self.shared.acc().has_earlier_unresolved(&batch) =>
            {
                let retry_at = monotonic_now() + self.backoff();
                self.shared.acc().reenqueue(batch, retry_at);
            }
            Some(
                ResponseError::OutOfOrderSequenceNumber
                | ResponseError::UnknownProducerId
                | ResponseError::InvalidProducerEpoch,
            ) => {
                let current = self.shared.acc().identity();
                if current.is_some_and(|id| id.producer_epoch == batch.producer.producer_epoch) {
                    self.bump_epoch = true;
                }
                self.fail(batch, error);
            }
            _ => self.retry_or_fail(batch, error),
        }
    }

    /// Retries a failed batch if the error allows it, `retries` are left and its delivery
    /// timeout has not passed; otherwise fails it with the error.
    fn retry_or_fail(&mut self, batch: ProducerBatch, error: ClientError) {
        if error.needs_metadata_refresh() {
            self.shared.cluster.mark_stale();
        }
        let now = monotonic_now();
        let deadline =
            batch.created + Duration::from_millis(self.shared.config.delivery_timeout_ms);
        let retry_at = now + self.backoff();
        let can_retry = error.is_retriable()
            && batch.attempts <= self.shared.config.retries
            && retry_at < deadline;
        if can_retry {
            tracing::debug!(partition = %batch.tp, attempt = batch.attempts, error = %error, "retrying batch");
            self.shared.acc().reenqueue(batch, retry_at);
        } else {
            self.fail(batch, error);
        }
    }

    fn fail(&mut self, batch: ProducerBatch, error: ClientError) {
        self.finish(batch, Err(error));
    }

    fn finish(&mut self, batch: ProducerBatch, outcome: Result<BatchAck, ClientError>) {
        let bytes = self.shared.acc().finish(batch, outcome);
        self.shared.release_memory(bytes);
    }

    fn backoff(&self) -> Duration {
        Duration::from_millis(self.shared.config.client.retry_backoff_ms)
    }
}

/// Waits for a request's answer.
async fn answer(in_flight: InFlight<ProduceResponse>, batches: Vec<ProducerBatch>) -> Answered {
    Answered {
        result: in_flight.wait().await,
        batches,
    }
}

/// A produce request carrying one batch per partition.
fn produce_request(batches: &[ProducerBatch], acks: i16, timeout_ms: u64) -> ProduceRequest {
    let mut topics: BTreeMap<&str, Vec<PartitionProduceData>> = BTreeMap::new();
    for b in batches {
        topics.entry(b.tp.topic.as_str()).or_default().push(
            PartitionProduceData::default()
                .with_index(b.tp.partition)
                .with_records(b.encoded.clone()),
        );
    }
    let topic_data = topics
        .into_iter()
        .map(|(name, parts)| {
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_partition_data(parts)
        })
        .collect();
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(i32::try_from(timeout_ms).unwrap_or(i32::MAX))
        .with_topic_data(topic_data)
}
