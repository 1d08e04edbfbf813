//! Unit tests of the partition log on the in-memory disk.

use super::*;
use crate::env::clock::ManualClock;
use crate::env::{MemDisk, SharedRng};
use crate::log::segment;
use crate::record::batch::{NewRecord, ProducerFields, encode_batch};

const DIR: &str = "/data/t-0";
const T0: i64 = 1_700_000_000_000;

struct Fixture {
    disk: MemDisk,
    clock: Arc<ManualClock>,
    env: Env,
}

fn fixture() -> Fixture {
    let disk = MemDisk::new();
    let clock = Arc::new(ManualClock::new(T0));
    let env = Env {
        disk: Arc::new(disk.clone()),
        net: Arc::new(crate::env::RealNetwork),
        clock: clock.clone(),
        rng: SharedRng::seeded(1),
        probe: Arc::new(crate::env::NoProbe),
    };
    Fixture { disk, clock, env }
}

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1000,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

/// A batch of `n` records with values `v<tag>-<i>` and timestamp `ts`.
fn batch(tag: u32, n: usize, ts: i64) -> Vec<u8> {
    let records: Vec<NewRecord> = (0..n)
        .map(|i| NewRecord {
            timestamp: ts,
            key: None,
            value: Some(format!("v{tag}-{i}").into_bytes()),
            headers: vec![],
        })
        .collect();
    encode_batch(&records, ProducerFields::NONE)
}

async fn open(f: &Fixture, cfg: LogConfig) -> Arc<PartitionLog> {
    PartitionLog::open(&f.env, Path::new(DIR), cfg)
        .await
        .unwrap()
}

/// The (base offset, record count) of each batch in a read.
fn batches_of(bytes: &[u8]) -> Vec<(i64, i32)> {
    let mut out = Vec::new();
    let mut p = 0;
    while p < bytes.len() {
        let h = batch::check_integrity(&bytes[p..]).unwrap();
        out.push((h.base_offset, h.records_count));
        p += h.total_len();
    }
    out
}

#[tokio::test]
async fn appends_get_dense_offsets_and_read_back_whole_batches() {
    let f = fixture();
    let log = open(&f, small_config()).await;
    for i in 0..5u32 {
        let info = log.append(&mut batch(i, 3, T0), 0).unwrap();
        assert_eq!(info.first_offset, i64::from(i) * 3);
        assert_eq!(info.last_offset, i64::from(i) * 3 + 2);
        assert_eq!(info.record_count, 3);
    }
    assert_eq!(log.log_end_offset(), 15);
    // A read from the middle of a batch starts with the batch that holds it.
    let r = log.read(7, 1 << 20, i64::MAX, true).unwrap();
    assert_eq!(batches_of(&r.records), vec![(6, 3), (9, 3), (12, 3)]);
    // The byte limit keeps whole batches only...
    let one = batch(0, 3, T0).len();
    let r = log.read(0, one * 2 + 5, i64::MAX, true).unwrap();
    assert_eq!(batches_of(&r.records), vec![(0, 3), (3, 3)]);
    // ...but a first batch larger than the limit still comes back when asked for.
    let r = log.read(0, 10, i64::MAX, true).unwrap();
    assert_eq!(batches_of(&r.records), vec![(0, 3)]);
    assert!(log.read(0, 10, i64::MAX, false).unwrap().records.is_empty());
    // Nothing at or beyond the upper bound (the high watermark).
    let r = log.read(0, 1 << 20, 6, true).unwrap();
    assert_eq!(batches_of(&r.records), vec![(0, 3), (3, 3)]);
    assert!(log.read(6, 1 << 20, 6, true).unwrap().records.is_empty());
    // At the end: empty; beyond: out of range.
    assert!(
        log.read(15, 1 << 20, i64::MAX, true)
            .unwrap()
            .records
            .is_empty()
    );
    assert_eq!(
        log.read(16, 100, i64::MAX, true),
        Err(ReadError::OffsetOutOfRange {
            offset: 16,
            log_start: 0,
            log_end: 15
        })
    );
    // The leader epoch is stamped into each batch.
    let r = log.read(0, 1 << 20, i64::MAX, true).unwrap();
    assert_eq!(
        batch::BatchHeader::parse(&r.records)
            .unwrap()
            .partition_leader_epoch,
        0
    );
}

