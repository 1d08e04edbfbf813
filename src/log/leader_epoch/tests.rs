//! Unit tests of the leader epoch cache: Kafka's documented cases (from its
//! `LeaderEpochFileCacheTest`, rewritten here), the file format and damaged files.

use super::*;
use crate::env::MemDisk;
use crate::env::disk::create_dir_durable;

fn e(epoch: i32, start_offset: i64) -> EpochEntry {
    EpochEntry {
        epoch,
        start_offset,
    }
}

fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
    let mut c = LeaderEpochCache::default();
    for (epoch, start) in entries {
        c.assign(*epoch, *start);
    }
    c
}

const UNDEFINED: (i32, i64) = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);

#[test]
fn an_assigned_epoch_answers_with_the_log_end() {
    let c = cache(&[(2, 10)]);
    assert_eq!(c.latest_epoch(), Some(2));
    assert_eq!(c.entries(), &[e(2, 10)]);
    assert_eq!(c.end_offset_for(2, 11), (2, 11));
}

#[test]
fn an_epoch_keeps_its_first_start_offset() {
    // Later offsets of the same epoch change nothing.
    let c = cache(&[(2, 9), (2, 10)]);
    assert_eq!(c.entries(), &[e(2, 9)]);
    let c = cache(&[(2, 6), (2, 7)]);
    assert_eq!(c.entries(), &[e(2, 6)]);
    // An earlier start for the latest epoch replaces it.
    let mut c = cache(&[(5, 11), (6, 12), (7, 13)]);
    assert!(c.assign(7, 12));
    assert_eq!(c.entries(), &[e(5, 11), e(7, 12)]);
    assert_eq!(c.end_offset_for(5, 0), (5, 12));
    assert_eq!(c.end_offset_for(6, 0), (5, 12));
}

#[test]
fn assign_removes_entries_that_break_monotonicity() {
    // A newer epoch at the same start replaces the older one (it wrote nothing).
    assert_eq!(cache(&[(2, 9), (3, 9)]).entries(), &[e(3, 9)]);
    // A newer epoch at a lower offset removes the entries at or above that offset.
    assert_eq!(cache(&[(2, 6), (3, 5)]).entries(), &[e(3, 5)]);
    // An older epoch removes the newer ones (Kafka's rule: the cache follows what it is told).
    let c = cache(&[(1, 5), (2, 6), (1, 7)]);
    assert_eq!(c.entries(), &[e(1, 7)]);
    assert_eq!(c.latest_epoch(), Some(1));
    assert_eq!(c.end_offset_for(1, 8), (1, 8));
    assert_eq!(c.end_offset_for(2, 8), UNDEFINED);
    // Nothing is removed when nothing conflicts.
    let mut c = cache(&[(0, 0), (2, 5)]);
    assert!(!c.assign(2, 9));
    assert!(c.assign(3, 9));
    assert_eq!(c.entries(), &[e(0, 0), e(2, 5), e(3, 9)]);
}

#[test]
fn end_offset_for_undefined_and_unknown_epochs() {
    assert_eq!(
        cache(&[(2, 11), (3, 12)]).end_offset_for(UNDEFINED_EPOCH, 0),
        UNDEFINED
    );
    // An empty cache knows nothing.
    assert_eq!(LeaderEpochCache::default().end_offset_for(0, 0), UNDEFINED);
    assert_eq!(
        LeaderEpochCache::default().end_offset_for(UNDEFINED_EPOCH, 73),
        UNDEFINED
    );
    // An epoch above the latest.
    assert_eq!(cache(&[(2, 100)]).end_offset_for(3, 100), UNDEFINED);
}

#[test]
fn end_offset_for_an_epoch_below_the_first_is_the_first_start() {
    let c = cache(&[(5, 11), (6, 12), (7, 13)]);
    assert_eq!(c.end_offset_for(4, 0), (4, 11));
}

#[test]
fn end_offset_for_an_epoch_is_the_next_epoch_start() {
    let c = cache(&[(1, 11), (1, 12), (2, 13), (2, 14), (3, 15), (3, 16)]);
    assert_eq!(c.end_offset_for(2, 17), (2, 15));
    assert_eq!(c.end_offset_for(3, 17), (3, 17));
    // An epoch missing between two present ones: the floor's epoch, the next one's start.
    let c = cache(&[(0, 10), (2, 13), (4, 17)]);
    assert_eq!(c.end_offset_for(1, 0), (0, 13));
    assert_eq!(c.end_offset_for(2, 0), (2, 17));
    assert_eq!(c.end_offset_for(3, 0), (2, 17));
}

