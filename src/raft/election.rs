//! Elections: pre-votes (KIP-996), votes (KIP-595), and the epoch announcements
//! BeginQuorumEpoch and EndQuorumEpoch, with the rule every message obeys: a higher epoch seen
//! anywhere moves the node into it.

use super::NodeId;
use super::log::{Entry, EntryKind, Epoch};
use super::message::{
    BeginQuorumEpoch, EndQuorumEpoch, EpochResponse, Message, RaftError, Vote, VoteResponse,
};
use super::node::{Election, Leading, QuorumState, RaftNode, State};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

impl RaftNode {
    /// Learns of `epoch` and, if known, its `leader` from any message: a higher epoch is
    /// joined (following its leader, or unattached), and a leader of the current epoch is
    /// followed by a node that knew none. `heard` when the leader itself sent the message: a
    /// voter that gave up on its leader (Prospective) follows it again only on its word, not
    /// on a follower's that has not noticed yet. An observer that gave up on its leader asks a
    /// random voter who leads and follows the leader named (else, told by a voter that the
    /// same leader still leads, it never fetched from it again: seed 30086 left a broker
    /// without a controller, fenced, for the rest of the run).
    pub(super) fn observe(&mut self, epoch: Epoch, leader: Option<NodeId>, heard: bool) {
        let me = self.config.node_id;
        let leader = leader.filter(|&l| l != me);
        if epoch > self.quorum.epoch {
            match leader {
                Some(l) => self.become_follower(epoch, l, heard),
                None => self.become_unattached(epoch),
            }
        } else if epoch == self.quorum.epoch
            && let Some(l) = leader
            && matches!(
                self.state,
                State::Unattached { .. } | State::Prospective(_) | State::Candidate(_)
            )
            && match self.quorum.leader_id {
                None => true,
                Some(known) => known == l && (heard || !self.is_voter()),
            }
        {
            self.become_follower(epoch, l, heard);
        }
    }

    // ----- standing -----

    /// Asks the voters for pre-votes in the current epoch; nothing is persisted.
    pub(super) fn become_prospective(&mut self) {
        assert!(self.is_voter(), "an observer never stands");
        let mut election = Election::default();
        election.granted.insert(self.config.node_id);
        election.deadline_ms = self.election_deadline();
        self.set_state(State::Prospective(election));
        self.ask_votes();
        self.check_election();
    }

    /// Stands in the next epoch, voting for itself (persisted before any request goes out).
    fn become_candidate(&mut self) {
        let me = self.config.node_id;
        self.set_quorum(QuorumState {
            epoch: self.quorum.epoch + 1,
            voted_for: Some(me),
            leader_id: None,
        });
        let mut election = Election::default();
        election.granted.insert(me);
        election.deadline_ms = self.election_deadline();
        self.set_state(State::Candidate(election));
        self.ask_votes();
        self.check_election();
    }

    /// Leads the epoch: writes its LeaderChange entry first (the high watermark passes the
    /// epoch's start only once that entry is committed) and announces itself.
    fn become_leader(&mut self) {
        let me = self.config.node_id;
        let epoch = self.quorum.epoch;
        self.set_quorum(QuorumState {
            epoch,
            voted_for: Some(me),
            leader_id: Some(me),
        });
        let start = self.log.end_offset();
        let mut acked = BTreeSet::new();
        acked.insert(me);
        self.set_state(State::Leader(Leading {
            epoch_start_offset: start,
            replicas: BTreeMap::new(),
            acked,
            next_begin_ms: self.now_ms,
            since_ms: self.now_ms,
            parked: BTreeMap::new(),
        }));
        self.append(Entry {
            offset: start,
            epoch,
            kind: EntryKind::LeaderChange { leader_id: me },
            payload: Bytes::new(),
        });
        self.tick_leader();
        self.maybe_advance_high_watermark();
    }

    /// The request a prospective or candidate sends.
    fn vote_request(&self) -> Vote {
        let pre_vote = matches!(self.state, State::Prospective(_));
        Vote {
            candidate_epoch: self.quorum.epoch + i32::from(pre_vote),
            candidate_id: self.config.node_id,
            last_offset_epoch: self.log.last_epoch(),
            last_offset: self.log.end_offset(),
            pre_vote,
        }
    }

