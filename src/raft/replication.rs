//! Log replication, KRaft's pull way: followers and observers Fetch from the leader with
//! their log end and last epoch; the leader checks the position against its epoch cache and
//! answers entries or a diverging epoch; a follower told it diverges truncates by epoch and
//! fetches again. The leader's high watermark is the end offset a majority of voters hold
//! durably, and passes the leader's own epoch start before it counts.

use super::NodeId;
use super::log::Offset;
use super::message::{DivergingEpoch, Fetch, FetchResponse, Message, RaftError};
use super::node::{PlantedBug, RaftNode, State};

impl RaftNode {
    /// A fetch from this node's log end.
    pub(super) fn fetch_request(&self) -> Fetch {
        Fetch {
            replica_id: self.config.node_id,
            current_leader_epoch: self.quorum.epoch,
            fetch_offset: self.log.end_offset(),
            last_fetched_epoch: self.log.last_epoch(),
            high_watermark: self.high_watermark,
        }
    }

    /// A follower fetches from its leader (one fetch in flight at a time). The request goes
    /// out with the Ready that makes the log up to `fetch_offset` durable.
    pub(super) fn send_fetch(&mut self) {
        let request = self.fetch_request();
        let now = self.now_ms;
        let State::Follower {
            leader_id,
            in_flight,
            ..
        } = &mut self.state
        else {
            return;
        };
        let to = *leader_id;
        *in_flight = Some((request.clone(), now));
        self.send(to, Message::Fetch(request));
    }

    /// A follower whose leader has been silent past the fetch timeout stands (an observer
    /// looks for another leader); otherwise it fetches when due.
    pub(super) fn tick_follower(&mut self) {
        let now = self.now_ms;
        let State::Follower {
            fetch_deadline_ms,
            in_flight,
            next_fetch_ms,
            ..
        } = &self.state
        else {
            return;
        };
        if now >= *fetch_deadline_ms {
            if self.is_voter() {
                self.become_prospective();
            } else {
                self.set_state(State::Unattached { deadline_ms: now });
            }
            return;
        }
        let due = match in_flight {
            Some((_, sent)) => now >= sent + self.config.request_timeout_ms,
            None => now >= *next_fetch_ms,
        };
        if due {
            self.send_fetch();
        }
    }

    /// Check-quorum, held fetches past their wait, and BeginQuorumEpoch resends.
    pub(super) fn tick_leader(&mut self) {
        let now = self.now_ms;
        let me = self.config.node_id;
        let check_ms = self.config.fetch_timeout_ms * 3 / 2;
        let majority = self.majority();
        let State::Leader(l) = &mut self.state else {
            return;
        };
        if now - l.since_ms >= check_ms {
            let fetched_recently = |v: &NodeId| {
                l.replicas
                    .get(v)
                    .and_then(|r| r.last_fetch_ms)
                    .is_some_and(|t| now - t < check_ms)
            };
            let recent = self
                .config
                .voters
                .iter()
                .filter(|&&v| v == me || fetched_recently(&v));
            if recent.count() < majority {
                self.resign();
                return;
            }
        }
        let expired: Vec<NodeId> = l
            .parked
            .iter()
            .filter(|(_, (_, deadline))| now >= *deadline)
            .map(|(id, _)| *id)
            .collect();
        let expired: Vec<(NodeId, Fetch)> = expired
            .into_iter()
            .filter_map(|id| l.parked.remove(&id).map(|(f, _)| (id, f)))
            .collect();
        let begin_due = now >= l.next_begin_ms;
        let unacked: Vec<NodeId> = if begin_due {
            l.next_begin_ms = now + self.config.fetch_timeout_ms / 2;
            let acked = &l.acked;
            self.config
                .voters
                .iter()
                .filter(|v| !acked.contains(v))
                .copied()
                .collect()
        } else {
            Vec::new()
        };
        for (id, f) in expired {
            let response = self.fetch_answer(&f);
            self.send(id, Message::FetchResponse(response));
        }
        let begin = super::message::BeginQuorumEpoch {
            leader_id: me,
            leader_epoch: self.quorum.epoch,
        };
        for v in unacked {
            self.send(v, Message::BeginQuorumEpoch(begin.clone()));
        }
    }

