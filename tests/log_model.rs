//! A model test of the partition log: random sequences of appends (valid and not), reads,
//! rolls, retention, syncs, clean reopens, process restarts and power losses (with torn
//! writes) against a plain in-memory model.
//!
//! The properties:
//! - every read returns whole batches, each passing its CRC, starting with the batch that holds
//!   the requested offset, each equal to the model's batch at that offset;
//! - an invalid append changes nothing;
//! - after a power loss the log equals a prefix of the model that holds at least everything
//!   synced; after a clean reopen or a process restart (page cache intact) it equals the model.

use proptest::prelude::*;
use runnel::env::clock::ManualClock;
use runnel::env::{Env, MemDisk, RealNetwork, SharedRng};
use runnel::log::{LogConfig, PartitionLog, ReadError};
use runnel::record::batch::{self, NewRecord, ProducerFields};
use std::path::Path;
use std::sync::Arc;

const DIR: &str = "/data/model-0";
const T0: i64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    /// Append a record set of batches with these record counts.
    Append(Vec<usize>),
    /// Append a record set whose last batch has one byte flipped at this position.
    AppendCorrupt(usize, usize),
    /// Read from this fraction of the log's range, at most this many bytes.
    Read(f64, usize),
    Sync,
    Roll,
    /// Set retention.bytes and apply retention.
    Retain(u64),
    /// Move the clock, then apply retention.ms.
    AgeAndRetain(i64),
    /// Close cleanly and reopen.
    Reopen,
    /// Kill the process (page cache survives) and reopen.
    Restart,
    /// Lose power: unsynced data goes, writes may tear at this block size; then reopen.
    PowerLoss(Option<usize>, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop::collection::vec(1usize..6, 1..4).prop_map(Op::Append),
        1 => (1usize..4, 0usize..400).prop_map(|(n, at)| Op::AppendCorrupt(n, at)),
        5 => (0.0f64..1.05, 1usize..3000).prop_map(|(f, b)| Op::Read(f, b)),
        2 => Just(Op::Sync),
        1 => Just(Op::Roll),
        1 => (0u64..4000).prop_map(Op::Retain),
        1 => (0i64..3000).prop_map(Op::AgeAndRetain),
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
    values: Vec<Vec<u8>>,
    timestamp: i64,
}

impl ModelBatch {
    fn end(&self) -> i64 {
        self.base + self.values.len() as i64
    }
}

struct Model {
    batches: Vec<ModelBatch>,
    log_start: i64,
    next: i64,
    /// Everything below this was synced (by an explicit sync or a clean close).
    synced: i64,
}