#[tokio::test]
async fn invalid_batches_write_nothing() {
    let f = fixture();
    let log = open(&f, small_config()).await;
    log.append(&mut batch(0, 2, T0), 0).unwrap();
    let mut set = batch(1, 2, T0);
    let mut bad = batch(2, 2, T0);
    let n = bad.len();
    bad[n - 1] ^= 1;
    set.extend_from_slice(&bad);
    assert!(matches!(
        log.append(&mut set, 0),
        Err(AppendError::InvalidBatch(_))
    ));
    let mut huge = batch(3, 200, T0);
    assert!(matches!(
        log.append(&mut huge, 0),
        Ok(_) | Err(AppendError::InvalidBatch(BatchError::TooLarge { .. }))
    ));
    let cfg = LogConfig {
        max_message_bytes: 100,
        ..small_config()
    };
    log.set_config(cfg);
    let before = log.log_end_offset();
    assert!(matches!(
        log.append(&mut batch(4, 20, T0), 0),
        Err(AppendError::InvalidBatch(BatchError::TooLarge { .. }))
    ));
    assert_eq!(log.log_end_offset(), before);
}

#[tokio::test]
async fn rolls_by_size_and_reads_across_segments() {
    let f = fixture();
    let log = open(&f, small_config()).await;
    for i in 0..40u32 {
        log.append(&mut batch(i, 2, T0), 0).unwrap();
    }
    let bases = log.segment_bases();
    assert!(bases.len() > 3, "{bases:?}");
    assert_eq!(bases[0], 0);
    for w in bases.windows(2) {
        assert!(w[1] > w[0]);
    }
    for base in &bases {
        assert!(
            f.disk
                .exists(&Path::new(DIR).join(segment::file_name(*base, "log")))
        );
        assert!(
            f.disk
                .exists(&Path::new(DIR).join(segment::file_name(*base, "index")))
        );
        assert!(
            f.disk
                .exists(&Path::new(DIR).join(segment::file_name(*base, "timeindex")))
        );
    }
    // Every offset reads back, from whichever segment holds it.
    for off in 0..80 {
        let r = log.read(off, 1, i64::MAX, true).unwrap();
        let (base, n) = batches_of(&r.records)[0];
        assert!(
            base <= off && off < base + i64::from(n),
            "offset {off} in batch {base}+{n}"
        );
    }
    // No segment exceeds segment.bytes.
    let st = log.lock();
    for seg in st.segments.values() {
        assert!(seg.size() <= 1000);
    }
}

#[tokio::test]
async fn rolls_by_time_and_when_the_index_is_full() {
    let f = fixture();
    let cfg = LogConfig {
        segment_ms: 60_000,
        ..LogConfig::default()
    };
    let log = open(&f, cfg).await;
    log.append(&mut batch(0, 1, T0), 0).unwrap();
    log.append(&mut batch(1, 1, T0 + 30_000), 0).unwrap();
    assert_eq!(log.segment_bases(), vec![0]);
    // segment.ms counts from the first batch's timestamp to the incoming one, as in Kafka.
    log.append(&mut batch(2, 1, T0 + 60_001), 0).unwrap();
    assert_eq!(log.segment_bases(), vec![0, 2]);

    let f = fixture();
    let cfg = LogConfig {
        index_interval_bytes: 1,
        segment_index_bytes: 3 * 8,
        ..LogConfig::default()
    };
    let log = open(&f, cfg).await;
    for i in 0..10u32 {
        log.append(&mut batch(i, 1, T0), 0).unwrap();
    }
    // An entry per batch after the first; three fit, so a segment holds four batches.
    assert_eq!(log.segment_bases(), vec![0, 4, 8]);
}

