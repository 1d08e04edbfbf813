//! Unit tests of what replication needs from the log: the leader epoch cache and its file,
//! the follower's append, and truncation of the tail.

use super::*;
use crate::env::clock::ManualClock;
use crate::env::{MemDisk, SharedRng};
use crate::log::leader_epoch::{UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};
use crate::record::batch::{NewRecord, ProducerFields, encode_batch};

const DIR: &str = "/data/r-0";
const T0: i64 = 1_700_000_000_000;

fn env(disk: &MemDisk) -> Env {
    Env {
        disk: Arc::new(disk.clone()),
        net: Arc::new(crate::env::RealNetwork),
        clock: Arc::new(ManualClock::new(T0)),
        rng: SharedRng::seeded(1),
        probe: Arc::new(crate::env::NoProbe),
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1000,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

async fn open(disk: &MemDisk) -> Arc<PartitionLog> {
    PartitionLog::open(&env(disk), Path::new(DIR), config())
        .await
        .unwrap()
}

/// A batch of `n` records tagged `tag`, from `producer` if given (id, epoch, first sequence).
fn batch_of(tag: u32, n: usize, producer: Option<(i64, i16, i32)>) -> Vec<u8> {
    let records: Vec<NewRecord> = (0..n)
        .map(|i| NewRecord {
            timestamp: T0,
            key: None,
            value: Some(format!("v{tag}-{i}").into_bytes()),
            headers: vec![],
        })
        .collect();
    let fields = producer.map_or(ProducerFields::NONE, |(id, epoch, seq)| ProducerFields {
        producer_id: id,
        producer_epoch: epoch,
        base_sequence: seq,
    });
    encode_batch(&records, fields)
}

/// A batch as a leader stored it: at `base` in `epoch`.
fn leader_batch(tag: u32, n: usize, base: i64, epoch: i32) -> Vec<u8> {
    let mut b = batch_of(tag, n, None);
    batch::set_base_offset_and_epoch(&mut b, base, epoch);
    b
}

/// (base offset, epoch, first value) of every batch from the log start to the end.
fn contents(log: &PartitionLog) -> Vec<(i64, i32, String)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let r = log.read(offset, 1 << 24, i64::MAX, true).unwrap();
        assert!(!r.records.is_empty(), "nothing read at {offset}");
        let mut p = 0;
        while p < r.records.len() {
            let h = batch::check_integrity(&r.records[p..]).unwrap();
            let body = batch::records_body(&h, &r.records[p..p + h.total_len()]).unwrap();
            let first = batch::RecordIter::new(&h, &body).next().unwrap().unwrap();
            let value = String::from_utf8(first.value.unwrap().to_vec()).unwrap();
            out.push((h.base_offset, h.partition_leader_epoch, value));
            p += h.total_len();
            offset = h.next_offset();
        }
    }
    out
}

fn entries(pairs: &[(i32, i64)]) -> Vec<EpochEntry> {
    pairs
        .iter()
        .map(|&(epoch, start_offset)| EpochEntry {
            epoch,
            start_offset,
        })
        .collect()
}

fn epoch_file(disk: &MemDisk) -> Option<Vec<u8>> {
    disk.read_file(&Path::new(DIR).join(leader_epoch::FILE_NAME))
}

