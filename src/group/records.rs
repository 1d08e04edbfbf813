//! The records of `__consumer_offsets`, in Kafka's own binary schemas, so Kafka's tools can
//! read the topic and a coordinator rebuilds every group by replaying it.
//!
//! Keys and values start with an int16 version; the fields follow in Kafka's classic encoding
//! (big-endian integers, int16-length strings, int32-length bytes, int32-count arrays) or, for
//! the flexible versions, compact lengths and tagged fields. From apache/kafka
//! `group-coordinator/src/main/resources/common/message/`:
//!
//! ```text
//! OffsetCommitKey    v0-1: group STRING, topic STRING, partition INT32
//! OffsetCommitValue  v0:   offset INT64, metadata STRING, commitTimestamp INT64
//!                    v1:   ... commitTimestamp INT64, expireTimestamp INT64
//!                    v2:   as v0
//!                    v3:   offset INT64, leaderEpoch INT32, metadata STRING, commitTimestamp INT64
//!                    v4:   as v3, flexible
//! GroupMetadataKey   v2:   group STRING
//! GroupMetadataValue v0:   protocolType STRING, generation INT32, protocol NULLABLE_STRING,
//!                          leader NULLABLE_STRING, members [memberId STRING, clientId STRING,
//!                          clientHost STRING, sessionTimeout INT32, subscription BYTES,
//!                          assignment BYTES]
//!                    v1:   members gain rebalanceTimeout INT32 before sessionTimeout
//!                    v2:   currentStateTimestamp INT64 after leader
//!                    v3:   members gain groupInstanceId NULLABLE_STRING after memberId
//!                    v4:   as v3, flexible
//! ```
//!
//! runnel writes what Kafka 3.x writes: OffsetCommitKey v1, OffsetCommitValue v3 (v1 when an
//! explicit expiry is asked for), GroupMetadataKey v2, GroupMetadataValue v3. A null value is a
//! tombstone. Keys of versions 3 and up belong to KIP-848 consumer groups, which runnel does
//! not have yet: they decode as [`Key::Other`] and are skipped.

use thiserror::Error;

/// A record that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("__consumer_offsets record: {0}")]
pub struct RecordError(pub String);

fn bad(what: impl Into<String>) -> RecordError {
    RecordError(what.into())
}

/// A record key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A committed offset of a group for a partition.
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    /// A group's metadata.
    Group { group: String },
    /// A key of another version (KIP-848 groups, share groups): not runnel's to read yet.
    Other { version: i16 },
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 when unknown.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// An explicit expiry (OffsetCommit v2-v4's retention time); None: the broker's retention.
    pub expire_timestamp: Option<i64>,
}

/// A member in a group's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's protocol.
    pub subscription: Vec<u8>,
    pub assignment: Vec<u8>,
}

/// A group's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// When the group entered its current state (ms), or -1.
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

// ---- writing ----

struct Writer(Vec<u8>);

impl Writer {
    fn i16(&mut self, v: i16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn string(&mut self, s: &str) {
        // Group ids and topics arrive as Kafka strings (at most 32767 bytes) and metadata is
        // capped below that; a longer member id (a huge client id) is cut at a character
        // boundary rather than written with a wrong length.
        let mut end = s.len().min(i16::MAX as usize);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let b = &s.as_bytes()[..end];
        self.i16(b.len() as i16);
        self.0.extend_from_slice(b);
    }
    fn nullable_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.i16(-1),
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.i32(b.len() as i32);
        self.0.extend_from_slice(b);
    }
}

/// The key of `group`'s committed offset for `topic`/`partition` (OffsetCommitKey v1).
pub fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(8 + group.len() + topic.len()));
    w.i16(1);
    w.string(group);
    w.string(topic);
    w.i32(partition);
    w.0
}

/// A committed offset's value: OffsetCommitValue v3, or v1 with an explicit expiry.
pub fn offset_value(v: &OffsetValue) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(32 + v.metadata.len()));
    match v.expire_timestamp {
        Some(expire) => {
            w.i16(1);
            w.i64(v.offset);
            w.string(&v.metadata);
            w.i64(v.commit_timestamp);
            w.i64(expire);
        }
        None => {
            w.i16(3);
            w.i64(v.offset);
            w.i32(v.leader_epoch);
            w.string(&v.metadata);
            w.i64(v.commit_timestamp);
        }
    }
    w.0
}

