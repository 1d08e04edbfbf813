//! A model test of idempotent appends through the partition log: producers send numbered
//! batches; the "network" delivers attempts retried, reordered and duplicated; producers bump
//! their epoch; the log restarts cleanly, restarts after a process kill, or loses power. The
//! log's answers must match a plain model of Kafka's sequence rules, and the log must hold
//! every accepted batch exactly once, in sequence order per producer.

use proptest::prelude::*;
use runnel::env::clock::ManualClock;
use runnel::env::{Env, MemDisk, RealNetwork, SharedRng};
use runnel::log::producer_state::{BATCHES_PER_PRODUCER, ProducerError};
use runnel::log::{AppendError, LogConfig, PartitionLog};
use runnel::record::batch::{self, NewRecord, ProducerFields};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const DIR: &str = "/data/idem-0";
const PRODUCERS: i64 = 3;

#[derive(Debug, Clone)]
enum Op {
    /// Producer `p` sends (or resends) its batch number `n` of its current epoch.
    Send {
        p: i64,
        n: usize,
    },
    /// Producer `p` bumps its epoch: its sequence restarts at 0.
    Bump {
        p: i64,
    },
    /// Sync everything.
    Sync,
    /// Roll the segment (which snapshots producer state).
    Roll,
    Reopen,
    Restart,
    PowerLoss(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0..PRODUCERS, 0usize..12).prop_map(|(p, n)| Op::Send { p, n }),
        1 => (0..PRODUCERS).prop_map(|p| Op::Bump { p }),
        2 => Just(Op::Sync),
        1 => Just(Op::Roll),
        1 => Just(Op::Reopen),
        1 => Just(Op::Restart),
        1 => any::<u64>().prop_map(Op::PowerLoss),
    ]
}

/// Batch `n` of any producer has `n % 3 + 1` records, so sequence numbers are fixed per `n`.
fn records_in(n: usize) -> i32 {
    (n % 3 + 1) as i32
}

fn first_seq(n: usize) -> i32 {
    (0..n).map(records_in).sum()
}

/// A producer's batches the log accepted in its current epoch: `n` -> offsets.
#[derive(Debug, Clone, Default)]
struct ProducerModel {
    epoch: i16,
    /// Accepted batches of this epoch, in order: (n, first offset, last offset).
    accepted: Vec<(usize, i64, i64)>,
    /// Whether the log knows this producer (it has batches in the log).
    known: bool,
}

/// The answer the model expects.
#[derive(Debug, PartialEq)]
enum Expect {
    Append,
    Duplicate(i64, i64),
    OutOfOrder,
    Unknown,
}

fn expect(m: &ProducerModel, n: usize) -> Expect {
    if !m.known {
        return if n == 0 {
            Expect::Append
        } else {
            Expect::Unknown
        };
    }
    let recent = &m.accepted[m.accepted.len().saturating_sub(BATCHES_PER_PRODUCER)..];
    if let Some((_, f, l)) = recent.iter().find(|(k, _, _)| *k == n) {
        return Expect::Duplicate(*f, *l);
    }
    let next = m.accepted.last().map_or(0, |(k, _, _)| k + 1);
    if n == next {
        Expect::Append
    } else {
        Expect::OutOfOrder
    }
}

fn encode(p: i64, epoch: i16, n: usize) -> Vec<u8> {
    let recs: Vec<NewRecord> = (0..records_in(n))
        .map(|i| NewRecord {
            timestamp: 1_700_000_000_000,
            value: Some(format!("p{p}-e{epoch}-n{n}-{i}").into_bytes()),
            ..NewRecord::default()
        })
        .collect();
    batch::encode_batch(
        &recs,
        ProducerFields {
            producer_id: 1000 + p,
            producer_epoch: epoch,
            base_sequence: first_seq(n),
        },
    )
}

/// Every batch in the log: (producer, epoch, n, first offset).
fn log_contents(log: &PartitionLog) -> Vec<(i64, i16, usize, i64)> {
    let mut out = Vec::new();
    let mut off = log.log_start_offset();
    while off < log.log_end_offset() {
        let r = log.read(off, 1 << 20, i64::MAX, true).unwrap();
        let mut pos = 0;
        while pos < r.records.len() {
            let h = batch::check_integrity(&r.records[pos..]).unwrap();
            let body = batch::records_body(&h, &r.records[pos..pos + h.total_len()]).unwrap();
            let first = batch::RecordIter::new(&h, &body).next().unwrap().unwrap();
            let v = String::from_utf8(first.value.unwrap().to_vec()).unwrap();
            let n: usize = v.split('-').nth(2).unwrap()[1..].parse().unwrap();
            out.push((h.producer_id - 1000, h.producer_epoch, n, h.base_offset));
            off = h.next_offset();
            pos += h.total_len();
        }
    }
    out
}

