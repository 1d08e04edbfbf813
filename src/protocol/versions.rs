//! The APIs and version ranges runnel implements, and so advertises in ApiVersions.
//!
//! Ranges are chosen for the clients in use: old librdkafka (Debian's kcat links 2.0.2) turns
//! record batches on only if Produce v3 and Fetch v4 are inside the ranges, so the minimums
//! stay low; maximums stop where the next version needs something runnel does not do yet
//! (Fetch v13 and Produce v13 address topics by id).

use kafka_protocol::messages::ApiKey;

/// `(api, min version, max version)` for every API runnel answers.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 8),
    // KIP-320: consumers check their position after a leader change (v2 adds the current
    // leader epoch, v3 the replica id, v4 is flexible).
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::InitProducerId, 0, 4),
    // Groups. v0 of JoinGroup, SyncGroup, Heartbeat and LeaveGroup stays: librdkafka 2.0.2
    // (Debian's kcat) turns groups off without it. FindCoordinator v6 is for share groups and
    // OffsetCommit/OffsetFetch v9 for KIP-848 member epochs, which runnel does not have yet.
    (ApiKey::FindCoordinator, 0, 5),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
];

/// The supported version range of `api`, if runnel implements it.
pub fn supported_range(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|(_, lo, hi)| (*lo, *hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_advertised_range_is_one_the_codec_knows() {
        for (api, lo, hi) in SUPPORTED_APIS {
            let known = api.valid_versions();
            assert!(
                known.min <= *lo && *hi <= known.max,
                "{api:?} {lo}..={hi} vs {known:?}"
            );
            assert!(lo <= hi);
        }
        // Old librdkafka needs these exact versions inside the ranges.
        let (lo, hi) = supported_range(ApiKey::Produce).unwrap();
        assert!(lo <= 3 && 3 <= hi);
        let (lo, hi) = supported_range(ApiKey::Fetch).unwrap();
        assert!(lo <= 4 && 4 <= hi);
    }
}
