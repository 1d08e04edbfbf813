//! Choosing a record's partition the way the Java client does, so a key lands on the same
//! partition whichever Kafka client wrote it:
//!
//! 1. the partition the caller gave;
//! 2. else, with a key, `toPositive(murmur2(key)) % numPartitions` (Java's
//!    `BuiltInPartitioner.partitionForKey`);
//! 3. else the sticky partitioner (KIP-480): keyless records stay on one partition until about
//!    `batch.size` bytes have gone to it, then move to another chosen at random, so they fill
//!    batches instead of spreading thin ones everywhere.

use super::error::ClientError;
use crate::env::SharedRng;
use std::collections::BTreeMap;

/// Kafka's `Utils.murmur2`: MurmurHash2, 32-bit, seed `0x9747b28c`, exactly as the Java client
/// computes it (little-endian 4-byte blocks, Java's signed arithmetic and `>>>` shifts).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut blocks = data.chunks_exact(4);
    for b in &mut blocks {
        let mut k = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks.remainder();
    // Java's switch falls through from case 3 to case 1.
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on MIN).
pub fn to_positive(x: i32) -> i32 {
    x & 0x7fff_ffff
}

/// The partition of a keyed record among `num_partitions`.
pub fn partition_for_key(key: &[u8], num_partitions: i32) -> i32 {
    to_positive(murmur2(key)) % num_partitions.max(1)
}

/// Where keyless records of one topic currently go.
#[derive(Debug, Clone, Copy)]
struct Sticky {
    /// The current partition.
    partition: i32,
    /// Bytes sent to it since it was chosen.
    bytes: usize,
}

/// The partitioning rules, with the sticky partitioner's state per topic.
#[derive(Debug)]
pub struct Partitioner {
    /// `batch.size`: how many bytes of keyless records go to one partition before switching.
    batch_bytes: usize,
    /// Sticky state by topic.
    sticky: BTreeMap<String, Sticky>,
    /// Draws the next sticky partition.
    rng: SharedRng,
}

impl Partitioner {
    /// Rules with sticky batches of `batch_bytes`, drawing from `rng`.
    pub fn new(batch_bytes: usize, rng: SharedRng) -> Partitioner {
        Partitioner {
            batch_bytes: batch_bytes.max(1),
            sticky: BTreeMap::new(),
            rng,
        }
    }

    /// The partition for a record of `size` bytes.
    pub fn partition(
        &mut self,
        topic: &str,
        explicit: Option<i32>,
        key: Option<&[u8]>,
        size: usize,
        num_partitions: i32,
    ) -> Result<i32, ClientError> {
        if num_partitions < 1 {
            return Err(ClientError::InvalidArgument(format!(
                "topic '{topic}' has no partitions"
            )));
        }
        if let Some(p) = explicit {
            if !(0..num_partitions).contains(&p) {
                return Err(ClientError::InvalidArgument(format!(
                    "partition {p} is not in the range [0...{}] of topic '{topic}'",
                    num_partitions - 1
                )));
            }
            return Ok(p);
        }
        if let Some(k) = key {
            return Ok(partition_for_key(k, num_partitions));
        }
        Ok(self.sticky_partition(topic, size, num_partitions))
    }

    fn sticky_partition(&mut self, topic: &str, size: usize, num_partitions: i32) -> i32 {
        let (limit, rng) = (self.batch_bytes, &self.rng);
        // Looked up by &str so the common case allocates nothing.
        if let Some(s) = self.sticky.get_mut(topic) {
            if s.partition >= num_partitions || s.bytes >= limit {
                s.partition = next_partition(rng, Some(s.partition), num_partitions);
                s.bytes = 0;
            }
            s.bytes += size;
            return s.partition;
        }
        let partition = next_partition(rng, None, num_partitions);
        self.sticky.insert(
            topic.to_string(),
            Sticky {
                partition,
                bytes: size,
            },
        );
        partition
    }
}

/// A random partition other than `previous` (when there is a choice).
fn next_partition(rng: &SharedRng, previous: Option<i32>, num_partitions: i32) -> i32 {
    let n = num_partitions as u64;
    match previous {
        Some(p) if n > 1 && p < num_partitions => {
            let step = 1 + rng.gen_range(0..n - 1) as i32;
            (p + step) % num_partitions
        }
        _ => rng.gen_range(0..n) as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from Kafka's own `UtilsTest.testMurmur2`, and for "", "a" and "hello" computed
    /// with a line-by-line transcription of Java's `Utils.murmur2` using 32-bit signed
    /// arithmetic (Python, masking every step to 32 bits).
    #[test]
    fn murmur2_matches_java() {
        let cases: [(&[u8], i32); 9] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
            (b"", 275_646_681),
            (b"a", -1_563_381_124),
            (b"hello", 2_132_663_229),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key), want, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn keys_map_as_the_java_client_maps_them() {
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(i32::MIN), 0);
        // toPositive(-1563381124) % 3 == 1; a negative hash is not negated.
        assert_eq!(partition_for_key(b"a", 3), 1);
        assert_eq!(partition_for_key(b"hello", 3), 0);
        assert_eq!(partition_for_key(b"", 3), 0);
        let mut p = Partitioner::new(100, SharedRng::seeded(1));
        for _ in 0..10 {
            assert_eq!(p.partition("t", None, Some(b"a"), 10, 3).unwrap(), 1);
        }
        assert_eq!(p.partition("t", Some(2), Some(b"a"), 10, 3).unwrap(), 2);
        assert!(p.partition("t", Some(3), None, 10, 3).is_err());
        assert!(p.partition("t", None, None, 10, 0).is_err());
    }

    #[test]
    fn keyless_records_stick_then_move() {
        let mut p = Partitioner::new(100, SharedRng::seeded(7));
        let seq: Vec<i32> = (0..40)
            .map(|_| p.partition("t", None, None, 30, 4).unwrap())
            .collect();
        // Runs of four records (four times 30 bytes reach 100), each on another partition.
        for run in seq.chunks(4) {
            assert!(run.iter().all(|x| *x == run[0]), "{seq:?}");
        }
        for w in seq.chunks(4).collect::<Vec<_>>().windows(2) {
            assert_ne!(w[0][0], w[1][0], "{seq:?}");
        }
        let used: std::collections::BTreeSet<i32> = seq.iter().copied().collect();
        assert!(used.len() >= 3, "{seq:?}");
        // One partition: always 0.
        assert!((0..10).all(|_| p.partition("one", None, None, 60, 1).unwrap() == 0));
    }
}
