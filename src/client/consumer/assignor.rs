//! Partition assignors: how a group's leader splits the subscribed partitions among the
//! members, with the names and rules of the Java client's (`range`, `roundrobin`,
//! `cooperative-sticky`), so a group can mix runnel with other clients that share an assignor.
//!
//! Members are ordered as Java orders them: by `group.instance.id` when they have one (static
//! members keep their place across restarts), then by member id.
//!
//! `cooperative-sticky` (KIP-429) keeps each member's owned partitions where it can, balances
//! the rest, and never hands a partition straight from one member to another in one
//! rebalance: such a partition is left out of the new owner's assignment, the old owner
//! revokes it and rejoins, and the next rebalance gives it away. So no partition is ever
//! consumed by two members at once, without the "stop the world" of eager assignors.

use super::super::TopicPartition;
use crate::client::error::ClientError;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

/// An assignment strategy (`partition.assignment.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Assignor {
    /// Per topic, consecutive ranges of partitions (Java's `RangeAssignor`).
    Range,
    /// Every partition in turn to the next subscribed member (`RoundRobinAssignor`).
    RoundRobin,
    /// Sticky and incremental (`CooperativeStickyAssignor`).
    CooperativeSticky,
}

impl Assignor {
    /// The protocol name members announce in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// The assignor of a protocol name.
    pub fn by_name(name: &str) -> Option<Assignor> {
        [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }

    /// Whether members keep their partitions through a rebalance (the cooperative protocol)
    /// instead of giving them all up before joining (eager).
    pub fn is_cooperative(self) -> bool {
        self == Assignor::CooperativeSticky
    }
}

impl FromStr for Assignor {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Assignor, ClientError> {
        // Java's class names are accepted too, as its consumer accepts them.
        let short = s.rsplit('.').next().unwrap_or(s);
        let named = match short {
            "RangeAssignor" => Some(Assignor::Range),
            "RoundRobinAssignor" => Some(Assignor::RoundRobin),
            "CooperativeStickyAssignor" => Some(Assignor::CooperativeSticky),
            _ => Assignor::by_name(s),
        };
        named.ok_or_else(|| {
            ClientError::Config(format!(
                "partition.assignment.strategy '{s}' is not range, roundrobin or cooperative-sticky"
            ))
        })
    }
}

/// What a member told the leader in JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// The topics it subscribes to.
    pub topics: Vec<String>,
    /// The partitions it owns now (cooperative members say; eager members own none).
    pub owned: Vec<TopicPartition>,
    /// The generation in which it was given `owned`; -1 if unknown.
    pub generation: i32,
}

/// Splits the partitions of the subscribed topics (`partitions`: topic → partition count;
/// topics missing from it are skipped) among `members`. Every member appears in the answer,
/// with its partitions sorted.
pub fn assign(
    assignor: Assignor,
    members: &[Member],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut order: Vec<&Member> = members.iter().collect();
    order.sort_by(|a, b| {
        (
            a.group_instance_id.is_none(),
            &a.group_instance_id,
            &a.member_id,
        )
            .cmp(&(
                b.group_instance_id.is_none(),
                &b.group_instance_id,
                &b.member_id,
            ))
    });
    let mut out: BTreeMap<String, Vec<TopicPartition>> = members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect();
    match assignor {
        Assignor::Range => range(&order, partitions, &mut out),
        Assignor::RoundRobin => round_robin(&order, partitions, &mut out),
        Assignor::CooperativeSticky => cooperative_sticky(&order, partitions, &mut out),
    }
    for tps in out.values_mut() {
        tps.sort();
    }
    out
}

fn subscribes(m: &Member, topic: &str) -> bool {
    m.topics.iter().any(|t| t == topic)
}

/// Every partition some member subscribes to, sorted.
fn all_partitions(order: &[&Member], partitions: &BTreeMap<String, i32>) -> Vec<TopicPartition> {
    let topics: BTreeSet<&String> = order.iter().flat_map(|m| m.topics.iter()).collect();
    topics
        .into_iter()
        .filter_map(|t| partitions.get(t).map(|n| (t, *n)))
        .flat_map(|(t, n)| (0..n.max(0)).map(move |p| TopicPartition::new(t.as_str(), p)))
        .collect()
}