#[tokio::test]
async fn retention_by_size_and_time_never_touches_the_active_segment() {
    let f = fixture();
    let cfg = LogConfig {
        retention_bytes: 2500,
        ..small_config()
    };
    let log = open(&f, cfg).await;
    for i in 0..60u32 {
        log.append(&mut batch(i, 2, T0), 0).unwrap();
    }
    let before = log.segment_bases();
    let deleted = log.delete_expired_segments().await.unwrap();
    assert!(deleted > 0);
    let after = log.segment_bases();
    assert_eq!(after.len(), before.len() - deleted);
    assert!(log.size_bytes() <= 2500 + 1000);
    assert_eq!(log.log_start_offset(), after[0]);
    assert!(
        !f.disk
            .exists(&Path::new(DIR).join(segment::file_name(before[0], "log")))
    );
    assert!(matches!(
        log.read(0, 10, i64::MAX, true),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
    assert!(log.read(after[0], 10, i64::MAX, true).is_ok());
    // The new log start survives a restart, even a power loss.
    log.sync_all(false).await.unwrap();
    f.disk.crash(None, 0);
    let log = open(&f, small_config()).await;
    assert_eq!(log.log_start_offset(), after[0]);

    // By time: segments whose newest record is older than retention.ms go, the active stays.
    let f = fixture();
    let cfg = LogConfig {
        retention_ms: 1000,
        ..small_config()
    };
    let log = open(&f, cfg).await;
    for i in 0..30u32 {
        log.append(&mut batch(i, 2, T0), 0).unwrap();
    }
    assert_eq!(log.delete_expired_segments().await.unwrap(), 0);
    f.clock.advance(1001);
    let n = log.segment_bases().len();
    assert_eq!(log.delete_expired_segments().await.unwrap(), n - 1);
    assert_eq!(log.segment_bases().len(), 1);
    assert_eq!(log.log_start_offset(), log.segment_bases()[0]);
    assert_eq!(log.log_end_offset(), 60);
}

#[tokio::test]
async fn flush_messages_and_durability() {
    let f = fixture();
    let cfg = LogConfig {
        flush_messages: 5,
        write_caching: true,
        ..LogConfig::default()
    };
    let log = open(&f, cfg).await;
    let a = log.append(&mut batch(0, 2, T0), 0).unwrap();
    assert!(!a.flush_due);
    assert!(
        !log.must_sync(&a, true),
        "write caching answers acks=all without a sync"
    );
    // Write caching: consumers see the log end at once.
    assert_eq!(log.visible_end_offset(), 2);
    let b = log.append(&mut batch(1, 3, T0), 0).unwrap();
    assert!(b.flush_due && log.must_sync(&b, false));
    log.sync_to(b.last_offset + 1).await.unwrap();
    assert_eq!(log.durable_offset(), 5);
    let c = log.append(&mut batch(2, 1, T0), 0).unwrap();
    assert!(!c.flush_due, "the count restarts after a sync");

    // Without write caching, acks=all waits for a sync and consumers see only synced data.
    let f = fixture();
    let log = open(&f, LogConfig::default()).await;
    let a = log.append(&mut batch(0, 2, T0), 0).unwrap();
    assert!(log.must_sync(&a, true));
    assert!(!log.must_sync(&a, false));
    assert_eq!(log.visible_end_offset(), 0);
    log.sync_to(2).await.unwrap();
    assert_eq!(log.visible_end_offset(), 2);
    // And a power loss now loses nothing.
    f.disk.crash(Some(7), 3);
    let log = open(&f, LogConfig::default()).await;
    assert_eq!(log.log_end_offset(), 2);
}

#[tokio::test]
async fn the_log_keeps_one_queued_sync_for_its_owner_and_spawns_none() {
    let f = fixture();
    let log = open(&f, LogConfig::default()).await;
    log.append(&mut batch(0, 2, T0), 0).unwrap();
    log.append(&mut batch(1, 2, T0), 0).unwrap();
    // Nothing syncs unless asked: storage decides no policy and runs no task.
    tokio::task::yield_now().await;
    assert_eq!(log.durable_offset(), 0);
    assert!(log.queue_sync(), "the first ask queues the sync");
    assert!(
        !log.queue_sync(),
        "one queued sync serves every ask until it starts"
    );
    let target = log.start_queued_sync();
    assert_eq!(target, 4);
    assert!(
        log.queue_sync(),
        "appends after the start queue the next one"
    );
    log.sync_to(target).await.unwrap();
    assert_eq!(log.visible_end_offset(), 4);
}

#[tokio::test]
async fn unsynced_appends_are_synced_in_the_background_when_the_broker_asks() {
    let f = fixture();
    let log = open(&f, LogConfig::default()).await;
    log.append(&mut batch(0, 2, T0), 0).unwrap();
    crate::broker::sync_soon(&log);
    log.append(&mut batch(1, 2, T0), 0).unwrap();
    crate::broker::sync_soon(&log);
    let mut rx = log.subscribe();
    while rx.borrow_and_update().durable_end < 4 {
        rx.changed().await.unwrap();
    }
    assert_eq!(log.visible_end_offset(), 4);
}

#[test]
fn concurrent_durable_appends_share_syncs() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let f = fixture();
        let cfg = LogConfig {
            write_caching: true,
            ..LogConfig::default()
        };
        let log = open(&f, cfg).await;
        let before = f.disk.sync_count();
        let mut tasks = Vec::new();
        for i in 0..50u32 {
            let info = log.append(&mut batch(i, 1, T0), 0).unwrap();
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                log.sync_to(info.last_offset + 1).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let syncs = f.disk.sync_count() - before;
        assert_eq!(log.durable_offset(), 50);
        assert!(syncs <= 3, "50 waiting appends took {syncs} syncs");
    });
}