/// The key of `group`'s metadata (GroupMetadataKey v2).
pub fn group_key(group: &str) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(4 + group.len()));
    w.i16(2);
    w.string(group);
    w.0
}

/// A group's metadata value (GroupMetadataValue v3).
pub fn group_value(v: &GroupValue) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64));
    w.i16(3);
    w.string(&v.protocol_type);
    w.i32(v.generation);
    w.nullable_string(v.protocol.as_deref());
    w.nullable_string(v.leader.as_deref());
    w.i64(v.current_state_timestamp);
    w.i32(v.members.len() as i32);
    for m in &v.members {
        w.string(&m.member_id);
        w.nullable_string(m.group_instance_id.as_deref());
        w.string(&m.client_id);
        w.string(&m.client_host);
        w.i32(m.rebalance_timeout_ms);
        w.i32(m.session_timeout_ms);
        w.bytes(&m.subscription);
        w.bytes(&m.assignment);
    }
    w.0
}

// ---- reading ----

struct Reader<'a> {
    buf: &'a [u8],
    /// Flexible versions: compact lengths and tagged fields.
    flexible: bool,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], RecordError> {
        if self.buf.len() < n {
            return Err(bad(format!("{what}: truncated")));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn i16(&mut self, what: &str) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(
            self.take(2, what)?.try_into().unwrap_or([0; 2]),
        ))
    }
    fn i32(&mut self, what: &str) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(
            self.take(4, what)?.try_into().unwrap_or([0; 4]),
        ))
    }
    fn i64(&mut self, what: &str) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(
            self.take(8, what)?.try_into().unwrap_or([0; 8]),
        ))
    }
    fn unsigned_varint(&mut self, what: &str) -> Result<u32, RecordError> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let b = self.take(1, what)?[0];
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad(format!("{what}: varint too long")))
    }
    /// A length: -1 for null.
    fn len(&mut self, what: &str, wide: bool) -> Result<i64, RecordError> {
        if self.flexible {
            Ok(i64::from(self.unsigned_varint(what)?) - 1)
        } else if wide {
            Ok(i64::from(self.i32(what)?))
        } else {
            Ok(i64::from(self.i16(what)?))
        }
    }
    fn nullable_string(&mut self, what: &str) -> Result<Option<String>, RecordError> {
        let n = self.len(what, false)?;
        if n < 0 {
            return Ok(None);
        }
        let b = self.take(n as usize, what)?;
        String::from_utf8(b.to_vec())
            .map(Some)
            .map_err(|_| bad(format!("{what}: not UTF-8")))
    }
    fn string(&mut self, what: &str) -> Result<String, RecordError> {
        self.nullable_string(what)?
            .ok_or_else(|| bad(format!("{what}: null")))
    }
    fn bytes(&mut self, what: &str) -> Result<Vec<u8>, RecordError> {
        let n = self.len(what, true)?;
        if n < 0 {
            return Ok(Vec::new());
        }
        Ok(self.take(n as usize, what)?.to_vec())
    }
    fn array_len(&mut self, what: &str) -> Result<usize, RecordError> {
        let n = self.len(what, true)?;
        // Each element takes at least one byte: a count beyond the bytes left is a lie.
        if n < 0 || n as usize > self.buf.len() {
            return Err(bad(format!("{what}: bad count {n}")));
        }
        Ok(n as usize)
    }
    /// Skips a flexible structure's tagged fields.
    fn tagged_fields(&mut self) -> Result<(), RecordError> {
        if !self.flexible {
            return Ok(());
        }
        let n = self.unsigned_varint("tagged fields")?;
        for _ in 0..n {
            self.unsigned_varint("tag")?;
            let size = self.unsigned_varint("tag size")? as usize;
            self.take(size, "tagged field")?;
        }
        Ok(())
    }
}

