//! The consumer-group checks of a history:
//!
//! - **double-assignment**: no partition is given to two members of a group in one
//!   generation (as the members report what they received);
//! - **lost-commit**: an acknowledged commit is returned by every fetch of the group's offsets
//!   that starts after the acknowledgement, until a commit sent after that acknowledgement is
//!   acknowledged in turn and supersedes it. The value fetched must be that of a commit that
//!   may have been the latest applied while the fetch was in flight: one acknowledged and not
//!   superseded (whenever its answer came), or one sent before the fetch was answered and still
//!   in flight or of unknown outcome; never a superseded one, never none (`fetchable`);
//! - **nonmonotonic-commit**: a group's acknowledged commits of a partition never go back: one
//!   sent after another was acknowledged is not below it (commits that overlap in time are not
//!   ordered, whenever their answers arrive). The workload never resets offsets by hand; an
//!   automatic reset back happens only where write caching let a power loss take records
//!   back, so those topics are skipped, as are partitions with a commit of unknown outcome,
//!   which Kafka does not order;
//! - **undelivered**: once a group has read every partition to its end after the heal, every
//!   record of the final log (at or above the log start, in topics without write caching,
//!   whose records are durable before they are visible) was received by some member of it:
//!   at-least-once delivery.

use super::{Anomaly, Check, Kind, Verdict};
use crate::history::{Event, History, Micros, Tp};
use std::collections::{BTreeMap, BTreeSet};

/// One commit of one partition.
struct Commit {
    invoked: u64,
    /// The completion's sequence number and whether it was acknowledged (`None`: no answer
    /// yet, or unknown).
    done: Option<(u64, bool)>,
    offset: i64,
    /// Its outcome is unknown.
    info: bool,
}

/// Checks the group events of `h` into `v`.
pub fn check(h: &History, v: &mut Verdict) {
    check_assignments(h, v);
    check_commits(h, v);
    check_delivery(h, v);
}

fn fail(v: &mut Verdict, kind: Kind, tp: &Tp, at: Micros, detail: String) {
    v.violations.push(Anomaly {
        kind,
        check: Check::History,
        tp: tp.clone(),
        detail,
        at,
    });
}

