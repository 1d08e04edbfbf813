//! The producer: appends records to topics, batching them per partition and sending batches
//! to each partition's leader with as many requests in flight as allowed.
//!
//! [`Producer::submit`] returns as soon as the record is buffered (waiting only for metadata or
//! for `buffer.memory` to have room), with a [`Delivery`] that resolves when the broker has
//! acknowledged it per `acks`; [`Producer::send`] does both. A background sender task drives
//! the [`accumulator`]: batches are sent when full (`batch.size`), after `linger.ms`, or on
//! flush; failed batches are retried after `retry.backoff.ms` while `retries` and
//! `delivery.timeout.ms` allow, and are put back in creation order.
//!
//! Idempotence (on by default, as in Kafka 3.0+): before its first batch the sender asks any
//! broker for a producer id (InitProducerId); a batch's producer id, epoch and base sequence
//! are fixed when it is first drained and encoded, and retries resend the same bytes, so the
//! broker writes each batch once. A batch refused as out of order is retried while an earlier
//! batch of its partition is unresolved; otherwise (and on UNKNOWN_PRODUCER_ID or a fenced
//! epoch) it fails and the producer bumps its epoch, restarting every sequence at 0.

pub mod accumulator;
mod sender;

use super::cluster::Cluster;
use super::error::ClientError;
use super::{ClientConfig, RecordHeader};
use crate::env::Env;
use crate::record::batch::NewRecord;
use accumulator::{Accumulator, Limits, record_size_max};
use kafka_protocol::error::ResponseError;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;

use super::partitioner::Partitioner;
pub use accumulator::ProducerIdentity;

/// `acks`: how much durability the broker confirms before answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i16)]
pub enum Acks {
    /// `acks=0`: no answer at all; a record counts as sent once written to the socket.
    None = 0,
    /// `acks=1`: the leader has appended it.
    Leader = 1,
    /// `acks=all` (-1): every in-sync replica has it (in runnel, synced to disk unless
    /// `write.caching` is on).
    All = -1,
}

impl FromStr for Acks {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Acks, ClientError> {
        match s {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => Err(ClientError::Config(format!(
                "acks must be 0, 1, all or -1, not '{other}'"
            ))),
        }
    }
}

/// The producer's settings, named after the Java client's.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Settings shared by every client.
    pub client: ClientConfig,
    /// `acks`. Default all (as in Kafka 3.0+).
    pub acks: Acks,
    /// `batch.size`: a partition's batch is sent once it holds this many bytes. Default 16384.
    pub batch_size: usize,
    /// `linger.ms`: how long a batch that is not full waits for more records. Default 5.
    pub linger_ms: u64,
    /// `buffer.memory`: bytes of records waiting to be acknowledged; `submit` waits for room.
    /// Default 32 MiB.
    pub buffer_memory: usize,
    /// `max.request.size`: the largest produce request, and so the largest record. Default
    /// 1 MiB.
    pub max_request_size: usize,
    /// `retries`: how many times a failed batch is sent again. Default `u32::MAX` (bounded
    /// in practice by `delivery.timeout.ms`).
    pub retries: u32,
    /// `delivery.timeout.ms`: how long a record may take from `submit` to its final outcome.
    /// Default 120000.
    pub delivery_timeout_ms: u64,
    /// `max.block.ms`: how long `submit` may wait for metadata or buffer room. Default 60000.
    pub max_block_ms: u64,
    /// `enable.idempotence`. Default true; needs acks=all, at most 5 requests in flight and
    /// retries.
    pub enable_idempotence: bool,
    /// Whether a Metadata request for a missing topic may create it
    /// (`auto.create.topics.enable` on the broker decides). Default true, as in the Java
    /// producer.
    pub allow_auto_create_topics: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            client: ClientConfig::default(),
            acks: Acks::All,
            batch_size: 16_384,
            linger_ms: 5,
            buffer_memory: 32 << 20,
            max_request_size: 1 << 20,
            retries: u32::MAX,
            delivery_timeout_ms: 120_000,
            max_block_ms: 60_000,
            enable_idempotence: true,
            allow_auto_create_topics: true,
        }
    }
}

