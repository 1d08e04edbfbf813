//! Unit tests of the Raft core, driven by hand: a small in-memory driver persists each Ready,
//! acknowledges it, and delivers messages when the test says so.

use super::message::*;
use super::node::*;
use super::*;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// What a node has on disk.
#[derive(Debug, Clone, Default)]
struct Disk {
    quorum: QuorumState,
    /// The newest snapshot written.
    snapshot: Option<Snapshot>,
    /// Entries from the log start.
    log: Vec<Entry>,
}

/// Nodes, their disks, a clock and a wire, all under the test's control.
struct Net {
    nodes: BTreeMap<NodeId, RaftNode>,
    disks: BTreeMap<NodeId, Disk>,
    configs: BTreeMap<NodeId, Config>,
    now: i64,
    /// Messages sent and not yet delivered: (from, to, message).
    wire: VecDeque<(NodeId, NodeId, Message)>,
    /// Nodes whose messages, both ways, are dropped.
    cut: BTreeSet<NodeId>,
    /// Every Ready taken, per node, for tests that look at the order of things.
    readies: BTreeMap<NodeId, Vec<Ready>>,
}

impl Net {
    fn new(voters: &[NodeId], observers: &[NodeId]) -> Net {
        let mut net = Net {
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            configs: BTreeMap::new(),
            now: 0,
            wire: VecDeque::new(),
            cut: BTreeSet::new(),
            readies: BTreeMap::new(),
        };
        for &id in voters.iter().chain(observers) {
            let config = Config {
                request_timeout_ms: 1000,
                ..Config::new(id, voters.iter().copied())
            };
            net.configs.insert(id, config);
            net.disks.insert(id, Disk::default());
            net.start(id);
        }
        net
    }

    /// Starts (or restarts) `id` from its disk.
    fn start(&mut self, id: NodeId) {
        let disk = self.disks[&id].clone();
        let node = RaftNode::new(
            self.configs[&id].clone(),
            disk.quorum,
            disk.snapshot,
            disk.log,
            self.now,
            id as u64,
        )
        .unwrap();
        self.nodes.insert(id, node);
    }

    fn node(&self, id: NodeId) -> &RaftNode {
        &self.nodes[&id]
    }

    fn node_mut(&mut self, id: NodeId) -> &mut RaftNode {
        self.nodes.get_mut(&id).unwrap()
    }

    /// Writes every Ready of `id` to its disk, acknowledges it and puts its messages on the
    /// wire.
    fn sync(&mut self, id: NodeId) {
        while self.nodes[&id].has_ready() {
            let ready = self.node_mut(id).ready();
            let disk = self.disks.get_mut(&id).unwrap();
            if let Some(q) = ready.quorum_state {
                disk.quorum = q;
            }
            if let Some(s) = &ready.snapshot {
                disk.snapshot = Some(s.clone());
            }
            if ready.reset_log.is_some() {
                disk.log.clear();
            }
            if let Some(start) = ready.log_start {
                disk.log.retain(|e| e.offset >= start);
            }
            if let Some(end) = ready.truncate_to {
                disk.log.retain(|e| e.offset < end);
            }
            for e in &ready.entries {
                let next = disk.log.last().map_or_else(
                    || disk.snapshot.as_ref().map_or(0, |s| s.id.offset),
                    |l| l.offset + 1,
                );
                assert_eq!(e.offset, next);
                disk.log.push(e.clone());
            }
            self.node_mut(id).advance(ready.number);
            for m in &ready.messages {
                self.wire.push_back((id, m.to, m.message.clone()));
            }
            self.readies.entry(id).or_default().push(ready);
        }
    }

    fn sync_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.sync(id);
        }
    }

    /// Delivers messages until none are left.
    fn deliver_all(&mut self) {
        self.sync_all();
        let mut delivered = 0usize;
        while let Some((from, to, message)) = self.wire.pop_front() {
            delivered += 1;
            assert!(
                delivered < 100_000,
                "messages never stop: {from} -> {to} {message:?}"
            );
            if self.cut.contains(&from) || self.cut.contains(&to) || !self.nodes.contains_key(&to) {
                continue;
            }
            self.node_mut(to).step(from, message);
            self.sync(to);
        }
    }

    /// Moves the clock to `now` on every node and delivers everything.
    fn tick_to(&mut self, now: i64) {
        self.now = now;
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.node_mut(id).tick(now);
        }
        self.deliver_all();
    }

    /// Runs `ms` more in steps of 10 ms.
    fn run(&mut self, ms: i64) {
        let end = self.now + ms;
        while self.now < end {
            self.tick_to(self.now + 10);
        }
    }

    fn leaders(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.role() == Role::Leader)
            .map(|n| n.id())
            .collect()
    }

    /// Runs until exactly one leader, which it returns.
    fn elect(&mut self) -> NodeId {
        for _ in 0..1000 {
            self.run(10);
            if let [l] = self.leaders()[..] {
                return l;
            }
        }
        panic!("no leader elected");
    }
}

