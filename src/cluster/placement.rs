//! Replica placement for new partitions, after KRaft's `StripedReplicaPlacer`.
//!
//! Brokers are grouped by rack (brokers without a rack form one rack of their own). Each
//! partition takes its first replica (its preferred leader) from the next rack in turn, and its
//! followers from the racks after it, one broker per rack per pass, so leaders and followers
//! are striped across racks and, within a rack, across brokers. Each rack's broker list and
//! the rack list start at a random offset, and once as many partitions were placed as there are
//! brokers the lists are reshuffled, so consecutive topics do not all start on the same broker.
//! With `n` equal brokers, every `n` consecutive partitions have `n` different leaders.
//!
//! Two differences from Kafka: only active brokers (unfenced, not shutting down) are used,
//! so a replication factor above their number is refused rather than placing followers on
//! fenced brokers; and the pass counter never goes back to 0 after a reshuffle (Kafka's does,
//! which can leave a rack's list looking exhausted for a whole pass).

use rand::Rng;
use rand::seq::SliceRandom;

/// A broker that may receive replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsableBroker {
    /// The broker's id.
    pub id: i32,
    /// Its rack, if it has one.
    pub rack: Option<String>,
}

/// Why replicas could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("invalid replication factor {0}: the replication factor must be positive")]
    NonPositive(i32),
    #[error("all brokers are currently fenced")]
    NoBrokers,
    #[error(
        "the target replication factor of {wanted} cannot be reached because only {available} broker(s) are available"
    )]
    TooFewBrokers { wanted: i32, available: usize },
}

/// One rack's brokers, handed out in turn, each at most once per pass.
#[derive(Debug)]
struct BrokerList {
    /// The brokers, sorted then shuffled.
    brokers: Vec<i32>,
    /// How many were handed out in the current pass.
    index: usize,
    /// Where the current pass starts.
    offset: usize,
    /// The pass `index` counts for.
    pass: u64,
}

impl BrokerList {
    /// The next broker of pass `pass`, or `None` when all were handed out in it.
    fn next(&mut self, pass: u64) -> Option<i32> {
        if self.brokers.is_empty() {
            return None;
        }
        if self.pass != pass {
            self.pass = pass;
            self.index = 0;
            self.offset = (self.offset + 1) % self.brokers.len();
        }
        if self.index >= self.brokers.len() {
            return None;
        }
        let b = self.brokers[(self.index + self.offset) % self.brokers.len()];
        self.index += 1;
        Some(b)
    }
}

/// The racks, handed out in turn.
#[derive(Debug)]
struct RackList {
    /// Racks by name (sorted, `None` first), then shuffled.
    racks: Vec<(Option<String>, BrokerList)>,
    /// Number of brokers over all racks.
    brokers: usize,
    /// The current pass; one per partition placed.
    pass: u64,
    /// Partitions placed since the last shuffle.
    placed: usize,
    /// The rack the next partition's leader comes from.
    offset: usize,
}

impl RackList {
    fn new(brokers: &[UsableBroker], rng: &mut impl Rng) -> RackList {
        let mut by_rack: std::collections::BTreeMap<Option<String>, Vec<i32>> =
            std::collections::BTreeMap::new();
        for b in brokers {
            by_rack.entry(b.rack.clone()).or_default().push(b.id);
        }
        let racks: Vec<_> = by_rack
            .into_iter()
            .map(|(name, mut ids)| {
                ids.sort_unstable();
                ids.dedup();
                let offset = rng.random_range(0..ids.len());
                let list = BrokerList {
                    brokers: ids,
                    index: 0,
                    offset,
                    pass: 0,
                };
                (name, list)
            })
            .collect();
        let offset = if racks.is_empty() {
            0
        } else {
            rng.random_range(0..racks.len())
        };
        RackList {
            brokers: racks.iter().map(|(_, l)| l.brokers.len()).sum(),
            racks,
            pass: 0,
            placed: 0,
            offset,
        }
    }

    /// Places one partition's `rf` replicas (`rf` ≤ the number of brokers).
    fn place(&mut self, rf: usize, rng: &mut impl Rng) -> Vec<i32> {
        assert!(rf >= 1 && rf <= self.brokers, "checked by the caller");
        if self.placed == self.brokers && self.brokers > 1 {
            self.racks.shuffle(rng);
            for (_, list) in &mut self.racks {
                list.brokers.shuffle(rng);
            }
            self.placed = 0;
        }
        if self.offset >= self.racks.len() {
            self.offset = 0;
        }
        let n = self.racks.len();
        let pass = self.pass;
        let mut out = Vec::with_capacity(rf);
        // The leader: the next rack (from `offset`) that has a broker left in this pass.
        let mut first_rack = self.offset;
        loop {
            if let Some(b) = self.racks[first_rack].1.next(pass) {
                out.push(b);
                break;
            }
            first_rack = (first_rack + 1) % n;
        }
        // Followers: one broker per rack per round, skipping the leader's rack once.
        let mut rack = self.offset;
        let mut skip = Some(first_rack);
        let mut tries = 0;
        while out.len() < rf {
            tries += 1;
            assert!(tries <= 2 * (self.brokers + n), "placement loops");
            if skip == Some(rack) {
                skip = None;
            } else if let Some(b) = self.racks[rack].1.next(pass) {
                out.push(b);
            }
            rack = (rack + 1) % n;
        }
        self.pass += 1;
        self.placed += 1;
        self.offset += 1;
        out
    }
}