/// One owner per partition in each generation of one incarnation of a group. The coordinator
/// deletes an empty group whose offsets expired (as Kafka does), and a group joined under the
/// id afterwards counts its generations from 1 again: a repeated generation number with new
/// member ids is a new group, not a double assignment (the state checker's `assigned` says
/// why that is safe). A member id belongs to the incarnation in which a member first reported
/// it: member ids are never reused, and a deletion needs the group empty, so every member
/// of the old incarnation has been removed before it. (An answer that the network held across
/// the deletion would report an old member in the new incarnation; the state checker, which
/// knows the incarnation from the coordinator's own publication, has no such blind spot.)
fn check_assignments(h: &History, v: &mut Verdict) {
    // (group, incarnation, generation, partition) -> (member id, process).
    let mut owner: BTreeMap<(&str, u32, i32, &Tp), (&str, &str)> = BTreeMap::new();
    let mut incarnations: BTreeMap<&str, u32> = BTreeMap::new();
    let mut members: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for e in &h.entries {
        match &e.event {
            Event::GroupDeleted { group } => {
                *incarnations.entry(group).or_default() += 1;
            }
            Event::Assigned {
                process,
                group,
                generation,
                member,
                partitions,
            } => {
                let current = incarnations.get(group.as_str()).copied().unwrap_or(0);
                let incarnation = *members.entry((group, member)).or_insert(current);
                for tp in partitions {
                    match owner.get(&(group.as_str(), incarnation, *generation, tp)) {
                        Some((m, p)) if *m != member.as_str() => {
                            let detail = format!(
                                "group {group} generation {generation}: given to {member} ({process}) and to {m} ({p})"
                            );
                            fail(v, Kind::DoubleAssignment, tp, e.at, detail);
                        }
                        _ => {
                            owner.insert((group, incarnation, *generation, tp), (member, process));
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn check_commits(h: &History, v: &mut Verdict) {
    // (group, partition) -> commits in invoke order.
    let mut commits: BTreeMap<(&str, &Tp), Vec<Commit>> = BTreeMap::new();
    // A member's commit in flight: process -> the (group, partition, index) it covers.
    let mut open: BTreeMap<&str, Vec<(&str, &Tp, usize)>> = BTreeMap::new();
    // A member's fetch in flight: process -> its invoke sequence number.
    let mut fetching: BTreeMap<&str, u64> = BTreeMap::new();
    // Fetches to check once every commit's outcome is known: (group, invoke seq, end seq,
    // at, process, offsets).
    let mut fetches = Vec::new();
    for e in &h.entries {
        match &e.event {
            Event::CommitInvoke {
                process,
                group,
                offsets,
            } => {
                let mut mine = Vec::new();
                for (tp, offset) in offsets {
                    let list = commits.entry((group, tp)).or_default();
                    list.push(Commit {
                        invoked: e.seq,
                        done: None,
                        offset: *offset,
                        info: false,
                    });
                    mine.push((group.as_str(), tp, list.len() - 1));
                }
                open.insert(process, mine);
            }
            Event::CommitOk { process, .. }
            | Event::CommitFail { process, .. }
            | Event::CommitInfo { process, .. } => {
                let ok = matches!(e.event, Event::CommitOk { .. });
                let info = matches!(e.event, Event::CommitInfo { .. });
                for (g, tp, i) in open.remove(process.as_str()).unwrap_or_default() {
                    if let Some(c) = commits.get_mut(&(g, tp)).and_then(|l| l.get_mut(i)) {
                        c.done = (!info).then_some((e.seq, ok));
                        c.info = info;
                    }
                }
            }
            Event::FetchOffsetsInvoke { process, .. } => {
                fetching.insert(process, e.seq);
            }
            Event::FetchOffsetsOk {
                process,
                group,
                offsets,
            } => {
                if let Some(invoked) = fetching.remove(process.as_str()) {
                    fetches.push((group, invoked, e.seq, e.at, process, offsets));
                }
            }
            _ => {}
        }
    }
    for (group, invoked, ended, at, process, offsets) in fetches {
        for (tp, got) in offsets {
            let list = commits
                .get(&(group.as_str(), tp))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let Some((floor, allowed)) = fetchable(list, invoked, ended) else {
                continue;
            };
            if got.is_none_or(|o| !allowed.contains(&o)) {
                let detail = format!(
                    "{process} fetched {group}'s offset of {tp} as {}, but offset {floor} was acknowledged before the fetch (allowed: {allowed:?})",
                    got.map_or("none".to_string(), |o| o.to_string()),
                );
                fail(v, Kind::LostCommit, tp, at, detail);
            }
        }
    }
    for ((group, tp), list) in &commits {
        if h.write_caching.get(&tp.topic).copied().unwrap_or(false) || list.iter().any(|c| c.info) {
            continue;
        }
        // Ordered by real time, not by when the answers came: a commit invoked before another
        // was acknowledged overlaps it, and its answer may come much later although the
        // coordinator applied it first (seed 9200530: a member's commit of 346 was applied at
        // 3.36 s, the network held its answer until 6.25 s, and meanwhile the partition's new
        // owner started from 346 and committed 638; counted by answer, 346 came "after" 638).
        // Kafka orders a commit only after the commits acknowledged before it was sent, so
        // that is what the check demands: an acknowledged commit invoked after another was
        // acknowledged does not go below it.
        let mut acked: Vec<(u64, u64, i64)> = list
            .iter()
            .filter_map(|c| match c.done {
                Some((s, true)) => Some((s, c.invoked, c.offset)),
                _ => None,
            })
            .collect();
        acked.sort_unstable();
        // The highest offset among the first i acknowledgements, for each i.
        let mut highest: Vec<(u64, i64)> = Vec::with_capacity(acked.len());
        for &(done, _, offset) in &acked {
            let top = highest.last().map_or(offset, |&(_, h)| h.max(offset));
            highest.push((done, top));
        }
        for &(done, invoked, offset) in &acked {
            let before = highest.partition_point(|&(d, _)| d < invoked);
            let Some(&(_, floor)) = before.checked_sub(1).and_then(|i| highest.get(i)) else {
                continue;
            };
            if offset < floor {
                let at = h.entries.iter().find(|e| e.seq == done).map_or(0, |e| e.at);
                let detail =
                    format!("group {group} committed {offset} after {floor} was acknowledged");
                fail(v, Kind::NonmonotonicCommit, tp, at, detail);
                break;
            }
        }
    }
}

/// What a fetch of a partition's committed offset, invoked at sequence number `invoked` and
/// answered at `ended`, may return, given the partition's commits `list`: `None` when no commit
/// was acknowledged before the fetch began (then anything goes, none included); otherwise the
/// offset of the last commit sent among those acknowledged before it, and every offset that may
/// have been the latest commit applied at some moment while the fetch was in flight.
///
/// Kafka orders two commits only when one was sent after the other was acknowledged; commits
/// that overlap in time may be applied in either order, and a commit is applied before its
/// answer leaves, which may be long before it arrives. So the order of acknowledgements says
/// nothing, and a commit may have been applied before the fetch was answered if it was sent
/// before then and not refused by the coordinator (acknowledged, still in flight, or of
/// unknown outcome), unless it is *superseded*: acknowledged, and another commit sent after
/// that acknowledgement was itself acknowledged before the fetch began (applied after it,
/// and before the fetch). A commit of unknown outcome or never answered is never superseded:
/// its request may still arrive and be applied late.
///
/// Seed 9400127: a member's commit of 739 was applied at once, but a network hold kept its
/// answer for 2.5 s; meanwhile the partition's next owner fetched 739, committed up to 1125 and
/// had that acknowledged. The late answer of 739 does not make 739 the latest commit: it was
/// applied before 1125's was sent, and a later fetch rightly returned 1125. Ordering commits by
/// their answers (the rule before) called that a lost commit.
fn fetchable(list: &[Commit], invoked: u64, ended: u64) -> Option<(i64, BTreeSet<i64>)> {
    let acked = |c: &Commit| match c.done {
        Some((s, true)) => Some(s),
        _ => None,
    };
    // The commits acknowledged before the fetch began; the last one sent among them.
    let before = list
        .iter()
        .filter(|c| acked(c).is_some_and(|s| s < invoked));
    let last_sent = before.max_by_key(|c| c.invoked)?;
    let allowed = list
        .iter()
        .filter(|c| c.invoked < ended)
        .filter(|c| match c.done {
            // Acknowledged: superseded if a commit sent after the acknowledgement was
            // acknowledged before the fetch began.
            Some((s, true)) => last_sent.invoked < s,
            // Refused by the coordinator: never applied.
            Some((_, false)) => false,
            // Unknown outcome, or no answer at all.
            None => true,
        })
        .map(|c| c.offset)
        .collect();
    Some((last_sent.offset, allowed))
}

fn check_delivery(h: &History, v: &mut Verdict) {
    if h.groups_complete.is_empty() || h.final_readers.is_empty() {
        return;
    }
    // The final image: partition -> offset -> value, from the final reads.
    let mut image: BTreeMap<&Tp, BTreeMap<i64, &str>> = BTreeMap::new();
    // What each group received: (group, partition) -> (offset, value).
    let mut received: BTreeMap<(&str, &Tp), BTreeSet<(i64, &str)>> = BTreeMap::new();
    let mut final_reading: BTreeSet<&str> = BTreeSet::new();
    for e in &h.entries {
        match &e.event {
            Event::FinalRead { process } => {
                final_reading.insert(process);
            }
            Event::Poll {
                process,
                tp,
                records,
            } => {
                if let Some(g) = h.group_of.get(process) {
                    let got = received.entry((g, tp)).or_default();
                    got.extend(records.iter().map(|(o, val)| (*o, val.as_str())));
                } else if final_reading.contains(process.as_str())
                    && h.final_readers.contains(process)
                {
                    let img = image.entry(tp).or_default();
                    img.extend(records.iter().map(|(o, val)| (*o, val.as_str())));
                }
            }
            _ => {}
        }
    }
    for group in &h.groups_complete {
        for (tp, records) in &image {
            if h.write_caching.get(&tp.topic).copied().unwrap_or(false) {
                continue;
            }
            let start = h.log_start.get(*tp).copied().unwrap_or(0);
            let got = received.get(&(group.as_str(), *tp));
            let missing: Vec<i64> = records
                .range(start..)
                .filter(|(o, val)| !got.is_some_and(|g| g.contains(&(**o, **val))))
                .map(|(o, _)| *o)
                .collect();
            if let Some(first) = missing.first() {
                let detail = format!(
                    "group {group} never received {} record(s) of the final log, the first at offset {first}",
                    missing.len()
                );
                fail(v, Kind::Undelivered, tp, 0, detail);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Event::*;

    fn tp() -> Tp {
        Tp {
            topic: "t".into(),
            partition: 0,
        }
    }

    /// A history whose entries get sequence numbers in order, as the journal gives them.
    fn history(events: Vec<Event>) -> History {
        let mut h = History::default();
        for (i, e) in events.into_iter().enumerate() {
            h.push(i as u64 * 10, e);
            h.entries.last_mut().unwrap().seq = i as u64 + 1;
        }
        h
    }

    fn commit(p: &str, offset: i64, ok: bool) -> Vec<Event> {
        let offsets = vec![(tp(), offset)];
        let invoke = CommitInvoke {
            process: p.into(),
            group: "g".into(),
            offsets: offsets.clone(),
        };
        let done = if ok {
            CommitOk {
                process: p.into(),
                group: "g".into(),
                offsets,
            }
        } else {
            CommitInfo {
                process: p.into(),
                group: "g".into(),
                offsets,
                error: "timeout".into(),
            }
        };
        vec![invoke, done]
    }

    fn fetch(p: &str, got: Option<i64>) -> Vec<Event> {
        vec![
            FetchOffsetsInvoke {
                process: p.into(),
                group: "g".into(),
            },
            FetchOffsetsOk {
                process: p.into(),
                group: "g".into(),
                offsets: vec![(tp(), got)],
            },
        ]
    }

    fn kinds(h: &History) -> Vec<String> {
        let mut v = Verdict::default();
        check(h, &mut v);
        v.violations.iter().map(|a| a.kind.to_string()).collect()
    }

    #[test]
    fn an_acknowledged_commit_must_be_fetched_back() {
        let ok = history([commit("m", 5, true), fetch("m", Some(5))].concat());
        assert!(kinds(&ok).is_empty());
        let older = history(
            [
                commit("m", 5, true),
                commit("m", 9, true),
                fetch("n", Some(5)),
            ]
            .concat(),
        );
        assert_eq!(kinds(&older), ["lost-commit"]);
        let none = history([commit("m", 5, true), fetch("n", None)].concat());
        assert_eq!(kinds(&none), ["lost-commit"]);
        // A commit of unknown outcome may have landed after the acknowledged one.
        let unknown = history(
            [
                commit("m", 5, true),
                commit("m", 9, false),
                fetch("n", Some(9)),
            ]
            .concat(),
        );
        assert!(kinds(&unknown).is_empty());
        // Before any acknowledgement anything goes.
        let early = history(fetch("n", None));
        assert!(kinds(&early).is_empty());
    }

    /// Seed 9400127: member a's commit of 739 was applied at once but a network hold kept its
    /// answer; member b fetched 739, committed 1125 and had it acknowledged; then a's answer
    /// came. The two commits overlapped in time, so Kafka may have applied them in either
    /// order, and a fetch after both answers may return either (it returned 1125, rightly).
    /// Once a commit sent after both answers is acknowledged, both are superseded.
    #[test]
    fn a_late_answer_does_not_make_a_commit_the_latest() {
        let offsets = |o: i64| vec![(tp(), o)];
        let sent = CommitInvoke {
            process: "a".into(),
            group: "g".into(),
            offsets: offsets(739),
        };
        let late = CommitOk {
            process: "a".into(),
            group: "g".into(),
            offsets: offsets(739),
        };
        let overlapping = [
            vec![sent.clone()],
            fetch("b", Some(739)),
            commit("b", 1125, true),
            vec![late.clone()],
        ]
        .concat();
        for got in [1125, 739] {
            let h = history([overlapping.clone(), fetch("a", Some(got))].concat());
            assert!(kinds(&h).is_empty(), "fetched {got}");
        }
        // Neither may be lost.
        let h = history([overlapping.clone(), fetch("a", None)].concat());
        assert_eq!(kinds(&h), ["lost-commit"]);
        // A commit sent after both answers and acknowledged supersedes both.
        for got in [1125, 739] {
            let h = history(
                [
                    overlapping.clone(),
                    commit("a", 1200, true),
                    fetch("a", Some(got)),
                ]
                .concat(),
            );
            assert_eq!(kinds(&h), ["lost-commit"], "fetched {got}");
        }
        // Sent after 1125's answer but before 739's, 1130 supersedes 1125 only.
        let h = |got| {
            history(
                [
                    vec![sent.clone()],
                    commit("b", 1125, true),
                    commit("b", 1130, true),
                    vec![late.clone()],
                    fetch("a", Some(got)),
                ]
                .concat(),
            )
        };
        assert!(kinds(&h(1130)).is_empty());
        assert!(kinds(&h(739)).is_empty());
        assert_eq!(kinds(&h(1125)), ["lost-commit"]);
    }

    /// A commit the coordinator refused was never applied; one still in flight when the
    /// fetch was answered may have been, but not one sent after that.
    #[test]
    fn refused_and_later_commits_cannot_be_fetched() {
        let refused = |p: &str, o: i64| {
            let offsets = vec![(tp(), o)];
            vec![
                CommitInvoke {
                    process: p.into(),
                    group: "g".into(),
                    offsets: offsets.clone(),
                },
                CommitFail {
                    process: p.into(),
                    group: "g".into(),
                    offsets,
                    error: "UNKNOWN_MEMBER_ID".into(),
                },
            ]
        };
        let h = history([commit("a", 5, true), refused("b", 9), fetch("a", Some(9))].concat());
        assert_eq!(kinds(&h), ["lost-commit"]);
        let open = |o: i64| CommitInvoke {
            process: "b".into(),
            group: "g".into(),
            offsets: vec![(tp(), o)],
        };
        let [invoke, answer] = <[Event; 2]>::try_from(fetch("a", Some(9))).unwrap();
        let during = history(
            [
                commit("a", 5, true),
                vec![invoke.clone(), open(9), answer.clone()],
            ]
            .concat(),
        );
        assert!(kinds(&during).is_empty());
        let after = history([commit("a", 5, true), vec![invoke, answer, open(9)]].concat());
        assert_eq!(kinds(&after), ["lost-commit"]);
    }

    #[test]
    fn acknowledged_commits_only_move_forward() {
        let back = history([commit("m", 9, true), commit("n", 5, true)].concat());
        assert_eq!(kinds(&back), ["nonmonotonic-commit"]);
        let mut caching = back.clone();
        caching.write_caching.insert("t".into(), true);
        assert!(kinds(&caching).is_empty());
    }

    /// Seed 9200530: a member's commit was applied at once, but the network held its answer
    /// for seconds, while the partition's next owner started from it and committed further.
    /// The late answer does not make the commit come after the others: it was sent before
    /// they were acknowledged. A commit sent after a higher one was acknowledged still fails.
    #[test]
    fn a_late_answer_does_not_reorder_commits() {
        let offsets = vec![(tp(), 346)];
        let late = |p: &str| CommitOk {
            process: p.into(),
            group: "g".into(),
            offsets: offsets.clone(),
        };
        let sent = CommitInvoke {
            process: "a".into(),
            group: "g".into(),
            offsets: offsets.clone(),
        };
        let h = history([vec![sent.clone()], commit("b", 638, true), vec![late("a")]].concat());
        assert!(kinds(&h).is_empty());
        let h = history([commit("b", 638, true), vec![sent], vec![late("a")]].concat());
        assert_eq!(kinds(&h), ["nonmonotonic-commit"]);
    }

    #[test]
    fn one_partition_two_members_in_one_generation() {
        let assigned = |p: &str, member: &str, generation| Assigned {
            process: p.into(),
            group: "g".into(),
            generation,
            member: member.into(),
            partitions: vec![tp()],
        };
        let h = history(vec![assigned("a", "m-a", 1), assigned("b", "m-b", 2)]);
        assert!(kinds(&h).is_empty());
        let h = history(vec![assigned("a", "m-a", 1), assigned("b", "m-b", 1)]);
        assert_eq!(kinds(&h), ["double-assignment"]);
    }

    /// Seeds 9200023 and 9201875: the coordinator deleted an empty group without offsets
    /// (Kafka's expiry), and the next member to join got generation 1 again under a new
    /// member id. A new group, not a double assignment; within it the rule holds again.
    #[test]
    fn generations_start_over_after_the_group_is_deleted() {
        let assigned = |p: &str, member: &str, generation| Assigned {
            process: p.into(),
            group: "g".into(),
            generation,
            member: member.into(),
            partitions: vec![tp()],
        };
        let deleted = GroupDeleted { group: "g".into() };
        let h = history(vec![
            assigned("a", "m-a", 1),
            deleted.clone(),
            assigned("a", "m-a2", 1),
        ]);
        assert!(kinds(&h).is_empty());
        let h = history(vec![
            assigned("a", "m-a", 1),
            deleted,
            assigned("a", "m-a2", 1),
            assigned("b", "m-b", 1),
        ]);
        assert_eq!(kinds(&h), ["double-assignment"]);
    }

    #[test]
    fn a_complete_group_received_every_final_record() {
        let poll = |p: &str, records: &[(i64, &str)]| Poll {
            process: p.into(),
            tp: tp(),
            records: records.iter().map(|(o, v)| (*o, v.to_string())).collect(),
        };
        let mut h = history(vec![
            poll("member", &[(0, "a")]),
            FinalRead {
                process: "reader".into(),
            },
            poll("reader", &[(0, "a"), (1, "b")]),
        ]);
        h.final_readers.insert("reader".into());
        h.group_of.insert("member".into(), "g".into());
        h.groups_complete.insert("g".into());
        assert_eq!(kinds(&h), ["undelivered"]);
        // Below the log start, retention deleted it first.
        h.log_start.insert(tp(), 2);
        assert!(kinds(&h).is_empty());
    }
}
