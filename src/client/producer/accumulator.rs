//! The record accumulator: records waiting to be sent, as batches per partition.
//!
//! Each partition has a queue of batches; records go into the last one until it reaches
//! `batch.size`. A partition's first batch is ready to send when it is full, when it has waited
//! `linger.ms`, when a retry's backoff has passed, or when the producer is flushing or closing.
//! The sender drains at most one batch per partition per request (as Kafka brokers require),
//! and puts failed batches back in the order they were created, so a retry does not jump
//! ahead of its partition's older records.
//!
//! This is plain data with `now` passed in; the sender task drives it.

use super::{BatchAck, BatchOutcome};
use crate::client::TopicPartition;
use crate::client::error::ClientError;
use crate::client::metadata::ClusterMetadata;
use crate::record::batch::{NewRecord, ProducerFields};
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Bytes a record adds to a batch beyond its key, value and header bytes, at most: length,
/// attributes, timestamp delta, offset delta, key and value lengths, header count.
const RECORD_OVERHEAD_MAX: usize = 5 + 1 + 10 + 5 + 5 + 5 + 5;
/// Bytes each header adds beyond its key and value: two lengths.
const HEADER_OVERHEAD_MAX: usize = 10;
/// The fixed batch header.
pub const BATCH_HEADER_BYTES: usize = crate::record::batch::HEADER_LEN;

/// An upper bound on a record's encoded size.
pub fn record_size_max(r: &NewRecord) -> usize {
    let kv = r.key.as_ref().map_or(0, Vec::len) + r.value.as_ref().map_or(0, Vec::len);
    let headers: usize = r
        .headers
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + HEADER_OVERHEAD_MAX)
        .sum();
    RECORD_OVERHEAD_MAX + kv + headers
}

/// Records bound for one partition, sent (and retried) together.
pub struct ProducerBatch {
    /// Creation order among all batches, so retries go back in order.
    pub id: u64,
    /// Where the batch goes.
    pub tp: TopicPartition,
    /// The records, until the batch is encoded.
    pub records: Vec<NewRecord>,
    /// The wire bytes, fixed the first time the batch is drained so a retry sends exactly
    /// the same batch (and, with idempotence, the same sequence numbers).
    pub encoded: Option<Bytes>,
    /// The idempotence fields, fixed with the encoding (`ProducerFields::NONE` without).
    pub producer: ProducerFields,
    /// How many records.
    pub record_count: i32,
    /// Upper bound on the encoded size while records are added.
    pub size_bytes: usize,
    /// When the first record arrived (for `linger.ms` and `delivery.timeout.ms`).
    pub created: Instant,
    /// Sends so far.
    pub attempts: u32,
    /// Not to be sent again before this (`retry.backoff.ms`).
    pub retry_at: Option<Instant>,
    /// `buffer.memory` bytes to give back when the batch is done.
    pub memory_bytes: usize,
    /// Tells every record's [`super::Delivery`] how the batch ended.
    pub done: watch::Sender<Option<BatchOutcome>>,
}

impl ProducerBatch {
    /// Encodes the batch, once. Called outside the accumulator's lock: it copies and
    /// checksums every byte.
    pub fn seal(&mut self) {
        if self.encoded.is_none() {
            let bytes = crate::record::batch::encode_batch(&self.records, self.producer);
            self.encoded = Some(Bytes::from(bytes));
            self.records = Vec::new();
        }
    }

    /// The encoded size (or the estimate before encoding).
    pub fn wire_bytes(&self) -> usize {
        self.encoded.as_ref().map_or(self.size_bytes, Bytes::len)
    }
}

/// The producer id and epoch of an idempotent producer (from InitProducerId).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdentity {
    /// The producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub producer_epoch: i16,
}

/// What [`Accumulator::ready`] found.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Brokers leading a partition with a sendable batch.
    pub brokers: Vec<i32>,
    /// Topics with a batch waiting whose partition's leader is unknown.
    pub unknown_leaders: bool,
    /// When something next becomes ready (a linger or backoff ends, a batch expires).
    pub next_check: Option<Instant>,
}

/// The accumulator's settings.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `batch.size`.
    pub batch_bytes: usize,
    /// `linger.ms`.
    pub linger: Duration,
    /// `delivery.timeout.ms`.
    pub delivery_timeout: Duration,
    /// `max.in.flight.requests.per.connection` is 1: keep one batch per partition in flight,
    /// so a retry cannot reorder records.
    pub one_in_flight: bool,
}