#[tokio::test]
async fn appends_build_the_epoch_cache_and_its_file() {
    let disk = MemDisk::new();
    let log = open(&disk).await;
    assert_eq!(log.latest_epoch(), None);
    assert_eq!(
        log.end_offset_for_epoch(0),
        (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
    );
    log.append(&mut batch_of(0, 3, None), 0).unwrap();
    log.append(&mut batch_of(1, 2, None), 0).unwrap();
    log.append(&mut batch_of(2, 4, None), 3).unwrap();
    log.append(&mut batch_of(3, 1, None), 5).unwrap();
    assert_eq!(log.epoch_entries(), entries(&[(0, 0), (3, 5), (5, 9)]));
    assert_eq!(log.end_offset_for_epoch(0), (0, 5));
    assert_eq!(log.end_offset_for_epoch(2), (0, 5));
    assert_eq!(log.end_offset_for_epoch(3), (3, 9));
    assert_eq!(log.end_offset_for_epoch(5), (5, 10));
    assert_eq!(
        log.end_offset_for_epoch(6),
        (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
    );
    // A stale leader is refused, and nothing is written.
    assert!(matches!(
        log.append(&mut batch_of(4, 1, None), 4),
        Err(AppendError::StaleLeaderEpoch {
            epoch: 4,
            latest: 5
        })
    ));
    assert_eq!(log.log_end_offset(), 10);
    // The sync writes the file; a power loss keeps it; the reopened log agrees.
    log.sync_all(false).await.unwrap();
    assert_eq!(
        epoch_file(&disk).unwrap(),
        b"0\n3\n0 0\n3 5\n5 9\n".to_vec()
    );
    drop(log);
    disk.crash(None, 1);
    let log = open(&disk).await;
    assert_eq!(log.epoch_entries(), entries(&[(0, 0), (3, 5), (5, 9)]));
    assert_eq!(
        contents(&log).iter().map(|c| c.1).collect::<Vec<_>>(),
        vec![0, 0, 3, 5]
    );
}

/// A disk that refuses to create the epoch checkpoint's temp file while `refuse` is set, as a
/// full disk or an I/O error would.
struct EpochFileFaults {
    disk: MemDisk,
    refuse: Arc<std::sync::atomic::AtomicBool>,
}

impl Disk for EpochFileFaults {
    fn open(&self, path: &Path, mode: crate::env::FileMode) -> io::Result<Arc<dyn DiskFile>> {
        let epoch_file = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(leader_epoch::FILE_NAME));
        if epoch_file
            && mode == crate::env::FileMode::CreateTruncate
            && self.refuse.load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(io::Error::other("no space left on device (test)"));
        }
        self.disk.open(path, mode)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.disk.create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<crate::env::disk::DirEntry>> {
        self.disk.list_dir(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.disk.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.disk.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.disk.remove_dir_all(path)
    }
    fn exists(&self, path: &Path) -> bool {
        self.disk.exists(path)
    }
    fn sync_dir(&self, path: &Path) -> crate::env::BoxFuture<'static, io::Result<()>> {
        self.disk.sync_dir(path)
    }
}

/// Seed 9200978: a transient disk fault (EIO, then a full disk) made the epoch checkpoint's
/// write fail, and the log went offline for good: `__consumer_offsets` refused every append
/// and sync after the heal, and the group never finished. The checkpoint is replaced whole by
/// a rename, so a failed write leaves the old one: the sync fails without declaring anything
/// durable, the log stays online, and the next sync writes the checkpoint and declares it all.
#[tokio::test]
async fn a_failed_epoch_checkpoint_write_fails_the_sync_not_the_log() {
    let disk = MemDisk::new();
    let refuse = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut e = env(&disk);
    e.disk = Arc::new(EpochFileFaults {
        disk: disk.clone(),
        refuse: refuse.clone(),
    });
    let log = PartitionLog::open(&e, Path::new(DIR), config())
        .await
        .unwrap();
    log.append(&mut batch_of(0, 3, None), 0).unwrap();
    log.sync_all(false).await.unwrap();
    assert_eq!(log.durable_offset(), 3);
    // A new epoch dirties the cache; its file cannot be written.
    refuse.store(true, std::sync::atomic::Ordering::SeqCst);
    log.append(&mut batch_of(1, 2, None), 2).unwrap();
    assert!(matches!(log.sync_to(5).await, Err(LogError::Io(_))));
    assert_eq!(
        log.durable_offset(),
        3,
        "nothing declared past the old file"
    );
    assert_eq!(
        epoch_file(&disk).unwrap(),
        leader_epoch::encode(&entries(&[(0, 0)]))
    );
    // Still online: it takes appends, and once the disk recovers the next sync does it all.
    log.append(&mut batch_of(2, 1, None), 2).unwrap();
    refuse.store(false, std::sync::atomic::Ordering::SeqCst);
    log.sync_to(6).await.unwrap();
    assert_eq!(log.durable_offset(), 6);
    let want = entries(&[(0, 0), (2, 3)]);
    assert_eq!(epoch_file(&disk).unwrap(), leader_epoch::encode(&want));
    drop(log);
    disk.crash(None, 1);
    let log = open(&disk).await;
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.epoch_entries(), want);
}

