//! A partition leader's view of its followers, as a pure state machine in raft-rs's shape:
//! [`PartitionLeader::tick`] and [`PartitionLeader::step`] feed it time and events,
//! [`PartitionLeader::ready`] says what to do (a high watermark to publish, an ISR change to
//! send to the controller), [`PartitionLeader::advance`] records that it was done. It reads no
//! clock and does no I/O; the broker's shell drives it.
//!
//! Kafka's rules (`Partition.scala`, KIP-497, KIP-841, KIP-966), with runnel's durable twist:
//!
//! - Each replica's *end* is what it holds synced: the leader's own durable end (its log end
//!   with `write.caching`), a follower's fetch offset (a follower syncs before it fetches
//!   again). So "below the high watermark" means "on disk on every in-sync replica".
//! - The high watermark is the least end over the *maximal* ISR (the committed ISR and any
//!   member a pending change adds; a pending removal still counts), never goes back, and
//!   stays put while the committed ISR is smaller than `min.insync.replicas`.
//! - A follower joins when its end reaches the high watermark and the start of the current
//!   leader epoch; one leaves when it has not caught up with the leader's end for
//!   `replica.lag.time.max.ms`. Only one change is in flight at a time; its answer, or the
//!   metadata, settles it.

use std::collections::BTreeMap;

/// The partition as the committed metadata has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// The replicas; the leader is one of them.
    pub replicas: Vec<i32>,
    /// The committed in-sync replicas.
    pub isr: Vec<i32>,
    /// The leader epoch this leader leads in.
    pub leader_epoch: i32,
    /// The partition epoch (bumped by every change).
    pub partition_epoch: i32,
}

/// The leader's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderConfig {
    /// This broker.
    pub broker_id: i32,
    /// The topic's `min.insync.replicas`.
    pub min_insync_replicas: usize,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: i64,
    /// The simulator's planted bug `hw-ignores-followers`: the high watermark counts only the
    /// leader's own end. Never set outside the simulator.
    pub planted_hw_ignores_followers: bool,
    /// The simulator's planted bug `isr-join-without-epoch-start`: a follower joins the ISR
    /// once it reaches the high watermark, even below the start of this leader's epoch.
    pub planted_isr_join_without_epoch_start: bool,
}

/// What a follower has shown of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    /// Its end: every offset below it is synced on the follower.
    pub end: i64,
    /// Its broker epoch, from its last fetch (KIP-903), or -1.
    pub broker_epoch: i64,
    /// When it was last caught up with the leader's log end.
    pub last_caught_up_ms: i64,
    /// When it last fetched, and the leader's log end then.
    last_fetch_ms: i64,
    last_fetch_leader_end: i64,
}

/// An ISR change for the controller (Kafka's AlterPartition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    /// The ISR wanted, with each member's broker epoch (-1 for the leader itself and for
    /// followers not heard from).
    pub isr: Vec<(i32, i64)>,
    /// The leader epoch it is asked in.
    pub leader_epoch: i32,
    /// The partition epoch it is based on.
    pub partition_epoch: i32,
}

/// How the controller answered an [`IsrChange`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsrAnswer {
    /// Committed: the partition as it is now.
    Committed(PartitionView),
    /// Refused by the controller (FENCED_LEADER_EPOCH, INELIGIBLE_REPLICA,
    /// NEW_LEADER_ELECTED, a stale broker epoch): surely not applied; the next tick may try
    /// again.
    Failed,
    /// No answer, or one that does not say (a timeout, a lost connection, a controller that
    /// moved, INVALID_UPDATE_VERSION from a resend of a change already made): the change may
    /// be committed. It stays pending (an added follower keeps holding the high watermark)
    /// and is sent again until an answer or the metadata settles it, as Kafka's
    /// `AlterPartitionManager` retries. Seed 31956: a timed-out expansion taken as refused
    /// let the high watermark pass the follower the controller had in fact added.
    Unknown,
}