#[tokio::test]
async fn finds_offsets_by_timestamp() {
    let f = fixture();
    let log = open(&f, small_config()).await;
    for i in 0..30u32 {
        log.append(&mut batch(i, 2, T0 + i64::from(i) * 10), 0)
            .unwrap();
    }
    // Batch i holds offsets 2i, 2i+1 with timestamp T0 + 10i.
    assert_eq!(
        log.offset_for_timestamp(0, i64::MAX).unwrap(),
        Some((0, T0))
    );
    assert_eq!(
        log.offset_for_timestamp(T0 + 55, i64::MAX).unwrap(),
        Some((12, T0 + 60))
    );
    assert_eq!(
        log.offset_for_timestamp(T0 + 60, i64::MAX).unwrap(),
        Some((12, T0 + 60))
    );
    assert_eq!(
        log.offset_for_timestamp(T0 + 290, i64::MAX).unwrap(),
        Some((58, T0 + 290))
    );
    assert_eq!(log.offset_for_timestamp(T0 + 291, i64::MAX).unwrap(), None);
    assert_eq!(log.offset_for_timestamp(T0 + 290, 58).unwrap(), None);
    // Still right after a restart, from the reloaded time index.
    log.close().await.unwrap();
    let log = open(&f, small_config()).await;
    assert_eq!(
        log.offset_for_timestamp(T0 + 155, i64::MAX).unwrap(),
        Some((32, T0 + 160))
    );
}

/// Reopens the log after damaging the files as `damage` says, and checks it holds exactly
/// the offsets `expect_end` says, all readable.
async fn reopen_after(f: &Fixture, expect_end: i64) -> Arc<PartitionLog> {
    let log = open(f, small_config()).await;
    assert_eq!(log.log_end_offset(), expect_end);
    for off in 0..expect_end {
        assert!(log.read(off, 1, i64::MAX, true).is_ok(), "offset {off}");
    }
    log
}