async fn run(ops: Vec<Op>) {
    let disk = MemDisk::new();
    let env = Env {
        disk: Arc::new(disk.clone()),
        net: Arc::new(RealNetwork),
        clock: Arc::new(ManualClock::new(1_700_000_000_000)),
        rng: SharedRng::seeded(1),
        probe: Arc::new(runnel::env::NoProbe),
    };
    let cfg = LogConfig {
        segment_bytes: 600,
        write_caching: true,
        ..LogConfig::default()
    };
    let open = || PartitionLog::open(&env, Path::new(DIR), cfg.clone());
    let mut log = open().await.unwrap();
    let mut models: BTreeMap<i64, ProducerModel> = (0..PRODUCERS)
        .map(|p| (p, ProducerModel::default()))
        .collect();
    for op in ops {
        match op {
            Op::Send { p, n } => {
                let m = models.get_mut(&p).unwrap();
                let want = expect(m, n);
                let got = log.append(&mut encode(p, m.epoch, n), 0);
                match (&want, got) {
                    (Expect::Append, Ok(info)) if !info.duplicate => {
                        m.accepted.push((n, info.first_offset, info.last_offset));
                        m.known = true;
                    }
                    (Expect::Duplicate(f, l), Ok(info)) if info.duplicate => {
                        assert_eq!(
                            (info.first_offset, info.last_offset),
                            (*f, *l),
                            "duplicate answered with other offsets"
                        );
                    }
                    (
                        Expect::OutOfOrder,
                        Err(AppendError::Producer(ProducerError::OutOfOrder { .. })),
                    ) => {}
                    (
                        Expect::Unknown,
                        Err(AppendError::Producer(ProducerError::UnknownProducer { .. })),
                    ) => {}
                    (want, got) => panic!("producer {p} batch {n}: expected {want:?}, got {got:?}"),
                }
            }
            Op::Bump { p } => {
                let m = models.get_mut(&p).unwrap();
                // The new epoch's first batch has sequence 0; the old epoch is fenced once it
                // is written.
                m.epoch += 1;
                let got = log.append(&mut encode(p, m.epoch, 0), 0).unwrap();
                assert!(!got.duplicate);
                m.accepted = vec![(0, got.first_offset, got.last_offset)];
                m.known = true;
                let old = log.append(&mut encode(p, m.epoch - 1, 1), 0);
                assert!(
                    matches!(
                        old,
                        Err(AppendError::Producer(ProducerError::InvalidEpoch { .. }))
                    ),
                    "old epoch not fenced: {old:?}"
                );
            }
            Op::Sync => log.sync_all(false).await.unwrap(),
            Op::Roll => log.force_roll().unwrap(),
            Op::Reopen => {
                log.close().await.unwrap();
                log = open().await.unwrap();
            }
            Op::Restart => {
                drop(log);
                disk.restart();
                log = open().await.unwrap();
            }
            Op::PowerLoss(seed) => {
                drop(log);
                disk.crash(Some(32), seed);
                log = open().await.unwrap();
                // The survivors are a prefix: each producer keeps the batches below the end.
                let end = log.log_end_offset();
                for m in models.values_mut() {
                    m.accepted.retain(|(_, _, l)| *l < end);
                    m.known = !m.accepted.is_empty();
                }
                // An epoch whose batches are all gone is forgotten with them.
                let contents = log_contents(&log);
                for (p, m) in models.iter_mut() {
                    if let Some((_, e, _, _)) = contents.iter().rev().find(|(q, _, _, _)| q == p) {
                        if *e != m.epoch {
                            m.epoch = *e;
                            m.accepted = contents
                                .iter()
                                .filter(|(q, ee, _, _)| q == p && ee == e)
                                .map(|(_, _, n, f)| (*n, *f, *f + i64::from(records_in(*n)) - 1))
                                .collect();
                            m.known = true;
                        }
                    } else {
                        m.known = false;
                        m.accepted.clear();
                    }
                }
            }
        }
    }
    // The log holds every accepted batch once, in sequence order per producer and epoch.
    let contents = log_contents(&log);
    for (p, m) in &models {
        let in_log: Vec<(usize, i64)> = contents
            .iter()
            .filter(|(q, e, _, _)| q == p && *e == m.epoch)
            .map(|(_, _, n, f)| (*n, *f))
            .collect();
        let accepted: Vec<(usize, i64)> = m.accepted.iter().map(|(n, f, _)| (*n, *f)).collect();
        assert_eq!(in_log, accepted, "producer {p}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, max_shrink_iters: 3000, ..ProptestConfig::default() })]

    #[test]
    fn idempotent_appends_match_the_model(ops in prop::collection::vec(op(), 1..120)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(run(ops));
    }
}