/// Decodes a record key.
pub fn decode_key(key: &[u8]) -> Result<Key, RecordError> {
    let mut r = Reader {
        buf: key,
        flexible: false,
    };
    let version = r.i16("key version")?;
    match version {
        0 | 1 => Ok(Key::Offset {
            group: r.string("group")?,
            topic: r.string("topic")?,
            partition: r.i32("partition")?,
        }),
        2 => Ok(Key::Group {
            group: r.string("group")?,
        }),
        v if v > 2 => Ok(Key::Other { version: v }),
        v => Err(bad(format!("key version {v}"))),
    }
}

/// Decodes a committed offset's value.
pub fn decode_offset_value(value: &[u8]) -> Result<OffsetValue, RecordError> {
    let mut r = Reader {
        buf: value,
        flexible: false,
    };
    let version = r.i16("offset value version")?;
    r.flexible = version >= 4;
    let offset = r.i64("offset")?;
    let leader_epoch = if version >= 3 {
        r.i32("leader epoch")?
    } else {
        -1
    };
    let metadata = r.string("metadata")?;
    let commit_timestamp = r.i64("commit timestamp")?;
    let expire_timestamp = if version == 1 {
        Some(r.i64("expire timestamp")?)
    } else {
        None
    };
    if !(0..=4).contains(&version) {
        return Err(bad(format!("offset value version {version}")));
    }
    r.tagged_fields()?;
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
        expire_timestamp,
    })
}

