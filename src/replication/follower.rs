//! A follower's and a leader's shared arithmetic of divergence (KIP-101, KIP-279): where a
//! follower's fetch position parts from the leader's log, and where the follower cuts its own
//! log when told. Pure functions over the two logs' epoch caches; the broker's fetcher and
//! Fetch handler call them.

/// The leader's side (Kafka's `validateOffsetAndEpoch`): given its answer to
/// `end_offset_for_epoch(last_fetched_epoch)`, its latest epoch and its log end, the diverging
/// epoch to answer a follower fetching at `fetch_offset`, or `None` if the follower's log is a
/// prefix of the leader's there.
///
/// An epoch the leader's cache does not reach (the follower led a newer epoch in which the
/// new leader has written nothing yet) ends at the leader's log end, as it would had the
/// leader recorded its own epoch's start on election, as Kafka does.
pub fn diverging(
    last_fetched_epoch: i32,
    fetch_offset: i64,
    leader_end_for_epoch: (i32, i64),
    leader_latest_epoch: Option<i32>,
    leader_log_end: i64,
) -> Option<(i32, i64)> {
    if last_fetched_epoch < 0 {
        // An empty follower (or an old client protocol): nothing to check.
        return None;
    }
    let (epoch, end) = match leader_end_for_epoch {
        (e, o) if e >= 0 && o >= 0 => (e, o),
        _ => (leader_latest_epoch.unwrap_or(-1), leader_log_end),
    };
    (epoch != last_fetched_epoch || fetch_offset > end).then_some((epoch, end))
}

/// The follower's side (Kafka's `getOffsetTruncationState`): where to cut its log, told the
/// leader's diverging `(epoch, end_offset)`, given its own `end_offset_for_epoch(epoch)` and
/// log end. If the follower has that epoch, it cuts at the lesser end; if not, at the end of
/// its own largest epoch below it, and the next fetch asks again (several rounds after fast
/// failovers, KAFKA-6361). Never at the high watermark alone.
pub fn truncation_point(
    diverging: (i32, i64),
    local_end_for_epoch: (i32, i64),
    log_end: i64,
) -> i64 {
    let (d_epoch, d_end) = diverging;
    let (l_epoch, l_end) = local_end_for_epoch;
    let point = if d_epoch < 0 || l_epoch < 0 || l_end < 0 {
        // The leader has no epochs, or the follower none at most `d_epoch`: the leader's end
        // bounds what can be shared.
        d_end
    } else if l_epoch == d_epoch {
        l_end.min(d_end)
    } else {
        l_end
    };
    point.min(log_end).max(0)
}

/// The tag of a follower's synced end in a Fetch request's partition (flexible versions,
/// v12 and later), runnel's own tagged field: a Kafka broker skips it as an unknown tag.
/// A follower under the durable default sends its next fetch while it syncs what the last one
/// brought, so its fetch offset is its log end, not its synced end; this field tells the
/// leader what is synced, and the leader's high watermark counts that. A fetch without it
/// (write caching, an older version, another implementation) is counted at its fetch offset.
pub const SYNCED_END_TAG: i32 = 0x7275;

/// The field's bytes: the synced end, a big-endian i64.
pub fn encode_synced_end(synced_end: i64) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(&synced_end.to_be_bytes())
}

/// The synced end a fetch carries: `Ok(None)` without the field, an error for a field that is
/// not one non-negative i64.
pub fn decode_synced_end(
    tags: &std::collections::BTreeMap<i32, bytes::Bytes>,
) -> Result<Option<i64>, String> {
    let Some(b) = tags.get(&SYNCED_END_TAG) else {
        return Ok(None);
    };
    let raw: [u8; 8] = b[..]
        .try_into()
        .map_err(|_| format!("synced-end tag of {} bytes, not 8", b.len()))?;
    let v = i64::from_be_bytes(raw);
    if v < 0 {
        return Err(format!("negative synced end {v}"));
    }
    Ok(Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_synced_end_tag_round_trips_and_refuses_malformed_bytes() {
        let mut tags = std::collections::BTreeMap::new();
        assert_eq!(decode_synced_end(&tags), Ok(None));
        tags.insert(SYNCED_END_TAG, encode_synced_end(4096));
        assert_eq!(decode_synced_end(&tags), Ok(Some(4096)));
        tags.insert(SYNCED_END_TAG, bytes::Bytes::from_static(&[0, 1, 2]));
        assert!(decode_synced_end(&tags).is_err());
        tags.insert(SYNCED_END_TAG, encode_synced_end(-1));
        assert!(decode_synced_end(&tags).is_err());
    }
    use crate::log::leader_epoch::{EpochEntry, LeaderEpochCache};

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let e: Vec<EpochEntry> = entries
            .iter()
            .map(|(epoch, start_offset)| EpochEntry {
                epoch: *epoch,
                start_offset: *start_offset,
            })
            .collect();
        LeaderEpochCache::from_entries(&e)
    }

    /// Runs fetch rounds of a follower against a leader until it is a prefix; returns where
    /// the follower's log ends.
    fn reconcile(leader: &[(i32, i64)], leader_end: i64, follower: &[(i32, i64)], end: i64) -> i64 {
        let l = cache(leader);
        let mut f = cache(follower);
        let mut end = end;
        for _ in 0..10 {
            let last = f.latest_epoch().unwrap_or(-1);
            let Some(d) = diverging(
                last,
                end,
                l.end_offset_for(last, leader_end),
                l.latest_epoch(),
                leader_end,
            ) else {
                return end;
            };
            end = truncation_point(d, f.end_offset_for(d.0, end), end);
            f.truncate_from_end(end);
        }
        panic!("no agreement after 10 rounds");
    }

    #[test]
    fn a_follower_with_a_tail_from_an_unreplicated_epoch_cuts_it() {
        // The follower led epoch 2 and wrote 10..13 alone; the leader leads epoch 3 from 10.
        assert_eq!(
            reconcile(&[(1, 0), (3, 10)], 15, &[(1, 0), (2, 10)], 13),
            10
        );
        // Same, but the new leader has written nothing in epoch 3 yet.
        assert_eq!(reconcile(&[(1, 0)], 10, &[(1, 0), (2, 10)], 13), 10);
    }

    #[test]
    fn back_to_back_failovers_take_several_rounds() {
        // KAFKA-6361: leader epochs 1, 3, 5; the follower has 1, 2, 4 (each a short reign).
        let leader = [(1, 0), (3, 20), (5, 30)];
        let follower = [(1, 0), (2, 18), (4, 25)];
        assert_eq!(reconcile(&leader, 40, &follower, 28), 18);
    }

    #[test]
    fn a_prefix_is_left_alone_and_a_longer_log_is_cut_to_the_leader() {
        assert_eq!(
            reconcile(&[(1, 0), (2, 10)], 20, &[(1, 0), (2, 10)], 15),
            15
        );
        assert_eq!(reconcile(&[(1, 0)], 20, &[(1, 0)], 25), 20);
        assert_eq!(reconcile(&[(1, 0)], 20, &[], 0), 0);
    }

    #[test]
    fn the_cut_is_never_below_what_the_logs_share() {
        // Shared up to 10 in epoch 1; the follower's epoch 2 is not the leader's.
        assert_eq!(
            reconcile(&[(1, 0), (3, 12)], 30, &[(1, 0), (2, 10)], 11),
            10
        );
        assert_eq!(
            reconcile(&[(1, 0), (2, 10), (3, 12)], 30, &[(1, 0), (2, 10)], 11),
            11
        );
    }
}