    /// Sends the vote request to each voter that has not answered and was not asked within the
    /// request timeout.
    fn ask_votes(&mut self) {
        let now = self.now_ms;
        let timeout = self.config.request_timeout_ms;
        let request = self.vote_request();
        let (State::Prospective(e) | State::Candidate(e)) = &mut self.state else {
            return;
        };
        let mut to = Vec::new();
        for &v in &self.config.voters {
            let answered = e.granted.contains(&v) || e.rejected.contains(&v);
            let due = e.asked_ms.get(&v).is_none_or(|&t| now >= t + timeout);
            if !answered && due {
                e.asked_ms.insert(v, now);
                to.push(v);
            }
        }
        for v in to {
            self.send(v, Message::Vote(request.clone()));
        }
    }

    /// Moves on once a majority granted; backs off once a majority cannot be had.
    fn check_election(&mut self) {
        let majority = self.majority();
        let voters = self.config.voters.len();
        let (State::Prospective(e) | State::Candidate(e)) = &self.state else {
            return;
        };
        if e.granted.len() >= majority {
            match self.state {
                State::Prospective(_) => self.become_candidate(),
                _ => self.become_leader(),
            }
        } else if e.rejected.len() == voters - majority + 1 {
            // Lost (this is the refusal that made it so): try again after a backoff.
            self.election_retries += 1;
            let backoff = self.election_backoff_ms();
            let now = self.now_ms;
            if let State::Prospective(e) | State::Candidate(e) = &mut self.state {
                e.deadline_ms = e.deadline_ms.min(now + backoff);
            }
        }
    }

    /// An election past its deadline starts over with pre-votes; otherwise resends.
    pub(super) fn tick_election(&mut self) {
        let (State::Prospective(e) | State::Candidate(e)) = &self.state else {
            return;
        };
        if self.now_ms >= e.deadline_ms {
            self.election_retries += 1;
            let epoch = self.quorum.epoch;
            match (&self.state, self.quorum.leader_id) {
                // A follower that stood and lost tries its leader again (KIP-996); it stands
                // again if that fetch times out too.
                (State::Prospective(_), Some(l)) if l != self.config.node_id => {
                    self.become_follower(epoch, l, false)
                }
                _ => self.become_prospective(),
            }
        } else {
            self.ask_votes();
        }
    }

    // ----- voting -----

    pub(super) fn on_vote(&mut self, from: NodeId, v: Vote) {
        let voters = &self.config.voters;
        let error = if !voters.contains(&v.candidate_id) || !self.is_voter() {
            Some(RaftError::InconsistentVoterSet)
        } else if v.candidate_epoch < self.quorum.epoch {
            Some(RaftError::FencedLeaderEpoch)
        } else {
            None
        };
        let mut granted = false;
        if error.is_none() {
            if !v.pre_vote && v.candidate_epoch > self.quorum.epoch {
                self.become_unattached(v.candidate_epoch);
            }
            let log_ok = (v.last_offset_epoch, v.last_offset)
                >= (self.log.last_epoch(), self.log.end_offset());
            granted = if v.pre_vote {
                log_ok && self.can_grant_pre_vote()
            } else {
                v.candidate_epoch == self.quorum.epoch
                    && log_ok
                    && self.can_grant_vote(v.candidate_id)
            };
            if granted && !v.pre_vote && self.quorum.voted_for.is_none() {
                self.record_vote(v.candidate_id);
                let deadline_ms = self.election_deadline();
                self.set_state(State::Unattached { deadline_ms });
            }
        }
        let response = VoteResponse {
            error,
            leader_id: self.leader_id(),
            leader_epoch: self.quorum.epoch,
            vote_granted: granted,
            pre_vote: v.pre_vote,
            candidate_epoch: v.candidate_epoch,
        };
        self.send(from, Message::VoteResponse(response));
    }

    /// A vote in the current epoch: only while no leader is known in it, and only for the
    /// candidate already voted for, if any.
    fn can_grant_vote(&self, candidate: NodeId) -> bool {
        matches!(self.state, State::Unattached { .. } | State::Prospective(_))
            && self.quorum.leader_id.is_none()
            && self.quorum.voted_for.is_none_or(|v| v == candidate)
    }