fn entry(offset: Offset, epoch: Epoch) -> Entry {
    Entry {
        offset,
        epoch,
        kind: EntryKind::Data,
        payload: Bytes::from(format!("{offset}@{epoch}")),
    }
}

fn log_of(epochs: &[Epoch]) -> Vec<Entry> {
    epochs
        .iter()
        .enumerate()
        .map(|(i, &e)| entry(i as Offset, e))
        .collect()
}

fn epochs_of(log: &RaftLog) -> Vec<Epoch> {
    log.slice(0, log.end_offset())
        .iter()
        .map(|e| e.epoch)
        .collect()
}

fn vote(candidate: NodeId, epoch: Epoch, last_epoch: Epoch, last_offset: Offset) -> Message {
    Message::Vote(Vote {
        candidate_epoch: epoch,
        candidate_id: candidate,
        last_offset_epoch: last_epoch,
        last_offset,
        pre_vote: false,
    })
}

fn pre_vote(candidate: NodeId, epoch: Epoch, last_epoch: Epoch, last_offset: Offset) -> Message {
    let Message::Vote(v) = vote(candidate, epoch, last_epoch, last_offset) else {
        unreachable!()
    };
    Message::Vote(Vote {
        pre_vote: true,
        ..v
    })
}

/// A lone node's answer to one vote request, with the Ready it came in.
fn answer(node: &mut RaftNode, from: NodeId, message: Message) -> (VoteResponse, Ready) {
    node.step(from, message);
    let ready = node.ready();
    node.advance(ready.number);
    let response = ready
        .messages
        .iter()
        .find_map(|m| match &m.message {
            Message::VoteResponse(r) if m.to == from => Some(r.clone()),
            _ => None,
        })
        .expect("no vote response");
    (response, ready)
}

fn voter(id: NodeId, quorum: QuorumState, log: Vec<Entry>) -> RaftNode {
    RaftNode::new(Config::new(id, [1, 2, 3]), quorum, None, log, 0, 7).unwrap()
}

// ----- the log -----

#[test]
fn epoch_cache_follows_appends_and_truncation() {
    let mut log = RaftLog::from_entries(log_of(&[1, 1, 3, 3, 5])).unwrap();
    assert_eq!(log.epochs(), &[(1, 0), (3, 2), (5, 4)]);
    let at = |log: &RaftLog, e| {
        let r = log.end_offset_for_epoch(e);
        (r.epoch, r.offset)
    };
    assert_eq!(at(&log, 0), (0, 0));
    assert_eq!(at(&log, 1), (1, 2));
    assert_eq!(at(&log, 2), (1, 2));
    assert_eq!(at(&log, 3), (3, 4));
    assert_eq!(at(&log, 5), (5, 5));
    assert_eq!(at(&log, 9), (5, 5));
    log.truncate(3);
    assert_eq!(log.epochs(), &[(1, 0), (3, 2)]);
    assert_eq!(at(&log, 5), (3, 3));
    log.truncate(2);
    assert_eq!(log.epochs(), &[(1, 0)]);
}

#[test]
fn a_log_with_gaps_or_falling_epochs_is_refused() {
    let mut gap = log_of(&[1, 1]);
    gap[1].offset = 2;
    assert!(RaftLog::from_entries(gap).is_err());
    assert!(RaftLog::from_entries(log_of(&[2, 1])).is_err());
    assert!(RaftLog::from_entries(log_of(&[0])).is_err());
}

// ----- elections -----

#[test]
fn three_voters_elect_one_leader_which_commits_its_leader_change_first() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let l = net.elect();
    let leader = net.node(l);
    assert_eq!(leader.epoch(), 1);
    let first = leader.log().entry(0).unwrap();
    assert_eq!(first.epoch, 1);
    assert_eq!(first.kind, EntryKind::LeaderChange { leader_id: l });
    net.run(100);
    for n in net.nodes.values() {
        assert_eq!(n.epoch(), 1);
        assert_eq!(n.leader_id(), Some(l));
        assert_eq!(n.high_watermark(), 1, "node {}", n.id());
    }
    // Every voter persisted the epoch; the leader persisted itself as leader.
    assert_eq!(net.disks[&l].quorum.leader_id, Some(l));
    assert_eq!(net.disks[&l].quorum.voted_for, Some(l));
}

#[test]
fn a_proposal_commits_and_is_handed_out_to_apply_on_every_node() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let l = net.elect();
    let offset = net.node_mut(l).propose(Bytes::from_static(b"x")).unwrap();
    assert_eq!(offset, 1);
    net.run(50);
    for id in [1, 2, 3] {
        assert_eq!(net.node(id).high_watermark(), 2);
        let applied: Vec<Entry> = net.readies[&id]
            .iter()
            .flat_map(|r| r.committed.clone())
            .collect();
        assert_eq!(applied.len(), 2, "node {id}");
        assert_eq!(applied[1].payload, Bytes::from_static(b"x"));
    }
    let follower = if l == 1 { 2 } else { 1 };
    assert_eq!(
        net.node_mut(follower).propose(Bytes::new()),
        Err(NotLeader {
            leader_id: Some(l),
            epoch: 1
        })
    );
}