impl ProducerConfig {
    fn validate(&self) -> Result<(), ClientError> {
        self.client.validate()?;
        let bad = |m: &str| Err(ClientError::Config(m.to_string()));
        if self.enable_idempotence {
            if self.acks != Acks::All {
                return bad("enable.idempotence=true needs acks=all (or turn idempotence off)");
            }
            if self.client.max_in_flight > 5 {
                return bad(
                    "enable.idempotence=true needs max.in.flight.requests.per.connection <= 5",
                );
            }
            if self.retries == 0 {
                return bad("enable.idempotence=true needs retries > 0");
            }
        }
        if self.batch_size == 0 || self.max_request_size == 0 || self.buffer_memory == 0 {
            return bad("batch.size, max.request.size and buffer.memory must be positive");
        }
        if self.buffer_memory > u32::MAX as usize {
            return bad("buffer.memory must be below 4 GiB");
        }
        let floor = self.linger_ms + self.client.request_timeout_ms;
        if self.delivery_timeout_ms < floor {
            return bad("delivery.timeout.ms must be at least linger.ms + request.timeout.ms");
        }
        Ok(())
    }
}

/// A record to send.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: String,
    /// The partition; `None` lets the partitioner choose.
    pub partition: Option<i32>,
    /// The key (`None` is null); keyed records are partitioned by its murmur2 hash.
    pub key: Option<Vec<u8>>,
    /// The value (`None` is null, a tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<RecordHeader>,
    /// The record's timestamp in ms since the epoch; `None` takes the clock's.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value and nothing else.
    pub fn new(topic: impl Into<String>, value: impl Into<Vec<u8>>) -> ProducerRecord {
        ProducerRecord {
            topic: topic.into(),
            value: Some(value.into()),
            ..ProducerRecord::default()
        }
    }

    /// With a key.
    pub fn with_key(mut self, key: impl Into<Vec<u8>>) -> ProducerRecord {
        self.key = Some(key.into());
        self
    }

    /// To a given partition.
    pub fn with_partition(mut self, partition: i32) -> ProducerRecord {
        self.partition = Some(partition);
        self
    }
}

/// Where an acknowledged record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Its partition.
    pub partition: i32,
    /// Its offset; -1 with `acks=0`, where the broker does not say.
    pub offset: i64,
    /// Its timestamp: the producer's, or the broker's append time if the topic uses that.
    pub timestamp: i64,
}

/// How the broker acknowledged a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchAck {
    /// The offset of the batch's first record (-1 with `acks=0`).
    pub base_offset: i64,
    /// The broker's append time if the topic uses LogAppendTime, else -1.
    pub log_append_time_ms: i64,
}

/// A batch's final outcome, shared by its records.
pub type BatchOutcome = Result<BatchAck, ClientError>;

/// The pending outcome of one submitted record.
#[derive(Debug)]
#[must_use = "a record's failure is only seen by waiting for its delivery"]
pub struct Delivery {
    /// Its batch's outcome, once known.
    rx: watch::Receiver<Option<BatchOutcome>>,
    /// Its index in the batch.
    index: i32,
    /// Its partition.
    partition: i32,
    /// The timestamp it was given.
    timestamp: i64,
}

impl Delivery {
    /// The partition the record was assigned to.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Waits for the outcome.
    pub async fn wait(mut self) -> Result<RecordMetadata, ClientError> {
        let outcome = match self.rx.wait_for(Option::is_some).await {
            Ok(r) => r.clone(),
            // The sender task is gone without settling the batch.
            Err(_) => None,
        };
        self.metadata(outcome)
    }

    /// The outcome if it is known already.
    pub fn try_result(&self) -> Option<Result<RecordMetadata, ClientError>> {
        let outcome = self.rx.borrow().clone();
        outcome.map(|o| self.metadata(Some(o)))
    }

