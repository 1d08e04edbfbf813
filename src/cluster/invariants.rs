//! Invariants of the metadata state, for tests and the simulator's state checker.
//!
//! [`ClusterState::check_invariants`] checks one state; [`check_transition`] checks two
//! successive states of one node; [`LeaderLedger`] remembers every (partition, leader epoch)
//! seen on any node and finds two leaders for one epoch. They hold after every batch the
//! controller writes (a batch is applied whole); between the records of one batch they need
//! not.

use super::records::NO_LEADER;
use super::state::{ClusterState, PartitionMeta};
use std::collections::BTreeMap;

impl ClusterState {
    /// Checks the state's invariants:
    ///
    /// - every topic has exactly the partitions `0..partitions`, and the id index matches;
    /// - replicas are non-empty and distinct; the ISR is non-empty, distinct and within the
    ///   replicas; the leader is in the ISR, or is [`NO_LEADER`]; epochs are not negative;
    /// - a leader is a registered broker that is unfenced and not shutting down (unless no
    ///   broker has registered at all: a one-node log from before registration, where the
    ///   node that created the cluster leads);
    /// - broker epochs are distinct and below `next_broker_epoch`.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.topic_names.len() != self.topics.len() {
            return Err(format!(
                "{} topic ids for {} topics",
                self.topic_names.len(),
                self.topics.len()
            ));
        }
        for (name, t) in &self.topics {
            if self.topic_names.get(&t.id) != Some(name) {
                return Err(format!("topic '{name}' is not indexed by its id {}", t.id));
            }
            if t.parts.keys().copied().ne(0..t.partitions) {
                return Err(format!(
                    "topic '{name}' has {} partitions but states for {:?}",
                    t.partitions,
                    t.parts.keys().collect::<Vec<_>>()
                ));
            }
            for (n, p) in &t.parts {
                self.check_partition(p)
                    .map_err(|e| format!("{name}-{n} {p:?}: {e}"))?;
            }
        }
        let mut epochs = BTreeMap::new();
        for b in self.brokers.values() {
            if b.epoch >= self.next_broker_epoch {
                return Err(format!(
                    "broker {} has epoch {} but the next epoch is {}",
                    b.id, b.epoch, self.next_broker_epoch
                ));
            }
            if let Some(other) = epochs.insert(b.epoch, b.id) {
                return Err(format!(
                    "brokers {other} and {} share epoch {}",
                    b.id, b.epoch
                ));
            }
        }
        Ok(())
    }

    fn check_partition(&self, p: &PartitionMeta) -> Result<(), String> {
        if p.replicas.is_empty() {
            return Err("no replicas".into());
        }
        if has_repeats(&p.replicas) {
            return Err("a broker holds two replicas".into());
        }
        if p.isr.is_empty() {
            return Err("empty ISR".into());
        }
        if has_repeats(&p.isr) {
            return Err("a broker is twice in the ISR".into());
        }
        if let Some(b) = p.isr.iter().find(|b| !p.replicas.contains(b)) {
            return Err(format!("ISR member {b} holds no replica"));
        }
        if p.leader_epoch < 0 || p.partition_epoch < 0 {
            return Err("negative epoch".into());
        }
        if p.leader == NO_LEADER {
            return Ok(());
        }
        if !p.isr.contains(&p.leader) {
            return Err(format!("leader {} is not in the ISR", p.leader));
        }
        if !self.brokers.is_empty() && !self.is_active(p.leader) {
            return Err(format!(
                "leader {} is not an active broker ({:?})",
                p.leader,
                self.brokers.get(&p.leader)
            ));
        }
        Ok(())
    }
}

fn has_repeats(ids: &[i32]) -> bool {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.windows(2).any(|w| w[0] == w[1])
}

/// Checks that `after` can follow `before` on one node: for every partition of a topic in
/// both, the leader and partition epochs never go back; a partition that changed has a newer
/// partition epoch; a different leader has a newer leader epoch (one leader per epoch); and
/// no broker's epoch goes back.
pub fn check_transition(before: &ClusterState, after: &ClusterState) -> Result<(), String> {
    if after.next_broker_epoch < before.next_broker_epoch {
        return Err(format!(
            "next broker epoch went back from {} to {}",
            before.next_broker_epoch, after.next_broker_epoch
        ));
    }
    for (id, b) in &before.brokers {
        if let Some(a) = after.brokers.get(id) {
            if a.epoch < b.epoch {
                return Err(format!(
                    "broker {id}'s epoch went back from {} to {}",
                    b.epoch, a.epoch
                ));
            }
        }
    }
    for (name, t) in &before.topics {
        let Some(ta) = after.topic_by_id(t.id) else {
            continue;
        };
        for (n, p) in &t.parts {
            let Some(pa) = ta.parts.get(n) else {
                return Err(format!("{name}-{n} disappeared while its topic stayed"));
            };
            let at = |what: &str| format!("{name}-{n}: {what} ({p:?} then {pa:?})");
            if pa.leader_epoch < p.leader_epoch {
                return Err(at("leader epoch went back"));
            }
            if pa.partition_epoch < p.partition_epoch {
                return Err(at("partition epoch went back"));
            }
            if pa.leader_epoch == p.leader_epoch && pa.leader != p.leader {
                return Err(at("two leaders in one leader epoch"));
            }
            if pa.partition_epoch == p.partition_epoch && pa != p {
                return Err(at("changed without a new partition epoch"));
            }
        }
    }
    Ok(())
}