#[test]
fn a_candidate_asks_for_votes_only_with_its_own_vote_to_persist_first() {
    let mut n = voter(1, QuorumState::default(), Vec::new());
    n.tick(3000);
    let r = n.ready();
    assert_eq!(r.quorum_state, None, "a pre-vote persists nothing");
    assert!(
        r.messages
            .iter()
            .all(|m| matches!(&m.message, Message::Vote(v) if v.pre_vote))
    );
    n.advance(r.number);
    n.step(
        2,
        Message::VoteResponse(VoteResponse {
            error: None,
            leader_id: None,
            leader_epoch: 0,
            vote_granted: true,
            pre_vote: true,
            candidate_epoch: 1,
        }),
    );
    assert_eq!(n.role(), Role::Candidate);
    let r = n.ready();
    assert_eq!(
        r.quorum_state,
        Some(QuorumState {
            epoch: 1,
            voted_for: Some(1),
            leader_id: None
        })
    );
    let votes = r
        .messages
        .iter()
        .filter(|m| matches!(&m.message, Message::Vote(v) if !v.pre_vote && v.candidate_epoch == 1))
        .count();
    assert_eq!(votes, 2);
}

// ----- vote rules -----

#[test]
fn a_vote_grant_comes_in_the_same_ready_as_the_quorum_state_naming_it() {
    let mut n = voter(1, QuorumState::default(), Vec::new());
    let (r, ready) = answer(&mut n, 2, vote(2, 1, 0, 0));
    assert!(r.vote_granted);
    assert_eq!(
        ready.quorum_state,
        Some(QuorumState {
            epoch: 1,
            voted_for: Some(2),
            leader_id: None
        }),
        "the driver fsyncs this before sending the grant"
    );
    // And nothing more is handed out before the driver acknowledges.
    n.step(3, vote(3, 1, 0, 0));
    let r = n.ready();
    assert!(!n.has_ready());
    let Message::VoteResponse(v) = &r.messages[0].message else {
        panic!()
    };
    assert!(!v.vote_granted, "one vote per epoch");
}

#[test]
fn votes_follow_the_rules() {
    let q = QuorumState {
        epoch: 5,
        voted_for: None,
        leader_id: None,
    };
    let log = log_of(&[1, 3, 3]);
    // Older epoch: fenced.
    let mut n = voter(1, q, log.clone());
    let (r, _) = answer(&mut n, 2, vote(2, 4, 3, 3));
    assert!(!r.vote_granted);
    assert_eq!(r.error, Some(RaftError::FencedLeaderEpoch));
    assert_eq!(r.leader_epoch, 5);
    // Less up-to-date log: a lower last epoch, or the same epoch and a shorter log.
    let (r, _) = answer(&mut n, 2, vote(2, 5, 2, 9));
    assert!(!r.vote_granted);
    let (r, _) = answer(&mut n, 2, vote(2, 5, 3, 2));
    assert!(!r.vote_granted);
    assert_eq!(n.quorum_state().voted_for, None);
    // Up to date: granted, then the same candidate again, but nobody else in the epoch.
    let (r, _) = answer(&mut n, 2, vote(2, 5, 3, 3));
    assert!(r.vote_granted);
    let (r, _) = answer(&mut n, 2, vote(2, 5, 3, 3));
    assert!(r.vote_granted);
    let (r, _) = answer(&mut n, 3, vote(3, 5, 9, 9));
    assert!(!r.vote_granted);
    // A higher epoch moves the voter into it, with a fresh vote.
    let (r, ready) = answer(&mut n, 3, vote(3, 7, 3, 3));
    assert!(r.vote_granted);
    assert_eq!(r.leader_epoch, 7);
    assert_eq!(
        ready.quorum_state,
        Some(QuorumState {
            epoch: 7,
            voted_for: Some(3),
            leader_id: None
        })
    );
    // Observers neither vote nor are voted for.
    let (r, _) = answer(&mut n, 4, vote(4, 8, 9, 9));
    assert_eq!(r.error, Some(RaftError::InconsistentVoterSet));
    assert_eq!(n.epoch(), 7);
}

#[test]
fn a_follower_refuses_votes_in_its_leaders_epoch() {
    let q = QuorumState {
        epoch: 2,
        voted_for: None,
        leader_id: Some(3),
    };
    let mut n = voter(1, q, Vec::new());
    assert_eq!(n.role(), Role::Follower);
    let (r, _) = answer(&mut n, 2, vote(2, 2, 9, 9));
    assert!(!r.vote_granted);
    assert_eq!(r.leader_id, Some(3));
}

