//! A model test of what replication asks of the partition log: leader appends with
//! non-decreasing leader epochs (and stale ones, refused), follower appends at the leader's
//! offsets (and at wrong ones, refused), truncations to any offset, syncs, rolls, retention,
//! clean reopens, process restarts and power losses with torn writes, against a plain model.
//!
//! After every step:
//! - the log holds exactly the model's batches (offsets, leader epochs, values);
//! - the epoch cache is what the batches say (each epoch's first batch), and
//!   `end_offset_for_epoch` answers every epoch as Kafka's `endOffsetFor` would from them;
//! - after a power loss the log is a prefix of the model holding at least everything synced,
//!   and a truncation is synced before it returns.

use proptest::prelude::*;
use runnel::env::clock::ManualClock;
use runnel::env::{Env, MemDisk, RealNetwork, SharedRng};
use runnel::log::leader_epoch::{EpochEntry, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
use runnel::log::{AppendError, FollowerAppendError, LogConfig, PartitionLog};
use runnel::record::batch::{self, NewRecord, ProducerFields};
use std::path::Path;
use std::sync::Arc;

const DIR: &str = "/data/epochs-0";
const T0: i64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    /// A leader appends batches of these record counts, its epoch raised by this much.
    Leader(u8, Vec<usize>),
    /// A leader whose epoch is older than the log's latest tries to append.
    StaleLeader,
    /// A follower appends the leader's batches, in an epoch raised by this much.
    Follower(u8, Vec<usize>),
    /// A follower appends a batch at the log end plus this (non-zero) offset.
    FollowerMisplaced(i64),
    /// Truncate at this fraction of the log's range (past 1: beyond the end).
    Truncate(f64),
    Sync,
    Roll,
    /// Apply retention.bytes.
    Retain(u64),
    Reopen,
    Restart,
    PowerLoss(Option<usize>, u64),
}

fn op() -> impl Strategy<Value = Op> {
    let counts = || prop::collection::vec(1usize..5, 1..3);
    prop_oneof![
        6 => (0u8..3, counts()).prop_map(|(b, c)| Op::Leader(b, c)),
        1 => Just(Op::StaleLeader),
        5 => (0u8..3, counts()).prop_map(|(b, c)| Op::Follower(b, c)),
        1 => prop::sample::select(vec![-3i64, -1, 1, 5]).prop_map(Op::FollowerMisplaced),
        3 => (0.0f64..1.1).prop_map(Op::Truncate),
        2 => Just(Op::Sync),
        1 => Just(Op::Roll),
        1 => (0u64..3000).prop_map(Op::Retain),
        1 => Just(Op::Reopen),
        1 => Just(Op::Restart),
        2 => (prop::option::of(prop::sample::select(vec![1usize, 16, 64, 512])), any::<u64>())
            .prop_map(|(b, s)| Op::PowerLoss(b, s)),
    ]
}

/// One batch as the model knows it.
#[derive(Debug, Clone, PartialEq)]
struct ModelBatch {
    base: i64,
    epoch: i32,
    values: Vec<Vec<u8>>,
}

impl ModelBatch {
    fn end(&self) -> i64 {
        self.base + self.values.len() as i64
    }
}

#[derive(Default)]
struct Model {
    batches: Vec<ModelBatch>,
    log_start: i64,
    next: i64,
    /// Everything below this is synced.
    synced: i64,
    /// The newest epoch any leader had (epochs never go back).
    epoch: i32,
    /// Retention emptied the log: the cache keeps the last epoch, moved to the log start,
    /// until the log is reopened (loading cuts the cache to the log end, as Kafka's does).
    emptied_epoch: Option<i32>,
}

impl Model {
    /// The epoch cache the batches call for.
    fn entries(&self) -> Vec<EpochEntry> {
        let mut out: Vec<EpochEntry> = Vec::new();
        if let Some(epoch) = self.emptied_epoch {
            out.push(EpochEntry {
                epoch,
                start_offset: self.log_start,
            });
        }
        for b in &self.batches {
            if out.last().is_some_and(|l| l.start_offset == b.base) {
                out.pop();
            }
            if out.last().is_none_or(|l| l.epoch != b.epoch) {
                out.push(EpochEntry {
                    epoch: b.epoch,
                    start_offset: b.base,
                });
            }
        }
        out
    }