/// An input to the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A follower fetched from `fetch_offset` (its log end, which "caught up" measures) and
    /// everything below `synced_end` is synced on it (what the high watermark and joining
    /// the ISR count). The two are equal for a follower that syncs before it fetches, or one
    /// under write caching.
    FollowerFetch {
        replica: i32,
        broker_epoch: i64,
        fetch_offset: i64,
        synced_end: i64,
        now_ms: i64,
    },
    /// The leader's own end moved (its durable end; its log end with write caching), and
    /// its log end (for a follower's "caught up").
    LocalEnd { end: i64, log_end: i64 },
    /// The answer to the ISR change in flight.
    Answer(IsrAnswer),
    /// The committed metadata changed while this broker still leads in the same epoch.
    Metadata(PartitionView),
    /// The brokers that may not join an ISR now (fenced or shutting down, KIP-841), as the
    /// metadata has them.
    Ineligible(Vec<i32>),
}

/// What the shell should do now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ready {
    /// The high watermark moved here: publish it (consumers read below it, acks=all waits
    /// for it).
    pub high_watermark: Option<i64>,
    /// Send this to the controller.
    pub isr_change: Option<IsrChange>,
}

/// The leader of one partition in one leader epoch.
#[derive(Debug, Clone)]
pub struct PartitionLeader {
    config: LeaderConfig,
    /// The committed partition.
    view: PartitionView,
    /// The ISR a change in flight asks for.
    pending: Option<Vec<i32>>,
    /// A change decided and not yet handed out by `ready`.
    unsent: Option<IsrChange>,
    /// The change handed out and not yet answered (sent again if the answer is unknown).
    in_flight: Option<IsrChange>,
    /// An attempt at the pending change went unanswered, so it may be committed: a refusal
    /// of a later resend (FENCED_LEADER_EPOCH once another leader took over) says nothing
    /// about it, and the change stays pending until the metadata settles it (seed 33038: the
    /// refusal of a resend let the high watermark pass a follower that had in fact been added,
    /// and was then elected).
    maybe_applied: bool,
    /// The first offset of this leader epoch (the log end when it began).
    epoch_start: i64,
    /// The leader's own end.
    local_end: i64,
    /// The leader's log end.
    log_end: i64,
    /// The high watermark.
    high_watermark: i64,
    /// The high watermark last handed out by `ready`.
    published: i64,
    /// Followers heard from, by broker id.
    followers: BTreeMap<i32, FollowerProgress>,
    /// The latest time seen.
    now_ms: i64,
    /// Brokers that may not join the ISR now.
    ineligible: Vec<i32>,
}

impl PartitionLeader {
    /// A leader starting its epoch at `epoch_start` (its log end then), with `high_watermark`
    /// as far as it knew it (never above its own end), at `now_ms`. Followers are counted as
    /// caught up now: each gets `replica.lag.time.max.ms` to show itself before it may leave.
    pub fn new(
        config: LeaderConfig,
        view: PartitionView,
        epoch_start: i64,
        local_end: i64,
        high_watermark: i64,
        now_ms: i64,
    ) -> PartitionLeader {
        let followers = view
            .replicas
            .iter()
            .filter(|r| **r != config.broker_id)
            .map(|r| {
                (
                    *r,
                    FollowerProgress {
                        end: -1,
                        broker_epoch: -1,
                        last_caught_up_ms: now_ms,
                        last_fetch_ms: now_ms,
                        last_fetch_leader_end: epoch_start,
                    },
                )
            })
            .collect();
        let hw = high_watermark.min(local_end).max(0);
        let mut leader = PartitionLeader {
            config,
            view,
            pending: None,
            unsent: None,
            in_flight: None,
            maybe_applied: false,
            epoch_start,
            local_end,
            log_end: epoch_start.max(local_end),
            high_watermark: hw,
            published: -1,
            followers,
            now_ms,
            ineligible: Vec::new(),
        };
        leader.update_high_watermark();
        leader
    }

    /// The high watermark.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// The committed partition.
    pub fn view(&self) -> &PartitionView {
        &self.view
    }