/// Places `partitions` partitions of `rf` replicas each on `brokers` (the usable ones).
/// Each inner list has `rf` different brokers, its preferred leader first.
pub fn place(
    brokers: &[UsableBroker],
    partitions: usize,
    rf: i32,
    rng: &mut impl Rng,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    if rf < 1 {
        return Err(PlacementError::NonPositive(rf));
    }
    let mut racks = RackList::new(brokers, rng);
    if racks.brokers == 0 {
        return Err(PlacementError::NoBrokers);
    }
    if rf as usize > racks.brokers {
        return Err(PlacementError::TooFewBrokers {
            wanted: rf,
            available: racks.brokers,
        });
    }
    Ok((0..partitions)
        .map(|_| racks.place(rf as usize, rng))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::collections::{BTreeMap, BTreeSet};

    fn brokers(n: i32, racks: usize) -> Vec<UsableBroker> {
        (0..n)
            .map(|id| UsableBroker {
                id,
                rack: (racks > 0).then(|| format!("r{}", id as usize % racks)),
            })
            .collect()
    }

    fn leader_counts(placed: &[Vec<i32>]) -> BTreeMap<i32, usize> {
        let mut counts = BTreeMap::new();
        for r in placed {
            *counts.entry(r[0]).or_insert(0) += 1;
        }
        counts
    }

    #[test]
    fn leaders_and_followers_are_spread_evenly() {
        for seed in 0..50 {
            let mut rng = StdRng::seed_from_u64(seed);
            let placed = place(&brokers(5, 0), 12, 3, &mut rng).unwrap();
            let counts = leader_counts(&placed);
            assert_eq!(counts.len(), 5, "every broker leads something");
            let (min, max) = (counts.values().min(), counts.values().max());
            assert!(max.unwrap() - min.unwrap() <= 1, "{counts:?}");
            let mut replicas = BTreeMap::new();
            for r in &placed {
                assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), 3, "{r:?}");
                for b in r {
                    *replicas.entry(*b).or_insert(0) += 1;
                }
            }
            let (min, max) = (replicas.values().min(), replicas.values().max());
            assert!(max.unwrap() - min.unwrap() <= 3, "{replicas:?}");
        }
    }

    #[test]
    fn replicas_go_to_different_racks() {
        for seed in 0..50 {
            let mut rng = StdRng::seed_from_u64(seed);
            let bs = brokers(6, 3);
            let rack = |id: i32| bs[id as usize].rack.clone();
            for r in place(&bs, 10, 3, &mut rng).unwrap() {
                let racks: BTreeSet<_> = r.iter().map(|b| rack(*b)).collect();
                assert_eq!(racks.len(), 3, "{r:?}");
            }
        }
    }

    #[test]
    fn uneven_racks_never_repeat_a_broker() {
        let bs = vec![
            UsableBroker {
                id: 1,
                rack: Some("a".into()),
            },
            UsableBroker {
                id: 2,
                rack: Some("b".into()),
            },
            UsableBroker {
                id: 3,
                rack: Some("b".into()),
            },
            UsableBroker { id: 4, rack: None },
        ];
        for seed in 0..100 {
            let mut rng = StdRng::seed_from_u64(seed);
            for rf in 1..=4 {
                for r in place(&bs, 9, rf, &mut rng).unwrap() {
                    assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), rf as usize);
                }
            }
        }
    }

    #[test]
    fn the_seed_decides_the_placement() {
        let run = |seed| place(&brokers(4, 2), 8, 2, &mut StdRng::seed_from_u64(seed)).unwrap();
        assert_eq!(run(7), run(7));
        assert!((0..20).any(|s| run(s) != run(7)), "the start is random");
    }

    #[test]
    fn refuses_impossible_factors() {
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(
            place(&brokers(2, 0), 1, 3, &mut rng),
            Err(PlacementError::TooFewBrokers {
                wanted: 3,
                available: 2
            })
        );
        assert_eq!(
            place(&brokers(2, 0), 1, 0, &mut rng),
            Err(PlacementError::NonPositive(0))
        );
        assert_eq!(place(&[], 1, 1, &mut rng), Err(PlacementError::NoBrokers));
    }
}