    fn metadata(&self, outcome: Option<BatchOutcome>) -> Result<RecordMetadata, ClientError> {
        let ack = outcome.ok_or(ClientError::Closed)??;
        Ok(RecordMetadata {
            partition: self.partition,
            offset: if ack.base_offset < 0 {
                -1
            } else {
                ack.base_offset.saturating_add(i64::from(self.index))
            },
            timestamp: if ack.log_append_time_ms >= 0 {
                ack.log_append_time_ms
            } else {
                self.timestamp
            },
        })
    }
}

/// What the producer handles and the sender task share.
struct Shared {
    /// The settings.
    config: ProducerConfig,
    /// Connections and metadata.
    cluster: Arc<Cluster>,
    /// The seam (for record timestamps).
    env: Env,
    /// Batches waiting to be sent.
    acc: Mutex<Accumulator>,
    /// The partitioner's sticky state.
    partitioner: Mutex<Partitioner>,
    /// Wakes the sender when a batch is created or filled, or on flush and close.
    wake: Notify,
    /// `buffer.memory`, one permit per byte of records not yet acknowledged.
    memory: Semaphore,
}

impl Shared {
    fn acc(&self) -> MutexGuard<'_, Accumulator> {
        // The accumulator's invariants hold between statements; a panic elsewhere cannot
        // leave it half-updated.
        self.acc.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release_memory(&self, bytes: usize) {
        self.memory.add_permits(bytes);
    }
}

/// The last handle's drop closes the producer: the sender sends what is buffered, then stops.
struct Handle {
    /// Shared state.
    shared: Arc<Shared>,
    /// The sender task, awaited by `close`.
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.acc().close();
        self.shared.wake.notify_one();
    }
}

/// A producer. Cheap to clone; clones share the buffer and the connections.
#[derive(Clone)]
pub struct Producer {
    /// The shared handle.
    inner: Arc<Handle>,
}