async fn filled(f: &Fixture, batches: u32) -> Arc<PartitionLog> {
    let log = open(f, small_config()).await;
    for i in 0..batches {
        log.append(&mut batch(i, 2, T0), 0).unwrap();
    }
    log
}

#[tokio::test]
async fn a_clean_restart_keeps_everything() {
    let f = fixture();
    let log = filled(&f, 30).await;
    log.close().await.unwrap();
    let log = reopen_after(&f, 60).await;
    assert!(matches!(
        log.append(&mut batch(99, 1, T0), 0),
        Ok(AppendInfo {
            first_offset: 60,
            ..
        })
    ));
}

#[tokio::test]
async fn recovery_cuts_a_torn_or_damaged_tail() {
    let f = fixture();
    let log = filled(&f, 30).await;
    log.sync_all(false).await.unwrap();
    let active = *log.segment_bases().last().unwrap();
    let end = log.log_end_offset();
    drop(log);
    let path = Path::new(DIR).join(segment::file_name(active, "log"));
    let mut bytes = f.disk.read_file(&path).unwrap();
    // Append half a batch: a torn write.
    let extra = batch(77, 2, T0);
    bytes.extend_from_slice(&extra[..extra.len() / 2]);
    f.disk.write_file_durable(&path, &bytes);
    reopen_after(&f, end).await;
    assert_eq!(
        f.disk.read_file(&path).unwrap().len(),
        bytes.len() - extra.len() / 2
    );

    // Junk (zeros from an extended file) after the last batch.
    let mut bytes = f.disk.read_file(&path).unwrap();
    bytes.extend_from_slice(&[0u8; 300]);
    f.disk.write_file_durable(&path, &bytes);
    reopen_after(&f, end).await;
}

#[tokio::test]
async fn a_crc_mismatch_cuts_the_log_and_later_segments_go() {
    let f = fixture();
    let log = filled(&f, 30).await;
    log.sync_all(false).await.unwrap();
    let bases = log.segment_bases();
    drop(log);
    // No checkpoint: recovery checks everything.
    f.disk
        .write_file_durable(&Path::new(DIR).join(checkpoint::FILE_NAME), b"");
    let second = bases[1];
    let path = Path::new(DIR).join(segment::file_name(second, "log"));
    let mut bytes = f.disk.read_file(&path).unwrap();
    let h = batch::BatchHeader::parse(&bytes).unwrap();
    let second_batch = h.total_len();
    bytes[second_batch + 70] ^= 0x55; // inside the second batch's records
    f.disk.write_file_durable(&path, &bytes);
    let log = reopen_after(&f, second + i64::from(h.records_count)).await;
    assert_eq!(log.segment_bases(), vec![0, second]);
    assert!(
        !f.disk
            .exists(&Path::new(DIR).join(segment::file_name(bases[2], "log")))
    );
}

#[tokio::test]
async fn damaged_or_missing_indexes_are_rebuilt_and_never_cost_data() {
    let f = fixture();
    let log = filled(&f, 30).await;
    log.close().await.unwrap();
    let bases = log.segment_bases();
    let dir = Path::new(DIR);
    // A torn index, an index that lies about a position, a missing time index.
    f.disk
        .write_file_durable(&dir.join(segment::file_name(bases[0], "index")), &[1, 2, 3]);
    let lying: Vec<u8> = [0u32.to_be_bytes(), 7u32.to_be_bytes()].concat();
    f.disk
        .write_file_durable(&dir.join(segment::file_name(bases[1], "index")), &lying);
    let last = *bases.last().unwrap();
    let lying_last: Vec<u8> = [1u32.to_be_bytes(), 3u32.to_be_bytes()].concat();
    f.disk
        .write_file_durable(&dir.join(segment::file_name(last, "index")), &lying_last);
    drop(log);
    let disk: &dyn Disk = &f.disk;
    disk.remove_file(&dir.join(segment::file_name(bases[2], "timeindex")))
        .unwrap();
    let log = reopen_after(&f, 60).await;
    assert_eq!(log.segment_bases(), bases);
    // Lookups by time still work in the segment whose time index was missing.
    assert!(log.offset_for_timestamp(T0, i64::MAX).unwrap().is_some());
}

