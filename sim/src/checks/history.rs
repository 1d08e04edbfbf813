//! The history checker: reads a [`History`] and reports, per partition, the anomalies Jepsen's Kafka
//! checker names. It draws no randomness and depends only on the history.
//!
//! What a power loss may take back: writes acknowledged without a sync (write caching on, or
//! acks=1) that were not synced before the power went. Consumers of a topic with write caching
//! may also have seen such writes before they vanished. Everything else must hold always.

use super::{Anomaly, Check, Kind};
use crate::history::{Event, History, Micros, Promise, Tp};

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Maps by value, looked up once per record read: hashed (a B-tree of strings cost a string
/// comparison per level; SipHash, most of a lookup), with a fixed hash ([`WordHasher`]), and
/// never iterated except through [`sorted`], so no hash order reaches a report.
type ByValue<'a, V> = HashMap<&'a str, V, BuildHasherDefault<WordHasher>>;
type ValueSet<'a> = HashSet<&'a str, BuildHasherDefault<WordHasher>>;

/// A fixed hash for the checker's maps by value that takes eight bytes at a step (FNV took one,
/// and hashing was a fifth of the checker's time), with a final mix so that values differing
/// only in their last bytes (the checksum a value ends with) spread over the table.
#[derive(Default, Clone, Copy)]
struct WordHasher(u64);

impl WordHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for WordHasher {
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

    fn write_u8(&mut self, b: u8) {
        self.add(u64::from(b));
    }

    fn finish(&self) -> u64 {
        // MurmurHash3's 64-bit finaliser.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// A map's entries in key order.
fn sorted<'m, 'a, V>(m: &'m ByValue<'a, V>) -> Vec<(&'a str, &'m V)> {
    let mut v: Vec<(&'a str, &'m V)> = m.iter().map(|(k, v)| (*k, v)).collect();
    v.sort_unstable_by_key(|(k, _)| *k);
    v
}

/// What the checker found.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Broken promises: the run fails.
    pub violations: Vec<Anomaly>,
    /// Anomalies the system's promises allow (writes cached when the power went, duplicates
    /// from producers that retry without idempotence); reported, not failures.
    pub allowed: Vec<Anomaly>,
    /// Acknowledged sends checked.
    pub acknowledged: usize,
    /// Distinct records read.
    pub records_read: usize,
}

/// Per-partition facts gathered from the history.
#[derive(Default)]
struct PartitionFacts<'a> {
    /// offset -> (value, first time seen) for each value seen there, in the order first seen
    /// (almost always one: a short list, searched in place, rather than a map per offset).
    seen_at: BTreeMap<i64, Vec<(&'a str, Micros)>>,
    /// value -> offsets it was seen at.
    offsets_of: ByValue<'a, BTreeSet<i64>>,
    /// Acknowledged sends: value -> (offset, promise, time sent, producer).
    acked: ByValue<'a, (i64, Promise, Micros, &'a str)>,
    /// Sends that definitely failed.
    failed: BTreeSet<&'a str>,
    /// Acknowledged sends: value -> when the acknowledgement arrived.
    acked_at: ByValue<'a, Micros>,
    /// Largest offset any consumer saw.
    max_seen: Option<i64>,
    /// The final image: value -> the offsets a consumer's final full read found it at (a
    /// plain producer's retry may leave several copies).
    final_image: ByValue<'a, BTreeSet<i64>>,
    /// Values the final image holds at more than one offset.
    final_duplicates: ValueSet<'a>,
}

/// The facts of `tp`, created on first use (without cloning the key at every event).
fn facts_of<'m, 'a>(
    facts: &'m mut BTreeMap<Tp, PartitionFacts<'a>>,
    tp: &Tp,
) -> &'m mut PartitionFacts<'a> {
    if !facts.contains_key(tp) {
        facts.insert(tp.clone(), PartitionFacts::default());
    }
    facts.get_mut(tp).expect("just inserted")
}

/// Checks a history.
pub fn check(h: &History) -> Verdict {
    let power_losses: Vec<Micros> = h
        .entries
        .iter()
        .filter_map(|e| matches!(e.event, Event::PowerLoss { .. }).then_some(e.at))
        .collect();
    let power_loss_between = |a: Micros, b: Micros| {
        power_losses
            .iter()
            .any(|t| *t >= a.min(b) && *t <= a.max(b))
    };
    let power_loss_after = |a: Micros| power_losses.iter().any(|t| *t >= a);
    // Recoveries the brokers declared: (time, tp, recovered log end). Ground truth: a copy at
    // offset `o` is gone once a recovery after it ends at or below `o`.
    let recoveries: Vec<(Micros, &Tp, i64)> = h
        .entries
        .iter()
        .filter_map(|e| match &e.event {
            Event::Recovered { tp, log_end, .. } => Some((e.at, tp, *log_end)),
            _ => None,
        })
        .collect();
    let recovered_below = |tp: &Tp, offset: i64, from: Micros, to: Micros| {
        recoveries
            .iter()
            .any(|(at, t, end)| *t == tp && *end <= offset && *at >= from && *at <= to)
    };
    let mut facts: BTreeMap<Tp, PartitionFacts> = BTreeMap::new();
    let sends = h
        .entries
        .iter()
        .filter(|e| matches!(e.event, Event::SendInvoke { .. }))
        .count();
    let mut sender: ByValue<&str> = ByValue::with_capacity_and_hasher(sends, Default::default());
    // Consumers whose final read has begun.
    let mut final_reading: BTreeSet<&str> = BTreeSet::new();
    let complete_final_read = !h.final_readers.is_empty();
    // When each value was sent: a write can only happen between its send and its answer.
    let mut sent_at: ByValue<Micros> = ByValue::with_capacity_and_hasher(sends, Default::default());
    let mut v = Verdict::default();
    for e in &h.entries {
        match &e.event {
            Event::SendInvoke { process, value, .. } => {
                sender.insert(value, process);
                sent_at.insert(value, e.at);
            }
            Event::SendOk {
                process,
                tp,
                value,
                offset,
                promise,
            } => {
                let at = sent_at.get(value.as_str()).copied().unwrap_or(e.at);
                let f = facts_of(&mut facts, tp);
                f.acked.insert(value, (*offset, *promise, at, process));
                f.acked_at.insert(value, e.at);
            }
            Event::SendFail { tp, value, .. } => {
                facts_of(&mut facts, tp).failed.insert(value);
            }
            Event::FinalRead { process } => {
                final_reading.insert(process);
            }
            Event::Poll {
                tp,
                records,
                process,
            } => {
                let f = facts_of(&mut facts, tp);
                let final_read =
                    final_reading.contains(process.as_str()) && h.final_readers.contains(process);
                for (o, val) in records {
                    let val = val.as_str();
                    if final_read {
                        let at = f.final_image.entry(val).or_default();
                        at.insert(*o);
                        if at.len() > 1 {
                            f.final_duplicates.insert(val);
                        }
                    }
                    let here = f.seen_at.entry(*o).or_default();
                    if !here.iter().any(|(v, _)| *v == val) {
                        here.push((val, e.at));
                    }
                    f.offsets_of.entry(val).or_default().insert(*o);
                    f.max_seen = Some(f.max_seen.map_or(*o, |m| m.max(*o)));
                }
            }
            Event::Corrupt {
                tp,
                offset,
                detail,
                process,
            } => v.violations.push(Anomaly {
                check: Check::History,
                kind: Kind::Corrupted,
                tp: tp.clone(),
                detail: format!("{process} read offset {offset}: {detail}"),
                at: e.at,
            }),
            _ => {}
        }
    }
    for (tp, f) in &facts {
        let caching = h.write_caching.get(&tp.topic).copied().unwrap_or(false);
        let replicated = h.replicated.get(&tp.topic).copied().unwrap_or(false);
        let log_start = h.log_start.get(tp).copied().unwrap_or(0);
        v.records_read += f.offsets_of.len();
        v.acknowledged += f.acked.len();
        // Every sighting of a value at an offset (read, or acknowledged there): offset ->
        // (first observed, sent). A value seen at or above an offset before a later value was
        // even sent was in the log then, so the loss that let the later value take that offset
        // came after it was written.
        let mut sightings: Vec<(i64, Micros, Micros)> = Vec::new();
        if f.seen_at.values().any(|vals| vals.len() > 1) {
            for (o, vals) in &f.seen_at {
                for (val, seen) in vals {
                    let sent = sent_at.get(val).copied().unwrap_or(0);
                    sightings.push((*o, *seen, sent));
                }
            }
            for (val, (o, ..)) in &f.acked {
                if let (Some(acked), Some(sent)) = (f.acked_at.get(val), sent_at.get(val)) {
                    sightings.push((*o, *acked, *sent));
                }
            }
        }
        let sightings = Sightings::new(sightings);
        // The latest send of a value sighted at or above `offset` before `before`.
        let written_above = |offset: i64, before: Micros| sightings.latest_sent(offset, before);
        // One offset, two values.
        for (offset, values) in &f.seen_at {
            if values.len() < 2 {
                continue;
            }
            // Each later value can only have taken the offset after a power loss truncated the
            // log below it: the earlier value was written no sooner than it was sent, the later
            // one no later than it was first observed (read, or acknowledged at this offset),
            // so a loss must fall between those two times. Observations arrive late (a fetch
            // answered before a crash is read after it), so the true order is unknown: the
            // values are tried in the order first observed and in the order sent.
            let observed = |val: &str, seen: Micros| match (f.acked.get(val), f.acked_at.get(val)) {
                (Some((o, ..)), Some(at)) if o == offset => seen.min(*at),
                _ => seen,
            };
            let sent = |val: &str| sent_at.get(val).copied().unwrap_or(0);
            // A value acknowledged here as durable can never be replaced: it may only be the
            // last value the offset took.
            let durable_here = |val: &str| {
                f.acked
                    .get(val)
                    .is_some_and(|(o, promise, ..)| o == offset && promise.durable)
            };
            // Each order: (sent, first observed, durable here) per value.
            let mut by_obs: Vec<(Micros, Micros, bool)> = values
                .iter()
                .map(|(val, seen)| (observed(val, *seen), sent(val), durable_here(val)))
                .collect();
            by_obs.sort();
            let by_obs: Vec<(Micros, Micros, bool)> = by_obs
                .into_iter()
                .map(|(obs, sent, d)| (sent, obs, d))
                .collect();
            let mut by_sent: Vec<(Micros, Micros, bool)> = values
                .iter()
                .map(|(val, seen)| (sent(val), observed(val, *seen), durable_here(val)))
                .collect();
            by_sent.sort();
            // With followers, the loss may surface later than the power loss: the replica that
            // lost its cached tail rejoins and leads. Any power loss after the earlier value was
            // sent and before the later one was seen excuses it.
            let replica_came_back = replicated
                && by_obs
                    .windows(2)
                    .all(|w| !w[0].2 && power_loss_between(w[0].0, w[1].1));
            let excused = caching
                && (replica_came_back
                    || [by_obs, by_sent].iter().any(|order| {
                        order.windows(2).all(|w| {
                            // The loss came after the earlier value and everything seen at or
                            // above this offset before the later value was sent were written.
                            let from = w[0].0.max(written_above(*offset, w[1].0));
                            !w[0].2 && from <= w[1].1 && power_loss_between(from, w[1].1)
                        })
                    }));
            let mut by_time: Vec<(Micros, &str)> =
                values.iter().map(|(val, seen)| (*seen, *val)).collect();
            by_time.sort();
            let a = Anomaly {
                check: Check::History,
                kind: Kind::InconsistentOffsets,
                tp: tp.clone(),
                detail: format!(
                    "offset {offset} read as {:?}",
                    by_time.iter().map(|(_, v)| *v).collect::<Vec<_>>()
                ),
                at: by_time.iter().map(|(t, _)| *t).min().unwrap_or(0),
            };
            if excused {
                v.allowed.push(a)
            } else {
                v.violations.push(a)
            }
        }
        // One value, two offsets.
        for (val, offsets) in sorted(&f.offsets_of) {
            if offsets.len() < 2 {
                continue;
            }
            let producer = sender.get(val).copied().unwrap_or_default();
            let idempotent = h.idempotent.get(producer).copied().unwrap_or(false);
            // With write caching, consumers may see a write that a power loss then takes back;
            // the producer's retry of it lands at a new offset. Not a duplicate if the log kept
            // it only once, and each earlier offset it was seen at was erased by a power loss:
            // seen there holding another value later, or gone below the log start by the end
            // (retention), with a power loss between the send and the next sighting.
            let first_seen = |o: &i64| {
                f.seen_at
                    .get(o)
                    .and_then(|vals| vals.iter().find(|(v, _)| *v == val))
                    .map_or(Micros::MAX, |(_, seen)| *seen)
            };
            let mut sightings: Vec<(Micros, i64)> =
                offsets.iter().map(|o| (first_seen(o), *o)).collect();
            sightings.sort();
            let sent = sent_at.get(val).copied().unwrap_or(0);
            let kept_once = if complete_final_read {
                !f.final_duplicates.contains(val)
            } else {
                true
            };
            let rewritten = caching
                && kept_once
                && sightings.windows(2).all(|w| {
                    let (_, old) = w[0];
                    let (next_seen, _) = w[1];
                    // Another value took the old offset after this one was sent (one seen
                    // there before it proves nothing about this copy).
                    // Or a recovery cut the log below it after it was seen there and before
                    // the next copy was (seed 9501634: no consumer read the offset in between).
                    let erased = f.seen_at.get(&old).is_some_and(|vals| {
                        vals.iter().any(|(w, seen)| *w != val && *seen >= sent)
                    }) || (complete_final_read && old < log_start)
                        || recovered_below(tp, old, first_seen(&old), next_seen);
                    erased && power_loss_between(sent, next_seen)
                });
            let a = Anomaly {
                check: Check::History,
                kind: Kind::Duplicate,
                tp: tp.clone(),
                detail: format!(
                    "{val} (from {producer}{}) at offsets {offsets:?}",
                    if idempotent { ", idempotent" } else { "" }
                ),
                at: sightings.first().map_or(0, |(t, _)| *t),
            };
            if idempotent && !rewritten {
                v.violations.push(a)
            } else {
                v.allowed.push(a)
            }
        }
        // Acknowledged writes: present at the end, where they were acknowledged. With a
        // completed final read, "present" means in its image; without one (the run did not
        // finish), a write counts as lost only if no consumer ever read it although later
        // offsets were read.
        let idempotent_producer = |p: &str| h.idempotent.get(p).copied().unwrap_or(false);
        for (val, (offset, promise, at, producer)) in sorted(&f.acked) {
            // Without write caching consumers see only synced data: a write anyone read at its
            // acknowledged offset was durable whatever its producer was promised. (A copy read
            // elsewhere proves nothing about this one: a plain producer's retry may write the
            // value twice, and only the first copy may have been synced.)
            let read_synced = !caching
                && f.offsets_of
                    .get(val)
                    .is_some_and(|seen| seen.contains(offset));
            let read_here = f
                .offsets_of
                .get(val)
                .is_some_and(|seen| seen.contains(offset));
            let required = if promise.committed {
                promise.durable || read_synced || !power_loss_after(*at)
            } else {
                // Only a leader's append: a leader change may take it back, unless a consumer
                // read it (committed), and then only a power loss with write caching may.
                read_here && (read_synced || !power_loss_after(*at))
            };
            if *offset < log_start {
                continue;
            }
            let found: Option<BTreeSet<i64>> = if complete_final_read {
                f.final_image.get(val).cloned()
            } else {
                f.offsets_of.get(val).cloned()
            };
            let anomaly = match found {
                None if complete_final_read || f.max_seen.is_some_and(|m| m > *offset) => {
                    Some(Anomaly {
                        check: Check::History,
                        kind: Kind::LostWrite,
                        tp: tp.clone(),
                        detail: format!(
                            "{val} from {producer} acknowledged at offset {offset}{} is not in the log{}",
                            if promise.durable { " (durable)" } else { "" },
                            match f.offsets_of.get(val) {
                                Some(seen) => format!(" (it had been read at {seen:?})"),
                                None => String::new(),
                            }
                        ),
                        at: *at,
                    })
                }
                None => None,
                Some(offsets) if !offsets.contains(offset) => Some(Anomaly {
                    check: Check::History,
                    kind: Kind::UnexpectedOffset,
                    tp: tp.clone(),
                    detail: format!(
                        "{val} acknowledged at offset {offset} but read at {offsets:?}"
                    ),
                    at: *at,
                }),
                Some(_) => None,
            };
            // A value away from its acknowledged offset: for an idempotent producer only a
            // power loss between the send and the answer explains it (the first attempt was
            // taken back and the retry written anew); a power loss cannot move a record later.
            let required = required
                || (anomaly
                    .as_ref()
                    .is_some_and(|a| a.kind == Kind::UnexpectedOffset)
                    && idempotent_producer(producer)
                    && !f
                        .acked_at
                        .get(val)
                        .is_some_and(|acked| power_loss_between(*at, *acked)));
            if let Some(a) = anomaly {
                if required {
                    v.violations.push(a)
                } else {
                    v.allowed.push(a)
                }
            }
        }
        // Definitely failed sends must stay invisible.
        for val in &f.failed {
            if let Some(offsets) = f.offsets_of.get(val) {
                v.violations.push(Anomaly {
                    check: Check::History,
                    kind: Kind::AbortedRead,
                    tp: tp.clone(),
                    detail: format!("{val} failed definitely but was read at {offsets:?}"),
                    at: 0,
                });
            }
        }
    }
    check_send_order(h, &power_losses, &mut v);
    check_polls(h, &mut v);
    super::groups::check(h, &mut v);
    v
}

/// Sightings of values at offsets, each (offset, first observed, sent), answering "the latest
/// send among sightings at or above an offset observed before a time" in O(log² n): a
/// merge-sort tree over the offsets whose nodes hold their sightings by time observed, with
/// the latest send so far. (Scanning every sighting per question made the checker quadratic
/// in the offsets a power loss rewrote.)
struct Sightings {
    /// The sightings' offsets, ascending.
    offsets: Vec<i64>,
    /// A bottom-up segment tree over `offsets` (leaves at `n..2n`): each node's sightings as
    /// (observed, latest send among those observed up to here), by time observed.
    tree: Vec<Vec<(Micros, Micros)>>,
}

impl Sightings {
    fn new(mut all: Vec<(i64, Micros, Micros)>) -> Sightings {
        all.sort_unstable();
        let n = all.len();
        let mut tree: Vec<Vec<(Micros, Micros)>> = vec![Vec::new(); 2 * n];
        for (i, (_, seen, sent)) in all.iter().enumerate() {
            tree[n + i] = vec![(*seen, *sent)];
        }
        for i in (1..n).rev() {
            let mut merged: Vec<(Micros, Micros)> = tree[2 * i]
                .iter()
                .chain(tree[2 * i + 1].iter())
                .copied()
                .collect();
            merged.sort_unstable();
            tree[i] = merged;
        }
        // Children were merged from their own sightings; the running maximum is taken after.
        for node in tree.iter_mut() {
            let mut latest = 0;
            for (_, sent) in node.iter_mut() {
                latest = latest.max(*sent);
                *sent = latest;
            }
        }
        Sightings {
            offsets: all.iter().map(|(o, ..)| *o).collect(),
            tree,
        }
    }

    /// The latest send among sightings at or above `offset` observed before `before` (0 if
    /// none).
    fn latest_sent(&self, offset: i64, before: Micros) -> Micros {
        let n = self.offsets.len();
        let in_node = |node: usize| {
            let v = &self.tree[node];
            match v.partition_point(|(seen, _)| *seen < before) {
                0 => 0,
                k => v[k - 1].1,
            }
        };
        let (mut l, mut r) = (self.offsets.partition_point(|o| *o < offset) + n, 2 * n);
        let mut best = 0;
        while l < r {
            if l & 1 == 1 {
                best = best.max(in_node(l));
                l += 1;
            }
            if r & 1 == 1 {
                r -= 1;
                best = best.max(in_node(r));
            }
            l /= 2;
            r /= 2;
        }
        best
    }
}

/// An acknowledged send: offset, promise, time sent, time acknowledged.
type AckedSend = (i64, Promise, Micros, Micros);

/// A producer's acknowledged sends to one partition land in the order it sent them. Required
/// of idempotent producers and of producers with one request in flight; pairs with a power loss
/// between them are excused when the earlier write was not durable (its offset was reused).
fn check_send_order(h: &History, power_losses: &[Micros], v: &mut Verdict) {
    // (producer, tp) -> sends in invoke order: (value, invoke time).
    let mut order: BTreeMap<(&str, &Tp), Vec<&str>> = BTreeMap::new();
    // value -> (offset, promise, time sent, time acknowledged).
    let mut acked: ByValue<AckedSend> = ByValue::default();
    let mut sent_at: ByValue<Micros> = ByValue::default();
    for e in &h.entries {
        match &e.event {
            Event::SendInvoke { process, tp, value } => {
                order.entry((process, tp)).or_default().push(value);
                sent_at.insert(value, e.at);
            }
            Event::SendOk {
                value,
                offset,
                promise,
                ..
            } => {
                let at = sent_at.get(value.as_str()).copied().unwrap_or(e.at);
                acked.insert(value, (*offset, *promise, at, e.at));
            }
            _ => {}
        }
    }
    for ((producer, tp), values) in order {
        let strict = h.idempotent.get(producer).copied().unwrap_or(false)
            || h.ordered.get(producer).copied().unwrap_or(false);
        let oks: Vec<(&str, &AckedSend)> = values
            .iter()
            .filter_map(|val| acked.get(val).map(|a| (*val, a)))
            .collect();
        for w in oks.windows(2) {
            let ((va, (oa, pa, ta, _)), (vb, (ob, _, tb, b_acked))) = (w[0], w[1]);
            if ob > oa {
                continue;
            }
            // The earlier write was not synced and a power loss came after it was sent and
            // before the later one was written: its offset may have been given to the later
            // write.
            // Or it was only a leader's append (acks=1 with several replicas), which a leader
            // change may have taken back.
            let reused = !pa.committed
                || (!pa.durable && power_losses.iter().any(|t| *t >= *ta && *t <= *b_acked));
            let a = Anomaly {
                check: Check::History,
                kind: Kind::NonmonotonicSend,
                tp: tp.clone(),
                detail: format!(
                    "{producer} sent {va} then {vb}, acknowledged at offsets {oa} then {ob}"
                ),
                at: *tb,
            };
            if strict && !reused {
                v.violations.push(a)
            } else {
                v.allowed.push(a)
            }
        }
    }
}

/// A consumer's reads of a partition move forward one offset at a time, except where it seeks.
fn check_polls(h: &History, v: &mut Verdict) {
    let mut next: BTreeMap<(&str, &Tp), i64> = BTreeMap::new();
    for e in &h.entries {
        match &e.event {
            Event::Seek {
                process,
                tp,
                offset,
            } => {
                next.insert((process, tp), *offset);
            }
            Event::Poll {
                process,
                tp,
                records,
            } => {
                let Some((first, _)) = records.first() else {
                    continue;
                };
                // Looked up once per poll, not per record.
                let next = match next.entry((process, tp)) {
                    std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::btree_map::Entry::Vacant(v) => v.insert(*first),
                };
                for (o, _) in records {
                    let expected = Some(*next);
                    match expected {
                        Some(x) if *o > x => v.violations.push(Anomaly {
                            check: Check::History,
                            kind: Kind::PollSkip,
                            tp: tp.clone(),
                            detail: format!(
                                "{process} read offset {o} after {}, skipping {}",
                                x - 1,
                                o - x
                            ),
                            at: e.at,
                        }),
                        Some(x) if *o < x => v.violations.push(Anomaly {
                            check: Check::History,
                            kind: Kind::NonmonotonicPoll,
                            tp: tp.clone(),
                            detail: format!("{process} read offset {o} after {}", x - 1),
                            at: e.at,
                        }),
                        _ => {}
                    }
                    *next = o + 1;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Event::*;

    fn tp() -> Tp {
        Tp {
            topic: "t".into(),
            partition: 0,
        }
    }

    fn send(h: &mut History, at: u64, p: &str, val: &str, offset: Option<i64>, durable: bool) {
        h.push(
            at,
            SendInvoke {
                process: p.into(),
                tp: tp(),
                value: val.into(),
            },
        );
        if let Some(o) = offset {
            h.push(
                at + 1,
                SendOk {
                    process: p.into(),
                    tp: tp(),
                    value: val.into(),
                    offset: o,
                    promise: Promise {
                        durable,
                        committed: true,
                    },
                },
            );
        }
    }

    fn poll(h: &mut History, at: u64, c: &str, recs: &[(i64, &str)]) {
        h.push(
            at,
            Poll {
                process: c.into(),
                tp: tp(),
                records: recs.iter().map(|(o, v)| (*o, v.to_string())).collect(),
            },
        );
    }

    fn kinds(v: &[Anomaly]) -> Vec<Kind> {
        v.iter().map(|a| a.kind).collect()
    }

    fn power_loss(h: &mut History, at: u64) {
        h.push(
            at,
            PowerLoss {
                host: "broker".into(),
            },
        );
    }

    #[test]
    fn a_fetch_answered_before_a_crash_may_arrive_after_it() {
        // Seed 39: "a" read at offset 0, lost with the power; "b" written at 0, read only once
        // the power had gone again (its fetch was answered before); then "c" at 0.
        let mut h = History::default();
        h.write_caching.insert("t".into(), true);
        send(&mut h, 10, "p", "a", Some(0), false);
        poll(&mut h, 12, "c1", &[(0, "a")]);
        power_loss(&mut h, 20);
        send(&mut h, 30, "p", "b", Some(0), false);
        power_loss(&mut h, 40);
        poll(&mut h, 41, "c2", &[(0, "b")]);
        send(&mut h, 50, "p", "c", Some(0), false);
        poll(&mut h, 52, "c3", &[(0, "c")]);
        let v = check(&h);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert!(kinds(&v.allowed).contains(&Kind::InconsistentOffsets));
        // Without the second power loss nothing explains "c" replacing "b".
        let mut h2 = History::default();
        h2.write_caching.insert("t".into(), true);
        for e in h.entries.iter().filter(|e| e.at != 40) {
            h2.push(e.at, e.event.clone());
        }
        assert_eq!(
            kinds(&check(&h2).violations),
            vec![Kind::InconsistentOffsets]
        );
    }

    #[test]
    fn a_retry_of_a_write_the_power_took_is_not_a_duplicate() {
        // Seed 285: an idempotent producer's write is seen at 0, lost with the power, and its
        // retry lands at 3; retention later deletes offset 0, so nobody sees it rewritten.
        let mut h = History::default();
        h.write_caching.insert("t".into(), true);
        h.idempotent.insert("p".into(), true);
        send(&mut h, 10, "p", "v", None, false);
        poll(&mut h, 11, "c1", &[(0, "v")]);
        power_loss(&mut h, 12);
        send(&mut h, 13, "q", "w0", Some(0), false);
        send(&mut h, 14, "q", "w1", Some(1), false);
        send(&mut h, 15, "q", "w2", Some(2), false);
        h.push(
            16,
            SendOk {
                process: "p".into(),
                tp: tp(),
                value: "v".into(),
                offset: 3,
                promise: Promise {
                    durable: true,
                    committed: true,
                },
            },
        );
        poll(&mut h, 17, "c2", &[(3, "v")]);
        h.log_start.insert(tp(), 2);
        h.push(
            20,
            FinalRead {
                process: "c".into(),
            },
        );
        h.push(
            20,
            Seek {
                process: "c".into(),
                tp: tp(),
                offset: 2,
            },
        );
        poll(&mut h, 21, "c", &[(2, "w2"), (3, "v")]);
        h.final_readers.insert("c".into());
        let v = check(&h);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert!(kinds(&v.allowed).contains(&Kind::Duplicate));
        // Kept twice in the final image, it is a duplicate whatever the power did.
        h.push(
            22,
            Seek {
                process: "c".into(),
                tp: tp(),
                offset: 0,
            },
        );
        poll(&mut h, 22, "c", &[(0, "v")]);
        assert!(kinds(&check(&h).violations).contains(&Kind::Duplicate));
    }

    fn final_read(h: &mut History, at: u64, c: &str, from: i64, recs: &[(i64, &str)]) {
        h.push(at, FinalRead { process: c.into() });
        h.push(
            at,
            Seek {
                process: c.into(),
                tp: tp(),
                offset: from,
            },
        );
        poll(h, at + 1, c, recs);
        h.final_readers.insert(c.into());
    }

    #[test]
    fn without_write_caching_a_write_anyone_read_was_durable() {
        // acks=1 (not promised durable), but consumers only see synced data: read, then gone
        // after a power loss, it was lost by a bug.
        let mut h = History::default();
        send(&mut h, 1, "p", "w", Some(0), false);
        poll(&mut h, 3, "c1", &[(0, "w")]);
        power_loss(&mut h, 5);
        final_read(&mut h, 10, "c2", 0, &[]);
        assert_eq!(kinds(&check(&h).violations), vec![Kind::LostWrite]);
        // Unread, the same loss is what acks=1 allows.
        let mut h = History::default();
        send(&mut h, 1, "p", "w", Some(0), false);
        power_loss(&mut h, 5);
        final_read(&mut h, 10, "c2", 0, &[]);
        assert!(check(&h).violations.is_empty());
        assert_eq!(kinds(&check(&h).allowed), vec![Kind::LostWrite]);
    }

    #[test]
    fn a_synced_first_copy_does_not_make_a_retry_durable() {
        // Seed 700204: a plain producer's first attempt lands at 0 (synced, read); its retry
        // lands at 3 and is acknowledged there (acks=1); a power loss takes 3. Allowed.
        let mut h = History::default();
        h.push(
            1,
            SendInvoke {
                process: "p".into(),
                tp: tp(),
                value: "v".into(),
            },
        );
        poll(&mut h, 2, "c1", &[(0, "v")]);
        h.push(
            4,
            SendOk {
                process: "p".into(),
                tp: tp(),
                value: "v".into(),
                offset: 3,
                promise: Promise {
                    durable: false,
                    committed: true,
                },
            },
        );
        power_loss(&mut h, 5);
        final_read(
            &mut h,
            10,
            "c",
            0,
            &[(0, "v"), (1, "x"), (2, "y"), (3, "z")],
        );
        let v = check(&h);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert_eq!(kinds(&v.allowed), vec![Kind::UnexpectedOffset]);
    }

    #[test]
    fn a_power_loss_long_after_does_not_excuse_a_wrong_answer() {
        // An idempotent producer's "b" is stored at 2 but acknowledged at 0; a power loss much
        // later cannot explain either the offset or the order.
        let mut h = History::default();
        h.write_caching.insert("t".into(), true);
        h.idempotent.insert("p".into(), true);
        send(&mut h, 0, "q", "z", Some(0), false);
        send(&mut h, 1, "p", "a", Some(1), false);
        send(&mut h, 3, "p", "b", Some(0), false);
        power_loss(&mut h, 50);
        final_read(&mut h, 60, "c", 0, &[(0, "z"), (1, "a"), (2, "b")]);
        let v = check(&h);
        let mut k = kinds(&v.violations);
        k.sort();
        assert_eq!(k, vec![Kind::UnexpectedOffset, Kind::NonmonotonicSend]);
    }

    #[test]
    fn a_duplicate_is_not_excused_by_a_value_the_offset_held_before_it() {
        // "u" at 5 taken by a power loss; idempotent "v" then lands at 5 and, without a loss
        // that erases it, again at 9: a real duplicate. (A third loss later takes 9.)
        let mut h = History::default();
        h.write_caching.insert("t".into(), true);
        h.idempotent.insert("p".into(), true);
        poll(&mut h, 1, "c1", &[(5, "u")]);
        power_loss(&mut h, 2);
        send(&mut h, 3, "p", "v", None, false);
        poll(&mut h, 4, "c2", &[(5, "v")]);
        power_loss(&mut h, 5);
        poll(&mut h, 6, "c3", &[(9, "v")]);
        power_loss(&mut h, 7);
        final_read(
            &mut h,
            20,
            "c",
            5,
            &[(5, "v"), (6, "w6"), (7, "w7"), (8, "w8"), (9, "y")],
        );
        assert!(kinds(&check(&h).violations).contains(&Kind::Duplicate));
    }

    #[test]
    fn a_durable_write_is_never_replaced_even_with_write_caching() {
        // flush.messages=1 on a caching topic: "a" was synced before its answer, so no power
        // loss may give its offset to "b".
        let mut h = History::default();
        h.write_caching.insert("t".into(), true);
        send(&mut h, 1, "p", "a", Some(0), true);
        poll(&mut h, 3, "c1", &[(0, "a")]);
        power_loss(&mut h, 5);
        send(&mut h, 6, "p", "b", Some(0), false);
        poll(&mut h, 8, "c2", &[(0, "b")]);
        assert!(kinds(&check(&h).violations).contains(&Kind::InconsistentOffsets));
    }

    #[test]
    fn a_power_loss_before_a_later_write_does_not_excuse_reusing_its_offset() {
        // "a" at 5 survives a power loss; "c" is written at 6 after it; then "b" takes 5. The
        // log was cut below 6 after "c" was written, and no power loss came after that.
        let mut h = History::default();
        h.write_caching.insert("t".into(), true);
        send(&mut h, 1, "p", "a", Some(5), false);
        power_loss(&mut h, 3);
        poll(&mut h, 4, "c1", &[(5, "a")]);
        send(&mut h, 5, "p", "c", Some(6), false);
        poll(&mut h, 7, "c2", &[(6, "c")]);
        send(&mut h, 10, "p", "b", Some(5), false);
        poll(&mut h, 12, "c3", &[(5, "b")]);
        power_loss(&mut h, 20);
        assert!(kinds(&check(&h).violations).contains(&Kind::InconsistentOffsets));
        // With a power loss after "c" was written, it is what write caching allows.
        power_loss(&mut h, 8);
        h.entries.sort_by_key(|e| e.at);
        assert!(!kinds(&check(&h).violations).contains(&Kind::InconsistentOffsets));
    }

    #[test]
    fn sightings_answer_as_a_scan_of_them_does() {
        let mut x: u64 = 7;
        let mut next = |m: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        for n in [0usize, 1, 2, 3, 7, 64, 100] {
            let all: Vec<(i64, Micros, Micros)> = (0..n)
                .map(|_| (next(20) as i64, next(50), next(1000)))
                .collect();
            let s = Sightings::new(all.clone());
            for offset in -1..22 {
                for before in 0..52 {
                    let scan = all
                        .iter()
                        .filter(|(o, seen, _)| *o >= offset && *seen < before)
                        .map(|(_, _, sent)| *sent)
                        .max()
                        .unwrap_or(0);
                    assert_eq!(
                        s.latest_sent(offset, before),
                        scan,
                        "n={n} {offset} {before}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_clean_history_passes() {
        let mut h = History::default();
        h.idempotent.insert("p".into(), true);
        send(&mut h, 1, "p", "a", Some(0), true);
        send(&mut h, 2, "p", "b", Some(1), true);
        h.push(
            3,
            Seek {
                process: "c".into(),
                tp: tp(),
                offset: 0,
            },
        );
        poll(&mut h, 4, "c", &[(0, "a"), (1, "b")]);
        let v = check(&h);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert_eq!((v.acknowledged, v.records_read), (2, 2));
    }

    #[test]
    fn each_anomaly_is_named() {
        let mut h = History::default();
        h.idempotent.insert("p".into(), true);
        send(&mut h, 1, "p", "a", Some(0), true);
        send(&mut h, 2, "p", "lost", Some(1), true);
        send(&mut h, 3, "p", "c", Some(2), true);
        send(&mut h, 4, "p", "d", Some(3), true);
        h.push(
            5,
            SendInvoke {
                process: "p".into(),
                tp: tp(),
                value: "x".into(),
            },
        );
        h.push(
            6,
            SendFail {
                process: "p".into(),
                tp: tp(),
                value: "x".into(),
                error: "CORRUPT_MESSAGE".into(),
            },
        );
        send(&mut h, 7, "p", "e", Some(1), true); // acknowledged at a lower offset than d
        h.push(
            8,
            Seek {
                process: "c".into(),
                tp: tp(),
                offset: 0,
            },
        );
        poll(
            &mut h,
            9,
            "c",
            &[(0, "a"), (2, "c"), (3, "d"), (3, "x"), (3, "a"), (1, "e")],
        );
        h.push(
            10,
            Corrupt {
                process: "c".into(),
                tp: tp(),
                offset: 3,
                detail: "checksum".into(),
            },
        );
        let v = check(&h);
        let k = kinds(&v.violations);
        for want in [
            Kind::LostWrite,
            Kind::InconsistentOffsets,
            Kind::Duplicate,
            Kind::NonmonotonicSend,
            Kind::PollSkip,
            Kind::NonmonotonicPoll,
            Kind::AbortedRead,
            Kind::Corrupted,
        ] {
            assert!(k.contains(&want), "{want} missing from {k:?}");
        }
    }

    #[test]
    fn power_loss_excuses_only_what_was_not_durable() {
        let mut h = History::default();
        h.write_caching.insert("t".into(), true);
        send(&mut h, 1, "p", "cached", Some(0), false);
        send(&mut h, 2, "p", "synced", Some(1), true);
        send(&mut h, 2, "p", "cached-unread", Some(2), false);
        poll(&mut h, 3, "c1", &[(0, "cached")]);
        h.push(
            4,
            PowerLoss {
                host: "broker".into(),
            },
        );
        send(&mut h, 5, "p", "after", Some(0), false);
        h.push(
            6,
            FinalRead {
                process: "c2".into(),
            },
        );
        h.push(
            6,
            Seek {
                process: "c2".into(),
                tp: tp(),
                offset: 0,
            },
        );
        poll(&mut h, 7, "c2", &[(0, "after")]);
        h.final_readers.insert("c2".into());
        let v = check(&h);
        // "cached" lost and overwritten: allowed. "synced" lost: a violation.
        assert_eq!(kinds(&v.violations), vec![Kind::LostWrite]);
        assert!(v.violations[0].detail.contains("synced"));
        assert!(kinds(&v.allowed).contains(&Kind::InconsistentOffsets));
        assert!(kinds(&v.allowed).contains(&Kind::LostWrite));
        // Without write caching, consumers never see unsynced data: the same reads are a violation.
        h.write_caching.insert("t".into(), false);
        assert!(kinds(&check(&h).violations).contains(&Kind::InconsistentOffsets));
    }

    #[test]
    fn the_final_image_decides_what_survived() {
        // Read once, then gone from the log: lost, even though a consumer saw it.
        let mut h = History::default();
        send(&mut h, 1, "p", "a", Some(0), true);
        poll(&mut h, 2, "c", &[(0, "a")]);
        h.push(
            3,
            PowerLoss {
                host: "broker".into(),
            },
        );
        h.push(
            4,
            FinalRead {
                process: "c".into(),
            },
        );
        h.final_readers.insert("c".into());
        let v = check(&h);
        assert_eq!(kinds(&v.violations), vec![Kind::LostWrite]);
        assert!(v.violations[0].detail.contains("had been read"));
    }

    #[test]
    fn retention_and_plain_producers() {
        let mut h = History::default();
        h.log_start.insert(tp(), 5);
        send(&mut h, 1, "p", "old", Some(2), true);
        send(&mut h, 2, "p", "twice", Some(6), false);
        h.push(
            3,
            Seek {
                process: "c".into(),
                tp: tp(),
                offset: 6,
            },
        );
        poll(&mut h, 4, "c", &[(6, "twice"), (7, "twice")]);
        let v = check(&h);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert_eq!(kinds(&v.allowed), vec![Kind::Duplicate]);
    }

    #[test]
    fn a_plain_retry_in_the_final_image_keeps_both_copies() {
        // Seed 12: a plain producer's request outlived its timeout, the retry was written too,
        // and the answer named the first copy. The final read holds both; neither is lost.
        let mut h = History::default();
        send(&mut h, 1, "p", "twice", Some(0), false);
        h.push(
            2,
            FinalRead {
                process: "c".into(),
            },
        );
        h.push(
            2,
            Seek {
                process: "c".into(),
                tp: tp(),
                offset: 0,
            },
        );
        poll(&mut h, 3, "c", &[(0, "twice"), (1, "twice")]);
        h.final_readers.insert("c".into());
        let v = check(&h);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert_eq!(kinds(&v.allowed), vec![Kind::Duplicate]);
    }

    #[test]
    fn a_recovery_below_a_copy_erased_it_even_unread() {
        // Seed 9501634, write caching: "v" at 10, lost with a power loss (the log recovered to
        // 10), its retry at 13, lost with another, the next retry at 10 again. No consumer read
        // offset 10 while it held another value: only the recoveries say the copies are gone.
        let mut h = History::default();
        h.write_caching.insert("t".into(), true);
        h.idempotent.insert("p".into(), true);
        send(&mut h, 1, "p", "v", None, false);
        send(&mut h, 1, "q", "x", None, false);
        send(&mut h, 1, "q", "y", None, false);
        poll(&mut h, 2, "c", &[(10, "v"), (11, "x")]);
        let loss = |h: &mut History, at: u64, recovered: bool| {
            h.push(
                at,
                PowerLoss {
                    host: "broker".into(),
                },
            );
            if recovered {
                h.push(
                    at,
                    Recovered {
                        host: 0,
                        tp: tp(),
                        log_end: 10,
                    },
                );
            }
        };
        let run = |recovered: bool| {
            let mut h = h.clone();
            loss(&mut h, 3, recovered);
            poll(&mut h, 5, "c", &[(12, "y"), (13, "v")]);
            loss(&mut h, 6, recovered);
            h.push(
                7,
                Seek {
                    process: "c2".into(),
                    tp: tp(),
                    offset: 10,
                },
            );
            poll(&mut h, 8, "c2", &[(10, "v")]);
            check(&h)
        };
        let v = run(true);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
        assert!(kinds(&v.allowed).contains(&Kind::Duplicate));
        // Without the recoveries nothing shows offset 10 was erased: a duplicate.
        assert!(kinds(&run(false).violations).contains(&Kind::Duplicate));
    }
}