#[tokio::test]
async fn a_damaged_or_missing_epoch_file_is_rebuilt_from_the_batches() {
    let disk = MemDisk::new();
    let log = open(&disk).await;
    log.append(&mut batch_of(0, 3, None), 1).unwrap();
    log.append(&mut batch_of(1, 2, None), 4).unwrap();
    log.close().await.unwrap();
    let want = entries(&[(1, 0), (4, 3)]);
    for garbage in [
        &b"0\n2\n1 0\n"[..],
        b"\x00\xff",
        b"1\n0\n",
        b"0\n2\n4 0\n1 3\n",
    ] {
        disk.write_file_durable(&Path::new(DIR).join(leader_epoch::FILE_NAME), garbage);
        let log = open(&disk).await;
        assert_eq!(log.epoch_entries(), want);
        // Rewritten at open.
        assert_eq!(epoch_file(&disk).unwrap(), leader_epoch::encode(&want));
        log.close().await.unwrap();
    }
    disk.remove_file(&Path::new(DIR).join(leader_epoch::FILE_NAME))
        .unwrap();
    let log = open(&disk).await;
    assert_eq!(log.epoch_entries(), want);
    // A file that claims more than the log holds is cut back to it.
    log.close().await.unwrap();
    disk.write_file_durable(
        &Path::new(DIR).join(leader_epoch::FILE_NAME),
        &leader_epoch::encode(&entries(&[(1, 0), (4, 3), (9, 50)])),
    );
    let log = open(&disk).await;
    assert_eq!(log.epoch_entries(), want);
}

#[tokio::test]
async fn retention_moves_the_first_epoch_to_the_log_start() {
    let disk = MemDisk::new();
    let log = open(&disk).await;
    log.append(&mut batch_of(0, 3, None), 1).unwrap();
    log.force_roll().unwrap();
    log.append(&mut batch_of(1, 3, None), 1).unwrap();
    log.append(&mut batch_of(2, 3, None), 2).unwrap();
    log.force_roll().unwrap();
    log.set_config(LogConfig {
        retention_bytes: 0,
        ..config()
    });
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (2, 6)]));
    assert_eq!(log.delete_expired_segments().await.unwrap(), 2);
    assert_eq!(log.log_start_offset(), 9);
    assert_eq!(log.epoch_entries(), entries(&[(2, 9)]));
    assert_eq!(log.end_offset_for_epoch(1), (1, 9));
    // As in Kafka, loading cuts the cache back to the log end, so an empty log reopens with
    // no epochs (the next leader's append starts one).
    drop(log);
    disk.crash(None, 2);
    let log = open(&disk).await;
    assert_eq!(log.epoch_entries(), entries(&[]));
    log.append(&mut batch_of(3, 1, None), 2).unwrap();
    assert_eq!(log.epoch_entries(), entries(&[(2, 9)]));
}

#[tokio::test]
async fn a_follower_appends_at_the_leaders_offsets_and_epochs() {
    let disk = MemDisk::new();
    let log = open(&disk).await;
    let mut set = leader_batch(0, 3, 0, 2);
    set.extend(leader_batch(1, 2, 3, 2));
    set.extend(leader_batch(2, 1, 5, 4));
    let info = log.append_as_follower(&set).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 5));
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.epoch_entries(), entries(&[(2, 0), (4, 5)]));
    // Stored exactly as the leader sent them.
    let r = log.read(0, 1 << 20, i64::MAX, true).unwrap();
    assert_eq!(r.records, set);

    let err = |r: Result<AppendInfo, FollowerAppendError>| r.unwrap_err();
    // Not at the log end: below or above.
    assert!(matches!(
        err(log.append_as_follower(&leader_batch(3, 1, 5, 4))),
        FollowerAppendError::UnexpectedOffset {
            first: 5,
            log_end: 6
        }
    ));
    assert!(matches!(
        err(log.append_as_follower(&leader_batch(3, 1, 7, 4))),
        FollowerAppendError::UnexpectedOffset { first: 7, .. }
    ));
    // A gap or an overlap between batches.
    let mut gap = leader_batch(3, 1, 6, 4);
    gap.extend(leader_batch(4, 1, 8, 4));
    assert!(matches!(
        err(log.append_as_follower(&gap)),
        FollowerAppendError::OffsetsOutOfOrder {
            offset: 8,
            expected: 7
        }
    ));
    // Epochs going back, against the log or within the set; or missing.
    assert!(matches!(
        err(log.append_as_follower(&leader_batch(3, 1, 6, 3))),
        FollowerAppendError::EpochGoesBack {
            epoch: 3,
            latest: 4,
            ..
        }
    ));
    let mut back = leader_batch(3, 1, 6, 6);
    back.extend(leader_batch(4, 1, 7, 5));
    assert!(matches!(
        err(log.append_as_follower(&back)),
        FollowerAppendError::EpochGoesBack { offset: 7, .. }
    ));
    assert!(matches!(
        err(log.append_as_follower(&leader_batch(3, 1, 6, -1))),
        FollowerAppendError::EpochGoesBack { epoch: -1, .. }
    ));
    // A damaged batch, a torn one.
    let mut bad = leader_batch(3, 2, 6, 4);
    let at = bad.len() - 3;
    bad[at] ^= 1;
    assert!(matches!(
        err(log.append_as_follower(&bad)),
        FollowerAppendError::InvalidBatch(_)
    ));
    let torn = leader_batch(3, 2, 6, 4);
    assert!(matches!(
        err(log.append_as_follower(&torn[..torn.len() - 1])),
        FollowerAppendError::InvalidBatch(_)
    ));
    // Nothing of the refused sets was written.
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.epoch_entries(), entries(&[(2, 0), (4, 5)]));
    log.append_as_follower(&leader_batch(5, 1, 6, 4)).unwrap();
    log.sync_all(false).await.unwrap();
    drop(log);
    disk.crash(None, 3);
    let log = open(&disk).await;
    assert_eq!(log.log_end_offset(), 7);
    assert_eq!(log.epoch_entries(), entries(&[(2, 0), (4, 5)]));
}