    /// Kafka's `endOffsetFor`, by a direct search of the entries.
    fn end_offset_for(&self, requested: i32) -> (i32, i64) {
        let es = self.entries();
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if es.last().map(|l| l.epoch) == Some(requested) {
            return (requested, self.next);
        }
        match es.iter().position(|e| e.epoch > requested) {
            None => (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET),
            Some(0) => (requested, es[0].start_offset),
            Some(i) => (es[i - 1].epoch, es[i].start_offset),
        }
    }

    /// Forgets the batches at or past `end`.
    fn cut(&mut self, end: i64) {
        self.batches.retain(|b| b.end() <= end);
        self.next = end;
        self.synced = self.synced.min(end);
    }
}

fn encode(values: &[Vec<u8>]) -> Vec<u8> {
    let recs: Vec<NewRecord> = values
        .iter()
        .map(|v| NewRecord {
            timestamp: T0,
            key: None,
            value: Some(v.clone()),
            headers: vec![],
        })
        .collect();
    batch::encode_batch(&recs, ProducerFields::NONE)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1200,
        index_interval_bytes: 150,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

/// Builds batches of `counts` records from the model's end in `epoch`; returns the bytes (as
/// a leader stored them) and the model's batches.
fn make_batches(
    tag: &mut u64,
    next: i64,
    epoch: i32,
    counts: &[usize],
) -> (Vec<u8>, Vec<ModelBatch>) {
    let mut bytes = Vec::new();
    let mut batches = Vec::new();
    let mut base = next;
    for n in counts {
        *tag += 1;
        let values: Vec<Vec<u8>> = (0..*n).map(|i| format!("{tag}-{i}").into_bytes()).collect();
        let mut b = encode(&values);
        batch::set_base_offset_and_epoch(&mut b, base, epoch);
        bytes.extend_from_slice(&b);
        batches.push(ModelBatch {
            base,
            epoch,
            values,
        });
        base += *n as i64;
    }
    (bytes, batches)
}

/// Every batch of the log, read segment by segment.
fn read_all(log: &PartitionLog) -> Vec<ModelBatch> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let r = log.read(offset, 1 << 20, i64::MAX, true).unwrap();
        assert!(!r.records.is_empty(), "nothing read at {offset}");
        let mut p = 0;
        while p < r.records.len() {
            let h =
                batch::check_integrity(&r.records[p..]).expect("every batch read passes its CRC");
            let body = batch::records_body(&h, &r.records[p..p + h.total_len()]).unwrap();
            let values = batch::RecordIter::new(&h, &body)
                .map(|r| r.unwrap().value.unwrap().to_vec())
                .collect();
            out.push(ModelBatch {
                base: h.base_offset,
                epoch: h.partition_leader_epoch,
                values,
            });
            p += h.total_len();
            offset = h.next_offset();
        }
    }
    out
}

fn check(log: &PartitionLog, model: &Model) {
    assert_eq!(log.log_start_offset(), model.log_start, "log start");
    assert_eq!(log.log_end_offset(), model.next, "log end");
    assert_eq!(read_all(log), model.batches, "contents");
    assert_eq!(log.epoch_entries(), model.entries(), "epoch cache");
    for e in -1..=model.epoch + 1 {
        assert_eq!(
            log.end_offset_for_epoch(e),
            model.end_offset_for(e),
            "end_offset_for_epoch({e}) with entries {:?}",
            model.entries()
        );
    }
    assert!(log.durable_offset() >= model.synced.min(model.next));
}