    /// Where a fetch position parts from this node's log, if it does: Kafka's
    /// `validateOffsetAndEpoch` over the epoch cache.
    fn diverging(&self, f: &Fetch) -> Option<DivergingEpoch> {
        let end = self.log.end_offset_for_epoch(f.last_fetched_epoch);
        (end.epoch != f.last_fetched_epoch || f.fetch_offset > end.offset).then_some(
            DivergingEpoch {
                epoch: end.epoch,
                end_offset: end.offset,
            },
        )
    }

    /// The leader's answer to a fetch: entries from its position, or where it diverges.
    fn fetch_answer(&self, f: &Fetch) -> FetchResponse {
        let diverging_epoch = self.diverging(f);
        let records = match diverging_epoch {
            Some(_) => Vec::new(),
            None => self.log.read(f.fetch_offset, self.config.fetch_max_bytes),
        };
        FetchResponse {
            error: None,
            current_leader: self.current_leader(),
            high_watermark: self.high_watermark,
            diverging_epoch,
            records,
            fetch_offset: f.fetch_offset,
            last_fetched_epoch: f.last_fetched_epoch,
        }
    }

    pub(super) fn on_fetch(&mut self, from: NodeId, f: Fetch) {
        let epoch = self.quorum.epoch;
        let error = if f.current_leader_epoch < epoch {
            Some(RaftError::FencedLeaderEpoch)
        } else if f.current_leader_epoch > epoch {
            Some(RaftError::UnknownLeaderEpoch)
        } else if !matches!(self.state, State::Leader(_)) {
            Some(RaftError::NotLeaderOrFollower)
        } else {
            None
        };
        if let Some(error) = error {
            let response = FetchResponse {
                error: Some(error),
                current_leader: self.current_leader(),
                high_watermark: self.high_watermark,
                diverging_epoch: None,
                records: Vec::new(),
                fetch_offset: f.fetch_offset,
                last_fetched_epoch: f.last_fetched_epoch,
            };
            self.send(from, Message::FetchResponse(response));
            return;
        }
        let diverging = self.diverging(&f);
        let now = self.now_ms;
        let is_voter = self.config.voters.contains(&from);
        let State::Leader(l) = &mut self.state else {
            return;
        };
        let replica = l.replicas.entry(from).or_default();
        replica.last_fetch_ms = Some(now);
        if diverging.is_none() {
            // Only a position on the leader's log says what the replica holds.
            replica.end_offset = Some(f.fetch_offset);
            if f.fetch_offset >= self.log.end_offset() {
                replica.last_caught_up_ms = Some(now);
            }
        }
        if is_voter {
            l.acked.insert(from);
        }
        // A fetch held from before (the replica gave up on it, or restarted) is answered
        // too: every request gets exactly one answer, which the driver pairs with its
        // requests in order.
        let superseded = l.parked.remove(&from);
        if let Some((old, _)) = superseded {
            let response = self.fetch_answer(&old);
            self.send(from, Message::FetchResponse(response));
        }
        self.maybe_advance_high_watermark();
        let nothing_new = diverging.is_none()
            && f.fetch_offset == self.log.end_offset()
            && f.high_watermark >= self.high_watermark;
        if nothing_new && let State::Leader(l) = &mut self.state {
            l.parked
                .insert(from, (f, now + self.config.fetch_max_wait_ms));
            return;
        }
        let response = self.fetch_answer(&f);
        self.send(from, Message::FetchResponse(response));
    }