/// A follower that becomes leader deduplicates a retry of a batch it only replicated: the
/// idempotent producers' state came with the follower's appends.
#[tokio::test]
async fn a_follower_keeps_the_producers_state_for_when_it_leads() {
    let disk = MemDisk::new();
    let log = open(&disk).await;
    let mut b = batch_of(0, 3, Some((42, 0, 0)));
    batch::set_base_offset_and_epoch(&mut b, 0, 1);
    log.append_as_follower(&b).unwrap();
    let retry = log
        .append(&mut batch_of(0, 3, Some((42, 0, 0))), 2)
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!((retry.first_offset, retry.last_offset), (0, 2));
    let next = log
        .append(&mut batch_of(1, 1, Some((42, 0, 3))), 2)
        .unwrap();
    assert_eq!(next.first_offset, 3);
    assert_eq!(log.epoch_entries(), entries(&[(1, 0), (2, 3)]));
}

/// A retry answered from the producers' state waits for the sync its original waits for:
/// told "written at 0" before offset 0 is durable, a client of acks=all would be misled
/// (seed 130: the retry's answer overtook the original's sync).
#[tokio::test]
async fn a_duplicate_of_an_unsynced_batch_waits_for_its_sync() {
    let disk = MemDisk::new();
    let log = open(&disk).await;
    let first = log
        .append(&mut batch_of(0, 3, Some((42, 0, 0))), 1)
        .unwrap();
    assert!(log.must_sync(&first, true));
    let retry = log
        .append(&mut batch_of(0, 3, Some((42, 0, 0))), 1)
        .unwrap();
    assert!(retry.duplicate);
    assert!(retry.flush_due && log.must_sync(&retry, false));
    log.sync_to(first.last_offset + 1).await.unwrap();
    let again = log
        .append(&mut batch_of(0, 3, Some((42, 0, 0))), 1)
        .unwrap();
    assert!(again.duplicate && !again.flush_due);
}

/// Five batches of 2 records in epochs 1,1,2,2,3 at offsets 0,2,4,6,8, rolled after the
/// second and the fourth (segments at 0, 4, 8), idempotent producer 7 in every batch.
async fn three_segments(disk: &MemDisk) -> Arc<PartitionLog> {
    let log = open(disk).await;
    let epochs = [1, 1, 2, 2, 3];
    for (i, epoch) in epochs.iter().enumerate() {
        let seq = 2 * i as i32;
        log.append(&mut batch_of(i as u32, 2, Some((7, 0, seq))), *epoch)
            .unwrap();
        if i == 1 || i == 3 {
            log.force_roll().unwrap();
        }
    }
    log.sync_all(false).await.unwrap();
    assert_eq!(log.segment_bases(), vec![0, 4, 8]);
    log
}

fn producer_last_seq(log: &PartitionLog, id: i64) -> Option<i32> {
    log.producer_states()
        .get(id)
        .and_then(|e| e.batches.back().map(|b| b.last_seq))
}