fn encode(values: &[Vec<u8>], ts: i64) -> Vec<u8> {
    let recs: Vec<NewRecord> = values
        .iter()
        .map(|v| NewRecord {
            timestamp: ts,
            key: Some(b"k".to_vec()),
            value: Some(v.clone()),
            headers: vec![],
        })
        .collect();
    batch::encode_batch(&recs, ProducerFields::NONE)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1500,
        index_interval_bytes: 200,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

/// Checks one read against the model.
fn check_read(model: &Model, offset: i64, max_bytes: usize, bytes: &[u8]) {
    let mut expected = model.batches.iter().skip_while(|b| b.end() <= offset);
    let mut p = 0;
    let mut n = 0;
    while p < bytes.len() {
        let h = batch::check_integrity(&bytes[p..]).expect("every batch read passes its CRC");
        let want = expected
            .next()
            .expect("read returned a batch the model lacks");
        assert_eq!(h.base_offset, want.base, "batch order");
        let body = batch::records_body(&h, &bytes[p..p + h.total_len()]).unwrap();
        let values: Vec<Vec<u8>> = batch::RecordIter::new(&h, &body)
            .map(|r| r.unwrap().value.unwrap().to_vec())
            .collect();
        assert_eq!(values, want.values, "contents at offset {}", want.base);
        p += h.total_len();
        n += 1;
    }
    if n > 1 {
        assert!(
            bytes.len() <= max_bytes,
            "only a single batch may exceed max_bytes"
        );
    }
    if offset < model.next && n == 0 {
        panic!(
            "read at {offset} returned nothing below the end {}",
            model.next
        );
    }
}

fn check_whole_log(log: &PartitionLog, model: &Model) {
    assert_eq!(log.log_start_offset(), model.log_start);
    assert_eq!(log.log_end_offset(), model.next);
    let mut off = model.log_start;
    while off < model.next {
        let r = log.read(off, 1 << 20, i64::MAX, true).unwrap();
        check_read(model, off, 1 << 20, &r.records);
        let mut p = 0;
        while p < r.records.len() {
            let h = batch::check_integrity(&r.records[p..]).unwrap();
            off = h.next_offset();
            p += h.total_len();
        }
    }
}

async fn run(ops: Vec<Op>) {
    let disk = MemDisk::new();
    let clock = Arc::new(ManualClock::new(T0));
    let env = Env {
        disk: Arc::new(disk.clone()),
        net: Arc::new(RealNetwork),
        clock: clock.clone(),
        rng: SharedRng::seeded(7),
        probe: Arc::new(runnel::env::NoProbe),
    };
    let open = || PartitionLog::open(&env, Path::new(DIR), config());
    let mut log = open().await.unwrap();
    let mut model = Model {
        batches: vec![],
        log_start: 0,
        next: 0,
        synced: 0,
    };
    let mut tag = 0u64;
    for op in ops {
        match op {
            Op::Append(counts) => {
                let mut set = Vec::new();
                let mut new = Vec::new();
                let mut base = model.next;
                for n in counts {
                    tag += 1;
                    let values: Vec<Vec<u8>> =
                        (0..n).map(|i| format!("{tag}-{i}").into_bytes()).collect();
                    let ts = clock_now(&clock);
                    set.extend_from_slice(&encode(&values, ts));
                    new.push(ModelBatch {
                        base,
                        values,
                        timestamp: ts,
                    });
                    base += n as i64;
                }
                let info = log.append(&mut set, 0).unwrap();
                assert_eq!(info.first_offset, model.next);
                assert_eq!(info.last_offset, base - 1);
                model.batches.extend(new);
                model.next = base;
            }
            Op::AppendCorrupt(n, at) => {
                let values: Vec<Vec<u8>> =
                    (0..n).map(|i| format!("bad-{i}").into_bytes()).collect();
                let mut set = encode(&values, clock_now(&clock));
                let mut bad = encode(&values, clock_now(&clock));
                let at = batch::field::ATTRIBUTES + at % (bad.len() - batch::field::ATTRIBUTES);
                bad[at] ^= 0x10;
                set.extend_from_slice(&bad);
                assert!(
                    log.append(&mut set, 0).is_err(),
                    "a flipped byte went unnoticed"
                );
                assert_eq!(log.log_end_offset(), model.next);
            }
            Op::Read(frac, max_bytes) => {
                let span = (model.next - model.log_start) as f64;
                let offset = model.log_start + (frac * span) as i64;
                match log.read(offset, max_bytes, i64::MAX, true) {
                    Ok(r) => check_read(&model, offset, max_bytes, &r.records),
                    Err(ReadError::OffsetOutOfRange { .. }) => assert!(offset > model.next),
                    Err(e) => panic!("read failed: {e}"),
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
                apply_retention(&log, &mut model);
            }
            Op::AgeAndRetain(ms) => {
                clock.advance(ms);
                log.set_config(LogConfig {
                    retention_ms: 2000,
                    ..config()
                });
                log.delete_expired_segments().await.unwrap();
                log.set_config(config());
                apply_retention(&log, &mut model);
                // Only segments whose newest record is old enough can have gone.
                if let Some(first) = model.batches.first() {
                    assert!(first.base <= model.log_start.max(first.base));
                }
            }
            Op::Reopen => {
                log.close().await.unwrap();
                log = open().await.unwrap();
                model.synced = model.next;
                check_whole_log(&log, &model);
            }
            Op::Restart => {
                drop(log);
                disk.restart();
                log = open().await.unwrap();
                check_whole_log(&log, &model);
                model.synced = model.next;
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
                // The survivors are a prefix of the model, batch-aligned.
                model.batches.retain(|b| b.end() <= end);
                assert_eq!(
                    model
                        .batches
                        .last()
                        .map_or(model.log_start, ModelBatch::end)
                        .max(model.log_start),
                    end
                );
                model.next = end;
                model.synced = end;
                check_whole_log(&log, &model);
            }
        }
        assert!(log.durable_offset() >= model.synced.min(log.log_end_offset()));
    }
    log.close().await.unwrap();
    let log = open().await.unwrap();
    check_whole_log(&log, &model);
}

fn clock_now(clock: &ManualClock) -> i64 {
    use runnel::env::Clock;
    clock.now_ms()
}

/// Retention deleted whole segments from the front: the model drops the batches below the
/// new log start, which must be a batch boundary.
fn apply_retention(log: &PartitionLog, model: &mut Model) {
    let start = log.log_start_offset();
    assert!(start >= model.log_start && start <= model.next);
    assert!(
        start == model.next
            || model.batches.iter().any(|b| b.base == start)
            || model.batches.is_empty(),
        "log start {start} is not a batch boundary"
    );
    model.batches.retain(|b| b.base >= start);
    model.log_start = start;
    model.synced = model.synced.max(start);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_log_matches_its_model(ops in prop::collection::vec(op(), 1..80)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(run(ops));
    }
}
