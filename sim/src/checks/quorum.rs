//! The quorum checker: the invariants of Kafka's own Raft simulation
//! (`RaftEventSimulationTest`), asserted at every step from what each node's metadata quorum
//! declares through the probe, plus the metadata state's own:
//!
//! - **one leader per epoch**: every node that names a leader for an epoch (the leader itself,
//!   or a node that made `leader_id` durable in its quorum-state) names the same one;
//! - **epochs monotone per node**, restarts and power losses included: a node comes back with
//!   at least the epoch it last made durable, and with the same vote in that epoch;
//! - **the high watermark monotone** per node while it runs;
//! - **committed entries identical** on every node that holds them below its high watermark,
//!   and **never truncated** by a node that holds them;
//! - **every committed entry on a majority** of the voters' logs when it commits;
//! - **snapshots of committed entries only** (KIP-630): a snapshot a node writes, opens or
//!   installs ends inside the committed prefix, at the epoch of its last entry; entries it
//!   stands for may leave the log (its start moves up), and a node that installs one drops
//!   only entries below it;
//! - **one metadata state per offset**: every node that applied the log up to an offset, or
//!   restored a snapshot ending there, holds the same state;
//! - and for the applied metadata, on every node after every entry: the state's invariants
//!   ([`ClusterState::check_invariants`]), each transition's ([`check_transition`]: leader
//!   epochs monotone, a new leader only with a new leader epoch), and one leader per
//!   (partition, leader epoch) across all nodes ([`LeaderLedger`]).

use super::{Anomaly, Check, Kind};
use crate::history::{Micros, Tp};
use crate::journal::{AppliedState, EntryId, Observation, Observed};
use runnel::cluster::{LeaderLedger, check_transition};
use runnel::raft::{OffsetAndEpoch, QuorumState};
use std::collections::BTreeMap;

/// What the checker knows of one node's quorum.
#[derive(Debug, Default)]
struct Node {
    /// The process the declarations come from.
    incarnation: u32,
    /// The last quorum-state it declared durable.
    durable: Option<QuorumState>,
    /// Its log as declared durable: recovered at open, then cut back and appended.
    log: BTreeMap<i64, EntryId>,
    /// Where its log starts: a snapshot stands for every entry below.
    base: i64,
    /// Its high watermark in this process.
    high_watermark: i64,
    /// Offsets below this were compared with the committed prefix (in this process).
    checked: i64,
    /// The metadata state it last applied (in this process).
    applied: Option<AppliedState>,
}

/// The quorum checker of one run.
pub struct QuorumChecker {
    /// Host names, by index.
    hosts: Vec<String>,
    /// Each host's `node.id`.
    node_ids: Vec<i32>,
    /// The voters' node ids.
    voters: Vec<i32>,
    nodes: BTreeMap<usize, Node>,
    /// The committed prefix of the quorum's log (offset `i` at index `i`).
    committed: Vec<EntryId>,
    /// Each epoch's leader, with the host that first named it.
    leaders: BTreeMap<i32, (i32, usize)>,
    /// The latest epoch with a known leader, and that leader's host.
    latest: Option<(i32, usize)>,
    /// Every (partition, leader epoch) -> leader any node applied.
    ledger: LeaderLedger,
    /// The metadata state after the data entry at each offset, as the first node to apply it
    /// had it, with that node's host.
    states: BTreeMap<i64, (AppliedState, usize)>,
    /// What it found.
    pub found: Vec<Anomaly>,
}

fn metadata_tp() -> Tp {
    Tp {
        topic: "__cluster_metadata".into(),
        partition: 0,
    }
}

impl QuorumChecker {
    pub fn new(hosts: Vec<String>, node_ids: Vec<i32>, voters: Vec<i32>) -> QuorumChecker {
        QuorumChecker {
            hosts,
            node_ids,
            voters,
            nodes: BTreeMap::new(),
            committed: Vec::new(),
            leaders: BTreeMap::new(),
            latest: None,
            ledger: LeaderLedger::default(),
            states: BTreeMap::new(),
            found: Vec::new(),
        }
    }

    fn name(&self, host: usize) -> String {
        let id = self.node_ids.get(host).copied().unwrap_or(-1);
        format!(
            "{} (node {id})",
            self.hosts.get(host).map_or("?", String::as_str)
        )
    }

    fn fail(&mut self, kind: Kind, at: Micros, detail: String) {
        self.found.push(Anomaly {
            kind,
            check: Check::State,
            tp: metadata_tp(),
            detail,
            at,
        });
    }

