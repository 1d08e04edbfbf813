//! runnel patch: a fixed, fast hash for turmoil's internal maps.
//!
//! The maps keyed by host address, socket pair, link and path were hashed with SipHash
//! (`RandomState`) on every lookup: every host at every step, every socket operation, every
//! file read and write. Their iteration order does not depend on the hash (an `IndexMap`
//! iterates in insertion order; the `HashMap`s are only looked up, or collected into sorted
//! maps), so a fixed hash changes nothing but the time. It takes eight bytes at a step and ends
//! with MurmurHash3's finaliser, so keys that differ only in a few bytes (an address's last
//! octet, a segment's base offset) spread over the table.

use std::hash::{BuildHasherDefault, Hasher};

/// The maps' hasher state.
pub(crate) type FastState = BuildHasherDefault<FastHasher>;

/// An `IndexMap` with the fast hash.
pub(crate) type FastIndexMap<K, V> = indexmap::IndexMap<K, V, FastState>;

/// An `IndexSet` with the fast hash.
pub(crate) type FastIndexSet<K> = indexmap::IndexSet<K, FastState>;

/// A `HashMap` with the fast hash.
pub(crate) type FastHashMap<K, V> = std::collections::HashMap<K, V, FastState>;

/// See the module doc.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7cc1_b727_220a_95);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.add(u64::from_le_bytes(w.try_into().expect("eight bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}