    /// A pre-vote: refused by a leader, and by a follower that fetched from its leader within
    /// the fetch timeout (KIP-996), so a node cut off and back cannot disrupt a working leader.
    fn can_grant_pre_vote(&self) -> bool {
        match &self.state {
            State::Leader(_) => false,
            State::Follower {
                last_contact_ms: Some(t),
                ..
            } => self.now_ms - t >= self.config.fetch_timeout_ms,
            _ => true,
        }
    }

    pub(super) fn on_vote_response(&mut self, from: NodeId, r: VoteResponse) {
        self.observe(r.leader_epoch, r.leader_id, r.leader_id == Some(from));
        if !self.config.voters.contains(&from) {
            return;
        }
        let epoch = self.quorum.epoch;
        let e = match &mut self.state {
            State::Prospective(e) if r.pre_vote && r.candidate_epoch == epoch + 1 => e,
            State::Candidate(e)
                if !r.pre_vote && r.candidate_epoch == epoch && r.leader_epoch == epoch =>
            {
                e
            }
            _ => return,
        };
        if e.granted.contains(&from) || e.rejected.contains(&from) {
            return;
        }
        e.asked_ms.remove(&from);
        if r.vote_granted && r.error.is_none() {
            e.granted.insert(from);
        } else {
            e.rejected.insert(from);
        }
        self.check_election();
    }

    // ----- epoch announcements -----

    pub(super) fn on_begin_quorum_epoch(&mut self, from: NodeId, b: BeginQuorumEpoch) {
        let mut error = None;
        if b.leader_epoch < self.quorum.epoch {
            error = Some(RaftError::FencedLeaderEpoch);
        } else {
            self.observe(b.leader_epoch, Some(b.leader_id), true);
            let now = self.now_ms;
            match &mut self.state {
                State::Follower {
                    leader_id,
                    last_contact_ms,
                    ..
                } if *leader_id == b.leader_id && self.quorum.epoch == b.leader_epoch => {
                    *last_contact_ms = Some(now);
                }
                _ => error = Some(RaftError::NotLeaderOrFollower),
            }
        }
        let response = EpochResponse {
            error,
            leader_id: self.leader_id(),
            leader_epoch: self.quorum.epoch,
        };
        self.send(from, Message::BeginQuorumEpochResponse(response));
    }

    pub(super) fn on_begin_response(&mut self, from: NodeId, r: EpochResponse) {
        self.observe(r.leader_epoch, r.leader_id, r.leader_id == Some(from));
        let epoch = self.quorum.epoch;
        if let State::Leader(l) = &mut self.state
            && r.error.is_none()
            && r.leader_epoch == epoch
        {
            l.acked.insert(from);
        }
    }

    /// A resigning leader: its followers stand after a backoff by their rank among its
    /// preferred successors (the first at once), and stop refusing pre-votes.
    pub(super) fn on_end_quorum_epoch(&mut self, from: NodeId, e: EndQuorumEpoch) {
        let mut error = None;
        if e.leader_epoch < self.quorum.epoch {
            error = Some(RaftError::FencedLeaderEpoch);
        } else {
            if e.leader_epoch > self.quorum.epoch {
                self.become_unattached(e.leader_epoch);
            }
            let me = self.config.node_id;
            let rank = e.preferred_successors.iter().position(|&s| s == me);
            let rank = rank.unwrap_or(e.preferred_successors.len());
            let at = self.now_ms + self.successor_backoff_ms(rank);
            let voter = self.is_voter();
            match &mut self.state {
                State::Follower {
                    leader_id,
                    fetch_deadline_ms,
                    last_contact_ms,
                    ..
                } if *leader_id == e.leader_id => {
                    *fetch_deadline_ms = (*fetch_deadline_ms).min(at);
                    *last_contact_ms = None;
                }
                State::Unattached { deadline_ms } if voter => {
                    *deadline_ms = (*deadline_ms).min(at);
                }
                _ => {}
            }
        }
        let response = EpochResponse {
            error,
            leader_id: self.leader_id(),
            leader_epoch: self.quorum.epoch,
        };
        self.send(from, Message::EndQuorumEpochResponse(response));
    }

    pub(super) fn on_end_response(&mut self, from: NodeId, r: EpochResponse) {
        self.observe(r.leader_epoch, r.leader_id, r.leader_id == Some(from));
        let epoch = self.quorum.epoch;
        if let State::Resigned { acked, .. } = &mut self.state
            && r.error.is_none()
            && r.leader_epoch == epoch
        {
            acked.insert(from);
        }
    }
}