    /// Takes one observation (others than the quorum's are ignored).
    pub fn observe(&mut self, o: &Observation) {
        match &o.what {
            Observed::QuorumOpened {
                quorum,
                snapshot,
                entries,
            } => self.opened(o, *quorum, *snapshot, entries),
            Observed::QuorumReady {
                persisted,
                snapshot,
                log_start,
                reset_log,
                truncated_to,
                appended,
                leader,
                epoch,
                high_watermark,
            } => {
                if let Some(q) = persisted {
                    self.durable_state(o, *q, "made durable");
                }
                if let Some(id) = snapshot {
                    self.snapshot_of_committed(o, *id, "wrote");
                }
                if let Some(id) = reset_log {
                    self.reset_log(o, *id);
                }
                if let Some(start) = log_start {
                    let n = self.node(o);
                    n.log = n.log.split_off(start);
                    n.base = n.base.max(*start);
                    n.checked = n.checked.max(n.base);
                }
                self.ready(o, *truncated_to, appended);
                self.progress(o, *leader, *epoch, *high_watermark);
            }
            Observed::MetadataApplied { offset, state } => self.applied(o, *offset, state),
            Observed::MetadataRestored { offset, state } => self.restored(o, *offset, state),
            _ => {}
        }
    }

    fn node(&mut self, o: &Observation) -> &mut Node {
        let n = self.nodes.entry(o.host).or_default();
        if n.incarnation != o.incarnation {
            // A new process: what it runs with starts again from its disk.
            n.incarnation = o.incarnation;
            n.high_watermark = 0;
            n.checked = 0;
            n.applied = None;
        }
        n
    }

    /// The host of the latest epoch's leader, as far as the nodes have said.
    pub fn current_leader(&self) -> Option<usize> {
        self.latest.map(|(_, h)| h)
    }

    /// A node names `leader` as the leader of `epoch`.
    fn leader(&mut self, o: &Observation, epoch: i32, leader: i32) {
        if self.latest.is_none_or(|(e, _)| e < epoch)
            && let Some(host) = self.node_ids.iter().position(|id| *id == leader)
        {
            self.latest = Some((epoch, host));
        }
        let (first, by) = *self.leaders.entry(epoch).or_insert((leader, o.host));
        if first != leader {
            let detail = format!(
                "two leaders in epoch {epoch}: {} named node {first}, {} names node {leader}",
                self.name(by),
                self.name(o.host)
            );
            self.fail(Kind::TwoLeaders, o.at, detail);
        }
    }

    /// A durable quorum-state must not go back: not to an older epoch, nor to another vote
    /// (or none) in the same epoch.
    fn durable_state(&mut self, o: &Observation, q: QuorumState, how: &str) {
        let before = self.node(o).durable;
        if let Some(d) = before {
            let forgot_vote =
                q.epoch == d.epoch && d.voted_for.is_some() && q.voted_for != d.voted_for;
            if q.epoch < d.epoch || forgot_vote {
                let detail = format!(
                    "{} {how} epoch {} voted for {:?}, but it had made durable epoch {} voted for {:?}",
                    self.name(o.host),
                    q.epoch,
                    q.voted_for,
                    d.epoch,
                    d.voted_for
                );
                self.fail(Kind::EpochRegression, o.at, detail);
                return;
            }
        }
        self.node(o).durable = Some(q);
        if let Some(l) = q.leader_id {
            self.leader(o, q.epoch, l);
        }
    }

    fn opened(
        &mut self,
        o: &Observation,
        quorum: QuorumState,
        snapshot: Option<OffsetAndEpoch>,
        entries: &[EntryId],
    ) {
        self.durable_state(o, quorum, "came back in");
        if let Some(id) = snapshot {
            self.snapshot_of_committed(o, id, "came back with");
        }
        let base = snapshot.map_or(0, |s| s.offset);
        let n = self.node(o);
        n.base = base;
        n.checked = base;
        n.log = entries
            .iter()
            .filter(|e| e.offset >= base)
            .map(|e| (e.offset, *e))
            .collect();
    }

    /// A snapshot ends inside the committed prefix, at the epoch of the last entry it holds.
    fn snapshot_of_committed(&mut self, o: &Observation, id: OffsetAndEpoch, how: &str) {
        if id.offset <= 0 {
            return;
        }
        let last = usize::try_from(id.offset - 1)
            .ok()
            .and_then(|i| self.committed.get(i))
            .copied();
        let fine = last.is_some_and(|e| e.epoch == id.epoch);
        if !fine {
            let detail = format!(
                "{} {how} a snapshot ending at offset {} (epoch {}), but {} entries are committed{}",
                self.name(o.host),
                id.offset,
                id.epoch,
                self.committed.len(),
                last.map_or(String::new(), |e| format!(
                    " and the last one it covers has epoch {}",
                    e.epoch
                ))
            );
            self.fail(Kind::CommittedLost, o.at, detail);
        }
    }