/// Batches waiting to be sent, per partition.
pub struct Accumulator {
    /// The settings.
    limits: Limits,
    /// Queues by topic, then partition (looked up by `&str`, so appends allocate no key).
    queues: BTreeMap<String, BTreeMap<i32, VecDeque<ProducerBatch>>>,
    /// The next batch id.
    next_id: u64,
    /// Every batch not yet done, by id: what a flush waits for.
    incomplete: BTreeMap<u64, watch::Receiver<Option<BatchOutcome>>>,
    /// Flushes in progress; while any is, every batch is ready at once.
    flushing: usize,
    /// Set by close: send everything now, accept nothing more.
    closed: bool,
    /// Partitions with a batch in flight, when only one may be.
    in_flight: std::collections::BTreeSet<TopicPartition>,
    /// Where the next drain starts, so no partition is always last.
    drain_from: usize,
    /// Set once InitProducerId has given the producer an identity; batches then carry
    /// sequence numbers. `None`: not idempotent.
    identity: Option<ProducerIdentity>,
    /// The next sequence number per partition (idempotence).
    sequences: BTreeMap<TopicPartition, i32>,
    /// Batches given sequence numbers and not yet done: (partition, producer id, epoch, base
    /// sequence). A batch refused as out of order is only retried while an earlier one is
    /// here; a partition with one here from an older identity drains no new batch.
    unresolved: std::collections::BTreeSet<(TopicPartition, i64, i16, i32)>,
}

impl Accumulator {
    /// An empty accumulator.
    pub fn new(limits: Limits) -> Accumulator {
        Accumulator {
            limits,
            queues: BTreeMap::new(),
            next_id: 0,
            incomplete: BTreeMap::new(),
            flushing: 0,
            closed: false,
            in_flight: Default::default(),
            drain_from: 0,
            identity: None,
            sequences: BTreeMap::new(),
            unresolved: Default::default(),
        }
    }