#[tokio::test]
async fn leftovers_and_orphans_are_removed() {
    let f = fixture();
    let log = filled(&f, 3).await;
    log.close().await.unwrap();
    let dir = Path::new(DIR);
    f.disk
        .write_file_durable(&dir.join("partition.checkpoint.tmp"), b"half");
    f.disk
        .write_file_durable(&dir.join(segment::file_name(500, "index")), b"");
    f.disk
        .write_file_durable(&dir.join("00000000000000000000.log.deleted"), b"x");
    reopen_after(&f, 6).await;
    assert!(!f.disk.exists(&dir.join("partition.checkpoint.tmp")));
    assert!(!f.disk.exists(&dir.join(segment::file_name(500, "index"))));
    assert!(!f.disk.exists(&dir.join("00000000000000000000.log.deleted")));
}

#[tokio::test]
async fn power_loss_keeps_everything_synced() {
    for seed in 0..20 {
        let f = fixture();
        let log = filled(&f, 10).await;
        log.sync_all(false).await.unwrap();
        let synced = log.log_end_offset();
        for i in 0..10u32 {
            log.append(&mut batch(100 + i, 2, T0), 0).unwrap();
        }
        drop(log);
        f.disk.crash(Some(64), seed);
        let log = open(&f, small_config()).await;
        let end = log.log_end_offset();
        assert!(
            end >= synced && end <= synced + 20,
            "seed {seed}: end {end}"
        );
        for off in 0..end {
            log.read(off, 1, i64::MAX, true).unwrap();
        }
        // And the log takes new appends at its end.
        assert_eq!(
            log.append(&mut batch(1, 1, T0), 0).unwrap().first_offset,
            end
        );
    }
}

#[tokio::test]
async fn a_checkpoint_recovery_point_past_the_end_is_survivable() {
    let f = fixture();
    let log = filled(&f, 5).await;
    log.close().await.unwrap();
    let c = LogCheckpoint {
        recovery_point: 1000,
        log_start_offset: 0,
        high_watermark: None,
    };
    checkpoint::write(&f.disk, Path::new(DIR), &c)
        .await
        .unwrap();
    reopen_after(&f, 10).await;
}

/// The high watermark replication set is kept in the partition's checkpoint: a replica that
/// restarts (or loses power after the checkpoint) knows it at once, within what it holds; a
/// log replication never managed opens without one, and keeps its own visible end.
#[tokio::test]
async fn the_high_watermark_survives_a_restart_in_the_checkpoint() {
    let f = fixture();
    let log = filled(&f, 5).await;
    log.sync_to(log.log_end_offset()).await.unwrap();
    log.set_high_watermark(6);
    log.checkpoint().await.unwrap();
    f.disk.crash(None, 1);
    let log = reopen_after(&f, 10).await;
    assert_eq!(log.high_watermark(), Some(6));
    assert_eq!(log.visible_end_offset(), 6);

    // A checkpoint past what a power loss left is clamped to the log.
    log.set_high_watermark(10);
    log.checkpoint().await.unwrap();
    log.truncate_to(8).await.unwrap();
    drop(log);
    f.disk.crash(None, 1);
    let log = open(&f, small_config()).await;
    assert!(
        log.high_watermark()
            .is_some_and(|h| h <= log.log_end_offset())
    );

    let g = fixture();
    let plain = filled(&g, 3).await;
    plain.close().await.unwrap();
    let plain = open(&g, small_config()).await;
    assert_eq!(plain.high_watermark(), None);
    assert_eq!(plain.visible_end_offset(), plain.log_end_offset());
}