    /// A node replaced its log with a snapshot fetched from the leader: only entries below the
    /// snapshot's end may go (it stands for them).
    fn reset_log(&mut self, o: &Observation, id: OffsetAndEpoch) {
        self.snapshot_of_committed(o, id, "installed");
        let committed = &self.committed;
        let n = self.nodes.entry(o.host).or_default();
        let lost = n.log.range(id.offset..).map(|(_, e)| *e).find(|e| {
            usize::try_from(e.offset)
                .ok()
                .and_then(|i| committed.get(i))
                .is_some_and(|c| *c == *e)
        });
        n.log.clear();
        n.base = id.offset;
        n.checked = id.offset;
        if let Some(e) = lost {
            let detail = format!(
                "{} replaced its log with a snapshot ending at {}, dropping the committed entry at offset {} (epoch {})",
                self.name(o.host),
                id.offset,
                e.offset,
                e.epoch
            );
            self.fail(Kind::CommittedLost, o.at, detail);
        }
    }

    fn ready(&mut self, o: &Observation, truncated_to: Option<i64>, appended: &[EntryId]) {
        if let Some(t) = truncated_to {
            let committed = &self.committed;
            let n = self.nodes.entry(o.host).or_default();
            let cut = n.log.split_off(&t);
            n.checked = n.checked.min(t);
            let lost = cut.values().find(|e| {
                usize::try_from(e.offset)
                    .ok()
                    .and_then(|i| committed.get(i))
                    .is_some_and(|c| c == *e)
            });
            if let Some(e) = lost.copied() {
                let detail = format!(
                    "{} cut its log back to {t}, below the committed entry at offset {} (epoch {}) that it held; {} entries are committed",
                    self.name(o.host),
                    e.offset,
                    e.epoch,
                    self.committed.len()
                );
                self.fail(Kind::CommittedLost, o.at, detail);
            }
        }
        let n = self.node(o);
        for e in appended {
            n.log.entry(e.offset).or_insert(*e);
        }
    }

    fn progress(&mut self, o: &Observation, leader: bool, epoch: i32, high_watermark: i64) {
        if leader {
            let me = self.node_ids.get(o.host).copied().unwrap_or(-1);
            self.leader(o, epoch, me);
        }
        let n = self.node(o);
        if high_watermark < n.high_watermark {
            let (was, host) = (n.high_watermark, o.host);
            let detail = format!(
                "{}'s high watermark went back from {was} to {high_watermark}",
                self.name(host)
            );
            self.fail(Kind::EpochRegression, o.at, detail);
            return;
        }
        n.high_watermark = high_watermark;
        // The entries below its high watermark that it holds durably.
        let mut end = n.checked;
        while end < high_watermark && n.log.contains_key(&end) {
            end += 1;
        }
        let from = n.checked;
        n.checked = end;
        let mut extended = false;
        for offset in from..end {
            let e = self.nodes[&o.host].log[&offset];
            let i = usize::try_from(offset).unwrap_or(usize::MAX);
            match self.committed.get(i) {
                Some(c) if *c != e => {
                    let detail = format!(
                        "{} holds entry (epoch {}, hash {:016x}) at committed offset {offset}, where (epoch {}, hash {:016x}) was committed",
                        self.name(o.host),
                        e.epoch,
                        e.hash,
                        c.epoch,
                        c.hash
                    );
                    self.fail(Kind::CommittedLost, o.at, detail);
                    return;
                }
                Some(_) => {}
                None if i == self.committed.len() => {
                    self.committed.push(e);
                    extended = true;
                }
                None => break,
            }
        }
        if extended {
            self.check_majority(o);
        }
    }

    /// The last committed entry is on a majority of the voters' logs.
    fn check_majority(&mut self, o: &Observation) {
        let Some(last) = self.committed.last().copied() else {
            return;
        };
        let holders: Vec<i32> = self
            .nodes
            .iter()
            .filter(|(h, n)| {
                let id = self.node_ids.get(**h).copied().unwrap_or(-1);
                // A snapshot holds what it stands for.
                let holds = n.log.get(&last.offset) == Some(&last) || n.base > last.offset;
                self.voters.contains(&id) && holds
            })
            .map(|(h, _)| self.node_ids[*h])
            .collect();
        if holders.len() * 2 <= self.voters.len() {
            let detail = format!(
                "the entry at offset {} (epoch {}) committed on {}'s word, but only voters {holders:?} of {:?} hold it",
                last.offset,
                last.epoch,
                self.name(o.host),
                self.voters
            );
            self.fail(Kind::CommittedLost, o.at, detail);
        }
    }