#[test]
fn a_pre_vote_changes_nothing_and_a_follower_in_touch_refuses_it() {
    let mut n = voter(1, QuorumState::default(), Vec::new());
    let (r, ready) = answer(&mut n, 2, pre_vote(2, 1, 0, 0));
    assert!(r.vote_granted);
    assert!(r.pre_vote);
    assert_eq!(ready.quorum_state, None);
    assert_eq!(n.epoch(), 0);
    assert_eq!(n.quorum_state().voted_for, None);
    // A pre-vote does not use up the real vote.
    let (r, _) = answer(&mut n, 3, vote(3, 1, 0, 0));
    assert!(r.vote_granted);

    // A follower that just heard from its leader refuses, until the fetch timeout passes.
    let mut n = voter(1, QuorumState::default(), Vec::new());
    n.step(
        3,
        Message::BeginQuorumEpoch(BeginQuorumEpoch {
            leader_id: 3,
            leader_epoch: 1,
        }),
    );
    assert_eq!(n.role(), Role::Follower);
    let r = n.ready();
    n.advance(r.number);
    let (r, _) = answer(&mut n, 2, pre_vote(2, 2, 9, 9));
    assert!(!r.vote_granted);
    assert_eq!(r.leader_id, Some(3));
    n.tick(1999);
    let (r, _) = answer(&mut n, 2, pre_vote(2, 2, 9, 9));
    assert!(!r.vote_granted);
    assert_eq!(n.epoch(), 1, "a pre-vote bumps no epoch");
}

#[test]
fn a_partitioned_voter_cannot_disrupt_the_leader_with_pre_votes() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let l = net.elect();
    net.run(200);
    let lonely = if l == 3 { 2 } else { 3 };
    net.cut.insert(lonely);
    net.run(10_000);
    assert_eq!(net.node(lonely).epoch(), 1, "pre-votes bump no epoch");
    assert!(matches!(
        net.node(lonely).role(),
        Role::Prospective | Role::Follower
    ));
    net.cut.clear();
    net.run(3_000);
    assert_eq!(net.leaders(), vec![l]);
    assert_eq!(net.node(l).epoch(), 1);
    assert_eq!(net.node(lonely).leader_id(), Some(l));
}

/// A voter that moved to a later epoch nobody else saw (it granted itself a pre-vote round's
/// promotion, wrote the epoch and crashed) is refused every pre-vote while the leader lives,
/// since the others are in touch with it. The leader's BeginQuorumEpoch heartbeat to a voter
/// that does not fetch draws its epoch out, and the quorum moves past it (seed 48975).
#[test]
fn a_voter_stuck_in_an_epoch_nobody_saw_is_drawn_back_by_the_leaders_heartbeat() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let l = net.elect();
    net.run(500);
    let stuck = if l == 3 { 2 } else { 3 };
    let epoch = net.node(l).epoch();
    net.disks.get_mut(&stuck).unwrap().quorum = QuorumState {
        epoch: epoch + 1,
        voted_for: Some(stuck),
        leader_id: None,
    };
    net.start(stuck);
    net.run(20_000);
    let leaders = net.leaders();
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    let leader = leaders[0];
    assert!(net.node(leader).epoch() > epoch + 1);
    assert_eq!(net.node(stuck).leader_id(), Some(leader));
    assert_eq!(net.node(stuck).epoch(), net.node(leader).epoch());
}

// ----- fetch and truncation -----

/// Elects node 1 of [1, 2, 3] in `epoch + 1` with the given logs, node 3 voting for it, then
/// lets node 2 fetch.
fn failover_with_logs(
    leader_log: &[Epoch],
    follower_log: &[Epoch],
    epoch: Epoch,
) -> (Net, Vec<DivergingEpoch>) {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let q = QuorumState {
        epoch,
        voted_for: None,
        leader_id: None,
    };
    net.disks.insert(
        1,
        Disk {
            quorum: q,
            snapshot: None,
            log: log_of(leader_log),
        },
    );
    net.disks.insert(
        2,
        Disk {
            quorum: q,
            snapshot: None,
            log: log_of(follower_log),
        },
    );
    net.disks.insert(
        3,
        Disk {
            quorum: q,
            snapshot: None,
            log: log_of(leader_log),
        },
    );
    for id in [1, 2, 3] {
        net.start(id);
    }
    net.cut.insert(2);
    net.node_mut(1).tick(3000);
    net.deliver_all();
    assert_eq!(net.node(1).role(), Role::Leader);
    net.cut.clear();
    // Node 2 learns of the leader and fetches; record the diverging answers it gets.
    net.node_mut(1).tick(3000 + 1000);
    net.sync_all();
    let mut diverging = Vec::new();
    while let Some((from, to, message)) = net.wire.pop_front() {
        if let Message::FetchResponse(r) = &message
            && to == 2
            && let Some(d) = r.diverging_epoch
        {
            diverging.push(d);
        }
        net.node_mut(to).step(from, message);
        net.sync(to);
    }
    (net, diverging)
}