#[test]
fn epochs_tracked_as_leaders_change_many_times() {
    let mut c = cache(&[(0, 0), (1, 0)]);
    assert_eq!(c.latest_epoch(), Some(1));
    assert_eq!(c.entries(), &[e(1, 0)]);
    assert_eq!(c.end_offset_for(1, 0), (1, 0));
    assert_eq!(c.end_offset_for(0, 0), (0, 0));
    assert_eq!(c.end_offset_for(1, 5), (1, 5));
    c.assign(2, 5);
    assert_eq!(c.end_offset_for(2, 10), (2, 10));
    assert_eq!(c.end_offset_for(1, 10), (1, 5));
    assert_eq!(c.end_offset_for(0, 10), (0, 0));
}

#[test]
fn epochs_tracked_as_a_follower_receives_batches() {
    let mut c = LeaderEpochCache::default();
    for (epoch, offset) in [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 3),
        (1, 4),
        (1, 5),
        (2, 6),
        (2, 7),
    ] {
        c.assign(epoch, offset);
    }
    assert_eq!(c.entries(), &[e(0, 0), e(1, 3), e(2, 6)]);
    assert_eq!(c.end_offset_for(2, 8), (2, 8));
    assert_eq!(c.end_offset_for(0, 8), (0, 3));
    assert_eq!(c.end_offset_for(1, 8), (1, 6));
    assert_eq!(c.epoch_for_offset(5), Some(1));
    assert_eq!(c.epoch_for_offset(6), Some(2));
    assert_eq!(c.epoch_for_offset(100), Some(2));
    assert_eq!(cache(&[(1, 3)]).epoch_for_offset(2), None);
}

#[test]
fn truncate_from_end_drops_entries_at_or_after_the_offset() {
    let mut c = cache(&[(2, 6), (3, 8), (4, 11)]);
    assert!(c.truncate_from_end(8));
    assert_eq!(c.entries(), &[e(2, 6)]);
    let mut c = cache(&[(2, 6), (3, 8), (4, 11)]);
    assert!(c.truncate_from_end(9));
    assert_eq!(c.latest_epoch(), Some(3));
    assert_eq!(c.entries(), &[e(2, 6), e(3, 8)]);
    // Undefined, or past the last start: nothing changes.
    assert!(!c.truncate_from_end(UNDEFINED_EPOCH_OFFSET));
    assert!(!c.truncate_from_end(9));
    assert_eq!(c.entries().len(), 2);
    assert!(c.truncate_from_end(0));
    assert!(c.is_empty());
}

#[test]
fn truncate_from_start_moves_the_newest_entry_below_to_the_start() {
    let base = [(2, 6), (3, 8), (4, 11)];
    let cut = |at: i64| {
        let mut c = cache(&base);
        let changed = c.truncate_from_start(at);
        (changed, c.entries().to_vec())
    };
    assert_eq!(cut(8), (true, vec![e(3, 8), e(4, 11)]));
    assert_eq!(cut(9), (true, vec![e(3, 9), e(4, 11)]));
    assert_eq!(cut(1), (false, vec![e(2, 6), e(3, 8), e(4, 11)]));
    assert_eq!(cut(6), (false, vec![e(2, 6), e(3, 8), e(4, 11)]));
    assert_eq!(cut(11), (true, vec![e(4, 11)]));
    assert_eq!(cut(15), (true, vec![e(4, 15)]));
    assert_eq!(cut(UNDEFINED_EPOCH_OFFSET).1.len(), 3);
    let mut c = cache(&[(0, 0), (1, 7), (2, 10)]);
    assert!(c.truncate_from_start(5));
    assert_eq!(c.entries(), &[e(0, 5), e(1, 7), e(2, 10)]);
}

#[test]
#[should_panic(expected = "invalid leader epoch entry")]
fn negative_epochs_are_a_caller_bug() {
    LeaderEpochCache::default().assign(-1, 0);
}

#[test]
fn the_file_is_kafkas_text_format() {
    let entries = [e(0, 1), e(1, 2)];
    assert_eq!(encode(&entries), b"0\n2\n0 1\n1 2\n");
    assert_eq!(decode(&encode(&entries)).unwrap(), entries);
    assert_eq!(encode(&[]), b"0\n0\n");
    assert_eq!(decode(b"0\n0\n").unwrap(), vec![]);
    // As Kafka reads it: empty, version only, CRLF, several spaces.
    assert_eq!(decode(b"").unwrap(), vec![]);
    assert_eq!(decode(b"0\n").unwrap(), vec![]);
    assert_eq!(decode(b"0\r\n1\r\n3   40\r\n").unwrap(), vec![e(3, 40)]);
}