    /// Adds a record of `size` bytes (as [`record_size_max`] bounds it) to the partition's
    /// last batch, or to a new one if it does not fit. Returns the batch's outcome channel,
    /// the record's index in the batch, and whether the sender should look again (a batch
    /// was created or filled). `now` is read only when a batch is created: the clock costs
    /// more than the rest of an append.
    pub fn append(
        &mut self,
        topic: &str,
        partition: i32,
        record: NewRecord,
        size: usize,
        now: impl FnOnce() -> Instant,
    ) -> Result<(watch::Receiver<Option<BatchOutcome>>, i32, bool), ClientError> {
        if self.closed {
            return Err(ClientError::Closed);
        }
        let limit = self.limits.batch_bytes;
        let queue = self.queue(topic, partition);
        if let Some(last) = queue.back_mut() {
            let fits = last.size_bytes + size <= limit;
            if last.encoded.is_none() && last.records.len() < i32::MAX as usize && fits {
                let index = last.record_count;
                last.records.push(record);
                last.record_count += 1;
                last.size_bytes += size;
                last.memory_bytes += size;
                let full = last.size_bytes + RECORD_OVERHEAD_MAX >= limit;
                return Ok((last.done.subscribe(), index, full));
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let (tx, rx) = watch::channel(None);
        let batch = ProducerBatch {
            id,
            tp: TopicPartition::new(topic, partition),
            records: vec![record],
            encoded: None,
            producer: ProducerFields::NONE,
            record_count: 1,
            size_bytes: BATCH_HEADER_BYTES + size,
            created: now(),
            attempts: 0,
            retry_at: None,
            memory_bytes: size,
            done: tx,
        };
        self.queue(topic, partition).push_back(batch);
        self.incomplete.insert(id, rx.clone());
        Ok((rx, 0, true))
    }

    fn queue(&mut self, topic: &str, partition: i32) -> &mut VecDeque<ProducerBatch> {
        if !self.queues.contains_key(topic) {
            self.queues.insert(topic.to_string(), BTreeMap::new());
        }
        let parts = self.queues.get_mut(topic).expect("inserted above");
        parts.entry(partition).or_default()
    }

    /// Which brokers have a batch to send now, and when to look again.
    pub fn ready(&self, now: Instant, md: &ClusterMetadata) -> Readiness {
        let mut out = Readiness::default();
        let wake = |t: Instant, out: &mut Readiness| {
            out.next_check = Some(out.next_check.map_or(t, |n| n.min(t)));
        };
        for (topic, parts) in &self.queues {
            for (p, queue) in parts {
                let Some(first) = queue.front() else { continue };
                wake(first.created + self.limits.delivery_timeout, &mut out);
                if self.limits.one_in_flight && self.in_flight.contains(&first.tp) {
                    continue;
                }
                let tp = TopicPartition::new(topic.as_str(), *p);
                let Some(leader) = md.leader_id(&tp) else {
                    out.unknown_leaders = true;
                    continue;
                };
                if let Some(t) = first.retry_at.filter(|t| *t > now) {
                    wake(t, &mut out);
                    continue;
                }
                if self.waits_for_older_identity(first) {
                    // The older batches' answers wake the sender.
                    continue;
                }
                let linger_end = first.created + self.limits.linger;
                let sendable = queue.len() > 1
                    || first.encoded.is_some()
                    || first.size_bytes + RECORD_OVERHEAD_MAX >= self.limits.batch_bytes
                    || linger_end <= now
                    || self.flushing > 0
                    || self.closed;
                if sendable {
                    if !out.brokers.contains(&leader) {
                        out.brokers.push(leader);
                    }
                } else {
                    wake(linger_end, &mut out);
                }
            }
        }
        out
    }

    /// Takes up to `max_bytes` of batches (always at least one) led by `broker`, one per
    /// partition, whose backoff has passed. Sequence numbers are assigned here, in drain
    /// order, as Kafka's producer does; the caller encodes the batches.
    pub fn drain(
        &mut self,
        broker: i32,
        md: &ClusterMetadata,
        max_bytes: usize,
        now: Instant,
    ) -> Vec<ProducerBatch> {
        let keys: Vec<(String, i32)> = self
            .queues
            .iter()
            .flat_map(|(t, ps)| ps.keys().map(move |p| (t.clone(), *p)))
            .collect();
        if keys.is_empty() {
            return Vec::new();
        }
        let start = self.drain_from % keys.len();
        self.drain_from = start + 1;
        let mut out: Vec<ProducerBatch> = Vec::new();
        let mut total = 0;
        for i in 0..keys.len() {
            let (topic, p) = &keys[(start + i) % keys.len()];
            let tp = TopicPartition::new(topic.as_str(), *p);
            if md.leader_id(&tp) != Some(broker)
                || (self.limits.one_in_flight && self.in_flight.contains(&tp))
            {
                continue;
            }
            let waits = match self.queues.get(topic).and_then(|ps| ps.get(p)) {
                Some(queue) => match queue.front() {
                    Some(first) => {
                        first.retry_at.is_some_and(|t| t > now)
                            || self.waits_for_older_identity(first)
                    }
                    None => true,
                },
                None => true,
            };
            if waits {
                continue;
            }
            let queue = self.queue(topic, *p);
            let first = queue.front().expect("checked above");
            if !out.is_empty() && total + first.wire_bytes() > max_bytes {
                continue;
            }
            let mut batch = queue.pop_front().expect("front exists");
            total += batch.wire_bytes();
            self.assign_sequence(&mut batch);
            if self.limits.one_in_flight {
                self.in_flight.insert(tp);
            }
            out.push(batch);
        }
        out
    }

    /// Gives a batch its idempotence fields the first time it is drained.
    fn assign_sequence(&mut self, batch: &mut ProducerBatch) {
        let Some(id) = self.identity else { return };
        if batch.encoded.is_some() {
            return;
        }
        let next = self.sequences.entry(batch.tp.clone()).or_insert(0);
        batch.producer = ProducerFields {
            producer_id: id.producer_id,
            producer_epoch: id.producer_epoch,
            base_sequence: *next,
        };
        // Sequence numbers wrap at i32::MAX, as Kafka's do.
        *next = next.wrapping_add(batch.record_count) & i32::MAX;
        self.unresolved.insert((
            batch.tp.clone(),
            id.producer_id,
            id.producer_epoch,
            batch.producer.base_sequence,
        ));
    }

    /// The producer's identity, once InitProducerId has given it one.
    pub fn identity(&self) -> Option<ProducerIdentity> {
        self.identity
    }

    /// Whether a batch of the same partition and epoch with a lower sequence is not yet done:
    /// then a refusal of `batch` as out of order only means that one has to land first.
    pub fn has_earlier_unresolved(&self, batch: &ProducerBatch) -> bool {
        let p = batch.producer;
        if p.producer_id < 0 {
            return false;
        }
        let from = (batch.tp.clone(), p.producer_id, p.producer_epoch, 0);
        let to = (
            batch.tp.clone(),
            p.producer_id,
            p.producer_epoch,
            p.base_sequence,
        );
        self.unresolved.range(from..to).next().is_some()
    }

    /// Whether `first`, the front of its partition's queue, must wait: it has no sequence
    /// yet, and batches stamped by an older identity (before an epoch bump or a new producer
    /// id) are not yet done. Sent now, it would start the new identity at sequence 0 and could
    /// be written before them (Kafka's `shouldStopDrainBatchesForPartition`); once they are
    /// done its sequences start over under the new identity.
    fn waits_for_older_identity(&self, first: &ProducerBatch) -> bool {
        let Some(id) = self.identity else {
            return false;
        };
        if first.encoded.is_some() {
            return false;
        }
        let from = (first.tp.clone(), i64::MIN, i16::MIN, i32::MIN);
        let to = (first.tp.clone(), i64::MAX, i16::MAX, i32::MAX);
        self.unresolved
            .range(from..=to)
            .any(|(_, pid, epoch, _)| (*pid, *epoch) != (id.producer_id, id.producer_epoch))
    }

    /// Sets the idempotent producer's identity (after InitProducerId); sequence numbers
    /// start over.
    pub fn set_identity(&mut self, identity: Option<ProducerIdentity>) {
        self.identity = identity;
        self.sequences.clear();
    }

    /// Puts a batch that failed back in its partition's queue, in creation order, to be sent
    /// again after `retry_at`.
    pub fn reenqueue(&mut self, mut batch: ProducerBatch, retry_at: Instant) {
        batch.retry_at = Some(retry_at);
        self.in_flight.remove(&batch.tp);
        let topic = batch.tp.topic.clone();
        let queue = self.queue(&topic, batch.tp.partition);
        let at = queue
            .iter()
            .position(|b| b.id > batch.id)
            .unwrap_or(queue.len());
        queue.insert(at, batch);
    }

    /// Ends a batch: tells its records and forgets it. Returns the `buffer.memory` bytes it
    /// held.
    pub fn finish(
        &mut self,
        batch: ProducerBatch,
        outcome: Result<BatchAck, ClientError>,
    ) -> usize {
        self.in_flight.remove(&batch.tp);
        self.incomplete.remove(&batch.id);
        if batch.producer.producer_id >= 0 {
            self.unresolved.remove(&(
                batch.tp.clone(),
                batch.producer.producer_id,
                batch.producer.producer_epoch,
                batch.producer.base_sequence,
            ));
        }
        batch.done.send_replace(Some(outcome));
        batch.memory_bytes
    }

    /// Removes the queued batches whose `delivery.timeout.ms` has passed (batches in flight
    /// wait for their answer first).
    pub fn expire(&mut self, now: Instant) -> Vec<ProducerBatch> {
        let timeout = self.limits.delivery_timeout;
        let mut out = Vec::new();
        for parts in self.queues.values_mut() {
            for queue in parts.values_mut() {
                while queue.front().is_some_and(|b| b.created + timeout <= now) {
                    out.extend(queue.pop_front());
                }
            }
        }
        out
    }

    /// Starts a flush: every batch becomes ready. Returns what to wait for: every batch not
    /// yet done.
    pub fn begin_flush(&mut self) -> Vec<watch::Receiver<Option<BatchOutcome>>> {
        self.flushing += 1;
        self.incomplete.values().cloned().collect()
    }

    /// Ends a flush begun with [`Self::begin_flush`].
    pub fn end_flush(&mut self) {
        self.flushing = self.flushing.saturating_sub(1);
    }

    /// Accepts no more records; everything queued is sent at once.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Closed and nothing left to send.
    pub fn is_closed_and_empty(&self) -> bool {
        self.closed
            && self
                .queues
                .values()
                .all(|ps| ps.values().all(VecDeque::is_empty))
    }
}

#[cfg(test)]
mod tests;