async fn run(ops: Vec<Op>) {
    let disk = MemDisk::new();
    let env = Env {
        disk: Arc::new(disk.clone()),
        net: Arc::new(RealNetwork),
        clock: Arc::new(ManualClock::new(T0)),
        rng: SharedRng::seeded(7),
        probe: Arc::new(runnel::env::NoProbe),
    };
    let open = || PartitionLog::open(&env, Path::new(DIR), config());
    let mut log = open().await.unwrap();
    let mut model = Model::default();
    let mut tag = 0u64;
    for op in ops {
        match op {
            Op::Leader(bump, counts) => {
                model.epoch += i32::from(bump);
                let (mut bytes, new) = make_batches(&mut tag, model.next, model.epoch, &counts);
                // The leader's own offsets and epoch go in; the log assigns them again.
                batch::set_base_offset_and_epoch(&mut bytes, 0, -1);
                let info = log.append(&mut bytes, model.epoch).unwrap();
                assert_eq!(info.first_offset, model.next);
                model.next = new.last().unwrap().end();
                model.batches.extend(new);
                model.emptied_epoch = model.emptied_epoch.filter(|_| model.batches.is_empty());
            }
            Op::StaleLeader => {
                let latest = model.entries().last().map(|e| e.epoch);
                if let Some(latest) = latest.filter(|l| *l > 0) {
                    let r = log.append(&mut encode(&[b"stale".to_vec()]), latest - 1);
                    assert!(
                        matches!(r, Err(AppendError::StaleLeaderEpoch { .. })),
                        "{r:?}"
                    );
                }
            }
            Op::Follower(bump, counts) => {
                model.epoch += i32::from(bump);
                let (bytes, new) = make_batches(&mut tag, model.next, model.epoch, &counts);
                let info = log.append_as_follower(&bytes).unwrap();
                assert_eq!(info.first_offset, model.next);
                model.next = new.last().unwrap().end();
                model.batches.extend(new);
                model.emptied_epoch = model.emptied_epoch.filter(|_| model.batches.is_empty());
            }
            Op::FollowerMisplaced(delta) => {
                let at = (model.next + delta).max(0);
                if at != model.next {
                    let (bytes, _) = make_batches(&mut tag, at, model.epoch, &[1]);
                    let r = log.append_as_follower(&bytes);
                    assert!(
                        matches!(r, Err(FollowerAppendError::UnexpectedOffset { .. })),
                        "{r:?}"
                    );
                }
            }
            Op::Truncate(frac) => {
                let span = (model.next - model.log_start) as f64;
                let offset = model.log_start + (frac * span) as i64;
                let end = log.truncate_to(offset).await.unwrap();
                let want = if offset >= model.next {
                    model.next
                } else {
                    // The batch holding the offset goes whole.
                    model
                        .batches
                        .iter()
                        .find(|b| b.end() > offset)
                        .map_or(offset, |b| b.base)
                };
                assert_eq!(end, want, "truncate_to({offset})");
                if offset < model.next {
                    model.cut(end);
                    model.synced = end;
                }
            }
            Op::Sync => {
                log.sync_all(false).await.unwrap();
                model.synced = model.next;
            }
            Op::Roll => log.force_roll().unwrap(),
            Op::Retain(bytes) => {
                log.set_config(LogConfig {
                    retention_bytes: bytes as i64,
                    ..config()
                });
                log.delete_expired_segments().await.unwrap();
                log.set_config(config());
                let start = log.log_start_offset();
                if start > model.log_start {
                    let last_epoch = model.entries().last().map(|e| e.epoch);
                    model.batches.retain(|b| b.base >= start);
                    model.log_start = start;
                    model.synced = model.synced.max(start);
                    if model.batches.is_empty() {
                        model.emptied_epoch = last_epoch;
                    }
                }
            }
            Op::Reopen => {
                log.close().await.unwrap();
                log = open().await.unwrap();
                model.synced = model.next;
                model.emptied_epoch = None;
            }
            Op::Restart => {
                drop(log);
                disk.restart();
                log = open().await.unwrap();
                model.synced = model.next;
                model.emptied_epoch = None;
            }
            Op::PowerLoss(block, seed) => {
                drop(log);
                disk.crash(block, seed);
                log = open().await.unwrap();
                let end = log.log_end_offset();
                assert!(
                    end >= model.synced && end <= model.next,
                    "after power loss the log ends at {end}; synced {} written {}",
                    model.synced,
                    model.next
                );
                model.cut(end);
                model.synced = end;
                model.emptied_epoch = None;
            }
        }
        check(&log, &model);
    }
    log.close().await.unwrap();
    let log = open().await.unwrap();
    model.emptied_epoch = None;
    check(&log, &model);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_log_with_epochs_matches_its_model(ops in prop::collection::vec(op(), 1..70)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(run(ops));
    }
}