#[test]
fn a_diverging_follower_truncates_by_epoch_over_several_rounds() {
    // The leader-to-be has epochs 1,3,3,3; node 2 wrote 2,2 then 4 as leaders that failed.
    let (net, diverging) = failover_with_logs(&[1, 3, 3, 3], &[1, 2, 2, 4], 4);
    assert_eq!(
        diverging,
        vec![
            DivergingEpoch {
                epoch: 3,
                end_offset: 4
            },
            DivergingEpoch {
                epoch: 1,
                end_offset: 1
            }
        ]
    );
    let leader = net.node(1).log();
    assert_eq!(epochs_of(leader), vec![1, 3, 3, 3, 5]);
    assert_eq!(epochs_of(net.node(2).log()), epochs_of(leader));
    assert_eq!(net.disks[&2].log, leader.slice(0, 5).to_vec());
    // The truncation was handed to the driver as such.
    assert!(net.readies[&2].iter().any(|r| r.truncate_to == Some(3)));
    assert!(net.readies[&2].iter().any(|r| r.truncate_to == Some(1)));
    assert_eq!(net.node(2).high_watermark(), 5);
}

#[test]
fn a_follower_with_a_longer_tail_of_an_old_epoch_keeps_the_common_part() {
    // Node 2 got more of epoch 1 than the new leader; both share offsets 0..2.
    let (net, diverging) = failover_with_logs(&[1, 1], &[1, 1, 1, 1], 1);
    assert_eq!(
        diverging,
        vec![DivergingEpoch {
            epoch: 1,
            end_offset: 2
        }]
    );
    assert!(net.readies[&2].iter().any(|r| r.truncate_to == Some(2)));
    assert_eq!(epochs_of(net.node(2).log()), vec![1, 1, 2]);
}

#[test]
#[should_panic(expected = "below the high watermark")]
fn truncation_below_the_high_watermark_is_a_bug() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let l = net.elect();
    net.node_mut(l).propose(Bytes::from_static(b"a")).unwrap();
    net.run(100);
    let f = if l == 1 { 2 } else { 1 };
    assert_eq!(net.node(f).high_watermark(), 2);
    let fetch = net.node(f).fetch_request();
    // A (broken) leader tells the follower to cut back to 1.
    let State::Follower { in_flight, .. } = &mut net.node_mut(f).state else {
        panic!()
    };
    *in_flight = Some((fetch.clone(), 0));
    net.node_mut(f).step(
        l,
        Message::FetchResponse(FetchResponse {
            error: None,
            current_leader: LeaderAndEpoch {
                leader_id: Some(l),
                leader_epoch: 1,
            },
            high_watermark: 2,
            diverging_epoch: Some(DivergingEpoch {
                epoch: 0,
                end_offset: 1,
            }),
            snapshot_id: None,
            records: Vec::new(),
            fetch_offset: fetch.fetch_offset,
            last_fetched_epoch: fetch.last_fetched_epoch,
        }),
    );
}

// ----- high watermark -----

#[test]
fn the_high_watermark_needs_a_majority_and_the_leaders_own_durable_log() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let l = net.elect();
    net.run(100);
    let others: Vec<NodeId> = [1, 2, 3].into_iter().filter(|&x| x != l).collect();
    net.cut.extend(others.iter().copied());
    net.node_mut(l).propose(Bytes::from_static(b"a")).unwrap();
    net.run(500);
    assert_eq!(net.node(l).durable_end_offset(), 2);
    assert_eq!(
        net.node(l).high_watermark(),
        1,
        "the leader alone is no majority"
    );
    // One follower back: a majority of two.
    net.cut.remove(&others[0]);
    net.run(1200);
    assert_eq!(net.node(l).high_watermark(), 2);
    assert_eq!(net.node(others[0]).high_watermark(), 2);
    assert_eq!(net.node(others[1]).high_watermark(), 1);

    // A lone voter: its proposal commits only once the driver reports it durable.
    let mut n = RaftNode::new(
        Config::new(1, [1]),
        QuorumState::default(),
        None,
        Vec::new(),
        0,
        1,
    )
    .unwrap();
    n.tick(5000);
    assert_eq!(n.role(), Role::Leader);
    n.propose(Bytes::from_static(b"a")).unwrap();
    let r = n.ready();
    assert_eq!(r.entries.len(), 2);
    assert!(r.committed.is_empty());
    assert_eq!(n.high_watermark(), 0);
    n.advance(r.number);
    assert_eq!(n.high_watermark(), 2);
    assert_eq!(n.ready().committed.len(), 2);
}