    fn applied(&mut self, o: &Observation, offset: i64, state: &AppliedState) {
        let name = self.name(o.host);
        if let Err(e) = state.0.check_invariants() {
            let detail = format!("{name} after the metadata entry at offset {offset}: {e}");
            self.fail(Kind::MetadataInvariant, o.at, detail);
        }
        let before = self.node(o).applied.take();
        if let Some(before) = before
            && let Err(e) = check_transition(&before.0, &state.0)
        {
            let detail = format!("{name} applying the metadata entry at offset {offset}: {e}");
            self.fail(Kind::MetadataInvariant, o.at, detail);
        }
        if let Err(e) = self.ledger.observe(&state.0) {
            let detail = format!("{name} after the metadata entry at offset {offset}: {e}");
            self.fail(Kind::TwoLeaders, o.at, detail);
        }
        self.same_state(o, offset + 1, state, true);
        self.node(o).applied = Some(state.clone());
    }

    /// Every node holds the same state after the log up to `end`: the state after the data
    /// entry at `end - 1` when a node applied it (`applied`), or else (a snapshot ending at
    /// `end`) after the last data entry below `end` that any node applied; every data entry
    /// below a snapshot was applied, and declared, by the node that took it.
    fn same_state(&mut self, o: &Observation, end: i64, state: &AppliedState, applied: bool) {
        let name = self.name(o.host);
        let known = self.states.range(..end).next_back();
        if let Some((&k, (s, by))) = known
            && (!applied || k == end - 1)
            && s.0 != state.0
        {
            let detail = format!(
                "{name} holds, after the metadata log up to offset {end}, another state than {} held after the entry at offset {k}",
                self.name(*by)
            );
            self.fail(Kind::MetadataInvariant, o.at, detail);
        }
        if applied {
            self.states
                .entry(end - 1)
                .or_insert_with(|| (state.clone(), o.host));
        }
    }