fn range(
    order: &[&Member],
    partitions: &BTreeMap<String, i32>,
    out: &mut BTreeMap<String, Vec<TopicPartition>>,
) {
    for (topic, &count) in partitions {
        let subscribed: Vec<&&Member> = order.iter().filter(|m| subscribes(m, topic)).collect();
        if subscribed.is_empty() || count <= 0 {
            continue;
        }
        let n = subscribed.len() as i32;
        let (each, extra) = (count / n, count % n);
        for (i, m) in subscribed.iter().enumerate() {
            let i = i as i32;
            let start = each * i + i.min(extra);
            let len = each + i32::from(i < extra);
            let mine = out.entry(m.member_id.clone()).or_default();
            mine.extend((start..start + len).map(|p| TopicPartition::new(topic.as_str(), p)));
        }
    }
}

fn round_robin(
    order: &[&Member],
    partitions: &BTreeMap<String, i32>,
    out: &mut BTreeMap<String, Vec<TopicPartition>>,
) {
    if order.is_empty() {
        return;
    }
    let mut next = 0usize;
    for tp in all_partitions(order, partitions) {
        // The next member in the circle that subscribes to this topic.
        for step in 0..order.len() {
            let m = order[(next + step) % order.len()];
            if subscribes(m, &tp.topic) {
                out.entry(m.member_id.clone()).or_default().push(tp);
                next = (next + step + 1) % order.len();
                break;
            }
        }
    }
}

fn cooperative_sticky(
    order: &[&Member],
    partitions: &BTreeMap<String, i32>,
    out: &mut BTreeMap<String, Vec<TopicPartition>>,
) {
    let all = all_partitions(order, partitions);
    if order.is_empty() || all.is_empty() {
        return;
    }
    let exists: BTreeSet<&TopicPartition> = all.iter().collect();
    // Who owns what now: a claim counts if the partition still exists and the member still
    // subscribes to its topic; two claims on one partition go to the later generation (the
    // other is stale), and an even tie leaves it to neither.
    let mut claims: BTreeMap<TopicPartition, (i32, Option<usize>)> = BTreeMap::new();
    for (i, m) in order.iter().enumerate() {
        for tp in &m.owned {
            if !exists.contains(tp) || !subscribes(m, &tp.topic) {
                continue;
            }
            match claims.get(tp) {
                Some((g, _)) if *g > m.generation => {}
                Some((g, _)) if *g == m.generation => {
                    claims.insert(tp.clone(), (*g, None));
                }
                _ => {
                    claims.insert(tp.clone(), (m.generation, Some(i)));
                }
            }
        }
    }
    let previous: BTreeMap<&TopicPartition, usize> = claims
        .iter()
        .filter_map(|(tp, (_, owner))| owner.map(|o| (tp, o)))
        .collect();
    // Each member keeps what it owns; balancing below takes away any excess.
    let mut owner: BTreeMap<&TopicPartition, usize> = BTreeMap::new();
    let mut count = vec![0usize; order.len()];
    let eligible = |tp: &TopicPartition| -> Vec<usize> {
        (0..order.len())
            .filter(|&i| subscribes(order[i], &tp.topic))
            .collect()
    };
    for (tp, &i) in &previous {
        owner.insert(tp, i);
        count[i] += 1;
    }
    // The rest to whoever subscribes and has fewest (the earlier member on a tie).
    for tp in &all {
        if owner.contains_key(tp) {
            continue;
        }
        if let Some(&i) = eligible(tp).iter().min_by_key(|&&i| (count[i], i)) {
            owner.insert(tp, i);
            count[i] += 1;
        }
    }
    // Balance: move a partition to an eligible member with at least two fewer, preferring to
    // move partitions that are not staying with their previous owner. Each move lowers the
    // sum of squared counts, so this ends.
    loop {
        let mut moved = false;
        let mut candidates: Vec<&TopicPartition> = owner.keys().copied().collect();
        candidates.sort_by_key(|tp| (previous.get(tp) == owner.get(tp), *tp));
        for tp in candidates {
            let from = owner[tp];
            let to = eligible(tp)
                .into_iter()
                .filter(|&j| count[j] + 1 < count[from])
                .min_by_key(|&j| (count[j], j));
            if let Some(to) = to {
                owner.insert(tp, to);
                count[from] -= 1;
                count[to] += 1;
                moved = true;
                break;
            }
        }
        if !moved {
            break;
        }
    }
    // Cooperative: a partition owned by another member goes nowhere this round.
    for (tp, i) in owner {
        if previous.get(tp).is_some_and(|&p| p != i) {
            continue;
        }
        out.entry(order[i].member_id.clone())
            .or_default()
            .push(tp.clone());
    }
}

#[cfg(test)]
mod tests;
