use super::*;
use proptest::prelude::*;

fn tp(t: &str, p: i32) -> TopicPartition {
    TopicPartition::new(t, p)
}

fn member(id: &str, topics: &[&str], owned: &[TopicPartition], generation: i32) -> Member {
    Member {
        member_id: id.to_string(),
        group_instance_id: None,
        topics: topics.iter().map(|t| t.to_string()).collect(),
        owned: owned.to_vec(),
        generation,
    }
}

fn counts(n: &[(&str, i32)]) -> BTreeMap<String, i32> {
    n.iter().map(|(t, c)| (t.to_string(), *c)).collect()
}

#[test]
fn names_and_java_class_names_parse() {
    for a in [
        Assignor::Range,
        Assignor::RoundRobin,
        Assignor::CooperativeSticky,
    ] {
        assert_eq!(a.name().parse::<Assignor>().unwrap(), a);
    }
    assert_eq!(
        "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"
            .parse::<Assignor>()
            .unwrap(),
        Assignor::CooperativeSticky
    );
    assert!("sticky".parse::<Assignor>().is_err());
}

#[test]
fn range_gives_the_first_members_the_extra_partitions_as_java_does() {
    let ms = [member("b", &["t"], &[], -1), member("a", &["t"], &[], -1)];
    let out = assign(Assignor::Range, &ms, &counts(&[("t", 7)]));
    assert_eq!(
        out["a"],
        vec![tp("t", 0), tp("t", 1), tp("t", 2), tp("t", 3)]
    );
    assert_eq!(out["b"], vec![tp("t", 4), tp("t", 5), tp("t", 6)]);
}

#[test]
fn static_members_are_ordered_by_instance_id_first() {
    let mut z = member("a-dynamic", &["t"], &[], -1);
    z.group_instance_id = Some("z".into());
    let mut y = member("b-dynamic", &["t"], &[], -1);
    y.group_instance_id = Some("y".into());
    let out = assign(Assignor::Range, &[z, y], &counts(&[("t", 2)]));
    assert_eq!(out["b-dynamic"], vec![tp("t", 0)]);
    assert_eq!(out["a-dynamic"], vec![tp("t", 1)]);
}

#[test]
fn round_robin_skips_members_not_subscribed() {
    let ms = [
        member("a", &["t", "u"], &[], -1),
        member("b", &["t"], &[], -1),
    ];
    let out = assign(Assignor::RoundRobin, &ms, &counts(&[("t", 3), ("u", 2)]));
    assert_eq!(
        out["a"],
        vec![tp("t", 0), tp("t", 2), tp("u", 0), tp("u", 1)]
    );
    assert_eq!(out["b"], vec![tp("t", 1)]);
}

#[test]
fn cooperative_sticky_moves_partitions_in_two_rounds_never_directly() {
    let six: Vec<TopicPartition> = (0..6).map(|p| tp("t", p)).collect();
    let ms = [member("a", &["t"], &six, 1), member("b", &["t"], &[], -1)];
    let first = assign(Assignor::CooperativeSticky, &ms, &counts(&[("t", 6)]));
    // a keeps half; the other half is revoked, not yet given to b.
    assert_eq!(first["a"].len(), 3);
    assert!(first["b"].is_empty());
    let ms = [
        member("a", &["t"], &first["a"], 2),
        member("b", &["t"], &[], 2),
    ];
    let second = assign(Assignor::CooperativeSticky, &ms, &counts(&[("t", 6)]));
    assert_eq!(second["a"], first["a"]);
    assert_eq!(second["b"].len(), 3);
}

#[test]
fn cooperative_sticky_stale_claims_lose_to_the_later_generation() {
    let ms = [
        member("a", &["t"], &[tp("t", 0)], 3),
        member("b", &["t"], &[tp("t", 0)], 2),
    ];
    let out = assign(Assignor::CooperativeSticky, &ms, &counts(&[("t", 2)]));
    assert_eq!(out["a"], vec![tp("t", 0)]);
    assert_eq!(out["b"], vec![tp("t", 1)]);
}