/// Cuts `log` at each kind of boundary and checks it, then checks that a power loss right
/// after the cut and a clean reopen both bring back exactly the cut log.
async fn cut_and_check(
    offset: i64,
    want_end: i64,
    want_segments: &[i64],
    want_epochs: &[(i32, i64)],
) {
    let disk = MemDisk::new();
    let log = three_segments(&disk).await;
    let end = log.truncate_to(offset).await.unwrap();
    assert_eq!(end, want_end, "truncate_to({offset})");
    assert_eq!(log.log_end_offset(), want_end);
    assert_eq!(log.durable_offset(), want_end, "the cut is synced");
    assert_eq!(log.segment_bases(), want_segments);
    assert_eq!(log.epoch_entries(), entries(want_epochs));
    let bases: Vec<i64> = contents(&log).iter().map(|c| c.0).collect();
    let all = [0i64, 2, 4, 6, 8];
    let kept: Vec<i64> = all.iter().copied().filter(|b| *b < want_end).collect();
    assert_eq!(bases, kept);
    // The producer's state is what the kept batches say.
    let want_seq = (want_end > 0).then(|| want_end as i32 - 1);
    assert_eq!(producer_last_seq(&log, 7), want_seq);
    // No snapshot past the cut remains.
    let snaps = snapshot::list(&disk, Path::new(DIR)).unwrap();
    assert!(snaps.iter().all(|s| *s <= want_end), "{snaps:?}");
    // Appends continue at the cut, in a new epoch, and the producer goes on from its state.
    let seq = want_seq.map_or(0, |s| s + 1);
    let info = log
        .append(&mut batch_of(9, 1, Some((7, 0, seq))), 9)
        .unwrap();
    assert_eq!(info.first_offset, want_end);
    log.truncate_to(want_end).await.unwrap();
    // Power loss straight after a truncation: nothing of the cut comes back.
    drop(log);
    disk.crash(Some(16), 5);
    let log = open(&disk).await;
    assert_eq!(log.log_end_offset(), want_end);
    assert_eq!(log.epoch_entries(), entries(want_epochs));
    assert_eq!(producer_last_seq(&log, 7), want_seq);
    assert_eq!(contents(&log).iter().map(|c| c.0).collect::<Vec<_>>(), kept);
    log.close().await.unwrap();
    let log = open(&disk).await;
    assert_eq!(log.log_end_offset(), want_end);
}

#[tokio::test]
async fn truncation_mid_segment_at_a_batch_boundary() {
    cut_and_check(6, 6, &[0, 4], &[(1, 0), (2, 4)]).await;
    cut_and_check(2, 2, &[0], &[(1, 0)]).await;
}

#[tokio::test]
async fn truncation_inside_a_batch_cuts_the_whole_batch() {
    cut_and_check(7, 6, &[0, 4], &[(1, 0), (2, 4)]).await;
    cut_and_check(9, 8, &[0, 4, 8], &[(1, 0), (2, 4)]).await;
    cut_and_check(1, 0, &[0], &[]).await;
}

#[tokio::test]
async fn truncation_exactly_at_a_segment_base_keeps_it_empty() {
    cut_and_check(8, 8, &[0, 4, 8], &[(1, 0), (2, 4)]).await;
    cut_and_check(4, 4, &[0, 4], &[(1, 0)]).await;
}

#[tokio::test]
async fn truncation_across_several_segments() {
    cut_and_check(3, 2, &[0], &[(1, 0)]).await;
    cut_and_check(0, 0, &[0], &[]).await;
}

#[tokio::test]
async fn truncation_bounds() {
    let disk = MemDisk::new();
    let log = three_segments(&disk).await;
    // At or above the end: nothing changes.
    assert_eq!(log.truncate_to(10).await.unwrap(), 10);
    assert_eq!(log.truncate_to(99).await.unwrap(), 10);
    assert_eq!(log.log_end_offset(), 10);
    // Below the log start: refused.
    log.set_config(LogConfig {
        retention_bytes: 0,
        ..config()
    });
    log.delete_expired_segments().await.unwrap();
    log.set_config(config());
    assert_eq!(log.log_start_offset(), 8);
    assert!(matches!(
        log.truncate_to(7).await,
        Err(TruncateError::BelowLogStart {
            offset: 7,
            log_start: 8
        })
    ));
    assert_eq!(log.truncate_to(8).await.unwrap(), 8);
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(log.log_start_offset(), 8);
    assert_eq!(log.epoch_entries(), entries(&[]));
}