    /// Answers every held fetch (new entries or a new high watermark).
    pub(super) fn answer_parked(&mut self) {
        let State::Leader(l) = &mut self.state else {
            return;
        };
        let parked = std::mem::take(&mut l.parked);
        for (id, (f, _)) in parked {
            let response = self.fetch_answer(&f);
            self.send(id, Message::FetchResponse(response));
        }
    }

    /// The leader's high watermark: the largest offset that a majority of voters hold durably
    /// (its own log counts up to what the driver reported durable), once it passes the
    /// LeaderChange entry of the leader's epoch; it never goes back.
    pub(super) fn maybe_advance_high_watermark(&mut self) {
        let me = self.config.node_id;
        let State::Leader(l) = &self.state else {
            return;
        };
        let mut ends: Vec<Offset> = self
            .config
            .voters
            .iter()
            .map(|&v| match v == me {
                true => self.durable_end,
                false => l.replicas.get(&v).and_then(|r| r.end_offset).unwrap_or(0),
            })
            .collect();
        ends.sort_unstable_by(|a, b| b.cmp(a));
        let mut hw = ends[self.majority() - 1];
        if self.config.planted_bug == Some(PlantedBug::HwWithoutMajority) {
            hw = self.durable_end;
        }
        if hw > l.epoch_start_offset && hw > self.high_watermark {
            self.set_high_watermark(hw);
            self.answer_parked();
        }
    }

    /// Kafka's `truncateToEndOffset`: given where the leader's log ends for an epoch, the
    /// follower's log is cut to the lesser of that and its own end of that epoch (or, lacking
    /// the epoch, to the end of its largest epoch below it).
    fn truncation_point(&self, d: DivergingEpoch) -> Offset {
        if d.epoch == 0 {
            return d.end_offset.min(self.log.end_offset());
        }
        let local = self.log.end_offset_for_epoch(d.epoch);
        if local.epoch == d.epoch {
            local.offset.min(d.end_offset)
        } else {
            local.offset
        }
    }

    pub(super) fn on_fetch_response(&mut self, from: NodeId, r: FetchResponse) {
        let leader = r.current_leader;
        self.observe(
            leader.leader_epoch,
            leader.leader_id,
            leader.leader_id == Some(from),
        );
        let now = self.now_ms;
        let epoch = self.quorum.epoch;
        let State::Follower {
            leader_id,
            in_flight,
            fetch_deadline_ms,
            last_contact_ms,
            next_fetch_ms,
        } = &mut self.state
        else {
            return;
        };
        let answers_in_flight = in_flight.as_ref().is_some_and(|(f, _)| {
            f.fetch_offset == r.fetch_offset && f.last_fetched_epoch == r.last_fetched_epoch
        });
        if *leader_id != from || leader.leader_epoch != epoch || !answers_in_flight {
            return;
        }
        *in_flight = None;
        if r.error.is_some() {
            *next_fetch_ms = now + self.config.retry_backoff_ms;
            return;
        }
        *fetch_deadline_ms = now + self.config.fetch_timeout_ms;
        *last_contact_ms = Some(now);
        if let Some(d) = r.diverging_epoch {
            let mut to = self.truncation_point(d);
            if self.config.planted_bug == Some(PlantedBug::TruncateToHw) {
                to = self.high_watermark;
            }
            self.truncate(to);
        } else if self.log.end_offset() == r.fetch_offset {
            self.append_fetched(r.records);
            let hw = r.high_watermark.min(self.log.end_offset());
            self.set_high_watermark(hw);
        }
        self.send_fetch();
    }

    /// Appends fetched entries that continue the log in order, in epochs no later than the
    /// current one; stops at the first that does not (a broken peer, not a reason to panic).
    fn append_fetched(&mut self, records: Vec<crate::raft::Entry>) {
        for e in records {
            let fits = e.offset == self.log.end_offset()
                && e.epoch >= self.log.last_epoch().max(1)
                && e.epoch <= self.quorum.epoch;
            if !fits {
                break;
            }
            self.append(e);
        }
    }
}