    /// The ISR the high watermark is computed over: the committed one and any member a
    /// pending change adds.
    pub fn maximal_isr(&self) -> Vec<i32> {
        let mut isr = self.view.isr.clone();
        for r in self.pending.iter().flatten() {
            if !isr.contains(r) {
                isr.push(*r);
            }
        }
        isr
    }

    /// Whether an acks=all append may be taken: the committed ISR is at least
    /// `min.insync.replicas` (else NOT_ENOUGH_REPLICAS, before anything is written).
    pub fn enough_replicas(&self) -> bool {
        self.view.isr.len() >= self.config.min_insync_replicas
    }

    /// Whether an acks=all append the high watermark passed may be answered without an
    /// error: the maximal ISR is still at least `min.insync.replicas` (else, as Kafka's
    /// `checkEnoughReplicasReachOffset` answers, NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    pub fn enough_replicas_after_append(&self) -> bool {
        self.maximal_isr().len() >= self.config.min_insync_replicas
    }

    /// A follower's progress, if it has fetched.
    pub fn follower(&self, id: i32) -> Option<&FollowerProgress> {
        self.followers.get(&id).filter(|f| f.end >= 0)
    }

    /// Time passes: followers that have not caught up for `replica.lag.time.max.ms` leave the
    /// ISR.
    pub fn tick(&mut self, now_ms: i64) {
        self.now_ms = self.now_ms.max(now_ms);
        self.maybe_shrink();
    }

    /// Takes in an event.
    pub fn step(&mut self, event: Event) {
        match event {
            Event::FollowerFetch {
                replica,
                broker_epoch,
                fetch_offset,
                synced_end,
                now_ms,
            } => {
                self.now_ms = self.now_ms.max(now_ms);
                let log_end = self.log_end;
                let now = self.now_ms;
                let Some(f) = self.followers.get_mut(&replica) else {
                    return;
                };
                // Kafka's `updateFetchStateOrThrow`: caught up if the fetch reaches the
                // leader's end now, or the leader's end at the previous fetch.
                if fetch_offset >= log_end {
                    f.last_caught_up_ms = now;
                } else if fetch_offset >= f.last_fetch_leader_end {
                    f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
                }
                f.last_fetch_ms = now;
                f.last_fetch_leader_end = log_end;
                f.end = synced_end.min(fetch_offset);
                f.broker_epoch = broker_epoch;
                self.maybe_expand(replica);
                self.update_high_watermark();
            }
            Event::LocalEnd { end, log_end } => {
                self.local_end = self.local_end.max(end);
                self.log_end = self.log_end.max(log_end).max(self.local_end);
                self.update_high_watermark();
            }
            Event::Answer(answer) => {
                let sent = self.in_flight.take();
                // An answer about a change the metadata already settled says nothing about
                // the change pending now, if any (seed 33699: a late INVALID_UPDATE_VERSION for
                // an old expansion replaced a newer proposal, which was never sent, and the
                // old one was resent for the rest of the run).
                let current = sent.as_ref().is_some_and(|c| {
                    c.partition_epoch == self.view.partition_epoch
                        && self
                            .pending
                            .as_ref()
                            .is_some_and(|p| c.isr.iter().map(|m| m.0).eq(p.iter().copied()))
                });
                if !current {
                    if let IsrAnswer::Committed(view) = answer {
                        self.adopt(view);
                    }
                    self.update_high_watermark();
                    return;
                }
                match answer {
                    IsrAnswer::Committed(view) => {
                        self.pending = None;
                        self.maybe_applied = false;
                        self.adopt(view);
                    }
                    // An earlier attempt may be committed: wait for the metadata.
                    IsrAnswer::Failed if self.maybe_applied => {}
                    IsrAnswer::Failed => self.pending = None,
                    // Still pending unless the metadata settled it meanwhile: send it again.
                    IsrAnswer::Unknown if self.pending.is_some() => {
                        self.maybe_applied = true;
                        self.unsent = sent;
                    }
                    IsrAnswer::Unknown => {}
                }
                self.update_high_watermark();
            }
            Event::Metadata(view) => {
                // The change asked for is settled once it shows, or once the partition moved
                // past the epoch it was based on (the controller refuses it from then on).
                let settled = |p: &Vec<i32>| {
                    *p == view.isr
                        || (view.leader_epoch == self.view.leader_epoch
                            && view.partition_epoch > self.view.partition_epoch)
                };
                if self.pending.as_ref().is_some_and(settled) {
                    self.pending = None;
                    self.unsent = None;
                    self.maybe_applied = false;
                }
                self.adopt(view);
                self.update_high_watermark();
            }
            Event::Ineligible(ids) => self.ineligible = ids,
        }
    }

    /// What to do now.
    pub fn ready(&self) -> Ready {
        Ready {
            high_watermark: (self.high_watermark != self.published).then_some(self.high_watermark),
            isr_change: self.unsent.clone(),
        }
    }

    /// Records that the last [`Ready`] was acted on.
    pub fn advance(&mut self, ready: &Ready) {
        if let Some(hw) = ready.high_watermark {
            self.published = self.published.max(hw);
        }
        if ready.isr_change.is_some() {
            self.in_flight = self.unsent.take();
        }
    }

    fn adopt(&mut self, view: PartitionView) {
        if view.partition_epoch < self.view.partition_epoch
            || view.leader_epoch != self.view.leader_epoch
        {
            return;
        }
        for r in &view.replicas {
            if *r != self.config.broker_id && !self.followers.contains_key(r) {
                self.followers.insert(
                    *r,
                    FollowerProgress {
                        end: -1,
                        broker_epoch: -1,
                        last_caught_up_ms: self.now_ms,
                        last_fetch_ms: self.now_ms,
                        last_fetch_leader_end: self.log_end,
                    },
                );
            }
        }
        self.followers.retain(|r, _| view.replicas.contains(r));
        self.view = view;
    }

    /// A follower out of the ISR whose end reaches the high watermark and this epoch's start
    /// joins (Kafka's `isFollowerInSync`), if no change is in flight.
    fn maybe_expand(&mut self, replica: i32) {
        if self.pending.is_some()
            || self.unsent.is_some()
            || self.view.isr.contains(&replica)
            || self.ineligible.contains(&replica)
        {
            return;
        }
        let Some(f) = self.followers.get(&replica) else {
            return;
        };
        let past_epoch_start =
            f.end >= self.epoch_start || self.config.planted_isr_join_without_epoch_start;
        if f.end >= self.high_watermark && past_epoch_start {
            let mut isr = self.view.isr.clone();
            isr.push(replica);
            self.propose(isr);
        }
    }

    /// Followers in the ISR that have not caught up for `replica.lag.time.max.ms` leave it,
    /// if no change is in flight.
    fn maybe_shrink(&mut self) {
        if self.pending.is_some() || self.unsent.is_some() {
            return;
        }
        let lag_max = self.config.replica_lag_time_max_ms;
        let out: Vec<i32> = self
            .view
            .isr
            .iter()
            .copied()
            .filter(|r| *r != self.config.broker_id)
            .filter(|r| {
                self.followers
                    .get(r)
                    .is_some_and(|f| self.now_ms - f.last_caught_up_ms > lag_max)
            })
            .collect();
        if !out.is_empty() {
            let isr = self
                .view
                .isr
                .iter()
                .copied()
                .filter(|r| !out.contains(r))
                .collect();
            self.propose(isr);
        }
    }

    fn propose(&mut self, isr: Vec<i32>) {
        let members = isr
            .iter()
            .map(|r| {
                let epoch = self.followers.get(r).map_or(-1, |f| f.broker_epoch);
                (*r, epoch)
            })
            .collect();
        self.maybe_applied = false;
        self.unsent = Some(IsrChange {
            isr: members,
            leader_epoch: self.view.leader_epoch,
            partition_epoch: self.view.partition_epoch,
        });
        self.pending = Some(isr);
    }

    /// `min.insync.replicas` changed (AlterConfigs of the topic, or a dynamic broker default):
    /// it applies to the next acks=all append and to the high watermark at once.
    pub fn set_min_insync_replicas(&mut self, n: usize) {
        self.config.min_insync_replicas = n;
        self.update_high_watermark();
    }

    /// Moves the high watermark up to the least end over the maximal ISR, unless the committed
    /// ISR is below `min.insync.replicas` capped at the replica count (Kafka's
    /// `effectiveMinIsr`: a partition with fewer replicas than the setting still makes acks=0
    /// and acks=1 writes visible; only acks=all is refused there).
    fn update_high_watermark(&mut self) {
        let effective = self
            .config
            .min_insync_replicas
            .min(self.view.replicas.len().max(1));
        if self.view.isr.len() < effective {
            return;
        }
        let mut least = self.local_end;
        for r in self.maximal_isr() {
            if r == self.config.broker_id || self.config.planted_hw_ignores_followers {
                continue;
            }
            let end = self.followers.get(&r).map_or(-1, |f| f.end);
            least = least.min(end);
        }
        if least > self.high_watermark {
            self.high_watermark = least;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: i64 = 30_000;

    fn leader(isr: &[i32], min_isr: usize) -> PartitionLeader {
        PartitionLeader::new(
            LeaderConfig {
                broker_id: 1,
                min_insync_replicas: min_isr,
                replica_lag_time_max_ms: LAG,
                planted_hw_ignores_followers: false,
                planted_isr_join_without_epoch_start: false,
            },
            PartitionView {
                replicas: vec![1, 2, 3],
                isr: isr.to_vec(),
                leader_epoch: 5,
                partition_epoch: 7,
            },
            100,
            100,
            100,
            0,
        )
    }

    fn fetch(l: &mut PartitionLeader, replica: i32, offset: i64, now_ms: i64) {
        l.step(Event::FollowerFetch {
            replica,
            broker_epoch: 10 + i64::from(replica),
            fetch_offset: offset,
            synced_end: offset,
            now_ms,
        });
    }

    fn publish(l: &mut PartitionLeader) -> Ready {
        let r = l.ready();
        l.advance(&r);
        r
    }

    #[test]
    fn the_high_watermark_is_the_least_synced_end_over_the_isr_and_never_goes_back() {
        let mut l = leader(&[1, 2, 3], 1);
        assert_eq!(publish(&mut l).high_watermark, Some(100));
        l.step(Event::LocalEnd {
            end: 150,
            log_end: 160,
        });
        assert_eq!(l.high_watermark(), 100, "followers have not shown anything");
        fetch(&mut l, 2, 140, 10);
        assert_eq!(l.high_watermark(), 100);
        fetch(&mut l, 3, 120, 10);
        assert_eq!(l.high_watermark(), 120);
        assert_eq!(publish(&mut l).high_watermark, Some(120));
        assert_eq!(publish(&mut l).high_watermark, None);
        // A follower that went back (it truncated after a restart) does not pull it down.
        fetch(&mut l, 3, 110, 20);
        assert_eq!(l.high_watermark(), 120);
        fetch(&mut l, 3, 160, 30);
        assert_eq!(l.high_watermark(), 140);
    }

    #[test]
    fn below_min_insync_the_high_watermark_holds_and_acks_all_is_refused() {
        let mut l = leader(&[1], 2);
        assert!(!l.enough_replicas());
        l.step(Event::LocalEnd {
            end: 200,
            log_end: 200,
        });
        assert_eq!(l.high_watermark(), 100);
        // Follower 2 catches up and is proposed; the pending member counts for the HW only
        // once the ISR is big enough, which needs the commit.
        fetch(&mut l, 2, 200, 10);
        let change = publish(&mut l).isr_change.expect("an expansion");
        assert_eq!(change.isr, vec![(1, -1), (2, 12)]);
        assert_eq!((change.leader_epoch, change.partition_epoch), (5, 7));
        assert_eq!(l.high_watermark(), 100);
        l.step(Event::Answer(IsrAnswer::Committed(PartitionView {
            replicas: vec![1, 2, 3],
            isr: vec![1, 2],
            leader_epoch: 5,
            partition_epoch: 8,
        })));
        assert!(l.enough_replicas());
        assert_eq!(l.high_watermark(), 200);
    }

    #[test]
    fn an_isr_that_shrank_below_min_insync_after_the_append_is_reported() {
        let mut l = leader(&[1, 2], 2);
        l.step(Event::LocalEnd {
            end: 150,
            log_end: 150,
        });
        fetch(&mut l, 2, 150, 1);
        assert_eq!(l.high_watermark(), 150);
        assert!(l.enough_replicas_after_append());
        // Follower 2 leaves the ISR after the high watermark passed the append: the records
        // stay committed, but the answer is NOT_ENOUGH_REPLICAS_AFTER_APPEND.
        l.step(Event::Metadata(PartitionView {
            replicas: vec![1, 2, 3],
            isr: vec![1],
            leader_epoch: 5,
            partition_epoch: 8,
        }));
        assert_eq!(l.high_watermark(), 150);
        assert!(!l.enough_replicas() && !l.enough_replicas_after_append());
    }

    #[test]
    fn min_insync_above_the_replica_count_refuses_acks_all_but_moves_the_high_watermark() {
        let mut l = PartitionLeader::new(
            LeaderConfig {
                broker_id: 1,
                min_insync_replicas: 2,
                replica_lag_time_max_ms: LAG,
                planted_hw_ignores_followers: false,
                planted_isr_join_without_epoch_start: false,
            },
            PartitionView {
                replicas: vec![1],
                isr: vec![1],
                leader_epoch: 0,
                partition_epoch: 0,
            },
            0,
            0,
            0,
            0,
        );
        l.step(Event::LocalEnd {
            end: 10,
            log_end: 10,
        });
        assert!(!l.enough_replicas(), "acks=all is refused");
        assert_eq!(l.high_watermark(), 10, "acks=1 writes become visible");
        // A changed setting applies at once.
        let mut l = leader(&[1], 3);
        l.step(Event::LocalEnd {
            end: 150,
            log_end: 150,
        });
        assert_eq!(l.high_watermark(), 100);
        l.set_min_insync_replicas(1);
        assert!(l.enough_replicas());
        assert_eq!(l.high_watermark(), 150);
    }

    #[test]
    fn a_follower_joins_only_past_the_high_watermark_and_the_epoch_start() {
        let mut l = leader(&[1, 2], 1);
        fetch(&mut l, 2, 100, 0);
        l.step(Event::LocalEnd {
            end: 130,
            log_end: 130,
        });
        fetch(&mut l, 2, 130, 1);
        assert_eq!(l.high_watermark(), 130);
        fetch(&mut l, 3, 99, 2);
        assert_eq!(publish(&mut l).isr_change, None, "below the epoch start");
        fetch(&mut l, 3, 120, 3);
        assert_eq!(publish(&mut l).isr_change, None, "below the high watermark");
        fetch(&mut l, 3, 130, 4);
        let change = publish(&mut l).isr_change.expect("an expansion");
        assert_eq!(
            change.isr.iter().map(|m| m.0).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        // While it is in flight the maximal ISR already counts follower 3.
        assert_eq!(l.maximal_isr(), vec![1, 2, 3]);
        // Refused: back to the committed ISR, and asked again at the next chance.
        l.step(Event::Answer(IsrAnswer::Failed));
        assert_eq!(l.maximal_isr(), vec![1, 2]);
        fetch(&mut l, 3, 130, 5);
        assert!(publish(&mut l).isr_change.is_some());
    }

    /// Seed 31956: an expansion whose answer was lost may be committed. The added follower
    /// keeps holding the high watermark, the change is sent again, and only the answer or the
    /// metadata settles it.
    #[test]
    fn an_expansion_with_no_answer_stays_pending_until_settled() {
        let mut l = leader(&[1, 2], 1);
        fetch(&mut l, 2, 100, 0);
        fetch(&mut l, 3, 100, 1);
        let change = publish(&mut l).isr_change.expect("an expansion");
        l.step(Event::LocalEnd {
            end: 150,
            log_end: 150,
        });
        fetch(&mut l, 2, 150, 2);
        assert_eq!(l.high_watermark(), 100, "held by the joining follower");
        l.step(Event::Answer(IsrAnswer::Unknown));
        assert_eq!(l.maximal_isr(), vec![1, 2, 3]);
        assert_eq!(
            l.high_watermark(),
            100,
            "still held: the change may be committed"
        );
        assert_eq!(
            publish(&mut l).isr_change,
            Some(change.clone()),
            "sent again"
        );
        // Seed 33038: the resend is refused (another leader took over). The first attempt
        // may still be committed, so the follower keeps holding the high watermark.
        l.step(Event::Answer(IsrAnswer::Failed));
        assert_eq!(l.maximal_isr(), vec![1, 2, 3]);
        assert_eq!(l.high_watermark(), 100);
        // The metadata shows it committed: settled, nothing more to send.
        l.step(Event::Metadata(PartitionView {
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            leader_epoch: 5,
            partition_epoch: 8,
        }));
        l.step(Event::Answer(IsrAnswer::Unknown));
        assert_eq!(publish(&mut l).isr_change, None);
        fetch(&mut l, 3, 150, 3);
        assert_eq!(l.high_watermark(), 150);

        // Another one lost, and the metadata moves on without it: settled as not made.
        let mut l = leader(&[1, 2], 1);
        fetch(&mut l, 3, 100, 1);
        assert!(publish(&mut l).isr_change.is_some());
        l.step(Event::Answer(IsrAnswer::Unknown));
        l.step(Event::Metadata(PartitionView {
            replicas: vec![1, 2, 3],
            isr: vec![1],
            leader_epoch: 5,
            partition_epoch: 8,
        }));
        assert_eq!(l.maximal_isr(), vec![1]);
        assert!(publish(&mut l).isr_change.is_none() || l.maximal_isr().contains(&3));
    }

    /// Seed 33699: the metadata settles a change while it is in flight, a new one is
    /// proposed, and then the old one's answer comes: the new one is what gets sent.
    #[test]
    fn a_late_answer_to_a_settled_change_leaves_the_new_one_alone() {
        let mut l = leader(&[1, 2], 1);
        fetch(&mut l, 3, 100, 1);
        assert!(publish(&mut l).isr_change.is_some());
        // Committed meanwhile: follower 2 left (partition epoch 8); the expansion is moot.
        l.step(Event::Metadata(PartitionView {
            replicas: vec![1, 2, 3],
            isr: vec![1],
            leader_epoch: 5,
            partition_epoch: 8,
        }));
        fetch(&mut l, 3, 100, 2);
        let newer = l.ready().isr_change.expect("a new expansion");
        assert_eq!(newer.partition_epoch, 8);
        // The old request's answer arrives now (INVALID_UPDATE_VERSION: unknown).
        l.step(Event::Answer(IsrAnswer::Unknown));
        assert_eq!(publish(&mut l).isr_change, Some(newer));
    }

    #[test]
    fn a_fenced_follower_does_not_join() {
        let mut l = leader(&[1, 2], 1);
        l.step(Event::Ineligible(vec![3]));
        fetch(&mut l, 3, 100, 1);
        assert_eq!(publish(&mut l).isr_change, None);
        l.step(Event::Ineligible(vec![]));
        fetch(&mut l, 3, 100, 2);
        assert!(publish(&mut l).isr_change.is_some());
    }

    #[test]
    fn a_follower_that_stops_catching_up_leaves_after_the_lag_time() {
        let mut l = leader(&[1, 2, 3], 1);
        fetch(&mut l, 2, 100, 1);
        fetch(&mut l, 3, 100, 1);
        l.step(Event::LocalEnd {
            end: 200,
            log_end: 200,
        });
        // Follower 2 keeps up; follower 3 keeps fetching but stays at 100.
        let mut t = 1;
        while t < LAG + 1_000 {
            t += 500;
            fetch(&mut l, 2, 200, t);
            fetch(&mut l, 3, 100, t);
            l.tick(t);
            if let Some(change) = publish(&mut l).isr_change {
                assert!(t > LAG, "left at {t}, before the lag time");
                assert_eq!(change.isr.iter().map(|m| m.0).collect::<Vec<_>>(), [1, 2]);
                // Until it is committed, the removed member still holds the HW.
                assert_eq!(l.high_watermark(), 100);
                l.step(Event::Metadata(PartitionView {
                    replicas: vec![1, 2, 3],
                    isr: vec![1, 2],
                    leader_epoch: 5,
                    partition_epoch: 8,
                }));
                assert_eq!(l.high_watermark(), 200);
                return;
            }
        }
        panic!("follower 3 never left the ISR");
    }

    #[test]
    fn a_follower_that_keeps_reaching_the_previous_end_stays_in_sync() {
        let mut l = leader(&[1, 2], 1);
        let mut end = 100;
        for t in (0..3 * LAG).step_by(100) {
            // Every fetch reaches the leader's end of the fetch before, never the current.
            fetch(&mut l, 2, end, t);
            end += 10;
            l.step(Event::LocalEnd { end, log_end: end });
            l.tick(t);
            assert_eq!(publish(&mut l).isr_change, None, "shrunk at {t}");
        }
    }

    #[test]
    fn a_pipelined_follower_counts_its_synced_end_for_the_high_watermark_and_its_fetch_offset_for_caught_up()
     {
        let mut l = leader(&[1, 2], 1);
        let mut end = 100;
        for t in (0..3 * LAG).step_by(100) {
            // Each fetch is sent while the data the last one brought is synced: its offset
            // reaches the leader's previous end, its synced end one round less.
            l.step(Event::FollowerFetch {
                replica: 2,
                broker_epoch: 12,
                fetch_offset: end,
                synced_end: end - 10,
                now_ms: t,
            });
            assert_eq!(l.high_watermark(), (end - 10).max(100), "at {t}");
            end += 10;
            l.step(Event::LocalEnd { end, log_end: end });
            l.tick(t);
            assert_eq!(publish(&mut l).isr_change, None, "shrunk at {t}");
        }
        // A synced end past the fetch offset is not believed.
        l.step(Event::FollowerFetch {
            replica: 2,
            broker_epoch: 12,
            fetch_offset: end,
            synced_end: end + 50,
            now_ms: 3 * LAG,
        });
        assert_eq!(l.high_watermark(), end);
    }

    #[test]
    fn a_follower_joins_the_isr_by_its_synced_end_not_its_fetch_offset() {
        let mut l = leader(&[1], 1);
        l.step(Event::LocalEnd {
            end: 200,
            log_end: 200,
        });
        assert_eq!(l.high_watermark(), 200);
        l.step(Event::FollowerFetch {
            replica: 2,
            broker_epoch: 12,
            fetch_offset: 200,
            synced_end: 150,
            now_ms: 10,
        });
        assert_eq!(
            publish(&mut l).isr_change,
            None,
            "joined with unsynced data"
        );
        fetch(&mut l, 2, 200, 20);
        assert!(publish(&mut l).isr_change.is_some());
    }

    #[test]
    fn metadata_from_another_leader_epoch_is_ignored() {
        let mut l = leader(&[1, 2, 3], 1);
        l.step(Event::Metadata(PartitionView {
            replicas: vec![1, 2, 3],
            isr: vec![1],
            leader_epoch: 6,
            partition_epoch: 9,
        }));
        assert_eq!(l.view().isr, vec![1, 2, 3]);
    }
}