/// Every (topic id, partition, leader epoch) -> leader seen, across nodes and time: finds two
/// leaders for one leader epoch of a partition, on one node or on two.
#[derive(Debug, Clone, Default)]
pub struct LeaderLedger {
    /// What was seen.
    leaders: BTreeMap<(uuid::Uuid, i32, i32), i32>,
}

impl LeaderLedger {
    /// Records every partition's leader in `state`; fails if an epoch had another leader.
    pub fn observe(&mut self, state: &ClusterState) -> Result<(), String> {
        for (t, n, p) in state.partitions() {
            let seen = *self
                .leaders
                .entry((t.id, n, p.leader_epoch))
                .or_insert(p.leader);
            if seen != p.leader {
                return Err(format!(
                    "{}-{n} has leaders {seen} and {} in leader epoch {}",
                    t.name, p.leader, p.leader_epoch
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::records::MetadataRecord;

    /// A state with one topic `t` (id 1) of one partition on brokers 0 and 1, both active.
    fn state() -> ClusterState {
        let mut s = ClusterState::default();
        for b in [0, 1] {
            s.apply(&MetadataRecord::BrokerRegistered {
                broker_id: b,
                incarnation_id: [b as u8; 16],
                broker_epoch: i64::from(b),
                endpoints: vec![],
                rack: None,
                fenced: false,
            });
        }
        s.apply(&MetadataRecord::TopicCreated {
            name: "t".into(),
            topic_id: [1; 16],
            partitions: 1,
            replication_factor: 2,
            configs: BTreeMap::new(),
        });
        s.apply(&MetadataRecord::PartitionRecord {
            topic_id: [1; 16],
            partition: 0,
            replicas: vec![0, 1],
            isr: vec![0, 1],
            leader: 0,
            leader_epoch: 3,
            partition_epoch: 5,
        });
        s
    }

    /// A way to break a partition.
    type Breakage = fn(&mut PartitionMeta);

    fn with(s: &ClusterState, f: impl FnOnce(&mut PartitionMeta)) -> ClusterState {
        let mut s = s.clone();
        f(s.topics.get_mut("t").unwrap().parts.get_mut(&0).unwrap());
        s
    }

    #[test]
    fn broken_partitions_are_reported() {
        let s = state();
        s.check_invariants().unwrap();
        let cases: [(&str, Breakage); 8] = [
            ("no replicas", |p| p.replicas.clear()),
            ("two replicas", |p| p.replicas = vec![0, 0]),
            ("empty ISR", |p| p.isr.clear()),
            ("twice in the ISR", |p| p.isr = vec![0, 0]),
            ("holds no replica", |p| p.isr = vec![0, 7]),
            ("not in the ISR", |p| p.isr = vec![1]),
            ("negative epoch", |p| p.leader_epoch = -2),
            ("not an active broker", |p| {
                p.replicas.push(5);
                p.isr.push(5);
                p.leader = 5;
            }),
        ];
        for (expected, f) in cases {
            let err = with(&s, f).check_invariants().unwrap_err();
            assert!(err.contains(expected), "{expected}: {err}");
        }
        let mut fenced = s.clone();
        fenced.apply(&MetadataRecord::BrokerFenced {
            broker_id: 0,
            broker_epoch: 0,
        });
        assert!(fenced.check_invariants().is_err(), "a fenced leader");
        let mut missing = s.clone();
        missing.topics.get_mut("t").unwrap().partitions = 2;
        assert!(
            missing.check_invariants().is_err(),
            "partition 1 has no state"
        );
    }

    #[test]
    fn transitions_keep_epochs_and_one_leader_per_epoch() {
        let s = state();
        let ok = with(&s, |p| {
            p.leader = 1;
            p.leader_epoch += 1;
            p.partition_epoch += 1;
        });
        check_transition(&s, &ok).unwrap();
        let cases: [(&str, Breakage); 4] = [
            ("two leaders in one leader epoch", |p| {
                p.leader = 1;
                p.partition_epoch += 1;
            }),
            ("leader epoch went back", |p| {
                p.leader_epoch -= 1;
                p.partition_epoch += 1;
            }),
            ("partition epoch went back", |p| p.partition_epoch -= 1),
            ("without a new partition epoch", |p| p.isr = vec![0]),
        ];
        for (expected, f) in cases {
            let err = check_transition(&s, &with(&s, f)).unwrap_err();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn the_ledger_finds_two_leaders_for_one_epoch_across_nodes() {
        let mut ledger = LeaderLedger::default();
        let s = state();
        ledger.observe(&s).unwrap();
        // Another node, at the same leader epoch, with another leader.
        let other = with(&s, |p| p.leader = 1);
        let err = ledger.observe(&other).unwrap_err();
        assert!(err.contains("leaders 0 and 1"), "{err}");
        ledger
            .observe(&with(&s, |p| {
                p.leader = 1;
                p.leader_epoch += 1;
            }))
            .unwrap();
    }
}