#[test]
fn a_new_leader_commits_old_entries_only_through_an_entry_of_its_epoch() {
    // Nodes 1 and 3 both hold three entries of epoch 1, never known committed.
    let mut net2 = Net::new(&[1, 2, 3], &[]);
    let q = QuorumState {
        epoch: 1,
        voted_for: None,
        leader_id: None,
    };
    for id in [1, 3] {
        net2.disks.insert(
            id,
            Disk {
                quorum: q,
                snapshot: None,
                log: log_of(&[1, 1, 1]),
            },
        );
        net2.start(id);
    }
    net2.cut.insert(2);
    net2.node_mut(1).tick(3000);
    net2.sync_all();
    // Deliver until node 3 has answered its first fetch, but hold the answer to its second.
    while let Some((from, to, m)) = net2.wire.pop_front() {
        if net2.cut.contains(&to) || net2.cut.contains(&from) {
            continue;
        }
        let first_fetch = matches!(&m, Message::Fetch(f) if f.fetch_offset == 3);
        net2.node_mut(to).step(from, m);
        if first_fetch {
            // The leader knows node 3 holds 0..3 and itself 0..4 durably: a majority holds
            // 0..3, but offset 3 is its epoch's start, so nothing is committed yet.
            assert_eq!(net2.node(1).role(), Role::Leader);
            assert_eq!(net2.node(1).epoch(), 2);
            assert_eq!(net2.node(1).high_watermark(), 0);
        }
        net2.sync(to);
    }
    assert_eq!(net2.node(1).high_watermark(), 4);
    assert_eq!(net2.node(3).high_watermark(), 4);
}

// ----- leaving office -----

#[test]
fn a_leader_cut_off_from_the_majority_resigns_after_check_quorum() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let l = net.elect();
    net.run(100);
    net.cut.extend([1, 2, 3].into_iter().filter(|&x| x != l));
    // The followers' last fetches came at most the fetch max wait (500 ms) before the cut.
    net.run(2400);
    assert_eq!(
        net.node(l).role(),
        Role::Leader,
        "within 1.5 x fetch timeout"
    );
    net.run(700);
    assert_eq!(net.node(l).role(), Role::Resigned);
    assert_eq!(net.node(l).epoch(), 1);
    let last = net.readies[&l]
        .iter()
        .rev()
        .find(|r| !r.messages.is_empty())
        .unwrap();
    assert!(
        last.messages
            .iter()
            .any(|m| matches!(m.message, Message::EndQuorumEpoch(_)))
    );
}

#[test]
fn a_restarted_leader_comes_back_resigned_in_its_epoch() {
    let q = QuorumState {
        epoch: 3,
        voted_for: Some(1),
        leader_id: Some(1),
    };
    let mut n = voter(1, q, log_of(&[1, 3, 3]));
    assert_eq!(n.role(), Role::Resigned);
    assert_eq!(n.epoch(), 3);
    assert!(
        n.propose(Bytes::new()).is_err(),
        "no new offsets in its old epoch"
    );
    let (r, _) = answer(&mut n, 2, vote(2, 3, 3, 3));
    assert!(!r.vote_granted, "no second vote in its epoch");
    // It stands again in a later epoch.
    n.tick(10_000);
    assert_eq!(n.role(), Role::Prospective);

    // And a cluster gets going again around it.
    let mut net = Net::new(&[1, 2, 3], &[]);
    let l = net.elect();
    net.run(200);
    net.start(l);
    assert_eq!(net.node(l).role(), Role::Resigned);
    let l2 = net.elect();
    assert!(net.node(l2).epoch() >= 2);
}