#[test]
fn damaged_files_are_errors_never_panics() {
    let bad: &[&[u8]] = &[
        b"1\n0\n",
        b"x\n0\n",
        b"0\nx\n",
        b"0\n-1\n",
        b"0\n2\n0 1\n",
        b"0\n1\n0 1\n1 2\n",
        b"0\n1\n0\n",
        b"0\n1\n0 1 2\n",
        b"0\n1\n0 x\n",
        b"0\n1\n99999999999 1\n",
        b"0\n1\n-1 5\n",
        b"0\n1\n1 -5\n",
        b"0\n2\n1 5\n1 6\n",
        b"0\n2\n1 5\n2 5\n",
        b"0\n2\n2 5\n1 6\n",
        b"\xff\xfe\n",
        b"0\n18446744073709551616\n",
    ];
    for b in bad {
        assert!(
            matches!(decode(b), Err(EpochFileError::Damaged(_))),
            "{:?} was accepted",
            String::from_utf8_lossy(b)
        );
    }
    assert!(matches!(
        decode(&vec![b'0'; FILE_BYTES_MAX + 1]),
        Err(EpochFileError::Damaged(_))
    ));
}

#[tokio::test]
async fn write_then_read_survives_a_power_loss() {
    let disk = MemDisk::new();
    let dir = Path::new("/p");
    create_dir_durable(&disk, dir).await.unwrap();
    assert!(read(&disk, dir).unwrap().is_none());
    let entries = [e(0, 0), e(4, 100)];
    let bytes = write(&disk, dir, &entries).await.unwrap();
    assert_eq!(bytes, encode(&entries));
    disk.crash(Some(1), 3);
    assert_eq!(read(&disk, dir).unwrap(), Some(entries.to_vec()));
    disk.write_file_durable(&dir.join(FILE_NAME), b"garbage!\x00garbage!");
    assert!(matches!(read(&disk, dir), Err(EpochFileError::Damaged(_))));
}

mod model {
    //! The cache against a plain list of (epoch, offset) per batch.
    use super::*;
    use proptest::prelude::*;

    /// The epoch of every batch, by offset; the cache must describe it exactly.
    fn expected(batches: &[(i64, i32)]) -> Vec<EpochEntry> {
        let mut out: Vec<EpochEntry> = Vec::new();
        for (offset, epoch) in batches {
            // Retention up to the log end leaves the last epoch starting at the end, where
            // the next batch replaces it.
            if out.last().is_some_and(|l| l.start_offset == *offset) {
                out.pop();
            }
            if out.last().is_none_or(|l| l.epoch != *epoch) {
                out.push(e(*epoch, *offset));
            }
        }
        out
    }

    proptest! {
        /// Appends with non-decreasing epochs, truncations and retention: the cache equals what
        /// the surviving batches say, and `end_offset_for` matches a direct search.
        #[test]
        fn the_cache_describes_the_batches(ops in prop::collection::vec((0u8..4, 0u8..3, 0u8..50), 1..60)) {
            let mut c = LeaderEpochCache::default();
            let mut batches: Vec<(i64, i32)> = Vec::new();
            let (mut start, mut end, mut epoch) = (0i64, 0i64, 0i32);
            for (kind, bump, n) in ops {
                match kind {
                    0 | 1 => {
                        epoch += i32::from(bump);
                        batches.push((end, epoch));
                        c.assign(epoch, end);
                        end += i64::from(n % 5) + 1;
                    }
                    2 => {
                        let to = start + i64::from(n) % (end - start + 1);
                        // Truncation cuts at a batch boundary.
                        let to = batches.iter().map(|b| b.0).find(|b| *b >= to).unwrap_or(end);
                        batches.retain(|b| b.0 < to);
                        c.truncate_from_end(to);
                        end = to;
                        epoch = batches.last().map_or(epoch, |b| b.1);
                    }
                    _ => {
                        let to = start + i64::from(n) % (end - start + 1);
                        let to = batches.iter().map(|b| b.0).find(|b| *b >= to).unwrap_or(end);
                        // The batch holding the new start keeps its epoch, now starting there.
                        let below: Vec<(i64, i32)> = batches.iter().copied().filter(|b| b.0 <= to).collect();
                        batches.retain(|b| b.0 > to);
                        if let Some(last) = below.last() {
                            batches.insert(0, (to, last.1));
                        }
                        c.truncate_from_start(to);
                        start = to;
                    }
                }
                prop_assert_eq!(c.entries(), &expected(&batches)[..]);
                for req in -1..=epoch + 1 {
                    let want = if req < 0 {
                        UNDEFINED
                    } else {
                        let es = expected(&batches);
                        match es.iter().position(|x| x.epoch > req) {
                            _ if es.last().map(|l| l.epoch) == Some(req) => (req, end),
                            None => UNDEFINED,
                            Some(0) => (req, es[0].start_offset),
                            Some(i) => (es[i - 1].epoch, es[i].start_offset),
                        }
                    };
                    prop_assert_eq!(c.end_offset_for(req, end), want, "epoch {}", req);
                }
                prop_assert_eq!(decode(&encode(c.entries())).unwrap(), c.entries().to_vec());
            }
        }
    }
}