    /// A node's state restored from a snapshot ending at `offset`: it keeps the invariants,
    /// equals every other node's after the same entries, and is the base of its next
    /// transition.
    fn restored(&mut self, o: &Observation, offset: i64, state: &AppliedState) {
        let name = self.name(o.host);
        if let Err(e) = state.0.check_invariants() {
            let detail =
                format!("{name} restored from the snapshot ending at offset {offset}: {e}");
            self.fail(Kind::MetadataInvariant, o.at, detail);
        }
        if let Err(e) = self.ledger.observe(&state.0) {
            let detail =
                format!("{name} restored from the snapshot ending at offset {offset}: {e}");
            self.fail(Kind::TwoLeaders, o.at, detail);
        }
        if offset > 0 {
            self.same_state(o, offset, state, false);
        }
        self.node(o).applied = Some(state.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(host: usize, incarnation: u32, what: Observed) -> Observation {
        Observation {
            seq: 0,
            at: 0,
            host,
            incarnation,
            what,
        }
    }

    fn entry(offset: i64, epoch: i32) -> EntryId {
        EntryId {
            offset,
            epoch,
            hash: offset as u64 * 31 + epoch as u64,
        }
    }

    fn ready(entries: &[EntryId], hw: i64, leader: bool, epoch: i32) -> Observed {
        Observed::QuorumReady {
            persisted: None,
            snapshot: None,
            log_start: None,
            reset_log: None,
            truncated_to: None,
            appended: entries.to_vec(),
            leader,
            epoch,
            high_watermark: hw,
        }
    }

    fn checker() -> QuorumChecker {
        QuorumChecker::new(
            vec!["a".into(), "b".into(), "c".into()],
            vec![1, 2, 3],
            vec![1, 2, 3],
        )
    }

    fn state(epoch: i32, voted: Option<i32>, leader: Option<i32>) -> QuorumState {
        QuorumState {
            epoch,
            voted_for: voted,
            leader_id: leader,
        }
    }

    #[test]
    fn a_forgotten_vote_is_an_epoch_regression() {
        let mut c = checker();
        let mut r = ready(&[], 0, false, 2);
        if let Observed::QuorumReady { persisted, .. } = &mut r {
            *persisted = Some(state(2, Some(1), None));
        }
        c.observe(&obs(1, 0, r));
        assert!(c.found.is_empty());
        c.observe(&obs(
            1,
            1,
            Observed::QuorumOpened {
                quorum: state(2, None, None),
                snapshot: None,
                entries: vec![],
            },
        ));
        assert_eq!(c.found[0].kind, Kind::EpochRegression, "{:?}", c.found);
    }

    #[test]
    fn two_leaders_in_one_epoch_are_found() {
        let mut c = checker();
        c.observe(&obs(0, 0, ready(&[], 0, true, 3)));
        c.observe(&obs(1, 0, ready(&[], 0, true, 3)));
        assert_eq!(c.found[0].kind, Kind::TwoLeaders, "{:?}", c.found);
    }

    #[test]
    fn truncating_a_committed_entry_is_found_and_a_divergent_one_is_not() {
        let mut c = checker();
        let log = [entry(0, 1), entry(1, 1), entry(2, 1)];
        // Two voters hold three entries; the leader commits two.
        c.observe(&obs(1, 0, ready(&log, 0, false, 1)));
        c.observe(&obs(0, 0, ready(&log, 2, true, 1)));
        assert!(c.found.is_empty(), "{:?}", c.found);
        // Cutting the uncommitted third is fine; cutting the second is not.
        let cut = |to| Observed::QuorumReady {
            persisted: None,
            snapshot: None,
            log_start: None,
            reset_log: None,
            truncated_to: Some(to),
            appended: vec![],
            leader: false,
            epoch: 2,
            high_watermark: 0,
        };
        c.observe(&obs(1, 0, cut(2)));
        assert!(c.found.is_empty(), "{:?}", c.found);
        c.observe(&obs(1, 0, cut(1)));
        assert_eq!(c.found[0].kind, Kind::CommittedLost, "{:?}", c.found);
    }

    #[test]
    fn a_commit_on_a_minority_and_a_divergent_committed_entry_are_found() {
        let mut c = checker();
        c.observe(&obs(0, 0, ready(&[entry(0, 1)], 1, true, 1)));
        assert_eq!(c.found[0].kind, Kind::CommittedLost, "only one of three");
        let mut c = checker();
        c.observe(&obs(1, 0, ready(&[entry(0, 1)], 0, false, 1)));
        c.observe(&obs(0, 0, ready(&[entry(0, 1)], 1, true, 1)));
        assert!(c.found.is_empty(), "{:?}", c.found);
        c.observe(&obs(2, 0, ready(&[entry(0, 2)], 1, false, 2)));
        assert_eq!(c.found[0].kind, Kind::CommittedLost, "{:?}", c.found);
    }

    #[test]
    fn a_snapshot_past_the_committed_prefix_and_a_state_that_differs_are_found() {
        use runnel::cluster::ClusterState;
        use std::sync::Arc;
        let mut c = checker();
        let log = [entry(0, 1), entry(1, 1), entry(2, 1)];
        c.observe(&obs(1, 0, ready(&log, 0, false, 1)));
        c.observe(&obs(0, 0, ready(&log, 2, true, 1)));
        assert!(c.found.is_empty(), "{:?}", c.found);
        let snap = |offset| Observed::QuorumReady {
            persisted: None,
            snapshot: Some(OffsetAndEpoch { offset, epoch: 1 }),
            log_start: Some(offset),
            reset_log: None,
            truncated_to: None,
            appended: vec![],
            leader: true,
            epoch: 1,
            high_watermark: 2,
        };
        c.observe(&obs(0, 0, snap(2)));
        assert!(c.found.is_empty(), "{:?}", c.found);
        c.observe(&obs(0, 0, snap(3)));
        assert_eq!(c.found[0].kind, Kind::CommittedLost, "{:?}", c.found);
        // States: node 0 applied entry 1; node 1 restores a snapshot ending at 2 that differs.
        let mut c = checker();
        let applied = ClusterState {
            next_producer_id: 5,
            ..ClusterState::default()
        };
        c.observe(&obs(
            0,
            0,
            Observed::MetadataApplied {
                offset: 1,
                state: AppliedState(Arc::new(applied.clone())),
            },
        ));
        c.observe(&obs(
            2,
            0,
            Observed::MetadataRestored {
                offset: 2,
                state: AppliedState(Arc::new(applied)),
            },
        ));
        assert!(c.found.is_empty(), "{:?}", c.found);
        c.observe(&obs(
            1,
            0,
            Observed::MetadataRestored {
                offset: 2,
                state: AppliedState(Arc::new(ClusterState::default())),
            },
        ));
        assert_eq!(c.found[0].kind, Kind::MetadataInvariant, "{:?}", c.found);
    }
}