#[test]
fn a_graceful_resignation_lets_the_first_successor_stand_at_once() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let l = net.elect();
    net.run(300);
    net.node_mut(l).resign();
    assert_eq!(net.node(l).role(), Role::Resigned);
    net.sync(l);
    let ends: Vec<&EndQuorumEpoch> = net
        .wire
        .iter()
        .filter_map(|(_, _, m)| match m {
            Message::EndQuorumEpoch(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(ends.len(), 2);
    assert_eq!(ends[0].preferred_successors.len(), 2);
    let first = ends[0].preferred_successors[0];
    net.deliver_all();
    net.now += 1;
    let now = net.now;
    net.node_mut(first).tick(now);
    assert_eq!(net.node(first).role(), Role::Prospective, "stood at once");
    net.deliver_all();
    assert_eq!(net.leaders(), vec![first]);
    assert_eq!(net.node(first).epoch(), 2);
}

// ----- observers -----

#[test]
fn an_observer_follows_the_leader_but_never_counts_votes_or_stands() {
    let mut net = Net::new(&[1, 2, 3], &[9]);
    let l = net.elect();
    net.run(3000);
    assert_eq!(net.node(9).leader_id(), Some(l));
    net.node_mut(l).propose(Bytes::from_static(b"a")).unwrap();
    net.run(100);
    assert_eq!(net.node(9).high_watermark(), 2);
    // Cut both followers: the observer fetching does not make a majority.
    net.cut.extend([1, 2, 3].into_iter().filter(|&x| x != l));
    net.node_mut(l).propose(Bytes::from_static(b"b")).unwrap();
    net.run(500);
    assert_eq!(net.node(9).log().end_offset(), 3);
    assert_eq!(net.node(l).high_watermark(), 2);
    // Every node cut off: the observer never stands.
    net.cut.extend([1, 2, 3]);
    net.run(20_000);
    assert!(matches!(
        net.node(9).role(),
        Role::Unattached | Role::Follower
    ));
    assert_eq!(net.node(9).epoch(), 1);
}

/// An observer that gave up on its leader (fetch timeout) asks random voters who leads; a
/// voter naming the same leader sends it back to that leader (seed 30086: it ignored every
/// such answer, since only the leader's own word counted, and stayed leaderless for good).
#[test]
fn an_observer_that_gave_up_on_its_leader_follows_it_again_when_a_voter_names_it() {
    let mut net = Net::new(&[1, 2, 3], &[9]);
    let l = net.elect();
    net.run(3000);
    assert_eq!(net.node(9).leader_id(), Some(l));
    net.cut.insert(9);
    net.run(10_000);
    assert_eq!(net.node(9).role(), Role::Unattached);
    let epoch = net.node(9).epoch();
    // Another voter's answer names the leader: the observer follows it again.
    net.node_mut(9).observe(epoch, Some(l), false);
    assert_eq!(net.node(9).role(), Role::Follower);
    assert_eq!(net.node(9).leader_id(), Some(l));
    net.cut.clear();
    net.node_mut(l).propose(Bytes::from_static(b"a")).unwrap();
    net.run(1000);
    assert_eq!(net.node(9).high_watermark(), net.node(l).high_watermark());
}

#[test]
fn the_same_inputs_give_the_same_outputs() {
    let run = || {
        let mut net = Net::new(&[1, 2, 3, 4, 5], &[]);
        let l = net.elect();
        net.node_mut(l).propose(Bytes::from_static(b"a")).unwrap();
        net.cut.insert(l);
        net.run(5000);
        let l2 = net.elect();
        (l, l2, net.now, format!("{:?}", net.readies))
    };
    assert_eq!(run(), run());
}

#[test]
fn a_held_fetch_superseded_by_a_newer_one_is_answered_too() {
    // The driver pairs answers with requests in order, per peer: a fetch the leader held and
    // then dropped for a newer one (the follower gave up on it, or restarted) left its waiter
    // to take the newer one's answer, and every later answer went one request late (found
    // by the simulator: a restarted follower never caught up).
    let mut net = Net::new(&[1, 2, 3], &[]);
    let leader = net.elect();
    net.run(100);
    let follower = if leader == 1 { 2 } else { 1 };
    let fetch = net.node(follower).fetch_request();
    // Caught up: the leader holds a fetch, then takes the same one again.
    net.node_mut(leader)
        .step(follower, Message::Fetch(fetch.clone()));
    net.node_mut(leader).step(follower, Message::Fetch(fetch));
    let ready = net.node_mut(leader).ready();
    let answers = ready
        .messages
        .iter()
        .filter(|m| m.to == follower && matches!(m.message, Message::FetchResponse(_)))
        .count();
    // The follower's own fetch, held since the last round, and the first of ours: each
    // superseded by the next, each answered at once.
    assert_eq!(
        answers, 2,
        "superseded fetches are answered: {:?}",
        ready.messages
    );
    net.node_mut(leader).advance(ready.number);
    // The newer one is answered when its wait ends.
    let now = net.now + 1_000;
    net.node_mut(leader).tick(now);
    let ready = net.node_mut(leader).ready();
    assert!(
        ready
            .messages
            .iter()
            .any(|m| m.to == follower && matches!(m.message, Message::FetchResponse(_))),
        "{:?}",
        ready.messages
    );
}

// ----- snapshots (KIP-630) -----

#[test]
fn the_log_compacts_below_a_snapshot_and_answers_fetches_below_it_with_the_snapshot() {
    let mut log = RaftLog::from_entries(log_of(&[1, 1, 2, 2, 2, 3])).unwrap();
    log.compact(3);
    assert_eq!(
        log.start(),
        OffsetAndEpoch {
            offset: 3,
            epoch: 2
        }
    );
    assert_eq!(log.end_offset(), 6);
    assert_eq!(log.epochs(), &[(2, 3), (3, 5)]);
    assert_eq!(log.entry(2), None);
    assert_eq!(log.entry(3).map(|e| e.epoch), Some(2));
    assert_eq!(log.epoch_before(3), Some(2));
    // Below the start, or at it in another epoch: the fetcher needs the snapshot.
    assert!(log.below_start(2, 1));
    assert!(log.below_start(3, 1));
    assert!(!log.below_start(3, 2));
    assert!(!log.below_start(5, 2));
    assert_eq!(
        log.end_offset_for_epoch(2),
        OffsetAndEpoch {
            offset: 5,
            epoch: 2
        }
    );
    // Compacting everything leaves an empty log whose last epoch is the snapshot's.
    log.compact(6);
    assert_eq!(log.end_offset(), 6);
    assert_eq!(log.last_epoch(), 3);
    assert!(log.epochs().is_empty());
    log.append(entry(6, 3));
    assert_eq!(log.epochs(), &[(3, 6)]);
    assert_eq!(
        log.end_offset_for_epoch(3),
        OffsetAndEpoch {
            offset: 7,
            epoch: 3
        }
    );
    // Read back from disk with entries below the snapshot still there: they are dropped.
    let again = RaftLog::starting_at(
        OffsetAndEpoch {
            offset: 2,
            epoch: 1,
        },
        log_of(&[1, 1, 2, 2]),
    )
    .unwrap();
    assert_eq!((again.start_offset(), again.end_offset()), (2, 4));
    // A log that starts past its snapshot is refused.
    let gap = RaftLog::starting_at(
        OffsetAndEpoch {
            offset: 1,
            epoch: 1,
        },
        log_of(&[1, 1, 2, 2])[2..].to_vec(),
    );
    assert!(matches!(gap, Err(log::LogError::Gap { .. })), "{gap:?}");
}

#[test]
fn a_follower_behind_the_leaders_snapshot_fetches_it_installs_it_and_restarts_from_it() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let leader = net.elect();
    let lagging = if leader == 3 { 2 } else { 3 };
    net.cut.insert(lagging);
    for i in 0..8 {
        net.node_mut(leader)
            .propose(Bytes::from(format!("p{i}")))
            .unwrap();
        net.run(20);
    }
    let hw = net.node(leader).high_watermark();
    assert!(hw >= 9, "high watermark {hw}");
    // Too early: nothing past what was handed out to apply, nor a repeat.
    let id = net
        .node_mut(leader)
        .snapshot(hw, Bytes::from_static(b"state"))
        .unwrap();
    assert_eq!(id.offset, hw);
    assert!(matches!(
        net.node_mut(leader).snapshot(hw, Bytes::new()),
        Err(SnapshotError::Stale { .. })
    ));
    net.sync(leader);
    assert_eq!(net.node(leader).log().start_offset(), hw);
    assert_eq!(net.disks[&leader].snapshot.as_ref().map(|s| s.id), Some(id));
    assert!(net.disks[&leader].log.iter().all(|e| e.offset >= hw));
    // The lagging follower comes back: its position is below the leader's log start.
    net.cut.clear();
    net.run(3_000);
    let f = net.node(lagging);
    assert_eq!(f.latest_snapshot_id(), Some(id));
    assert_eq!(f.log().start_offset(), hw);
    assert_eq!(f.log().end_offset(), net.node(leader).log().end_offset());
    assert_eq!(f.high_watermark(), net.node(leader).high_watermark());
    let restored: Vec<&Snapshot> = net.readies[&lagging]
        .iter()
        .filter_map(|r| r.restore.as_ref())
        .collect();
    assert_eq!(restored.len(), 1);
    assert_eq!(&restored[0].data[..], b"state");
    assert!(
        net.readies[&lagging]
            .iter()
            .any(|r| r.reset_log == Some(id))
    );
    // Committed entries handed out after the snapshot start at its end.
    net.node_mut(leader).propose(Bytes::from("after")).unwrap();
    net.run(500);
    let first_applied = net.readies[&lagging]
        .iter()
        .flat_map(|r| r.committed.iter())
        .map(|e| e.offset)
        .find(|&o| o >= hw);
    assert_eq!(first_applied, Some(hw));
    // Restarted from its disk: the snapshot first, then the entries after it.
    net.start(lagging);
    let n = net.node_mut(lagging);
    assert_eq!(n.log().start_offset(), hw);
    assert_eq!(n.high_watermark(), hw);
    let ready = n.ready();
    assert_eq!(ready.restore.map(|s| s.id), Some(id));
    assert!(ready.committed.is_empty());
}

#[test]
fn a_fetch_snapshot_of_an_old_snapshot_or_outside_it_is_refused() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let leader = net.elect();
    net.node_mut(leader).propose(Bytes::from("x")).unwrap();
    net.run(100);
    let hw = net.node(leader).high_watermark();
    let id = net
        .node_mut(leader)
        .snapshot(hw, Bytes::from_static(b"0123456789"))
        .unwrap();
    net.sync(leader);
    let epoch = net.node(leader).epoch();
    let ask = |snapshot_id, position| {
        Message::FetchSnapshot(FetchSnapshot {
            replica_id: 9,
            current_leader_epoch: epoch,
            snapshot_id,
            position,
            max_bytes: 4,
        })
    };
    let answers = |net: &mut Net, m: Message| {
        net.node_mut(leader).step(9, m);
        let ready = net.node_mut(leader).ready();
        net.node_mut(leader).advance(ready.number);
        ready
            .messages
            .into_iter()
            .find_map(|o| match o.message {
                Message::FetchSnapshotResponse(r) => Some(r),
                _ => None,
            })
            .unwrap()
    };
    let r = answers(&mut net, ask(id, 4));
    assert_eq!((r.error, r.size, &r.bytes[..]), (None, 10, &b"4567"[..]));
    let r = answers(&mut net, ask(id, 11));
    assert_eq!(r.error, Some(RaftError::PositionOutOfRange));
    let old = OffsetAndEpoch {
        offset: id.offset - 1,
        epoch: id.epoch,
    };
    let r = answers(&mut net, ask(old, 0));
    assert_eq!(r.error, Some(RaftError::SnapshotNotFound));
}
