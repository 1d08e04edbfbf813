//! Log replication, KRaft's pull way: followers and observers Fetch from the leader with
//! their log end and last epoch; the leader checks the position against its epoch cache and
//! answers entries or a diverging epoch; a follower told it diverges truncates by epoch and
//! fetches again. The leader's high watermark is the end offset a majority of voters hold
//! durably, and passes the leader's own epoch start before it counts.

use super::NodeId;
use super::log::{Epoch, Offset, Snapshot};
use super::message::{
    DivergingEpoch, Fetch, FetchResponse, FetchSnapshot, FetchSnapshotResponse, Message, RaftError,
};
use super::node::{PlantedBug, RaftNode, SnapshotFetch, State};

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
        if let Some(sf) = &self.snapshot_fetch {
            let due = match sf.in_flight {
                Some((_, sent)) => now >= sent + self.config.request_timeout_ms,
                None => now >= *next_fetch_ms,
            };
            if due {
                self.send_fetch_snapshot();
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

    /// A follower asks its leader for the next chunk of the snapshot it is fetching.
    fn send_fetch_snapshot(&mut self) {
        let now = self.now_ms;
        let State::Follower { leader_id, .. } = &self.state else {
            return;
        };
        let to = *leader_id;
        let Some(sf) = &mut self.snapshot_fetch else {
            return;
        };
        let position = sf.bytes.len() as i64;
        sf.in_flight = Some((position, now));
        let request = FetchSnapshot {
            replica_id: self.config.node_id,
            current_leader_epoch: self.quorum.epoch,
            snapshot_id: sf.id,
            position,
            max_bytes: i32::try_from(self.config.fetch_max_bytes).unwrap_or(i32::MAX),
        };
        self.send(to, Message::FetchSnapshot(request));
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
            let recent = self
                .config
                .voters
                .iter()
                .filter(|&&v| v == me || l.fetched_within(v, now, check_ms));
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
        // BeginQuorumEpoch goes, every half fetch timeout, to each voter that has not
        // acknowledged it or has not fetched within the fetch timeout (Kafka's heartbeat,
        // KAFKA-16536 and KAFKA-16926). A voter that acknowledged once and later moved to a
        // higher epoch nobody else saw (a lost pre-vote round, then a crash) refuses every
        // pre-vote it sends while this leader lives; only this resend lets it answer with its
        // epoch, which moves the quorum past it (seed 48975).
        let begin_due = now >= l.next_begin_ms;
        let fetch_timeout_ms = self.config.fetch_timeout_ms;
        let unacked: Vec<NodeId> = if begin_due {
            l.next_begin_ms = now + fetch_timeout_ms / 2;
            let l = &*l;
            self.config
                .voters
                .iter()
                .filter(|&&v| {
                    v != me
                        && (!l.acked.contains(&v) || !l.fetched_within(v, now, fetch_timeout_ms))
                })
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

    /// The snapshot a fetch at this position needs: the latest, if the position lies below
    /// the log's start (Kafka's `validateOffsetAndEpoch` snapshot case).
    fn needs_snapshot(&self, f: &Fetch) -> Option<super::log::OffsetAndEpoch> {
        if !self.log.below_start(f.fetch_offset, f.last_fetched_epoch) {
            return None;
        }
        self.latest_snapshot.as_ref().map(|s| s.id)
    }

    /// The leader's answer to a fetch: entries from its position, where it diverges, or the
    /// snapshot to fetch first.
    fn fetch_answer(&self, f: &Fetch) -> FetchResponse {
        let snapshot_id = self.needs_snapshot(f);
        let diverging_epoch = match snapshot_id {
            Some(_) => None,
            None => self.diverging(f),
        };
        let records = match (snapshot_id, diverging_epoch) {
            (None, None) => self.log.read(f.fetch_offset, self.config.fetch_max_bytes),
            _ => Vec::new(),
        };
        FetchResponse {
            error: None,
            current_leader: self.current_leader(),
            high_watermark: self.high_watermark,
            diverging_epoch,
            snapshot_id,
            records,
            fetch_offset: f.fetch_offset,
            last_fetched_epoch: f.last_fetched_epoch,
        }
    }

    /// Why this node refuses a Fetch or FetchSnapshot that names `current_leader_epoch`: an
    /// older epoch, a newer one, or not leading.
    fn leader_request_error(&self, current_leader_epoch: Epoch) -> Option<RaftError> {
        let epoch = self.quorum.epoch;
        if current_leader_epoch < epoch {
            Some(RaftError::FencedLeaderEpoch)
        } else if current_leader_epoch > epoch {
            Some(RaftError::UnknownLeaderEpoch)
        } else if !matches!(self.state, State::Leader(_)) {
            Some(RaftError::NotLeaderOrFollower)
        } else {
            None
        }
    }

    pub(super) fn on_fetch(&mut self, from: NodeId, f: Fetch) {
        if let Some(error) = self.leader_request_error(f.current_leader_epoch) {
            let response = FetchResponse {
                error: Some(error),
                current_leader: self.current_leader(),
                high_watermark: self.high_watermark,
                diverging_epoch: None,
                snapshot_id: None,
                records: Vec::new(),
                fetch_offset: f.fetch_offset,
                last_fetched_epoch: f.last_fetched_epoch,
            };
            self.send(from, Message::FetchResponse(response));
            return;
        }
        let elsewhere = self.needs_snapshot(&f).is_some();
        let diverging = match elsewhere {
            true => None,
            false => self.diverging(&f),
        };
        let now = self.now_ms;
        let is_voter = self.config.voters.contains(&from);
        let State::Leader(l) = &mut self.state else {
            return;
        };
        let replica = l.replicas.entry(from).or_default();
        replica.last_fetch_ms = Some(now);
        if diverging.is_none() && !elsewhere {
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
            && !elsewhere
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
        if let Some(id) = r.snapshot_id {
            // The position is below the leader's log start: fetch its snapshot first.
            self.snapshot_fetch = Some(SnapshotFetch {
                id,
                bytes: Vec::new(),
                in_flight: None,
            });
            self.send_fetch_snapshot();
            return;
        }
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

impl RaftNode {
    /// The leader answers a chunk of its latest snapshot.
    pub(super) fn on_fetch_snapshot(&mut self, from: NodeId, f: FetchSnapshot) {
        let latest = self.latest_snapshot.clone();
        let mut answer = FetchSnapshotResponse {
            error: None,
            current_leader: self.current_leader(),
            snapshot_id: f.snapshot_id,
            size: -1,
            position: f.position,
            bytes: bytes::Bytes::new(),
        };
        answer.error = if let Some(error) = self.leader_request_error(f.current_leader_epoch) {
            Some(error)
        } else {
            match &latest {
                Some(s) if s.id == f.snapshot_id => {
                    let size = s.data.len() as i64;
                    if f.position < 0 || f.position > size {
                        Some(RaftError::PositionOutOfRange)
                    } else {
                        let max = i64::from(f.max_bytes.max(1));
                        let end = (f.position + max).min(size);
                        answer.size = size;
                        answer.bytes = s.data.slice(f.position as usize..end as usize);
                        None
                    }
                }
                _ => Some(RaftError::SnapshotNotFound),
            }
        };
        let now = self.now_ms;
        if answer.error.is_none()
            && let State::Leader(l) = &mut self.state
        {
            // A replica fetching a snapshot is alive, for check-quorum.
            l.replicas.entry(from).or_default().last_fetch_ms = Some(now);
            if self.config.voters.contains(&from) {
                l.acked.insert(from);
            }
        }
        self.send(from, Message::FetchSnapshotResponse(answer));
    }

    /// A follower takes in a chunk of the snapshot it fetches; with the last one it installs
    /// it and fetches entries from its end.
    pub(super) fn on_fetch_snapshot_response(&mut self, from: NodeId, r: FetchSnapshotResponse) {
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
            fetch_deadline_ms,
            last_contact_ms,
            next_fetch_ms,
            ..
        } = &mut self.state
        else {
            return;
        };
        let Some(sf) = &mut self.snapshot_fetch else {
            return;
        };
        let answers = sf.in_flight.is_some_and(|(p, _)| p == r.position) && sf.id == r.snapshot_id;
        if *leader_id != from || leader.leader_epoch != epoch || !answers {
            return;
        }
        sf.in_flight = None;
        match r.error {
            None => {}
            Some(RaftError::SnapshotNotFound | RaftError::PositionOutOfRange) => {
                // The leader moved on to a newer snapshot: ask again where to start.
                self.snapshot_fetch = None;
                self.send_fetch();
                return;
            }
            Some(_) => {
                *next_fetch_ms = now + self.config.retry_backoff_ms;
                return;
            }
        }
        *fetch_deadline_ms = now + self.config.fetch_timeout_ms;
        *last_contact_ms = Some(now);
        let fits = r.size >= 0
            && r.position == sf.bytes.len() as i64
            && r.position + r.bytes.len() as i64 <= r.size
            && (!r.bytes.is_empty() || r.position == r.size);
        if !fits {
            // A broken answer: start the snapshot over.
            sf.bytes.clear();
            *next_fetch_ms = now + self.config.retry_backoff_ms;
            return;
        }
        sf.bytes.extend_from_slice(&r.bytes);
        if (sf.bytes.len() as i64) < r.size {
            self.send_fetch_snapshot();
            return;
        }
        let Some(sf) = self.snapshot_fetch.take() else {
            return;
        };
        let snapshot = Snapshot {
            id: sf.id,
            data: bytes::Bytes::from(sf.bytes),
        };
        if !self.install_snapshot(snapshot) {
            tracing::warn!(
                node = self.config.node_id,
                snapshot = ?sf.id,
                high_watermark = self.high_watermark,
                "a fetched snapshot ends below this node's high watermark; fetching entries instead"
            );
        }
        self.send_fetch();
    }
}