/// Decodes a group's metadata value.
pub fn decode_group_value(value: &[u8]) -> Result<GroupValue, RecordError> {
    let mut r = Reader {
        buf: value,
        flexible: false,
    };
    let version = r.i16("group value version")?;
    if !(0..=4).contains(&version) {
        return Err(bad(format!("group value version {version}")));
    }
    r.flexible = version >= 4;
    let protocol_type = r.string("protocol type")?;
    let generation = r.i32("generation")?;
    let protocol = r.nullable_string("protocol")?;
    let leader = r.nullable_string("leader")?;
    let current_state_timestamp = if version >= 2 {
        r.i64("current state timestamp")?
    } else {
        -1
    };
    let n = r.array_len("members")?;
    let mut members = Vec::with_capacity(n);
    for _ in 0..n {
        let member_id = r.string("member id")?;
        let group_instance_id = if version >= 3 {
            r.nullable_string("group instance id")?
        } else {
            None
        };
        let client_id = r.string("client id")?;
        let client_host = r.string("client host")?;
        let session_fallback;
        let rebalance_timeout_ms = if version >= 1 {
            session_fallback = false;
            r.i32("rebalance timeout")?
        } else {
            session_fallback = true;
            0
        };
        let session_timeout_ms = r.i32("session timeout")?;
        let subscription = r.bytes("subscription")?;
        let assignment = r.bytes("assignment")?;
        r.tagged_fields()?;
        members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            // v0 had one timeout for both.
            rebalance_timeout_ms: if session_fallback {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            },
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    r.tagged_fields()?;
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

/// The topics a consumer subscribes to, from its ConsumerProtocolSubscription (the member
/// metadata of protocol type `consumer`): version INT16, topics [STRING], then fields this
/// does not need. None if it does not parse.
pub fn subscribed_topics(subscription: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader {
        buf: subscription,
        flexible: false,
    };
    let version = r.i16("subscription version").ok()?;
    if version < 0 {
        return None;
    }
    let n = r.array_len("topics").ok()?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        topics.push(r.string("topic").ok()?);
    }
    Some(topics)
}

/// The partitions of a consumer's ConsumerProtocolAssignment (the assignment bytes of
/// protocol type `consumer`): version INT16, assigned_partitions [topic STRING,
/// partitions [INT32]], then user data. None if it does not parse.
pub fn assigned_partitions(assignment: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    if assignment.is_empty() {
        return Some(Vec::new());
    }
    let mut r = Reader {
        buf: assignment,
        flexible: false,
    };
    let version = r.i16("assignment version").ok()?;
    if version < 0 {
        return None;
    }
    let n = r.array_len("topics").ok()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let topic = r.string("topic").ok()?;
        let k = r.array_len("partitions").ok()?;
        let mut ps = Vec::with_capacity(k);
        for _ in 0..k {
            ps.push(r.i32("partition").ok()?);
        }
        out.push((topic, ps));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_round_trip() {
        assert_eq!(
            decode_key(&offset_key("g", "t", 3)).unwrap(),
            Key::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3
            }
        );
        assert_eq!(
            decode_key(&group_key("g")).unwrap(),
            Key::Group { group: "g".into() }
        );
        assert_eq!(
            decode_key(&[0, 3, 0, 0]).unwrap(),
            Key::Other { version: 3 }
        );
        assert!(decode_key(&[0xff, 0xff]).is_err());
        assert!(decode_key(&[0, 1, 0, 9, b'x']).is_err());
    }

    /// The bytes Kafka 3.x writes for an OffsetCommitValue v3 (offset 42, epoch 7, metadata
    /// "m", committed at 1000), laid out by hand from the schema.
    #[test]
    fn offset_value_matches_kafkas_layout() {
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "m".into(),
            commit_timestamp: 1000,
            expire_timestamp: None,
        };
        let mut want = vec![0, 3];
        want.extend_from_slice(&42i64.to_be_bytes());
        want.extend_from_slice(&7i32.to_be_bytes());
        want.extend_from_slice(&[0, 1, b'm']);
        want.extend_from_slice(&1000i64.to_be_bytes());
        assert_eq!(offset_value(&v), want);
        assert_eq!(decode_offset_value(&want).unwrap(), v);
    }

    #[test]
    fn consumer_assignments_parse() {
        // version 1, [("t", [0, 2])], null user data
        let mut b = vec![0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2];
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&2i32.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            assigned_partitions(&b),
            Some(vec![("t".to_string(), vec![0, 2])])
        );
        assert_eq!(assigned_partitions(&[]), Some(vec![]));
        assert_eq!(assigned_partitions(&[0, 1, 0x7f]), None);
    }

    #[test]
    fn flexible_offset_value_decodes() {
        // v4: compact string (length + 1) and an empty tagged-field section.
        let mut b = vec![0, 4];
        b.extend_from_slice(&5i64.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&[3, b'h', b'i']);
        b.extend_from_slice(&9i64.to_be_bytes());
        b.push(0);
        let v = decode_offset_value(&b).unwrap();
        assert_eq!(
            (v.offset, v.leader_epoch, v.metadata.as_str()),
            (5, -1, "hi")
        );
        assert_eq!(v.commit_timestamp, 9);
    }

    fn member() -> impl Strategy<Value = MemberValue> {
        (
            "[a-z0-9-]{0,20}",
            proptest::option::of("[a-z]{1,8}"),
            "[a-z]{0,8}",
            "[0-9./]{0,15}",
            any::<i32>(),
            any::<i32>(),
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(id, inst, cid, host, rt, st, sub, asg)| MemberValue {
                member_id: id,
                group_instance_id: inst,
                client_id: cid,
                client_host: host,
                rebalance_timeout_ms: rt,
                session_timeout_ms: st,
                subscription: sub,
                assignment: asg,
            })
    }

    proptest! {
        #[test]
        fn group_values_round_trip(
            ptype in "[a-z]{0,10}",
            generation in any::<i32>(),
            protocol in proptest::option::of("[a-z-]{1,12}"),
            leader in proptest::option::of("[a-z0-9-]{1,12}"),
            ts in any::<i64>(),
            members in proptest::collection::vec(member(), 0..5),
        ) {
            let v = GroupValue { protocol_type: ptype, generation, protocol, leader, current_state_timestamp: ts, members };
            prop_assert_eq!(decode_group_value(&group_value(&v)).unwrap(), v);
        }

        #[test]
        fn offset_values_round_trip(
            offset in any::<i64>(), epoch in any::<i32>(), md in "[ -~]{0,30}",
            ts in any::<i64>(), expire in proptest::option::of(any::<i64>()),
        ) {
            let v = OffsetValue { offset, leader_epoch: if expire.is_some() { -1 } else { epoch }, metadata: md, commit_timestamp: ts, expire_timestamp: expire };
            prop_assert_eq!(decode_offset_value(&offset_value(&v)).unwrap(), v);
        }

        /// Hostile bytes give an error, never a panic.
        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_key(&b);
            let _ = decode_offset_value(&b);
            let _ = decode_group_value(&b);
            let _ = subscribed_topics(&b);
        }
    }
}
