//! The workload: a setup client that creates the seed's topics, producers that send numbered,
//! self-checking values and record every invocation and outcome, and consumers that read
//! every partition while the faults go on and then read it all again to its end (the final
//! read). Every client reaches the brokers through the simulated seam, with its own named RNG
//! stream.

use crate::config::{SimConfig, named_seed};
use crate::env::{DiskFaults, sim_env};
use crate::history::{Event, Promise, Tp};
use crate::journal::JournalRef;
use kafka_protocol::error::ResponseError;
use runnel::client::admin::{Admin, NewTopic, OffsetSpec};
use runnel::client::consumer::{Consumer, ConsumerConfig, OffsetReset};
use runnel::client::producer::{Acks, Producer, ProducerConfig, ProducerRecord};
use runnel::client::{ClientConfig, ClientError, TopicPartition};
use runnel::client::{Generation, GroupConfig, GroupConsumer, RebalanceListener};
use runnel::env::{Env, SharedRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A client's environment: the simulated network and clock, randomness from the stream named
/// `client/<name>`.
fn client_env(seed: u64, name: &str) -> Env {
    sim_env(
        DiskFaults::default(),
        SharedRng::seeded(named_seed(seed, &format!("client/{name}"))),
        SharedRng::seeded(named_seed(seed, &format!("client/{name}/disk"))),
        None,
    )
}

/// A record value that carries its own checksum, so corruption is visible to consumers.
pub fn value_for(producer: &str, n: u64) -> String {
    let body = format!("{producer}-{n}");
    format!("{body}-{:08x}", crc32fast::hash(body.as_bytes()))
}

/// Whether a value's checksum matches.
pub fn value_ok(v: &str) -> bool {
    match v.rsplit_once('-') {
        Some((body, sum)) => format!("{:08x}", crc32fast::hash(body.as_bytes())) == sum,
        None => false,
    }
}

/// A client's settings: every broker to bootstrap from, short timeouts, quick retries.
pub fn client_config(cfg: &SimConfig, name: &str) -> ClientConfig {
    let mut c = ClientConfig::new(cfg.bootstrap());
    c.client_id = name.to_string();
    c.request_timeout_ms = 3_000;
    c.connect_timeout_ms = 1_000;
    c.retry_backoff_ms = 50;
    c.reconnect_backoff_ms = 50;
    c
}

/// The broker's effective value of a topic setting: the topic's own, else the broker's.
pub fn effective(
    cfg: &SimConfig,
    topic: &str,
    topic_key: &str,
    broker_key: &str,
) -> Option<String> {
    cfg.topics
        .iter()
        .find(|t| t.name == topic)
        .and_then(|t| {
            t.configs
                .iter()
                .find(|(k, _)| k == topic_key)
                .map(|(_, v)| v.clone())
        })
        .or_else(|| {
            cfg.broker_overrides.iter().find_map(|o| {
                o.strip_prefix(&format!("{broker_key}="))
                    .map(str::to_string)
            })
        })
}

/// The setup client: creates the topics, retrying until the broker takes them.
pub fn add_setup(sim: &mut turmoil::Sim<'_>, cfg: &SimConfig, journal: JournalRef) {
    let mut topics = cfg.topics.clone();
    topics.push(cfg.elect_topic.clone());
    let env = client_env(cfg.seed, "setup");
    let config = client_config(cfg, "setup");
    sim.client("setup", async move {
        let admin = Admin::new(env, config)?;
        for t in &topics {
            let mut nt = NewTopic::new(t.name.clone());
            nt.partitions = t.partitions;
            nt.replication_factor = i16::try_from(t.replication_factor).unwrap_or(1);
            nt.configs = t.configs.iter().cloned().collect();
            loop {
                match admin.create_topic(&nt).await {
                    Ok(_) => break,
                    Err(e) if e.to_string().contains("TOPIC_ALREADY_EXISTS") => break,
                    Err(e) => {
                        tracing::debug!(topic = %t.name, error = %e, "setup: creating a topic failed; retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await
                    }
                }
            }
        }
        journal.lock().topics_ready = true;
        Ok(())
    });
}

async fn wait_for_topics(journal: &JournalRef) {
    while !journal.lock().topics_ready {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long the log ends must hold still before a final read (or a group) is done: with
/// followers, a new leader's high watermark may stall until a stuck follower leaves the ISR
/// (`replica.lag.time.max.ms`), then move on.
fn still_for(cfg: &SimConfig) -> Duration {
    if cfg.topics.iter().any(|t| t.replication_factor > 1) {
        Duration::from_millis(REPLICA_LAG_TIME_MAX_MS + 1_000)
    } else {
        Duration::from_millis(100)
    }
}

/// The simulator's `replica.lag.time.max.ms` (Kafka's is 30 s): a stuck follower leaves the
/// ISR within the fault phase.
pub const REPLICA_LAG_TIME_MAX_MS: u64 = 4_000;

/// A producer client: sends numbered values to random partitions, up to `max_in_flight`
/// outstanding, recording every invocation and outcome.
pub fn add_producer(
    sim: &mut turmoil::Sim<'_>,
    cfg: &SimConfig,
    i: usize,
    journal: JournalRef,
    stop: Arc<AtomicBool>,
) {
    let spec = cfg.producers[i].clone();
    let topics: Vec<(String, i32, Promise)> = cfg
        .topics
        .iter()
        .map(|t| {
            let caching = effective(cfg, &t.name, "write.caching", "write.caching").as_deref()
                == Some("true");
            let flush_each = effective(
                cfg,
                &t.name,
                "flush.messages",
                "log.flush.interval.messages",
            )
            .as_deref()
                == Some("1");
            let committed = spec.acks == -1 || t.replication_factor <= 1;
            let durable = committed && (flush_each || (spec.acks == -1 && !caching));
            (t.name.clone(), t.partitions, Promise { durable, committed })
        })
        .collect();
    // What to send where: the stream `workload/<name>`.
    let rng = SharedRng::seeded(named_seed(cfg.seed, &format!("workload/{}", spec.name)));
    let env = client_env(cfg.seed, &spec.name);
    let config = client_config(cfg, &spec.name);
    sim.client(spec.name.clone(), async move {
        wait_for_topics(&journal).await;
        let mut pc = ProducerConfig {
            client: config,
            ..ProducerConfig::default()
        };
        pc.acks = match spec.acks {
            -1 => Acks::All,
            0 => Acks::None,
            _ => Acks::Leader,
        };
        pc.enable_idempotence = spec.idempotent;
        pc.linger_ms = spec.linger_ms;
        pc.client.max_in_flight = spec.max_in_flight;
        pc.batch_size = spec.batch_records * 120;
        pc.delivery_timeout_ms = 20_000;
        let producer = Producer::new(env, pc)?;
        let mut outstanding = futures_util::stream::FuturesUnordered::new();
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let (topic, partitions, promise) =
                &topics[rng.gen_range(0..topics.len() as u64) as usize];
            let partition = rng.gen_range(0..*partitions as u64) as i32;
            let value = value_for(&spec.name, n);
            n += 1;
            let tp = Tp {
                topic: topic.clone(),
                partition,
            };
            journal.record(Event::SendInvoke {
                process: spec.name.clone(),
                tp: tp.clone(),
                value: value.clone(),
            });
            let rec = ProducerRecord::new(topic.clone(), value.clone().into_bytes())
                .with_partition(partition);
            match producer.submit(rec).await {
                Ok(delivery) => {
                    let promise = *promise;
                    outstanding.push(async move { (tp, value, promise, delivery.wait().await) });
                }
                Err(e) => record_outcome(&journal, &spec.name, tp, value, *promise, Err(e)),
            }
            use futures_util::StreamExt;
            while outstanding.len() >= spec.max_in_flight * spec.batch_records.max(1) {
                if let Some((tp, value, promise, result)) = outstanding.next().await {
                    record_outcome(&journal, &spec.name, tp, value, promise, result);
                }
            }
            // Outcomes are recorded as they arrive, also while pacing: the state checker
            // judges each acknowledgement at the moment the client has it.
            let pace = tokio::time::sleep(spec.pace);
            tokio::pin!(pace);
            loop {
                tokio::select! {
                    biased;
                    Some((tp, value, promise, result)) = outstanding.next(), if !outstanding.is_empty() => {
                        record_outcome(&journal, &spec.name, tp, value, promise, result);
                    }
                    _ = &mut pace => break,
                }
            }
        }
        use futures_util::StreamExt;
        while let Some((tp, value, promise, result)) = outstanding.next().await {
            record_outcome(&journal, &spec.name, tp, value, promise, result);
        }
        producer.close().await;
        journal.lock().producers_done += 1;
        Ok(())
    });
}

fn record_outcome(
    journal: &JournalRef,
    process: &str,
    tp: Tp,
    value: String,
    promise: Promise,
    result: Result<runnel::client::producer::RecordMetadata, ClientError>,
) {
    let process = process.to_string();
    let event = match result {
        Ok(md) => Event::SendOk {
            process,
            tp,
            value,
            offset: md.offset,
            promise,
        },
        Err(e) if definitely_not_written(&e) => Event::SendFail {
            process,
            tp,
            value,
            error: e.to_string(),
        },
        Err(e) => Event::SendInfo {
            process,
            tp,
            value,
            error: e.to_string(),
        },
    };
    journal.record(event);
}

/// Whether a failed send certainly left nothing in the log. Only a batch the broker refused
/// as invalid qualifies: for any other error an earlier attempt of the same send, retried by
/// the client, may have been written.
fn definitely_not_written(e: &ClientError) -> bool {
    matches!(
        e.code(),
        Some(
            ResponseError::MessageTooLarge
                | ResponseError::CorruptMessage
                | ResponseError::InvalidRecord
                | ResponseError::InvalidTimestamp
                | ResponseError::RecordListTooLarge
        )
    )
}

/// A consumer client: reads every partition of its topics from the start while the workload
/// runs, then, once every producer is done, reads each partition to its end.
pub fn add_consumer(
    sim: &mut turmoil::Sim<'_>,
    cfg: &SimConfig,
    i: usize,
    journal: JournalRef,
    stop: Arc<AtomicBool>,
) {
    let spec = cfg.consumers[i].clone();
    let topics: Vec<(String, i32)> = cfg
        .topics
        .iter()
        .map(|t| (t.name.clone(), t.partitions))
        .collect();
    // Topics with write caching: a power loss may take back what consumers read there.
    let cached: std::collections::BTreeSet<String> = cfg
        .topics
        .iter()
        .filter(|t| {
            effective(cfg, &t.name, "write.caching", "write.caching").as_deref() == Some("true")
        })
        .map(|t| t.name.clone())
        .collect();
    let still = still_for(cfg);
    let producers = cfg.producers.len();
    let env = client_env(cfg.seed, &spec.name);
    let config = client_config(cfg, &spec.name);
    sim.client(spec.name.clone(), async move {
        wait_for_topics(&journal).await;
        let admin = Admin::new(env.clone(), config.clone())?;
        let mut cc = ConsumerConfig {
            client: config,
            ..ConsumerConfig::default()
        };
        cc.auto_offset_reset = OffsetReset::None;
        cc.max_partition_fetch_bytes = spec.partition_max_bytes;
        cc.fetch_max_wait_ms = 100;
        let mut consumer = Consumer::new(env, cc)?;
        let tps: Vec<TopicPartition> = topics
            .iter()
            .flat_map(|(t, n)| (0..*n).map(move |p| TopicPartition::new(t.clone(), p)))
            .collect();
        consumer.assign(tps.clone());
        let mut next: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        reposition(&admin, &mut consumer, &tps, &mut next, &journal, &spec.name).await;
        let mut final_ends: Option<BTreeMap<TopicPartition, i64>> = None;
        loop {
            let done_producing =
                stop.load(Ordering::SeqCst) && journal.lock().producers_done == producers;
            if done_producing && final_ends.is_none() {
                let (Ok(starts), Ok(ends)) = (
                    admin
                        .list_offsets(&with_spec(&tps, OffsetSpec::Earliest))
                        .await,
                    admin
                        .list_offsets(&with_spec(&tps, OffsetSpec::Latest))
                        .await,
                ) else {
                    continue;
                };
                // The final read starts over from the log start: after a power loss took back
                // cached writes, new ones reuse their offsets, below where this consumer was.
                journal.record(Event::FinalRead {
                    process: spec.name.clone(),
                });
                for tp in &tps {
                    let start = starts[tp].offset;
                    if consumer.seek(tp, start).is_ok() {
                        next.insert(tp.clone(), start);
                        let t = tp_of(tp);
                        journal.record(Event::Seek {
                            process: spec.name.clone(),
                            tp: t,
                            offset: start,
                        });
                    }
                }
                final_ends = Some(ends.into_iter().map(|(tp, l)| (tp, l.offset)).collect());
            }
            if let Some(ends) = &final_ends {
                if tps
                    .iter()
                    .all(|tp| next.get(tp).copied().unwrap_or(0) >= ends[tp])
                {
                    // The end may still grow: an acks=1 write is answered before it is visible
                    // (seed 2002704 ended its final read just before the last two became so).
                    // Done once the end holds still across a pause.
                    tokio::time::sleep(still).await;
                    let Ok(again) = admin
                        .list_offsets(&with_spec(&tps, OffsetSpec::Latest))
                        .await
                    else {
                        continue;
                    };
                    let again: BTreeMap<TopicPartition, i64> =
                        again.into_iter().map(|(tp, l)| (tp, l.offset)).collect();
                    // Not done while an end is below what any client has read (a new leader's
                    // high watermark may lag the old one's until its followers fetch or a stuck
                    // one leaves the ISR), unless a power loss may have taken that back (write
                    // caching).
                    let behind = {
                        let j = journal.lock();
                        let power_lost =
                            j.history.entries.iter().any(|e| {
                                matches!(e.event, crate::history::Event::PowerLoss { .. })
                            });
                        let mut read_to: BTreeMap<Tp, i64> = BTreeMap::new();
                        for e in &j.history.entries {
                            if let crate::history::Event::Poll { tp, records, .. } = &e.event
                                && let Some((last, _)) = records.last()
                            {
                                let end = read_to.entry(tp.clone()).or_insert(0);
                                *end = (*end).max(last + 1);
                            }
                        }
                        again.iter().any(|(tp, end)| {
                            !(power_lost && cached.contains(&tp.topic))
                                && read_to.get(&tp_of(tp)).is_some_and(|seen| end < seen)
                        })
                    };
                    if again == *ends && !behind {
                        break;
                    }
                    final_ends = Some(again);
                    continue;
                }
            }
            match consumer.poll(Duration::from_millis(200)).await {
                Ok(records) => record_polls(&journal, &spec.name, records, &mut next),
                Err(e) => {
                    tracing::debug!(error = %e, "poll failed; repositioning");
                    reposition(&admin, &mut consumer, &tps, &mut next, &journal, &spec.name).await;
                }
            }
        }
        // Records below the log start were deleted by retention, not lost.
        if let Ok(starts) = admin
            .list_offsets(&with_spec(&tps, OffsetSpec::Earliest))
            .await
        {
            let mut s = journal.lock();
            for (tp, l) in starts {
                let key = tp_of(&tp);
                let e = s.history.log_start.entry(key).or_insert(l.offset);
                *e = (*e).max(l.offset);
            }
            s.consumers_done += 1;
            s.history.final_readers.insert(spec.name.clone());
        }
        Ok(())
    });
}

fn with_spec(tps: &[TopicPartition], spec: OffsetSpec) -> Vec<(TopicPartition, OffsetSpec)> {
    tps.iter().map(|tp| (tp.clone(), spec)).collect()
}

/// Puts every partition whose position is unknown or outside the log at the log start, and
/// records the seeks.
async fn reposition(
    admin: &Admin,
    consumer: &mut Consumer,
    tps: &[TopicPartition],
    next: &mut BTreeMap<TopicPartition, i64>,
    journal: &JournalRef,
    name: &str,
) {
    loop {
        let (Ok(starts), Ok(ends)) = (
            admin
                .list_offsets(&with_spec(tps, OffsetSpec::Earliest))
                .await,
            admin
                .list_offsets(&with_spec(tps, OffsetSpec::Latest))
                .await,
        ) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        for tp in tps {
            let (start, end) = (starts[tp].offset, ends[tp].offset);
            let pos = next.get(tp).copied();
            if pos.is_none_or(|p| p < start || p > end) {
                let to = start;
                if consumer.seek(tp, to).is_ok() {
                    next.insert(tp.clone(), to);
                    let t = tp_of(tp);
                    journal.record(Event::Seek {
                        process: name.into(),
                        tp: t,
                        offset: to,
                    });
                }
            }
        }
        return;
    }
}

fn record_polls(
    journal: &JournalRef,
    name: &str,
    records: Vec<runnel::client::consumer::ConsumerRecord>,
    next: &mut BTreeMap<TopicPartition, i64>,
) {
    let mut by_tp: BTreeMap<Tp, Vec<(i64, String)>> = BTreeMap::new();
    for r in records {
        let tp = Tp {
            topic: r.topic.to_string(),
            partition: r.partition,
        };
        let value = r
            .value
            .as_ref()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        if !value_ok(&value) {
            journal.record(Event::Corrupt {
                process: name.into(),
                tp: tp.clone(),
                offset: r.offset,
                detail: format!("value {value:?}"),
            });
        }
        next.insert(
            TopicPartition::new(r.topic.to_string(), r.partition),
            r.offset + 1,
        );
        by_tp.entry(tp).or_default().push((r.offset, value));
    }
    for (tp, records) in by_tp {
        journal.record(Event::Poll {
            process: name.into(),
            tp,
            records,
        });
    }
}

/// Tells the history what a group member receives: each generation's assignment, and where
/// each newly assigned partition starts (a seek).
struct MemberListener {
    journal: JournalRef,
    process: String,
    group: String,
    /// The partitions the member holds.
    owned: BTreeSet<TopicPartition>,
    /// Where each partition's next record should be: newly assigned ones at their start
    /// (`None` if not known yet, and then the first record is the seek).
    expected: Expected,
}

/// Where each partition's next record should be, shared by a member and its listener.
type Expected = Arc<Mutex<BTreeMap<TopicPartition, Option<i64>>>>;

fn tp_of(tp: &TopicPartition) -> Tp {
    Tp {
        topic: tp.topic.to_string(),
        partition: tp.partition,
    }
}

impl RebalanceListener for MemberListener {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            self.owned.remove(tp);
        }
    }

    fn on_generation(&mut self, g: &Generation, assignment: &[(TopicPartition, Option<i64>)]) {
        self.journal.record(Event::Assigned {
            process: self.process.clone(),
            group: self.group.clone(),
            generation: g.generation_id,
            member: g.member_id.clone(),
            partitions: assignment.iter().map(|(tp, _)| tp_of(tp)).collect(),
        });
        let mut expected = self.expected.lock().unwrap_or_else(|e| e.into_inner());
        for (tp, start) in assignment {
            if self.owned.contains(tp) {
                continue;
            }
            if let Some(offset) = start {
                self.journal.record(Event::Seek {
                    process: self.process.clone(),
                    tp: tp_of(tp),
                    offset: *offset,
                });
            }
            expected.insert(tp.clone(), *start);
        }
        self.owned = assignment.iter().map(|(tp, _)| tp.clone()).collect();
    }
}

/// A member of a consumer group: joins, polls, commits its positions every few polls and
/// fetches the group's offsets, recording all of it; with churn, leaves, crashes (drops its
/// consumer without a word) and stalls during the fault phase; after the heal, reads with the
/// rest of its group until every partition is read to its end, then leaves.
pub fn add_group_member(
    sim: &mut turmoil::Sim<'_>,
    cfg: &SimConfig,
    g: usize,
    m: usize,
    journal: JournalRef,
    stop: Arc<AtomicBool>,
) {
    let spec = cfg.groups[g].clone();
    let name = spec.members[m].clone();
    let still = still_for(cfg);
    let topics: Vec<String> = cfg.topics.iter().map(|t| t.name.clone()).collect();
    let tps: Vec<TopicPartition> = cfg
        .topics
        .iter()
        .flat_map(|t| (0..t.partitions).map(move |p| TopicPartition::new(t.name.clone(), p)))
        .collect();
    let producers = cfg.producers.len();
    let rng = SharedRng::seeded(named_seed(cfg.seed, &format!("workload/{name}")));
    let env = client_env(cfg.seed, &name);
    let config = client_config(cfg, &name);
    sim.client(name.clone(), async move {
        wait_for_topics(&journal).await;
        let admin = Admin::new(env.clone(), config.clone())?;
        let cc = ConsumerConfig {
            client: config,
            auto_offset_reset: OffsetReset::Earliest,
            fetch_max_wait_ms: 100,
            ..ConsumerConfig::default()
        };
        let mut gconf = GroupConfig::new(spec.name.clone());
        gconf.session_timeout_ms = spec.session_timeout_ms;
        gconf.heartbeat_interval_ms = spec.session_timeout_ms / 3;
        gconf.max_poll_interval_ms = 10_000;
        gconf.enable_auto_commit = false;
        gconf.assignors = vec![spec.assignor.parse()?];
        let member = |what: &str| {
            journal.record(Event::Member {
                process: name.clone(),
                what: what.to_string(),
            })
        };
        'incarnations: loop {
            member("starts");
            let mut gc = GroupConsumer::new(env.clone(), cc.clone(), gconf.clone())?;
            let expected: Expected = Arc::default();
            gc.subscribe(
                topics.clone(),
                Some(Box::new(MemberListener {
                    journal: journal.clone(),
                    process: name.clone(),
                    group: spec.name.clone(),
                    owned: BTreeSet::new(),
                    expected: expected.clone(),
                })),
            );
            let mut polls = 0u64;
            loop {
                let finishing =
                    stop.load(Ordering::SeqCst) && journal.lock().producers_done == producers;
                if finishing && group_done(&admin, &journal, &spec.name, &tps, still).await {
                    if let Err(e) = gc.close().await {
                        tracing::debug!(error = %e, "closing a group member failed");
                    }
                    member("leaves: the group has read everything");
                    break 'incarnations;
                }
                {
                    let mut e = expected.lock().unwrap_or_else(|e| e.into_inner());
                    e.clear();
                    for tp in gc.assignment() {
                        e.insert(tp.clone(), gc.position(&tp));
                    }
                }
                // Even a failed poll may have moved positions (a reset): record either way.
                let (records, failed) = match gc.poll(Duration::from_millis(200)).await {
                    Ok(records) => (records, None),
                    Err(e) => (Vec::new(), Some(e)),
                };
                let expected =
                    std::mem::take(&mut *expected.lock().unwrap_or_else(|e| e.into_inner()));
                let after: BTreeMap<TopicPartition, i64> = gc
                    .assignment()
                    .into_iter()
                    .filter_map(|tp| gc.position(&tp).map(|p| (tp, p)))
                    .collect();
                {
                    let mut j = journal.lock();
                    for (tp, p) in &after {
                        let e = j
                            .group_progress
                            .entry((spec.name.clone(), tp_of(tp)))
                            .or_insert(*p);
                        *e = (*e).max(*p);
                    }
                }
                record_group_polls(&admin, &journal, &name, records, expected, after).await;
                if let Some(e) = failed {
                    tracing::debug!(error = %e, "group poll failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                polls += 1;
                if polls % 4 == 0 {
                    fetch_offsets(&gc, &journal, &name, &spec.name).await;
                }
                if polls % u64::from(spec.commit_every.max(1)) == 0 {
                    commit_positions(&mut gc, &journal, &name, &spec.name).await;
                }
                if spec.churn && !stop.load(Ordering::SeqCst) {
                    let roll = rng.gen_range(0..1000);
                    let pause = Duration::from_millis(rng.gen_range(200..2_000));
                    if roll < 4 {
                        member("leaves the group");
                        if let Err(e) = gc.close().await {
                            tracing::debug!(error = %e, "leaving failed");
                        }
                        tokio::time::sleep(pause).await;
                        continue 'incarnations;
                    } else if roll < 8 {
                        member("crashes");
                        drop(gc);
                        tokio::time::sleep(pause).await;
                        continue 'incarnations;
                    } else if roll < 12 {
                        let stall = spec.session_timeout_ms * rng.gen_range(5..20) / 10;
                        member(&format!("stalls for {stall} ms"));
                        tokio::time::sleep(Duration::from_millis(stall)).await;
                    }
                }
            }
        }
        journal.lock().group_members_done += 1;
        Ok(())
    });
}

/// Whether the group has read every partition to its end (the ends holding still across a
/// pause, as the final read checks): then it is complete in the history.
async fn group_done(
    admin: &Admin,
    journal: &JournalRef,
    group: &str,
    tps: &[TopicPartition],
    still: Duration,
) -> bool {
    let known = journal.lock().group_targets.get(group).cloned();
    let targets = match known {
        Some(t) => t,
        None => {
            let Ok(ends) = admin
                .list_offsets(&with_spec(tps, OffsetSpec::Latest))
                .await
            else {
                return false;
            };
            let t: BTreeMap<Tp, i64> = ends.iter().map(|(tp, l)| (tp_of(tp), l.offset)).collect();
            journal
                .lock()
                .group_targets
                .insert(group.to_string(), t.clone());
            t
        }
    };
    let reached = {
        let j = journal.lock();
        targets.iter().all(|(tp, end)| {
            j.group_progress
                .get(&(group.to_string(), tp.clone()))
                .copied()
                .unwrap_or(0)
                >= *end
        })
    };
    if !reached {
        return false;
    }
    if journal.lock().history.groups_complete.contains(group) {
        return true;
    }
    tokio::time::sleep(still).await;
    let Ok(again) = admin
        .list_offsets(&with_spec(tps, OffsetSpec::Latest))
        .await
    else {
        return false;
    };
    let again: BTreeMap<Tp, i64> = again.iter().map(|(tp, l)| (tp_of(tp), l.offset)).collect();
    // Records the group skipped because retention deleted them first are below the log start
    // now: the delivery check starts there.
    let starts = admin
        .list_offsets(&with_spec(tps, OffsetSpec::Earliest))
        .await;
    let Ok(starts) = starts else {
        return false;
    };
    let mut j = journal.lock();
    if again == targets {
        for (tp, l) in starts {
            let e = j.history.log_start.entry(tp_of(&tp)).or_insert(l.offset);
            *e = (*e).max(l.offset);
        }
        j.history.groups_complete.insert(group.to_string());
        true
    } else {
        j.group_targets.insert(group.to_string(), again);
        false
    }
}

/// Records a group member's poll. A partition whose records do not start where they should
/// (or whose position moved without records) was reset by `auto.offset.reset` (recorded as a
/// seek) if its old position is now outside the log (retention moved the start past it, or a
/// power loss took back the end under write caching); otherwise the history checker sees the
/// skip.
async fn record_group_polls(
    admin: &Admin,
    journal: &JournalRef,
    name: &str,
    records: Vec<runnel::client::consumer::ConsumerRecord>,
    expected: BTreeMap<TopicPartition, Option<i64>>,
    after: BTreeMap<TopicPartition, i64>,
) {
    // Where each partition's reading resumed: its first record, else its position now.
    let mut firsts: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    for r in &records {
        firsts
            .entry(TopicPartition::new(r.topic.to_string(), r.partition))
            .or_insert(r.offset);
    }
    for (tp, p) in after {
        firsts.entry(tp).or_insert(p);
    }
    for (tp, first) in firsts {
        let reset = match expected.get(&tp).copied().flatten() {
            None => true,
            Some(p) if p == first => false,
            Some(p) => {
                let range = async {
                    let start = admin
                        .list_offsets(&[(tp.clone(), OffsetSpec::Earliest)])
                        .await
                        .ok()?;
                    let end = admin
                        .list_offsets(&[(tp.clone(), OffsetSpec::Latest)])
                        .await
                        .ok()?;
                    Some((start.get(&tp)?.offset, end.get(&tp)?.offset))
                };
                // Back under write caching: a power loss may have cut the log below `p`
                // (and new writes may have grown it past `p` again since).
                let caching = first < p
                    && journal
                        .lock()
                        .history
                        .write_caching
                        .get(&tp.topic)
                        .copied()
                        .unwrap_or(false);
                caching || range.await.is_some_and(|(s, e)| p < s || p > e)
            }
        };
        if reset {
            journal.record(Event::Seek {
                process: name.into(),
                tp: tp_of(&tp),
                offset: first,
            });
        }
    }
    let mut ignored = BTreeMap::new();
    record_polls(journal, name, records, &mut ignored);
}

/// Asks for the group's offsets of the member's partitions, recording the question and the
/// answer (nothing if it failed).
async fn fetch_offsets(gc: &GroupConsumer, journal: &JournalRef, name: &str, group: &str) {
    let assigned = gc.assignment();
    if assigned.is_empty() {
        return;
    }
    journal.record(Event::FetchOffsetsInvoke {
        process: name.into(),
        group: group.into(),
    });
    if let Ok(found) = gc.committed(&assigned).await {
        journal.record(Event::FetchOffsetsOk {
            process: name.into(),
            group: group.into(),
            offsets: assigned
                .iter()
                .map(|tp| (tp_of(tp), found.get(tp).copied()))
                .collect(),
        });
    }
}

/// Commits the member's positions, recording the commit and its outcome.
async fn commit_positions(gc: &mut GroupConsumer, journal: &JournalRef, name: &str, group: &str) {
    let offsets: BTreeMap<TopicPartition, i64> = gc
        .assignment()
        .into_iter()
        .filter_map(|tp| gc.position(&tp).map(|p| (tp, p)))
        .collect();
    if offsets.is_empty() || gc.generation().is_none() {
        return;
    }
    let listed: Vec<(Tp, i64)> = offsets.iter().map(|(tp, o)| (tp_of(tp), *o)).collect();
    journal.record(Event::CommitInvoke {
        process: name.into(),
        group: group.into(),
        offsets: listed.clone(),
    });
    let event = match gc.commit_offsets(offsets).await {
        Ok(()) => Event::CommitOk {
            process: name.into(),
            group: group.into(),
            offsets: listed,
        },
        // Only the broker's answer (an error code) says the commit did not happen.
        Err(e) if e.code().is_none() => Event::CommitInfo {
            process: name.into(),
            group: group.into(),
            offsets: listed,
            error: e.to_string(),
        },
        Err(e) => Event::CommitFail {
            process: name.into(),
            group: group.into(),
            offsets: listed,
            error: e.to_string(),
        },
    };
    journal.record(event);
}