/// A group: up to 5 members, each subscribing to a subset of three topics and claiming some
/// partitions (possibly stale or duplicate claims).
fn group() -> impl Strategy<Value = (Vec<Member>, BTreeMap<String, i32>)> {
    let topics = prop::collection::vec(0i32..6, 3);
    (
        topics,
        prop::collection::vec((any::<u8>(), any::<u16>(), 0i32..4), 1..6),
    )
        .prop_map(|(sizes, ms)| {
            let names = ["t0", "t1", "t2"];
            let partitions: BTreeMap<String, i32> = names
                .iter()
                .zip(&sizes)
                .map(|(n, s)| (n.to_string(), *s))
                .collect();
            let members = ms
                .into_iter()
                .enumerate()
                .map(|(i, (subs, owned_bits, generation))| {
                    let mut topics: Vec<&str> = names
                        .iter()
                        .enumerate()
                        .filter(|(k, _)| subs & (1 << k) != 0)
                        .map(|(_, n)| *n)
                        .collect();
                    if topics.is_empty() {
                        topics.push("t0");
                    }
                    let owned: Vec<TopicPartition> = (0..16)
                        .filter(|b| owned_bits & (1 << b) != 0)
                        .map(|b| tp(names[b % 3], (b / 3) as i32))
                        .collect();
                    member(&format!("m{i}"), &topics, &owned, generation)
                })
                .collect();
            (members, partitions)
        })
}

fn check_valid(
    members: &[Member],
    partitions: &BTreeMap<String, i32>,
    out: &BTreeMap<String, Vec<TopicPartition>>,
) -> BTreeSet<TopicPartition> {
    assert_eq!(out.len(), members.len(), "every member is answered");
    let mut seen = BTreeSet::new();
    for m in members {
        for tp in &out[&m.member_id] {
            assert!(m.topics.contains(&tp.topic), "{tp} to a non-subscriber");
            assert!(tp.partition < partitions[&tp.topic], "{tp} does not exist");
            assert!(seen.insert(tp.clone()), "{tp} assigned twice");
        }
    }
    seen
}

fn subscribed(members: &[Member], partitions: &BTreeMap<String, i32>) -> BTreeSet<TopicPartition> {
    members
        .iter()
        .flat_map(|m| m.topics.iter())
        .flat_map(|t| (0..partitions[t]).map(move |p| tp(t, p)))
        .collect()
}

proptest! {
    #[test]
    fn eager_assignors_assign_every_partition_once((members, partitions) in group()) {
        for a in [Assignor::Range, Assignor::RoundRobin] {
            let out = assign(a, &members, &partitions);
            let seen = check_valid(&members, &partitions, &out);
            prop_assert_eq!(&seen, &subscribed(&members, &partitions));
        }
    }

    /// The cooperative protocol: no partition goes to a member other than its valid owner in
    /// one round; members revoke what they lost and rejoin, and within a few rounds
    /// everything is assigned; with equal subscriptions in two rounds, evenly, and what a
    /// member kept in the first round it keeps in the second.
    #[test]
    fn cooperative_sticky_converges((members, partitions) in group()) {
        let uniform = members.iter().all(|m| m.topics == members[0].topics);
        let mut current = members.clone();
        let mut rounds = 0;
        loop {
            rounds += 1;
            let out = assign(Assignor::CooperativeSticky, &current, &partitions);
            let seen = check_valid(&current, &partitions, &out);
            // Never straight from one owner to another: the owner (the only claimant of
            // the latest generation that still subscribes) must give it up first.
            for m in &current {
                for tp in &out[&m.member_id] {
                    let claims: Vec<&Member> = current
                        .iter()
                        .filter(|n| n.owned.contains(tp) && n.topics.contains(&tp.topic))
                        .collect();
                    let top = claims.iter().map(|n| n.generation).max();
                    let owners: Vec<&&Member> =
                        claims.iter().filter(|n| Some(n.generation) == top).collect();
                    if owners.len() == 1 {
                        prop_assert_eq!(&owners[0].member_id, &m.member_id, "{} moved directly", tp);
                    }
                }
            }
            if rounds > 1 {
                for m in &current {
                    if uniform && rounds == 2 {
                        for tp in &m.owned {
                            prop_assert!(out[&m.member_id].contains(tp), "{} lost {}", m.member_id, tp);
                        }
                    }
                }
            }
            if seen == subscribed(&current, &partitions) {
                if uniform {
                    let sizes: Vec<usize> = out.values().map(Vec::len).collect();
                    let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                    prop_assert!(hi - lo <= 1, "unbalanced: {:?}", sizes);
                }
                break;
            }
            prop_assert!(rounds < 2 || !uniform, "equal subscriptions took more than two rounds");
            prop_assert!(rounds < 6, "no convergence in {} rounds", rounds);
            // Each member owns what it was given, in a new generation.
            current = current
                .iter()
                .map(|m| Member { owned: out[&m.member_id].clone(), generation: 9 + rounds, ..m.clone() })
                .collect();
        }
    }
}