impl Producer {
    /// A producer with its own connections; starts its sender task (so it must be called
    /// inside a tokio runtime, or a turmoil host).
    pub fn new(env: Env, config: ProducerConfig) -> Result<Producer, ClientError> {
        config.validate()?;
        let cluster = Cluster::new(
            env.clone(),
            config.client.clone(),
            config.allow_auto_create_topics,
        )?;
        let limits = Limits {
            batch_bytes: config.batch_size,
            linger: Duration::from_millis(config.linger_ms),
            delivery_timeout: Duration::from_millis(config.delivery_timeout_ms),
            one_in_flight: config.client.max_in_flight == 1,
        };
        let shared = Arc::new(Shared {
            partitioner: Mutex::new(Partitioner::new(config.batch_size, env.rng.fork())),
            memory: Semaphore::new(config.buffer_memory),
            config,
            cluster,
            env,
            acc: Mutex::new(Accumulator::new(limits)),
            wake: Notify::new(),
        });
        let task = tokio::spawn(sender::Sender::new(shared.clone()).run());
        Ok(Producer {
            inner: Arc::new(Handle {
                shared,
                task: Mutex::new(Some(task)),
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Sends one record and waits for its acknowledgement: where it landed.
    pub async fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        headers: Vec<RecordHeader>,
    ) -> Result<RecordMetadata, ClientError> {
        let record = ProducerRecord {
            topic: topic.to_string(),
            partition,
            key,
            value,
            headers,
            timestamp: None,
        };
        self.submit(record).await?.wait().await
    }

    /// Buffers a record for sending and returns its pending delivery. Waits only for the
    /// topic's metadata and for room in `buffer.memory` (each at most `max.block.ms`).
    pub async fn submit(&self, record: ProducerRecord) -> Result<Delivery, ClientError> {
        let sh = self.shared();
        let num_partitions = self.partition_count(&record.topic).await?;
        let timestamp = record.timestamp.unwrap_or_else(|| sh.env.clock.now_ms());
        let new = NewRecord {
            timestamp,
            key: record.key,
            value: record.value,
            headers: record
                .headers
                .into_iter()
                .map(|h| (h.key.into_bytes(), h.value.map(|v| v.to_vec())))
                .collect(),
        };
        let size = record_size_max(&new);
        self.check_size(size)?;
        let partition = {
            let mut p = sh.partitioner.lock().unwrap_or_else(|e| e.into_inner());
            p.partition(
                &record.topic,
                record.partition,
                new.key.as_deref(),
                size,
                num_partitions,
            )?
        };
        self.reserve_memory(size).await?;
        let appended = sh.acc().append(
            &record.topic,
            partition,
            new,
            size,
            crate::env::monotonic_now,
        );
        let (rx, index, wake) = match appended {
            Ok(a) => a,
            Err(e) => {
                sh.release_memory(size);
                return Err(e);
            }
        };
        if wake {
            sh.wake.notify_one();
        }
        Ok(Delivery {
            rx,
            index,
            partition,
            timestamp,
        })
    }

    /// The number of partitions of `topic`, from the metadata (fetched if need be).
    pub async fn partition_count(&self, topic: &str) -> Result<i32, ClientError> {
        let cluster = &self.shared().cluster;
        if let Some(n) = cluster.metadata().partition_count(topic) {
            return Ok(n);
        }
        let max_block = self.shared().config.max_block_ms;
        let found =
            tokio::time::timeout(Duration::from_millis(max_block), cluster.topic(topic)).await;
        let t = found.map_err(|_| ClientError::TimedOut {
            what: format!("waiting for metadata of topic '{topic}'"),
            timeout_ms: max_block,
        })??;
        i32::try_from(t.partitions.len())
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                ClientError::kafka(
                    ResponseError::LeaderNotAvailable,
                    format!("topic '{topic}' has no partitions yet"),
                    None,
                )
            })
    }

    fn check_size(&self, size: usize) -> Result<(), ClientError> {
        let c = &self.shared().config;
        let whole = size + accumulator::BATCH_HEADER_BYTES;
        if whole > c.max_request_size || size > c.buffer_memory {
            return Err(ClientError::kafka(
                ResponseError::MessageTooLarge,
                format!(
                    "the record is {whole} bytes when serialized, more than max.request.size ({}) or buffer.memory ({})",
                    c.max_request_size, c.buffer_memory
                ),
                None,
            ));
        }
        Ok(())
    }

    /// Takes `size` bytes of `buffer.memory`, waiting up to `max.block.ms` for them.
    async fn reserve_memory(&self, size: usize) -> Result<(), ClientError> {
        let sh = self.shared();
        let n = u32::try_from(size)
            .map_err(|_| ClientError::InvalidArgument("record too large".into()))?;
        // The common case, room available, without arming a timer.
        if let Ok(permit) = sh.memory.try_acquire_many(n) {
            permit.forget();
            return Ok(());
        }
        let max_block = Duration::from_millis(sh.config.max_block_ms);
        match tokio::time::timeout(max_block, sh.memory.acquire_many(n)).await {
            // The permits come back when the batch is done.
            Ok(Ok(permit)) => {
                permit.forget();
                Ok(())
            }
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::TimedOut {
                what: "waiting for room in buffer.memory".into(),
                timeout_ms: sh.config.max_block_ms,
            }),
        }
    }

    /// Sends everything buffered now (ignoring `linger.ms`) and waits until every record
    /// submitted before the call has its outcome. Outcomes are reported through each
    /// record's [`Delivery`].
    pub async fn flush(&self) {
        let sh = self.shared();
        let waits = sh.acc().begin_flush();
        let _end = FlushGuard(sh);
        sh.wake.notify_one();
        for mut rx in waits {
            let _ = rx.wait_for(Option::is_some).await;
        }
    }

    /// Flushes, then stops the sender. Records submitted afterwards (through clones) fail.
    pub async fn close(self) {
        self.flush().await;
        self.shared().acc().close();
        self.shared().wake.notify_one();
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

/// Ends a flush even if the flushing future is dropped part way.
struct FlushGuard<'a>(&'a Shared);

impl Drop for FlushGuard<'_> {
    fn drop(&mut self) {
        self.0.acc().end_flush();
    }
}

#[cfg(test)]
mod tests;