/// Producer snapshots above the cut are deleted; the one at or below it is where the rebuild
/// starts, and a producer whose batches were all cut is forgotten.
#[tokio::test]
async fn truncation_rebuilds_producers_from_snapshots_below_the_cut() {
    let disk = MemDisk::new();
    let log = three_segments(&disk).await;
    // Another producer only in the last segment.
    log.append(&mut batch_of(20, 1, Some((8, 0, 0))), 3)
        .unwrap();
    log.sync_all(false).await.unwrap();
    assert_eq!(snapshot::list(&disk, Path::new(DIR)).unwrap(), vec![4, 8]);
    assert_eq!(log.truncate_to(6).await.unwrap(), 6);
    assert_eq!(snapshot::list(&disk, Path::new(DIR)).unwrap(), vec![4]);
    assert_eq!(producer_last_seq(&log, 7), Some(5));
    assert_eq!(producer_last_seq(&log, 8), None);
    // The state matches the one a fresh recovery builds.
    let states = log.producer_states();
    drop(log);
    disk.restart();
    assert_eq!(open(&disk).await.producer_states(), states);
}

/// A waiter for a sync of offsets that a truncation took away gets an error, not a hang.
#[tokio::test]
async fn a_sync_waiter_past_the_cut_is_told() {
    let disk = MemDisk::new();
    let log = three_segments(&disk).await;
    log.truncate_to(4).await.unwrap();
    assert!(matches!(
        log.sync_to(10).await,
        Err(LogError::Truncated {
            offset: 10,
            log_end: 4
        })
    ));
}

/// Found by `tests/log_epoch_model.rs`: a restart replays batch headers from the checkpoint's
/// recovery point, which may lie in an older epoch than the file's last entry. Assigning that
/// older epoch again, by Kafka's rule, removed every newer entry and the first one with it.
/// Minimal case: epoch 0 at 0, reopen (recovery point 1), epoch 0 at 1, epoch 1 at 2, sync,
/// restart.
#[tokio::test]
async fn replay_from_the_recovery_point_keeps_newer_epochs() {
    let disk = MemDisk::new();
    let log = open(&disk).await;
    log.append(&mut batch_of(0, 1, None), 0).unwrap();
    log.close().await.unwrap();
    let log = open(&disk).await;
    log.append(&mut batch_of(1, 1, None), 0).unwrap();
    log.append(&mut batch_of(2, 1, None), 1).unwrap();
    log.sync_all(false).await.unwrap();
    drop(log);
    disk.restart();
    let log = open(&disk).await;
    assert_eq!(log.epoch_entries(), entries(&[(0, 0), (1, 2)]));
}

/// Kafka's deletableSegments: retention never moves the log start past the high watermark,
/// where a new leader may yet find this log diverging (seed 40867).
#[tokio::test]
async fn retention_stops_at_the_high_watermark() {
    let disk = MemDisk::new();
    let log = open(&disk).await;
    for i in 0..3 {
        log.append(&mut batch_of(i, 3, None), 1).unwrap();
        log.force_roll().unwrap();
    }
    log.set_high_watermark(4);
    log.set_config(LogConfig {
        retention_bytes: 0,
        ..config()
    });
    // Segments 0..3 and 3..6 and 6..9: only the first ends at or below the high watermark.
    assert_eq!(log.delete_expired_segments().await.unwrap(), 1);
    assert_eq!(log.log_start_offset(), 3);
    log.set_high_watermark(9);
    assert_eq!(log.delete_expired_segments().await.unwrap(), 2);
    assert_eq!(log.log_start_offset(), 9);
}

/// A follower whose whole log lies past the point where it diverges from its leader empties
/// it and starts again there, even below its own log start (Kafka's truncateTo).
#[tokio::test]
async fn a_follower_diverging_below_its_log_start_starts_again_there() {
    let disk = MemDisk::new();
    let log = open(&disk).await;
    for i in 0..3 {
        log.append(&mut batch_of(i, 3, None), 1).unwrap();
        log.force_roll().unwrap();
    }
    log.set_config(LogConfig {
        retention_bytes: 0,
        ..config()
    });
    log.delete_expired_segments().await.unwrap();
    assert_eq!(log.log_start_offset(), 9);
    assert!(log.truncate_fully_and_start_at(5).await.is_err());
    log.truncate_fully_and_start_below(5).await.unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (5, 5));
    log.append_as_follower(&leader_batch(7, 2, 5, 2)).unwrap();
    assert_eq!(log.log_end_offset(), 7);
}
